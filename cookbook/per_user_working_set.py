"""Per-user working set: one session per user, isolated, with metadata and time filters.

Each user gets their own session (named by user id), so one user's notes can never
surface in another's results. Within a user's session, metadata filters narrow a query
to a kind of note, and a time-window filter on turn timestamps keeps only recent turns.

Run: ``python cookbook/per_user_working_set.py``
"""

from __future__ import annotations

import asyncio

from lichen import Client, DocumentInfo, QueryOptions

NOW = 1_760_000_000  # a fixed "now" (Unix seconds) keeps the output reproducible
HOUR = 3600

NOTES = {
    "user-ana": [
        ("n1", "Prefers vegetarian restaurants near the office.", "preference", NOW - 30 * 24 * HOUR),
        ("n2", "Asked to book a table for four on Friday evening.", "request", NOW - 2 * HOUR),
        ("n3", "Allergic to peanuts.", "preference", NOW - 90 * 24 * HOUR),
    ],
    "user-ben": [
        ("n1", "Wants a steakhouse with a private room for a client dinner.", "request", NOW - 1 * HOUR),
        ("n2", "Travels to Berlin next week for a conference.", "context", NOW - 5 * HOUR),
    ],
}


async def open_working_sets(client: Client) -> dict:
    sessions = {}
    for user, notes in NOTES.items():
        session = await client.session(index_name=f"working-set-{user}")
        await session.add_docs(
            [DocumentInfo(id=i, text=t, metadata={"kind": kind, "ts": ts, "user": user}) for i, t, kind, ts in notes]
        )
        sessions[user] = session
    return sessions


def show(title: str, result) -> None:
    print(title)
    for doc in result.docs:
        print(f"  {doc.metadata['user']} {doc.id} [{doc.metadata['kind']}] {doc.score:.3f} {doc.text}")


async def main() -> None:
    client = Client()
    sessions = await open_working_sets(client)
    question = "where should we eat dinner?"
    for user, session in sessions.items():
        show(f"{user}: {question}", await session.query(question, QueryOptions(top_k=3)))

    ana = sessions["user-ana"]
    show("user-ana, preferences only:", await ana.query(question, QueryOptions(top_k=3, filter={"kind": "preference"})))
    last_day = {"ts": {"$gte": NOW - 24 * HOUR}}
    show("user-ana, last 24 hours only:", await ana.query(question, QueryOptions(top_k=3, filter=last_day)))
    both = {"$and": [{"kind": {"$in": ["request", "context"]}}, last_day]}
    show("user-ben, recent requests or context:", await sessions["user-ben"].query("plans", QueryOptions(top_k=3, filter=both)))


if __name__ == "__main__":
    asyncio.run(main())
