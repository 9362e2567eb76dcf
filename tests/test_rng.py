"""One random tree: named streams only, keyed draws, and Mesa's own generators derived from it each step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastesim.rng import RandomTree, Stream


def test_streams_are_constants_not_free_strings() -> None:
    with pytest.raises(TypeError, match="Stream members"):
        RandomTree(0).generator("decide")  # type: ignore[arg-type]


def test_the_same_arguments_give_the_same_draws_and_any_change_gives_others() -> None:
    tree = RandomTree(7)
    first = tree.generator(Stream.DECIDE, 3, key="s000001").random(5)
    np.testing.assert_array_equal(first, RandomTree(7).generator(Stream.DECIDE, 3, key="s000001").random(5))
    others = [
        RandomTree(8).generator(Stream.DECIDE, 3, key="s000001"),
        tree.generator(Stream.ACTIVITY, 3, key="s000001"),
        tree.generator(Stream.DECIDE, 4, key="s000001"),
        tree.generator(Stream.DECIDE, 3, key="s000002"),
        tree.generator(Stream.DECIDE, 3),
    ]
    for other in others:
        assert not np.array_equal(first, other.random(5))


def test_no_module_level_randomness_in_the_package() -> None:
    import tastesim

    banned = ("np.random.seed(", "np.random.rand", "random.seed(", "torch.manual_seed(", "np.random.choice(")
    root = Path(tastesim.__file__).parent
    offenders = [(p.name, b) for p in root.rglob("*.py") for b in banned if b in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_mesa_generators_are_derived_from_the_tree_each_step(slice_dir: Path, tmp_path: Path) -> None:
    """Code drawing from ``agent.random`` or ``model.rng`` gets the same draws in a resumed run."""
    from tastesim.recommenders.baselines import PopularityRecommender
    from tastesim.scenario import Scenario
    from tastesim.scoring.deciders import LogicalDecider
    from tastesim.scoring.logical import LogicalRule
    from tastesim.world.build import build_parts, load_scenario_dataset, profiles_for
    from tastesim.world.model import TasteModel

    scenario = Scenario.model_validate(
        {
            "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
            "analyser": {"embedder": "hashing"},
            "cache_dir": str(tmp_path),
        }
    )
    dataset = load_scenario_dataset(scenario)
    parts = build_parts(scenario, dataset, profiles_for(dataset, scenario))

    def model() -> TasteModel:
        decider = LogicalDecider(LogicalRule(), parts.catalog.tables, parts.catalog.bank)
        memory = type(parts.memory).from_state(parts.memory.state())
        return TasteModel(parts.catalog, parts.population, memory, PopularityRecommender(), decider, seed=3)

    draws = {}
    for name in ("straight", "restored"):
        m = model()
        if name == "restored":
            m.steps = 1  # as after restoring a checkpoint taken at step 1
        else:
            m.step()
            m.random.random(), m.rng.random()  # someone drew from Mesa's generators during step 1
        m.step()
        agent = next(iter(m.agents))
        draws[name] = (agent.random.random(), float(m.rng.random()))
    assert draws["straight"] == draws["restored"]
