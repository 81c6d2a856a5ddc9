"""Shared fixtures.

Test data from ``../shared/data`` (CARLA Town01, leaderboard routes) is found
through ``LANGPROP_SHARED_DATA`` or beside the repository;
without it, the tests that need it are reported as skipped, with the reason.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("LANGPROP_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if (path / "carla_town01" / "Town01.xodr").is_file():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``shared/data`` folder with CARLA Town01 and the leaderboard routes."""
    path = _shared_data_dir()
    if path is None:
        message = ("../shared/data (CARLA Town01 and leaderboard routes) not found; "
                   "set LANGPROP_SHARED_DATA to its path")
        pytest.skip(message)
    return path


# The OpenAI-compatible test server (``fake_llm_server``) and a small generated town (``world_setup``)
# serve every test module.
pytest_plugins = ["tests.fixtures.llm_server", "tests.fixtures.small_world"]
