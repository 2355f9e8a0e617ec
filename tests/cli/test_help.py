"""Every option of every `lingvis` subcommand has a help line, and the help shows its default."""
from __future__ import annotations

import argparse

import pytest

from lingvis.cli import build_parser, main
from lingvis.cli.common import HelpFormatter, shows_default


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("lingvis",)):
    """(command path, parser) for the root parser and every subcommand parser below it (aliases once)."""
    yield path, parser
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from walk(sub, (*path, name))


def options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction))]


PARSERS = list(walk(build_parser()))


def test_the_walk_reaches_nested_subcommands():
    paths = {" ".join(p) for p, _ in PARSERS}
    assert {"lingvis pretrain gpt", "lingvis finetune classify", "lingvis predict qa", "lingvis generate"} <= paths
    assert len(paths) > 30


def test_every_option_has_help():
    missing = [f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}"
               for path, p in PARSERS for a in options(p) if not a.help or a.help is argparse.SUPPRESS]
    assert not missing, f"{len(missing)} option(s) without help=: {missing}"


def test_every_parser_uses_the_default_showing_formatter():
    wrong = [" ".join(path) for path, p in PARSERS if p.formatter_class is not HelpFormatter]
    assert not wrong, f"parsers without lingvis.cli.common.HelpFormatter: {wrong}"


def test_every_default_is_shown_and_every_help_renders():
    hidden = []
    for path, p in PARSERS:
        text = p.format_help()  # raises on a stray '%' in a help string
        assert text.startswith("usage: lingvis")
        formatter = p._get_formatter()
        for a in options(p):
            if shows_default(a) and "default" not in formatter._expand_help(a):
                hidden.append(f"{' '.join(path)} {'/'.join(a.option_strings)}")
    assert not hidden, f"defaults not shown: {hidden}"


def test_training_help_teaches_the_numbers(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "gpt", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo line wrapping
    assert "--lr LR peak learning rate (AdamW), reached after the warmup (default: 0.001)" in text
    assert "--batch-size BATCH_SIZE global batch" in text and "(default: 16)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_options_without_a_default_say_nothing_about_one():
    store_true = argparse.Action(["--x"], "x", nargs=0, default=False, help="flag")
    unset = argparse.Action(["--y"], "y", default=None, help="value")
    zero = argparse.Action(["--z"], "z", default=0, help="count")
    assert not shows_default(store_true) and not shows_default(unset)
    assert shows_default(zero)  # 0 is a real default, unlike False
