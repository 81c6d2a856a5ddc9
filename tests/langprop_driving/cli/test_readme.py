"""The README's commands cannot rot: every ``langprop`` command it shows exists, takes the options it uses,
and answers ``--help``."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from langprop_driving.cli import main

README = Path(__file__).resolve().parents[3] / "README.md"
_PROGRAM = re.compile(r"^(?:\S*=\S*\s+)*(?:\S*/)?langprop\s+(.*)$")  # env assignments, then (.venv/bin/)langprop


def _resolve(tokens: list[str]) -> tuple[list[str], click.Command]:
    """The command path in ``tokens`` (after the program and its own options) and the click command."""
    ctx = click.Context(main)
    command: click.Command = main
    path: list[str] = []
    rest = [t for t in tokens if t not in ("-v", "-vv", "--debug")]
    while isinstance(command, click.Group) and rest and not rest[0].startswith(("-", "<")):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"README names `langprop {' '.join(tokens)}`: no command {rest[0]!r}"
        path.append(rest.pop(0))
        command = sub
    return path, command


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}


def _code_block_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"\s*&&\s*", line):
                match = _PROGRAM.match(part.strip())
                if match:
                    commands.append(match.group(1))
    return commands


def _inline_commands(text: str) -> list[str]:
    return [m.group(1) for span in re.findall(r"`([^`\n]+)`", text) for m in [_PROGRAM.match(span)] if m]


def _table_rows(text: str) -> list[tuple[list[str], set[str]]]:
    """Rows of the Commands table: the command paths of the first column and every option the row names."""
    section = text[text.index("| command | does |"):]
    section = section[:section.index("\n\n")]
    rows = []
    for line in section.splitlines()[2:]:
        first, does = line.strip("|").split("|", 1)[0], line.split("|", 2)[2]
        paths = [span.split(" ") for span in re.findall(r"`([^`]+)`", first)]
        rows.append(([" ".join(t for t in p if re.fullmatch(r"[a-z][a-z-]*", t)) for p in paths],
                     set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", first + does))))
    return rows


def _words(command_line: str) -> list[str]:
    return shlex.split(command_line.replace("$", "X"))


README_TEXT = README.read_text(encoding="utf-8")
SHOWN = sorted(set(_code_block_commands(README_TEXT) + _inline_commands(README_TEXT)))


def test_the_readme_shows_commands():
    assert len(SHOWN) >= 8 and any(c.startswith("evaluate") for c in SHOWN)


@pytest.mark.parametrize("line", SHOWN)
def test_every_command_the_readme_shows_exists_with_its_options(line):
    tokens = _words(line)
    path, command = _resolve(tokens)
    options = _options(command)
    used = [t.split("=", 1)[0] for t in tokens if t.startswith("-") and t not in ("-v", "-vv", "--debug")]
    unknown = [t for t in used if t not in options]
    assert not unknown, f"README: `langprop {line}` uses {unknown}, which `langprop {' '.join(path)}` does not take"
    out = CliRunner().invoke(main, [*path, "--help"])
    assert out.exit_code == 0, out.output


def test_the_commands_table_names_real_commands_and_options():
    rows = _table_rows(README_TEXT)
    assert len(rows) >= 10
    for paths, options in rows:
        commands = [_resolve(path.split())[1] for path in paths]
        known = set().union(*(_options(c) for c in commands))
        missing = sorted(options - known)
        assert not missing, f"commands table: {paths} do not take {missing}"
        for path, command in zip(paths, commands):  # required options must be shown
            required = {p.opts[0] for p in command.params if p.required and p.opts[0].startswith("--")}
            assert required <= options, f"commands table: `{path}` leaves out its required {required - options}"
