"""Leaderboard agent that drives with the rule-based privileged expert.

Use it as ``TEAM_AGENT=team_code/expert_agent.py`` to collect training data:
with ``LANGPROP_RECORD_DIR`` (or ``record_dir:`` in ``TEAM_CONFIG``) every tick's
scene is recorded with the expert's label and the action taken.
"""
from __future__ import annotations

from typing import Any

from driving.labels import DrivingLabel, PolicyAction
from team_code.privileged_agent import PrivilegedAgent, action_from_label

__all__ = ["ExpertAgent", "get_entry_point"]


def get_entry_point() -> str:
    """The leaderboard reads the agent class name from here."""
    return "ExpertAgent"


class ExpertAgent(PrivilegedAgent):
    """Drives with :class:`expert.Expert`; records scenes with labels when asked."""

    controller_name = "expert"

    def setup(self, path_to_conf_file: str | None, *args: Any, **kwargs: Any) -> None:
        """Read the config and build the expert (no world access here)."""
        super().setup(path_to_conf_file, *args, **kwargs)
        from expert import Expert

        self.expert = Expert()

    def decide(self, scene: dict[str, Any]) -> tuple[PolicyAction, DrivingLabel | None, dict[str, Any]]:
        label = self.expert.predict(scene)
        return action_from_label(label), label, {"reason": label.reason}
