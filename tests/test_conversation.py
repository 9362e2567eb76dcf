"""Query writers (styles, determinism, counting, the LLM writer through the reply cache), recall from working
memory, the title guard, and the conversation section of a scenario."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

from tastesim.conversation.recall import strongest_likes
from tastesim.conversation.session import scrub_titles
from tastesim.conversation.writers import STYLES, FeedbackInput, LLMWriter, QueryInput, QueryWriter, TemplateWriter
from tastesim.llm.backend import LLMError, LLMReply
from tastesim.llm.cache import ReplyCache
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory
from tastesim.prompts import load_prompt

REASONS = ("gripping suspense", "clever plot twists", "dark humour")


def _inputs(style: str) -> QueryInput:
    previous = TemplateWriter().query(QueryInput("natural", "Thriller", REASONS))
    return QueryInput(style, "Thriller", REASONS, previous if style == "paraphrase" else "")  # type: ignore[arg-type]


def test_every_style_writes_distinct_text() -> None:
    writer = TemplateWriter()
    texts = {style: writer.query(_inputs(style)) for style in STYLES}
    assert len(set(texts.values())) == len(STYLES), texts
    assert all(t.strip() for t in texts.values())
    # The vague style says less than the natural one; the terse one is a comma list.
    assert texts["terse"].count(",") >= 2
    assert sum(r in texts["vague"] for r in REASONS) < sum(r in texts["natural"] for r in REASONS)
    assert texts["paraphrase"] != _inputs("paraphrase").previous


def test_paraphrase_reads_the_previous_turn_and_first_turn_has_a_fallback() -> None:
    writer = TemplateWriter()
    first = writer.query(QueryInput("paraphrase", "Comedy", REASONS))
    again = writer.query(QueryInput("paraphrase", "Comedy", REASONS, previous="I'm looking for a comedy movie."))
    assert first and again and first != again
    assert "comedy" in again.lower()


def test_template_writer_is_deterministic_and_seeded() -> None:
    a, b = TemplateWriter(seed=1), TemplateWriter(seed=1)
    for style in STYLES:
        assert a.query(_inputs(style)) == b.query(_inputs(style))
    noisy = [TemplateWriter(seed=s).query(_inputs("noisy")) for s in range(8)]
    assert len(set(noisy)) > 1  # the noise depends on the seed, not on ambient randomness
    for kind in ("accept", "reject", "pass"):
        spec = FeedbackInput(kind, "slow pacing")  # type: ignore[arg-type]
        assert a.feedback(spec) == b.feedback(spec) and "slow pacing" in a.feedback(spec)


def test_template_writer_writes_every_text_itself() -> None:
    writer = TemplateWriter()
    assert isinstance(writer, QueryWriter)
    texts = asyncio.run(_ask_twice(writer, _inputs("terse")))
    assert texts[0] == texts[1] and writer.requests == writer.calls == 2 and writer.fallbacks == 0


async def _ask_twice(writer: QueryWriter, spec: QueryInput) -> list[str]:
    return [await writer.aquery(spec), await writer.aquery(spec)]


class CountingLLM:
    """Test double of LLMBackend: numbered one-line replies; records the threads it was called on."""

    name = "llamacpp"

    def __init__(self, model: str = "double", reply: str | None = None) -> None:
        self.model = model
        self.reply = reply
        self.calls = 0
        self.threads: set[str] = set()

    def complete(self, prompt: str, **options: object) -> LLMReply:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        return LLMReply(f" text {self.calls} " if self.reply is None else self.reply, 5, 3, 0.01)


def test_llm_writer_asks_once_per_distinct_prompt_through_the_reply_cache(tmp_path: Path) -> None:
    backend = CountingLLM()
    writer = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))
    population = [QueryInput(STYLES[i % 2], "Drama", REASONS[: 1 + i % 3]) for i in range(1000)]
    texts = [writer.query(q) for q in population]
    assert writer.requests == 1000 and writer.calls == backend.calls == 6  # 2 styles x 3 reason sets
    assert texts[0] == writer.query(population[0]) == "text 1"  # same input, same text; spaces trimmed
    writer.feedback(FeedbackInput("reject", "slow pacing"))
    writer.feedback(FeedbackInput("reject", "slow pacing"))
    assert backend.calls == writer.calls == 7 and writer.fallbacks == 0
    again = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))  # the next run: all cached
    assert again.query(population[0]) == "text 1" and again.calls == 0 and backend.calls == 7
    other = LLMWriter(CountingLLM(model="other"), ReplyCache(tmp_path / "llm-replies.sqlite"))
    assert other.query(population[0]) == "text 1" and other.calls == 1  # another model never shares texts


def test_concurrent_misses_of_one_text_make_one_call_off_the_event_loop(tmp_path: Path) -> None:
    backend = CountingLLM()
    writer = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))
    spec = QueryInput("terse", "Drama", REASONS)

    async def sessions() -> list[str]:
        return await asyncio.gather(*(writer.aquery(spec) for _ in range(50)))

    try:
        texts = asyncio.run(sessions())
    finally:
        writer.close()
    assert set(texts) == {"text 1"} and backend.calls == writer.calls == 1 and writer.requests == 50
    assert backend.threads == {"tastesim-writer_0"}  # the one worker thread, never the event loop's


class DownLLM(CountingLLM):
    def complete(self, prompt: str, **options: object) -> LLMReply:
        super().complete(prompt, **options)
        raise LLMError("cannot reach Ollama")


@pytest.mark.parametrize("backend", [DownLLM(), CountingLLM(reply="\n")], ids=["failed call", "empty reply"])
def test_llm_writer_falls_back_to_the_template(backend: CountingLLM, tmp_path: Path) -> None:
    writer = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))
    spec = _inputs("natural")
    assert writer.query(spec) == TemplateWriter().query(spec)
    kind = FeedbackInput("pass", "slow pacing")
    assert writer.feedback(kind) == TemplateWriter().feedback(kind)
    assert writer.fallbacks == 2 and writer.calls == backend.calls == 2


def test_strongest_likes_prefers_the_category_then_strength_and_recency() -> None:
    memory = WorkingMemory(1, 6)
    drama, comedy = 0b01, 0b10
    rows = [  # reason, polarity, strength, last step, category
        (10, LIKE, 5.0, 0, comedy),
        (11, LIKE, 2.0, 4, drama),
        (12, LIKE, 3.0, 0, drama),
        (13, DISLIKE, 9.0, 4, drama),
        (14, LIKE, 2.0, 0, drama),
    ]
    for slot, (reason, polarity, strength, last, mask) in enumerate(rows):
        memory.reason[0, slot], memory.polarity[0, slot] = reason, polarity
        memory.strength[0, slot], memory.last[0, slot], memory.category_mask[0, slot] = strength, last, mask
    picked = memory.reason[0, strongest_likes(memory, 0, drama, k=4)].tolist()
    # In-category likes first: 11 (2.0, recent) beats 12 (3.0 but 4 steps old: 3/5) and 14; then comedy.
    assert picked == [11, 12, 14, 10]
    assert 13 not in memory.reason[0, strongest_likes(memory, 0, drama, k=10)]
    assert strongest_likes(WorkingMemory(1, 3), 0, drama, k=3).size == 0


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("I want something like Toy Story (1995), please", "I want something like that one, please", 1),
        ("i loved toy story as a kid", "i loved that one as a kid", 1),
        ("a story about toys", "a story about toys", 0),
        ("It is great, not It (1990)", "It is great, not that one", 1),  # bare titles under 4 letters stay
    ],
)
def test_title_guard(text: str, expected: str, count: int) -> None:
    assert scrub_titles(text, ("Toy Story (1995)", "It (1990)")) == (expected, count)


def test_prompt_files_render_every_style_and_feedback_kind() -> None:
    for style in STYLES:
        prompt = load_prompt(f"query_{style}").render(category="thriller", reasons="; ".join(REASONS), previous="x")
        assert "{" not in prompt and (REASONS[0] in prompt or style == "paraphrase")
    for kind in ("accept", "reject", "pass"):
        assert "slow pacing" in load_prompt(f"feedback_{kind}").render(reason="slow pacing")


@pytest.mark.slow
def test_llm_writer_with_the_embedded_model(tmp_path: Path) -> None:
    from tastesim.llm.backend import make_backend
    from tastesim.scenario import LlamaCppSettings

    writer = LLMWriter(make_backend(LlamaCppSettings(model="shipped")), ReplyCache(tmp_path / "llm-replies.sqlite"))
    texts = {style: writer.query(_inputs(style)) for style in ("natural", "terse")}
    reply = writer.feedback(FeedbackInput("reject", "slow pacing"))
    assert all(writer.query(_inputs(style)) == text for style, text in texts.items())  # cached
    assert writer.calls == 3 and writer.requests == 5
    assert all(t.strip() and "\n" not in t for t in (*texts.values(), reply))
    assert writer.fallbacks == 0  # every text came from the model, none from the template fallback
    assert texts["natural"] != TemplateWriter().query(_inputs("natural"))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"styles": {"terse": 0.0}}, "conversation: styles"),
        ({"styles": {"shouty": 1.0}}, "conversation.styles.shouty"),
        ({"crs_url": "ftp://x"}, "conversation.crs_url"),
        ({"concurrency": 0}, "conversation.concurrency"),
        ({"turnz": 3}, "conversation.turnz"),
        ({"writer": "llm", "llm_options": {"tempreature": 0.2}}, "conversation.llm_options.tempreature: Extra inputs"),
        ({"llm": "ollama", "llm_options": {"parallel": 2}}, "conversation.llm_options.parallel: Extra inputs"),
        ({"llm": "ollama", "llm_options": {"base_url": "localhost"}}, "conversation.llm_options.base_url"),
        ({"llm_options": {"parallel": "many"}}, "conversation.llm_options.parallel: Input should be a valid integer"),
    ],
)
def test_conversation_section_errors_name_the_field(tmp_path, section: dict, message: str) -> None:
    from tastesim.scenario import ScenarioError, load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"conversation": section}), encoding="utf-8")
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        load_scenario(path)


def test_llm_options_become_the_backend_settings(tmp_path) -> None:
    from tastesim.scenario import LlamaCppSettings, OllamaSettings, load_scenario

    path = tmp_path / "s.yaml"
    options = {"model": "qwen2.5:0.5b", "base_url": "http://127.0.0.1:11434", "timeout": 30}
    path.write_text(yaml.safe_dump({"conversation": {"writer": "llm", "llm": "ollama", "llm_options": options}}))
    settings = load_scenario(path).conversation.llm_settings
    assert settings == OllamaSettings(**options) and settings.retries == 2
    path.write_text(yaml.safe_dump({"conversation": {"writer": "llm", "llm_options": {"parallel": 2}}}))
    assert load_scenario(path).conversation.llm_settings == LlamaCppSettings(parallel=2)


def test_stress_scenario_file_is_valid() -> None:
    from pathlib import Path

    from tastesim.scenario import load_scenario

    scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / "crs_stress.yaml")
    assert scenario.conversation is not None and scenario.conversation.sessions == 100
    assert abs(sum(scenario.conversation.styles.values()) - 1) < 1e-9


def test_a_conversation_run_folder_cannot_be_resumed(tmp_path) -> None:
    from typer.testing import CliRunner

    from tastesim.cli import app
    from tastesim.scenario import ConversationConfig, Scenario

    folder = tmp_path / "talks"
    folder.mkdir()
    (folder / "scenario.yaml").write_text(Scenario(conversation=ConversationConfig(sessions=2)).to_yaml())
    result = CliRunner().invoke(app, ["run", str(folder), "--resume"])
    assert result.exit_code == 2
    assert "holds a conversation run, which cannot be resumed" in " ".join(result.output.split())
