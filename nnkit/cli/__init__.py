"""The nnkit command line: one module per command group under ``nnkit/cli/``.

Each module in COMMANDS has ``add_parser(subparsers)`` which registers its sub-command(s) and sets
``func(args) -> int`` on them. Bad input raises NnkitError: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from nnkit.errors import Cancelled, NnkitError

COMMANDS = ["train", "evaluate", "runs", "registries", "gan", "style", "explain", "discover", "attack", "report",
            "compare"]
COMMANDS.append("corrupt")  # common corruptions (issue 14)


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
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # what `train --nproc` hands to each process
    with warnings.catch_warnings():  # restores the previous showwarning afterwards (tests call main in-process)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            # nnkit's own warnings (a broken run skipped, a corrupt file ignored) are one ``warning:`` line
            if category.__module__.startswith("nnkit."):
                sys.stderr.write(f"warning: {message}\n")
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return _run(args)


def _run(args) -> int:
    drawn = _draw_seed(args)
    # A run stopped by Ctrl-C or Cancel still says which random seed it drew, so it can be repeated.
    stopped = f" (seed {drawn}: add --seed {drawn} to repeat it)" if drawn is not None else ""
    try:
        return int(args.func(args) or 0)
    except NnkitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Cancelled:
        sys.stderr.write(f"cancelled{stopped}\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted{stopped}\n")
        return 130


def _draw_seed(args) -> int | None:
    """Draw the random seed of a command given no ``--seed`` here, before its work starts.

    Commands print the seed they used when they finish; drawing it up front (the commands then see it
    as given) lets an interrupted run print it too. Under torchrun only rank 0 draws: the commands send
    rank 0's seed to the other ranks.

    Returns:
        The drawn seed, or None when the command takes no seed, one was given, or this is not rank 0.
    """
    if getattr(args, "seed", 0) is not None or getattr(args, "nproc", 1) > 1:
        return None  # `train --nproc` hands its own argv to the processes it starts: they draw it
    from nnkit import distributed
    from nnkit.seeding import seed_everything

    if distributed.env_rank() != 0:
        return None
    args.seed = seed_everything(None)
    return args.seed
