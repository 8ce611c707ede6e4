"""Ingestion speed: syncing a folder of 1,000 markdown files, and the file readers side by
side.

``sync`` writes the msmarco-5k passages out as 1,000 markdown files (5 passages a file,
each under its own ``##`` heading, so 5,000 chunks), then times ``sync_directory`` into a
fresh ``SessionIndex``:

- cold (empty index): everything is read, chunked, embedded and stored;
- re-run with nothing changed: files are hashed and compared, nothing else (repeated);
- after editing 1% of the files (10) and deleting 1% (10): the incremental case.

Embedding is timed on its own (the session's ``embed_texts``), so the report shows how
much of a sync is the model and how much is ingestion; so is ``add_docs``' count of the
texts the model would truncate (``truncation_check_seconds``). "Cold" means a cold index:
the files were just written, so they are in the page cache.

``cli`` does the same through the ``lichen sync`` command, as a user runs it: a fresh
process each time, the embedded store in a temporary ``LICHEN_HOME``, the index read from
it and pushed back only when something changed. Each run's wall time (process start,
imports and model load included) is recorded next to the sync's own ``seconds.total``.

``readers`` compares the candidate libraries for the ``files`` extra on the same inputs:
PDF (pypdfium2, pypdf, pdfminer.six) on PDFs written here with reportlab (known text:
word recall) and on any ``--pdf`` given (reference: poppler's ``pdftotext``, if on the
PATH); DOCX (python-docx, docx2txt, mammoth) on a DOCX written here with python-docx;
HTML (lxml, beautifulsoup4 + lxml, selectolax, trafilatura) on the ``--html`` pages
(reference: the text of their ``<main>``). Candidates that are not installed are listed as
such. Lichen's own readers are timed on the same inputs.

Usage::

    python benchmarks/bench_sync.py sync --data ../shared/data/msmarco-5k --out benchmarks/results/sync.json
    python benchmarks/bench_sync.py cli --data ../shared/data/msmarco-5k --out benchmarks/results/sync_cli.json
    python benchmarks/bench_sync.py readers --pdf /usr/share/doc/*/*.pdf \\
        --html ~/.rustup/toolchains/*/share/doc/rust/html/book/ch*.html --out benchmarks/results/readers.json
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from _data import passage_text
from lichen import SessionIndex
from lichen.ingest import sync_directory

PER_FILE = 5


# ---------------------------------------------------------------------------- sync
def write_folder(data: Path, folder: Path, files: int) -> int:
    rows = [json.loads(line) for line in (data / "corpus.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    needed = files * PER_FILE
    if len(rows) < needed:
        raise SystemExit(f"{data} has {len(rows)} passages; {files} files need {needed}")
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        group = rows[n * PER_FILE : (n + 1) * PER_FILE]
        parts = [f"# Topic {n:04d}\n"]
        parts += [f"## Passage {row['_id']}\n\n{passage_text(row)}\n" for row in group]
        (folder / f"topic-{n:04d}.md").write_text("\n".join(parts), encoding="utf-8")
    return needed


class TimedSession(SessionIndex):
    """A session that adds up the seconds spent in its embedder."""

    embed_seconds = 0.0
    embedded = 0
    truncation_seconds = 0.0

    def embed_texts(self, texts):
        started = time.perf_counter()
        vectors = super().embed_texts(texts)
        self.embed_seconds += time.perf_counter() - started
        self.embedded += len(texts)
        return vectors

    def _find_truncated(self, docs):
        started = time.perf_counter()
        found = super()._find_truncated(docs)
        self.truncation_seconds += time.perf_counter() - started
        return found


def run_sync(index: TimedSession, folder: Path) -> dict:
    index.embed_seconds, index.embedded, index.truncation_seconds = 0.0, 0, 0.0
    started = time.perf_counter()
    report = sync_directory(index, folder)
    total = time.perf_counter() - started
    files = len(report.added) + len(report.changed) + len(report.unchanged)
    chunks = report.chunks_written
    out = {
        "seconds": round(total, 4),
        "files": files,
        "added": len(report.added), "changed": len(report.changed), "deleted": len(report.deleted),
        "unchanged": len(report.unchanged),
        "chunks_written": chunks, "chunks_deleted": report.chunks_deleted,
        "files_per_s": round(files / total, 1),
        "chunks_per_s": round(chunks / total, 1) if chunks else None,
        "embedding_seconds": round(index.embed_seconds, 4),
        "embedding_share": round(index.embed_seconds / total, 4) if total else None,
        "without_embedding_seconds": round(total - index.embed_seconds, 4),
        "files_per_s_without_embedding": round(files / (total - index.embed_seconds), 1),
        "truncation_check_seconds": round(index.truncation_seconds, 4),
        "stages": {key: round(value, 4) for key, value in report.seconds.items()},
    }
    return out


def bench_sync(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="lichen-sync-") as tmp:
        folder = Path(tmp) / "kb"
        passages = write_folder(args.data, folder, args.files)
        index = TimedSession("kb", progress=False)
        index.embed_texts(["warm the model up"])
        cold = run_sync(index, folder)
        print("cold", cold, flush=True)
        reruns = [run_sync(index, folder) for _ in range(args.reruns)]
        rerun = min(reruns, key=lambda r: r["seconds"])
        rerun["seconds_all"] = [r["seconds"] for r in reruns]
        print("re-run, nothing changed", rerun, flush=True)
        for n in range(0, args.files, 100):  # 1% edited: a sentence appended
            path = folder / f"topic-{n:04d}.md"
            path.write_text(path.read_text(encoding="utf-8") + "\nEdited: one more sentence.\n", encoding="utf-8")
        for n in range(50, args.files, 100):  # 1% deleted
            (folder / f"topic-{n:04d}.md").unlink()
        incremental = run_sync(index, folder)
        print("1% edited, 1% deleted", incremental, flush=True)
        after = run_sync(index, folder)
        print("then again", after, flush=True)
    return {
        "files": args.files, "passages": passages, "per_file": PER_FILE, "doc_count": index.doc_count,
        "cold": cold, "rerun_unchanged": rerun, "incremental_1pct": incremental, "after_incremental": after,
    }


# ---------------------------------------------------------------------------- lichen sync
def run_cli(folder: Path, home: Path) -> dict:
    lichen = Path(sys.executable).parent / "lichen"
    command = [str(lichen)] if lichen.exists() else [sys.executable, "-m", "lichen.cli"]
    env = {**os.environ, "LICHEN_HOME": str(home), "LICHEN_PROGRESS": "0"}
    started = time.perf_counter()
    done = subprocess.run([*command, "sync", str(folder), "--index", "kb", "--json"], capture_output=True, text=True,
                          env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lichen sync failed: {done.stderr}")
    report = json.loads(done.stdout)
    files = len(report["added"]) + len(report["changed"]) + report["unchanged"]
    return {
        "wall_seconds": round(wall, 4), "sync_seconds": report["seconds"]["total"], "files": files,
        "added": len(report["added"]), "changed": len(report["changed"]), "deleted": len(report["deleted"]),
        "unchanged": report["unchanged"], "chunks_written": report["chunks_written"],
        "chunks_deleted": report["chunks_deleted"], "version": report["version"],
        "files_per_s_wall": round(files / wall, 1), "chunks_per_s_wall": round(report["chunks_written"] / wall, 1),
        "stages": report["seconds"],
    }


def bench_cli(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="lichen-sync-cli-") as tmp:
        folder, home = Path(tmp) / "kb", Path(tmp) / "home"
        passages = write_folder(args.data, folder, args.files)
        cold = run_cli(folder, home)
        print("cold", cold, flush=True)
        reruns = [run_cli(folder, home) for _ in range(args.reruns)]
        rerun = min(reruns, key=lambda r: r["wall_seconds"])
        rerun["wall_seconds_all"] = [r["wall_seconds"] for r in reruns]
        rerun["sync_seconds_all"] = [r["sync_seconds"] for r in reruns]
        print("re-run, nothing changed", rerun, flush=True)
        for n in range(0, args.files, 100):
            path = folder / f"topic-{n:04d}.md"
            path.write_text(path.read_text(encoding="utf-8") + "\nEdited: one more sentence.\n", encoding="utf-8")
        for n in range(50, args.files, 100):
            (folder / f"topic-{n:04d}.md").unlink()
        incremental = run_cli(folder, home)
        print("1% edited, 1% deleted", incremental, flush=True)
        after = run_cli(folder, home)
        print("then again", after, flush=True)
    return {"files": args.files, "passages": passages, "per_file": PER_FILE, "cold": cold,
            "rerun_unchanged": rerun, "incremental_1pct": incremental, "after_incremental": after}


# ---------------------------------------------------------------------------- readers
def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.replace("\u00ad", ""))


def recall(reference: list[str], got: list[str]) -> float:
    matcher = difflib.SequenceMatcher(None, reference, got, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(reference))


def precision(reference: list[str], got: list[str]) -> float:
    return recall(got, reference)


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def dist_kib(name: str) -> int | None:
    """Installed size of one distribution (its own files, not its dependencies)."""
    try:
        files = metadata.distribution(name).files or []
    except metadata.PackageNotFoundError:
        return None
    total = 0
    for file in files:
        try:
            total += file.locate().stat().st_size
        except OSError:
            pass
    return total // 1024


def timed(function, data, repeat: int = 3):
    function(data)  # imports, caches
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(data)
        best = min(best, time.perf_counter() - started)
    return result, best


def make_pdfs(folder: Path, rows: list[str]) -> dict[str, list[str]]:
    """Two PDFs of known text: one column with headings, two columns."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    truth: dict[str, list[str]] = {}
    story, text = [], []
    for i, row in enumerate(rows[:160]):
        if i % 8 == 0:
            story.append(Paragraph(f"Section {i // 8 + 1}", styles["Heading2"]))
            text.append(f"Section {i // 8 + 1}")
        story.append(Paragraph(escape(row), styles["BodyText"]))
        text.append(row)
    SimpleDocTemplate(str(folder / "reportlab-1col.pdf"), pagesize=A4).build(story)
    truth["reportlab-1col.pdf"] = words(" ".join(text))
    width, height = A4
    column = (width - 2 * 50 - 20) / 2
    two = BaseDocTemplate(str(folder / "reportlab-2col.pdf"), pagesize=A4)
    two.addPageTemplates([PageTemplate(frames=[Frame(50, 50, column, height - 100), Frame(70 + column, 50, column, height - 100)])])
    two.build([Paragraph(escape(row), styles["BodyText"]) for row in rows[160:300]])
    truth["reportlab-2col.pdf"] = words(" ".join(rows[160:300]))
    return truth


def pdf_pypdfium2(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            pages.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return pages
    finally:
        document.close()


def pdf_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def pdf_pdfminer(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    return ["".join(el.get_text() for el in page if isinstance(el, LTTextContainer)) for page in extract_pages(io.BytesIO(data))]


def pdf_lichen(data: bytes) -> list[str]:
    from lichen.ingest.readers import read_bytes

    return read_bytes(data, ".pdf", "bench").pages or []


def docx_python_docx(data: bytes) -> str:
    from lichen.ingest.readers import read_bytes

    return read_bytes(data, ".docx", "bench").text


def docx_docx2txt(data: bytes) -> str:
    import docx2txt

    return docx2txt.process(io.BytesIO(data))


def docx_mammoth(data: bytes) -> str:
    import mammoth

    return mammoth.convert_to_markdown(io.BytesIO(data)).value


_SKIP = {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "head", "form", "button", "iframe"}
_BLOCK = {"p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "pre", "blockquote", "br", "dd", "dt",
          "dl", "h1", "h2", "h3", "h4", "h5", "h6"}


def html_lichen(data: bytes) -> str:
    from lichen.ingest.readers import read_bytes

    return read_bytes(data, ".html", "bench").text


def html_bs4(data: bytes) -> str:
    """The same rules as Lichen's lxml reader, through BeautifulSoup's tree."""
    from bs4 import BeautifulSoup, Comment, NavigableString

    soup = BeautifulSoup(data, "lxml")
    for element in soup(list(_SKIP)):
        element.decompose()
    out: list[str] = []

    def walk(element) -> None:
        for child in element.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                out.append(str(child))
                continue
            if child.name in _BLOCK:
                out.append("\n")
            walk(child)
            if child.name in _BLOCK:
                out.append("\n")

    walk(soup)
    return "".join(out)


def html_selectolax(data: bytes) -> str:
    """The same rules through selectolax's Lexbor tree."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data)
    tree.strip_tags(list(_SKIP))
    out: list[str] = []

    def walk(node) -> None:
        child = node.child
        while child is not None:
            if child.tag == "-text":
                out.append(child.text_content or "")
            elif not child.tag.startswith("-") and not child.tag.startswith("_"):
                if child.tag in _BLOCK:
                    out.append("\n")
                walk(child)
                if child.tag in _BLOCK:
                    out.append("\n")
            child = child.next

    walk(tree.root)
    return "".join(out)


def html_trafilatura(data: bytes) -> str:
    import trafilatura

    return trafilatura.extract(data.decode("utf-8"), output_format="markdown", include_tables=True, favor_recall=True) or ""


def html_main_text(data: bytes) -> str:
    import lxml.html

    main = lxml.html.fromstring(data).xpath("//main")
    return main[0].text_content() if main else ""


def compare(candidates, inputs, reference, kind) -> list[dict]:
    rows = []
    for name, (dist, function) in candidates.items():
        version = installed(dist) if dist else "lichen"
        if version is None:
            rows.append({"kind": kind, "library": name, "installed": False})
            continue
        seconds, recalls, precisions, units = 0.0, [], [], 0
        for label, data in inputs.items():
            result, took = timed(function, data)
            text = "\n".join(result) if isinstance(result, list) else result
            units += len(result) if isinstance(result, list) else 1
            seconds += took
            ref = reference.get(label)
            if ref:
                got = words(text)
                recalls.append(recall(ref, got))
                precisions.append(precision(ref, got))
        per = "ms_per_page" if kind == "pdf" else "ms_per_file"
        rows.append({
            "kind": kind, "library": name, "version": version, "installed": True, per: round(1000 * seconds / max(1, units), 3),
            "word_recall": round(statistics.mean(recalls), 4) if recalls else None,
            "word_precision": round(statistics.mean(precisions), 4) if precisions else None,
            "own_kib": dist_kib(dist) if dist else None,
        })
        print(rows[-1], flush=True)
    return rows


def bench_readers(args: argparse.Namespace) -> dict:
    rows = [passage_text(json.loads(line)) for line in (args.data / "corpus.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    ascii_rows = [row for row in rows if row.isascii()]
    results = []
    with tempfile.TemporaryDirectory(prefix="lichen-readers-") as tmp:
        folder = Path(tmp)
        truth = make_pdfs(folder, ascii_rows)
        pdfs = {path.name: path.read_bytes() for path in sorted(folder.glob("*.pdf"))}
        for path in args.pdf:
            pdfs[Path(path).name] = Path(path).read_bytes()
            if shutil.which("pdftotext"):
                done = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, check=True)
                truth[Path(path).name] = words(done.stdout.decode("utf-8", "replace"))
        results += compare({
            "lichen (pypdfium2)": (None, pdf_lichen),
            "pypdfium2": ("pypdfium2", pdf_pypdfium2),
            "pypdf": ("pypdf", pdf_pypdf),
            "pdfminer.six": ("pdfminer.six", pdf_pdfminer),
        }, pdfs, truth, "pdf")

        import docx

        document, text = docx.Document(), []
        for i, row in enumerate(rows[:600]):
            if i % 20 == 0:
                document.add_heading(f"Chapter {i // 20 + 1}", level=1)
                text.append(f"Chapter {i // 20 + 1}")
            document.add_paragraph(row)
            text.append(row)
        buffer = io.BytesIO()
        document.save(buffer)
        results += compare({
            "lichen (python-docx)": (None, docx_python_docx),
            "docx2txt": ("docx2txt", docx_docx2txt),
            "mammoth": ("mammoth", docx_mammoth),
        }, {"600 paragraphs": buffer.getvalue()}, {"600 paragraphs": words(" ".join(text))}, "docx")

    pages = {Path(path).name: Path(path).read_bytes() for path in args.html}
    if pages:
        reference = {label: words(html_main_text(data)) for label, data in pages.items()}
        results += compare({
            "lichen (lxml)": (None, html_lichen),
            "beautifulsoup4 + lxml": ("beautifulsoup4", html_bs4),
            "selectolax": ("selectolax", html_selectolax),
            "trafilatura": ("trafilatura", html_trafilatura),
        }, pages, reference, "html")
    return {"pdfs": sorted(pdfs), "html_pages": len(pages), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser("sync", help="sync a 1,000-file folder: cold, unchanged, 1%% edited")
    sync.add_argument("--data", type=Path, required=True, help="the msmarco-5k folder (corpus.jsonl)")
    sync.add_argument("--files", type=int, default=1000)
    sync.add_argument("--reruns", type=int, default=5)
    sync.add_argument("--out", type=Path)
    cli = sub.add_parser("cli", help="the same sync through `lichen sync`, a fresh process per run")
    cli.add_argument("--data", type=Path, required=True, help="the msmarco-5k folder (corpus.jsonl)")
    cli.add_argument("--files", type=int, default=1000)
    cli.add_argument("--reruns", type=int, default=5)
    cli.add_argument("--out", type=Path)
    readers = sub.add_parser("readers", help="PDF / DOCX / HTML libraries side by side")
    readers.add_argument("--data", type=Path, required=True, help="the msmarco-5k folder (text for generated files)")
    readers.add_argument("--pdf", nargs="*", default=[], help="real PDFs to compare on too")
    readers.add_argument("--html", nargs="*", default=[], help="real HTML pages (with a <main>) to compare on")
    readers.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = {"sync": bench_sync, "cli": bench_cli, "readers": bench_readers}[args.command](args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    result["environment"] = {
        "date": datetime.date.today().isoformat(), "commit": commit, "cpus": os.cpu_count(),
        "python": platform.python_version(), "onnxruntime": installed("onnxruntime"), "tokenizers": installed("tokenizers"),
        # Other processes share the 2 cores: the 1-minute load average before and after.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
