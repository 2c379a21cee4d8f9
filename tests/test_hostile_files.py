"""Crafted files against every ``handx`` command that reads them: one line, bounded cost.

Each hostile input (a huge declared shape, a zip bomb, frame rates of 1e9, 1e-9 and 5e-324,
a million frames, a deeply nested or huge-integer annotation, MANO pickles asking for
terabytes) is given to every command that reads a file of its kind. Each must exit 2 with a
single line on stderr, within 10 s; the whole matrix runs in one child process whose peak
resident memory may grow by at most 1 GB over its baseline (resident after the CLI's imports).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handx_gen.motion import BimanualMotion
from handx_ros.retarget.trajectory import RobotTrajectory
from tests.mano_fixtures import (
    _as_python2_strings,
    _Python2StylePickler,
    fake_chumpy,
    synthetic_mano_arrays,
)

MAX_SECONDS = 10.0
MAX_GROWTH_BYTES = 2**30
NUM_FRAMES = 10


# ---------------------------------------------------------------------------- file crafting


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    header = repr({'descr': dtype, 'fortran_order': False, 'shape': shape}).encode('latin1')
    header += b' ' * (63 - (len(header) + 10) % 64) + b'\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header


def write_entries(path: Path, entries: dict[str, np.ndarray],
                  declared: dict[str, tuple[tuple[int, ...], str]] | None = None,
                  zeros: dict[str, tuple[tuple[int, ...], str]] | None = None) -> Path:
    """An .npz of ``entries``; ``declared`` entries carry only a header (shape, dtype) and 16
    bytes; ``zeros`` entries really hold that many zero bytes, streamed (a zip bomb)."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, value in entries.items():
            with archive.open(name + '.npy', 'w') as stream:
                np.lib.format.write_array(stream, np.asarray(value))
        for name, (shape, dtype) in (declared or {}).items():
            archive.writestr(name + '.npy', _npy_header(shape, dtype) + bytes(16))
        for name, (shape, dtype) in (zeros or {}).items():
            with archive.open(name + '.npy', 'w', force_zip64=True) as stream:
                stream.write(_npy_header(shape, dtype))
                remaining = int(np.prod(shape)) * np.dtype(dtype).itemsize
                chunk = bytes(2**22)
                while remaining > 0:
                    stream.write(chunk[:remaining])
                    remaining -= len(chunk)
    return path


def motion_entries(num_frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    motion = BimanualMotion.from_mano(
        30.0, np.zeros((num_frames, 2, 3)), np.zeros((num_frames, 2, 15, 3)),
        np.array([[0.25, 0.0, 1.0], [-0.25, 0.0, 1.0]]) + np.zeros((num_frames, 2, 3)))
    return {'format': np.array('handx-motion/1'), 'fps': np.array(30.0),
            'keypoints': np.asarray(motion.keypoints), 'global_orient': motion.global_orient,
            'transl': motion.transl, 'hand_pose': motion.hand_pose,
            'texts': np.array(['two hands'])}


def _motion_with(path: Path, **changes: object) -> Path:
    entries = motion_entries()
    entries.update({k: np.asarray(v) for k, v in changes.items()})
    return write_entries(path, entries)


def _frames_file(path: Path, num_frames: int) -> Path:
    """A motion really holding ``num_frames`` frames of zeros (compressed to ~1/1000)."""
    entries = {'format': np.array('handx-motion/1'), 'fps': np.array(30.0)}
    zeros = {'global_orient': ((num_frames, 2, 3), '<f8'),
             'transl': ((num_frames, 2, 3), '<f8'),
             'keypoints': ((num_frames, 2, 21, 3), '<f4'),
             'hand_pose': ((num_frames, 2, 15, 3), '<f8')}
    return write_entries(path, entries, zeros=zeros)


def _trajectory_entries(fps: float = 30.0) -> dict[str, np.ndarray]:
    traj = RobotTrajectory(robot='allegro', fps=30.0, joint_names=('a', 'b'),
                           qpos=np.zeros((NUM_FRAMES, 2)))
    return {'format': np.array('handx-robot-trajectory/1'), 'robot': np.array(traj.robot),
            'fps': np.array(fps), 'joint_names': np.array(traj.joint_names),
            'qpos': traj.qpos, 'info': np.array('{}')}


def _mano_tile_pickle(path: Path) -> Path:
    """A MANO pickle whose shapedirs is a chumpy Tile of one number 10^12 times (8 TB)."""
    data = dict(synthetic_mano_arrays())
    with fake_chumpy(extra={'chumpy.reordering': ('Tile',)}) as mods:
        data['shapedirs'] = mods['chumpy.reordering'].Tile(
            a=mods['chumpy.ch'].Ch(x=np.zeros(1)), reps=(10**6, 10**6))
        path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def _mano_broadcast_pickle(path: Path) -> Path:
    """A MANO pickle whose posedirs adds a (10^6, 1) to a (1, 10^6) array (8 TB)."""
    data = dict(synthetic_mano_arrays())
    with fake_chumpy() as mods:
        ch = mods['chumpy.ch']
        column = mods['chumpy.ch_ops'].add(a=ch.Ch(x=np.zeros((1,))), b=ch.Ch(x=np.zeros(10**6)))
        data['posedirs'] = mods['chumpy.ch_ops'].add(
            a=mods['chumpy.reordering'].Reshape(a=column, newshape=(10**6, 1)),
            b=mods['chumpy.reordering'].Reshape(a=column, newshape=(1, 10**6)))
        path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def _mano_sparse_pickle(path: Path) -> Path:
    """A MANO pickle whose J_regressor is an empty (10^6, 10^6) sparse matrix (8 TB dense)."""
    import scipy.sparse as sp

    data = dict(synthetic_mano_arrays())
    data['J_regressor'] = sp.coo_matrix((10**6, 10**6))
    stream = io.BytesIO()  # written as Python 2 did: bytes as binary strings
    _Python2StylePickler(stream, protocol=2).dump(_as_python2_strings(data))
    path.write_bytes(stream.getvalue())
    return path


def _mano_npz(path: Path) -> Path:
    """A converted MANO .npz whose posedirs declares (10^6, 10^6, 135) float64."""
    arrays = {key: np.asarray(value.toarray() if hasattr(value, 'toarray') else value)
              for key, value in synthetic_mano_arrays().items()
              if key not in ('posedirs', 'bs_type', 'bs_style')}
    entries = {'format': np.array('handx-mano/1'), 'side': np.array('right'), **arrays}
    return write_entries(path, entries, declared={'posedirs': ((10**6, 10**6, 135), '<f8')})


def _amass(path: Path, fps: float) -> Path:
    return write_entries(path, {'poses': np.zeros((NUM_FRAMES, 156)),
                                'trans': np.zeros((NUM_FRAMES, 3)),
                                'mocap_framerate': np.array(fps)})


def _keypoint_source(path: Path, fps: float) -> Path:
    keypoints = np.asarray(motion_entries()['keypoints'], dtype=np.float64)
    return write_entries(path, {'keypoints': keypoints, 'fps': np.array(fps)})


def _mano_source(path: Path, fps: float) -> Path:
    entries = motion_entries()
    return write_entries(path, {name: entries[name] for name in
                                ('global_orient', 'hand_pose', 'transl')} |
                         {'fps': np.array(fps)})


_DEEP = '[' * 100_000 + ']' * 100_000

# name: (kind, how the file is made in a folder, text the error must hold)
HOSTILE = {
    'huge-shape': ('motion', lambda w: write_entries(
        w / 'huge-shape.npz', {k: v for k, v in motion_entries().items() if k != 'hand_pose'},
        declared={'hand_pose': ((NUM_FRAMES, 2, 15, 10**15), '<f8')}), "'hand_pose' would take"),
    'zip-bomb-used': ('motion', lambda w: write_entries(
        w / 'zip-bomb-used.npz', {k: v for k, v in motion_entries().items() if k != 'texts'},
        zeros={'texts': ((2**16,), '<U1024')}), "'texts' would take"),
    'fps-1e9': ('motion', lambda w: _motion_with(w / 'fps-1e9.npz', fps=1e9),
                'between 1 and 1000'),
    'fps-1e-9': ('motion', lambda w: _motion_with(w / 'fps-1e-9.npz', fps=1e-9),
                 'between 1 and 1000'),
    'fps-5e-324': ('motion', lambda w: _motion_with(w / 'fps-5e-324.npz', fps=5e-324),
                   'between 1 and 1000'),
    'frames-1e6': ('motion', lambda w: _frames_file(w / 'frames-1e6.npz', 10**6),
                   '1000000 frames'),
    'deep-annotation': ('motion', lambda w: _motion_with(
        w / 'deep-annotation.npz', annotation=_DEEP), 'nests JSON deeper'),
    'huge-int-annotation': ('motion', lambda w: _motion_with(
        w / 'huge-int-annotation.npz', annotation='{"n": ' + '7' * 5000 + '}'),
        'not valid JSON'),
    'amass-fps-1e9': ('source', lambda w: _amass(w / 'amass-fps-1e9.npz', 1e9),
                      'between 1 and 1000'),
    'keypoints-fps-1e-9': ('source', lambda w: _keypoint_source(
        w / 'keypoints-fps-1e-9.npz', 1e-9), 'between 1 and 1000'),
    'mano-source-fps-5e-324': ('source', lambda w: _mano_source(
        w / 'mano-source-fps-5e-324.npz', 5e-324), 'between 1 and 1000'),
    'traj-fps-1e9': ('trajectory', lambda w: write_entries(
        w / 'traj-fps-1e9.npz', _trajectory_entries(1e9)), 'between 1 and 1000'),
    'traj-huge-shape': ('trajectory', lambda w: write_entries(
        w / 'traj-huge-shape.npz',
        {k: v for k, v in _trajectory_entries().items() if k != 'qpos'},
        declared={'qpos': ((NUM_FRAMES, 10**12), '<f8')}), "'qpos' would take"),
    'traj-deep-info': ('trajectory', lambda w: write_entries(
        w / 'traj-deep-info.npz', _trajectory_entries() | {'info': np.array(_DEEP)}),
        'nests JSON deeper'),
    'mano-tile': ('mano', lambda w: _mano_tile_pickle(w / 'tile_MANO_RIGHT.pkl'),
                  'Tile of shape'),
    'mano-broadcast': ('mano', lambda w: _mano_broadcast_pickle(w / 'add_MANO_RIGHT.pkl'),
                       'add of shape'),
    'mano-sparse': ('mano', lambda w: _mano_sparse_pickle(w / 'sparse_MANO_RIGHT.pkl'),
                    'scipy.sparse coo matrix'),
    'mano-npz-huge-shape': ('mano', lambda w: _mano_npz(w / 'huge_MANO_RIGHT.npz'),
                            "'posedirs' would take"),
}

# kind: the commands that read such a file, as (id, argv from (file, folder))
COMMANDS = {
    'motion': [
        ('data-inspect', lambda f, w: ['data', 'inspect', str(f)]),
        ('data-convert', lambda f, w: ['data', 'convert', str(f), str(w / f'{f.stem}.o.npz')]),
        ('data-filter', lambda f, w: ['data', 'filter', str(f)]),
        ('annotate', lambda f, w: ['annotate', str(f)]),
        ('generate', lambda f, w: ['generate', 'two hands wave', '--given', str(f),
                                       '--out', str(w / f'{f.stem}.g.npz')]),
        ('retarget', lambda f, w: ['retarget', str(f), '--out', str(w / f'{f.stem}.t.npz')]),
        ('sim', lambda f, w: ['sim', str(w / 'valid-traj.npz'), '--motion', str(f)]),
        ('eval', lambda f, w: ['eval', str(_alone(f, w))]),
    ],
    'source': [
        ('data-inspect', lambda f, w: ['data', 'inspect', str(f)]),
        ('data-convert', lambda f, w: ['data', 'convert', str(f), str(w / f'{f.stem}.o.npz')]),
        ('data-filter', lambda f, w: ['data', 'filter', str(f)]),
        ('annotate', lambda f, w: ['annotate', str(f)]),
    ],
    'trajectory': [('sim', lambda f, w: ['sim', str(f)])],
    'mano': [
        ('mano-info', lambda f, w: ['mano', 'info', str(f)]),
        ('mano-convert', lambda f, w: ['mano', 'convert', str(f), '--out',
                                       str(w / f'{f.stem}.o.npz')]),
    ],
}
CASE_IDS = [f'{name}:{command}' for name, (kind, _, _) in HOSTILE.items()
            for command, _ in COMMANDS[kind]]


def _alone(file: Path, work: Path) -> Path:
    """A folder holding only ``file`` (what ``handx eval`` reads)."""
    folder = work / f'only-{file.stem}'
    folder.mkdir(exist_ok=True)
    if not (folder / file.name).exists():
        (folder / file.name).symlink_to(file)
    return folder


def build_cases(work: Path) -> dict[str, tuple[list[str], str]]:
    """Make every hostile file in ``work``: ``{case id: (argv, expected error text)}``."""
    write_entries(work / 'valid-traj.npz', _trajectory_entries())
    cases = {}
    for name, (kind, make, expected) in HOSTILE.items():
        file = make(work)
        for command, argv in COMMANDS[kind]:
            cases[f'{name}:{command}'] = (argv(file, work), expected)
    return cases


# ---------------------------------------------------------------------------- the child

_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, time
    from handx_ros import cli

    def memory(field):  # VmRSS (now) or VmHWM (peak) of this process, in bytes; unlike
        # ru_maxrss, VmHWM starts afresh at exec, not at the forking parent's size
        with open('/proc/self/status') as status:
            line = next(line for line in status if line.startswith(field + ':'))
        return int(line.split()[1]) * 1024

    cli.build_parser()  # every subcommand module imported: the baseline
    baseline = memory('VmRSS')
    results = {}
    for case, argv in json.load(open(sys.argv[1])).items():
        err = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli.main(argv)
            except BaseException as exc:  # a traceback the CLI let through
                rc = f'{type(exc).__name__}: {exc}'[:300]
        results[case] = {'rc': rc, 'stderr': err.getvalue(),
                         'seconds': time.perf_counter() - start,
                         'peak': memory('VmHWM')}
    print(json.dumps({'baseline': baseline, 'results': results}))
""")


@pytest.fixture(scope='module')
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp('hostile')
    cases = build_cases(work)
    (work / 'cases.json').write_text(json.dumps({k: argv for k, (argv, _) in cases.items()}))
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, '-c', _DRIVER, str(work / 'cases.json')],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin',
                               'HOME': str(work), 'OMP_NUM_THREADS': '1'})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {'cases': cases, **report}


@pytest.mark.parametrize('case', CASE_IDS)
def test_one_line_and_exit_2(matrix: dict, case: str) -> None:
    result = matrix['results'][case]
    _, expected = matrix['cases'][case]
    lines = result['stderr'].strip().splitlines()
    assert result['rc'] == 2, result
    assert len(lines) == 1, result['stderr']
    assert lines[0].startswith('handx '), lines
    assert expected in lines[0], lines[0]
    assert result['seconds'] < MAX_SECONDS, result


def test_memory_stays_bounded(matrix: dict) -> None:
    peaks = {case: r['peak'] - matrix['baseline'] for case, r in matrix['results'].items()}
    worst = max(peaks, key=peaks.get)
    assert peaks[worst] < MAX_GROWTH_BYTES, (worst, peaks[worst])


def test_a_zip_bomb_in_an_unused_entry_is_never_read(tmp_path: Path) -> None:
    # 200 MB of zeros in an entry no reader uses, beside a valid motion: the motion loads,
    # and the bomb is never decompressed (loading takes well under its 200 MB).
    path = write_entries(tmp_path / 'bomb.npz', motion_entries(),
                         zeros={'bomb': ((200 * 2**20,), '|u1')})
    assert path.stat().st_size < 2_000_000
    plain = write_entries(tmp_path / 'plain.npz', motion_entries())
    code = textwrap.dedent(f"""
        from handx_gen.motion import BimanualMotion
        from handx_gen.data.sources import load_source

        def memory(field):
            with open('/proc/self/status') as status:
                line = next(line for line in status if line.startswith(field + ':'))
            return int(line.split()[1]) * 1024

        load_source({str(plain)!r})  # lazy imports and caches first
        before = memory('VmRSS')
        assert BimanualMotion.load({str(path)!r}).num_frames == {NUM_FRAMES}
        assert load_source({str(path)!r}).motion.num_frames == {NUM_FRAMES}
        print(memory('VmHWM') - before)
    """)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True,
                          text=True, timeout=120, env={'PYTHONPATH': str(root),
                                                       'PATH': '/usr/bin:/bin'})
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip().splitlines()[-1]) < 100 * 2**20
