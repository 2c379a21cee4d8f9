"""Reading ``.npz`` files safely: never unpickling, never sized by the file, one clear error.

Motion files, MANO model files and data sources are all ``.npz`` archives; this is the one
place that opens them. What it guarantees:

* No pickle: an entry holding Python objects could run code when loaded, so it is refused.
* Nothing is decompressed before it is checked. Each entry's ``.npy`` header (dtype, shape) is
  read from the start of its zip member, and the entry is refused when its data would exceed
  a byte limit (:data:`MAX_ENTRY_BYTES` unless the reader asks for less), when it has more
  leading "frames" than a reader allows, or when the zip member is too short to hold it. A
  27 KB file declaring a (10^9, 10^9) array is one error, not a MemoryError.
* At most :data:`MAX_TOTAL_BYTES` are read from one file, whatever its entries.
* Only the entries a reader asks for are read (:meth:`NpzArchive.read`); an entry nobody uses
  (a zip bomb among them) is never decompressed.
* Every failure, a missing file, a non-zip, a corrupt member, a truncated one, raises the
  :class:`~handx_gen.errors.HandxError` subclass the caller names, with the file in the message.
"""

from __future__ import annotations

import io
import json
import math
import os
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from handx_gen.errors import HandxError

__all__ = [
    'MAX_ENTRY_BYTES',
    'MAX_JSON_BYTES',
    'MAX_JSON_CHARS',
    'MAX_JSON_DEPTH',
    'MAX_TOTAL_BYTES',
    'NPZ_READ_ERRORS',
    'NpyHeader',
    'NpzArchive',
    'check_entries',
    'decode_json',
    'open_npz',
    'read_npz',
    'write_npz',
]

# What numpy and zipfile raise for missing, corrupt, truncated or object-holding archives.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
                   io.UnsupportedOperation, NotImplementedError)
# The largest entry read unless a reader asks for less, and the most read from one file:
# 256 MiB and 384 MiB. A 108,000-frame motion (the longest accepted) holds 142 MB of frames,
# its largest entry, hand_pose, 78 MB; an AMASS source of as many frames 138 MB.
MAX_ENTRY_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 384 * 2**20
# JSON entries (a motion's annotation, a trajectory's info): at most 16 Mi characters (64 MiB
# as an .npy string) and 64 levels of nesting. Real annotations hold a few levels and, with
# per-frame curves, a few MB; a larger or deeper one is refused before it costs memory or
# overflows the parser's recursion.
MAX_JSON_CHARS = 16 * 2**20
MAX_JSON_BYTES = 4 * MAX_JSON_CHARS  # numpy stores str as UTF-32
MAX_JSON_DEPTH = 64
_ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')  # a zip with members; an empty zip
_NPY_MAGIC = b'\x93NUMPY'
_NPY_SUFFIX = '.npy'


class NpyHeader(NamedTuple):
    """What an entry's ``.npy`` header declares, read before any of its data."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        """Bytes of data the header declares (an exact integer, never overflowing)."""
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f'dtype {self.dtype}, shape {self.shape}'


class NpzArchive:
    """An open ``.npz`` archive whose entries are checked from their headers, then read.

    A context manager: the file is closed on exit. Entry names are the archive's member names
    without the ``.npy`` suffix, as :func:`numpy.load` gives them.
    """

    def __init__(self, path: str | os.PathLike, error: type[HandxError], what: str, *,
                 max_total_bytes: int = MAX_TOTAL_BYTES) -> None:
        """Open ``path``.

        Args:
            path: The file.
            error: The :class:`HandxError` subclass to raise.
            what: What the file should be, for messages (e.g. ``'handx-motion/1'``).
            max_total_bytes: Refuse to read more than this from the file, all entries together.

        Raises:
            error: The file is missing, not a zip archive (the message says what it starts
                with), or cannot be opened.
        """
        path = Path(path)
        self.path = path
        self._error = error
        self._what = what
        self._max_total_bytes = max_total_bytes
        self._bytes_read = 0
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
            self._zip = zipfile.ZipFile(path)
        except NPZ_READ_ERRORS as exc:
            raise self._corrupt(exc) from exc
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename
            self._members[name[:-len(_NPY_SUFFIX)] if name.endswith(_NPY_SUFFIX) else name] = info
        self._headers: dict[str, NpyHeader] = {}
        self._offsets: dict[str, int] = {}

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> list[str]:
        """Every entry name, sorted (listing them reads no entry)."""
        return sorted(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def header(self, name: str) -> NpyHeader:
        """The dtype and shape entry ``name`` declares; only its header is decompressed.

        Raises:
            error: No such entry, not an ``.npy`` entry, a corrupt header, or objects.
        """
        if name in self._headers:
            return self._headers[name]
        info = self._member(name)
        try:
            with self._zip.open(info) as stream:
                header, offset = self._read_header(name, stream)
        except HandxError:
            raise
        except NPZ_READ_ERRORS as exc:
            raise self._entry_error(name, exc) from exc
        if header.dtype.hasobject:
            raise self._error(
                f'{self.path}: entry {name!r} holds objects ({header.describe()}); it cannot '
                'be read without unpickling, which is never done: store a plain numeric or '
                'string array')
        self._headers[name] = header
        self._offsets[name] = offset
        return header

    def read(self, name: str, *, max_bytes: int = MAX_ENTRY_BYTES,
             max_frames: int | None = None) -> np.ndarray:
        """Read entry ``name``, after checking its header.

        Args:
            name: The entry.
            max_bytes: Refuse an entry whose data would take more bytes than this.
            max_frames: When given, refuse an entry whose first axis is longer than this.

        Raises:
            error: No such entry, objects, too large, too many frames, corrupt or truncated.
        """
        header = self.header(name)
        if max_frames is not None and header.shape and header.shape[0] > max_frames:
            raise self._error(
                f'{self.path}: entry {name!r} has {header.shape[0]} frames ({header.describe()});'
                f' at most {max_frames} are accepted')
        if header.nbytes > max_bytes:
            raise self._error(
                f'{self.path}: entry {name!r} would take {header.nbytes} bytes '
                f'({header.describe()}); at most {max_bytes} are accepted for it')
        if self._bytes_read + header.nbytes > self._max_total_bytes:
            raise self._error(
                f'{self.path}: entry {name!r} would take {header.nbytes} bytes '
                f'({header.describe()}) after {self._bytes_read} read from the file; at most '
                f'{self._max_total_bytes} are read from one file')
        held = self._members[name].file_size - self._offsets[name]
        if held < header.nbytes:
            raise self._error(
                f'{self.path}: entry {name!r} is truncated: its header declares '
                f'{header.nbytes} bytes ({header.describe()}), the zip member holds {held}')
        self._bytes_read += header.nbytes
        try:
            with self._zip.open(self._members[name]) as stream:
                return npy_format.read_array(stream, allow_pickle=False)
        except NPZ_READ_ERRORS as exc:
            raise self._entry_error(name, exc) from exc

    def read_all(self, names: Iterable[str], *, max_bytes: int = MAX_ENTRY_BYTES,
                 max_frames: int | None = None) -> dict[str, np.ndarray]:
        """Read those of ``names`` the archive holds (see :meth:`read`); others are skipped."""
        return {name: self.read(name, max_bytes=max_bytes, max_frames=max_frames)
                for name in names if name in self}

    # ------------------------------------------------------------------ internals

    def _member(self, name: str) -> zipfile.ZipInfo:
        info = self._members.get(name)
        if info is None:
            raise self._error(f'{self.path}: no entry {name!r}; entries present: {self.names}')
        return info

    def _read_header(self, name: str, stream: IO[bytes]) -> tuple[NpyHeader, int]:
        magic = stream.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            raise self._error(f'{self.path}: entry {name!r} is not an .npy array (it starts '
                              f'with {magic!r})')
        major = stream.read(2)
        version = tuple(major)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise self._error(f'{self.path}: entry {name!r} has .npy format version '
                              f'{version}; versions (1, 0) and (2, 0) are read')
        return NpyHeader(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran_order)), \
            stream.tell()

    def _corrupt(self, exc: BaseException) -> HandxError:
        return self._error(
            f'{self.path}: cannot read it as a {self._what} .npz archive, it is corrupt or '
            f'truncated ({type(exc).__name__}: {exc})')

    def _entry_error(self, name: str, exc: BaseException) -> HandxError:
        return self._error(
            f'{self.path}: entry {name!r} of the {self._what} .npz archive is corrupt or '
            f'truncated ({type(exc).__name__}: {exc})')


def open_npz(path: str | os.PathLike, error: type[HandxError], what: str) -> NpzArchive:
    """Open an ``.npz`` archive (see :class:`NpzArchive`)."""
    return NpzArchive(path, error, what)


def read_npz(path: str | os.PathLike, error: type[HandxError], what: str,
             names: Iterable[str], *, max_bytes: int = MAX_ENTRY_BYTES,
             max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Read the entries ``names`` of an ``.npz`` archive that it holds, each checked first.

    Entries not named are never decompressed.

    Raises:
        error: As :class:`NpzArchive` and :meth:`NpzArchive.read`.
    """
    with NpzArchive(path, error, what) as archive:
        return archive.read_all(names, max_bytes=max_bytes, max_frames=max_frames)


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
                  source: str, what: str, error: type[HandxError], *,
                  present: Iterable[str] | None = None) -> None:
    """Check that ``entries`` hold ``format = expected_format`` and every ``required`` entry.

    Args:
        entries: What :func:`read_npz` returned.
        expected_format: The one supported ``format`` string.
        required: Entry names the format needs.
        source: The file, for messages.
        what: The kind of file, for messages (e.g. ``'motion'``).
        error: The error class to raise.
        present: The names of every entry in the file, when ``entries`` holds only some of
            them (as read so far); default: the keys of ``entries``.

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
    names = set(entries if present is None else present)
    missing = [name for name in required if name not in names]
    if missing:
        raise error(f'{source}: missing entries {missing}; a {expected_format} file needs '
                    f'{list(required)}')



def decode_json(raw: np.ndarray, name: str, source: str, error: type[HandxError], *,
                max_chars: int = MAX_JSON_CHARS, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON string entry, bounded in size and nesting.

    Args:
        raw: The entry, a 0-d str array.
        name: Its name, for messages.
        source: The file, for messages.
        error: The error class to raise.
        max_chars: Refuse a longer string.
        max_depth: Refuse deeper nesting of lists and objects.

    Raises:
        error: Not a 0-d str array, too long, not JSON, nested too deep, or holding a number
            Python will not convert (an integer of more than 4300 digits).
    """
    if raw.ndim != 0 or raw.dtype.kind != 'U':
        raise error(f'{source}: "{name}" must be a JSON string, got dtype {raw.dtype} shape '
                    f'{raw.shape}')
    text = str(raw)
    if len(text) > max_chars:
        raise error(f'{source}: "{name}" holds {len(text)} characters of JSON; at most '
                    f'{max_chars} are accepted')
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise error(f'{source}: "{name}" nests JSON deeper than {max_depth} levels') from exc
    except ValueError as exc:  # JSONDecodeError, and int() of too many digits
        raise error(f'{source}: "{name}" is not valid JSON: {exc}') from exc
    if _json_depth(value, max_depth) > max_depth:
        raise error(f'{source}: "{name}" nests JSON deeper than {max_depth} levels')
    return value


def _json_depth(value: Any, limit: int) -> int:
    """Nesting depth of lists and dicts in ``value`` (iterative; stops past ``limit``)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in item)
    return deepest
