"""Safe .npz reading: one clear error for every way a file can be wrong, never unpickling,
never sized by what a file declares, never decompressing what is not asked for."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handx_gen.errors import MotionFormatError
from handx_gen.npz import MAX_ENTRY_BYTES, decode_json, open_npz, read_npz


def test_reads_the_entries_asked_for(tmp_path: Path) -> None:
    np.savez(tmp_path / 'ok.npz', a=np.arange(3), b=np.array('text'), c=np.zeros(2))
    entries = read_npz(tmp_path / 'ok.npz', MotionFormatError, 'test', ('a', 'b', 'missing'))
    assert sorted(entries) == ['a', 'b']
    np.testing.assert_array_equal(entries['a'], [0, 1, 2])


@pytest.mark.parametrize('content, message', [
    (None, 'test file not found'),
    (b'hello world', r"not a test \.npz \(zip\) archive; it starts with b'hello wo'"),
    (b'\x93NUMPY\x01\x00', r'starts with a single \.npy array'),
    (b'PK\x03\x04garbage', 'corrupt or truncated'),
])
def test_bad_files_raise_the_given_error(tmp_path: Path, content, message) -> None:
    path = tmp_path / 'bad.npz'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MotionFormatError, match=message):
        read_npz(path, MotionFormatError, 'test', ('a',))


def test_object_entries_are_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / 'objects.npz'
    np.savez(path, payload=np.array([{'a': 1}], dtype=object))
    with pytest.raises(MotionFormatError, match='holds objects'):
        read_npz(path, MotionFormatError, 'test', ('payload',))


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(MotionFormatError, match='not a file'):
        open_npz(tmp_path, MotionFormatError, 'test')


def huge_shape_npz(path: Path, name: str, shape: tuple[int, ...], dtype: str = '<f8',
                   others: dict[str, np.ndarray] | None = None) -> Path:
    """An .npz whose entry ``name`` declares ``shape`` in its header but holds 16 bytes."""
    header = repr({'descr': dtype, 'fortran_order': False, 'shape': shape}).encode('latin1')
    header += b' ' * (63 - (len(header) + 10) % 64) + b'\n'
    npy = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header + bytes(16)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for other, value in (others or {}).items():
            with archive.open(other + '.npy', 'w') as stream:
                np.lib.format.write_array(stream, np.asarray(value))
        archive.writestr(name + '.npy', npy)
    return path


def test_a_huge_declared_shape_is_refused_from_its_header(tmp_path: Path) -> None:
    path = huge_shape_npz(tmp_path / 'huge.npz', 'a', (10**9, 10**9))
    with pytest.raises(MotionFormatError, match=r"entry 'a' would take 8000000000000000000 "
                                                r'bytes \(dtype float64, shape'):
        read_npz(path, MotionFormatError, 'test', ('a',))


def test_an_entry_larger_than_its_member_is_truncated(tmp_path: Path) -> None:
    path = huge_shape_npz(tmp_path / 'short.npz', 'a', (1000,))
    with pytest.raises(MotionFormatError, match=r"entry 'a' is truncated: its header declares "
                                                r'8000 bytes'):
        read_npz(path, MotionFormatError, 'test', ('a',))


def test_frames_are_counted_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / 'frames.npz'
    np.savez_compressed(path, a=np.zeros((50, 3)))
    with pytest.raises(MotionFormatError, match=r"entry 'a' has 50 frames .*at most 10 are"):
        read_npz(path, MotionFormatError, 'test', ('a',), max_frames=10)


def zip_bomb_npz(path: Path, megabytes: int = 200, **entries: np.ndarray) -> Path:
    """An .npz with ``entries`` plus 'bomb', ``megabytes`` MB of zeros compressed to ~1/1000,
    written in chunks so that making it stays light."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, value in entries.items():
            with archive.open(name + '.npy', 'w') as stream:
                np.lib.format.write_array(stream, np.asarray(value))
        count = megabytes * 2**20
        with archive.open('bomb.npy', 'w', force_zip64=True) as stream:
            header = {'descr': '|u1', 'fortran_order': False, 'shape': (count,)}
            np.lib.format.write_array_header_1_0(stream, header)
            chunk = bytes(2**20)
            for _ in range(megabytes):
                stream.write(chunk)
    return path


def test_an_entry_not_asked_for_is_never_decompressed(tmp_path: Path) -> None:
    path = zip_bomb_npz(tmp_path / 'bomb.npz', megabytes=200, a=np.arange(3))
    assert path.stat().st_size < 1_000_000
    with open_npz(path, MotionFormatError, 'test') as archive:
        assert archive.names == ['a', 'bomb']
        np.testing.assert_array_equal(archive.read('a'), [0, 1, 2])
        assert archive.header('bomb').shape == (200 * 2**20,)
        with pytest.raises(MotionFormatError, match="entry 'bomb' would take"):
            archive.read('bomb', max_bytes=2**20)


def test_the_default_entry_limit_holds(tmp_path: Path) -> None:
    path = huge_shape_npz(tmp_path / 'big.npz', 'a', (MAX_ENTRY_BYTES // 8 + 1,))
    with pytest.raises(MotionFormatError, match="entry 'a' would take"):
        read_npz(path, MotionFormatError, 'test', ('a',))


def test_a_member_that_is_not_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'raw.npz'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('a', b'plain bytes')
    with pytest.raises(MotionFormatError, match=r"entry 'a' is not an \.npy array"):
        read_npz(path, MotionFormatError, 'test', ('a',))


@pytest.mark.parametrize('text, message', [
    ('[' * 100_000 + ']' * 100_000, 'nests JSON deeper than 64 levels'),
    ('[' * 65 + ']' * 65, 'nests JSON deeper than 64 levels'),
    ('{"n": ' + '9' * 5000 + '}', 'is not valid JSON: .*digits'),
    ('{"n": ', 'is not valid JSON'),
    ('x' * 20, 'holds 20 characters of JSON; at most 10'),
])
def test_json_entries_are_bounded(text: str, message: str) -> None:
    max_chars = 10 if len(text) == 20 else 10**6
    with pytest.raises(MotionFormatError, match=message):
        decode_json(np.array(text), 'annotation', 'f.npz', MotionFormatError,
                    max_chars=max_chars)


def test_json_within_bounds_decodes() -> None:
    value = {'a': [[[1, 2]]], 'b': 'x' * 100}
    assert decode_json(np.array(json.dumps(value)), 'info', 'f', MotionFormatError) == value
