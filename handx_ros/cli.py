"""The ``handx`` command-line tool.

Each domain contributes its subcommands through a ``register(subparsers)`` function in its
own ``cli`` module; this file only assembles them and turns :class:`HandxError` into one
clear line on stderr (exit code 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from handx_gen.errors import HandxError

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
        The process exit code: 0 on success, 2 on a usage or HandX error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HandxError as error:
        print(f'handx {args.command}: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('handx: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
