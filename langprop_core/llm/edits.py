"""Edit blocks: a reply that changes the current script instead of rewriting it.

An update reply may hold search/replace blocks (the conflict-marker format
that aider, OpenEvolve and ShinkaEvolve ask models for, so capable models know it)::

    <<<<<<< SEARCH
    lines copied from the current script
    =======
    the lines that replace them
    >>>>>>> REPLACE

The blocks may sit inside a fenced block or not, use CRLF line ends, and come
several to a reply; text between blocks is ignored. :func:`parse_edits` finds
them, :func:`apply_edits` applies them in order, each to the script as the
blocks before it left it. A SEARCH matches whole lines: exactly first; failing
that, ignoring trailing whitespace and a uniform shift of indentation (the
REPLACE lines are then shifted the same way, so the source's indentation is
kept). A SEARCH that matches nowhere or in several places is an
:class:`EditError` that names the block and why.

Whether the edited script parses and defines the function is checked where
replies become scripts (:func:`langprop_core.llm.reply.script_from_reply`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Edit", "EditError", "EDIT_INSTRUCTIONS", "EDIT_MIN_LINES", "REPLY_FORMATS", "has_edits",
           "parse_edits", "apply_edits"]

#: what an update prompt may ask for: edits or the complete script ("rewrite"), or edits for long
#: scripts only ("auto"; see :class:`langprop_core.trainer.TrainerConfig`)
REPLY_FORMATS = ("auto", "edits", "rewrite")

# "auto" asks for edits when the parent script has more lines than this. Measured on the 11 recorded
# calls of a frontier LLM's run (the update prompts of the driving task): a full rewrite costs
# 10.6 output tokens per line of the script; the same children written as edit blocks (2 lines of
# context, with the reply's prose) cost a median 1,427 tokens (592-1,998) on parents of 320-359 lines,
# 35% of the rewrites. An edit reply's size follows what changes, not the parent's length, so edits only
# pay for parents longer than 1,427 / 10.6 = 135 lines, before the instructions' ~200 prompt tokens and
# the rare follow-up request when an edit does not apply. The seeds (33-36 lines) are below: on them
# the model rewrote everything (edits would have cost 1.1x the rewrite).
EDIT_MIN_LINES = 150

#: The format instructions an update prompt shows when it asks for edits. Self-contained (the prompt
#: may show them after rules that ask for a complete script) and about the format only.
EDIT_INSTRUCTIONS = """\
Answer with edits to the current script, not the complete script: after your explanation, write one or \
more edit blocks, each in exactly this form:

<<<<<<< SEARCH
lines copied exactly from the current script
=======
the lines that replace them
>>>>>>> REPLACE

Each SEARCH holds whole lines of the current script, with their indentation, and must match exactly one \
place in it: add a few unchanged lines around the change when needed to make it unique. Blocks apply in \
order, each to the script as the blocks before it left it. To add code, search for the lines next to \
where it goes and repeat them in REPLACE with the new lines; to delete lines, leave REPLACE empty. Keep \
blocks small. If you change most of the script, answer instead with the complete script in one fenced \
```python block."""

_SEARCH = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH[ \t]*$", re.IGNORECASE)
_DIVIDER = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_REPLACE = re.compile(r"^[ \t]*>{5,9}[ \t]*REPLACE[ \t]*$", re.IGNORECASE)
_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[\w+-]*[ \t]*$")


class EditError(ValueError):
    """Edit blocks that cannot be applied; ``block`` is the 1-based block at fault (None: the reply)."""

    def __init__(self, message: str, block: int | None = None) -> None:
        super().__init__(f"edit block {block}: {message}" if block is not None else message)
        self.block = block


@dataclass(frozen=True)
class Edit:
    """One search/replace block; ``block`` is its 1-based position in the reply."""

    search: str
    replace: str
    block: int


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _quote(line: str, limit: int = 60) -> str:
    line = line.strip()
    return repr(line if len(line) <= limit else line[:limit - 3] + "...")


def _section(lines: list[str]) -> str:
    # A model may fence the code of a section itself: a fence line at either end is not code.
    if lines and _FENCE_LINE.match(lines[0]):
        lines = lines[1:]
    if lines and _FENCE_LINE.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines)


def has_edits(reply: str) -> bool:
    """Whether ``reply`` holds at least one ``<<<<<<< SEARCH`` line (a well-formed block or not)."""
    return any(_SEARCH.match(line) for line in _lines(reply))


def parse_edits(reply: str) -> list[Edit]:
    """The edit blocks of ``reply`` in order ([] when it has none).

    Raises :class:`EditError` for a block that is not closed in order
    (SEARCH, ``=======``, REPLACE), e.g. a reply cut off inside a block.
    """
    edits: list[Edit] = []
    search: list[str] = []
    replace: list[str] = []
    state = "out"  # out -> search -> replace -> out
    for line in _lines(reply):
        n = len(edits) + 1
        if state == "out":
            if _SEARCH.match(line):
                state, search, replace = "search", [], []
        elif state == "search":
            if _DIVIDER.match(line):
                state = "replace"
            elif _SEARCH.match(line) or _REPLACE.match(line):
                raise EditError("no ======= line between <<<<<<< SEARCH and the next marker", n)
            else:
                search.append(line)
        else:
            if _REPLACE.match(line):
                edits.append(Edit(_section(search), _section(replace), n))
                state = "out"
            elif _SEARCH.match(line) or _DIVIDER.match(line):
                raise EditError("no >>>>>>> REPLACE line before the next marker", n)
            else:
                replace.append(line)
    if state != "out":
        raise EditError("the reply ends inside the block (no >>>>>>> REPLACE line; was it cut off?)",
                        len(edits) + 1)
    return edits


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _shift(line: str, delta: int, pad: str) -> str:
    if not line.strip():
        return ""
    if delta >= 0:
        return pad * delta + line
    return line[min(-delta, _indent(line)):]


def _tolerant_matches(source: list[str], search: list[str]) -> list[tuple[int, int]]:
    """(start, indentation shift) of every place where ``search`` matches ``source`` up to trailing
    whitespace and one indentation shift shared by all its non-blank lines."""
    found = []
    k = len(search)
    for start in range(len(source) - k + 1):
        delta: int | None = None
        for s_line, t_line in zip(search, source[start:start + k]):
            if s_line.strip() != t_line.strip():
                break
            if s_line.strip():
                d = _indent(t_line) - _indent(s_line)
                if delta is None:
                    delta = d
                elif d != delta:
                    break
        else:
            found.append((start, delta or 0))
    return found


def _apply_one(source: list[str], edit: Edit) -> list[str]:
    search = edit.search.split("\n")
    replace = edit.replace.split("\n") if edit.replace else []
    k = len(search)
    exact = [i for i in range(len(source) - k + 1) if source[i:i + k] == search]
    if len(exact) == 1:
        return source[:exact[0]] + replace + source[exact[0] + k:]
    where = f"(its first line: {_quote(next((s for s in search if s.strip()), ''))})"
    if len(exact) > 1:
        raise EditError(f"SEARCH matches {len(exact)} places of the script (lines "
                        f"{', '.join(str(i + 1) for i in exact[:5])}) {where}; it must match one", edit.block)
    loose = _tolerant_matches(source, search)
    if len(loose) > 1:
        raise EditError(f"SEARCH matches {len(loose)} places of the script up to whitespace (lines "
                        f"{', '.join(str(i + 1) for i, _ in loose[:5])}) {where}; it must match one",
                        edit.block)
    if not loose:
        raise EditError(f"SEARCH matches no lines of the script, even ignoring whitespace {where}", edit.block)
    start, delta = loose[0]
    pad = "\t" if any(line.startswith("\t") for line in source[start:start + k]) else " "
    return source[:start] + [_shift(line, delta, pad) for line in replace] + source[start + k:]


def apply_edits(source: str, edits: list[Edit]) -> str:
    """``source`` with ``edits`` applied in order (line ends become ``\\n``).

    An empty SEARCH is allowed only when ``source`` is empty (its REPLACE is the script);
    every other SEARCH must match exactly one place (see the module docstring), else
    :class:`EditError` names the block.
    """
    if not edits:
        raise EditError("the reply holds no edit block")
    lines = _lines(source)
    for edit in edits:
        if not edit.search.strip():
            if "\n".join(lines).strip():
                raise EditError("SEARCH is empty; it must hold lines of the current script", edit.block)
            lines = edit.replace.split("\n")
            continue
        lines = _apply_one(lines, edit)
    return "\n".join(lines)
