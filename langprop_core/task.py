"""A task: how dataset items become calls, and how outputs are scored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from langprop_core.sandbox import CallResult

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.dead_logic import Interval
    from langprop_core.diversity import BehaviourSpace

__all__ = ["Task", "CaseScore", "score_call", "time_cost"]


@dataclass
class Task:
    """What a module is trained to do.

    ``preprocess(item) -> (args, label)`` turns a dataset item into the
    positional arguments of the function and the label to compare against.
    ``objective(output, label, args) -> float`` scores one call, higher is
    better, 1.0 is perfect. A call that raises, times out, kills its worker,
    fails ``output_check`` (which raises on a wrong output) or makes the
    objective raise scores ``exception_score``. ``describe_case(args, label,
    output) -> str`` writes a failure for the update prompt (a generic text
    is used when it is None).

    Slow is a cost where the task opts in: a call that took longer than
    ``call_budget_s`` loses ``time_charge`` times its overrun in budgets
    (capped at one budget), so of two scripts that answer alike the faster
    ranks first. ``time_charge=0`` (the default) charges nothing.

    ``behaviour`` (a :class:`~langprop_core.diversity.BehaviourSpace`): the
    probe inputs and descriptors that keep distinct behaviours in the
    population and reject children that behave like a member (None: no such
    checks). ``input_domains``: the range of each input value read by key, for
    the dead-condition check at admission (:mod:`langprop_core.dead_logic`).
    """

    preprocess: Callable[[Any], tuple[tuple, Any]]
    objective: Callable[[Any, Any, tuple], float]
    exception_score: float = -1.0
    output_check: Callable[[Any], None] | None = None
    describe_case: Callable[[tuple, Any, Any], str] | None = None
    call_budget_s: float | None = None
    time_charge: float = 0.0
    behaviour: "BehaviourSpace | None" = None
    input_domains: "Mapping[str, Interval] | None" = None

    def __post_init__(self) -> None:
        if self.call_budget_s is not None and not self.call_budget_s > 0:
            raise ValueError(f"Task.call_budget_s must be > 0, not {self.call_budget_s}")
        if self.time_charge < 0:
            raise ValueError(f"Task.time_charge must be >= 0, not {self.time_charge}")


@dataclass
class CaseScore:
    """One scored call; ``error`` holds why it scored ``exception_score``, if it did."""

    score: float
    error: str | None
    traceback: str | None


def score_call(task: Task, result: CallResult, label: Any, args: tuple) -> CaseScore:
    """Score one :class:`CallResult` under ``task``."""
    if result.exception is not None:
        return CaseScore(task.exception_score, result.exception, result.traceback)
    if task.output_check is not None:
        try:
            task.output_check(result.output)
        except Exception as exc:  # noqa: BLE001 - a wrong output is the script's failure
            return CaseScore(task.exception_score, f"InvalidOutput: {type(exc).__name__}: {exc}", None)
    try:
        score = float(task.objective(result.output, label, args))
    except Exception as exc:  # noqa: BLE001 - an output the objective cannot score
        return CaseScore(task.exception_score,
                         f"InvalidOutput: the objective could not score the output "
                         f"({type(exc).__name__}: {exc})", None)
    if score != score:  # NaN
        return CaseScore(task.exception_score, "InvalidOutput: the objective returned NaN", None)
    return CaseScore(score - time_cost(task, result.duration_s), None, None)


def time_cost(task: Task, duration_s: float) -> float:
    """What a call of ``duration_s`` seconds costs under ``task`` (0 within its budget)."""
    budget = task.call_budget_s
    if budget is None or not task.time_charge or duration_s <= budget:
        return 0.0
    return task.time_charge * min(1.0, (duration_s - budget) / budget)
