"""Refusing to write over a command's own inputs.

Every ``handx`` command that writes files checks its output paths with
:func:`check_outputs` before it writes anything: an output that is the same file as an input
(same path once resolved, or :func:`os.path.samefile` for hard links and symlinks), or the
same file as another output, is refused with one line naming both options. Without it,
``handx retarget a.npz --out a.npz`` would replace the motion with its trajectory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from handx_gen.errors import OutputError

__all__ = ['check_outputs', 'same_file']

Named = tuple[str, str | os.PathLike | None]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file: the same resolved path, or (both existing) the
    same inode."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError, ValueError):  # unreadable, a symlink loop, a NUL byte
        return os.path.abspath(a) == os.path.abspath(b)


def check_outputs(outputs: Iterable[Named], inputs: Iterable[Named]) -> None:
    """Refuse outputs that would replace an input or another output.

    Args:
        outputs: ``(label, path)`` of each file the command will write, e.g.
            ``('--out', 'a.npz')``; ``None`` paths are skipped.
        inputs: ``(label, path)`` of each file it reads.

    Raises:
        OutputError: An output is the same file as an input or as another output (the
            message names both).
    """
    outputs = [(label, Path(path)) for label, path in outputs if path is not None]
    inputs = [(label, Path(path)) for label, path in inputs if path is not None]
    for index, (label, path) in enumerate(outputs):
        for in_label, in_path in inputs:
            if same_file(path, in_path):
                raise OutputError(f'{label} {path} is the same file as {in_label} {in_path}; '
                                  f'refusing to overwrite an input (choose another path)')
        for other_label, other in outputs[:index]:
            if same_file(path, other):
                raise OutputError(f'{label} {path} is the same file as {other_label} {other}; '
                                  f'each output needs its own path')
