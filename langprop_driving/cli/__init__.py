"""The ``langprop`` command: a thin layer over the pipeline modules.

Subcommands live in their own modules and are imported only when invoked, so
``langprop --help`` stays fast.
"""
from __future__ import annotations

import importlib
import logging

import click

__all__ = ["main"]

# name -> "module:attribute" of a click command or group.
_COMMANDS: dict[str, str] = {
    "demo": "langprop_driving.cli.pipeline_cmd:demo_cmd",
    "collect": "langprop_driving.cli.pipeline_cmd:collect_cmd",
    "train": "langprop_driving.cli.pipeline_cmd:train_cmd",
    "dagger": "langprop_driving.cli.pipeline_cmd:dagger_cmd",
    "import-rollout": "langprop_driving.cli.pipeline_cmd:import_rollout_cmd",
    "evaluate": "langprop_driving.cli.evaluate_cmd:evaluate",
    "relabel": "langprop_driving.cli.relabel_cmd:relabel",
    "results": "langprop_driving.cli.results_cmd:results",
    "town": "langprop_driving.cli.world_cmd:town",
    "routes": "langprop_driving.cli.world_cmd:routes",
    "example": "langprop_driving.cli.example_cmd:example",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def invoke(self, ctx: click.Context) -> object:
        # One place for every command's errors (see errors.py); click's own pass through.
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except click.ClickException as exc:  # a command's own error: one line too (a tool's output may be many)
            exc.message = "; ".join(line.strip() for line in exc.message.splitlines() if line.strip())
            raise
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - reported as one line, re-raised with --debug
            from langprop_driving.cli.errors import report

            report(ctx, exc)
            raise  # pragma: no cover - report always raises or exits

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="langprop-driver", prog_name="langprop", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one line.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Train driving code with an LLM as the optimizer (LangProp), and run it
    on CARLA leaderboard routes, in CARLA or in the embedded SUMO world."""
    from langprop_driving.cli.errors import DEBUG_KEY

    ctx.meta[DEBUG_KEY] = debug
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
