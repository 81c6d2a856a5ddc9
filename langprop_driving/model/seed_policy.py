"""Where the seed scripts live, and how to read a seed from any .py file."""
from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["SEEDS_DIR", "FUNCTION_NAME", "seed_path", "read_seed_source"]

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
FUNCTION_NAME = "predict_speed_and_steering"


def seed_path(name: str = "naive") -> Path:
    """The path of a bundled seed script ("naive", "cautious")."""
    path = SEEDS_DIR / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in SEEDS_DIR.glob("*.py") if not p.stem.startswith("_"))
        raise FileNotFoundError(f"no bundled seed {name!r}; known: {', '.join(known)}")
    return path


def read_seed_source(path_or_name: str | Path, function_name: str = FUNCTION_NAME) -> str:
    """The source of a seed script (a bundled name or a .py path), checked to define the function.

    Raises ValueError naming the file when it does not parse or lacks the function.
    """
    path = Path(path_or_name)
    if not path.suffix == ".py" and not path.exists():
        path = seed_path(str(path_or_name))
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path}:{exc.lineno}: seed script does not parse: {exc.msg}") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == function_name for node in tree.body):
        raise ValueError(f"{path}: seed script defines no top-level function {function_name!r}")
    return source
