"""Live-call context: a long-term FAQ index plus a short-term session per call.

The seed's pattern, end to end on the embedded store (no server, no credentials):
load the FAQ index once, open a session per call, index each turn as it arrives, query
both per turn, push the session at call end, and resume it by name in a later call.

Running it again gives the same output: a run starts its call afresh (the call an
earlier run pushed is deleted first, rather than resumed and appended to) and creates the
FAQ index only if it is missing.

Each turn's context is one list: earlier turns and FAQs merged by score, best first.
Both are cosine similarities from the same model, so they compare directly
(``ContextSearch(method="score")``); with hybrid queries or different models, the default
reciprocal-rank fusion is the safe merge.

Run: ``python cookbook/live_call_context.py``
"""

from __future__ import annotations

import asyncio

from lichen import Client, ContextSearch, DocumentInfo

FAQS = [
    ("faq-double-charge", "If you were charged twice for one order, the duplicate charge is refunded automatically within 5 business days."),
    ("faq-refund-time", "Refunds go back to the original payment method and take 3-5 business days to appear."),
    ("faq-cancel", "You can cancel a subscription at any time from Settings > Billing; access continues until the period ends."),
    ("faq-address", "To change a delivery address, edit the order within 2 hours of placing it."),
    ("faq-password", "Reset a forgotten password with the 'Forgot password' link on the sign-in page."),
]

FAQ_INDEX = "support-faqs"
CALL_ID = "call-42"

CALL_TURNS = [
    "Hi, I was billed twice for my annual renewal this morning.",
    "Both charges are 99 dollars on the same card.",
    "How long until I get the money back?",
]


async def live_call(client: Client, call_id: str, turns: list[str]) -> None:
    session = await client.session(index_name=call_id)
    print(f"[{call_id}] session opened with {session.doc_count} earlier turns")
    # Up to 2 earlier turns and 1 FAQ per turn, merged by cosine similarity.
    context = ContextSearch(
        session, client, [FAQ_INDEX], k=3, per_source_k={"session": 2, FAQ_INDEX: 1}, method="score"
    )
    for number, text in enumerate(turns, start=session.doc_count + 1):
        hits = await context.asearch(text)
        print(f"  user: {text}")
        for hit in hits:
            where = "session" if hit.source == "session" else "knowledge"
            print(f"    {where:<9} {hit.doc.id:<18} {hit.score:.3f}  {hit.doc.text[:60]}")
        await session.add_docs([DocumentInfo(id=f"turn-{number}", text=text, metadata={"turn": number})])
    result = await session.push_index()
    print(f"[{call_id}] pushed {result.doc_count} turns (version {result.version})")


async def main(home: str | None = None) -> None:
    # Client() stores indexes under LICHEN_HOME (default: your user data directory);
    # Client(project_id, project_key, url="http://host:8080") uses a Lichen server instead.
    client = Client(home=home)
    if not any(info.name == FAQ_INDEX for info in await client.list_indexes()):
        await client.create_index(FAQ_INDEX, [DocumentInfo(id=i, text=t) for i, t in FAQS])
    await client.load_index(FAQ_INDEX)
    await client.delete_index(CALL_ID)  # a call an earlier run of this demo pushed

    await live_call(client, CALL_ID, CALL_TURNS)
    # The customer calls back: the same name resumes the earlier turns, no re-embedding.
    await live_call(client, CALL_ID, ["Just checking: has the refund for the double charge gone through?"])
    await client.unload_index(FAQ_INDEX)


if __name__ == "__main__":
    asyncio.run(main())
