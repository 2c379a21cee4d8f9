"""The ``handx`` command-line tool.

Each domain contributes its subcommands through a ``register(subparsers)`` function in its
own ``cli`` module; this file only assembles them and turns :class:`HandxError` into one
clear line on stderr (exit code 2) instead of a traceback, and a closed output pipe
(``handx robots | head -1``) into a quiet exit.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

from handx_gen.errors import HandxError

# Exit code of a command whose output pipe was closed: 128 + SIGPIPE (13), as a shell reports
# a command the signal ended.
BROKEN_PIPE_EXIT = 141

# Modules that define ``register(subparsers)``. Imported lazily so ``handx --help`` stays fast
# and a missing optional dependency only affects its own subcommands.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    'handx_gen.hand.cli',
    'handx_gen.data.cli',
    'handx_gen.annotate.cli',
    'handx_gen.generate_cli',
    'handx_gen.eval.cli',
    'handx_ros.retarget.cli',
    'handx_ros.sim.cli',
)


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``handx`` argument parser."""
    parser = argparse.ArgumentParser(
        prog='handx',
        description='HandX: bimanual hand motion generation, retargeting and streaming.',
    )
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handx`` console script.

    Returns:
        The process exit code: 0 on success, 2 on a usage or HandX error, 130 on Ctrl-C, and
        141 (as a command ended by SIGPIPE) when the reader of its output went away early
        (``handx data filter clip.npz | head``), without a traceback.
    """
    try:
        return _run(argv)
    except BrokenPipeError:
        # What is still buffered for stdout goes nowhere, so the flush at exit cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a file (tests)
            pass
        return BROKEN_PIPE_EXIT


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except HandxError as error:
        code = 2
        print(f'handx {args.command}: error: {error}', file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
        print('handx: interrupted', file=sys.stderr)
    sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
    if argv is None:
        # The process ends with this command: spare the interpreter's last garbage collection
        # a walk over every object torch and the models made (0.3-1 s at exit). Called with
        # arguments (tests, scripts), the caller's process goes on and keeps collecting.
        gc.freeze()
    return code


if __name__ == '__main__':
    sys.exit(main())
