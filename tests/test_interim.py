"""The interim-transcript rule (``match_prepared``) and ``InterimQueries``, which
prepares transcripts in the background, one at a time, and says what to query with
(``lichen.interim``, which pipecat-lichen and livekit-plugins-lichen build on)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from lichen.interim import FILLER_WORDS, InterimQueries, match_prepared


@pytest.mark.parametrize(
    ("final", "prepared", "match", "query"),
    [
        # exact: the same words, case, punctuation and spacing aside (Lichen's own rule)
        ("Refund, please.", ["refund", "refund please"], "exact", "refund please"),
        ("How long until I get   the money back?", ["how long until i get the money back"], "exact", "how long until i get the money back"),
        ("ＲＥＦＵＮＤ please", ["refund please"], "exact", "refund please"),  # NFKC: full-width letters
        ("STRASSE closed?", ["straße closed"], "exact", "straße closed"),  # case folded
        # near: the same words once filler words are gone, wherever they stand
        ("Refund please, um.", ["refund please"], "near", "refund please"),
        ("Uh, refund please", ["refund please"], "near", "refund please"),
        ("refund please", ["refund uh please"], "near", "refund uh please"),
        ("Erm refund, hmm, please", ["um refund please"], "near", "um refund please"),
        # miss: different words
        ("Refund please now", ["refund please"], "miss", "Refund please now"),
        ("Refund", ["refund please"], "miss", "Refund"),
        ("refund policy", ["refund please"], "miss", "refund policy"),
        ("um", ["uh"], "miss", "um"),  # nothing but fillers is no near match
        # none: nothing was prepared
        ("Refund please", [], "none", "Refund please"),
    ],
)
def test_the_rule(final, prepared, match, query):
    found = match_prepared(final, prepared)
    assert (found.match, found.query, found.final) == (match, query, final)
    assert found.ready == (match in ("exact", "near"))


def test_the_newest_match_wins_and_exact_beats_near():
    assert match_prepared("refund please", ["refund um please", "refund please uh"]).query == "refund please uh"
    assert match_prepared("refund please", ["Refund please!", "refund please uh"]).query == "Refund please!"
    assert match_prepared("like refund", ["refund"], filler_words=FILLER_WORDS | {"like"}).match == "near"
    assert match_prepared("like refund", ["refund"]).match == "miss"


class FakePrepare:
    """Stands in for ``session.prepare``: records each text; ``hold`` blocks a text until
    released, ``fail`` makes one raise."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.holds: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()

    def hold(self, text: str) -> asyncio.Event:
        self.holds[text] = asyncio.Event()
        return self.holds[text]

    async def __call__(self, text: str) -> None:
        self.texts.append(text)
        if text in self.holds:
            await self.holds[text].wait()
        if text in self.fail:
            raise RuntimeError("model unavailable")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_each_interim_is_prepared_and_a_matching_final_is_ready():
    prepare = FakePrepare()
    interims = InterimQueries(prepare)
    for text in ["how", "how long", "how long until", "how long until payday"]:
        interims.heard(text)
        await settle()
    found = await interims.finish("How long until payday?")
    assert prepare.texts == ["how", "how long", "how long until", "how long until payday"]
    assert (found.match, found.query, found.ready, found.interims) == ("exact", "how long until payday", True, 4)


async def test_a_repeated_interim_is_prepared_once():
    prepare = FakePrepare()
    interims = InterimQueries(prepare)
    for text in ["refund", "Refund", "refund.", "refund please"]:
        interims.heard(text)
        await settle()
    assert prepare.texts == ["refund", "refund please"]


async def test_while_one_text_is_embedded_only_the_newest_waits():
    prepare = FakePrepare()
    release = prepare.hold("i")
    interims = InterimQueries(prepare)
    for text in ["i", "i was", "i was billed", "i was billed twice"]:
        interims.heard(text)
        await settle()
    assert prepare.texts == ["i"]  # the model is busy: the others wait, newest only
    release.set()
    await settle()
    assert prepare.texts == ["i", "i was billed twice"]
    assert (await interims.finish("I was billed twice.")).match == "exact"


async def test_a_matching_preparation_still_running_is_awaited():
    prepare = FakePrepare()
    release = prepare.hold("refund please")
    interims = InterimQueries(prepare)
    interims.heard("refund please")
    await settle()
    finishing = asyncio.ensure_future(interims.finish("Refund, please."))
    await settle()
    assert not finishing.done()  # it finishes sooner than embedding anew would
    release.set()
    found = await finishing
    assert (found.match, found.ready) == ("exact", True)


async def test_a_running_preparation_that_does_not_match_is_not_awaited():
    prepare = FakePrepare()
    prepare.hold("refund please")  # never released
    interims = InterimQueries(prepare)
    interims.heard("refund please")
    await settle()
    found = await asyncio.wait_for(interims.finish("Cancel my order"), 1)
    assert (found.match, found.query, found.ready) == ("miss", "Cancel my order", False)
    await interims.aclose()


async def test_a_failed_preparation_costs_only_the_embedding(caplog):
    prepare = FakePrepare()
    prepare.fail.add("refund please")
    interims = InterimQueries(prepare)
    with caplog.at_level(logging.ERROR, logger="lichen.interim"):
        interims.heard("refund please")
        await settle()
    found = await interims.finish("Refund please")
    assert (found.match, found.query, found.ready) == ("miss", "Refund please", False)
    assert "preparing a transcript failed" in caplog.text


async def test_final_segments_are_prepended_to_later_interims():
    prepare = FakePrepare()
    interims = InterimQueries(prepare)
    interims.heard("i was billed", final=True)  # the user paused: a final segment
    await settle()
    interims.heard("twice")
    await settle()
    interims.heard("twice this morning")
    await settle()
    interims.heard("twice this morning", final=True)
    await settle()
    assert prepare.texts == ["i was billed", "i was billed twice", "i was billed twice this morning"]
    found = await interims.finish("I was billed twice this morning.")
    assert (found.match, found.ready, found.interims) == ("exact", True, 2)


async def test_a_final_segment_no_interim_matched_is_prepared_but_not_a_match():
    prepare = FakePrepare()
    interims = InterimQueries(prepare)
    interims.heard("I want to cancel")
    await settle()
    interims.heard("I want a refund.", final=True)  # the STT revised its words
    await settle()
    found = await interims.finish("I want a refund.")
    assert (found.match, found.ready) == ("miss", True)  # ready: prepared as the final arrived
    assert prepare.texts == ["I want to cancel", "I want a refund."]


async def test_each_turn_starts_afresh():
    prepare = FakePrepare()
    interims = InterimQueries(prepare)
    interims.heard("refund please")
    await settle()
    assert (await interims.finish("refund please")).match == "exact"
    assert (await interims.finish("refund please")).match == "none"  # nothing heard this turn
    interims.heard("refund please")  # prepared again: a new turn, a new cache lifetime
    await settle()
    assert prepare.texts == ["refund please", "refund please"]


async def test_aclose_stops_a_running_preparation():
    prepare = FakePrepare()
    prepare.hold("refund")
    interims = InterimQueries(prepare)
    interims.heard("refund")
    await settle()
    interims.heard("refund please")  # waits for the model
    await interims.aclose()
    interims.heard("anything")  # after the call: ignored
    await settle()
    assert prepare.texts == ["refund"]
