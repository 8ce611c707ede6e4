import asyncio

from lichen import Client, DocumentInfo, QueryOptions


async def main():
    client = Client()

    # Auto-loads from cloud if the index exists, starts fresh if not.
    session = await client.session(index_name="my-session-index")
    print(f"{session.doc_count} existing docs loaded")

asyncio.run(main())
