"""Target-item sessions on hand-made dialogues: the target's rank each turn, recall@1/10/50 after each turn,
success only when the target is shown, patience, users who change their mind or only complain, the leak check,
and the conversation summary table. The CRS here is a scripted double (no HTTP); the catalog is the slice's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tastesim.catalog import Decisions
from tastesim.conversation.grounding import GroundingCheck
from tastesim.conversation.leak import LeakCheck, title_forms
from tastesim.conversation.metrics import comparison_rows, headline_rows, recall_curve, stress_report
from tastesim.conversation.session import Goal, Plan, Stage, hold_session
from tastesim.conversation.writers import Writer
from tastesim.crs.names import TitleIndex, extract_names
from tastesim.crs.popularity import PopularityCRS
from tastesim.crs.protocol import CRSReply, CRSRequest, Message
from tastesim.rng import RandomTree
from tastesim.scenario import Scenario
from tastesim.world.build import build_parts, profiles_for


# -- recall@k per turn on hand-made rank lists --------------------------------------------------------------
def test_recall_curve_on_hand_made_ranks() -> None:
    ranks = [
        [30, 5],  # found at turn 2 (rank 5): @10 from turn 2, @50 from turn 1
        [1],  # found at once
        [None, None, 60],  # never within 50
        [None, 12, None, 40],  # within 50 from turn 2, never within 10
    ]
    curve = recall_curve(ranks, turns=4)
    assert curve["@1"] == [0.25, 0.25, 0.25, 0.25]
    assert curve["@10"] == [0.25, 0.5, 0.5, 0.5]
    assert curve["@50"] == [0.5, 0.75, 0.75, 0.75]
    assert recall_curve([], turns=2)["@10"] == [None, None]


# -- sessions against a scripted CRS --------------------------------------------------------------------------
class ScriptedCRS:
    """Answers turn ``t`` with ``script[t - 1]`` (catalog rows); records every request."""

    def __init__(self, item_ids: list[str], script: list[list[int]]) -> None:
        self.item_ids = item_ids
        self.script = script
        self.requests: list[CRSRequest] = []

    async def respond(self, request: CRSRequest) -> CRSReply:
        self.requests.append(request)
        rows = self.script[min(request.turn, len(self.script)) - 1]
        return CRSReply(items=tuple(self.item_ids[r] for r in rows), text="here")


class FixedDecider:
    """A decision model double: the user likes exactly the rows in ``likes`` (never dislikes anything)."""

    def __init__(self, likes: set[int] = frozenset()) -> None:
        self.likes = likes

    def decide(self, memory, agents, slates, draws, click_offset=None):
        liked = np.isin(slates, list(self.likes)) if self.likes else np.zeros(slates.shape, dtype=bool)
        return Decisions(liked.copy(), liked, np.zeros(slates.shape, dtype=bool)), None

    def for_agents(self, agents):
        return self


@pytest.fixture(scope="module")
def parts(slice_dir: Path, slice_dataset, tmp_path_factory: pytest.TempPathFactory):
    dataset = {"path": str(slice_dir), "name": "ml-100k-slice"}
    cache = str(tmp_path_factory.mktemp("cache"))
    scenario = Scenario.model_validate({"dataset": dataset, "analyser": {"embedder": "hashing"}, "cache_dir": cache})
    return build_parts(scenario, slice_dataset, profiles_for(slice_dataset, scenario))


def _stage(parts, decider, **limits) -> Stage:
    titles = [str(t) for t in parts.dataset.items["title"]]
    leak = LeakCheck(titles, [str(t) for t in parts.dataset.items["text"]], allowed=parts.catalog.bank.texts)
    return Stage(parts.catalog, parts.memory, decider, titles, RandomTree(3), leak, **limits)


def _talk(stage: Stage, plan: Plan, crs: ScriptedCRS):
    writer = Writer(GroundingCheck())
    try:
        return asyncio.run(hold_session(plan, stage, crs, writer)), writer
    finally:
        writer.close()


def _filler(target: int, n: int = 50) -> list[int]:
    """``n`` catalog rows without the target."""
    return [r for r in range(n + 1) if r != target][:n]


def _plan(target: int, **kw) -> Plan:
    return Plan("s1", 0, "natural", (Goal(target, "Comedy", ("dark comedy", "witty dialogue")),), **kw)


def test_the_target_rank_is_recorded_each_turn_and_success_needs_it_shown(parts) -> None:
    target = 60
    rest = _filler(target)
    script = [[*rest[:29], target, *rest[29:49]], [*rest[:4], target, *rest[4:49]]]  # rank 30, then rank 5
    stage = _stage(parts, FixedDecider(likes={rest[0]}), turns=5, k=10, rank_k=50)
    crs = ScriptedCRS(parts.catalog.item_ids, script)
    result, writer = _talk(stage, _plan(target, patience=5), crs)
    assert result.ranks == [30, 5] and result.outcome == "success" and result.turns_to_success == 2
    assert result.liked_any and result.substitutes == 2  # liked a shown non-target item, twice; kept looking
    assert all(r.k == 50 for r in crs.requests)  # asks for rank_k items, shows k
    shown = crs.requests[1].messages[1].items
    assert len(shown) == 10 and parts.catalog.item_ids[target] not in shown  # the history holds what was seen
    report = stress_report([result], planned=1, wall_s=1.0, turns=5, writer=writer, protocol="target")
    assert report["recall"]["@10"] == [0.0, 1.0, 1.0, 1.0, 1.0] and report["recall"]["@1"] == [0.0] * 5
    assert report["success_rate"] == 1.0 and report["liked_anything_rate"] == 1.0


def test_liked_protocol_is_easy_mode(parts) -> None:
    target = 60
    stage = _stage(parts, FixedDecider(likes={0}), protocol="liked")
    result, _ = _talk(stage, _plan(target), ScriptedCRS(parts.catalog.item_ids, [_filler(target)]))
    assert result.outcome == "success" and result.ranks == [None]  # a liked substitute ends it; the target was absent


def test_patience_ends_sessions_without_progress(parts) -> None:
    target = 60
    stage = _stage(parts, FixedDecider(), turns=5)
    crs = ScriptedCRS(parts.catalog.item_ids, [_filler(target)])
    result, _ = _talk(stage, _plan(target, patience=2), crs)
    assert result.outcome == "left" and len(result.ranks) == 2 and len(crs.requests) == 2
    patient, _ = _talk(stage, _plan(target, patience=9), ScriptedCRS(parts.catalog.item_ids, [_filler(target)]))
    assert patient.outcome == "abandoned" and len(patient.ranks) == 5
    # A target moving up the list is progress, so a patience of 1 is enough while it climbs.
    rest = _filler(target)
    climbing = [[*rest[:40], target, *rest[40:]], [*rest[:20], target, *rest[20:]], [*rest[:15], target, *rest[15:]]]
    climber, _ = _talk(stage, _plan(target, patience=1), ScriptedCRS(parts.catalog.item_ids, climbing))
    assert climber.ranks[:3] == [41, 21, 16] and climber.outcome == "left" and len(climber.ranks) == 4


def test_a_user_who_changes_its_mind_is_scored_on_the_new_target(parts) -> None:
    first, second = 60, 70
    goals = (Goal(first, "Comedy", ("dark comedy",)), Goal(second, "Drama", ("powerful emotional drama",)))
    plan = Plan("s2", 0, "natural", goals, 9, "changes_mind", shock_turn=2)
    rest = [r for r in range(60) if r not in (first, second)][:48]
    script = [[*rest, second, first], [second, first, *rest]]  # the old target tops turn 2: no success
    result, _ = _talk(_stage(parts, FixedDecider()), plan, ScriptedCRS(parts.catalog.item_ids, script))
    assert result.ranks[:2] == [50, 1] and result.outcome == "success" and result.turns_to_success == 2
    assert "changed my mind" in result.transcript[1]["user"] and "emotional drama" in result.transcript[1]["user"]


def test_a_negative_only_user_says_only_what_is_wrong_after_its_first_request(parts) -> None:
    target = 60
    plan = Plan("s3", 0, "natural", (Goal(target, "Comedy", ("dark comedy", "witty dialogue")),), 9, "negative_only")
    crs = ScriptedCRS(parts.catalog.item_ids, [_filler(target)])
    _, writer = _talk(_stage(parts, FixedDecider(), turns=3), plan, crs)
    later = [m.content for m in crs.requests[2].messages if m.role == "user"][1:]
    assert later and all("dark comedy" not in text and "witty" not in text for text in later)
    assert {e.style for e in writer.log if e.kind == "feedback"} == {"negative"}


def test_a_contradictory_user_asks_against_its_target(parts) -> None:
    plan = _plan(60, behaviour="contradictory", avoid="beautiful cinematography")
    crs = ScriptedCRS(parts.catalog.item_ids, [_filler(60)])
    _talk(_stage(parts, FixedDecider(), turns=1), plan, crs)
    assert "But nothing with beautiful cinematography." in crs.requests[0].messages[0].content


def test_no_user_message_names_its_target(parts) -> None:
    titles = [str(t) for t in parts.dataset.items["title"]]
    stage = _stage(parts, FixedDecider(likes={1}), turns=3)
    for target in range(0, 200, 7):
        goal = Goal(target, "Comedy", (f"something like {titles[target]}", "dark comedy"))  # a leaky memory
        crs = ScriptedCRS(parts.catalog.item_ids, [_filler(target)])
        result, _ = _talk(stage, Plan(f"s{target}", 0, "natural", (goal,), 9), crs)
        said = " ".join(m.content.lower() for r in crs.requests for m in r.messages if m.role == "user")
        for form in title_forms(titles[target]):
            if len(form.split()) >= 2 or stage.leak._rare(form.lower()):
                assert form.lower() not in said
        assert result.leaky >= 1 and result.residual == 0 and result.records[0].leaky


# -- the leak check ----------------------------------------------------------------------------------------
def test_leak_check_finds_titles_names_and_rare_phrases() -> None:
    titles = ["Mask, The", "GoldenEye", "Heat", "Toy Story", "Summer", "Desert", "Kitchen"]
    texts = [
        "A bank clerk finds a magic mask.",
        "James Bond stops Alec Trevelyan from using a satellite weapon.",
        "A thief and a detective in the heat of Los Angeles.",
        "Toys come alive when Andy leaves the room.",
        "Friends in the summer heat.",  # "heat" is in four items' texts: a common word, not a name
        "Lost in the heat of the desert.",
        "The heat of a restaurant kitchen.",
    ]
    check = LeakCheck(titles, texts, allowed=["dark comedy"])
    assert "The Mask" in check.score("a film like the mask please", 0).titles
    assert check.score("something like goldeneye", 1).leaky  # a rare one-word title
    assert not check.score("turn up the heat, a tense crime story", 2).titles  # a common word is no title
    assert check.score("a spy who fights trevelyan", 1).names == ("trevelyan",)
    assert check.score("a satellite weapon plot", 1).phrases == ("satellite weapon",)
    assert not check.score("a dark comedy with witty dialogue", 3).leaky
    clean, before, after = check.rewrite("I loved Toy Story, with Andy", 3)
    assert before.leaky and not after.leaky and "toy story" not in clean.lower() and "andy" not in clean.lower()
    assert set(title_forms("Lion King, The (1994)")) == {"The Lion King", "Lion King, The", "Lion King"}


# -- the summary table ---------------------------------------------------------------------------------------
def test_the_summary_table_shows_conversation_figures(parts) -> None:
    target = 60
    results = []
    writer = Writer(GroundingCheck())
    for i, script in enumerate(([[*_filler(target)[:9], target]], [_filler(target)])):
        crs = ScriptedCRS(parts.catalog.item_ids, script)
        plan = Plan(f"t{i}", 0, "terse", (Goal(target, "Comedy", ("dark comedy",)),), 2)
        results.append(asyncio.run(hold_session(plan, _stage(parts, FixedDecider(), turns=3), crs, writer)))
    writer.close()
    report = stress_report(results, planned=2, wall_s=2.0, turns=3, writer=writer, protocol="target")
    rows = dict(headline_rows(report))
    assert rows["success: target shown (target protocol)"] == "0.5"
    assert rows["recall@10 after turn 1 / 3"] == "0.5 / 0.5" and rows["recall@1 after turn 1 / 3"] == "0.0 / 0.0"
    assert rows["left for lack of progress / abandoned"] == "0.5 / 0.0"
    assert rows["writer grounded rate (raw / sent)"] == "1.0 / 1.0" and rows["writer fallback rate"] == "0.0"
    assert not any("click" in label or "decisions/s" in label for label in rows)  # no slate figures here
    table = comparison_rows({"a": report, "b": report})
    assert table[0][:4] == ["CRS", "R@1 t1", "R@10 t1", "R@50 t1"] and [r[0] for r in table[1:]] == ["a", "b"]


# -- names written by an LLM, mapped to items; the popularity floor ----------------------------------------
@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Toy Story (1995); The Lion King (1994); Babe", ["Toy Story (1995)", "The Lion King (1994)", "Babe"]),
        ('1. Fargo (1996) - a dark crime comedy\n2. "Seven"\n* Heat', ["Fargo (1996)", "Seven", "Heat"]),
        ("Movies: Star Wars, Aliens, Die Hard", ["Star Wars", "Aliens", "Die Hard"]),
    ],
)
def test_names_are_found_in_llm_replies(text: str, names: list[str]) -> None:
    assert extract_names(text) == names


def test_names_map_back_to_catalog_items() -> None:
    index = TitleIndex(["1", "2", "3", "4"], ["Lion King, The", "Toy Story", "Fargo", "Seven (Se7en)"])
    assert index.lookup("The Lion King (1994)") == "1" and index.lookup("lion king") == "1"
    assert index.lookup("Toy Storey") == "2"  # one typo
    assert index.lookup("Seven (Se7en) (1995)") == "4" and index.lookup("Casablanca") is None
    items, missed = index.items("Fargo (1996); Casablanca (1942); Toy Story (1995); Fargo", exclude=["2"])
    assert items == ("3",) and missed == 1


def test_the_popularity_crs_ignores_the_dialogue_and_never_repeats() -> None:
    crs = PopularityCRS(["a", "b", "c", "d"], np.array([5, 9, 9, 1]))
    first = crs.recommend([Message("user", "anything")], 2)
    assert first.items == ("b", "c")
    again = crs.recommend([Message("user", "x"), Message("assistant", "", first.items), Message("user", "y")], 3)
    assert again.items == ("a", "d")
