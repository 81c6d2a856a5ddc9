"""Checks that run before any world starts, so bad input ends a command at once, as one line.

Every ``langprop`` command that drives routes or trains calls the checks that
apply to it before it starts a world or a worker: the towns exist and every
route plans in its town, the scenario file reads, the agent's file and class
load and its ``setup()`` accepts its config (for a LangProp checkpoint that is
``langprop_core.inference.load_policy``, the agent's own loader), a
checkpoint to start from loads the same way, and a dataset to train on has
labelled records. Each failure is a :class:`PreflightError` (a ``ValueError``:
the CLI prints it as ``Error: <what>`` and exits 1, the traceback only with
``--debug``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

__all__ = ["PreflightError", "check_routes", "check_scenarios", "check_agent", "check_checkpoint",
           "check_dataset"]

log = logging.getLogger(__name__)


class PreflightError(ValueError):
    """An input that would fail the run later; the message names the file or value and the problem."""


def check_routes(routes: Path, town: str, towns_dir: Path | None,
                 route_ids: Sequence[str] | None = None) -> int:
    """Every selected route of ``routes`` names a stored town and plans in it; the number of routes."""
    from sumo_world.roads.network import RoadNetwork
    from sumo_world.routes.planner import RoutePlanningError, plan_route
    from sumo_world.routes.files import RouteFileError, read_routes
    from sumo_world.towns.info import TownError
    from sumo_world.towns.store import TownStore

    try:
        found = read_routes(Path(routes))
    except RouteFileError as exc:
        raise PreflightError(str(exc)) from None
    if route_ids:
        known = {str(r.route_id) for r in found}
        missing = [str(r) for r in route_ids if str(r) not in known]
        if missing:
            raise PreflightError(f"{routes}: no route with id {', '.join(missing)} "
                                 f"(ids in the file: {', '.join(sorted(known)) or 'none'})")
        found = [r for r in found if str(r.route_id) in {str(i) for i in route_ids}]
    if not found:
        raise PreflightError(f"{routes}: no routes to run")
    store = TownStore(towns_dir)
    if town:
        try:
            store.get(town)  # a town that is not stored says which are, and how to add it
        except TownError as exc:
            raise PreflightError(str(exc)) from None
    networks: dict[str, object] = {}
    for route in found:
        name = town or route.town
        if not name:
            raise PreflightError(f"{routes}: route {route.route_id} names no town and no --town was given")
        if town and route.town and route.town != town:
            raise PreflightError(f"{routes}: route {route.route_id} is in town {route.town!r}, not {town!r} "
                                 f"(filter with --route-id or give the matching --town)")
        try:
            if name not in networks:
                networks[name] = RoadNetwork.load(store.get(name).net_path)
            plan_route(networks[name], route)
        except TownError as exc:
            raise PreflightError(str(exc)) from None
        except RoutePlanningError as exc:
            raise PreflightError(f"{routes}: route {route.route_id} cannot be planned in {name}: {exc}") from None
    return len(found)


def check_scenarios(scenarios: Path | None) -> None:
    """The leaderboard-1.0 scenario file reads (no-op without one)."""
    if scenarios is None:
        return
    from sumo_world.scenarios import ScenarioFileError, read_scenario_file

    try:
        read_scenario_file(Path(scenarios))
    except ScenarioFileError as exc:
        raise PreflightError(str(exc)) from None


def check_checkpoint(checkpoint: Path | str) -> str:
    """The checkpoint (directory or ``.py`` script) loads with the LangProp agent's loader; its best script's id."""
    from langprop_core.inference import load_policy
    from team_code.langprop_agent import FUNCTION_NAME

    path = Path(checkpoint)
    if not path.exists():
        raise PreflightError(f"checkpoint {path} does not exist")
    try:  # sandboxed, as the agent loads it: a checkpoint's scripts are untrusted
        policy = load_policy(str(path), function_name=FUNCTION_NAME, sandbox=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the loader is this input's problem
        raise PreflightError(_one_line(f"checkpoint {path}", exc)) from None
    policy.close()
    return str(policy.policy_id)


def check_agent(agent: str, agent_config: str | None) -> None:
    """The agent's file and class load, and it sets itself up with ``agent_config`` (then it is destroyed).

    The agent is built as the leaderboard builds it (1.0: the constructor calls
    ``setup``; 2.0: ``setup`` after), without a route or world: ``setup`` is
    where agents read their config and load their model.
    """
    from sumo_world.agents.loader import AgentLoadError, load_agent_class

    try:
        spec = load_agent_class(agent)
    except AgentLoadError as exc:
        raise PreflightError(str(exc)) from None
    if agent.startswith("builtin:"):
        return
    config = agent_config if agent_config is not None else ""
    try:
        if spec.v2:
            instance = spec.cls("localhost", 2000, False)
            instance.setup(config)
        else:
            instance = spec.cls(config)
    except Exception as exc:  # noqa: BLE001 - the agent's setup failing is this input's problem
        raise PreflightError(_one_line(f"agent {agent}: setup({config or 'no config'!r}) failed", exc)) from None
    try:
        instance.destroy()
    except Exception:  # noqa: BLE001 - a failing destroy() is reported after each route, not here
        log.debug("agent %s: destroy() after the set-up check raised", agent, exc_info=True)


def check_dataset(path: Path) -> None:
    """``path`` is a scene dataset with records (what ``collect`` or ``relabel`` wrote)."""
    from driving.dataset import DatasetError, SceneDataset

    if not (Path(path) / "index.json").is_file():
        raise PreflightError(f"{path}: not a scene dataset (no index.json); make one with `langprop collect`")
    try:
        if len(SceneDataset(path)) == 0:
            raise PreflightError(f"{path}: the dataset holds no records")
    except DatasetError as exc:
        raise PreflightError(str(exc)) from None


def _one_line(what: str, exc: BaseException) -> str:
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return f"{what}: {text}"
