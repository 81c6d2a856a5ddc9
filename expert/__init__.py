"""The privileged rule-based expert: scene -> target speed and steering, with the reason;
and relabelling of recorded scenes (DAgger)."""
from __future__ import annotations

from expert.config import ExpertConfig
from expert.expert import Expert

__all__ = ["Expert", "ExpertConfig", "relabel_dataset"]


def __getattr__(name: str):
    # relabel pulls in tqdm and the dataset code; import it only when asked for.
    if name == "relabel_dataset":
        from expert.relabel import relabel_dataset

        return relabel_dataset
    raise AttributeError(f"module 'expert' has no attribute {name!r}")
