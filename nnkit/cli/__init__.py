"""The nnkit command line: one module per command group under ``nnkit/cli/``.

Each module in COMMANDS has ``add_parser(subparsers)`` which registers its sub-command(s) and sets
``func(args) -> int`` on them. Bad input raises NnkitError: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nnkit.errors import Cancelled, NnkitError

COMMANDS = ["train", "evaluate", "runs", "registries", "gan", "style", "explain", "attack", "report"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage dumps."""

    def error(self, message):
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m nnkit", description="nnkit: a robustness lab for image classifiers")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nnkit.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NnkitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Cancelled:
        sys.stderr.write("cancelled\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
