"""A folder of Markdown docs as an index that stays in step with it.

The support handbook (``cookbook/data/handbook``, four Markdown files) is copied to a
working folder, synced into a stored index (each file chunked by its headings, chunk ids
``handbook/billing.md#chunk-0003``, the source and heading in each chunk's metadata), and
queried with results by source: one answer per file, its matching sections in order. Then
a file is edited (refunds to cards get faster) and another deleted, and the folder is
synced again: only the edited file is re-chunked and embedded, the deleted file's chunks
go, the rest is only hashed. The same query now answers from the new text. A third sync
finds nothing to do. ``lichen sync FOLDER --index NAME`` does the same from a shell.

Running it again gives the same output: the index is deleted first.

Run: ``python cookbook/folder_docs_sync.py``
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from lichen import Client, QueryOptions

HANDBOOK = Path(__file__).parent / "data" / "handbook"
INDEX_NAME = "handbook-sync"
QUESTION = "How long does a card refund take?"


def ask(client: Client, title: str) -> None:
    client.load_index_sync(INDEX_NAME)  # the stored version as it is now
    # One result per file (its best section's score), with its sections above the floor
    # in file order: the context an LLM would be given.
    options = QueryOptions(top_k=2, group_by="source", min_score=0.55)
    print(title)
    results = client.query_sync(INDEX_NAME, QUESTION, options).docs
    for result in results:
        print(f"  {result.id}  {result.score:.3f}")
        for chunk in result.chunks:
            print(f"    #{chunk.metadata['chunk_index']}  {chunk.score:.3f}  {chunk.metadata['heading']}")
    sentences = re.split(r"(?<=\.)\s+", " ".join(results[0].text.split()))
    print("  answer:", next(sentence for sentence in sentences if sentence.startswith("Card refunds")))


def main() -> None:
    client = Client()  # the embedded store under LICHEN_HOME
    client.delete_index_sync(INDEX_NAME)  # a fresh start on every run
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / "handbook"
        shutil.copytree(HANDBOOK, folder)

        report = client.sync_folder_sync(INDEX_NAME, folder, include="*.md")
        print("\n".join(report.lines()[:-1]))
        print(f"first sync: {len(report.added)} files added, {report.chunks_written} chunks")
        ask(client, f"Q: {QUESTION}")

        billing = folder / "billing.md"
        billing.write_text(
            billing.read_text().replace(
                "Card\nrefunds take 3-5 business days", "Card\nrefunds now take 1-2 business days"
            )
        )
        (folder / "shipping.md").unlink()
        report = client.sync_folder_sync(INDEX_NAME, folder, include="*.md")
        print("\n".join(report.lines()[:-1]))
        print(
            f"second sync: {len(report.changed)} changed, {len(report.deleted)} deleted, "
            f"{len(report.unchanged)} unchanged; {report.chunks_written} chunks embedded, "
            f"{report.chunks_deleted} removed"
        )
        ask(client, f"Q (after the edit): {QUESTION}")

        report = client.sync_folder_sync(INDEX_NAME, folder, include="*.md")
        print(f"third sync: {report.changes} changes; index version {client.get_index_sync(INDEX_NAME).version}")


if __name__ == "__main__":
    main()
