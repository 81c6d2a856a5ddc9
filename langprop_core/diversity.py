"""Keep distinct behaviours in the population on purpose.

A population ranked by one objective collapses: children that behave like
their best parent outrank everything else, and after a few batches every
survivor is a clone (the same score on every training record). Here
"similar" means "behaves the same", measured on a fixed **probe set** of inputs
the task supplies (:class:`BehaviourSpace`):

- a script's **signature** is its outputs on the probes (rounded); its
  **descriptor** is what the task reads from them (for driving: which kinds of
  scene it stops or slows for, and its cruise speed); a descriptor is a
  **niche**;
- **novelty rejection**: a child whose signature equals its parent's changes
  nothing ("no_change"); one whose signature equals another member's is a
  duplicate ("duplicate_behaviour"), whatever its text; neither is admitted;
- **niches as MAP-Elites** (OpenEvolve's grid): when the population is cut to
  ``max_keep``, the best script of every island and of every occupied niche
  survives first, the rest by rank, so a behaviour is lost only when the
  population has more niches than room;
- **islands** (both OpenEvolve and ShinkaEvolve; 2 by default, as
  ShinkaEvolve): each script belongs to the island(s) of its parent; the
  parents of a batch are drawn round-robin across islands, each the best of its
  island in a niche no other parent of the batch holds (an empty island takes
  the best such script of any island, and its child founds it), so the optimizer
  rewrites different behaviours instead of the top clone twice; every
  ``migration_interval`` batches the best of each island joins the next island
  in a ring (OpenEvolve's ring migration), which spreads a good design without
  merging the lines of descent.

What is not taken, and why: ShinkaEvolve's text-embedding similarity (text
that differs may drive the same, text that reads alike may not: the probe
outputs are the ground truth and cost a few hundred sandboxed calls per
child); spawning islands when the search stalls (the population here holds 8
to 16 scripts, too few to split further); OpenEvolve's per-island populations
(the trainer keeps one ranked population, checkpointed as one; islands are
labels on it, so a checkpoint of this version still loads in an older one).

The mechanism is domain-free: the probes, the descriptor and the rounding of
outputs come from the task (``Task.behaviour``); :class:`Archive` holds the
state (each script's behaviour and islands) and is saved in the trainer's state.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from langprop_core.policy import Policy

__all__ = ["BehaviourSpace", "Behaviour", "Archive", "niche_label", "rounded_signature"]


def rounded_signature(outputs: Sequence[Any], digits: int = 2) -> str:
    """A digest of ``outputs`` with every float rounded to ``digits`` places (a failed call is None)."""
    def norm(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, float):
            return round(value, digits) + 0.0  # -0.0 and 0.0 are the same behaviour
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        try:
            return round(float(value), digits) + 0.0
        except (TypeError, ValueError):
            return repr(value)[:200]
    text = json.dumps([norm(o) for o in outputs], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class BehaviourSpace:
    """How a task measures behaviour.

    ``probes``: argument tuples every script is called on. ``describe(outputs)``
    turns the outputs (None for a call that failed) into the descriptor, a
    mapping of short names to hashable values (its niche). ``signature(outputs)``
    says when two scripts behave the same (default: :func:`rounded_signature`).
    """

    probes: tuple[tuple, ...]
    describe: Callable[[Sequence[Any]], Mapping[str, Any]]
    signature: Callable[[Sequence[Any]], str] = rounded_signature

    def __post_init__(self) -> None:
        if not self.probes:
            raise ValueError("BehaviourSpace needs at least one probe")

    def measure(self, outputs: Sequence[Any]) -> "Behaviour":
        """The behaviour of a script with these outputs on the probes."""
        descriptor = dict(self.describe(outputs))
        return Behaviour(signature=self.signature(outputs), descriptor=descriptor)


@dataclass(frozen=True)
class Behaviour:
    """A script's signature on the probes and its descriptor."""

    signature: str
    descriptor: dict[str, Any]

    @property
    def niche(self) -> str:
        return niche_label(self.descriptor)

    def to_dict(self) -> dict[str, Any]:
        return {"signature": self.signature, "descriptor": dict(self.descriptor)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Behaviour":
        return cls(signature=str(data["signature"]), descriptor=dict(data.get("descriptor") or {}))


def niche_label(descriptor: Mapping[str, Any]) -> str:
    """A descriptor as one readable key: ``name=value`` pairs in name order."""
    return ",".join(f"{k}={descriptor[k]}" for k in sorted(descriptor))


class Archive:
    """Behaviours and islands of the scripts of one population (see the module docstring)."""

    def __init__(self, islands: int = 2, migration_interval: int = 4) -> None:
        if islands < 1:
            raise ValueError(f"islands must be >= 1, not {islands}")
        if migration_interval < 1:
            raise ValueError(f"migration_interval must be >= 1, not {migration_interval}")
        self.n_islands = islands
        self.migration_interval = migration_interval
        self.behaviours: dict[str, Behaviour] = {}
        self.islands: dict[str, set[int]] = {}

    # -- state

    def state_dict(self) -> dict[str, Any]:
        return {"behaviours": {k: b.to_dict() for k, b in sorted(self.behaviours.items())},
                "islands": {k: sorted(v) for k, v in sorted(self.islands.items())}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.behaviours = {k: Behaviour.from_dict(v) for k, v in (state.get("behaviours") or {}).items()}
        self.islands = {k: {int(i) % self.n_islands for i in v} for k, v in (state.get("islands") or {}).items()}

    def forget(self, keep: Iterable[Policy]) -> None:
        """Drop what is known of scripts no longer in the population."""
        ids = {p.id for p in keep}
        self.behaviours = {k: v for k, v in self.behaviours.items() if k in ids}
        self.islands = {k: v for k, v in self.islands.items() if k in ids}

    # -- admission

    def add(self, policy: Policy, behaviour: Behaviour, island: int | None = None) -> None:
        """Record ``policy``'s behaviour; its island is ``island`` or else the next in turn."""
        self.behaviours[policy.id] = behaviour
        if policy.id not in self.islands:
            if island is None:
                counts = [sum(i in isl for isl in self.islands.values()) for i in range(self.n_islands)]
                island = min(range(self.n_islands), key=lambda i: (counts[i], i))
            self.islands[policy.id] = {island % self.n_islands}

    def alike(self, behaviour: Behaviour, policies: Iterable[Policy]) -> list[Policy]:
        """The scripts of ``policies`` whose known behaviour has ``behaviour``'s signature."""
        return [p for p in policies
                if (known := self.behaviours.get(p.id)) is not None and known.signature == behaviour.signature]

    def novelty(self, behaviour: Behaviour, parent: Policy | None, population: Sequence[Policy]) -> str | None:
        """Why a child with ``behaviour`` adds nothing ("no_change", "duplicate_behaviour"), or None."""
        if parent is not None and self.alike(behaviour, [parent]):
            return "no_change"
        if self.alike(behaviour, population):
            return "duplicate_behaviour"
        return None

    # -- selection

    def island_of(self, policy: Policy) -> set[int]:
        return self.islands.get(policy.id, {0})

    def survivors(self, ranked: Sequence[Policy], max_keep: int) -> list[Policy]:
        """Who stays when ``ranked`` (best first) is cut to ``max_keep``: the best of every island and every
        niche first, then by rank; returned in rank order."""
        protected: list[Policy] = []
        for island in range(self.n_islands):
            best = next((p for p in ranked if island in self.island_of(p)), None)
            if best is not None and best not in protected:
                protected.append(best)
        seen_niches: set[str] = set()
        for policy in ranked:
            behaviour = self.behaviours.get(policy.id)
            if behaviour is None or behaviour.niche in seen_niches:
                continue
            seen_niches.add(behaviour.niche)
            if policy not in protected:
                protected.append(policy)
        keep = {id(p) for p in protected[:max_keep]}
        for policy in ranked:
            if len(keep) >= max_keep:
                break
            keep.add(id(policy))
        return [p for p in ranked if id(p) in keep]

    def parents(self, ranked: Sequence[Policy], k: int, step: int) -> list[tuple[Policy, int]]:
        """``k`` parents from ``ranked`` (best first, already filtered), each with the island it is drawn for:
        round-robin over the islands from ``step``, each the best of its island in a niche not yet drawn."""
        chosen: list[tuple[Policy, int]] = []
        niches: set[str] = set()
        for turn in range(k * self.n_islands):
            if len(chosen) == k:
                break
            island = (step + turn) % self.n_islands
            others = [p for p in ranked if all(p is not c for c, _ in chosen)]
            members = [p for p in others if island in self.island_of(p)]
            if not any(island in self.island_of(p) for p in ranked):
                members = others  # an empty island (a run starts with one seed) is founded from anywhere
            if not members:
                continue
            fresh = [p for p in members if self._niche(p) not in niches]
            if not fresh and turn < self.n_islands:
                continue  # first let every island offer a new niche
            pick = (fresh or members)[0]
            chosen.append((pick, island))
            niches.add(self._niche(pick))
        for policy in ranked:  # fewer islands with members than parents asked for
            if len(chosen) == k:
                break
            if all(policy is not c for c, _ in chosen):
                chosen.append((policy, min(self.island_of(policy))))
        return chosen

    def migrate(self, ranked: Sequence[Policy], step: int) -> list[tuple[str, int, int]]:
        """Every ``migration_interval`` steps, each island's best joins the next island (a ring).
        Returns (script id, from island, to island) of each move."""
        if self.n_islands < 2 or step % self.migration_interval:
            return []
        moves = []
        # the bests before any move, or a migrant would migrate on around the ring at once
        bests = [next((p for p in ranked if island in self.island_of(p)), None) for island in range(self.n_islands)]
        for island, best in enumerate(bests):
            target = (island + 1) % self.n_islands
            if best is not None and target not in self.island_of(best):
                self.islands.setdefault(best.id, {island}).add(target)
                moves.append((best.id, island, target))
        return moves

    def _niche(self, policy: Policy) -> str:
        behaviour = self.behaviours.get(policy.id)
        return behaviour.niche if behaviour is not None else f"?{policy.id}"

    # -- reporting

    def occupancy(self, population: Sequence[Policy]) -> dict[str, Any]:
        """What the population holds: distinct behaviours, scripts per niche and per island, each script's
        descriptor (for metrics.jsonl and summaries)."""
        measured = [p for p in population if p.id in self.behaviours]
        niches: dict[str, int] = {}
        for policy in measured:
            label = self.behaviours[policy.id].niche
            niches[label] = niches.get(label, 0) + 1
        islands = {str(i): sum(i in self.island_of(p) for p in population) for i in range(self.n_islands)}
        return {"distinct": len({self.behaviours[p.id].signature for p in measured}),
                "niches": dict(sorted(niches.items())), "n_niches": len(niches), "islands": islands,
                "descriptors": {p.id: self.behaviours[p.id].descriptor for p in measured}}
