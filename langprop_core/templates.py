"""Chat prompt templates: jinja2 files on disk, split into chat roles.

A template renders to text in which lines ``%% system``, ``%% user`` and
``%% assistant`` open the role sections; ``{% include "other.txt" %}`` finds
files relative to the template's folder. Undefined variables are errors that
name the template, never silently empty text.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from langprop_core.llm.base import ROLES, ChatMessage

__all__ = ["TemplateError", "render_chat", "split_roles"]

_ROLE_LINE = re.compile(r"^%%[ \t]*(\w+)[ \t]*$", re.MULTILINE)


class TemplateError(ValueError):
    """A template is missing, fails to render, or has no valid role sections."""


@lru_cache(maxsize=32)
def _environment(folder: str) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def split_roles(text: str, origin: str = "<template>") -> list[ChatMessage]:
    """Split rendered text at ``%% <role>`` lines into chat messages."""
    matches = list(_ROLE_LINE.finditer(text))
    if not matches:
        raise TemplateError(f"{origin}: no role line (%% system, %% user or %% assistant)")
    head = text[:matches[0].start()]
    if head.strip():
        line = head.count("\n") + 1
        raise TemplateError(f"{origin}: text before the first role line (line {line})")
    messages = []
    for i, match in enumerate(matches):
        role = match.group(1)
        if role not in ROLES:
            line = text[:match.start()].count("\n") + 1
            raise TemplateError(f"{origin}: line {line}: unknown role {role!r} "
                                f"(use {', '.join(ROLES)})")
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        messages.append(ChatMessage(role=role, content=text[match.end():end].strip()))
    return messages


def render_chat(template_path: Path | str, **variables: Any) -> list[ChatMessage]:
    """Render ``template_path`` with ``variables`` into chat messages."""
    path = Path(template_path).resolve()
    if not path.is_file():
        raise TemplateError(f"{path}: template not found")
    env = _environment(str(path.parent))
    try:
        text = env.get_template(path.name).render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{path}: {exc.message} (pass it as a template variable)") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or path}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{path}: included template {exc.name!r} not found in {path.parent}") from None
    return split_roles(text, str(path))
