"""The `lingvis` command. Every module of this package that defines `register(subparsers, groups)` adds its
subcommands: a new family's CLI is a new file here, with no list to edit."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .._optional import MissingDependency
from .._version import __version__
from .common import Parser, apply_config

# subcommand groups that several families extend: `lingvis pretrain gpt`, `lingvis finetune classify`, ...
GROUPS = {"pretrain": "pretrain a model from scratch", "finetune": "fine-tune a model on a task",
          "data": "generate or inspect built-in datasets", "evaluate": "evaluate a trained model on a dataset"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lingvis", description="Transformer language and vision-language "
                                     "models: pretrain, fine-tune, generate, chat, convert, serve.")
    parser.add_argument("--version", action="version", version=f"lingvis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for name, help_ in GROUPS.items():
        gp = sub.add_parser(name, help=help_, description=help_, aliases=["eval"] if name == "evaluate" else [])
        groups[name] = gp.add_subparsers(dest="target", metavar="TARGET")
    for mod in command_modules():
        mod.register(sub, groups)
    return parser


def command_modules() -> list:
    """The modules of this package that register subcommands (those with a `register` function)."""
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    return [m for m in mods if callable(getattr(m, "register", None))]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.parse_args([*argv, "--help"])
        return 2
    if getattr(args, "config", None):
        apply_config(args, argv)
    if getattr(args, "needs_out", False) and not args.out:
        parser.error("--out is required (on the command line or as `out` in the --config file)")
    from ..train.distributed import quiet_other_ranks, teardown
    from ..train.run_info import record_invocation

    record_invocation(argv, vars(args))  # saved in each run folder's run_info.json

    quiet_other_ranks()
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError, MissingDependency) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        teardown()  # leave a torchrun process group cleanly
