"""The LangProp task of the driving model: records in, scores out."""
from __future__ import annotations

from typing import Any, Mapping

from driving.clock import TICK_S
from driving.labels import parse_policy_output
from driving.scene import scene_from_jsonable
from langprop_core.task import Task

from langprop_driving.model.describe import describe_case
from langprop_driving.model.objective import DrivingObjective, DrivingTarget, target_from_record

__all__ = ["preprocess_record", "driving_task"]


def preprocess_record(record: Any) -> tuple[tuple, DrivingTarget]:
    """A dataset record (``SceneRecord`` or its dict form) -> ((scene,), target).

    Scenes stored in JSON form (lists for arrays, string actor ids) are
    converted back to the contract's types, so scripts see what the agent sees.
    """
    scene = record["scene"] if isinstance(record, Mapping) else record.scene
    if not hasattr(scene.get("ego_location_world_coord"), "shape"):
        scene = scene_from_jsonable(scene)
    return (scene,), target_from_record(record)


def _check_output(output: Any) -> None:
    parse_policy_output(output)  # raises InvalidPolicyOutput, naming what is wrong


def driving_task(objective: DrivingObjective | None = None, exception_score: float = -1.0,
                 max_case_actors: int = 6, time_charge: float = 0.5, diversity: bool = True) -> Task:
    """The Task for ``predict_speed_and_steering`` over driving records.

    ``exception_score`` is what a raising, timing-out or invalid-output call scores;
    keep it at or below ``-objective.repeat_penalty`` so that crashing is never
    better than repeating a bad action. A call longer than the agent's tick
    (:data:`driving.clock.TICK_S`) loses up to ``time_charge`` (see
    :func:`langprop_core.task.time_cost`): a script too slow to drive is not a good one.
    ``diversity``: give the task the driving behaviour space (probe scenes and descriptors,
    :mod:`langprop_driving.model.behaviour`), so training keeps distinct behaviours and rejects
    children that behave like a member. The contract's value ranges are always given, for the
    dead-condition check.
    """
    from langprop_driving.model.behaviour import INPUT_DOMAINS, driving_behaviour_space

    objective = objective or DrivingObjective()

    def describe(args: tuple, target: Any, output: Any) -> str:
        return describe_case(args, target, output, max_actors=max_case_actors)

    return Task(preprocess=preprocess_record, objective=objective, exception_score=exception_score,
                output_check=_check_output, describe_case=describe, call_budget_s=TICK_S,
                time_charge=time_charge, behaviour=driving_behaviour_space() if diversity else None,
                input_domains=dict(INPUT_DOMAINS))
