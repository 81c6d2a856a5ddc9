"""Options that several ``langprop`` commands share: one definition each, so names, defaults and help agree.

Defaults come from the config classes (``EvaluationConfig``, ``OptimizerConfig``,
``TrainConfig``), not from here. Every LLM option can also be set from the
environment (the variable is shown in ``--help``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from sumo_world.traffic.demand import PRESETS

__all__ = ["TRAFFIC_CHOICES", "DEFAULT_TRAFFIC", "towns_dir_option", "traffic_option", "seed_option",
           "workers_option", "backend_options", "ray_options_of", "apply", "scenarios_option", "progress_option",
           "progress_enabled", "no_resume_option", "llm_options", "optimizer_overrides", "budget_values"]

TRAFFIC_CHOICES = PRESETS  # sumo_world.traffic.demand owns the preset names


def _default_traffic() -> str:
    from sumo_world.run.runner import EvaluationConfig

    return EvaluationConfig.traffic


#: the one traffic default of every command that drives routes (the runner's)
DEFAULT_TRAFFIC = _default_traffic()

towns_dir_option = click.option(
    "--towns-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of stored towns (default: $LANGPROP_TOWNS or ./towns).")


scenarios_option = click.option(
    "--scenarios", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Leaderboard-1.0 scenario file (the leaderboard's --scenarios, e.g. "
         "all_towns_traffic_scenarios_public.json): run the scenarios it gives each route.")

progress_option = click.option(
    "--no-progress", is_flag=True,
    help="No progress bars (there are none either when the output is not a terminal).")

no_resume_option = click.option(
    "--no-resume", is_flag=True,
    help="Start over instead of resuming what an earlier run of the same command left.")


def progress_enabled(no_progress: bool) -> bool:
    """Whether to draw progress bars: not asked away, and stderr (where bars go) is a terminal."""
    return not no_progress and sys.stderr.isatty()


def traffic_option(default: str = DEFAULT_TRAFFIC) -> Callable:
    return click.option("--traffic", type=click.Choice(TRAFFIC_CHOICES), default=default, show_default=True,
                        help="Background traffic: a density, or leaderboard 1.0's per-town vehicles (no walkers).")


def seed_option(default: int = 0) -> Callable:
    return click.option("--seed", type=int, default=default, show_default=True,
                        help="Seed of everything random in the run (traffic, the town and routes it makes, "
                             "record sampling, the optimizer).")


def workers_option(default: int | None, help_default: str | None = None) -> Callable:
    """``--workers`` (at least 1 everywhere); ``default`` None lets the command choose (``help_default`` says how)."""
    return click.option("--workers", type=click.IntRange(1), default=default, show_default=default is not None,
                        help="Routes run in parallel (local processes, or the CPUs of a local Ray cluster)"
                             + (f" [default: {help_default}]." if help_default else "."))


def backend_options(fn: Callable) -> Callable:
    """``--backend``, ``--ray-address`` and ``--ray-resource`` (one route per Ray task)."""
    options = [
        click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where routes run: local processes, or one Ray task per route (pip install ray)."),
        click.option("--ray-address", default=None,
                     help="Ray cluster address (default: $RAY_ADDRESS, else a new local cluster)."),
        click.option("--ray-resource", "ray_resources", multiple=True, metavar="NAME=AMOUNT",
                     help="A custom resource each route's task needs, e.g. carla_server=1 (repeatable)."),
    ]
    return apply(options, fn)


def ray_options_of(kw: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The parsed ``--ray-resource`` values; a bad one is a usage error naming it."""
    from langprop_driving.pipeline.parallel import parse_resources

    try:
        return parse_resources(kw.get("ray_resources") or ())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ray-resource") from None


def llm_options(fn: Callable) -> Callable:
    """The optimizer and LLM options of ``train``, ``dagger``, ``demo`` and ``example``, each also from the
    environment: ``--optimizer``, ``--llm-exchange``, ``--llm-base-url``, ``--llm-model``, ``--llm-timeout``,
    ``--llm-cache``, ``--llm-cache-mode``, the budgets ``--max-llm-calls/-tokens/-cost``, ``--llm-prices`` and
    ``--reply-format``."""
    from langprop_core.llm.cache import CACHE_MODES
    from langprop_core.llm.edits import EDIT_MIN_LINES, REPLY_FORMATS
    from langprop_core.llm.factory import OPTIMIZER_KINDS, OptimizerConfig

    options = [
        click.option("--optimizer", type=click.Choice(OPTIMIZER_KINDS), default=None, envvar="LANGPROP_OPTIMIZER",
                     show_envvar=True,
                     help="How new scripts are written: an LLM at an OpenAI-compatible endpoint (openai), an "
                          "LLM answering through files (files, with --llm-exchange), or the AST mutation "
                          "baseline [default: auto: files with --llm-exchange, else the LLM when an endpoint is "
                          "configured]."),
        click.option("--llm-exchange", type=click.Path(file_okay=False, path_type=Path), default=None,
                     envvar="LANGPROP_LLM_EXCHANGE", show_envvar=True,
                     help="Be the LLM through files: each request is written to this folder as "
                          "NNNN.request.md (and .json) and training waits, with no time limit, for "
                          "NNNN.reply.md; a rerun picks up where it stopped (implies --optimizer files)."),
        click.option("--llm-base-url", default=None, envvar="LANGPROP_LLM_BASE_URL", show_envvar=True,
                     help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (also $OPENAI_BASE_URL; "
                          "OpenAI itself with $OPENAI_API_KEY)."),
        click.option("--llm-model", default=None, envvar="LANGPROP_LLM_MODEL", show_envvar=True,
                     help="Model name at the endpoint."),
        click.option("--llm-timeout", type=click.FloatRange(min=0, min_open=True), default=OptimizerConfig.timeout_s,
                     envvar="LANGPROP_LLM_TIMEOUT", show_envvar=True, show_default=True,
                     help="Seconds one LLM request may take (slow and local models need minutes); a request "
                          "that times out is not sent again."),
        click.option("--llm-cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                     envvar="LANGPROP_LLM_CACHE_DIR", show_envvar=True,
                     help="Record/replay LLM calls in this folder."),
        click.option("--llm-cache-mode", type=click.Choice(CACHE_MODES), default=None,
                     envvar="LANGPROP_LLM_CACHE_MODE", show_envvar=True,
                     help="auto: replay what is cached, record the rest; record: ask the LLM again; "
                          "replay: offline, a miss is an error [default: auto]."),
        click.option("--max-llm-calls", type=click.IntRange(1), default=None, envvar="LANGPROP_MAX_LLM_CALLS",
                     show_envvar=True,
                     help="Stop training (at a batch boundary, with a checkpoint; exit code 3) after this many "
                          "LLM calls; replies replayed from the cache do not count."),
        click.option("--max-llm-tokens", type=click.IntRange(1), default=None, envvar="LANGPROP_MAX_LLM_TOKENS",
                     show_envvar=True, help="Same, for input + output tokens."),
        click.option("--max-llm-cost", type=click.FloatRange(min=0, min_open=True), default=None,
                     envvar="LANGPROP_MAX_LLM_COST", show_envvar=True,
                     help="Same, for the estimated cost (needs --llm-prices)."),
        click.option("--llm-prices", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                     envvar="LANGPROP_LLM_PRICES", show_envvar=True,
                     help='JSON price table: {"model": {"input": X, "output": Y}} per million tokens '
                          "(none: no cost estimate)."),
        click.option("--reply-format", type=click.Choice(REPLY_FORMATS), default="auto",
                     envvar="LANGPROP_REPLY_FORMAT", show_envvar=True, show_default=True,
                     help="What an update prompt asks the LLM for: search/replace edits of the current script, "
                          f"the complete script (rewrite), or edits for scripts over {EDIT_MIN_LINES} lines "
                          "(auto); edits that do not apply get one request for the complete script."),
    ]
    return apply(options, fn)


def optimizer_overrides(kw: dict[str, Any]) -> dict[str, Any]:
    """The ``OptimizerConfig.from_env`` overrides of the :func:`llm_options` values."""
    return {"kind": kw.get("optimizer"), "base_url": kw.get("llm_base_url"), "model": kw.get("llm_model"),
            "timeout_s": kw.get("llm_timeout"), "cache_dir": kw.get("llm_cache"),
            "cache_mode": kw.get("llm_cache_mode"), "exchange_dir": kw.get("llm_exchange"),
            # --seed is the seed of everything random in a run, the mutation optimizer's draws included
            "seed": kw.get("seed")}


def budget_values(kw: dict[str, Any]) -> dict[str, Any]:
    """The ``TrainConfig`` fields of the :func:`llm_options` values: the budgets, prices and reply format."""
    return {"max_llm_calls": kw.get("max_llm_calls"), "max_llm_tokens": kw.get("max_llm_tokens"),
            "max_llm_cost": kw.get("max_llm_cost"), "llm_prices": kw.get("llm_prices"),
            "reply_format": kw.get("reply_format") or "auto"}


def apply(options: list[Callable], fn: Callable) -> Callable:
    """Decorate ``fn`` with ``options`` in the order listed (the first shows first in --help)."""
    for option in reversed(options):
        fn = option(fn)
    return fn
