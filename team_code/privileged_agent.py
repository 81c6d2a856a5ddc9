"""What the LangProp agent and the expert agent share: scene, control, recording.

A privileged agent reads the scene dict (not sensors) each tick, decides a
:class:`driving.labels.PolicyAction` (subclasses implement :meth:`decide`), and
turns it into a ``carla.VehicleControl`` with the shared
:class:`driving.controllers.VehicleController`.

The scene comes from a provider set with :meth:`set_scene_provider` (the
embedded world calls it), else from the CARLA extractor built lazily in the
first ``run_step``, when scenario_runner's ``CarlaDataProvider`` has the hero.
Nothing here assumes ``setup`` ran before ``set_global_plan`` (leaderboard 2.0
calls them the other way round from 1.0).
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from driving.carla_compat import VehicleControl
from driving.clock import TICK_S
from driving.labels import DrivingLabel, PolicyAction
from driving.provider import SceneProvider
from team_code.base import AutonomousAgent, track_from_name
from team_code.config import AgentConfig, load_agent_config
from team_code.recording import SceneRecorder, make_run_id

__all__ = ["PrivilegedAgent", "action_from_label", "BRAKE_ACTION", "STEP_S"]

log = logging.getLogger(__name__)

STEP_S = TICK_S  # the leaderboard's fixed step
BRAKE_ACTION = PolicyAction(target_speed_mps=0.0, steering_deg=0.0, full_brake=True)
# Log a repeated failure's traceback only this often (ticks), so logs stay readable.
_LOG_EVERY = 100


def _split_for(init: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...], dict[str, Any]]:
    """Split ``args``/``kwargs`` into what the callable ``init`` accepts and the rest."""
    import inspect

    try:
        params = list(inspect.signature(init).parameters.values())
    except (TypeError, ValueError):  # no signature to read: pass everything
        return args, kwargs, (), {}
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        n_positional = len(args)
    else:
        n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names = set(kwargs)
    else:
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    taken_kwargs = {k: v for k, v in kwargs.items() if k in names}
    extra_kwargs = {k: v for k, v in kwargs.items() if k not in names}
    return args[:n_positional], taken_kwargs, args[n_positional:], extra_kwargs


def action_from_label(label: DrivingLabel) -> PolicyAction:
    """The action the expert's label asks for (STOP brakes fully)."""
    return PolicyAction(float(label.target_speed_mps), float(label.steering_deg),
                        full_brake=label.speed_level == "STOP")


class PrivilegedAgent(AutonomousAgent):
    """Leaderboard agent base driving from the privileged scene."""

    #: the ``controller`` recorded with each tick ("expert" or "policy")
    controller_name = "expert"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Construct with whatever the evaluator passes, as far as the base class takes it.

        Forks call the constructor differently from the leaderboard they build
        on: carla_garage's 1.0 evaluator passes ``(agent_config,
        route_date_string)`` to agents on the plain 1.0 base, whose constructor
        takes the config path only. Arguments the base does not take are kept
        in :attr:`leaderboard_extra_args` and otherwise ignored.
        """
        taken_args, taken_kwargs, extra_args, extra_kwargs = _split_for(super().__init__, args, kwargs)
        self.leaderboard_extra_args: tuple[tuple[Any, ...], dict[str, Any]] = (extra_args, extra_kwargs)
        super().__init__(*taken_args, **taken_kwargs)

    # -- leaderboard hooks ----------------------------------------------------------
    def setup(self, path_to_conf_file: str | None, *args: Any, **kwargs: Any) -> None:
        """Read the config (``TEAM_CONFIG`` and LANGPROP_* variables); no world access.

        Forks pass more than the config path (carla_garage: a route index or
        name, the traffic manager); those are kept in :attr:`setup_extra_args`
        and not used: the route comes from ``set_global_plan`` and the agent
        never drives other actors. Bench2Drive appends ``"+" + save_name`` to
        the path: :func:`team_code.config.load_agent_config` reads the part
        before it and takes the save name as the route id.
        """
        from driving.controllers import VehicleController

        self.setup_extra_args: tuple[tuple[Any, ...], dict[str, Any]] = (args, kwargs)
        self.config: AgentConfig = load_agent_config(path_to_conf_file)
        self.track = track_from_name(self.config.track)
        self.vehicle_controller = VehicleController(dt=STEP_S)
        self.exception_count = 0
        self.scene_error_count = 0
        self.record_error_count = 0
        self.n_ticks = 0
        self.recorder: SceneRecorder | None = None
        self._started = False

    def sensors(self) -> list[dict[str, Any]]:
        """Speed, GNSS and IMU; the scene itself is read from the simulator."""
        return [
            {"type": "sensor.speedometer", "id": "speed"},
            {"type": "sensor.other.gnss", "x": 0.0, "y": 0.0, "z": 0.0,
             "roll": 0.0, "pitch": 0.0, "yaw": 0.0, "id": "gps"},
            {"type": "sensor.other.imu", "x": 0.0, "y": 0.0, "z": 0.0,
             "roll": 0.0, "pitch": 0.0, "yaw": 0.0, "id": "imu"},
        ]

    def set_global_plan(self, global_plan_gps: list, global_plan_world_coord: list) -> None:
        """Keep the dense plan: the leaderboard's base class keeps a downsampled copy."""
        self.dense_world_plan = list(global_plan_world_coord)
        super().set_global_plan(global_plan_gps, global_plan_world_coord)

    def set_scene_provider(self, provider: SceneProvider) -> None:
        """Use ``provider`` for scenes (the embedded world); else CARLA's extractor."""
        self.scene_provider = provider

    def run_step(self, input_data: dict, timestamp: float, *args: Any) -> Any:
        """One tick: scene -> action -> ``carla.VehicleControl``; never raises for a bad tick.

        Extra arguments (carla_garage's base passes its sensors) are ignored.
        """
        if not self._started:
            self._start()
        self.n_ticks += 1
        try:
            scene = self._get_scene()
        except Exception:  # a broken tick must not end the route: brake and carry on
            self.scene_error_count += 1
            if self.scene_error_count % _LOG_EVERY == 1:
                log.exception("could not build the scene (failure %d); braking", self.scene_error_count)
            return self._control(None, BRAKE_ACTION)
        try:
            action, label, extra = self.decide(scene)
        except Exception as error:  # a failing decision brakes this tick; the route goes on
            self.exception_count += 1
            if self.exception_count % _LOG_EVERY == 1:
                log.exception("decision failed (failure %d); braking", self.exception_count)
            action, label, extra = BRAKE_ACTION, None, {"exception": f"{type(error).__name__}: {error}"[:500]}
        control = self._control(scene, action)
        if self.recorder is not None:
            try:
                self.recorder.add(scene, action, self.controller_of_tick(), label=label, extra=extra)
            except Exception:  # losing a chunk of data must not crash the drive; say so loudly
                self.record_error_count += 1
                if self.record_error_count % _LOG_EVERY == 1:
                    log.exception("recording to %s failed (failure %d)", self.recorder.root,
                                  self.record_error_count)
        return control

    def destroy(self) -> None:
        """Write what is left of the recording and release resources."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()
        super().destroy()

    # -- for subclasses ---------------------------------------------------------------
    def decide(self, scene: dict[str, Any]) -> tuple[PolicyAction, DrivingLabel | None, dict[str, Any]]:
        """The action for ``scene``, the expert's label if known, extra metadata to record."""
        raise NotImplementedError

    def controller_of_tick(self) -> str:
        """Which controller drove this tick (recorded with it)."""
        return self.controller_name

    def on_start(self) -> None:
        """Called once at the first ``run_step``, when the route is known."""

    # -- helpers --------------------------------------------------------------------------
    @property
    def route_key(self) -> str:
        """A stable name of the route: its id when configured, else a hash of its end points."""
        if self.config.route_id:
            return self.config.route_id
        plan = getattr(self, "dense_world_plan", None) or getattr(self, "_global_plan_world_coord", None) or []
        if not plan:
            return "route"
        ends = [plan[0][0].location, plan[-1][0].location]
        text = ";".join(f"{p.x:.1f},{p.y:.1f}" for p in ends) + f";{len(plan)}"
        return "route_" + hashlib.sha256(text.encode()).hexdigest()[:10]

    def _start(self) -> None:
        self._started = True
        if self.config.record_dir is not None:
            run_id = self.config.run_id or make_run_id(self.config.route_id)
            self.recorder = SceneRecorder(self.config.record_dir, run_id, route_id=self.route_key,
                                          flush_every=self.config.record_every)
        self.on_start()

    def _get_scene(self) -> dict[str, Any]:
        provider = getattr(self, "scene_provider", None)
        if provider is None:
            from team_code.carla_extractor import CarlaSceneProvider

            plan = getattr(self, "dense_world_plan", None) or self._global_plan_world_coord
            provider = CarlaSceneProvider.from_data_provider(plan)
            self.scene_provider = provider
        return provider.get_scene()

    def _control(self, scene: dict[str, Any] | None, action: PolicyAction) -> Any:
        if scene is None:
            return VehicleControl(throttle=0.0, steer=0.0, brake=1.0)
        throttle, steer, brake = self.vehicle_controller.control(
            float(scene["ego_forward_speed"]), float(action.target_speed_mps), float(action.steering_deg),
            full_brake=bool(action.full_brake))
        return VehicleControl(throttle=float(throttle), steer=float(steer), brake=float(brake))
