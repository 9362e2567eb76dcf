"""The Gymnasium environment: both checkers pass, a single environment and any row of the vector environment
play identical episodes, rewards follow the user's decisions, patience ends episodes, and the defaults make
an ML-100K environment."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import tastesim
from tastesim.gym.env import TasteEnv
from tastesim.gym.vector import TasteVectorEnv, sb3_vec_env


@pytest.fixture(scope="module")
def scenario(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The ML-100K slice with the fast test embedder and the logical decision model."""
    return {
        "seed": 3,
        "dataset": {"path": str(slice_dir), "name": "ml-100k-slice"},
        "analyser": {"embedder": "hashing"},
        "decision": {"model": "logical", "click_threshold": 0.3},
        "cache_dir": str(tmp_path_factory.mktemp("cache")),
    }


@pytest.mark.parametrize("config", [{}, {"slate_size": 3, "observe_consumed": False, "users": "test"}])
def test_both_environment_checkers_pass(scenario: dict, config: dict) -> None:
    env = TasteEnv(scenario, config)
    check_env(env, skip_render_check=True)
    sb3_check_env(TasteEnv(scenario, config), warn=True)


def test_make_after_import_tastesim(scenario: dict) -> None:
    env = gymnasium.make(tastesim.ENV_ID, scenario=scenario)
    assert isinstance(env.unwrapped, TasteEnv)
    vec = gymnasium.make_vec(tastesim.ENV_ID, num_envs=4, scenario=scenario)
    assert isinstance(vec, TasteVectorEnv) and vec.observation_space.shape == (4, *env.observation_space.shape)


def _single_run(scenario: dict, seed: int, actions: np.ndarray) -> list[tuple]:
    env = TasteEnv(scenario, {"episode_steps": 6})
    observation, _ = env.reset(seed=seed)
    trajectory = []
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(int(action))
        trajectory.append((observation.copy(), reward, terminated, truncated, info["user"]))
        if terminated or truncated:
            observation, _ = env.reset()  # the next episode of the same seed
    return trajectory


@pytest.mark.parametrize("decision", ["logical", "distilled"])
def test_rows_of_the_vector_environment_play_the_single_environments_episodes(scenario: dict, decision: str) -> None:
    scenario = {**scenario, "decision": {"model": decision, "stat_epochs": 2}}
    n, steps, seed = 5, 25, 11
    vec = TasteVectorEnv(n, scenario, {"episode_steps": 6})
    actions = np.random.default_rng(0).integers(0, vec.single_action_space.n, size=(steps, n))
    vec.reset(seed=seed)
    rows = []
    for t in range(steps):
        observation, reward, terminated, truncated, info = vec.step(actions[t])
        done = terminated | truncated
        final = info.get("final_obs")
        users = vec.world.population.users
        rows.append([
            (final[i] if done[i] else observation[i], reward[i], terminated[i], truncated[i],
             info["final_info"][i]["user"] if done[i] else str(users[vec.batch.agent[i]]))
            for i in range(n)
        ])  # fmt: skip
    ended = 0
    for i in range(n):
        single = _single_run(scenario, seed + i, actions[:, i])
        for t, (obs, reward, terminated, truncated, user) in enumerate(single):
            got = rows[t][i]
            np.testing.assert_array_equal(got[0], obs)
            assert (got[1], got[2], got[3], got[4]) == (reward, terminated, truncated, user)
            ended += terminated or truncated
    assert ended >= n  # episodes ended and restarted within the comparison


def test_rewards_follow_the_decisions_and_repeats_are_penalised(scenario: dict) -> None:
    rewards = {"like": 1.0, "click": 0.25, "dislike": -0.5, "skip": -0.1, "repeat": -2.0}
    env = TasteEnv(scenario, {"slate_size": 4, "rewards": rewards, "episode_steps": 50, "patience": (50, 50)})
    env.reset(seed=1)
    consumed = int(np.flatnonzero(env.batch.consumed[0])[0])
    seen = 0.0
    for _ in range(10):
        fresh = np.flatnonzero(~env.batch.consumed[0])[:3]
        _, reward, *_, info = env.step(np.array([consumed, *fresh]))
        expected = (
            rewards["like"] * info["likes"]
            + rewards["dislike"] * info["dislikes"]
            + rewards["click"] * info["clicks"]
            + rewards["skip"] * (3 - info["clicks"])
            + rewards["repeat"] * info["repeats"]
        )
        assert info["repeats"] == 1 and reward == pytest.approx(expected)
        seen += info["likes"]
    assert seen > 0


def test_patience_ends_an_episode_without_likes(scenario: dict) -> None:
    env = TasteEnv(scenario, {"patience": (2, 4), "episode_steps": 100})
    lengths = []
    for episode in range(6):
        env.reset(seed=5) if episode == 0 else env.reset()
        patience = int(env.batch.patience[0])
        consumed = int(np.flatnonzero(env.batch.consumed[0])[0])
        steps = 0
        terminated = truncated = False
        while not (terminated or truncated):  # always an item the user already consumed: never a like
            _, _, terminated, truncated, _ = env.step(consumed)
            steps += 1
        assert terminated and not truncated and steps == patience
        lengths.append(steps)
    assert set(lengths) <= {2, 3, 4} and len(set(lengths)) > 1  # patience is drawn per episode


def test_seen_and_unseen_users_are_disjoint(scenario: dict) -> None:
    train = TasteVectorEnv(32, scenario, {"users": "train"})
    test = TasteVectorEnv(32, scenario, {"users": "test"})
    assert set(train.world.train_users).isdisjoint(test.world.test_users)
    train.reset(seed=0)
    test.reset(seed=0)
    assert set(train.batch.agent) <= set(train.world.train_users)
    assert set(test.batch.agent) <= set(test.world.test_users)


def test_the_stable_baselines3_vec_env_autoresets_with_the_terminal_observation(scenario: dict) -> None:
    vec = sb3_vec_env(TasteVectorEnv(3, scenario, {"episode_steps": 2}))
    vec.seed(4)
    first = vec.reset()
    assert first.shape == (3, vec.observation_space.shape[0])
    vec.step(np.zeros(3, dtype=np.int64))
    observation, reward, done, infos = vec.step(np.ones(3, dtype=np.int64))
    assert done.all() and reward.shape == (3,)
    for info in infos:
        assert info["terminal_observation"].shape == observation.shape[1:]
        assert info["TimeLimit.truncated"]  # two steps, and every patience is at least 3


@pytest.mark.slow
def test_no_arguments_give_the_ml100k_environment(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASTESIM_CACHE", str(cache_dir))
    env = gymnasium.make(tastesim.ENV_ID)
    assert env.action_space.n == 1682
    observation, info = env.reset(seed=0)
    assert observation.shape == env.observation_space.shape and info["user"]
    _, reward, *_ = env.step(env.action_space.sample())
    assert isinstance(reward, float)
