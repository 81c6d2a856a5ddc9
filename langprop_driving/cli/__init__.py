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
        argv = [*_protected_args(ctx), *ctx.args]  # what follows the group's options: to say how to resume
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except click.ClickException as exc:  # a command's own error: one line too (a tool's output may be many)
            exc.message = "; ".join(line.strip() for line in exc.message.splitlines() if line.strip())
            raise
        except (click.Abort, KeyboardInterrupt):
            _interrupted(ctx, argv)
            raise  # pragma: no cover - _interrupted exits
        except click.exceptions.Exit:
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


#: commands that pick up where an interrupted run stopped when run again
_RESUMABLE = frozenset({"demo", "collect", "train", "dagger", "evaluate", "relabel", "import-rollout", "example"})
#: options that would start over instead of resuming
_START_OVER = frozenset({"--no-resume", "--fresh"})
#: exit code of an interrupted command (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130


def _protected_args(ctx: click.Context) -> list[str]:
    # click >= 8.2 keeps them in _protected_args (its protected_args property warns: deprecated for 9.0,
    # where ctx.args holds every token)
    if "_protected_args" in vars(ctx):
        return list(vars(ctx)["_protected_args"])
    return list(getattr(ctx, "protected_args", []))


def _interrupted(ctx: click.Context, argv: list[str]) -> None:
    """Ctrl-C: say how to go on, exit 130."""
    import shlex

    if argv and argv[0] in _RESUMABLE:
        again = " ".join(shlex.quote(a) for a in ["langprop", *argv] if a not in _START_OVER)
        click.echo(f"\ninterrupted; what is done is kept, resume with: {again}", err=True)
    else:
        click.echo("\ninterrupted", err=True)
    ctx.exit(EXIT_INTERRUPTED)


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
