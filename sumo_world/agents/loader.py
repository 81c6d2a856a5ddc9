"""Loading and driving a leaderboard agent class the way the leaderboard does.

An agent is a Python file with a module-level ``get_entry_point()`` returning
the class name, or ``builtin:<name>`` (:mod:`sumo_world.agents.builtin`).

Construction order follows the agent's generation:

- leaderboard 1.0 (``__init__(path_to_conf_file)``): the constructor calls
  ``setup`` itself; then ``set_global_plan``;
- leaderboard 2.0 (``__init__(carla_host, carla_port, debug=False)``): construct,
  then ``set_global_plan``, then ``setup(path_to_conf_file)``.

Then ``set_scene_provider(provider)`` when the agent has it, ``sensors()``,
``run_step(input_data, timestamp)`` every tick, and ``destroy()``.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AgentLoadError", "AgentSpec", "load_agent_class", "create_agent", "agent_name"]

_V2_PARAMETERS = {"carla_host", "carla_port", "host", "port", "debug"}


class AgentLoadError(RuntimeError):
    """The agent file or class cannot be loaded (the message names the file and the problem)."""


@dataclass(frozen=True)
class AgentSpec:
    """A loaded agent class and whether it follows the 2.0 constructor."""

    cls: type
    source: str
    v2: bool


def agent_name(agent: str) -> str:
    """A short name for results metadata: ``builtin:follow`` or the file's stem."""
    return agent if agent.startswith("builtin:") else Path(agent).stem


def load_agent_class(agent: str) -> AgentSpec:
    """Import the agent file (or built-in) and return its entry-point class."""
    if agent.startswith("builtin:"):
        from sumo_world.agents.builtin import builtin_agent_class

        try:
            cls = builtin_agent_class(agent.split(":", 1)[1])
        except ValueError as exc:
            raise AgentLoadError(str(exc)) from None
        return AgentSpec(cls, agent, False)
    path = Path(agent)
    if not path.is_file():
        raise AgentLoadError(f"agent file not found: {path} (give a .py file with get_entry_point(), "
                             f"or builtin:follow / builtin:reckless / builtin:stopped)")
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # agents import their sibling modules, as under the leaderboard
        sys.path.insert(0, folder)
    module_name = f"langprop_agent_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AgentLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AgentLoadError(f"{path}: importing the agent failed: {type(exc).__name__}: {exc}") from exc
    entry = getattr(module, "get_entry_point", None)
    if entry is None:
        raise AgentLoadError(f"{path}: no module-level get_entry_point() (the leaderboard needs it)")
    class_name = entry()
    cls = getattr(module, str(class_name), None)
    if not inspect.isclass(cls):
        raise AgentLoadError(f"{path}: get_entry_point() returned {class_name!r}, which is not a class "
                             f"defined in the file")
    return AgentSpec(cls, str(path), _is_v2(cls))


def _is_v2(cls: type) -> bool:
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    names = {p.name for p in parameters}
    if names & _V2_PARAMETERS:
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def create_agent(spec: AgentSpec, agent_config: str | None, gps_plan: list, world_plan: list) -> Any:
    """Construct the agent and give it its route, in the order its leaderboard generation uses."""
    config = agent_config if agent_config is not None else ""
    if spec.v2:
        agent = spec.cls("localhost", 2000, False)
        agent.set_global_plan(gps_plan, world_plan)
        agent.setup(config)
    else:
        agent = spec.cls(config)
        agent.set_global_plan(gps_plan, world_plan)
    return agent
