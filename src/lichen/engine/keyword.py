"""BM25 keyword ranking: the text analyzer and an incrementally maintained inverted index.

This module owns the keyword half of hybrid search. :func:`analyze` turns text into index
terms; :class:`KeywordIndex` keeps BM25 postings aligned with the engine's row positions
``0..n-1`` and follows the engine's row operations (append, replace, keep) without a full
rebuild.

Analysis
    case-folded, accent-folded (NFKD, combining marks dropped), split into runs of
    unicode letters and digits (``_`` and punctuation separate tokens), English stop words
    dropped, Snowball English stemming (PyStemmer's C implementation when installed).
    Stems are cached per distinct token: vocabularies are small next to token counts.

Scoring (Okapi BM25, the Lucene/BEIR variant)
    ``score(d, q) = sum over query terms t of idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))``
    with ``k1 = 1.2``, ``b = 0.75`` and ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``,
    where ``N`` is the number of rows, ``df`` the number of rows containing ``t``, ``|d|``
    the number of terms of the row after analysis and ``avgdl`` their mean. A term repeated
    in the query counts once per occurrence. Rows matching no query term score ``0.0``.

Layout
    Postings live in immutable *segments* (term-sorted CSC arrays: ``terms``, ``indptr``,
    ``rows``, ``tfs``), as in an LSM tree: ``append`` and ``replace`` each add a small
    segment, neighbours are merged geometrically so a row's postings are rewritten
    O(log n) times. ``owner[row]`` names the segment holding a row's current text; a
    replaced row's postings in its old segment become stale and are skipped at query time
    until a merge drops them. ``keep`` filters every segment in place, O(total postings).
    Scoring gathers the postings of the query terms only and accumulates them with
    ``np.bincount``: no Python loop over documents.

The class is not locked: the engine serialises calls under its own lock. The only shared
state is the stem cache, a dict whose single-key reads and writes are atomic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

import numpy as np

from .._errors import InvalidArgumentError

__all__ = ["KeywordIndex", "analyze", "STOP_WORDS", "BM25_K1", "BM25_B"]

BM25_K1: Final = 1.2
BM25_B: Final = 0.75

#: English stop words, matched after case and accent folding, before stemming. Close to
#: the NLTK/Snowball lists; contraction fragments ("s", "t", "don") are there because the
#: tokenizer splits on apostrophes.
STOP_WORDS: Final = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn d did didn do does
    doesn doing don down during each few for from further had hadn has hasn have haven
    having he her here hers herself him himself his how i if in into is isn it its itself
    just ll m me more most my myself no nor not now o of off on once only or other ought
    our ours ourselves out over own re s same shan she should shouldn so some such t than
    that the their theirs them themselves then there these they this those through to too
    under until up us ve very was wasn we were weren what when where which while who whom
    why will with won would wouldn y you your yours yourself yourselves
    """.split()
)

# Runs of letters and digits: ``\w`` minus the underscore.
_TOKEN_RE: Final = re.compile(r"[^\W_]+")

# Bound on the shared stem cache; cleared wholesale when exceeded (cheap, rare).
_STEM_CACHE_MAX: Final = 1_000_000
_stem_cache: dict[str, str] = {}


@lru_cache(maxsize=1)
def _unicode_token_re() -> re.Pattern[str]:
    """Letters/digits plus combining marks, so a decomposed word stays one token until its
    marks are dropped. Built on the first non-ASCII text (a one-off scan of the BMP)."""
    marks = [chr(c) for c in range(0x300, 0x10000) if unicodedata.category(chr(c))[0] == "M"]
    ranges: list[str] = []
    start = prev = ord(marks[0])
    for ch in marks[1:] + [chr(0x10FFFF)]:
        c = ord(ch)
        if c != prev + 1:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}" if start != prev else re.escape(chr(start)))
            start = c
        prev = c
    return re.compile(r"(?:[^\W_]|[" + "".join(ranges) + r"])+")


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import snowballstemmer  # picks PyStemmer's C stemmer when it is installed

    return snowballstemmer.stemmer("english")


def _tokens(text: str) -> list[str]:
    """Raw tokens of ``text``: case-folded, NFKD-decomposed when not ASCII, combining
    marks still attached (they are dropped by :func:`_term`, once per distinct token)."""
    text = text.casefold()
    if text.isascii():
        return _TOKEN_RE.findall(text)
    return _unicode_token_re().findall(unicodedata.normalize("NFKD", text))


def _term(token: str) -> str:
    """The index term of one raw token, ``""`` for a stop word. Cached."""
    term = _stem_cache.get(token)
    if term is None:
        folded = token
        if not token.isascii():
            folded = "".join(ch for ch in token if not unicodedata.combining(ch) and unicodedata.category(ch)[0] != "M")
        if not folded or folded in STOP_WORDS:
            term = ""
        else:
            term = _stemmer().stemWord(folded)
        if len(_stem_cache) >= _STEM_CACHE_MAX:
            _stem_cache.clear()
        _stem_cache[token] = term
    return term


def analyze(text: str) -> list[str]:
    """Index terms of ``text``, in order: case- and accent-folded, stop words removed,
    Snowball-stemmed. ``analyze("The Runners were running in Zürich")`` is
    ``["runner", "run", "zurich"]``."""
    return [t for t in map(_term, _tokens(text)) if t]


class _TokenIds(dict):  # type: ignore[type-arg]
    """Raw token -> term id (``-1`` for a stop word), filled on first sight."""

    __slots__ = ("vocab",)

    def __init__(self, vocab: dict[str, int]) -> None:
        super().__init__()
        self.vocab = vocab

    def __missing__(self, token: str) -> int:
        term = _term(token)
        if term:
            tid = self.vocab.get(term)
            if tid is None:
                tid = self.vocab[term] = len(self.vocab)
        else:
            tid = -1
        self[token] = tid
        return tid


class _Segment:
    """Immutable term-sorted postings: the postings of ``terms[i]`` are
    ``rows[indptr[i]:indptr[i+1]]`` with frequencies ``tfs[...]``."""

    __slots__ = ("sid", "terms", "indptr", "rows", "tfs", "stale")

    def __init__(self, sid: int, terms: np.ndarray, indptr: np.ndarray, rows: np.ndarray, tfs: np.ndarray) -> None:
        self.sid = sid
        self.terms = terms  # int32, sorted, unique
        self.indptr = indptr  # int64, len(terms) + 1
        self.rows = rows  # int32 row positions
        self.tfs = tfs  # float32 term frequencies
        self.stale = 0  # rows of this segment whose owner moved to a newer segment

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    def posting_terms(self) -> np.ndarray:
        """The term id of every posting (the CSC expanded)."""
        return np.repeat(self.terms, np.diff(self.indptr))

    def live(self, owner: np.ndarray) -> np.ndarray | None:
        """Bool mask of postings still current, or ``None`` when all are."""
        if not self.stale:
            return None
        return owner[self.rows] == self.sid


def _csc(term_ids: np.ndarray, rows: np.ndarray, tfs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group postings by term (stable, so row order within a term is kept)."""
    order = np.argsort(term_ids, kind="stable")
    term_ids, rows, tfs = term_ids[order], rows[order], tfs[order]
    if term_ids.shape[0] == 0:
        return np.empty(0, np.int32), np.zeros(1, np.int64), rows.astype(np.int32), tfs.astype(np.float32)
    starts = np.flatnonzero(np.r_[True, term_ids[1:] != term_ids[:-1]])
    indptr = np.r_[starts, term_ids.shape[0]].astype(np.int64)
    return term_ids[starts].astype(np.int32), indptr, rows.astype(np.int32), tfs.astype(np.float32)


class KeywordIndex:
    """BM25 over the texts of rows ``0..len-1``, kept in step with the engine's rows.

    >>> index = KeywordIndex()
    >>> index.append(["the cat sat", "dogs are running", "a running cat"])
    >>> index.scores("running cats").round(3).tolist()
    [0.47, 0.47, 0.94]
    >>> index.replace([0], ["nothing here"])      # upsert row 0
    >>> index.keep(np.array([True, False, True]))  # delete row 1; row 2 becomes row 1
    >>> len(index)
    2
    """

    def __init__(self, texts: Iterable[str] = (), *, k1: float = BM25_K1, b: float = BM25_B) -> None:
        self.k1 = float(k1)
        self.b = float(b)
        self._vocab: dict[str, int] = {}  # term -> id
        self._token_ids = _TokenIds(self._vocab)  # raw token -> term id, -1: stop word
        self._segments: list[_Segment] = []
        self._next_sid = 0
        self._owner = np.empty(0, np.int32)  # segment id holding each row's text, -1: none
        self._doc_len = np.empty(0, np.float64)  # terms per row after analysis
        self._total_len = 0.0
        # Rows deleted without compaction (see kill): they count in no statistic.
        self._dead = np.empty(0, np.bool_)
        self._dead_rows = 0
        texts = list(texts)
        if texts:
            self.append(texts)

    def __len__(self) -> int:
        return int(self._doc_len.shape[0])

    def __repr__(self) -> str:
        return f"KeywordIndex(rows={len(self)}, terms={len(self._vocab)}, segments={len(self._segments)})"

    # -- analysis into term ids -------------------------------------------------------

    def _analyze_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Term ids of all texts, flattened, and the number of raw tokens per text. Stop
        words are ``-1``. The per-token lookup runs in C (``map`` over a dict): Python
        code runs once per distinct new token, not per token."""
        flat: list[str] = []
        counts = np.empty(len(texts), np.int64)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgumentError(f"document text must be a string, got {type(text).__name__}")
            toks = _tokens(text)
            counts[i] = len(toks)
            flat.extend(toks)
        token_ids = self._token_ids
        ids = np.fromiter(map(token_ids.__getitem__, flat), dtype=np.int32, count=len(flat))
        return ids, counts

    def _build(self, texts: Sequence[str], rows: np.ndarray) -> tuple[_Segment | None, np.ndarray]:
        """A segment with the postings of ``texts`` placed at ``rows``, and their lengths."""
        m = len(texts)
        ids, counts = self._analyze_batch(texts)
        local = np.repeat(np.arange(m, dtype=np.int64), counts)
        keep = ids >= 0
        ids, local = ids[keep], local[keep]
        lengths = np.bincount(local, minlength=m).astype(np.float64)
        if ids.shape[0] == 0:
            return None, lengths
        # One sort groups postings by (term, row) and counts term frequencies.
        keys = ids.astype(np.int64) * m + local
        keys.sort()  # np.sort beats np.unique's argsort path several-fold on int64
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        tfs = np.diff(bounds)
        keys = keys[bounds[:-1]]
        term_ids = keys // m
        post_rows = rows[keys - term_ids * m]
        starts = np.flatnonzero(np.r_[True, term_ids[1:] != term_ids[:-1]])
        indptr = np.r_[starts, keys.shape[0]].astype(np.int64)
        segment = _Segment(
            self._next_sid,
            term_ids[starts].astype(np.int32),
            indptr,
            post_rows.astype(np.int32),
            tfs.astype(np.float32),
        )
        self._next_sid += 1
        return segment, lengths

    # -- row operations ---------------------------------------------------------------

    def append(self, texts: Sequence[str]) -> None:
        """Add rows ``len(self) .. len(self) + len(texts) - 1``."""
        texts = list(texts)
        if not texts:
            return
        n = len(self)
        segment, lengths = self._build(texts, np.arange(n, n + len(texts), dtype=np.int64))
        sid = segment.sid if segment is not None else -1
        self._owner = np.concatenate([self._owner, np.full(len(texts), sid, np.int32)])
        self._doc_len = np.concatenate([self._doc_len, lengths])
        self._dead = np.concatenate([self._dead, np.zeros(len(texts), np.bool_)])
        self._total_len += float(lengths.sum())
        if segment is not None:
            self._add_segment(segment)

    def replace(self, positions: Sequence[int], texts: Sequence[str]) -> None:
        """Overwrite the text of existing rows (an upsert). A position given twice takes
        its last text."""
        texts = list(texts)
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if pos.shape[0] != len(texts):
            raise InvalidArgumentError(f"replace got {pos.shape[0]} positions and {len(texts)} texts")
        if pos.shape[0] == 0:
            return
        n = len(self)
        if pos.min() < 0 or pos.max() >= n:
            raise InvalidArgumentError(f"replace position out of range for {n} rows")
        # Last occurrence wins: dedupe from the reversed order.
        uniq, first_rev = np.unique(pos[::-1], return_index=True)
        if uniq.shape[0] != pos.shape[0]:
            take = (pos.shape[0] - 1 - first_rev).tolist()
            pos, texts = pos[take], [texts[i] for i in take]
        segment, lengths = self._build(texts, pos)
        old = self._owner[pos]
        old = old[old >= 0]
        if old.shape[0]:
            sids, stale = np.unique(old, return_counts=True)
            moved = dict(zip(sids.tolist(), stale.tolist()))
            for seg in self._segments:
                seg.stale += moved.get(seg.sid, 0)
        self._total_len += float(lengths.sum() - self._doc_len[pos].sum())
        self._doc_len[pos] = lengths
        self._owner[pos] = segment.sid if segment is not None else -1
        if segment is not None:
            self._add_segment(segment)

    def kill(self, positions: Sequence[int] | np.ndarray) -> None:
        """Delete rows without moving the others (the engine compacts later, with
        :meth:`keep`): their postings go stale and they count in no statistic, so scores
        are those of an index without them."""
        pos = np.unique(np.asarray(positions, dtype=np.int64).reshape(-1))
        pos = pos[~self._dead[pos]] if pos.shape[0] else pos
        if pos.shape[0] == 0:
            return
        old = self._owner[pos]
        old = old[old >= 0]
        if old.shape[0]:
            sids, stale = np.unique(old, return_counts=True)
            moved = dict(zip(sids.tolist(), stale.tolist()))
            for seg in self._segments:
                seg.stale += moved.get(seg.sid, 0)
        self._total_len -= float(self._doc_len[pos].sum())
        self._doc_len[pos] = 0.0
        self._owner[pos] = -1
        self._dead[pos] = True
        self._dead_rows += int(pos.shape[0])

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows where ``mask`` is true, in order (a delete with compaction)."""
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (len(self),):
            raise InvalidArgumentError(f"keep needs a bool mask of shape ({len(self)},), got {mask.dtype}{mask.shape}")
        new_pos = np.cumsum(mask, dtype=np.int64) - 1
        segments: list[_Segment] = []
        for seg in self._segments:
            live = mask[seg.rows]
            stale = seg.live(self._owner)
            if stale is not None:
                live &= stale
            if live.all():
                seg.rows = new_pos[seg.rows].astype(np.int32)
                seg.stale = 0
                segments.append(seg)
                continue
            term_index = np.repeat(np.arange(seg.terms.shape[0]), np.diff(seg.indptr))
            counts = np.bincount(term_index[live], minlength=seg.terms.shape[0])
            rows = new_pos[seg.rows[live]].astype(np.int32)
            if rows.shape[0] == 0:
                continue
            has = counts > 0
            seg.terms = seg.terms[has]
            seg.indptr = np.r_[0, np.cumsum(counts[has])].astype(np.int64)
            seg.rows = rows
            seg.tfs = seg.tfs[live]
            seg.stale = 0
            segments.append(seg)
        self._segments = segments
        self._owner = self._owner[mask]
        self._doc_len = self._doc_len[mask]
        self._dead = self._dead[mask]
        self._dead_rows = int(self._dead.sum())
        self._total_len = float(self._doc_len.sum())
        if not segments:
            # Everything deleted: forget the vocabulary too.
            self._vocab.clear()
            self._token_ids.clear()

    # -- segments ---------------------------------------------------------------------

    _MERGE_RATIO: Final = 4

    def _add_segment(self, segment: _Segment) -> None:
        self._segments.append(segment)
        segs = self._segments
        # Keep sizes decreasing geometrically: log-many segments, O(log n) rewrites a row.
        while len(segs) >= 2 and segs[-2].size <= self._MERGE_RATIO * segs[-1].size:
            b = segs.pop()
            a = segs.pop()
            segs.append(self._merge(a, b))

    def _merge(self, a: _Segment, b: _Segment) -> _Segment:
        parts_t, parts_r, parts_f = [], [], []
        for seg in (a, b):
            t, r, f = seg.posting_terms(), seg.rows, seg.tfs
            live = seg.live(self._owner)
            if live is not None:
                t, r, f = t[live], r[live], f[live]
            parts_t.append(t)
            parts_r.append(r)
            parts_f.append(f)
        terms, indptr, rows, tfs = _csc(np.concatenate(parts_t), np.concatenate(parts_r), np.concatenate(parts_f))
        merged = _Segment(self._next_sid, terms, indptr, rows, tfs)
        self._next_sid += 1
        owner = self._owner
        owner[(owner == a.sid) | (owner == b.sid)] = merged.sid
        return merged

    # -- scoring ----------------------------------------------------------------------

    def query_terms(self, query: str) -> dict[int, int]:
        """Known term ids of ``query`` with their multiplicity."""
        out: dict[int, int] = {}
        vocab = self._vocab
        for term in analyze(query):
            tid = vocab.get(term)
            if tid is not None:
                out[tid] = out.get(tid, 0) + 1
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query``: float32, shape ``(len(self),)``."""
        n = len(self)
        live_rows = n - self._dead_rows  # N and avgdl count live rows only
        qterms = self.query_terms(query)
        if not qterms or live_rows == 0:
            return np.zeros(n, np.float32)
        q = np.fromiter(qterms.keys(), dtype=np.int32, count=len(qterms))
        qtf = np.fromiter(qterms.values(), dtype=np.float64, count=len(qterms))
        rows_parts: list[list[np.ndarray]] = [[] for _ in range(len(q))]
        tfs_parts: list[list[np.ndarray]] = [[] for _ in range(len(q))]
        owner = self._owner
        for seg in self._segments:
            idx = np.searchsorted(seg.terms, q)
            found = np.flatnonzero(idx < seg.terms.shape[0])
            for j in found.tolist():
                i = int(idx[j])
                if seg.terms[i] != q[j]:
                    continue
                lo, hi = seg.indptr[i], seg.indptr[i + 1]
                r, f = seg.rows[lo:hi], seg.tfs[lo:hi]
                if seg.stale:
                    live = owner[r] == seg.sid
                    r, f = r[live], f[live]
                rows_parts[j].append(r)
                tfs_parts[j].append(f)
        df = np.array([sum(p.shape[0] for p in parts) for parts in rows_parts], dtype=np.float64)
        if not df.any():
            return np.zeros(n, np.float32)
        idf = np.log1p((live_rows - df + 0.5) / (df + 0.5)) * qtf
        rows = np.concatenate([p for parts in rows_parts for p in parts])
        tfs = np.concatenate([p for parts in tfs_parts for p in parts]).astype(np.float64)
        weights = np.repeat(idf, df.astype(np.int64))
        k1, b = self.k1, self.b
        avgdl = self._total_len / live_rows
        norm = k1 * (1.0 - b + b * (self._doc_len[rows] / avgdl))
        contrib = weights * tfs * (k1 + 1.0) / (tfs + norm)
        return np.bincount(rows, weights=contrib, minlength=n).astype(np.float32)
