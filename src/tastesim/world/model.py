"""The Mesa model: owns the clock, the random tree and the agents, and runs the step's phases.

The agents' state (working memory, interest, consumed items, the decision model) lives in population shards
(:mod:`tastesim.world.shards`): in this process, or on Ray workers (:mod:`tastesim.engine`). The model is the
driver: it decides who acts, asks the recommender for slates, hands them to the shards, and gives the
recommender the feedback; the shards decide, remember and drift their agents.
"""

from __future__ import annotations

import mesa
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from tastesim.agents.consumed import ConsumedItems, HeldOutItems
from tastesim.agents.drift import item_vectors
from tastesim.agents.population import Population
from tastesim.agents.user import UserAgent
from tastesim.catalog import Catalog, Decisions
from tastesim.memory.working import WorkingMemory
from tastesim.recommenders import Feedback, Recommender, SlateRequest
from tastesim.recommenders.log import FeedbackLog
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import DriftConfig
from tastesim.scoring.decider import Decider
from tastesim.world.drift_metrics import DriftTracker, Groups
from tastesim.world.metrics import StepMetrics, make_collector
from tastesim.world.shard import PopulationShard, ShardOutcome
from tastesim.world.shards import InProcessShards, Shards
from tastesim.world.shocks import ShockSchedule

__all__ = ["TasteModel"]

_BLOCKED_BUFFER_BYTES = 1 << 30


class TasteModel(mesa.Model):
    """A population of :class:`UserAgent` facing one recommender.

    Each step reads like the story: ``activate`` -> ``recommend`` -> ``respond`` (the shards decide on every
    slate in one batched call, remember and drift) -> ``learn`` (the recommender receives the feedback, and is
    refitted every ``retrain_every`` steps) -> ``collect``.

    The population is given either as ``memory`` and ``decider`` (every agent held in this process, one
    shard), or as ``shards`` built by an engine (then ``memory`` and ``decider`` are ``None``).
    """

    def __init__(
        self,
        catalog: Catalog,
        population: Population,
        memory: WorkingMemory | None,
        recommender: Recommender,
        decider: Decider | None,
        *,
        seed: int,
        slate_size: int = 10,
        allow_repeats: bool = False,
        activity: float = 1.0,
        drift: DriftConfig | None = None,
        segments: dict[str, np.ndarray] | None = None,
        shocks: ShockSchedule | None = None,
        retrain_every: int | None = None,
        shards: Shards | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.catalog = catalog
        self.population = population
        self.recommender = recommender
        self.random_tree = RandomTree(seed)
        self.slate_size = slate_size
        self.allow_repeats = allow_repeats
        for index, user in enumerate(population.users):
            UserAgent(self, index=index, user=str(user), segment=population.user_segments[population.user_rows[index]],
                      activity=activity)  # fmt: skip
        self._activity = np.full(population.n_agents, activity)
        self.metrics = StepMetrics(len(catalog.item_ids), catalog.tables.primary, catalog.self_information)
        self.datacollector = make_collector(self.metrics)
        self.last_table: pa.Table | None = None
        self._blocked: np.ndarray | None = None
        self.drift_config = drift or DriftConfig()
        self.shocks = shocks
        self.item_vectors = item_vectors(catalog.tables, catalog.bank)
        self.drift_tracker = DriftTracker(
            segments or {}, catalog.tables.primary, self.item_vectors, catalog.tables.categories,
            n_agents=population.n_agents,
        )  # fmt: skip
        if shards is None:
            if memory is None or decider is None:
                raise ValueError("give the population's memory and decider, or its shards")
            shards = InProcessShards([self._one_shard(memory, decider, seed)])
        self.shards = shards
        self.retrain_every = retrain_every
        self.feedback_log = FeedbackLog(population.n_agents, len(catalog.item_ids), keep=bool(retrain_every))
        self._item_ids = pa.array(catalog.item_ids, type=pa.string())
        self._users = pa.array([str(u) for u in population.user_ids], type=pa.string())
        self.fit_recommender(0)

    def _one_shard(self, memory: WorkingMemory, decider: Decider, seed: int) -> PopulationShard:
        """Every agent in one in-process shard, from an agents x slots memory and a decider for all agents."""
        pop, catalog = self.population, self.catalog
        return PopulationShard(
            agents=np.arange(pop.n_agents),
            memory=memory,
            decider=decider,
            consumed=ConsumedItems(pop.train > 0, pop.user_rows),
            held_out=HeldOutItems(pop.holdout_ptr, pop.holdout_items, len(catalog.item_ids)),
            user_rows=pop.user_rows,
            catalog=catalog,
            item_vectors=self.item_vectors,
            drift=self.drift_config,
            groups=self.drift_tracker.groups,
            codes=self.drift_tracker.groups.codes,
            perturbations=self.shocks.perturbations() if self.shocks is not None else (),
            seed=seed,
        )

    @property
    def groups(self) -> Groups:
        """The drift segments (group codes of every agent)."""
        return self.drift_tracker.groups

    # -- phases -------------------------------------------------------------------------------------
    def activate(self) -> np.ndarray:
        """Indices of the agents acting this step, ascending: each draws, keyed by agent and step, whether it
        acts with its activity probability (the same draw in any shard)."""
        agents = np.arange(self.population.n_agents)
        draws = self.random_tree.keyed(Stream.ACTIVITY, self.steps).rows(agents).uniform(1)[:, 0]
        active = np.flatnonzero(draws < self._activity).astype(np.int64)
        if self.shocks is not None:
            active = self.shocks.present(active, self.steps)
        return active

    def recommend(self, active: np.ndarray) -> np.ndarray:
        """Ask the recommender for one slate per acting agent; blocked items are dropped."""
        history = self.shards.histories(active)
        n_items = len(self.catalog.item_ids)
        blocked = self._blocked_rows(len(active))
        if not self.allow_repeats:
            blocked.reshape(-1)[
                np.repeat(np.arange(len(active)) * n_items, np.diff(history.indptr)) + history.indices
            ] = True
        request = SlateRequest(
            agents=active,
            history=sp.csr_matrix(history, dtype=np.float32),
            blocked=blocked,
            k=self.slate_size,
            step=self.steps,
            rng=self.random_tree.generator(Stream.RECOMMENDER, self.steps),
        )
        slates = np.asarray(self.recommender.recommend(request), dtype=np.int64).reshape(len(active), self.slate_size)
        inside = (slates >= 0) & (slates < n_items)
        slates = np.where(inside, slates, -1)
        illegal = np.take_along_axis(blocked, np.where(inside, slates, 0), axis=1) & inside
        return np.where(illegal, -1, slates)

    def _blocked_rows(self, n: int) -> np.ndarray:
        """An all-False ``(n, n_items)`` bool array for the request: one buffer reused step after step (a fresh
        one per step costs its page faults again), unless the population's would be above 1 GiB."""
        shape = (self.population.n_agents, len(self.catalog.item_ids))
        if shape[0] * shape[1] > _BLOCKED_BUFFER_BYTES:
            return np.zeros((n, shape[1]), dtype=bool)
        if self._blocked is None:
            self._blocked = np.zeros(shape, dtype=bool)
        rows = self._blocked[:n]
        rows[...] = False
        return rows

    def respond(self, active: np.ndarray, slates: np.ndarray) -> ShardOutcome:
        """The shards' agents decide on every shown item (one batched call per shard), remember and drift."""
        return self.shards.respond(self.steps, active, slates)

    def fit_recommender(self, upto: int) -> None:
        """Fit the recommender on the training interactions plus the simulated feedback of steps ``<= upto``."""
        data = self.feedback_log.training_data(self.population.train, upto)
        self.recommender.fit(data, self.random_tree.generator(Stream.RETRAIN, upto))

    def learn(self, active: np.ndarray, slates: np.ndarray, decisions: Decisions) -> None:
        """Hand the step's feedback to the recommender (one batched call); refit it every ``retrain_every``."""
        feedback = Feedback(self.steps, active, slates, decisions.click, decisions.like, decisions.dislike)
        self.recommender.observe(feedback)
        self.feedback_log.add(feedback)
        if self.retrain_every and self.steps % self.retrain_every == 0:
            self.fit_recommender(self.steps)

    def collect(self, active: np.ndarray, slates: np.ndarray, outcome: ShardOutcome) -> None:
        """Record the step's metrics, drift rows and interaction rows."""
        decisions, features = outcome.decisions, outcome.features
        self.metrics.measure(slates, decisions, outcome.holdout_hits, outcome.memories, outcome.new_memories)
        self.datacollector.collect(self)
        self.drift_tracker.record(self.steps, active, slates, decisions, outcome.drift)
        shown = slates >= 0
        agent_of = np.broadcast_to(active[:, None], slates.shape)[shown]
        position = np.broadcast_to(np.arange(slates.shape[1], dtype=np.int16), slates.shape)[shown]
        self.last_table = pa.table(
            {
                "step": np.full(len(agent_of), self.steps, dtype=np.int32),
                "agent": agent_of.astype(np.int32),
                "user": self._users.take(pa.array(self.population.user_rows[agent_of])),
                "item": self._item_ids.take(pa.array(slates[shown])),
                "position": position,
                "click": decisions.click[shown],
                "like": decisions.like[shown],
                "dislike": decisions.dislike[shown],
                "kw_pos": features.kw_pos[shown].astype(np.int16),
                "kw_neg": features.kw_neg[shown].astype(np.int16),
                "sim_pos": features.sim_pos[shown].astype(np.float32),
                "sim_neg": features.sim_neg[shown].astype(np.float32),
                "appeal": features.appeal[shown].astype(np.float32),
            }
        )

    @property
    def last_interactions(self) -> pd.DataFrame | None:
        """The last step's interaction rows as a DataFrame (``last_table`` is the Arrow table)."""
        return None if self.last_table is None else self.last_table.to_pandas()

    def reseed_mesa(self) -> None:
        """Derive Mesa's own generators (``model.random``, ``model.rng``, which agents and agent sets share)
        from the random tree for this step, so that code drawing from them stays exact under resume."""
        self.reset_randomizer(self.random_tree.integer_seed(Stream.MESA, self.steps))
        self.reset_rng(self.random_tree.generator(Stream.MESA, self.steps, key="numpy"))

    def step(self) -> None:
        """One simulation step."""
        self.reseed_mesa()
        active = self.activate()
        slates = self.recommend(active)
        outcome = self.respond(active, slates)
        self.learn(active, slates, outcome.decisions)
        self.collect(active, slates, outcome)

    # -- checkpoint state ---------------------------------------------------------------------------
    def driver_state(self) -> dict[str, np.ndarray]:
        """What the driver changes during a run (the shards' state is saved by the shards)."""
        return {
            "steps": np.array(self.steps),
            "shards": np.array(self.shards.count),
            "shown_ever": self.metrics.shown_ever,
            "drift_rows": self.drift_tracker.state(),
            **{f"log_{k}": v for k, v in self.feedback_log.state().items()},
        }

    def restore_driver(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`driver_state` (refits a retrained recommender as it was at that step)."""
        self.steps = int(state["steps"])
        self.metrics.shown_ever[...] = state["shown_ever"]
        self.drift_tracker.restore(state["drift_rows"])
        log = {k.removeprefix("log_"): v for k, v in state.items() if k.startswith("log_")}
        self.feedback_log.restore(log, self.steps)
        if self.retrain_every and self.steps >= self.retrain_every:
            self.fit_recommender(self.steps - self.steps % self.retrain_every)

    def state(self) -> dict[str, np.ndarray]:
        """Everything that changes during a run, the shards' state included (random draws are derived from
        seed and step)."""
        shards = {f"shard{k}_{name}": v for k, s in enumerate(self.shards.state()) for name, v in s.items()}
        return {**self.driver_state(), **shards}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state`."""
        per_shard: list[dict[str, np.ndarray]] = [{} for _ in range(self.shards.count)]
        for key, value in state.items():
            if key.startswith("shard") and "_" in key and key[5 : key.index("_")].isdigit():
                per_shard[int(key[5 : key.index("_")])][key[key.index("_") + 1 :]] = value
        self.shards.restore(per_shard)
        self.restore_driver(state)
