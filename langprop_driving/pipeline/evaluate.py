"""Evaluate any agent on a route set in the embedded world: leaderboard results and a summary.

An agent is named by what the user has at hand (:func:`resolve_agent`):

- ``expert``: the privileged expert (``team_code/expert_agent.py``);
- ``builtin:<name>``: one of the embedded world's simple agents;
- a LangProp checkpoint directory (or a training run directory): the LangProp agent runs its best script;
- a ``.py`` file defining ``predict_speed_and_steering``: the LangProp agent runs that function;
- a ``.py`` leaderboard agent file (defining ``get_entry_point``): run as it is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from langprop_driving.model.seed_policy import FUNCTION_NAME, top_level_functions
from langprop_driving.pipeline.config import WorldConfig

__all__ = ["AgentSpec", "resolve_agent", "team_code_agent", "evaluate_agent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSpec:
    """An agent file for the runner and its config (checkpoint or script path, or None).

    ``description`` says what runs, for people; ``label`` names it in the results' meta.
    """

    agent: str
    agent_config: str | None
    description: str
    label: str | None = None


def team_code_agent(name: str) -> Path:
    """The path of ``team_code/<name>.py`` (``expert_agent``, ``langprop_agent``)."""
    import team_code

    path = Path(team_code.__file__).resolve().parent / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: agent file missing from the team_code package")
    return path


def resolve_agent(spec: str | Path) -> AgentSpec:
    """Turn a user's agent name into a runner agent file and config; errors say what was expected."""
    text = str(spec)
    if text == "expert":
        return AgentSpec(str(team_code_agent("expert_agent")), None, "expert", "expert")
    if text.startswith("builtin:"):
        return AgentSpec(text, None, text, text)
    path = Path(text).expanduser()
    if path.is_dir():
        from langprop_core.checkpoint import resolve_checkpoint_dir

        checkpoint = resolve_checkpoint_dir(path)  # raises CheckpointError naming the folder
        return AgentSpec(str(team_code_agent("langprop_agent")), str(checkpoint), f"checkpoint {checkpoint}",
                         f"checkpoint:{checkpoint}")
    if path.suffix == ".py" and path.is_file():
        functions = top_level_functions(path)
        if "get_entry_point" in functions:  # a leaderboard agent, whatever helpers it defines
            return AgentSpec(str(path.resolve()), None, f"agent {path}", path.stem)
        if FUNCTION_NAME in functions:
            return AgentSpec(str(team_code_agent("langprop_agent")), str(path.resolve()), f"script {path}",
                             f"script:{path.resolve()}")
        raise ValueError(f"{path}: defines neither {FUNCTION_NAME}(scene) (a LangProp script) nor "
                         "get_entry_point() (a leaderboard agent)")
    expected = (f"expected 'expert', 'builtin:<name>', a checkpoint directory, or a .py file "
                f"(a script with {FUNCTION_NAME} or a leaderboard agent)")
    if not path.exists():
        raise ValueError(f"agent {text!r}: {path} does not exist; {expected}")
    raise ValueError(f"agent {text!r}: unsupported; {expected}")


def evaluate_agent(agent: str | Path, world: WorldConfig, routes: Path, results: Path,
                   route_ids: Sequence[str] | None = None, pictures_dir: Path | None = None,
                   resume: bool = True, progress: bool = True, **runner_options: Any) -> dict[str, Any]:
    """Run ``agent`` on ``routes`` (resumable: finished routes in ``results`` are kept); the results JSON.

    The route jobs come from :meth:`WorldConfig.evaluation` (the mapping that
    collection, validation and DAgger use too); ``runner_options`` go to
    ``sumo_world.run.runner.EvaluationConfig`` as they are (e.g. ``repetitions``, ``warmup_s``).
    """
    from sumo_world.run.runner import evaluate

    spec = resolve_agent(agent)
    log.info("evaluating %s on %s", spec.description, routes)
    config = world.evaluation(Path(routes), spec.agent, spec.agent_config, Path(results), route_ids=route_ids,
                              pictures_dir=pictures_dir, progress=progress,
                              **{"resume": resume, "agent_label": spec.label, "repetitions": 1, **runner_options})
    return evaluate(config)
