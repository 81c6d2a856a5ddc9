"""``langprop example``: train the thermostat example task (no driving, no simulator)."""
from __future__ import annotations

from pathlib import Path

import click

# Light imports (no openai, numpy or simulator): `langprop --help` loads this module.
from langprop_core.llm.cache import CACHE_MODES
from langprop_core.llm.factory import OPTIMIZER_KINDS, OptimizerConfig, make_optimizer

__all__ = ["example"]


@click.command("example")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/example"), show_default=True,
              help="Where checkpoints, metrics.jsonl and training_curve.png go.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--optimizer", "kind", type=click.Choice(OPTIMIZER_KINDS), default=None,
              help="How new scripts are made [default: auto: openai when an endpoint is "
                   "configured, else mutation].")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint (or LANGPROP_LLM_BASE_URL).")
@click.option("--model", default=None, help="Model name (or LANGPROP_LLM_MODEL).")
@click.option("--temperature", type=float, default=None, help="Sampling temperature.")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Choices per LLM request (1 for servers that ignore n).")
@click.option("--llm-cache", "--cache-dir", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Record/replay cache of LLM calls (the same option as train's).")
@click.option("--cache-mode", type=click.Choice(CACHE_MODES), default=None,
              help="auto: replay what is cached, record the rest; record: ask the LLM again; "
                   "replay: offline, a miss is an error [default: auto].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--in-process", is_flag=True,
              help="Run scripts in this process (trusted code only: no time or memory limits).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Sandbox worker processes [default: CPU count].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def example(run_dir: Path, epochs: int, batch_size: int, resume: bool, kind: str | None,
            base_url: str | None, model: str | None, temperature: float | None, n: int | None,
            cache_dir: Path | None, cache_mode: str | None, seed: int, in_process: bool,
            workers: int | None, no_progress: bool) -> None:
    """Train the LangProp example: a thermostat rule, choose_action(temperature_c,
    rate_c_per_min) -> "heat" | "cool" | "off", learnt from labelled readings.

    Works offline: without an LLM endpoint the mutation optimizer is used, and
    said so. Scripts run sandboxed (worker processes with time and memory limits).
    """
    from langprop_core.examples.thermostat import MODULE_NAME, seed_sources
    from langprop_core.examples.thermostat.train import train_example
    from langprop_core.sandbox import SandboxConfig

    opt_config = OptimizerConfig.from_env(kind=kind, base_url=base_url, model=model,
                                          temperature=temperature, n=n, cache_dir=cache_dir,
                                          cache_mode=cache_mode, seed=seed)
    optimizer = make_optimizer(opt_config, seed_sources=seed_sources())
    click.echo(f"optimizer: {optimizer.describe()}")
    sandbox = SandboxConfig(mode="inprocess" if in_process else "process",
                            **({"workers": workers} if workers else {}))
    result, trainer = train_example(run_dir, epochs=epochs, batch_size=batch_size, resume=resume,
                                    optimizer=optimizer, seed=seed, sandbox=sandbox,
                                    progress=not no_progress)
    best = result.best_policy
    val = [r for r in result.history if r.get("kind") == "val"]
    click.echo(f"best script {best.id} (generation {best.generation}), priority {best.priority:.3f}"
               + (f", validation {val[-1]['best_val_score']:.3f}" if val else ""))
    usage = optimizer.usage()
    if usage.calls:
        click.echo(f"LLM: {usage.calls} calls, {usage.prompt_tokens} prompt + "
                   f"{usage.completion_tokens} completion tokens")
    if trainer.rejected:
        click.echo(f"rejected replies: {dict(trainer.rejected)}")
    click.echo(f"checkpoint: {trainer.checkpoint_dir_for(MODULE_NAME)}")
    click.echo(f"metrics: {run_dir / 'metrics.jsonl'}, curve: {run_dir / 'training_curve.png'}")
    click.echo(f"\n{best.source}")
