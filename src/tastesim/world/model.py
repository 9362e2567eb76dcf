"""The Mesa model: owns the clock, the random tree, the population arrays and the step's phases."""

from __future__ import annotations

from copy import deepcopy

import mesa
import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastesim.agents.drift import click_offset, initial_state, item_vectors, update_state
from tastesim.agents.population import Population
from tastesim.agents.remember import remember_decisions
from tastesim.agents.user import UserAgent
from tastesim.catalog import Catalog, Decisions, PairFeatures
from tastesim.memory.journal import MemoryJournal
from tastesim.memory.working import WorkingMemory
from tastesim.recommenders import Feedback, Recommender, SlateRequest
from tastesim.recommenders.log import FeedbackLog
from tastesim.rng import RandomTree, Stream
from tastesim.scenario import DriftConfig
from tastesim.scoring.decider import Decider
from tastesim.world.drift_metrics import DriftTracker
from tastesim.world.metrics import StepMetrics, make_collector
from tastesim.world.shocks import ShockSchedule

__all__ = ["TasteModel"]


class TasteModel(mesa.Model):
    """A population of :class:`UserAgent` facing one recommender.

    Each step reads like the story: ``activate`` -> ``recommend`` -> ``decide`` (one batched call for all
    slates) -> ``remember`` -> ``drift`` -> ``learn`` (the recommender receives the feedback, and is refitted
    every ``retrain_every`` steps) -> ``collect``.
    """

    def __init__(
        self,
        catalog: Catalog,
        population: Population,
        memory: WorkingMemory,
        recommender: Recommender,
        decider: Decider,
        *,
        seed: int,
        slate_size: int = 10,
        allow_repeats: bool = False,
        activity: float = 1.0,
        journal: MemoryJournal | None = None,
        drift: DriftConfig | None = None,
        segments: dict[str, np.ndarray] | None = None,
        shocks: ShockSchedule | None = None,
        retrain_every: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.catalog = catalog
        self.population = population
        self.memory = memory
        self.recommender = recommender
        self.decider = decider
        self.random_tree = RandomTree(seed)
        self.slate_size = slate_size
        self.allow_repeats = allow_repeats
        self.journal = journal
        self.consumed = population.consumed.copy()
        self._holdout = sp.csr_matrix(
            (
                np.ones(sum(h.size for h in population.holdout), dtype=bool),
                (
                    np.repeat(np.arange(len(population.holdout)), [h.size for h in population.holdout]),
                    np.concatenate(population.holdout) if population.holdout else np.zeros(0, dtype=np.int64),
                ),
            ),
            shape=population.consumed.shape,
        )
        for index, (user, segment) in enumerate(zip(population.users, population.segments, strict=True)):
            UserAgent(self, index=index, user=str(user), segment=segment, activity=activity)
        self.metrics = StepMetrics(len(catalog.item_ids), catalog.tables.primary, catalog.self_information)
        self.datacollector = make_collector(self.metrics)
        self.last_interactions: pd.DataFrame | None = None
        self.drift_config = drift or DriftConfig()
        self.shocks = shocks
        self.item_vectors = item_vectors(catalog.tables, catalog.bank)
        self.interest = initial_state(memory, catalog.tables, catalog.bank, self.drift_config)
        self.drift_tracker = DriftTracker(
            segments or {}, catalog.tables.primary, self.item_vectors, catalog.tables.categories
        )
        self.retrain_every = retrain_every
        self.feedback_log = FeedbackLog(len(population.users), len(catalog.item_ids))
        self.fit_recommender(0)

    # -- phases -------------------------------------------------------------------------------------
    def activate(self) -> np.ndarray:
        """Indices of the agents acting this step (each with its own activity probability)."""
        draws = self.random_tree.generator(Stream.ACTIVITY, self.steps).random(len(self.agents))
        return np.array(
            sorted(a.index for a in self.agents.select(lambda a: a.wants_to_act(draws[a.index]))), dtype=np.int64
        )

    def recommend(self, active: np.ndarray) -> np.ndarray:
        """Ask the recommender for one slate per acting agent; blocked items are dropped."""
        blocked = (
            np.zeros((len(active), self.consumed.shape[1]), dtype=bool) if self.allow_repeats else self.consumed[active]
        )
        request = SlateRequest(
            agents=active,
            history=sp.csr_matrix(self.consumed[active], dtype=np.float32),
            blocked=blocked,
            k=self.slate_size,
            step=self.steps,
            rng=self.random_tree.generator(Stream.RECOMMENDER, self.steps),
        )
        slates = np.asarray(self.recommender.recommend(request), dtype=np.int64).reshape(len(active), self.slate_size)
        inside = (slates >= 0) & (slates < self.consumed.shape[1])
        slates = np.where(inside, slates, -1)
        illegal = np.take_along_axis(blocked, np.where(inside, slates, 0), axis=1) & inside
        return np.where(illegal, -1, slates)

    def decide(
        self, active: np.ndarray, slates: np.ndarray, click_offset: np.ndarray | None = None
    ) -> tuple[Decisions, PairFeatures]:
        """One batched call decides every shown item of the step (``click_offset``: added click log-odds)."""
        draws = self.random_tree.keyed(Stream.DECIDE, self.steps).rows(active)
        return self.decider.decide(self.memory, active, slates, draws, click_offset)

    def remember(self, active: np.ndarray, slates: np.ndarray, decisions: Decisions) -> int:
        """Consume clicked items; liked items add like memories, disliked items dislike memories."""
        agent_of = np.broadcast_to(active[:, None], slates.shape)
        self.consumed[agent_of[decisions.click], slates[decisions.click]] = True
        changes = remember_decisions(self.memory, self.catalog.tables, active, slates, decisions, step=self.steps)
        if self.journal is not None:
            for change in changes:
                self.journal.reinforced(change.reinforced)
                self.journal.created(change.created)
        return sum(len(change.created) for change in changes)

    def collect(
        self, active: np.ndarray, slates: np.ndarray, decisions: Decisions, features: PairFeatures, new: int
    ) -> None:
        """Record the step's metrics and its interaction rows."""
        shown = slates >= 0
        agent_of = np.broadcast_to(active[:, None], slates.shape)
        hits = int(self._holdout[agent_of[shown], slates[shown]].sum()) if shown.any() else 0
        self.metrics.measure(slates, decisions, hits, int((self.memory.reason >= 0).sum()), new)
        self.datacollector.collect(self)
        position = np.broadcast_to(np.arange(slates.shape[1]), slates.shape)
        item_ids = np.asarray(self.catalog.item_ids, dtype=object)
        self.last_interactions = pd.DataFrame(
            {
                "step": np.full(int(shown.sum()), self.steps, dtype=np.int32),
                "agent": agent_of[shown].astype(np.int32),
                "user": self.population.users[agent_of[shown]],
                "item": item_ids[slates[shown]],
                "position": position[shown].astype(np.int16),
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

    def offset(self, active: np.ndarray, slates: np.ndarray) -> np.ndarray | None:
        """Click log-odds offsets from the agents' interest state (``None`` when drift is off)."""
        if not self.drift_config.enabled:
            return None
        draws = self.random_tree.keyed(Stream.EXPLORE, self.steps).rows(active)
        vectors, primary, params = self.item_vectors, self.catalog.tables.primary, self.drift_config
        return click_offset(self.interest, active, slates, vectors=vectors, primary=primary, params=params, draws=draws)

    def drift(self, active: np.ndarray, slates: np.ndarray, decisions: Decisions) -> None:
        """Move interest states after the step's decisions and record the drift metrics."""
        before = deepcopy(self.interest)
        if self.drift_config.enabled:
            vectors, primary, params = self.item_vectors, self.catalog.tables.primary, self.drift_config
            update_state(self.interest, active, slates, decisions, vectors=vectors, primary=primary, params=params)
        self.drift_tracker.measure(self.steps, active, slates, decisions, before=before, after=self.interest)

    def reseed_mesa(self) -> None:
        """Derive Mesa's own generators (``model.random``, ``model.rng``, which agents and agent sets share)
        from the random tree for this step, so that code drawing from them stays exact under resume."""
        self.reset_randomizer(self.random_tree.integer_seed(Stream.MESA, self.steps))
        self.reset_rng(self.random_tree.generator(Stream.MESA, self.steps, key="numpy"))

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

    def step(self) -> None:
        """One simulation step."""
        self.reseed_mesa()
        active = self.activate()
        if self.shocks is not None:
            active = self.shocks.present(active, self.steps)
            self.shocks.perturb(self.steps, self.interest)
        slates = self.recommend(active)
        decisions, features = self.decide(active, slates, click_offset=self.offset(active, slates))
        new = self.remember(active, slates, decisions)
        self.drift(active, slates, decisions)
        self.learn(active, slates, decisions)
        self.collect(active, slates, decisions, features, new)

    # -- checkpoint state ---------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Everything that changes during a run (random draws are derived from seed and step)."""
        return {
            "steps": np.array(self.steps),
            "consumed": np.packbits(self.consumed, axis=1),
            "shown_ever": self.metrics.shown_ever,
            **{f"memory_{k}": v for k, v in self.memory.state().items()},
            **{f"interest_{k}": v for k, v in self.interest.arrays().items()},
            "drift_rows": self.drift_tracker.state(),
            **{f"log_{k}": v for k, v in self.feedback_log.state().items()},
        }

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state`."""
        self.steps = int(state["steps"])
        self.consumed[...] = np.unpackbits(state["consumed"], axis=1, count=self.consumed.shape[1]).astype(bool)
        self.metrics.shown_ever[...] = state["shown_ever"]
        for key, value in state.items():
            if key.startswith("memory_"):
                getattr(self.memory, key.removeprefix("memory_"))[...] = value
        self.interest.load({k.removeprefix("interest_"): v for k, v in state.items() if k.startswith("interest_")})
        self.drift_tracker.restore(state["drift_rows"])
        log = {k.removeprefix("log_"): v for k, v in state.items() if k.startswith("log_")}
        self.feedback_log.restore(log, self.steps)
        if self.retrain_every and self.steps >= self.retrain_every:
            self.fit_recommender(self.steps - self.steps % self.retrain_every)
