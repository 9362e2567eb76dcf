"""``tastesim rl train`` and ``tastesim rl eval``: the method's reinforcement-learning experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastesim.cli.terminal import PhaseProgress, console, fail, offline

__all__ = ["rl_app"]

rl_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train and compare RL recommenders in the environment."
)

_Scenario = Annotated[
    Path | None, typer.Option("--scenario", "-s", help="scenario whose data and decision model to use (ML-100K)")
]
_Steps = Annotated[int, typer.Option("--episode-steps", help="steps before an episode is truncated")]


@rl_app.command()
def train(  # noqa: PLR0917 (typer maps each command-line option to a parameter)
    algo: Annotated[str, typer.Option("--algo", "-a", help="dqn | ppo | a2c | trpo")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for policy.zip, learning_curve.csv, train.json")],
    scenario: _Scenario = None,
    timesteps: Annotated[int, typer.Option("--timesteps", "-t", help="environment steps to train for")] = 200_000,
    envs: Annotated[int, typer.Option("--envs", help="simulated users stepped at once")] = 8,
    seed: Annotated[int, typer.Option(help="seed of the training run")] = 0,
    episode_steps: _Steps = 20,
    mask: Annotated[
        bool, typer.Option("--mask/--no-mask", help="recommend only items the user has not consumed")
    ] = True,
    threads: Annotated[
        int, typer.Option(help="torch threads while training (more only pays on a machine with idle cores)")
    ] = 1,
) -> None:
    """Train a policy with Stable-Baselines3 (TRPO from sb3-contrib) on the scenario's training users."""
    offline()
    from pydantic import ValidationError

    from tastesim.data.dataset import DataFormatError
    from tastesim.runs.outcome import RunError
    from tastesim.runs.rl import TrainRequest, train_policy
    from tastesim.scenario import ScenarioError

    try:
        request = TrainRequest.model_validate(
            {"algo": algo, "timesteps": timesteps, "envs": envs, "seed": seed, "env": {"episode_steps": episode_steps}}
            | {"mask_consumed": mask, "threads": threads}
        )
        with PhaseProgress() as report:
            summary = train_policy(request, scenario, out, report)
    except ValidationError as err:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))
    except (ScenarioError, DataFormatError, RunError) as err:
        fail(str(err))
    console.print(
        f"trained {summary['algo']} for {summary['timesteps']} steps in {summary['wall_seconds']} s "
        f"({summary['timesteps_per_second']} steps/s); policy in [bold]{out}[/]",
        highlight=False,
    )


@rl_app.command("eval")
def evaluate(  # noqa: PLR0917 (typer maps each command-line option to a parameter)
    policies: Annotated[list[Path] | None, typer.Argument(help="folders written by `tastesim rl train`")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for rl_eval.csv and rl_eval.md")] = Path("rl-eval"),
    scenario: _Scenario = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="episodes per policy and user set")] = 512,
    envs: Annotated[int, typer.Option("--envs", help="users stepped at once")] = 128,
    seed: Annotated[int, typer.Option(help="seed of the evaluation episodes")] = 10_000,
    episode_steps: _Steps = 20,
) -> None:
    """Compare trained policies with random, most-popular and item-kNN on seen and unseen users."""
    offline()
    from pydantic import ValidationError

    from tastesim.data.dataset import DataFormatError
    from tastesim.runs.outcome import RunError
    from tastesim.runs.rl import EvalRequest, evaluate_policies
    from tastesim.scenario import ScenarioError

    try:
        request = EvalRequest.model_validate(
            {
                "policies": policies or [],
                "episodes": episodes,
                "envs": envs,
                "seed": seed,
                "env": {"episode_steps": episode_steps},
            }
        )
        with PhaseProgress() as report:
            evaluate_policies(request, scenario, out, report)
    except ValidationError as err:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))
    except (ScenarioError, DataFormatError, RunError) as err:
        fail(str(err))
    console.print((out / "rl_eval.md").read_text(encoding="utf-8"), highlight=False)
