"""The ``memformer`` command: one sub-command per module in ``torch_memformer/commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
User mistakes (``UserError``, ``ValueError`` from config validation, argparse errors) end as one
line on stderr and exit code 2; Ctrl-C ends with 130; a failure of the machine (``OSError``: disk
full, ...) is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import pkgutil
import sys

from . import commands
from .commands._terminal import escape_controls
from .errors import UserError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes (unknown flag, bad value) are one line and exit code 2, like
    every other user error, instead of the usage block followed by the message."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def one_line(message: str) -> str:
    """``message`` with what would break it over lines or act on the terminal escaped: values the
    user typed (a flag holding a newline, ESC or CR) are echoed in messages (found by fuzzing)."""
    return escape_controls(message).translate(_LINE_BREAKS)


# escape_controls keeps newlines and tabs (model text needs them); an error line must not.
_LINE_BREAKS = {ord("\n"): "\\n", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memformer",
        description="Memformer: a memory-augmented transformer for long streams (arXiv 2010.06891).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)parser of the command ``args`` chose: ``memformer train``, ``memformer cache list``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _chosen_parser(action.choices[chosen], args)
    return parser


def _unknown_flags(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'unrecognized arguments: --stps 5 (did you mean --steps?)'."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    known = {flag[2:]: flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    for extra in extras:
        if extra.startswith("--"):
            close = difflib.get_close_matches(extra.split("=", 1)[0][2:], list(known), n=1, cutoff=0.75)
            if close:
                return f"{message} (did you mean {known[close[0]]}?)"
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        # Known args first, so that a misspelled flag is reported by its command's parser, which
        # points to 'memformer train --help' rather than the top-level help.
        args, extras = parser.parse_known_args(argv)
        if extras:
            command = _chosen_parser(parser, args)
            command.error(_unknown_flags(command, extras))
    except SystemExit as exit:  # --help (0) or a usage mistake (2, already printed)
        return int(exit.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args._run(args) or 0)
    except (UserError, ValueError) as error:
        # ValueError here is a validated config or argument (the library raises it for bad input).
        print(f"memformer: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("memformer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        # The machine, not the input: a full disk, a vanished mount, a permission. One line (the
        # traceback with --verbose); the run directory stays valid (docs/cli.md, interruptions).
        logging.getLogger(__name__).debug("", exc_info=True)
        where = f": {error.filename}" if error.filename else ""
        print(one_line(f"memformer: error: {error.strerror or error}{where}"), file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
