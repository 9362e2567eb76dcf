"""Query writers (styles, determinism, counting, the LLM writer through the reply cache), recall from working
memory, the title guard, and the conversation section of a scenario."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

from tastesim.conversation.grounding import GroundingCheck
from tastesim.conversation.recall import strongest_likes
from tastesim.conversation.writers import (
    FEEDBACK_KINDS,
    STYLES,
    FeedbackInput,
    LLMWriter,
    QueryInput,
    QueryWriter,
    TemplateWriter,
    Writer,
)
from tastesim.llm.backend import LLMReply
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
    for kind in FEEDBACK_KINDS:
        spec = FeedbackInput(kind, ("slow pacing",), ("gripping suspense",))  # type: ignore[arg-type]
        text = a.feedback(spec)
        assert text == b.feedback(spec) and ("slow pacing" in text or "gripping suspense" in text)


def test_template_messages_pass_the_check() -> None:
    writer = Writer(GroundingCheck())
    assert isinstance(writer, QueryWriter)
    for style in STYLES:
        assert writer.query(_inputs(style)).verdict.passed, style
    for kind in FEEDBACK_KINDS:
        written = writer.feedback(FeedbackInput(kind, ("slow pacing",), ("gripping suspense",)))  # type: ignore[arg-type]
        assert written.source == "template" and written.verdict.passed, (kind, written.text)
    assert writer.requests == writer.calls == len(STYLES) + len(FEEDBACK_KINDS) and writer.fallbacks == 0


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
        text = f" gripping suspense, clever plot twists, dark humour, take {self.calls} "
        text = text if self.reply is None else self.reply
        return LLMReply(text, 5, 3, 0.01)


def test_llm_writer_asks_once_per_distinct_prompt_through_the_reply_cache(tmp_path: Path) -> None:
    backend = CountingLLM()
    llm = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))
    population = [QueryInput(("terse", "vague")[i % 2], "Drama", REASONS[: 1 + i % 3]) for i in range(1000)]
    texts = [llm.query(q).text for q in population]
    assert backend.calls == 6  # 2 styles x 3 reason sets
    assert texts[0] == llm.query(population[0]).text == "gripping suspense, clever plot twists, dark humour, take 1"
    first = llm.feedback(FeedbackInput("reject", ("slow pacing",)))
    assert first.called and not llm.feedback(FeedbackInput("reject", ("slow pacing",))).called
    assert backend.calls == 7
    again = LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite"))  # the next run: all cached
    assert again.query(population[0]).text == texts[0] and backend.calls == 7
    other = LLMWriter(CountingLLM(model="other"), ReplyCache(tmp_path / "llm-replies.sqlite"))
    assert other.query(population[0]).called  # another model never shares texts


def test_concurrent_misses_of_one_text_make_one_call_off_the_event_loop(tmp_path: Path) -> None:
    backend = CountingLLM()
    writer = Writer(GroundingCheck(), LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite")))
    spec = QueryInput("terse", "Drama", REASONS)

    async def sessions() -> list[str]:
        return [w.text for w in await asyncio.gather(*(writer.aquery(spec) for _ in range(50)))]

    try:
        texts = asyncio.run(sessions())
    finally:
        writer.close()
    assert len(set(texts)) == 1 and backend.calls == writer.calls == 1 and writer.requests == 50
    assert backend.threads == {"tastesim-writer_0"}  # the one worker thread, never the event loop's


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


def test_prompt_files_render_every_style_and_feedback_kind() -> None:
    for style in STYLES:
        prompt = load_prompt(f"query_{style}").render(category="thriller", reasons="; ".join(REASONS), previous="x")
        assert "{" not in prompt and (REASONS[0] in prompt or style == "paraphrase")
    for kind in FEEDBACK_KINDS:
        text = load_prompt(f"feedback_{kind}").render(reasons="slow pacing", wants="gripping suspense")
        assert "slow pacing" in text and "{" not in text
    for name in [f"query_{s}_v1" for s in STYLES] + [f"feedback_{k}_v1" for k in ("accept", "reject", "pass")]:
        assert load_prompt(name).version.endswith("-v1")  # the first prompts, kept to measure against


@pytest.mark.slow
def test_llm_writer_with_the_embedded_model(tmp_path: Path) -> None:
    from tastesim.llm.backend import make_backend
    from tastesim.scenario import LlamaCppSettings

    backend = make_backend(LlamaCppSettings(model="shipped", repeat_penalty=1.0))
    writer = Writer(GroundingCheck(), LLMWriter(backend, ReplyCache(tmp_path / "llm-replies.sqlite")))
    texts = {style: writer.query(_inputs(style)) for style in ("natural", "terse")}
    reply = writer.feedback(FeedbackInput("reject", ("slow pacing",), ("gripping suspense",)))
    assert all(writer.query(_inputs(style)).text == w.text for style, w in texts.items())  # cached
    assert writer.requests == 5 and writer.calls <= 3 + 3  # first drafts, and at most one second draft each
    for written in (*texts.values(), reply):
        assert written.text.strip() and "\n" not in written.text
        assert written.source in ("llm", "llm-retry", "fallback") and written.verdict.passed
        if written.source != "fallback":
            assert written.text != TemplateWriter().query(_inputs("natural"))


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
        ({"behaviours": {"grumpy": 1.0}}, "conversation.behaviours.grumpy"),
        ({"rank_k": 5}, "must be at least k"),
        ({"crs_api_key_env": "sk-123 secret"}, "conversation.crs_api_key_env"),
        ({"compare": [{"name": "a", "builtin": "retrieval", "url": "http://x"}]}, "give exactly one of builtin or url"),
        ({"compare": [{"name": "a", "builtin": "llm", "mode": "chat"}]}, "a built-in CRS answers in mode json"),
        ({"compare": [{"name": "a", "builtin": "llm"}, {"name": "a", "builtin": "popularity"}]}, "names must differ"),
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

    for name in ("crs_stress", "crs_compare", "crs_writer"):
        scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / f"{name}.yaml")
        cfg = scenario.conversation
        assert cfg is not None and cfg.protocol == "target" and cfg.rank_k == 50
        assert abs(sum(cfg.styles.values()) - 1) < 1e-9 and abs(sum(cfg.behaviours.values()) - 1) < 1e-9
    assert [c.builtin for c in load_scenario(Path(__file__).parents[1] / "scenarios" / "crs_compare.yaml")
            .conversation.targets] == ["retrieval", "popularity", "llm"]  # fmt: skip


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
