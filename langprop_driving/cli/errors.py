"""How every ``langprop`` command reports a failure: one line, the exit code, a traceback only with --debug.

Bad input (a missing or malformed file, a bad config value, a checkpoint that
is not one, no usable script from the setup phase, an LLM endpoint that gave
up) ends the command with ``Error: <what, naming the file>`` and exit code 1,
as click reports its own usage errors. Training stopped at an LLM budget is not
an error of the input: it says so and exits with :data:`EXIT_BUDGET`, so
scripts can tell it apart. ``langprop --debug`` re-raises instead, with the
traceback.
"""
from __future__ import annotations

from typing import Any, Callable

import click

__all__ = ["EXIT_BUDGET", "DEBUG_KEY", "report", "one_line", "preflight"]

#: exit code of a command whose training stopped at an LLM budget (checkpoint written, resumable)
EXIT_BUDGET = 3
DEBUG_KEY = "langprop.debug"


def one_line(exc: BaseException) -> str:
    """The exception as one line that names the file when the exception knows it."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    text = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    if isinstance(exc, (ValueError, OSError, LookupError)) or type(exc).__module__.startswith(
            ("langprop", "sumo_world", "team_code", "driving", "expert")):
        return text
    return f"{type(exc).__name__}: {text}"  # not one of ours: the type says what broke


def report(ctx: click.Context, exc: Exception) -> None:
    """Turn ``exc`` into the command's one-line error and exit code (or re-raise with --debug)."""
    if ctx.meta.get(DEBUG_KEY):
        raise exc
    from langprop_driving.pipeline.train import TrainingStopped

    if isinstance(exc, TrainingStopped):
        click.echo(f"stopped: {exc}", err=True)
        ctx.exit(EXIT_BUDGET)
    hint = "" if _is_input_error(exc) else " (run with langprop --debug for the traceback)"
    raise click.ClickException(one_line(exc) + hint) from exc


def _is_input_error(exc: Exception) -> bool:
    from langprop_core.llm.base import LLMError
    from langprop_core.trainer import SetupError

    return isinstance(exc, (ValueError, OSError, LookupError, SetupError, LLMError))


def preflight(check: Callable[..., Any], *args: Any) -> Any:
    """Run a pre-flight ``check`` (:mod:`langprop_driving.pipeline.preflight`); its failure is the command's
    one-line error (exit 1) also when the command runs outside the ``langprop`` group (tests, scripts)."""
    from langprop_driving.pipeline.preflight import PreflightError

    try:
        return check(*args)
    except PreflightError as exc:
        ctx = click.get_current_context(silent=True)
        if ctx is not None and ctx.find_root().meta.get(DEBUG_KEY):
            raise  # --debug: the traceback
        raise click.ClickException(str(exc)) from exc
