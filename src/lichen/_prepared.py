"""Query vectors computed before the query is asked.

A voice agent knows most of a turn's question while the user is still speaking (interim
transcripts), a chat UI while the user is still typing. Embedding is most of a query's
time (1.7 ms of 2.7 at 100k documents, more once the model's weights have gone cold
between turns), so a caller who embeds the text early pays only the search when the
question comes: ``session.prepare(text)`` puts the vector here, and any query whose text
*normalises* to the same key takes it instead of embedding again.

The key is the text with its case, punctuation and spacing ignored (Unicode NFKC, case
folded, words joined by single spaces): a final transcript that differs from the last
interim one only in those ("refund, please." / "Refund please") is a hit. Anything else
is a miss and is embedded as usual. One bounded, least-recently-used store per model,
shared by every session and loaded index of that model in the process (the same text
gives the same vector whichever index it queries).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict

import numpy as np

__all__ = ["PreparedQueries", "normalise_query", "prepared_queries", "PREPARED_CAPACITY"]

#: Vectors kept per model (a 384-d vector is 1.5 KB: 256 of them are under 0.5 MB). A call
#: prepares a few interim transcripts per turn, so this spans many turns of many calls.
PREPARED_CAPACITY = 256

_WORDS = re.compile(r"\w+")


def normalise_query(text: str) -> str:
    """The key a query text is prepared under: NFKC, case folded, words only."""
    return " ".join(_WORDS.findall(unicodedata.normalize("NFKC", text).casefold()))


class PreparedQueries:
    """A thread-safe LRU of query vectors keyed by :func:`normalise_query`."""

    def __init__(self, capacity: int = PREPARED_CAPACITY) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def put(self, text: str, vector: np.ndarray) -> None:
        key = normalise_query(text)
        if not key:
            return  # nothing to match: a text of no words is never asked as a query of words
        vector = np.array(vector, dtype=np.float32)  # a private copy: callers may reuse theirs
        vector.flags.writeable = False
        with self._lock:
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)

    def get(self, text: str) -> np.ndarray | None:
        """The prepared vector for ``text``, or ``None`` (counted as a hit or a miss)."""
        key = normalise_query(text)
        with self._lock:
            vector = self._vectors.get(key) if key else None
            if vector is None:
                self.misses += 1
                return None
            self._vectors.move_to_end(key)
            self.hits += 1
            return vector

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


_by_model: dict[str, PreparedQueries] = {}
_by_model_lock = threading.Lock()


def prepared_queries(model_id: str) -> PreparedQueries:
    """The process-wide store of prepared query vectors for ``model_id``."""
    store = _by_model.get(model_id)
    if store is None:
        with _by_model_lock:
            store = _by_model.setdefault(model_id, PreparedQueries())
    return store
