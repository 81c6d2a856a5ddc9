"""A module: a named function, its prompts, and its population of scripts.

The population is ranked by priority, a decayed running average of batch
scores: after a batch with mean score ``s``,
``weight' = decay * weight + 1`` and
``priority' = (decay * weight * priority + s) / weight'``,
so a script's first batch sets its priority to ``s`` and older batches count
less and less. At most ``max_keep`` scripts survive a ranking.

Batches differ in difficulty, and a new script has been scored on one batch
only, so raw batch scores would rank newcomers by how easy their first batch
was: after an easy batch every child (most of them behaving like their parent)
outranks every incumbent, after a hard one every child is dropped, however good.
:meth:`Module.fold_batch` therefore takes ``s`` relative to the batch: it
subtracts the batch's difficulty offset, the mean of ``s - priority`` over the
scripts ranked before it (each estimates how much this batch is above an
average one), so a newcomer is compared with the incumbents on the same
records, and a population of clones keeps its priority from batch to batch.

Modules may call each other: ``Module(..., depends_on=[other])`` makes the
best script of ``other`` (and of its own dependencies) loaded into the
namespace of every script of this module, under ``other.function_name``, in
training (sandboxed or in-process) and in inference. Training a module trains
only that module: its dependencies are frozen at their best script when
``Trainer.fit`` starts (train a dependency first, or give it
``seed_sources``), and the checkpoint records which dependency scripts were
used. The prompts get the variable ``dependencies`` (name, signature,
docstring of each callable dependency) and ``dependencies_text`` (the same as
lines ready to paste into a prompt).
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from langprop_core.llm.base import ChatMessage
from langprop_core.llm.edits import EDIT_INSTRUCTIONS
from langprop_core.policy import Policy, policy_id_for
from langprop_core.sandbox import Dependency
from langprop_core.templates import render_chat

if TYPE_CHECKING:  # pragma: no cover
    from langprop_core.inference import PolicyFunction

__all__ = ["Module"]

log = logging.getLogger(__name__)

SETUP_TEMPLATE = "setup.txt"
UPDATE_TEMPLATE = "update.txt"
# ranking compares priorities to this many decimal places (far above float rounding, far below
# any score difference that means something)
PRIORITY_DECIMALS = 9


class Module:
    """A trainable function: ``function_name`` defined by the best of its scripts.

    ``template_dir`` holds ``setup.txt`` (write from scratch) and ``update.txt``
    (improve a script given its failures). ``template_vars`` are passed to
    both. ``seed_sources`` start the population (no setup phase then).
    ``depends_on`` are modules whose functions this module's scripts may call
    by name (see the module docstring).
    """

    def __init__(self, name: str, function_name: str, template_dir: Path, max_keep: int = 16,
                 priority_decay: float = 0.9, seed_sources: Iterable[str] = (),
                 template_vars: dict[str, Any] | None = None,
                 depends_on: Sequence["Module"] = ()) -> None:
        if max_keep < 1:
            raise ValueError(f"Module {name!r}: max_keep must be >= 1, not {max_keep}")
        if not 0.0 <= priority_decay < 1.0:
            raise ValueError(f"Module {name!r}: priority_decay must be in [0, 1), not {priority_decay}")
        self.name = name
        self.function_name = function_name
        self.template_dir = Path(template_dir)
        for template in (SETUP_TEMPLATE, UPDATE_TEMPLATE):
            if not (self.template_dir / template).is_file():
                raise FileNotFoundError(f"Module {name!r}: {self.template_dir / template} not found")
        self.max_keep = max_keep
        self.priority_decay = priority_decay
        self.seed_sources = list(seed_sources)
        self.template_vars = dict(template_vars or {})
        self.depends_on = list(depends_on)
        self._check_dependencies()
        self.population: list[Policy] = []
        # Every script id ever admitted: a script dropped from the population
        # is not admitted again when an optimizer proposes it once more.
        self.seen_ids: set[str] = set()

    # -- population

    def seed(self) -> int:
        """Admit the seed scripts; returns how many were new."""
        return sum(self.admit(Policy.from_source(src, self.function_name, optimizer="seed"))
                   for src in self.seed_sources)

    def admit(self, policy: Policy) -> bool:
        """Add ``policy`` unless the same script (up to comments and layout) was seen before."""
        # The id is what makes "the same script": never trust one set by the caller.
        policy.id = policy_id_for(policy.source)
        if policy.id in self.seen_ids:
            return False
        self.seen_ids.add(policy.id)
        self.population.append(policy)
        return True

    def update_priority(self, policy: Policy, batch_score: float, offset: float = 0.0) -> None:
        """Fold one batch's mean score, less the batch's difficulty ``offset``, into the policy's
        decayed running average (``policy.scores`` keeps the raw score)."""
        old_weight = self.priority_decay * policy.priority_weight
        new_weight = old_weight + 1.0
        previous = policy.priority if policy.priority is not None else 0.0
        policy.priority = (old_weight * previous + batch_score - offset) / new_weight
        policy.priority_weight = new_weight
        policy.scores.append(batch_score)

    def fold_batch(self, batch_scores: dict[str, float]) -> float:
        """Fold one batch's mean scores (by script id) into the priorities, relative to the batch.

        Every scored script's score is taken less the batch's difficulty offset
        (the mean ``score - priority`` of the scripts that already had a
        priority; 0 when none had), then folded in by :meth:`update_priority`.
        Returns the offset. Scripts missing from ``batch_scores`` are untouched.
        """
        ranked = [p for p in self.population if p.id in batch_scores and p.priority is not None]
        offset = (sum(batch_scores[p.id] - p.priority for p in ranked) / len(ranked)) if ranked else 0.0
        for policy in self.population:
            if policy.id in batch_scores:
                self.update_priority(policy, batch_scores[policy.id], offset)
        return offset

    def rerank(self, select: Callable[[list[Policy], int], list[Policy]] | None = None) -> list[Policy]:
        """Sort best first and keep ``max_keep``; returns the dropped policies.

        ``select(ranked, max_keep)`` chooses who stays (in rank order) instead of the first ``max_keep``
        (e.g. :meth:`langprop_core.diversity.Archive.survivors`, which keeps the best of every niche).

        Unscored scripts rank last; ties go to the older generation, then the id,
        so the order never depends on dict or thread order. Priorities are
        compared to ``PRIORITY_DECIMALS`` places: :meth:`fold_batch` gives a
        script that scores like the incumbents the incumbents' priority, equal
        but for rounding, and rounding error must not decide the order.
        """
        self.population.sort(key=lambda p: (p.priority is None, -round(p.priority or 0.0, PRIORITY_DECIMALS),
                                            p.generation, p.id))
        if select is None or len(self.population) <= self.max_keep:
            dropped = self.population[self.max_keep:]
            del self.population[self.max_keep:]
            return dropped
        kept = select(list(self.population), self.max_keep)[:self.max_keep]
        kept_ids = {id(p) for p in kept}
        dropped = [p for p in self.population if id(p) not in kept_ids]
        self.population = [p for p in self.population if id(p) in kept_ids]
        return dropped

    def best(self) -> Policy:
        """The top-ranked script."""
        if not self.population:
            raise LookupError(f"module {self.name!r} has no scripts yet")
        return self.population[0]

    def policy_function(self, sandbox: bool = True, timeout_s: float = 1.0) -> "PolicyFunction":
        """The best script as a callable (see :mod:`langprop_core.inference`),
        with the best scripts of its dependencies loaded beside it."""
        from langprop_core.inference import PolicyFunction
        return PolicyFunction(self.best(), sandbox=sandbox, timeout_s=timeout_s,
                              dependencies=self.dependencies())

    # -- dependencies

    def _check_dependencies(self) -> None:
        names: dict[str, str] = {}
        for dep in self.depends_on:
            if not isinstance(dep, Module):
                raise TypeError(f"Module {self.name!r}: depends_on holds a {type(dep).__name__}, "
                                f"not a Module")
            if dep is self or self in dep.all_dependencies():
                raise ValueError(f"Module {self.name!r}: depending on {dep.name!r} makes a cycle")
            if dep.function_name == self.function_name:
                raise ValueError(f"Module {self.name!r}: dependency {dep.name!r} defines the same "
                                 f"function name {dep.function_name!r}")
            if dep.function_name in names:
                raise ValueError(f"Module {self.name!r}: dependencies {names[dep.function_name]!r} "
                                 f"and {dep.name!r} both define {dep.function_name!r}")
            names[dep.function_name] = dep.name

    def all_dependencies(self) -> list["Module"]:
        """Every module this one depends on, directly or not (each once)."""
        found: list[Module] = []
        stack = list(reversed(self.depends_on))
        while stack:
            m = stack.pop()
            if all(m is not f for f in found):
                found.append(m)
                stack.extend(reversed(m.depends_on))
        return found

    def dependencies(self) -> tuple[Dependency, ...]:
        """The best script of each dependency (with theirs), as the sandbox loads them."""
        if any(m is self for m in self.all_dependencies()):
            raise ValueError(f"Module {self.name!r}: its dependencies make a cycle")
        specs = []
        for dep in self.depends_on:
            if not dep.population:
                raise LookupError(f"module {self.name!r} depends on module {dep.name!r}, which has "
                                  f"no scripts: train it first, load its checkpoint "
                                  f"(Module.load_checkpoint) or give it seed_sources")
            best = dep.best()
            specs.append(Dependency(function_name=dep.function_name, source=best.source,
                                    script_id=best.id, module=dep.name,
                                    dependencies=dep.dependencies()))
        return tuple(specs)

    def dependency_info(self) -> list[dict[str, str]]:
        """For prompts: each callable dependency's name, signature and docstring."""
        info = []
        for dep in self.depends_on:
            source = dep.best().source if dep.population else (dep.seed_sources or [""])[0]
            signature, doc = _signature(source, dep.function_name)
            info.append({"name": dep.function_name, "module": dep.name, "signature": signature,
                         "doc": doc})
        return info

    def load_checkpoint(self, path: Path | str) -> None:
        """Take the population of a saved checkpoint (e.g. a frozen dependency trained earlier)."""
        from langprop_core.checkpoint import load_checkpoint
        ck = load_checkpoint(Path(path), self.function_name)
        self.load_population(ck.policies)

    def load_population(self, policies: Iterable[Policy], seen_ids: Iterable[str] = ()) -> None:
        """Replace the population (from a checkpoint)."""
        self.population = list(policies)
        self.seen_ids = set(seen_ids) | {p.id for p in self.population}

    # -- prompts

    def setup_prompt(self, **variables: Any) -> list[ChatMessage]:
        """The zero-shot prompt: write the function from scratch."""
        return render_chat(self.template_dir / SETUP_TEMPLATE,
                           **self._vars(variables))

    def update_prompt(self, policy: Policy, score: float | None, failures: list[str],
                      reply_format: str = "rewrite", **variables: Any) -> list[ChatMessage]:
        """Ask to improve ``policy``; ``failures`` are the case texts of its worst calls.

        ``reply_format`` is what the reply should hold: ``"rewrite"`` (the complete script) or
        ``"edits"`` (edit blocks against ``policy``). The template gets it as ``reply_format``, and
        the format's instructions as ``edit_instructions``; a template that does not show them
        gets them appended to its last user message, so every edits prompt carries them.
        """
        if reply_format not in ("rewrite", "edits"):
            raise ValueError(f"reply_format must be 'rewrite' or 'edits', not {reply_format!r}")
        messages = render_chat(self.template_dir / UPDATE_TEMPLATE,
                               **self._vars(dict(variables, code=policy.source.rstrip(), score=score,
                                                 failures=failures, parent_id=policy.id,
                                                 generation=policy.generation, reply_format=reply_format,
                                                 edit_instructions=EDIT_INSTRUCTIONS)))
        if reply_format == "edits" and not any(EDIT_INSTRUCTIONS in m.content for m in messages):
            users = [i for i, m in enumerate(messages) if m.role == "user"]
            if users:
                last = messages[users[-1]]
                messages[users[-1]] = ChatMessage("user", f"{last.content}\n\n{EDIT_INSTRUCTIONS}")
            else:
                messages.append(ChatMessage("user", EDIT_INSTRUCTIONS))
        return messages

    def _vars(self, extra: dict[str, Any]) -> dict[str, Any]:
        deps = self.dependency_info()
        text = "\n".join(f"- {d['signature']}" + (f": {d['doc']}" if d["doc"] else "") for d in deps)
        return {"function_name": self.function_name, "module_name": self.name,
                "dependencies": deps, "dependencies_text": text, **self.template_vars, **extra}

    def __repr__(self) -> str:
        return (f"Module({self.name!r}, function={self.function_name!r}, "
                f"population={len(self.population)}, max_keep={self.max_keep})")


def _signature(source: str, function_name: str) -> tuple[str, str]:
    """``name(args)`` and the first docstring line of ``function_name`` in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function_name:
            node_args = ast.unparse(node.args)
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            return f"{function_name}({node_args}){returns}", (doc[0] if doc else "")
    return f"{function_name}(...)", ""
