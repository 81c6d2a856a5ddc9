"""Recorded LLM runs: an exchange folder shipped with its metadata, replayed offline.

A run of ``langprop demo --optimizer files --llm-exchange DIR`` leaves every
request and reply in ``DIR``; :func:`save_recording` keeps the answered ones
(``NNNN.request.json`` and ``NNNN.reply.md``) beside a ``recording.json`` that
says who answered, when, at which commit and what the run spent. The package
ships one for the demo (:func:`shipped_demo_recording`), so that a machine with
no LLM shows what the LLM path does: :func:`replay_config` replays it, and
where the prompts no longer match (the code changed after the recording) the
demo says so and goes on with the mutation baseline.

``python -m langprop_driving.pipeline.recorded_run DIR --model "..."`` saves a
recording of the exchange folder ``DIR`` into the package.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from langprop_common.files import atomic_write_text

__all__ = ["Recording", "DEMO_RECORDING_DIR", "shipped_demo_recording", "load_recording", "save_recording",
           "replay_config"]

#: where the package keeps the demo's recorded LLM run
DEMO_RECORDING_DIR = Path(__file__).resolve().parents[1] / "recordings" / "demo"
METADATA = "recording.json"


@dataclass(frozen=True)
class Recording:
    """A recorded exchange folder and what is known about it."""

    directory: Path
    model: str  # who answered, in words
    recorded: str  # date
    commit: str | None
    replies: int
    prompt_tokens: int
    completion_tokens: int
    command: str | None = None
    # what the recorded run's demo printed: DS per agent on the training and the held-out routes
    results: dict[str, dict[str, float]] | None = None

    def describe(self) -> str:
        return (f"a recorded LLM run: {self.model}, recorded {self.recorded}"
                + (f" at commit {self.commit[:7]}" if self.commit else "")
                + f", {self.replies} replies ({self.prompt_tokens} tokens in, {self.completion_tokens} out, "
                  "estimated)")


def load_recording(directory: Path | str) -> Recording:
    """The recording in ``directory``; ValueError naming the file when its metadata is missing or broken."""
    directory = Path(directory)
    path = directory / METADATA
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Recording(directory=directory, **{k: data[k] for k in data if k != "directory"})
    except OSError as exc:
        raise ValueError(f"{path}: no recording here ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a recording's metadata ({exc})") from None


def shipped_demo_recording() -> Recording | None:
    """The demo's recorded LLM run shipped in the package, or None when the package has none."""
    if not (DEMO_RECORDING_DIR / METADATA).is_file():
        return None
    return load_recording(DEMO_RECORDING_DIR)


def replay_config(recording: Recording, base: Any) -> Any:
    """``base`` (an OptimizerConfig) turned into the offline replay of ``recording``, the mutation baseline
    where it misses."""
    import dataclasses

    return dataclasses.replace(base, kind="files", exchange_dir=recording.directory, cache_mode="replay",
                               on_miss="mutation", base_url=None, api_key=None)


def _commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_recording(exchange_dir: Path | str, target: Path | str, model: str, command: str | None = None,
                   recorded: str | None = None, results: dict[str, dict[str, float]] | None = None) -> Recording:
    """Copy the answered requests of ``exchange_dir`` into ``target`` (emptied first) with their metadata."""
    from langprop_core.llm.exchange import ExchangeFolder, estimate_tokens

    folder = ExchangeFolder(exchange_dir)
    answered = [r for r in folder.requests() if r.reply.is_file()]
    if not answered:
        raise ValueError(f"{exchange_dir}: no answered request to record")
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    prompt_tokens = completion_tokens = 0
    for request in answered:
        shutil.copyfile(request.request_json, target / request.request_json.name)
        shutil.copyfile(request.reply, target / request.reply.name)
        entry = json.loads(request.request_json.read_text(encoding="utf-8"))
        prompt_tokens += sum(estimate_tokens(m["content"]) for m in entry["messages"])
        completion_tokens += estimate_tokens(request.reply.read_text(encoding="utf-8"))
    recording = Recording(directory=target, model=model, recorded=recorded or time.strftime("%Y-%m-%d"),
                          commit=_commit(Path(__file__).resolve().parent), replies=len(answered),
                          prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, command=command,
                          results=results)
    data = {k: v for k, v in asdict(recording).items() if k != "directory"}
    atomic_write_text(target / METADATA, json.dumps(data, indent=1) + "\n")
    return recording


def main(argv: Sequence[str] | None = None) -> None:
    """Save the exchange folder DIR as the package's demo recording."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("exchange_dir", type=Path)
    parser.add_argument("--model", required=True, help="who answered, in words")
    parser.add_argument("--command", default=None, help="the command that made the run")
    parser.add_argument("--to", type=Path, default=DEMO_RECORDING_DIR, help="target folder (default: the demo's)")
    args = parser.parse_args(argv)
    print(save_recording(args.exchange_dir, args.to, args.model, args.command).describe())


if __name__ == "__main__":
    main()
