"""The grounding check: coverage (words, then MiniLM similarity at a threshold tuned on hand-labelled pairs),
junk, length and paraphrase bands; judged against recorded real replies of the embedded model, labelled by hand
(``tests/fixtures/writer/``; ``record.py`` there records them again)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastesim.conversation.grounding import (
    PARAPHRASE_BAND,
    SIMILARITY_THRESHOLD,
    GroundingCheck,
    _carried_by_words,
    _words,
    tune_threshold,
)

HERE = Path(__file__).parent / "fixtures" / "writer"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def check(minilm) -> GroundingCheck:
    return GroundingCheck(minilm.embed)


def test_the_similarity_threshold_is_the_one_tuned_on_the_labelled_pairs(check: GroundingCheck) -> None:
    pairs = _jsonl("coverage.jsonl")
    assert sum(p["carried"] for p in pairs) >= 40 and sum(not p["carried"] for p in pairs) >= 40
    # Similarity decides only the pairs the words do not settle, so it is tuned on those.
    hard = [p for p in pairs if not _carried_by_words(p["reason"], _words(p["message"]))]
    sims = [check.similarity(p["reason"], p["message"]) for p in hard]
    threshold, accuracy = tune_threshold(sims, [p["carried"] for p in hard])
    assert threshold == pytest.approx(SIMILARITY_THRESHOLD, abs=0.005) and accuracy >= 0.8
    whole = [check.carries(p["reason"], p["message"]) == p["carried"] for p in pairs]
    assert sum(whole) / len(whole) >= 0.85  # words and similarity together, on every labelled pair (0.877)


def test_words_never_carry_a_reason_the_labels_say_is_absent() -> None:
    wrong = [
        p for p in _jsonl("coverage.jsonl") if not p["carried"] and _carried_by_words(p["reason"], _words(p["message"]))
    ]
    assert wrong == []  # "a light-hearted comedy" does not carry "dark comedy"


def test_tune_threshold_takes_the_middle_of_the_best_interval() -> None:
    threshold, accuracy = tune_threshold([0.1, 0.2, 0.3, 0.7, 0.8], [False, False, False, True, True])
    assert accuracy == 1.0 and threshold == 0.5


@pytest.mark.parametrize(
    ("text", "junk"),
    [
        ('The answer to this question in one line is "Awesome', "truncated"),
        ("The answer to this question in one line is Awesome", "meta"),
        ("I'm so glad you're here and help me with my creative writing projects. What do you have to share?", "role"),
        ("Movie fan would like to know what movies they can watch tonight at 10pm in the city...", "echo"),
        ("Request: a thriller with suspense", "echo"),
        ("I'd love a thriller with gripping suspense, and", "truncated"),
        ("dark comedy, dark comedy, dark comedy, dark comedy", "loop"),
        ("welp wowwwwwwwwwwwwww", "loop"),
        ("I recommend a thriller with gripping suspense.", "role"),
        ("Any good book with gripping suspense?", "domain"),
        ("", "empty"),
        ("?!", "empty"),
        ("a@@@ b### c$$$ d%%% e&&&", "garbled"),
        ("I'd love a thriller with gripping suspense and clever plot twists.", ""),
        ("a novel idea: dark comedy", ""),  # "novel" is not another domain when the reasons say it (below)
    ],
)
def test_junk(text: str, junk: str) -> None:
    verdict = GroundingCheck().check(text, ["gripping suspense", "novel"], "natural")
    assert verdict.junk == junk


def test_coverage_needs_half_the_reasons_or_one_by_style(check: GroundingCheck) -> None:
    reasons = ["gripping suspense", "clever plot twists", "beautiful cinematography"]
    one, words = "a thriller with gripping suspense", GroundingCheck()
    assert words.check(one, reasons, "natural").covered == 1 and not words.check(one, reasons, "natural").grounded
    assert words.check(one, reasons, "vague").grounded  # a vague request names one thing
    two = "a tense thriller with a twisty plot and gorgeous visuals"  # no reason word for word
    verdict = check.check(two, reasons, "natural")
    assert verdict.covered >= 2 and verdict.passed
    assert GroundingCheck().check(two, reasons, "natural").covered < verdict.covered  # words alone carry less


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Could you find me a suspenseful thriller with a twisty, clever plot?", True),
        ("I'd like a thriller with gripping suspense and clever plot twists.", False),  # a copy, not a paraphrase
        ("Any cheerful musical for kids?", False),  # another request
    ],
)
def test_paraphrase_band(check: GroundingCheck, text: str, ok: bool) -> None:
    previous = "I'd like a thriller with gripping suspense and clever plot twists."
    verdict = check.check(text, ["gripping suspense", "clever plot twists"], "paraphrase", previous=previous)
    assert verdict.paraphrase_ok is ok
    if verdict.paraphrase is not None and ok:
        assert PARAPHRASE_BAND[0] <= verdict.paraphrase <= PARAPHRASE_BAND[1]


def test_length_band() -> None:
    long = "a thriller with gripping suspense set in " + " ".join(f"city{i}" for i in range(30))
    verdict = GroundingCheck().check(long, ["gripping suspense"], "terse")
    assert verdict.grounded and not verdict.length_ok and verdict.problem == "length"


def test_the_check_agrees_with_hand_labels_on_recorded_real_replies(check: GroundingCheck) -> None:
    replies = _jsonl("replies.jsonl")
    labels = {(r["text"], r["style"]): r["good"] for r in _jsonl("labels.jsonl")}
    assert {r["prompts"] for r in replies} == {"v1", "v2"}  # replies of the first prompts and of the current ones
    judged = []
    for reply in replies:
        good = labels[(reply["text"], reply["style"])]  # every recorded reply is labelled (record.py lists new ones)
        verdict = check.check(reply["text"], reply["reasons"], reply["style"], previous=reply.get("previous", ""),
                              truncated=reply["truncated"])  # fmt: skip
        judged.append((verdict.passed, good, reply["text"]))
    goods = [j for j in judged if j[1]]
    bads = [j for j in judged if not j[1]]
    assert len(goods) >= 10 and len(bads) >= 10
    agree = sum(passed == good for passed, good, _ in judged) / len(judged)
    missed_junk = [text for passed, good, text in bads if passed]
    assert agree >= 0.85, [(p, g, t) for p, g, t in judged if p != g]
    assert len(missed_junk) / len(bads) <= 0.1, missed_junk  # junk passing as grounded is the costly mistake
