"""Safe .npz reading: one clear error for every way a file can be wrong, never unpickling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handx_gen.errors import MotionFormatError
from handx_gen.npz import open_npz, read_npz


def test_reads_every_entry(tmp_path: Path) -> None:
    np.savez(tmp_path / 'ok.npz', a=np.arange(3), b=np.array('text'))
    entries = read_npz(tmp_path / 'ok.npz', MotionFormatError, 'test')
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
        read_npz(path, MotionFormatError, 'test')


def test_object_entries_are_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / 'objects.npz'
    np.savez(path, payload=np.array([{'a': 1}], dtype=object))
    with pytest.raises(MotionFormatError, match='holds objects'):
        read_npz(path, MotionFormatError, 'test')


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(MotionFormatError, match='not a file'):
        open_npz(tmp_path, MotionFormatError, 'test')
