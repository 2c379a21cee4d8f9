"""``handx mano``: convert and inspect MANO model files.

::

    handx mano convert MANO_RIGHT.pkl [--out mano_right.npz] [--side left|right]
    handx mano info MANO_RIGHT.pkl [--side left|right]

Errors are :class:`~handx_gen.errors.HandxError` subclasses; ``handx_ros.cli.main`` prints them
as one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ['register']

_SIDES = ('left', 'right')


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mano`` command and its actions to the ``handx`` parser."""
    mano = subparsers.add_parser(
        'mano', help='convert and inspect MANO model files',
        description='Convert official MANO pickles to .npz and inspect model files. Pickles '
                    'are read with a restricted unpickler; chumpy is not needed.')
    actions = mano.add_subparsers(dest='mano_action', metavar='ACTION')
    actions.required = True

    convert = actions.add_parser(
        'convert', help='convert MANO_{LEFT,RIGHT}.pkl to a plain .npz',
        description="Write a 'handx-mano/1' .npz holding the model arrays, readable without "
                    'pickle.')
    convert.add_argument('src', type=Path, metavar='SRC', help='MANO .pkl (or converted .npz)')
    convert.add_argument('--out', type=Path, default=None, metavar='DST',
                         help='output .npz (default: SRC with the suffix .npz)')
    convert.add_argument('--side', choices=_SIDES, default=None,
                         help='hand side, when the file name does not say it')
    convert.set_defaults(func=_run_convert)

    info = actions.add_parser(
        'info', help='validate a MANO file and print its side, size and keys',
        description='Validate a MANO .pkl or .npz and print its side, vertex count and keys.')
    info.add_argument('file', type=Path, metavar='FILE', help='MANO .pkl or converted .npz')
    info.add_argument('--side', choices=_SIDES, default=None,
                      help='hand side, when the file name does not say it')
    info.set_defaults(func=_run_info)


def _run_convert(args: argparse.Namespace) -> int:
    from handx_gen.hand.mano import convert_mano_pickle, inspect_mano_file
    from handx_gen.outputs import check_outputs

    check_outputs([('--out', args.out)], [('SRC', args.src)])
    written = convert_mano_pickle(args.src, args.out, side=args.side)
    info = inspect_mano_file(written)
    print(f'wrote {written} ({info.side.name.lower()} hand, {info.num_vertices} vertices)')
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from handx_gen.hand.mano import inspect_mano_file

    info = inspect_mano_file(args.file, side=args.side)
    side = info.side.name.lower() if info.side is not None else 'unknown'
    print(f'file: {info.path}')
    print(f'kind: {info.kind}')
    print(f'side: {side}')
    print(f'vertices: {info.num_vertices}')
    print(f'faces: {info.num_faces}')
    print(f'keys: {", ".join(info.keys)}')
    return 0
