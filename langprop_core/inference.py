"""Run a trained script: the best policy of a checkpoint, or a plain ``.py`` file.

No LLM is involved. Loading a checkpoint reads data only (JSON and script
text): no code of it runs in this process. Sandboxed by default (a contained
worker process with time and memory limits, results decoded as plain data,
see :mod:`langprop_core.sandbox`); ``sandbox=False`` calls the compiled
function in this process, for trusted scripts only.
Either way every call gets its own copy of the arguments. A policy whose module
depends on other modules runs with their recorded scripts loaded beside it
(see :class:`langprop_core.sandbox.Dependency`).
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any, Sequence

from langprop_core.checkpoint import load_checkpoint
from langprop_core.copier import CopyPlanner
from langprop_core.policy import Policy
from langprop_core.sandbox import (Dependency, SandboxConfig, ScriptError, ScriptRunner, ScriptTimeout,
                                   WorkerKilled, load_function, prepare_inputs)

__all__ = ["PolicyFunction", "load_policy"]

log = logging.getLogger(__name__)


class PolicyFunction:
    """A callable policy. Raises :class:`ScriptError` when the script fails."""

    def __init__(self, policy: Policy, sandbox: bool = True, timeout_s: float = 1.0,
                 memory_mb: int = 1024, dependencies: Sequence[Dependency] = (),
                 strict: bool = False) -> None:
        self.policy = policy
        self.sandboxed = sandbox
        self.dependencies = tuple(dependencies)
        self._runner: ScriptRunner | None = None
        self._fn: Any = None
        self._planner = CopyPlanner()
        if sandbox:
            self._runner = ScriptRunner(SandboxConfig(mode="process", workers=1, timeout_s=timeout_s,
                                                      memory_mb=memory_mb, strict=strict))
        else:
            log.warning("policy %s runs in this process, uncontained: trusted scripts only", policy.id)
            try:
                self._fn = load_function(policy.source, policy.function_name,
                                         f"<script {policy.id}>", self.dependencies)
            except Exception as exc:
                raise ScriptError(f"policy {policy.id}: cannot load "
                                  f"{policy.function_name!r}: {type(exc).__name__}: {exc}") from exc

    @property
    def policy_id(self) -> str:
        return self.policy.id

    def __call__(self, *args: Any) -> Any:
        """Call the policy's function on a copy of ``args``; raises :class:`ScriptError`
        (:class:`ScriptTimeout` past the time limit, :class:`WorkerKilled` when the
        call ended its worker) when the script fails."""
        if self._runner is not None:
            result = self._runner.run_batch({self.policy.id: self.policy.source},
                                            self.policy.function_name, [args],
                                            self.dependencies)[self.policy.id][0]
            if result.exception is not None:
                error = (ScriptTimeout if result.timed_out else
                         WorkerKilled if result.killed_worker else ScriptError)
                raise error(f"policy {self.policy.id}: {result.exception}\n"
                            f"{result.traceback or ''}".rstrip())
            return result.output
        # The same per-call copy as the sandbox's: the script may mutate its arguments.
        prepared = prepare_inputs([args], self._planner)
        try:
            return self._fn(*prepared.copiers[0](prepared.data[0]))
        except (Exception, SystemExit) as exc:  # sys.exit() in a trusted script is its failure too
            raise ScriptError(f"policy {self.policy.id}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Stop the sandbox worker (nothing to do in process)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> "PolicyFunction":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _function_in_file(path: Path, source: str, function_name: str | None) -> str:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ScriptError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if function_name:
        if function_name not in names:
            raise ScriptError(f"{path}: defines no function {function_name!r} "
                              f"(it defines: {', '.join(names) or 'none'})")
        return function_name
    if path.stem in names:
        return path.stem
    if len(names) == 1:
        return names[0]
    raise ScriptError(f"{path}: defines {len(names)} functions ({', '.join(names)}); "
                      f"say which with function_name")


def load_policy(path: Path | str, function_name: str | None = None, sandbox: bool = True,
                timeout_s: float = 1.0, module: str | None = None, strict: bool = False) -> PolicyFunction:
    """The best script of a checkpoint directory (ours or original LangProp), or a ``.py`` file.

    A run directory holding several module checkpoints loads ``module``, or
    when it is None the one module no other depends on; the scripts of its
    dependencies recorded in its checkpoint are loaded beside it.
    """
    path = Path(path)
    dependencies: tuple[Dependency, ...] = ()
    if path.is_file():
        source = path.read_text(encoding="utf-8")
        name = _function_in_file(path, source, function_name)
        policy = Policy.from_source(source, name, optimizer="file")
    else:
        checkpoint = load_checkpoint(path, function_name, module=module)
        policy = checkpoint.compiled_best()  # a broken best script fails here, with its file and line
        dependencies = checkpoint.dependencies
    return PolicyFunction(policy, sandbox=sandbox, timeout_s=timeout_s, dependencies=dependencies,
                          strict=strict)
