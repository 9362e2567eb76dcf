"""The guard around the LLM writer: a failing draft is drafted again with another seed (sampling), and a second
failure sends the template writer's message, marked as such; both are counted, and the report says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastesim.conversation.grounding import GroundingCheck
from tastesim.conversation.metrics import writer_report
from tastesim.conversation.writers import FeedbackInput, LLMWriter, QueryInput, TemplateWriter, Writer, tidy
from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.cache import ReplyCache

SPEC = QueryInput("terse", "Thriller", ("gripping suspense", "clever plot twists", "dark comedy"))
GOOD = "gripping suspense, clever plot twists, dark comedy"
JUNK = "The answer to this question in one line is Awesome"


class ScriptedLLM:
    """Test double of LLMBackend: replies in turn from a script; records each call's seed and temperature."""

    name = "llamacpp"
    model = "scripted"

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.options: list[dict] = []

    def complete(self, prompt: str, **options: object) -> LLMReply:
        self.options.append(options)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return LLMReply(reply, 40, 8, 0.02)


def _writer(tmp_path: Path, backend: ScriptedLLM, guard: bool = True) -> Writer:
    return Writer(GroundingCheck(), LLMWriter(backend, ReplyCache(tmp_path / "r.sqlite"), seed=7), guard=guard)


def test_a_good_first_draft_is_sent(tmp_path: Path) -> None:
    backend = ScriptedLLM(GOOD)
    written = _writer(tmp_path, backend).query(SPEC)
    assert (written.text, written.source) == (GOOD, "llm") and written.raw.passed
    assert backend.options == [{"max_tokens": 48, "temperature": 0.0, "seed": 7, "stop": ["\n"]} | backend.options[0]]


def test_a_failed_draft_is_drafted_again_with_another_seed(tmp_path: Path) -> None:
    backend = ScriptedLLM(JUNK, GOOD)
    writer = _writer(tmp_path, backend)
    written = writer.query(SPEC)
    assert (written.text, written.source) == (GOOD, "llm-retry")
    assert written.raw.junk == "meta" and written.verdict.passed
    first, second = backend.options
    assert second["seed"] != first["seed"] and second["temperature"] > 0 == first["temperature"]
    assert (writer.retries, writer.fallbacks, writer.calls) == (1, 0, 2)


@pytest.mark.parametrize("second", [JUNK, "I'm glad you liked it!", LLMError("down")], ids=["junk", "role", "error"])
def test_a_second_failure_sends_the_template_message_marked_as_fallback(tmp_path: Path, second: object) -> None:
    backend = ScriptedLLM("a quiet evening", second)  # ungrounded, then junk again (or the service fails)
    writer = _writer(tmp_path, backend)
    written = writer.query(SPEC)
    assert written.source == "fallback" and written.text == TemplateWriter(0).query(SPEC)
    assert written.text not in (JUNK, "a quiet evening") and not written.raw.passed and written.verdict.passed
    assert (writer.retries, writer.fallbacks) == (1, 1)
    report = writer_report(writer, interactions=1)
    assert report["fallback_rate"] == 1.0 and report["sources"] == {"fallback": 1}
    assert report["raw_grounded_rate"] == 0.0 and report["grounded_rate"] == 1.0  # raw and sent, both reported
    assert report["raw_problems"] == {"ungrounded": 1}


def test_without_the_guard_the_first_draft_is_sent_and_counted_as_junk(tmp_path: Path) -> None:
    writer = _writer(tmp_path, ScriptedLLM(JUNK), guard=False)
    written = writer.query(SPEC)
    assert (written.text, written.source) == (JUNK, "llm")
    report = writer_report(writer, interactions=1)
    assert report["junk_rate"] == report["raw_junk_rate"] == 1.0 and report["fallback_rate"] == 0.0


def test_feedback_is_guarded_too(tmp_path: Path) -> None:
    backend = ScriptedLLM("I'm so glad you're here to help me with my writing projects.", "Too slow, the pacing drags.")
    writer = _writer(tmp_path, backend)
    written = writer.feedback(FeedbackInput("negative", ("slow pacing",)))
    assert written.source == "llm-retry" and written.raw.junk == "role"
    assert [entry.kind for entry in writer.log] == ["feedback"]


def test_a_started_reply_is_part_of_the_message(tmp_path: Path) -> None:
    backend = ScriptedLLM("dark comedy and witty dialogue!")  # the accept prompt starts "Yes, I love the"
    written = _writer(tmp_path, backend).feedback(FeedbackInput("accept", ("dark comedy", "witty dialogue")))
    assert written.text == "Yes, I love the dark comedy and witty dialogue!" and written.source == "llm"


@pytest.mark.parametrize(
    ("text", "truncated", "expected"),
    [
        (
            "action, war story, cinematography; suspense; cinematography; suspense; cinematography; susp",
            True,
            ("action, war story, cinematography; suspense", False),
        ),
        ("need a comedy w comedy w comedy w comedy w comedy w co", True, ("need a comedy w", False)),
        ("a thriller with gripping suspense", False, ("a thriller with gripping suspense", False)),
        ("a thriller with gripping suspense and a long", True, ("a thriller with gripping suspense and a long", True)),
    ],
)
def test_tidy_cuts_loops_off_drafts(text: str, truncated: bool, expected: tuple[str, bool]) -> None:
    assert tidy(text, truncated) == expected
