"""Tests for handx_ros.retarget.trajectory: RobotTrajectory and handx-robot-trajectory/1."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handx_gen.errors import MotionError, MotionFormatError
from handx_ros.retarget.trajectory import TRAJECTORY_FORMAT, RobotTrajectory

NAMES = ('joint_0', 'joint_1', 'joint_2')


def _unit_quaternions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    quat = rng.normal(size=shape + (4,))
    return quat / np.linalg.norm(quat, axis=-1, keepdims=True)


def _trajectory(seed: int = 0, num_frames: int = 10, **changes) -> RobotTrajectory:
    rng = np.random.default_rng(seed)
    base_poses = np.concatenate(
        [rng.normal(size=(num_frames, 2, 3)), _unit_quaternions(rng, (num_frames, 2))], axis=-1)
    fields = dict(
        robot='allegro', fps=30.0, joint_names=NAMES,
        qpos=rng.uniform(-1.0, 1.0, size=(num_frames, len(NAMES))),
        base_poses=base_poses, converged=rng.random(num_frames) > 0.2,
        residual_m=rng.uniform(0.0, 0.01, size=num_frames),
        info={'source': 'clip.npz', 'backend': 'pinocchio', 'config': {'iterations': 50}})
    fields.update(changes)
    return RobotTrajectory(**fields)


def _assert_same(a: RobotTrajectory, b: RobotTrajectory) -> None:
    assert (a.robot, a.fps, a.joint_names, a.info) == (b.robot, b.fps, b.joint_names, b.info)
    for name in ('qpos', 'base_poses', 'converged', 'residual_m'):
        left, right = getattr(a, name), getattr(b, name)
        if left is None:
            assert right is None, name
        else:
            np.testing.assert_array_equal(left, right, err_msg=name)
            assert left.dtype == right.dtype, name


def _write_entries(path: Path, **changes) -> Path:
    """Save a valid trajectory, then rewrite its entries with ``changes`` (None drops one)."""
    _trajectory().save(path)
    with np.load(path, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            entries.pop(name)
        else:
            entries[name] = value
    np.savez(path, **entries)
    return path


def test_fields_are_copied_typed_and_read_only():
    qpos = np.zeros((4, 3), dtype=np.float32)
    converged = np.ones(4, dtype=bool)
    trajectory = RobotTrajectory('allegro', 30, list(NAMES), qpos, converged=converged)
    qpos[0, 0] = 5.0
    converged[0] = False
    assert trajectory.qpos.dtype == np.float64 and trajectory.qpos[0, 0] == 0.0
    assert trajectory.converged[0]
    assert trajectory.joint_names == NAMES and isinstance(trajectory.fps, float)
    for array in (trajectory.qpos, trajectory.converged, trajectory.column('joint_1')):
        with pytest.raises(ValueError, match='read-only'):
            array[0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        trajectory.robot = 'inspire'
    assert trajectory.base_poses is None and trajectory.residual_m is None
    assert trajectory.info == {}


def test_accessors():
    trajectory = _trajectory(num_frames=12)
    assert trajectory.num_frames == len(trajectory) == 12
    assert trajectory.num_joints == 3
    assert trajectory.duration_s == pytest.approx(12 / 30)
    np.testing.assert_allclose(trajectory.times_s, np.arange(12) / 30)
    assert trajectory.joint_index('joint_2') == 2
    np.testing.assert_array_equal(trajectory.column('joint_1'), trajectory.qpos[:, 1])
    with pytest.raises(MotionError, match=r"unknown joint 'thumb'.*'joint_0', 'joint_1'"):
        trajectory.joint_index('thumb')
    with pytest.raises(MotionError, match="unknown joint 'nope'"):
        trajectory.column('nope')
    assert 'frames=12' in repr(trajectory) and 'base_poses' in repr(trajectory)


def test_slicing_keeps_metadata_and_divides_fps_by_step():
    trajectory = _trajectory(num_frames=10)
    part = trajectory[2:8:2]
    assert part.num_frames == 3 and part.fps == 15.0
    np.testing.assert_array_equal(part.qpos, trajectory.qpos[2:8:2])
    np.testing.assert_array_equal(part.base_poses, trajectory.base_poses[2:8:2])
    np.testing.assert_array_equal(part.converged, trajectory.converged[2:8:2])
    np.testing.assert_array_equal(part.residual_m, trajectory.residual_m[2:8:2])
    assert part.info == trajectory.info and part.joint_names == trajectory.joint_names
    with pytest.raises(TypeError, match='slices over frames'):
        trajectory[0]
    with pytest.raises(MotionError, match='selects no frame'):
        trajectory[5:5]
    with pytest.raises(MotionError, match='step must be an integer >= 1'):
        trajectory[::-1]


def test_save_load_round_trip_all_fields(tmp_path):
    trajectory = _trajectory(seed=3)
    path = trajectory.save(tmp_path / 'sub' / 'traj.npz')
    assert path == tmp_path / 'sub' / 'traj.npz'
    loaded = RobotTrajectory.load(path)
    _assert_same(trajectory, loaded)
    assert loaded.info == {'backend': 'pinocchio', 'config': {'iterations': 50},
                           'source': 'clip.npz'}
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive['format']) == TRAJECTORY_FORMAT
        assert archive['joint_names'].tolist() == list(NAMES)
    assert [p.name for p in path.parent.iterdir()] == ['traj.npz']  # no temp file left


def test_save_load_round_trip_minimal_and_suffix_added(tmp_path):
    trajectory = RobotTrajectory('g1_hands', 50.0, ('a',), np.linspace(0, 1, 5)[:, None])
    path = trajectory.save(tmp_path / 'clip.traj')
    assert path.name == 'clip.traj.npz' and path.is_file()
    _assert_same(trajectory, RobotTrajectory.load(path))


def test_info_is_json_round_tripped_and_must_be_serialisable():
    trajectory = _trajectory(info={'pair': (1, 2), 'nested': {3: 'x'}})
    assert trajectory.info == {'pair': [1, 2], 'nested': {'3': 'x'}}
    with pytest.raises(MotionError, match='info is not JSON-serialisable'):
        _trajectory(info={'bad': object()})
    with pytest.raises(MotionError, match='info is not JSON-serialisable'):
        _trajectory(info={'nan': float('nan')})
    with pytest.raises(MotionError, match='info must be a mapping'):
        _trajectory(info=['a'])


def test_quaternions_are_normalised_or_rejected():
    trajectory = _trajectory()
    near = np.array(trajectory.base_poses)
    near[..., 3:] *= 1.0005
    fixed = _trajectory(base_poses=near)
    np.testing.assert_allclose(np.linalg.norm(fixed.base_poses[..., 3:], axis=-1), 1.0,
                               atol=1e-15)
    np.testing.assert_allclose(fixed.base_poses, trajectory.base_poses, atol=1e-12)
    far = np.array(trajectory.base_poses)
    far[4, 1, 3:] = 0.0
    with pytest.raises(MotionError, match=r'base_poses\[4, 1, 3:\] must be a unit quaternion'):
        _trajectory(base_poses=far)


@pytest.mark.parametrize('changes, message', [
    ({'qpos': np.zeros((10, 4))}, r'qpos: expected shape \(T, 3\).*got \(10, 4\)'),
    ({'qpos': np.zeros(10)}, r'qpos: expected shape \(T, 3\).*got \(10,\)'),
    ({'qpos': np.zeros((0, 3))}, r'T >= 1.*got \(0, 3\)'),
    ({'qpos': np.zeros((10, 3), dtype=bool)}, 'qpos must be a numeric array, got dtype bool'),
    ({'base_poses': np.zeros((10, 2, 6))}, r'base_poses: expected shape \(10, 2, 7\), got'),
    ({'base_poses': np.zeros((9, 2, 7))}, r'base_poses: expected shape \(10, 2, 7\)'),
    ({'converged': np.ones(9, dtype=bool)}, r'converged: expected shape \(10,\), got \(9,\)'),
    ({'converged': np.ones(10)}, 'converged must be a bool array, got dtype float64'),
    ({'residual_m': np.ones((10, 1))}, r'residual_m: expected shape \(10,\), got \(10, 1\)'),
    ({'residual_m': -np.ones(10)}, 'residual_m must be >= 0'),
    ({'fps': 0.0}, 'fps must be between 1 and 1000 frames per second, got 0.0'),
    ({'fps': True}, 'fps must be a number of frames per second, got True'),
    ({'fps': float('inf')}, 'fps must be between 1 and 1000 frames per second, got inf'),
    ({'fps': 1e9}, 'fps must be between 1 and 1000 frames per second, got 1000000000.0'),
    ({'fps': 1e-9}, 'fps must be between 1 and 1000 frames per second, got 1e-09'),
    ({'fps': 5e-324}, 'fps must be between 1 and 1000 frames per second, got 5e-324'),
    ({'robot': ''}, 'robot must be a non-empty str'),
    ({'joint_names': 'joint_0'}, 'joint_names must be a sequence of str'),
    ({'joint_names': ('a', 'b', 7)}, r'joint_names\[2\] must be a non-empty str'),
])
def test_bad_fields_rejected_naming_field_and_shape(changes, message):
    with pytest.raises(MotionError, match=message):
        _trajectory(**changes)


def test_joint_names_must_be_unique():
    with pytest.raises(MotionError, match=r"unique; repeated: \['b'\]"):
        _trajectory(joint_names=('a', 'b', 'b'))


@pytest.mark.parametrize('field, shape', [
    ('qpos', (10, 3)), ('base_poses', (10, 2, 7)), ('residual_m', (10,))])
def test_non_finite_values_rejected(field, shape):
    value = np.array(getattr(_trajectory(), field)) if field != 'qpos' else np.zeros(shape)
    value[(7,) + (0,) * (len(shape) - 1)] = np.nan
    with pytest.raises(MotionError, match=rf'{field} has 1 non-finite values \(first at index '
                                          rf'\(7'):
        _trajectory(**{field: value})


def test_load_rejects_other_or_missing_format(tmp_path):
    path = _write_entries(tmp_path / 'v2.npz', format=np.array('handx-robot-trajectory/2'))
    with pytest.raises(MotionFormatError, match=r"unsupported robot trajectory format "
                                                r"'handx-robot-trajectory/2'; supported: "
                                                r"'handx-robot-trajectory/1'"):
        RobotTrajectory.load(path)
    path = _write_entries(tmp_path / 'motion.npz', format=np.array('handx-motion/1'))
    with pytest.raises(MotionFormatError, match='unsupported robot trajectory format'):
        RobotTrajectory.load(path)
    path = _write_entries(tmp_path / 'none.npz', format=None)
    with pytest.raises(MotionFormatError, match='no "format" entry'):
        RobotTrajectory.load(path)
    path = _write_entries(tmp_path / 'number.npz', format=np.array(1.0))
    with pytest.raises(MotionFormatError, match='"format" entry is not a string'):
        RobotTrajectory.load(path)


@pytest.mark.parametrize('changes, message', [
    ({'qpos': None}, r"missing entries \['qpos'\]"),
    ({'qpos': np.full((10, 3), np.nan)}, 'qpos has 30 non-finite values'),
    ({'qpos': np.zeros((10, 2))}, r'qpos: expected shape \(T, 3\)'),
    ({'joint_names': np.array(['a', 'a', 'b'])}, 'joint_names must be unique'),
    ({'joint_names': np.arange(3)}, '"joint_names" must be a 1-D array of str'),
    ({'fps': np.array([30.0])}, '"fps" must be a numeric scalar'),
    ({'robot': np.array(3)}, '"robot" must be a string'),
    ({'info': np.array('{not json')}, '"info" is not valid JSON'),
    ({'info': np.array('[1, 2]')}, '"info" must hold a JSON object, got list'),
    ({'converged': np.zeros(10)}, 'converged must be a bool array'),
])
def test_load_rejects_bad_entries_naming_the_file(tmp_path, changes, message):
    path = _write_entries(tmp_path / 'bad.npz', **changes)
    with pytest.raises(MotionFormatError, match=message) as info:
        RobotTrajectory.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_corrupt_truncated_missing_and_pickled_files(tmp_path):
    path = _trajectory().save(tmp_path / 'good.npz')
    data = path.read_bytes()
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MotionFormatError, match='corrupt or truncated'):
        RobotTrajectory.load(truncated)
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'not a zip file at all')
    with pytest.raises(MotionFormatError, match=r'not a handx-robot-trajectory/1 \.npz'):
        RobotTrajectory.load(garbage)
    with pytest.raises(MotionFormatError, match='file not found'):
        RobotTrajectory.load(tmp_path / 'absent.npz')
    with zipfile.ZipFile(path) as archive:  # a member cut short inside a valid zip
        members = {name: archive.read(name) for name in archive.namelist()}
    cut = tmp_path / 'cut.npz'
    with zipfile.ZipFile(cut, 'w') as archive:
        for name, payload in members.items():
            archive.writestr(name, payload[:20] if name == 'qpos.npy' else payload)
    with pytest.raises(MotionFormatError, match='corrupt or truncated'):
        RobotTrajectory.load(cut)
    pickled = tmp_path / 'pickled.npz'
    _write_entries(pickled, info=np.array([{'a': 1}], dtype=object))
    with pytest.raises(MotionFormatError, match='holds objects'):
        RobotTrajectory.load(pickled)


def test_saved_info_is_a_json_string(tmp_path):
    path = _trajectory().save(tmp_path / 't.npz')
    with np.load(path, allow_pickle=False) as archive:
        assert archive['info'].dtype.kind == 'U'
        assert json.loads(str(archive['info']))['backend'] == 'pinocchio'
