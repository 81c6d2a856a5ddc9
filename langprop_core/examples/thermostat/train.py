"""Train the thermostat example (what ``langprop example`` runs)."""
from __future__ import annotations

from pathlib import Path

from langprop_core.callbacks import Callback
from langprop_core.examples.thermostat import make_dataset, make_module, make_task, seed_sources
from langprop_core.llm.base import Optimizer
from langprop_core.llm.factory import OptimizerConfig, make_optimizer
from langprop_core.sandbox import SandboxConfig
from langprop_core.trainer import FitResult, Trainer, TrainerConfig

__all__ = ["train_example"]


def train_example(run_dir: Path, epochs: int = 3, batch_size: int = 32, n_train: int = 256,
                  n_val: int = 128, resume: bool = False, optimizer: Optimizer | None = None,
                  optimizer_config: OptimizerConfig | None = None, seed: int = 0,
                  sandbox: SandboxConfig | None = None, progress: bool = True,
                  callbacks: tuple[Callback, ...] = (), reply_format: str | None = None) -> tuple[FitResult, Trainer]:
    """Train ``choose_action`` from scratch (setup phase) or resume a run in ``run_dir``; ``reply_format``:
    see :class:`~langprop_core.trainer.TrainerConfig` (None: its default)."""
    if optimizer is None:
        optimizer = make_optimizer(optimizer_config or OptimizerConfig.from_env(seed=seed),
                                   seed_sources=seed_sources())
    config = TrainerConfig(epochs=epochs, batch_size=batch_size, n_responses=2, top_k=2, seed=seed,
                           sandbox=sandbox or SandboxConfig(), progress=progress,
                           **({"reply_format": reply_format} if reply_format else {}))
    trainer = Trainer(optimizer, config, run_dir=run_dir, callbacks=callbacks)
    result = trainer.fit(make_module(), make_task(), make_dataset(n_train, seed=seed),
                         make_dataset(n_val, seed=seed + 1), resume=resume)
    return result, trainer
