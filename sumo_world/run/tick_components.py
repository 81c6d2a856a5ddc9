"""The parts of one simulation tick of a route run, and their order.

Every component has one method, ``step(tick)``, reading and writing the
tick's :class:`Tick` record; :func:`tick_components` lists them in the order
a tick runs them, the only place where that order is written. Adding a
component is a class here and a line in that list.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from sumo_world.scoring.records import ActorSample, Infraction, TrajectorySample

if TYPE_CHECKING:  # the world's modules load libsumo: imported where a route runs, not here
    from sumo_world.ego.collisions import CollisionResponse
    from sumo_world.scoring.criteria import RouteCriteria
    from sumo_world.ego.dynamics import EgoState, EgoVehicle
    from sumo_world.traffic.jams import JamRelease
    from sumo_world.scenarios import ScenarioManager
    from sumo_world.scene.builder import RouteContext, SumoSceneProvider
    from sumo_world.scene.sensors import SensorSuite
    from sumo_world.traffic.yielding import TrafficYield
    from sumo_world.simulation.snapshot import WorldSnapshot
    from sumo_world.simulation.world import SumoWorld

__all__ = ["Tick", "TickComponent", "TickInfo", "RouteParts", "AgentErrors", "tick_components",
           "AGENT_CRASH_TICKS", "trajectory_sample"]

logger = logging.getLogger(__name__)

#: consecutive ticks whose run_step raised after which the route ends as an agent crash: an
#: occasional exception costs a braking tick (the interface's rule), an agent that keeps raising
#: cannot drive, and the leaderboard would have stopped it at its first exception (1 s of game time)
AGENT_CRASH_TICKS = 20
_ACTOR_SAMPLE_PERIOD_S = 1.0
_ACTOR_SAMPLE_RADIUS_M = 80.0
_PROGRESS_EVERY_TICKS = 20


@dataclass(slots=True)
class Tick:
    """What one tick's components hand each other.

    ``control`` starts as the previous tick's control (the one a run that ends
    now is recorded with) until the agent acts. ``ego`` is the ego's state at
    the tick's start; its physics writes the next one into the ego vehicle.
    ``stop`` ends the run after the component that set it.
    """

    frame: int
    control: Any
    snapshot: WorldSnapshot | None = None
    ego: EgoState | None = None
    elapsed_s: float = 0.0
    held_sumo_ids: Any = ()
    stop: bool = False


class TickComponent(Protocol):
    """One part of a tick: reads and writes the tick's record (and the world it was built on)."""

    def step(self, tick: Tick) -> None:
        """Do this component's part of ``tick``; set ``tick.stop`` to end the run."""


@dataclass
class TickInfo:
    """What a per-tick hook of :func:`sumo_world.run.runner.run_route` sees (in-process runs only)."""

    time_s: float
    frame: int
    ego: Any
    provider: Any
    control: Any
    infractions: list[Infraction] = field(default_factory=list)


@dataclass
class AgentErrors:
    """The agent's ``run_step`` failures in a run: all of them, the current streak, and the crash (if any)."""

    raised: int = 0
    in_a_row: int = 0
    crash: str | None = None


@dataclass
class RouteParts:
    """What a route run's components act on, made once when the route starts."""

    route_id: str
    world: SumoWorld
    ego: EgoVehicle
    context: RouteContext
    criteria: RouteCriteria
    provider: SumoSceneProvider
    agent: Any
    sensors: SensorSuite
    crashes: CollisionResponse
    yielding: TrafficYield
    jams: JamRelease
    start_time_s: float
    brake: Callable[[], Any]  # a full-brake control (what a failing agent gets)
    manager: ScenarioManager | None = None
    on_tick: Callable[[TickInfo], None] | None = None
    bar: Any = None
    trajectory: list[TrajectorySample] = field(default_factory=list)
    actors: list[ActorSample] = field(default_factory=list)
    errors: AgentErrors = field(default_factory=AgentErrors)


def tick_components(parts: RouteParts) -> list[TickComponent]:
    """The components of a tick, in the order they run. The order is the reason for this list:

    the world is read once (snapshot), then the scenarios add their actors to
    what was read, so the criteria, the recording and the agent all see one
    and the same world; the criteria judge the state the agent is about to act
    from, and end the run before it acts (as the leaderboard's criteria tick
    before the agent); the scene provider is brought up to date for the
    agent; the agent's control may be perturbed by a scenario (control loss)
    and is recorded as applied; then the ego moves (bicycle model), a crash
    costs it speed (collision response, from the state before and after), SUMO's
    drivers react to where it now is (traffic yield, jam release, both told
    which drivers a crash holds), and SUMO steps. Optional components are left
    out when their part is absent.
    """
    order: list[TickComponent | None] = [
        WorldSnapshotRead(parts),
        ScenarioActors(parts) if parts.manager is not None else None,
        ActorRecording(parts),
        CriteriaCheck(parts),
        SceneUpdate(parts),
        AgentAct(parts),
        ControlPerturbation(parts) if parts.manager is not None else None,
        TrajectoryRecording(parts),
        TickHook(parts) if parts.on_tick is not None else None,
        EgoPhysics(parts),
        CollisionResolution(parts),
        TrafficYielding(parts),
        JamReleasing(parts),
        WorldStep(parts),
        ProgressBar(parts) if parts.bar is not None else None,
    ]
    return [component for component in order if component is not None]


def trajectory_sample(elapsed_s: float, state: Any, control: Any) -> TrajectorySample:
    """The ego and its control at one tick, as the outcome's trajectory keeps them."""
    return TrajectorySample(round(elapsed_s, 4), float(state.x), float(state.y), float(state.yaw_deg),
                            float(state.speed_mps), float(control.throttle), float(control.steer),
                            float(control.brake))


def checked_control(control: Any) -> Any:
    """The agent's control, if it has finite throttle, steer and brake (TypeError otherwise)."""
    try:
        values = [float(control.throttle), float(control.steer), float(control.brake)]
    except (AttributeError, TypeError, ValueError):
        raise TypeError(f"run_step returned {type(control).__name__}, not a carla.VehicleControl") from None
    if not all(value == value for value in values):  # NaN
        raise TypeError(f"run_step returned a control with NaN: throttle, steer, brake = {values}")
    return control


def _actor_samples(snap: Any, state: Any, elapsed: float) -> list[ActorSample]:
    import numpy as np

    out = []
    for actors in (snap.vehicles, snap.pedestrians):
        if not len(actors):
            continue
        near = np.nonzero(np.linalg.norm(actors.xy - state.xy, axis=1) < _ACTOR_SAMPLE_RADIUS_M)[0]
        for k in near:
            actor_type = actors.types[k]
            kind = "walker" if actor_type == "pedestrian" else ("bicycle" if actor_type == "bicycle" else "vehicle")
            out.append(ActorSample(round(elapsed, 4), int(actors.ids[k]), kind, float(actors.xy[k][0]),
                                   float(actors.xy[k][1]), float(actors.yaw_deg[k]),
                                   float(actors.half_length_m[k]), float(actors.half_width_m[k])))
    return out


# ----------------------------------------------------------------------------- the components, in tick order


class WorldSnapshotRead:
    """Reads the world once for the tick: the snapshot, the ego's state and the route's clock."""

    def __init__(self, parts: RouteParts) -> None:
        self.world, self.ego, self.start_time_s = parts.world, parts.ego, parts.start_time_s

    def step(self, tick: Tick) -> None:
        tick.snapshot = self.world.snapshot()
        tick.ego = self.ego.state
        tick.elapsed_s = tick.snapshot.time_s - self.start_time_s


class ScenarioActors:
    """Runs the route's scenarios; their actors join the snapshot like any other."""

    def __init__(self, parts: RouteParts) -> None:
        self.manager, self.context = parts.manager, parts.context

    def step(self, tick: Tick) -> None:
        tick.snapshot = self.manager.update(tick.elapsed_s, tick.ego, self.context.tracker.update(tick.ego.xy),
                                            self.context.progress_m, tick.snapshot)


class ActorRecording:
    """Keeps the actors near the ego once per simulated second (for pictures and replays)."""

    def __init__(self, parts: RouteParts) -> None:
        self.actors = parts.actors
        self.next_sample_s = 0.0

    def step(self, tick: Tick) -> None:
        if tick.elapsed_s + 1e-9 >= self.next_sample_s:
            self.actors.extend(_actor_samples(tick.snapshot, tick.ego, tick.elapsed_s))
            self.next_sample_s += _ACTOR_SAMPLE_PERIOD_S


class CriteriaCheck:
    """Evaluates the leaderboard's criteria; completion, deviation, blocking or timeout end the run."""

    def __init__(self, parts: RouteParts) -> None:
        self.criteria = parts.criteria

    def step(self, tick: Tick) -> None:
        self.criteria.update(tick.ego, tick.snapshot)
        tick.stop = self.criteria.done


class SceneUpdate:
    """Brings the scene provider (what privileged agents read) up to the tick."""

    def __init__(self, parts: RouteParts) -> None:
        self.provider = parts.provider

    def step(self, tick: Tick) -> None:
        self.provider.update(tick.ego, tick.snapshot)


class AgentAct:
    """The agent's ``run_step``: its exceptions are counted and cost a braking tick (the interface's
    rule); :data:`AGENT_CRASH_TICKS` of them in a row end the run."""

    def __init__(self, parts: RouteParts) -> None:
        self.agent, self.sensors, self.errors = parts.agent, parts.sensors, parts.errors
        self.route_id, self.brake = parts.route_id, parts.brake

    def step(self, tick: Tick) -> None:
        errors = self.errors
        try:
            tick.control = checked_control(self.agent.run_step(self.sensors.read(tick.frame, tick.ego),
                                                               tick.elapsed_s))
            errors.in_a_row = 0
        except Exception as exc:  # the agent's bug: count it, brake, go on
            errors.raised += 1
            errors.in_a_row += 1
            if errors.raised <= 3:
                logger.warning("route %s: agent run_step raised at t=%.2f s: %s", self.route_id,
                               tick.elapsed_s, exc)
                logger.debug("%s", traceback.format_exc())
            tick.control = self.brake()
            if errors.in_a_row >= AGENT_CRASH_TICKS:
                errors.crash = (f"run_step raised on {errors.in_a_row} ticks in a row, last at "
                                f"t={tick.elapsed_s:.2f} s: {type(exc).__name__}: {exc}")
                tick.stop = True


class ControlPerturbation:
    """Lets a scenario perturb the agent's control (control loss) before the car gets it."""

    def __init__(self, parts: RouteParts) -> None:
        self.manager = parts.manager

    def step(self, tick: Tick) -> None:
        tick.control = self.manager.perturb(tick.control)


class TrajectoryRecording:
    """Keeps the ego's state and the control it is about to apply."""

    def __init__(self, parts: RouteParts) -> None:
        self.trajectory = parts.trajectory

    def step(self, tick: Tick) -> None:
        self.trajectory.append(trajectory_sample(tick.elapsed_s, tick.ego, tick.control))


class TickHook:
    """Hands the caller's per-tick hook what the agent saw and did (recording)."""

    def __init__(self, parts: RouteParts) -> None:
        self.on_tick, self.provider, self.criteria = parts.on_tick, parts.provider, parts.criteria

    def step(self, tick: Tick) -> None:
        self.on_tick(TickInfo(tick.elapsed_s, tick.frame, tick.ego, self.provider, tick.control,
                              list(self.criteria.infractions)))


class EgoPhysics:
    """Applies the control to the ego's bicycle model for one world step."""

    def __init__(self, parts: RouteParts) -> None:
        self.ego, self.step_s = parts.ego, parts.world.step_s

    def step(self, tick: Tick) -> None:
        control = tick.control
        self.ego.apply(control.throttle, control.steer, control.brake, self.step_s,
                       hand_brake=bool(getattr(control, "hand_brake", False)),
                       reverse=bool(getattr(control, "reverse", False)))


class CollisionResolution:
    """A crash costs speed and time, as in CARLA; notes which SUMO drivers the crash holds."""

    def __init__(self, parts: RouteParts) -> None:
        self.crashes, self.ego = parts.crashes, parts.ego

    def step(self, tick: Tick) -> None:
        self.ego.state = self.crashes.resolve(tick.ego, self.ego.state, tick.snapshot)
        tick.held_sumo_ids = self.crashes.held_sumo_ids()


class TrafficYielding:
    """SUMO's drivers stop for the ego's body in their path."""

    def __init__(self, parts: RouteParts) -> None:
        self.yielding, self.ego = parts.yielding, parts.ego

    def step(self, tick: Tick) -> None:
        self.yielding.update(self.ego.state, tick.snapshot, tick.held_sumo_ids)


class JamReleasing:
    """Vehicles locked in a SUMO jam leave (SUMO teleports nobody)."""

    def __init__(self, parts: RouteParts) -> None:
        self.jams = parts.jams

    def step(self, tick: Tick) -> None:
        self.jams.update(tick.snapshot.time_s, tick.held_sumo_ids)


class WorldStep:
    """Moves the ego in SUMO and steps SUMO."""

    def __init__(self, parts: RouteParts) -> None:
        self.world, self.ego = parts.world, parts.ego

    def step(self, tick: Tick) -> None:
        self.world.move_ego(self.ego.state)
        self.world.step()


class ProgressBar:
    """Shows the route's completion every second of simulated time."""

    def __init__(self, parts: RouteParts) -> None:
        self.bar, self.criteria = parts.bar, parts.criteria

    def step(self, tick: Tick) -> None:
        if (tick.frame + 1) % _PROGRESS_EVERY_TICKS == 0:  # counts the ticks done, this one included
            self.bar.n = round(self.criteria.route_completion_percent, 1)
            self.bar.refresh()
