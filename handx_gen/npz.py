"""Reading ``.npz`` files safely: never unpickling, every failure one clear error.

Motion files, MANO model files and data sources are all ``.npz`` archives; this is the one
place that opens them. ``allow_pickle=False`` throughout: an ``.npz`` entry holding Python
objects could run code when loaded, so such files are refused.
"""

from __future__ import annotations

import io
import os
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np

from handx_gen.errors import HandxError

__all__ = ['NPZ_READ_ERRORS', 'check_entries', 'open_npz', 'read_npz', 'write_npz']

# What numpy and zipfile raise for missing, corrupt, truncated or object-holding archives.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
                   io.UnsupportedOperation)
_ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')  # a zip with members; an empty zip
_NPY_MAGIC = b'\x93NUMPY'


def open_npz(path: str | Path, error: type[HandxError], what: str) -> np.lib.npyio.NpzFile:
    """Open an ``.npz`` archive without pickle.

    Args:
        path: The file.
        error: The :class:`HandxError` subclass to raise.
        what: What the file should be, for messages (e.g. ``'handx-motion/1'``).

    Returns:
        The open archive (a context manager; entries are read on access).

    Raises:
        error: The file is missing, not a zip archive (the message says what it starts with),
            or cannot be opened.
    """
    path = Path(path)
    if not path.exists():
        raise error(f'{what} file not found: {path}')
    if not path.is_file():
        raise error(f'{what} path is not a file: {path}')
    try:
        with open(path, 'rb') as handle:
            head = handle.read(8)
    except OSError as exc:
        raise error(f'{path}: cannot read it ({exc})') from exc
    if not head.startswith(_ZIP_MAGIC):
        found = 'a single .npy array' if head.startswith(_NPY_MAGIC) else f'{head!r}...'
        raise error(f'{path}: not a {what} .npz (zip) archive; it starts with {found}')
    try:
        return np.load(path, allow_pickle=False)
    except NPZ_READ_ERRORS as exc:
        raise error(f'{path}: cannot read it as a {what} .npz archive, it is corrupt or '
                    f'truncated ({type(exc).__name__}: {exc})') from exc


def read_npz(path: str | Path, error: type[HandxError], what: str) -> dict[str, np.ndarray]:
    """Read every entry of an ``.npz`` archive without pickle (see :func:`open_npz`).

    Raises:
        error: As :func:`open_npz`, or an entry is corrupt, truncated or holds objects.
    """
    with open_npz(path, error, what) as archive:
        try:
            return {name: archive[name] for name in archive.files}
        except NPZ_READ_ERRORS as exc:
            raise error(f'{path}: cannot read it as a {what} .npz archive, it is corrupt or '
                        f'truncated, or holds objects ({type(exc).__name__}: {exc})') from exc


def write_npz(path: Path, entries: dict[str, np.ndarray]) -> Path:
    """Write ``entries`` as a compressed ``.npz`` at ``path`` atomically: into a temporary file
    beside it, then renamed, so that readers never see half a file. Missing parent folders are
    created. Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600); this one follows the umask.
    tmp_path = path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        with open(tmp_path, 'xb') as handle:
            np.savez_compressed(handle, **entries)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def check_entries(entries: dict[str, np.ndarray], expected_format: str, required: tuple[str, ...],
                  source: str, what: str, error: type[HandxError]) -> None:
    """Check that ``entries`` hold ``format = expected_format`` and every ``required`` entry.

    Args:
        entries: What :func:`read_npz` returned.
        expected_format: The one supported ``format`` string.
        required: Entry names the format needs.
        source: The file, for messages.
        what: The kind of file, for messages (e.g. ``'motion'``).
        error: The error class to raise.

    Raises:
        error: No ``format`` entry, one that is not a string, another format, or missing
            entries (all listed).
    """
    if 'format' not in entries:
        raise error(f'{source}: no "format" entry; expected format {expected_format!r}')
    found = entries['format']
    if found.dtype.kind != 'U' or found.ndim != 0:
        raise error(f'{source}: "format" entry is not a string (dtype {found.dtype}, shape '
                    f'{found.shape}); expected {expected_format!r}')
    if str(found) != expected_format:
        raise error(f'{source}: unsupported {what} format {str(found)!r}; supported: '
                    f'{expected_format!r}')
    missing = [name for name in required if name not in entries]
    if missing:
        raise error(f'{source}: missing entries {missing}; a {expected_format} file needs '
                    f'{list(required)}')

