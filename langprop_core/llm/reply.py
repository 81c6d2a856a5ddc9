"""Reply parsing: the one place where an optimizer's free-text reply becomes a script.

A reply should hold a fenced Python block (```python, ```py or a bare ```)
that defines the module's function. When a reply has several blocks, the one
that defines the function wins (the last such block, since replies usually end
with the final version); other blocks are ignored. A reply that cannot be used
raises :class:`ReplyError` whose ``reason`` the trainer counts and logs.

An update reply may instead hold edit blocks against the parent script
(:mod:`langprop_core.llm.edits`); :func:`script_from_reply` is the one entry
point that takes either kind of reply.
"""
from __future__ import annotations

import ast
import re
import textwrap

from langprop_core.llm.edits import EditError, apply_edits, has_edits, parse_edits

__all__ = ["ReplyError", "REASONS", "extract_script", "script_from_reply", "find_code_blocks",
           "defines_function"]

# edit_failed: the reply's edit blocks do not apply to the parent, or the edited script does not
# parse or define the function (the trainer then asks once for the complete script)
REASONS = ("no_code", "syntax_error", "missing_function", "edit_failed")

# An opening fence at the start of a line: three or more backticks (or tildes),
# an optional language tag, then the block up to a matching closing fence. The
# closing fence may be missing when a reply was cut off at max_tokens.
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


class ReplyError(ValueError):
    """A reply holds no usable script; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reply error reason {reason!r}")
        super().__init__(message)
        self.reason = reason


def find_code_blocks(reply: str) -> list[str]:
    """The bodies of the Python (or untagged) fenced blocks of ``reply``, in order."""
    blocks = []
    for match in _FENCE.finditer(reply):
        if match.group("lang").lower() in _PYTHON_TAGS:
            # Dedent: replies sometimes indent a whole block (inside a list item).
            blocks.append(textwrap.dedent(match.group("body")))
    return blocks


def defines_function(tree: ast.Module, function_name: str) -> bool:
    """Whether a module defines ``function_name`` at its top level."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function_name:
            return True
        # `name = lambda ...` or an alias also gives a callable by that name.
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == function_name for t in node.targets
        ):
            return True
    return False


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def extract_script(reply: str, function_name: str) -> str:
    """The script in ``reply`` that defines ``function_name``.

    Raises :class:`ReplyError` with reason ``no_code`` (no fenced Python block),
    ``syntax_error`` (no block parses) or ``missing_function`` (blocks parse but
    none defines the function at top level).
    """
    blocks = [b for b in find_code_blocks(reply) if b.strip()]
    if not blocks:
        raise ReplyError(
            "no_code",
            f"reply has no fenced Python code block (```python ... ```); reply starts: {_short(reply)!r}",
        )
    syntax_errors: list[str] = []
    broken_definition = False
    defining: list[str] = []
    n_parsed = 0
    for index, block in enumerate(blocks, start=1):
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes (Python < 3.12)
            where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
            syntax_errors.append(f"block {index} {where}")
            broken_definition |= re.search(rf"\bdef\s+{re.escape(function_name)}\b", block) is not None
            continue
        n_parsed += 1
        if defines_function(tree, function_name):
            defining.append(block)
    if defining:
        # The last defining block: replies that revise their code end with the final version.
        return defining[-1].strip("\n") + "\n"
    if not n_parsed or broken_definition:
        what = (f"the code defining {function_name!r} does not parse" if broken_definition
                else "no code block of the reply parses as Python")
        raise ReplyError("syntax_error", f"{what} ({'; '.join(syntax_errors)})")
    detail = (f"; {len(syntax_errors)} other block(s) had syntax errors ({'; '.join(syntax_errors)})"
              if syntax_errors else "")
    raise ReplyError(
        "missing_function",
        f"no code block of the reply defines function {function_name!r} at top level "
        f"({n_parsed} block(s) parsed){detail}",
    )


def _edited_script(reply: str, function_name: str, parent_source: str) -> str:
    try:
        script = apply_edits(parent_source, parse_edits(reply))
    except EditError as exc:
        raise ReplyError("edit_failed", str(exc)) from None
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError) as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
        raise ReplyError("edit_failed", f"the edited script does not parse ({where})") from None
    if not defines_function(tree, function_name):
        raise ReplyError("edit_failed", f"the edited script no longer defines {function_name!r} at top level")
    return script.strip("\n") + "\n"


def script_from_reply(reply: str, function_name: str, parent_source: str | None = None) -> str:
    """The child script a reply gives: ``parent_source`` with the reply's edit blocks applied
    when it holds any and there is a parent, else the fenced script (:func:`extract_script`).

    A reply whose edits fail but that also holds a complete script defining the function gives
    that script (a model asked for edits may answer in full). Otherwise the edit failure is a
    :class:`ReplyError` with reason ``edit_failed`` whose one-line message says which block
    failed and why.
    """
    if parent_source is None or not has_edits(reply):
        return extract_script(reply, function_name)
    try:
        return _edited_script(reply, function_name, parent_source)
    except ReplyError as edit_error:
        try:
            return extract_script(reply, function_name)
        except ReplyError:
            raise edit_error from None
