"""Chunking: the locator contract (a property test), sizes in the model's own tokens,
markdown heading paths, overlap, and custom strategies."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lichen import InvalidArgumentError
from lichen.ingest import Chunk, RecursiveChunker, as_chunker, chunk_text, token_measure
from lichen.ingest.chunking import markdown_sections
from lichen.ingest.readers import FileContent

MEASURE = token_measure()

# Texts with the boundaries chunkers cut at (blank lines, line breaks, sentence ends,
# spaces), markdown headings and fences, words far longer than a chunk, accents, CJK and
# control characters.
_PIECES = st.sampled_from(
    [
        "Refunds arrive in five days.", "Call us!", "Why?", "\n", "\n\n", "\n\n\n", "  ", " ", "\t",
        "# Returns\n", "## Refunds\n", "### Deep heading ###\n", "Title\n=====\n", "Sub\n---\n", "```\n# code\n```\n",
        "---\ntitle: x\n---\n", "café naïve façade", "東京は大きい。", "supercalifragilisticexpialidocious" * 3,
        "x" * 300, "word", "word word word word", "e.g. this", "3.14159", "…", "\u00a0", "- item\n", "1. step\n",
        "\x1b", "\x0c", "\r\n",  # control characters the tokenizer drops: pieces of no size
    ]
)
TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=30)), max_size=40).map("".join)


def _check_contract(text: str, chunks: list[Chunk], *, size: int, unit: str, overlap: int) -> None:
    previous_start = -1
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text  # the char locator contract
        assert chunk.text and not chunk.text[0].isspace() and not chunk.text[-1].isspace()
        assert chunk.start >= previous_start  # in source order
        previous_start = chunk.start
        embedded = chunk.document_text
        used = MEASURE.count([embedded])[0] if unit == "tokens" else len(embedded)
        assert used <= size, (used, size, embedded)
    if overlap == 0:
        for before, after in zip(chunks, chunks[1:]):
            assert before.end <= after.start


def _uncovered(text: str, chunks: list[Chunk]) -> str:
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    return "".join(c for i, c in enumerate(text) if not covered[i] and not c.isspace())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=TEXTS,
    strategy=st.sampled_from(["recursive", "sentence", "markdown", "page"]),
    unit=st.sampled_from(["tokens", "chars"]),
    size=st.integers(min_value=1, max_value=120),
    overlap_share=st.floats(min_value=0, max_value=0.9),
)
def test_every_chunk_is_its_span_of_the_text_and_fits(text, strategy, unit, size, overlap_share):
    overlap = int(size * overlap_share)
    chunks = chunk_text(text, strategy, size=size, overlap=overlap, unit=unit, kind="markdown" if strategy == "markdown" else "text")
    _check_contract(text, chunks, size=size, unit=unit, overlap=overlap)
    if strategy != "markdown":  # markdown leaves heading lines and front matter out of the text
        assert _uncovered(text, chunks) == ""
    again = chunk_text(text, strategy, size=size, overlap=overlap, unit=unit, kind="markdown" if strategy == "markdown" else "text")
    assert again == chunks  # deterministic: ids stay stable across runs


@settings(max_examples=100, deadline=None)
@given(pages=st.lists(TEXTS, min_size=1, max_size=5), size=st.integers(min_value=4, max_value=80))
def test_page_chunks_name_the_pages_they_cover(pages, size):
    joined = "\n\n".join(pages)
    content = FileContent("pages", joined, pages=pages)
    for strategy in ("page", "recursive"):
        chunks = as_chunker(strategy, size=size).chunk(content, MEASURE)
        _check_contract(joined, chunks, size=size, unit="tokens", overlap=0)
        assert _uncovered(joined, chunks) == ""
        for chunk in chunks:
            first, last = chunk.pages
            starts = content.page_starts
            assert starts[first - 1] <= chunk.start and chunk.end <= starts[last - 1] + len(pages[last - 1])
            if strategy == "page":
                assert first == last


def test_default_size_is_the_model_window_in_its_own_tokens():
    text = " ".join(f"word{i} refunds arrive quickly." for i in range(400))
    chunks = chunk_text(text)
    counts = MEASURE.count([c.text for c in chunks])
    assert MEASURE.ceiling == 254  # 256 less [CLS] and [SEP]
    assert max(counts) <= 254 and max(counts) > 200  # filled up, never over
    assert MEASURE.longer_than_window([c.text for c in chunks]) == []


def test_a_word_longer_than_a_chunk_is_cut_at_the_hard_ceiling():
    text = "antidisestablishmentarianism" * 3  # 84 characters, many word pieces
    assert MEASURE.count([text])[0] > 8
    chunks = chunk_text(text, size=4)
    assert len(chunks) > 2
    assert "".join(c.text for c in chunks) == text
    assert all(n <= 4 for n in MEASURE.count([c.text for c in chunks]))
    # Past 100 characters the model reads a word as one [UNK] piece: it fits, uncut.
    assert len(chunk_text("x" * 1000, size=4)) == 1
    by_chars = chunk_text("y" * 1120, size=100, unit="chars")
    assert [len(c.text) for c in by_chars] == [100] * 11 + [20]


def test_recursive_prefers_paragraphs_then_sentences():
    paragraphs = ["First paragraph one. It has two sentences.", "Second paragraph here.", "Third one is short."]
    text = "\n\n".join(paragraphs)
    # 9, 4 and 5 word pieces: the first paragraph whole, the next two packed together.
    assert [c.text for c in chunk_text(text, size=12)] == [paragraphs[0], "\n\n".join(paragraphs[1:])]
    # At 8 the first paragraph is cut at its sentence end, and the others no longer pack.
    assert [c.text for c in chunk_text(text, size=8)] == [
        "First paragraph one.", "It has two sentences.", paragraphs[1], paragraphs[2]
    ]
    sentences = chunk_text("One two three. Four five six. Seven eight nine.", "sentence", size=4)
    assert [c.text for c in sentences] == ["One two three.", "Four five six.", "Seven eight nine."]


def test_overlap_repeats_the_end_of_the_previous_chunk():
    text = " ".join(f"w{i}." for i in range(40))
    chunks = chunk_text(text, "sentence", size=12, overlap=4)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # they share text
        assert text[after.start : before.end].strip()


def test_markdown_chunks_start_with_their_heading_path():
    text = (
        "---\ntitle: Help\n---\nWelcome.\n\n# Returns\n\nReturn within 30 days.\n\n## Refunds\n\nRefunds take 5 days.\n\n"
        "```\n# a comment, not a heading\n```\n\nShipping\n========\n\nWe ship worldwide.\n"
    )
    chunks = chunk_text(text, "markdown", kind="markdown")
    assert [(c.heading, c.text) for c in chunks] == [
        (None, "Welcome."),
        ("Returns", "Return within 30 days."),
        ("Returns > Refunds", "Refunds take 5 days.\n\n```\n# a comment, not a heading\n```"),
        ("Shipping", "We ship worldwide."),
    ]
    assert chunks[2].document_text.startswith("Returns > Refunds\n\nRefunds take 5 days.")
    assert "title: Help" not in " ".join(c.text for c in chunks)  # front matter is metadata


def test_a_long_heading_path_is_shortened_not_allowed_to_crowd_out_the_text():
    text = "# " + "Very long heading words " * 20 + "\n\n## Refunds\n\nRefunds take five days to arrive.\n"
    (chunk,) = chunk_text(text, "markdown", kind="markdown", size=40)
    assert chunk.heading.endswith("> Refunds") and chunk.lead == "Refunds"
    assert MEASURE.count([chunk.document_text])[0] <= 40


def test_markdown_sections_skip_fenced_headings_and_setext_after_a_long_paragraph():
    text = "line one\nline two\n---\n~~~\n# no\n~~~\n# Yes\nbody\n"
    assert [path for _, _, path in markdown_sections(text)] == [None, "Yes"]


def test_custom_chunkers_callables_and_protocol_objects():
    text = "alpha beta. gamma delta. alpha beta."

    def by_sentence(value: str):
        return [piece.strip() for piece in value.split(".") if piece.strip()]

    chunks = chunk_text(text, by_sentence)
    assert [(c.start, c.end) for c in chunks] == [(0, 10), (12, 23), (25, 35)]  # the repeat is found after the first
    spans = chunk_text(text, lambda value: [(0, 5), (6, 10)])
    assert [c.text for c in spans] == ["alpha", "beta"]

    class EveryWord:
        fingerprint = "every-word-v1"

        def chunk(self, content, measure):
            out, position = [], 0
            for word in content.text.split():
                start = content.text.index(word, position)
                out.append(Chunk(word, start, start + len(word)))
                position = start + len(word)
            return out

    assert len(chunk_text(text, EveryWord())) == 6
    with pytest.raises(InvalidArgumentError, match="not in the text"):
        chunk_text(text, lambda value: ["omega"])
    with pytest.raises(InvalidArgumentError, match="returned span"):
        chunk_text(text, lambda value: [(5, 500)])


def test_sizes_beyond_the_window_and_bad_settings_are_refused():
    with pytest.raises(InvalidArgumentError, match="cut short when embedded"):
        chunk_text("text", size=300)
    with pytest.raises(InvalidArgumentError, match="overlap"):
        RecursiveChunker(size=10, overlap=10)
    with pytest.raises(InvalidArgumentError, match="unknown chunking strategy"):
        chunk_text("text", "paragraphs")
    with pytest.raises(InvalidArgumentError, match="unit"):
        RecursiveChunker(unit="words")
    assert RecursiveChunker(size=10).fingerprint != RecursiveChunker(size=11).fingerprint


def test_a_long_text_is_tokenized_in_blocks_with_the_same_pieces():
    text = "\n".join(f"Line {i}: refunds arrive in {i % 9} days, naïve café." for i in range(3000))
    assert len(text) > 100_000
    whole = list(MEASURE._tokenizer.encode(text, add_special_tokens=False).offsets)
    assert MEASURE.offsets(text) == whole


def test_windows_line_breaks_still_separate_paragraphs():
    text = "First paragraph here.\r\n\r\nSecond paragraph here."
    assert [c.text for c in chunk_text(text, size=5)] == ["First paragraph here.", "Second paragraph here."]
    with pytest.raises(InvalidArgumentError, match="overlap"):
        chunk_text(text, overlap=300)  # more than the model's 254
