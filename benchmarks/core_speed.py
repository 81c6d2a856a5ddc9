"""Policy calls per second: our sandbox and in-process modes vs the paper's approach.

A population of 16 scripts (a driving-style rule, each with different constants)
is called on 10,000 scene-like inputs, for two script sizes: a small one
(~60 lines) and one about as long as the scripts of the published LangProp
checkpoints (~200 lines, docstrings included):

- sandboxed: ``ScriptRunner`` worker processes (time and memory limits, inputs
  shipped once per batch, a fresh copy of the inputs for every call);
- in-process: ``ScriptRunner(mode="inprocess")`` (compiled once, a copy per call);
- the paper's approach, in this process: ``exec`` of the whole script source on
  every call, then the function on a ``copy.deepcopy`` of the inputs. It is
  timed on a subset of the inputs (``--paper-inputs``) and reported per call.

The cost of the hardening (Landlock, seccomp, a fork per job, the plain-data
codec): the sandbox as it was before it (``--before``, a git revision, read
with ``git show`` into a temporary module) is timed the same way, with its
worker start-up time; ``--before ''`` skips it.

The agent's per-tick call (``--ticks``): one script called on one input per
batch, as :class:`langprop_core.inference.PolicyFunction` calls it each tick
(median and 90th percentile; target <= 2 ms).

Run: ``python benchmarks/core_speed.py`` (``--help`` for options).
"""
from __future__ import annotations

import argparse
import atexit
import copy
import importlib.util
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from langprop_core.sandbox import SandboxConfig, ScriptRunner

SMALL_TEMPLATE = '''
import math

SAFE_GAP_M = {gap}
RED_LIGHT_STOP_M = {red}
HEADWAY_S = {headway}


def relative(ego, actor):
    """The actor's position in the ego frame: (forward_m, left_m)."""
    dx = actor["x"] - ego["x"]
    dy = actor["y"] - ego["y"]
    c = math.cos(math.radians(ego["yaw_deg"]))
    s = math.sin(math.radians(ego["yaw_deg"]))
    return dx * c + dy * s, -dx * s + dy * c


def nearest_ahead(scene):
    """Distance to the nearest actor in the ego's lane ahead, or infinity."""
    ego = scene["ego"]
    nearest = math.inf
    for actor in scene["actors"]:
        forward, left = relative(ego, actor)
        if forward > 0.0 and abs(left) < 1.8:
            nearest = min(nearest, forward - actor["length_m"] / 2)
    return nearest


def steering_to(scene):
    """Heading error to the route target, in degrees, positive to the right."""
    ego = scene["ego"]
    tx, ty = scene["target"]
    heading = math.degrees(math.atan2(ty - ego["y"], tx - ego["x"]))
    error = (heading - ego["yaw_deg"] + 180.0) % 360.0 - 180.0
    return error


def {function_name}(scene):
    """Speed level and steering for one scene."""
    speed = scene["ego"]["speed_mps"]
    red = scene.get("red_light_m")
    if red is not None and red < RED_LIGHT_STOP_M + speed:
        return ("STOP", steering_to(scene))
    gap = nearest_ahead(scene)
    if gap < SAFE_GAP_M:
        return ("STOP", steering_to(scene))
    if gap < SAFE_GAP_M + HEADWAY_S * speed:
        return ("SLOW", steering_to(scene))
    return ("MOVE", steering_to(scene))
'''
# About the length of the scripts in the published LangProp checkpoints (~200 lines,
# docstrings included): the paper's cost grows with the script, ours does not.
PAPER_SIZED_TEMPLATE = '''
import math

# Constants (tuned per script)
SAFE_GAP_M = {gap}
RED_LIGHT_STOP_M = {red}
HEADWAY_S = {headway}
LANE_HALF_WIDTH_M = 1.8
EGO_LENGTH_M = 4.9
EGO_WIDTH_M = 2.1
SLOW_SPEED_MPS = 3.0
MAX_SPEED_MPS = 8.0
STOP_SIGN_SPEED_MPS = 0.1
SHARP_TURN_DEG = 45.0


def wrap_angle_deg(angle):
    """Wrap an angle in degrees to the interval [-180, 180).

    Args:
        angle: float, an angle in degrees.

    Returns:
        float: the same direction, expressed in [-180, 180).
    """
    return (angle + 180.0) % 360.0 - 180.0


def to_ego_frame(ego, x, y):
    """Express a world point in the ego vehicle's frame.

    Args:
        ego: dict with the ego vehicle's "x", "y" (m) and "yaw_deg".
        x: float, world x coordinate of the point (m).
        y: float, world y coordinate of the point (m).

    Returns:
        (forward_m, left_m): the point's coordinates along the ego's heading and
        to its left.
    """
    dx = x - ego["x"]
    dy = y - ego["y"]
    yaw = math.radians(ego["yaw_deg"])
    c = math.cos(yaw)
    s = math.sin(yaw)
    return dx * c + dy * s, -dx * s + dy * c


def relative_actors(scene):
    """Every actor of the scene in the ego frame.

    Args:
        scene: dict with "ego" and "actors".

    Returns:
        list of dicts with "forward_m", "left_m", "length_m" and "distance_m".
    """
    ego = scene["ego"]
    actors = []
    for actor in scene["actors"]:
        forward, left = to_ego_frame(ego, actor["x"], actor["y"])
        actors.append({
            "forward_m": forward,
            "left_m": left,
            "length_m": actor.get("length_m", 4.5),
            "distance_m": math.hypot(forward, left),
        })
    return actors


def in_ego_lane(actor):
    """Whether an actor overlaps the ego's lane ahead.

    Args:
        actor: dict in the ego frame (see relative_actors).

    Returns:
        bool: True when the actor is ahead and laterally within the lane.
    """
    if actor["forward_m"] <= 0.0:
        return False
    return abs(actor["left_m"]) < LANE_HALF_WIDTH_M + EGO_WIDTH_M / 2


def gap_to(actor):
    """Free distance between the ego's front and the actor's rear (m).

    Args:
        actor: dict in the ego frame.

    Returns:
        float: the gap in metres, never below zero.
    """
    gap = actor["forward_m"] - actor["length_m"] / 2 - EGO_LENGTH_M / 2
    return max(gap, 0.0)


def nearest_gap(scene):
    """The smallest gap to an actor in the ego lane, or infinity.

    Args:
        scene: dict, the scene.

    Returns:
        float: metres to the nearest actor ahead in the lane.
    """
    nearest = math.inf
    for actor in relative_actors(scene):
        if in_ego_lane(actor):
            nearest = min(nearest, gap_to(actor))
    return nearest


def stopping_distance(speed):
    """Distance needed to stop comfortably from ``speed``.

    Args:
        speed: float, m/s.

    Returns:
        float: metres, reaction time plus braking at 4 m/s^2.
    """
    return speed * 0.5 + speed * speed / (2 * 4.0)


def must_stop_for_light(scene, speed):
    """Whether a red light ahead requires stopping now.

    Args:
        scene: dict with "red_light_m" (None when no red light affects the ego).
        speed: float, the ego speed in m/s.

    Returns:
        bool
    """
    red = scene.get("red_light_m")
    if red is None:
        return False
    return red < RED_LIGHT_STOP_M + stopping_distance(speed)


def should_slow_for_light(scene, speed):
    """Whether a red light is close enough to start slowing down.

    Args:
        scene: dict.
        speed: float, m/s.

    Returns:
        bool
    """
    red = scene.get("red_light_m")
    if red is None:
        return False
    return red < RED_LIGHT_STOP_M + 2 * stopping_distance(speed) + 5.0


def steering_to(scene):
    """Heading error to the route target, in degrees, positive to the right.

    Args:
        scene: dict with "ego" and "target" (x, y).

    Returns:
        float: degrees in [-180, 180).
    """
    ego = scene["ego"]
    tx, ty = scene["target"]
    heading = math.degrees(math.atan2(ty - ego["y"], tx - ego["x"]))
    return wrap_angle_deg(heading - ego["yaw_deg"])


def {function_name}(scene):
    """Speed level and steering for one scene.

    Return "STOP" when a red light or an actor ahead requires stopping now,
    "SLOW" when one is close enough to slow down, else "MOVE"; and the
    steering angle towards the route target.

    Args:
        scene: dict, the scene.

    Returns:
        (speed_level, turn_angle_deg)
    """
    speed = scene["ego"]["speed_mps"]
    angle = steering_to(scene)
    if must_stop_for_light(scene, speed):
        return ("STOP", angle)
    gap = nearest_gap(scene)
    if gap < SAFE_GAP_M:
        return ("STOP", angle)
    if gap < SAFE_GAP_M + HEADWAY_S * speed or should_slow_for_light(scene, speed):
        return ("SLOW", angle)
    if abs(angle) > SHARP_TURN_DEG and speed > SLOW_SPEED_MPS:
        return ("SLOW", angle)
    return ("MOVE", angle)
'''
TEMPLATES = {"small": SMALL_TEMPLATE, "paper-sized": PAPER_SIZED_TEMPLATE}
FUNCTION_NAME = "predict_speed_and_steering"


def make_scripts(n: int, template: str) -> dict[str, str]:
    """``n`` scripts from ``template``, each with its own constants."""
    rng = random.Random(0)
    scripts = {}
    for i in range(n):
        values = {"gap": round(rng.uniform(3, 8), 2), "red": round(rng.uniform(2, 6), 2),
                  "headway": round(rng.uniform(0.5, 2.5), 2), "function_name": FUNCTION_NAME}
        source = template
        for key, value in values.items():
            source = source.replace("{" + key + "}", str(value))
        scripts[f"s{i:02d}"] = source
    return scripts


def make_inputs(n: int) -> list[tuple]:
    """``n`` scene-like argument tuples (an ego, up to 8 actors, a target, maybe a red light)."""
    rng = random.Random(1)
    inputs = []
    for _ in range(n):
        ego = {"x": rng.uniform(-50, 50), "y": rng.uniform(-50, 50), "yaw_deg": rng.uniform(-180, 180),
               "speed_mps": rng.uniform(0, 10)}
        actors = [{"x": ego["x"] + rng.uniform(-30, 30), "y": ego["y"] + rng.uniform(-30, 30),
                   "length_m": 4.5} for _ in range(rng.randint(0, 8))]
        scene = {"ego": ego, "actors": actors,
                 "target": (ego["x"] + rng.uniform(-10, 10), ego["y"] + rng.uniform(-10, 10)),
                 "red_light_m": rng.uniform(0, 30) if rng.random() < 0.3 else None}
        inputs.append((scene,))
    return inputs


def paper_approach(scripts: dict[str, str], inputs: list[tuple]) -> list:
    """exec of the whole script on every call, function called on a deep copy of the inputs."""
    outputs = []
    for source in scripts.values():
        for args in inputs:
            namespace: dict = {}
            exec(source, namespace)  # noqa: S102 - this is the baseline being measured
            outputs.append(namespace[FUNCTION_NAME](*copy.deepcopy(args)))
    return outputs


def best_rate(n_calls: int, run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Calls per second of the fastest of ``repeat`` runs (timeit's rule: the
    slower runs measure other load on the machine), and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None  # free the previous run's results before the clock starts
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return n_calls / best, result


# The last revision of the sandbox before its hardening (issue 10).
UNHARDENED_REVISION = "374fb89"
_UNHARDENED_MODULE = "langprop_unhardened_sandbox"


def unhardened_sandbox(revision: str) -> Any:
    """The sandbox module of ``revision`` (a single file then), importable by its workers; None
    when it cannot be read (not a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(["git", "show", f"{revision}:langprop_core/sandbox.py"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    folder = tempfile.mkdtemp(prefix="langprop-unhardened-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    source = source.replace("from langprop_core.sandbox import _worker_entry",
                            f"from {_UNHARDENED_MODULE} import _worker_entry")
    path = Path(folder) / f"{_UNHARDENED_MODULE}.py"
    path.write_text(source)
    # Its workers inherit this environment and import the module from there.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
    spec = importlib.util.spec_from_file_location(_UNHARDENED_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_UNHARDENED_MODULE] = module
    spec.loader.exec_module(module)
    return module


def sandboxed_rate(runner: Any, scripts: dict[str, str], inputs: list[tuple], repeat: int
                   ) -> tuple[float, float, Any]:
    """calls/s of a started runner, its start-up time (first small batch), its last results."""
    t0 = time.perf_counter()
    runner.run_batch(scripts, FUNCTION_NAME, inputs[:10])  # start the workers
    startup_s = time.perf_counter() - t0
    rate, results = best_rate(len(scripts) * len(inputs),
                              lambda: runner.run_batch(scripts, FUNCTION_NAME, inputs), repeat)
    return rate, startup_s, results


def measure(name: str, scripts: dict[str, str], inputs: list[tuple], paper_inputs: int,
            workers: int, repeat: int, before: Any = None) -> None:
    """Time the three approaches on the same scripts and inputs, check they agree, print a table."""
    n_calls = len(scripts) * len(inputs)
    lines = max(len(src.strip().splitlines()) for src in scripts.values())
    print(f"\n{name} scripts ({lines} lines): {len(scripts)} scripts x {len(inputs)} inputs = "
          f"{n_calls} calls, best of {repeat} runs")
    subset = inputs[:paper_inputs]
    paper_rate, reference = best_rate(len(scripts) * len(subset),
                                      lambda: paper_approach(scripts, subset), repeat)

    with ScriptRunner(SandboxConfig(mode="inprocess")) as runner:
        inproc_rate, inproc = best_rate(
            n_calls, lambda: runner.run_batch(scripts, FUNCTION_NAME, inputs), repeat)

    with ScriptRunner(SandboxConfig(mode="process", workers=workers)) as runner:
        sandbox_rate, startup_s, sandboxed = sandboxed_rate(runner, scripts, inputs, repeat)
        protections = runner.protections
        worker_start_s = sum(runner.startup_s) / len(runner.startup_s)
    before_rate = before_startup_s = None
    if before is not None:
        with before.ScriptRunner(before.SandboxConfig(mode="process", workers=workers)) as runner:
            before_rate, before_startup_s, _ = sandboxed_rate(runner, scripts, inputs, repeat)

    # Same answers from all three (a speed-up that changes results is no speed-up).
    for results in (inproc, sandboxed):
        assert all(r.ok for rows in results.values() for r in rows), "a call failed"
        got = [r.output for sid in scripts for r in results[sid][:len(subset)]]
        assert [tuple(o) for o in got] == [tuple(o) for o in reference], "outputs differ"

    print(f"  {'approach':<46}{'calls/s':>10}{'vs paper':>10}")
    print(f"  {'paper: exec per call + deepcopy (' + str(len(subset)) + ' inputs)':<46}"
          f"{paper_rate:>10,.0f}{1.0:>9.1f}x")
    print(f"  {'ours, sandboxed (' + str(workers) + ' worker processes)':<46}{sandbox_rate:>10,.0f}"
          f"{sandbox_rate / paper_rate:>9.1f}x")
    print(f"  {'ours, in-process (trusted)':<46}{inproc_rate:>10,.0f}{inproc_rate / paper_rate:>9.1f}x")
    print(f"  (worker start-up, not included: {startup_s:.2f} s for the pool, {worker_start_s:.2f} s "
          f"per worker to its report)")
    print(f"  {protections.describe()}")
    if before_rate is not None:
        print(f"  hardening cost: {before_rate:,.0f} calls/s before ({UNHARDENED_REVISION}), "
              f"{sandbox_rate:,.0f} after ({sandbox_rate / before_rate - 1:+.0%}); pool start-up "
              f"{before_startup_s:.2f} s before, {startup_s:.2f} s after")


def tick_time_ms(scripts: dict[str, str], inputs: list[tuple], ticks: int) -> tuple[float, float]:
    """The agent's per-tick call: one script, one input per batch, one worker (as
    :class:`langprop_core.inference.PolicyFunction` calls it). Median and 90th
    percentile in ms over ``ticks`` calls, after a warm-up call that starts the worker."""
    sid, source = next(iter(scripts.items()))
    times = []
    with ScriptRunner(SandboxConfig(mode="process", workers=1)) as runner:
        runner.run_batch({sid: source}, FUNCTION_NAME, [inputs[0]])
        for i in range(ticks):
            t0 = time.perf_counter()
            result = runner.run_batch({sid: source}, FUNCTION_NAME, [inputs[i % len(inputs)]])[sid][0]
            times.append(time.perf_counter() - t0)
            assert result.ok, result.exception
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.9)] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", type=int, default=16)
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--paper-inputs", type=int, default=200,
                        help="inputs per script for the (slow) paper baseline")
    parser.add_argument("--workers", type=int, default=SandboxConfig().workers,
                        help="sandbox worker processes (default: the sandbox's own default)")
    parser.add_argument("--size", choices=["small", "paper-sized", "both"], default="both",
                        help="script size to measure")
    parser.add_argument("--before", default=UNHARDENED_REVISION,
                        help="git revision of the unhardened sandbox to compare with ('' to skip)")
    parser.add_argument("--ticks", type=int, default=1000, help="calls for the agent's per-tick time")
    args = parser.parse_args()
    before = unhardened_sandbox(args.before) if args.before else None
    if args.before and before is None:
        print(f"(the sandbox of {args.before} cannot be read with git: hardening cost not measured)")
    inputs = make_inputs(args.inputs)
    print(f"{os.cpu_count()} CPUs; targets: sandboxed >= 20x the paper's approach, in-process >= 100x")
    for name, template in TEMPLATES.items():
        if args.size in (name, "both"):
            measure(name, make_scripts(args.scripts, template), inputs, args.paper_inputs, args.workers,
                    args.repeat, before)
    if args.ticks:
        median_ms, p90_ms = tick_time_ms(make_scripts(1, TEMPLATES["paper-sized"]), inputs, args.ticks)
        print(f"\nagent's per-tick call (one paper-sized script, one input per batch, {args.ticks} ticks): "
              f"median {median_ms:.2f} ms, 90th percentile {p90_ms:.2f} ms (target <= 2 ms)")


if __name__ == "__main__":
    main()
