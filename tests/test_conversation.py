"""Query writers (styles, determinism, cache), recall from working memory, the title guard, the LLM writer."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tastesim.conversation.recall import strongest_likes
from tastesim.conversation.session import scrub_titles
from tastesim.conversation.writers import (
    STYLES,
    CachedWriter,
    FeedbackInput,
    LLMWriter,
    QueryInput,
    TemplateWriter,
    render_prompt,
)
from tastesim.memory.working import DISLIKE, LIKE, WorkingMemory

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


@dataclass
class _Counting:
    """A writer double that counts calls and numbers its texts."""

    name: str = "counting"
    calls: int = 0
    blocking: bool = True  # like an LLM writer: the cache writes it on its worker thread

    def query(self, spec: QueryInput) -> str:
        self.calls += 1
        return f"q{self.calls} {spec.style}"

    def feedback(self, spec: FeedbackInput) -> str:
        self.calls += 1
        return f"f{self.calls} {spec.kind}"


def test_cache_keys_by_writer_style_and_reasons() -> None:
    inner = _Counting()
    cached = CachedWriter(inner)
    population = [QueryInput(STYLES[i % 2], "Drama", REASONS[: 1 + i % 3]) for i in range(1000)]
    texts = [cached.query(q) for q in population]
    assert cached.requests == 1000
    assert cached.calls == inner.calls == len(set(population)) == 6  # 2 styles x 3 reason sets
    assert texts[0] == cached.query(population[0])  # same input, same text
    cached.feedback(FeedbackInput("reject", "slow pacing"))
    cached.feedback(FeedbackInput("reject", "slow pacing"))
    assert inner.calls == 7
    other = CachedWriter(_Counting(name="other"))
    assert other.query(population[0]) == "q1 terse"  # another writer never shares texts


def test_async_cache_shares_one_call_between_concurrent_misses() -> None:
    inner = _Counting()
    cached = CachedWriter(inner)
    spec = QueryInput("terse", "Drama", REASONS)

    async def sessions() -> list[str]:
        return await asyncio.gather(*(cached.aquery(spec) for _ in range(50)))

    try:
        texts = asyncio.run(sessions())
    finally:
        cached.close()
    assert set(texts) == {"q1 terse"} and inner.calls == 1
    assert cached.requests == 50 and cached.calls == 1


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
        prompt = render_prompt(f"query_{style}", category="thriller", reasons="; ".join(REASONS), previous="x")
        assert "{" not in prompt and (REASONS[0] in prompt or style == "paraphrase")
    for kind in ("accept", "reject", "pass"):
        assert "slow pacing" in render_prompt(f"feedback_{kind}", reason="slow pacing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_server():
    """``tastesim llm serve`` on a free loopback port (the embedded SmolLM2 behind the Ollama API)."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tastesim.cli import main; main()", "llm", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.skip(f"tastesim llm serve exited: {proc.stderr.read().decode()[-300:]}")
            try:
                if httpx.get(f"{url}/api/tags", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("tastesim llm serve did not answer within 90 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_llm_writer_through_tastesim_llm_serve(llm_server: str) -> None:
    from tastesim.llm.backend import make_backend

    writer = LLMWriter(make_backend("ollama", base_url=llm_server, model="smollm2:135m"), name="llm:ollama")
    cached = CachedWriter(writer)
    texts = {}
    for style in ("natural", "terse"):
        texts[style] = cached.query(_inputs(style))
        assert cached.query(_inputs(style)) == texts[style]
    reply = cached.feedback(FeedbackInput("reject", "slow pacing"))
    assert cached.calls == 3 and cached.requests == 5
    assert all(t.strip() and "\n" not in t for t in (*texts.values(), reply))
    assert writer.fallbacks == 0  # every text came from the model, none from the template fallback
    assert texts["natural"] != TemplateWriter().query(_inputs("natural"))


def test_llm_writer_falls_back_when_the_service_fails() -> None:
    class Down:
        def complete(self, prompt: str, **options: object) -> object:
            raise RuntimeError("connection refused")

    writer = LLMWriter(Down())
    spec = _inputs("natural")
    assert writer.query(spec) == TemplateWriter().query(spec)
    assert writer.fallbacks == 1


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"styles": {"terse": 0.0}}, "conversation: styles"),
        ({"styles": {"shouty": 1.0}}, "conversation.styles.shouty"),
        ({"crs_url": "ftp://x"}, "conversation.crs_url"),
        ({"concurrency": 0}, "conversation.concurrency"),
        ({"turnz": 3}, "conversation.turnz"),
    ],
)
def test_conversation_section_errors_name_the_field(tmp_path, section: dict, message: str) -> None:
    from tastesim.scenario import ScenarioError, load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"conversation": section}), encoding="utf-8")
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        load_scenario(path)


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
