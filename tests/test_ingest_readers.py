"""Readers, on real files built here: a PDF written by reportlab, a DOCX by python-docx,
HTML by hand, JSON and JSON Lines, text; and the errors for what cannot be read."""

from __future__ import annotations

import json
import sys

import docx
import pytest
from lichen import InvalidArgumentError
from lichen.ingest import SourceError, prepare
from lichen.ingest.readers import parse_records, read_bytes
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

PAGES = [
    ["Returns policy", "Items can be returned within thirty days of delivery."],
    ["Refunds", *[f"Refund line {i}: money goes back to the original card." for i in range(30)]],
    [],  # a blank page (a scanned image would look the same): no chunk
    ["Shipping", "We ship to every country except Antarctica."],
]


def write_pdf(path, pages=PAGES):
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 800
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return path


def by_id(prepared):
    return {doc.id: doc for doc in prepared.documents}


def test_pdf_chunks_are_located_by_page(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "policy.pdf")
    docs = prepare(["policy.pdf"], chunker="page").documents
    pages = [(d.metadata["locator_type"], d.metadata["locator_start"], d.metadata["locator_end"]) for d in docs]
    assert pages[0] == ("page", 1, 1) and pages[-1] == ("page", 4, 4)
    assert {p[1] for p in pages} == {1, 2, 4}  # the blank page gives nothing
    write_pdf(tmp_path / "scan.pdf", [[], []])  # no text layer at all, as a scan
    assert prepare(["scan.pdf"]).empty == ["scan.pdf"]
    page_two = [d for d in docs if d.metadata["locator_start"] == 2]
    assert len(page_two) >= 2  # 30 lines are more than 254 word pieces: cut within the page
    assert "Refund line 0:" in page_two[0].text and "Refund line 29:" in page_two[-1].text
    assert "Antarctica" in docs[-1].text
    assert [d.id for d in docs] == [f"policy.pdf#chunk-{i:04d}" for i in range(len(docs))]
    assert all(d.metadata["chunk_count"] == len(docs) for d in docs)
    # Default strategy for a PDF is the page strategy too.
    assert [d.text for d in prepare(["policy.pdf"]).documents] == [d.text for d in docs]
    # Another strategy over a PDF still names the pages each chunk spans.
    spans = prepare(["policy.pdf"], chunker="recursive").documents
    assert spans[0].metadata["locator_type"] == "page"
    assert all(d.metadata["locator_start"] <= d.metadata["locator_end"] for d in spans)


def test_docx_headings_become_heading_paths(tmp_path):
    document = docx.Document()
    document.add_heading("Returns", level=1)
    document.add_paragraph("Items can be returned within thirty days.")
    document.add_heading("Refunds", level=2)
    document.add_paragraph("Refunds go back to the original card.")
    table = document.add_table(rows=2, cols=2)
    for row, (left, right) in enumerate([("Card", "5 days"), ("Voucher", "1 day")]):
        table.cell(row, 0).text, table.cell(row, 1).text = left, right
    document.add_heading("Shipping", level=1)
    document.add_paragraph("We ship worldwide.")
    path = tmp_path / "help.docx"
    document.save(path)
    docs = prepare([path]).documents
    assert [(d.metadata.get("heading"), d.text) for d in docs] == [
        ("Returns", "Returns\n\nItems can be returned within thirty days."),
        (
            "Returns > Refunds",
            "Returns > Refunds\n\nRefunds go back to the original card.\n\nCard | 5 days\n\nVoucher | 1 day",
        ),
        ("Shipping", "Shipping\n\nWe ship worldwide."),
    ]
    assert docs[0].metadata["locator_type"] == "char"


HTML = """<!DOCTYPE html>
<html><head><title>Help</title><style>body { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/help">Help menu</a></nav>
<main>
<h1>Returns</h1>
<p>Items can be returned within <b>thirty</b> days &amp; refunded.</p>
<h2>Refunds</h2>
<ul><li>Card: 5 days</li><li>Voucher: 1 day</li></ul>
<table><tr><th>Method</th><th>Time</th></tr><tr><td>Card</td><td>5 days</td></tr></table>
<!-- a comment, not text -->
<pre>code   keeps   its spacing</pre>
</main>
<footer>Copyright 2026</footer>
</body></html>
"""


def test_html_visible_text_with_headings(tmp_path):
    (tmp_path / "help.html").write_text(HTML, encoding="utf-8")
    docs = prepare([tmp_path / "help.html"]).documents
    assert [d.metadata.get("heading") for d in docs] == ["Returns", "Returns > Refunds"]
    assert docs[0].text == "Returns\n\nItems can be returned within thirty days & refunded."
    refunds = docs[1].text
    assert "- Card: 5 days\n- Voucher: 1 day" in refunds
    assert "Method | Time\nCard | 5 days" in refunds
    assert "code keeps its spacing" in refunds  # whitespace runs fold like the rest of the page
    everything = " ".join(d.text for d in docs)
    for chrome in ("tracking", "color", "Home", "Copyright", "comment"):
        assert chrome not in everything


def test_json_and_json_lines_records_keep_their_ids_and_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [
        {"id": "faq-1", "text": "Refunds arrive within 5 business days.", "metadata": {"topic": "billing"}},
        {"text": "Reset your password from the sign-in page.", "lang": "en"},
    ]
    (tmp_path / "faq.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    (tmp_path / "faq.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    lines = by_id(prepare(["faq.jsonl"]))
    assert set(lines) == {"faq-1", "faq.jsonl#chunk-0001"}
    assert lines["faq-1"].metadata["topic"] == "billing"
    assert lines["faq.jsonl#chunk-0001"].metadata["lang"] == "en"  # other keys are metadata
    assert [(d.metadata["locator_type"], d.metadata["locator_start"]) for d in lines.values()] == [("line", 1), ("line", 3)]
    array = prepare(["faq.json"]).documents
    assert [(d.metadata["locator_start"], d.metadata["locator_end"]) for d in array] == [(2, 8), (9, 12)]
    assert array[0].id == "faq-1" and array[1].id == "faq.json#chunk-0001"


def test_text_files_drop_a_byte_order_mark_and_carriage_returns(tmp_path):
    (tmp_path / "notes.txt").write_bytes("\ufeffFirst line.\r\nSecond line.".encode())
    (doc,) = prepare([tmp_path / "notes.txt"]).documents
    assert doc.text == "First line.\nSecond line."
    assert (doc.metadata["locator_start"], doc.metadata["locator_end"]) == (0, len(doc.text))


def test_what_cannot_be_read_is_named_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    (tmp_path / "notext.json").write_text('[{"id": "a", "body": "no text key"}]', encoding="utf-8")
    (tmp_path / "good.md").write_text("# Fine\n\nThis one reads.", encoding="utf-8")
    names = ["latin1.txt", "broken.pdf", "image.png", "bad.jsonl", "notext.json", "missing.md", "good.md"]
    with pytest.raises(SourceError) as caught:
        prepare(names)
    reasons = {failure.source: failure.reason for failure in caught.value.failures}
    assert set(reasons) == set(names) - {"good.md"}
    assert "not UTF-8" in reasons["latin1.txt"]
    assert "not a readable PDF" in reasons["broken.pdf"]
    assert "unsupported file type '.png'" in reasons["image.png"]
    assert "line 2 is not JSON" in reasons["bad.jsonl"]
    assert "has no 'text'" in reasons["notext.json"]
    assert "no such file" in reasons["missing.md"]
    assert "6 of 7 inputs could not be read" in str(caught.value)
    assert isinstance(caught.value, InvalidArgumentError)


def test_a_missing_files_extra_is_named(tmp_path, monkeypatch):
    write_pdf(tmp_path / "policy.pdf")
    (tmp_path / "help.html").write_text(HTML, encoding="utf-8")
    for module in ("pypdfium2", "lxml", "lxml.html", "lxml.etree"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(SourceError) as caught:
        prepare([tmp_path / "policy.pdf", tmp_path / "help.html"])
    for failure in caught.value.failures:
        assert "needs the 'files' extra" in failure.reason and "pip install 'lichen[files]'" in failure.reason


def test_record_parsing_edges():
    assert [r.text for r in parse_records('{"text": "one"}')] == ["one"]
    assert [r.text for r in parse_records('{"text": "a"}\n{"text": "b"}')] == ["a", "b"]
    assert parse_records("[]") == []
    with pytest.raises(SourceError, match="'metadata' must be an object"):
        parse_records('[{"text": "x", "metadata": 3}]')
    with pytest.raises(SourceError, match="given both as a key and in 'metadata'"):
        parse_records('[{"text": "x", "topic": 1, "metadata": {"topic": 2}}]')
    with pytest.raises(SourceError, match="unexpected text after"):
        parse_records('[{"text": "x"}] trailing')
    with pytest.raises(SourceError, match="unsupported a file without a suffix|without a suffix"):
        read_bytes(b"", "", "README")
