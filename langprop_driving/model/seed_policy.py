"""Where the seed scripts live, and how to read a seed from any .py file."""
from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["SEEDS_DIR", "FUNCTION_NAME", "seed_path", "read_seed_source", "top_level_functions"]

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
FUNCTION_NAME = "predict_speed_and_steering"


def seed_path(name: str = "naive") -> Path:
    """The path of a bundled seed script ("naive", "cautious")."""
    path = SEEDS_DIR / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in SEEDS_DIR.glob("*.py") if not p.stem.startswith("_"))
        raise FileNotFoundError(f"no bundled seed {name!r}; known: {', '.join(known)}")
    return path


def top_level_functions(path: Path, source: str | None = None) -> set[str]:
    """The names of the plain (not async) functions a .py file (or its ``source``) defines at top level.

    Async functions are left out: neither a policy nor a leaderboard entry point
    can be one. Raises ValueError naming the file and line when it does not parse.
    """
    try:
        tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid Python: {exc.msg}") from None
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def read_seed_source(path_or_name: str | Path, function_name: str = FUNCTION_NAME) -> str:
    """The source of a seed script (a bundled name or a .py path), checked to define the function.

    Raises ValueError naming the file when it does not parse or lacks the function.
    """
    path = Path(path_or_name)
    if not path.suffix == ".py" and not path.exists():
        path = seed_path(str(path_or_name))
    source = path.read_text()
    if function_name not in top_level_functions(path, source):
        raise ValueError(f"{path}: seed script defines no top-level function {function_name!r}")
    return source
