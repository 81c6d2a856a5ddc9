"""The tick of a route run, composed: the documented order, and a component's place in it."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from unittest.mock import MagicMock

from sumo_world.run import tick_components as tc
from sumo_world.run.route_run import run_ticks

DOCUMENTED_ORDER = [
    tc.WorldSnapshotRead,  # read the world once
    tc.ScenarioActors,  # the scenarios' actors join what was read
    tc.ActorRecording,
    tc.CriteriaCheck,  # judged before the agent acts; may end the run
    tc.SceneUpdate,
    tc.AgentAct,
    tc.ControlPerturbation,  # a scenario's control loss, before the control is recorded and applied
    tc.TrajectoryRecording,
    tc.TickHook,
    tc.EgoPhysics,
    tc.CollisionResolution,  # from the state before and after the physics
    tc.TrafficYielding,
    tc.JamReleasing,
    tc.WorldStep,
    tc.ProgressBar,
]
OPTIONAL = {tc.ScenarioActors, tc.ControlPerturbation, tc.TickHook, tc.ProgressBar}


def _parts(**overrides) -> tc.RouteParts:
    required = [f.name for f in dataclasses.fields(tc.RouteParts)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    values = {name: MagicMock(name=name) for name in required}
    values.update(route_id="r", start_time_s=0.0)
    values.update(overrides)
    return tc.RouteParts(**values)


def test_the_tick_runs_its_components_in_the_documented_order():
    parts = _parts(manager=MagicMock(), on_tick=MagicMock(), bar=MagicMock())
    assert [type(c) for c in tc.tick_components(parts)] == DOCUMENTED_ORDER


def test_absent_optional_parts_leave_their_components_out_and_the_order_intact():
    components = tc.tick_components(_parts())
    assert [type(c) for c in components] == [c for c in DOCUMENTED_ORDER if c not in OPTIONAL]


class _Probe:
    """A component that logs its calls and may stop the run at a given frame."""

    def __init__(self, name: str, log: list, stop_at: int | None = None) -> None:
        self.name, self.log, self.stop_at = name, log, stop_at

    def step(self, tick: tc.Tick) -> None:
        self.log.append((tick.frame, self.name))
        tick.ego = SimpleNamespace(x=1.0, y=2.0, yaw_deg=0.0, speed_mps=0.0)
        if tick.frame == self.stop_at:
            tick.stop = True


def test_an_added_component_is_called_every_tick_in_its_place_until_one_stops_the_run():
    log: list = []
    components = [_Probe("a", log), _Probe("stopper", log, stop_at=2), _Probe("b", log)]
    components.insert(2, _Probe("added", log))  # one line: the new component, between stopper and b
    parts = _parts()
    control = SimpleNamespace(throttle=0.0, steer=0.0, brake=1.0)

    last = run_ticks(components, parts, control)

    assert log == [(0, "a"), (0, "stopper"), (0, "added"), (0, "b"),
                   (1, "a"), (1, "stopper"), (1, "added"), (1, "b"),
                   (2, "a"), (2, "stopper")]  # nothing after the component that ended the run
    assert last.frame == 2 and last.stop
    assert len(parts.trajectory) == 1 and parts.trajectory[0].brake == 1.0  # the last tick is recorded


def test_the_control_carries_over_to_the_next_tick_until_the_agent_acts():
    seen: list = []

    class Agent:
        def step(self, tick: tc.Tick) -> None:
            seen.append(tick.control.throttle)
            tick.control = SimpleNamespace(throttle=tick.control.throttle + 1.0, steer=0.0, brake=0.0)

    log: list = []
    run_ticks([Agent(), _Probe("end", log, stop_at=2)], _parts(),
              SimpleNamespace(throttle=0.0, steer=0.0, brake=1.0))
    assert seen == [0.0, 1.0, 2.0]
