"""Where the kernel's protections are missing, sandbox tests skip, or fail under ``LANGPROP_REQUIRE_SANDBOX=1``."""
from __future__ import annotations

import os

import pytest

from langprop_core.sandbox import probe


def require_sandbox() -> None:
    """Skip where the kernel lacks a protection, or fail when ``LANGPROP_REQUIRE_SANDBOX=1``."""
    found = probe()
    if found.landlock_abi and found.seccomp and not found.missing:
        return
    why = found.describe()
    if os.environ.get("LANGPROP_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"LANGPROP_REQUIRE_SANDBOX=1 and {why}")
    pytest.skip(why)
