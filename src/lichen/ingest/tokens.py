"""How big a piece of text is: in the embedding model's own word pieces, or in characters.

Chunk sizes are counted in the model's tokens by default, so a chunk that fits never loses
its tail when it is embedded (the built-in model reads 256 word pieces, two of which are
its ``[CLS]`` and ``[SEP]`` markers). The tokenizer is the model's own ``tokenizer.json``,
read here without the truncation and padding the embedder applies, so lengths past the
window are counted rather than capped.

A :class:`Measure` sizes a whole text once (:meth:`Measure.sizer`) and then answers for any
span of it in O(log n): chunkers try many spans of one text, and tokenizing each again
would be quadratic.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._errors import InvalidArgumentError, ModelUnavailableError

__all__ = ["Measure", "Sizer", "TokenMeasure", "CharMeasure", "token_measure", "DEFAULT_MODEL_ID"]

DEFAULT_MODEL_ID = "lichen-minilm"


class Sizer(Protocol):
    """Sizes of the spans of one text, and where to cut a span that is too big."""

    def size(self, start: int, end: int) -> int:
        """Units of ``text[start:end]``."""

    def cuts(self, start: int, end: int, limit: int) -> list[int]:
        """Offsets strictly inside ``(start, end)`` that cut the span into pieces of at
        most ``limit`` units each: the hard ceiling when no separator is left."""

    def inside_unit(self, position: int) -> bool:
        """Whether cutting at ``position`` would split one unit in two (a separator the
        tokenizer reads as part of a word: a control character it drops)."""


@runtime_checkable
class Measure(Protocol):
    """A unit of chunk size: ``"tokens"`` of one model, or ``"chars"``."""

    unit: str
    #: What identifies the measure in a chunking fingerprint (e.g. ``"tokens:lichen-minilm"``).
    name: str
    #: The largest chunk that embeds whole (``None``: no ceiling, as for characters).
    ceiling: int | None

    def sizer(self, text: str) -> Sizer: ...

    def count(self, texts: Sequence[str]) -> list[int]:
        """Units of each text on its own."""


class _CharSizer:
    def size(self, start: int, end: int) -> int:
        return max(0, end - start)

    def cuts(self, start: int, end: int, limit: int) -> list[int]:
        return list(range(start + limit, end, limit))

    def inside_unit(self, position: int) -> bool:
        return False


class CharMeasure:
    """Sizes in characters (Python ``str`` code points)."""

    unit = "chars"
    name = "chars"
    ceiling: int | None = None

    def sizer(self, text: str) -> Sizer:
        return _CharSizer()

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text) for text in texts]


class _TokenSizer:
    """Token spans of one text, as character offsets, in order and non-overlapping."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self._starts = [start for start, _ in offsets]
        self._ends = [end for _, end in offsets]

    def size(self, start: int, end: int) -> int:
        """Tokens lying wholly inside the span. Spans cut at whitespace or at token starts
        (all a chunker makes) contain whole tokens only, so this is exact for them."""
        first = bisect.bisect_left(self._starts, start)
        stop = bisect.bisect_right(self._ends, end)
        return max(0, stop - first)

    def inside_unit(self, position: int) -> bool:
        before = bisect.bisect_left(self._starts, position) - 1  # the last token starting before
        return before >= 0 and self._ends[before] > position

    def cuts(self, start: int, end: int, limit: int) -> list[int]:
        first = bisect.bisect_left(self._starts, start)
        stop = bisect.bisect_right(self._ends, end)
        return [self._starts[i] for i in range(first + limit, stop, limit) if start < self._starts[i] < end]


class TokenMeasure:
    """Sizes in the word pieces of a model's tokenizer, special tokens excluded.

    ``ceiling`` is the model's window less its special tokens (254 for the built-in
    model): the most a chunk may hold and still be embedded whole."""

    unit = "tokens"

    def __init__(self, tokenizer_file: Path, max_tokens: int, *, model_id: str) -> None:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises its own Exception type for bad files
            raise ModelUnavailableError(f"cannot read the tokenizer of model {model_id!r} ({tokenizer_file}): {exc}") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        processor = tokenizer.post_processor
        self.special_tokens = processor.num_special_tokens_to_add(False) if processor is not None else 0
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.ceiling: int = max_tokens - self.special_tokens
        self.name = f"tokens:{model_id}"

    def sizer(self, text: str) -> Sizer:
        return _TokenSizer(self.offsets(text))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the text's word pieces (no special tokens, no truncation).

        A long text is tokenized in blocks cut at line breaks, as one batch (the tokenizer
        runs a batch on every core): a BERT tokenizer splits words at whitespace first, so
        the pieces are the same as the whole text's."""
        if len(text) <= _BLOCK:
            return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)
        starts = [0]
        while len(text) - starts[-1] > _BLOCK:
            cut = text.find("\n", starts[-1] + _BLOCK)
            if cut < 0:
                break
            starts.append(cut + 1)
        blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
        encodings = self._tokenizer.encode_batch(blocks, add_special_tokens=False)
        return [(a + shift, b + shift) for shift, encoding in zip(starts, encodings) for a, b in encoding.offsets]

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # Counting needs no offsets: the fast batch (tokenizers >= 0.20) skips them (~12% less).
        encode = getattr(self._tokenizer, "encode_batch_fast", None) or self._tokenizer.encode_batch
        encodings = encode(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def longer_than_window(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """``(position, tokens)`` of each text the model would truncate: more than
        ``max_tokens`` word pieces with its special tokens. For ``add_docs``' warning."""
        return [(i, n + self.special_tokens) for i, n in enumerate(self.count(texts)) if n > self.ceiling]


#: Texts longer than this (in characters) are tokenized in blocks, in parallel.
_BLOCK = 16_384
_measures: dict[str, TokenMeasure] = {}
_lock = threading.Lock()


def token_measure(model_id: str = DEFAULT_MODEL_ID) -> TokenMeasure:
    """The token measure of an embedding model (built-in or built with ``lichen models
    build``), loaded once per process. Reads only the tokenizer, not the network weights."""
    measure = _measures.get(model_id)
    if measure is not None:
        return measure
    if model_id == "custom":
        raise InvalidArgumentError(
            'model_id="custom" has no tokenizer to count chunk sizes with: chunk in characters (unit="chars")'
        )
    from ..models import list_models

    info = next((info for info in list_models() if info.model_id == model_id), None)
    if info is None or not (info.path / "tokenizer.json").is_file():
        raise ModelUnavailableError(f"unknown or missing model {model_id!r}: no tokenizer to count chunk sizes with")
    with _lock:
        if model_id not in _measures:
            _measures[model_id] = TokenMeasure(info.path / "tokenizer.json", info.max_tokens, model_id=model_id)
        return _measures[model_id]
