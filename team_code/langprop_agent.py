"""Leaderboard agent that drives with the best script of a LangProp checkpoint.

Use it as ``TEAM_AGENT=team_code/langprop_agent.py``; ``TEAM_CONFIG`` names the
checkpoint (a checkpoint dir, a ``.py`` script, or a config file with
``checkpoint: PATH``), else ``LANGPROP_CHECKPOINT`` does (see
:mod:`team_code.config` for every key).

Each tick the scene goes to ``predict_speed_and_steering(scene)``; its output is
either the paper's ``("MOVE"|"SLOW"|"STOP", angle_deg)`` or
``(target_speed_mps, angle_deg)``. Any exception, timeout or invalid output
brakes fully for that tick, is logged and counted (:attr:`exception_count`),
and the route carries on.

Timeouts: the per-call limit (``timeout_s``, 10 s by default) is generous
because the world waits for the agent; it stops runaway scripts, and a script
that times out or kills its worker ``max_timeouts`` times in a row is not
called again on that route (the car brakes: respawning a worker every tick
would slow the route hundredfold). Timeouts and worker deaths are counted
apart from other failures and reported with :meth:`route_meta` (the embedded
runner puts them in the route record's meta), so a run whose result a loaded
machine changed, or that gave up on its script, says so.

DAgger: with ``record_dir`` (``LANGPROP_RECORD_DIR``) every tick is recorded;
with ``dagger_beta`` (``LANGPROP_DAGGER_BETA``) the expert drives a whole route
with that probability, drawn from ``seed`` and the route, so reruns repeat.
"""
from __future__ import annotations

import hashlib
import logging
import random
import time
from typing import Any

from driving.labels import DrivingLabel, PolicyAction, parse_policy_output
from langprop_core.sandbox import ScriptTimeout, WorkerKilled
from team_code.config import ConfigError
from team_code.privileged_agent import _LOG_EVERY, BRAKE_ACTION, PrivilegedAgent, action_from_label

__all__ = ["LangPropAgent", "get_entry_point", "FUNCTION_NAME"]

log = logging.getLogger(__name__)

FUNCTION_NAME = "predict_speed_and_steering"


def get_entry_point() -> str:
    """The leaderboard reads the agent class name from here."""
    return "LangPropAgent"


class LangPropAgent(PrivilegedAgent):
    """Drives with a LangProp policy; brakes on any failure of the script."""

    controller_name = "policy"

    def setup(self, path_to_conf_file: str | None, *args: Any, **kwargs: Any) -> None:
        """Read the config and load the policy (no world access here)."""
        super().setup(path_to_conf_file, *args, **kwargs)
        checkpoint = self.config.checkpoint
        if checkpoint is None:
            raise ConfigError(
                "no LangProp checkpoint: give TEAM_CONFIG as a checkpoint dir, a .py script or a file "
                "with 'checkpoint: PATH', or set LANGPROP_CHECKPOINT")
        if not checkpoint.exists():
            raise ConfigError(f"LangProp checkpoint {checkpoint} does not exist")
        from langprop_core.inference import load_policy

        self.policy = load_policy(str(checkpoint), function_name=FUNCTION_NAME,
                                  sandbox=self.config.sandbox, timeout_s=self.config.timeout_s,
                                  strict=self.config.sandbox_strict)
        self.expert = None
        self.expert_drives = False
        self.last_exception: str | None = None
        self.policy_calls = 0
        self.timeout_count = 0
        self.worker_kill_count = 0
        self.timeouts_in_a_row = 0
        self.abandoned_at_tick: int | None = None
        self.slowest_call_s = 0.0
        log.info("LangProp agent: policy %s from %s (sandbox=%s)",
                 getattr(self.policy, "policy_id", "?"), checkpoint, self.config.sandbox)

    def on_start(self) -> None:
        """Draw, once per route, whether the expert drives it (DAgger's beta)."""
        beta = self.config.dagger_beta
        if beta <= 0.0:
            return
        key = f"{self.config.seed}:{self.route_key}"
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
        self.expert_drives = random.Random(seed).random() < beta
        if self.expert_drives:
            from expert import Expert

            self.expert = Expert()
        log.info("DAgger beta %.2f: %s drives route %s", beta,
                 "the expert" if self.expert_drives else "the policy", self.route_key)

    def controller_of_tick(self) -> str:
        return "expert" if self.expert_drives else "policy"

    def decide(self, scene: dict[str, Any]) -> tuple[PolicyAction, DrivingLabel | None, dict[str, Any]]:
        if self.expert_drives:
            label = self.expert.predict(scene)
            return action_from_label(label), label, {}
        if self.abandoned_at_tick is not None:  # a runaway script: not called again on this route
            return BRAKE_ACTION, None, {"policy_exception": "abandoned after repeated timeouts or worker deaths"}
        self.policy_calls += 1
        started = time.perf_counter()
        try:
            # load_policy's function gives every call its own copy of the scene, so
            # a script that edits its input cannot touch the recorded scene.
            output = self.policy(scene)
            self.timeouts_in_a_row = 0
            action = parse_policy_output(output)
        except Exception as error:  # ScriptError, InvalidPolicyOutput, anything: brake, carry on
            self.exception_count += 1
            self.last_exception = f"{type(error).__name__}: {error}"
            extra = {"policy_exception": self.last_exception[:500]}
            if isinstance(error, (ScriptTimeout, WorkerKilled)):
                self._on_runaway(error)
                extra["policy_timeout" if isinstance(error, ScriptTimeout) else "policy_killed_worker"] = True
            else:
                self.timeouts_in_a_row = 0
            if self.exception_count % _LOG_EVERY == 1:
                # One line per report (a script's traceback is its author's business: debug level).
                summary, _, details = self.last_exception.partition("\n")
                log.warning("policy failed (failure %d, tick %d): %s; braking",
                            self.exception_count, self.n_ticks, summary)
                if details:
                    log.debug("policy failure %d in full:\n%s", self.exception_count, self.last_exception)
            return BRAKE_ACTION, None, extra
        finally:
            self.slowest_call_s = max(self.slowest_call_s, time.perf_counter() - started)
        return action, None, {}

    def _on_runaway(self, error: Exception) -> None:
        """A timeout or a killed worker; ``max_timeouts`` of them in a row: give the script up."""
        if isinstance(error, ScriptTimeout):
            self.timeout_count += 1
            what = f"timed out (limit {self.config.timeout_s:.3g} s)"
        else:
            self.worker_kill_count += 1
            what = "killed its worker"
        self.timeouts_in_a_row += 1
        log.warning("policy %s (timeouts %d, worker deaths %d, %d in a row, tick %d)", what,
                    self.timeout_count, self.worker_kill_count, self.timeouts_in_a_row, self.n_ticks)
        if self.timeouts_in_a_row >= self.config.max_timeouts:
            self.abandoned_at_tick = self.n_ticks
            log.error("policy timed out or killed its worker %d times in a row: taken for a runaway script "
                      "and not called again on this route (the car brakes)", self.timeouts_in_a_row)

    def route_meta(self) -> dict[str, Any]:
        """What the results should say about the policy's run (the embedded runner adds it to the meta)."""
        if not hasattr(self, "policy"):  # setup never ran
            return {}
        return {
            "policy_driver": "expert" if self.expert_drives else "policy",
            "policy_calls": self.policy_calls,
            "policy_failures": self.exception_count,
            "policy_timeouts": self.timeout_count,
            "policy_worker_deaths": self.worker_kill_count,
            "policy_timeout_s": float(self.config.timeout_s),
            "policy_abandoned_at_tick": self.abandoned_at_tick,
            "policy_slowest_call_s": round(self.slowest_call_s, 4),
        }

    def destroy(self) -> None:
        """Flush the recording and stop the policy's worker."""
        try:
            super().destroy()
        finally:
            policy = getattr(self, "policy", None)
            if policy is not None and hasattr(policy, "close"):
                policy.close()
            if getattr(self, "exception_count", 0):
                log.warning("LangProp agent: the policy failed on %d of %d ticks (%d timeouts)",
                            self.exception_count, self.n_ticks, getattr(self, "timeout_count", 0))
