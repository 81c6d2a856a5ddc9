"""Atomic writes: the content is replaced whole, with the permissions a plain write gives."""
from __future__ import annotations

import os
import stat

import pytest

from langprop_common import files


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_the_umask_mode_not_the_temporary_files(tmp_path, umask_027):
    target = tmp_path / "sub" / "index.json"
    files.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert _mode(target) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["index.json"]


def test_rewrite_keeps_the_existing_files_mode(tmp_path):
    target = tmp_path / "script.py"
    target.write_text("old\n")
    target.chmod(0o604)
    files.atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert _mode(target) == 0o604
