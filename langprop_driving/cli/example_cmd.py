"""``langprop example``: train the thermostat example task (no driving, no simulator)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from langprop_driving.cli.options import (budget_values, llm_options, optimizer_overrides, progress_enabled,
                                          progress_option, seed_option)

__all__ = ["example"]


@click.command("example")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/example"), show_default=True,
              help="Where checkpoints, metrics.jsonl and training_curve.png go.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Passes over the training readings.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Readings per update.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue the run in --run-dir from its last checkpoint, or start over.")
@llm_options
@click.option("--temperature", type=float, default=None, help="Sampling temperature of the LLM.")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Choices per LLM request (1 for servers that ignore n).")
@seed_option(0)
@click.option("--in-process", is_flag=True,
              help="Run scripts in this process (trusted code only: no time or memory limits).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Sandbox worker processes [default: CPU count].")
@progress_option
def example(**kw: Any) -> None:
    """Train the LangProp example: a thermostat rule, choose_action(temperature_c,
    rate_c_per_min) -> "heat" | "cool" | "off", learnt from labelled readings.

    Works offline: without an LLM endpoint the mutation optimizer is used, and
    said so. Scripts run sandboxed (worker processes with time and memory limits).
    """
    from langprop_core.examples.thermostat import MODULE_NAME, seed_sources
    from langprop_core.examples.thermostat.train import train_example
    from langprop_core.llm.factory import OptimizerConfig, make_optimizer
    from langprop_core.llm.usage import LLMBudget, UsageCallback, load_prices
    from langprop_core.sandbox import SandboxConfig

    from langprop_driving.cli.errors import EXIT_BUDGET

    budget = budget_values(kw)
    if budget["max_llm_cost"] is not None and budget["llm_prices"] is None:
        raise click.UsageError("--max-llm-cost needs a price table (--llm-prices or $LANGPROP_LLM_PRICES)")
    run_dir: Path = kw["run_dir"]
    opt_config = OptimizerConfig.from_env(**optimizer_overrides(kw), temperature=kw["temperature"], n=kw["n"])
    optimizer = make_optimizer(opt_config, seed_sources=seed_sources())
    click.echo(f"optimizer: {optimizer.describe()}")
    usage = UsageCallback(LLMBudget(budget["max_llm_calls"], budget["max_llm_tokens"], budget["max_llm_cost"]),
                          load_prices(budget["llm_prices"]) if budget["llm_prices"] else {})
    sandbox = SandboxConfig(mode="inprocess" if kw["in_process"] else "process",
                            **({"workers": kw["workers"]} if kw["workers"] else {}))
    result, trainer = train_example(run_dir, epochs=kw["epochs"], batch_size=kw["batch_size"],
                                    resume=kw["resume"], optimizer=optimizer, seed=kw["seed"], sandbox=sandbox,
                                    progress=progress_enabled(kw["no_progress"]), callbacks=(usage,),
                                    reply_format=kw["reply_format"])
    if result.stopped is not None:
        click.echo(f"stopped: {result.stopped}; {usage.usage.describe()}; checkpoint "
                   f"{trainer.checkpoint_dir_for(MODULE_NAME)} (run again with a larger budget to go on)", err=True)
        raise SystemExit(EXIT_BUDGET)
    best = result.best_policy
    val = [r for r in result.history if r.get("kind") == "val"]
    click.echo(f"best script {best.id} (generation {best.generation}), priority {best.priority:.3f}"
               + (f", validation {val[-1]['best_val_score']:.3f}" if val else ""))
    llm = optimizer.usage()
    if llm.calls:
        click.echo(f"LLM: {llm.calls} calls, {llm.prompt_tokens} prompt + {llm.completion_tokens} completion tokens")
    if trainer.rejected:
        click.echo(f"rejected replies: {dict(trainer.rejected)}")
    click.echo(f"checkpoint: {trainer.checkpoint_dir_for(MODULE_NAME)}")
    click.echo(f"metrics: {run_dir / 'metrics.jsonl'}, curve: {run_dir / 'training_curve.png'}")
    click.echo(f"\n{best.source}")
