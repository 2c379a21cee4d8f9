"""Tests for handx_ros.conversions: ROS messages <-> HandX arrays, round trips and rejections."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseArray
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import String
from trajectory_msgs.msg import (
    JointTrajectory,
    JointTrajectoryPoint,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)
from visualization_msgs.msg import Marker, MarkerArray

from handx_gen.errors import HandxError, MessageError
from handx_gen.hand import KEYPOINT_NAMES, KEYPOINT_PARENTS, HandSide, default_skeleton
from handx_gen.motion.container import BimanualMotion
from handx_ros import conversions as conv
from handx_ros.retarget.trajectory import RobotTrajectory

ROBOT_JOINTS = tuple(f'joint_{i}' for i in range(16))
STAMP_S = 1_712_345_678.123456789


def _wire(msg: object) -> object:
    """The message after a serialisation round trip, as a subscriber receives it."""
    return deserialize_message(serialize_message(msg), type(msg))


def _motion(seed: int = 0, num_frames: int = 12, fps: float = 30.0) -> BimanualMotion:
    """A random motion on non-default (scaled) skeletons, rotation angles below pi."""
    rng = np.random.default_rng(seed)
    skeletons = (default_skeleton(HandSide.LEFT).scaled(1.13),
                 default_skeleton(HandSide.RIGHT).scaled(0.91))
    return BimanualMotion.from_mano(
        fps, rng.uniform(-1.5, 1.5, (num_frames, 2, 3)),
        rng.uniform(-0.9, 0.9, (num_frames, 2, 15, 3)), rng.uniform(-0.6, 0.6, (num_frames, 2, 3)),
        betas=rng.normal(size=(2, 10)), skeletons=skeletons, texts='wave both hands')


def _unit_quaternions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    quat = rng.normal(size=shape + (4,))
    return quat / np.linalg.norm(quat, axis=-1, keepdims=True)


def _trajectory(seed: int = 0, num_frames: int = 10, fps: float = 30.0,
                base: bool = True) -> RobotTrajectory:
    rng = np.random.default_rng(seed)
    base_poses = None
    if base:
        base_poses = np.concatenate([rng.uniform(-1.0, 1.0, (num_frames, 2, 3)),
                                     _unit_quaternions(rng, (num_frames, 2))], -1)
    return RobotTrajectory(
        robot='allegro', fps=fps, joint_names=ROBOT_JOINTS,
        qpos=rng.uniform(-1.5, 1.5, (num_frames, len(ROBOT_JOINTS))), base_poses=base_poses)


def _observed_keypoints(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (2, 21, 3))


def _same_quaternions(a: np.ndarray, b: np.ndarray, atol: float = 1e-12) -> bool:
    """Equal up to the sign of each quaternion."""
    dot = np.abs(np.sum(a * b, axis=-1))
    return bool(np.all(np.abs(dot - 1.0) < atol))


# ---------------------------------------------------------------------------- time and text


def test_stamp_round_trip_is_idempotent_and_carries_nanoseconds() -> None:
    rng = np.random.default_rng(1)
    for t in np.concatenate([rng.uniform(0.0, 2e9, 200), rng.uniform(0.0, 100.0, 200)]):
        stamp = conv.stamp_from_s(float(t))
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert abs(conv.stamp_to_s(stamp) - t) <= 1e-9 * max(1.0, t) * 1e-6 + 5e-10
        assert conv.stamp_to_s(conv.stamp_from_s(conv.stamp_to_s(stamp))) == conv.stamp_to_s(
            stamp)
    stamp = conv.stamp_from_s(4.9999999999)  # rounds up into the next second
    assert (stamp.sec, stamp.nanosec) == (5, 0)
    stamp = conv.stamp_from_s(STAMP_S)
    assert stamp.sec == 1_712_345_678 and abs(stamp.nanosec - 123_456_789) < 300


@pytest.mark.parametrize('bad', [-0.5, math.nan, math.inf, 2.0 ** 31, 'now', None])
def test_stamp_from_s_rejects_bad_times(bad: object) -> None:
    with pytest.raises(MessageError, match='stamp'):
        conv.stamp_from_s(bad)  # type: ignore[arg-type]


def test_text_from_msg_strips_and_rejects() -> None:
    assert conv.text_from_msg(String(data='  wave hello \n')) == 'wave hello'
    assert conv.text_from_msg(String(data='x' * conv.MAX_PROMPT_CHARS)) == 'x' * 2000
    cases = {
        '': 'empty', '  \t\n ': 'empty', 'x' * 2001: 'at most 2000 characters allowed, got 2001',
        'wave\x00hands': 'NUL',
    }
    for text, match in cases.items():
        with pytest.raises(MessageError, match=match):
            conv.text_from_msg(String(data=text))
    with pytest.raises(MessageError, match='at most 5 characters allowed, got 10'):
        conv.text_from_msg(String(data='clap hands'), max_chars=5)
    with pytest.raises(MessageError) as info:  # a huge prompt is not echoed in full
        conv.text_from_msg(String(data='y' * 1_000_000))
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------- motion


def test_names_and_constants() -> None:
    assert len(conv.KEYPOINT_JOINT_NAMES) == 42 and len(conv.MOTION_JOINT_NAMES) == 44
    assert conv.KEYPOINT_JOINT_NAMES[0] == 'left/wrist'
    assert conv.KEYPOINT_JOINT_NAMES[41] == 'right/little_tip'
    assert conv.MOTION_JOINT_NAMES[42:] == ('left/mano_root', 'right/mano_root')
    assert conv.BASE_JOINT_NAMES[:2] == ('left/base_x', 'left/base_y')
    assert len(set(conv.MOTION_JOINT_NAMES)) == 44 and len(conv.BASE_JOINT_NAMES) == 12


@pytest.mark.parametrize('fps', [30.0, 29.97, 7.3, 120.0, 1000.0])
def test_motion_round_trip_is_exact(fps: float) -> None:
    motion = _motion(seed=2, fps=fps)
    msg = conv.motion_to_msg(motion, stamp_s=STAMP_S)
    assert msg.header.frame_id == 'world' and len(msg.points) == motion.num_frames
    assert tuple(msg.joint_names) == conv.MOTION_JOINT_NAMES
    back = conv.motion_from_msg(_wire(msg))
    assert back.fps == fps  # exactly, despite nanosecond time_from_start
    np.testing.assert_array_equal(back.keypoints, motion.keypoints)
    np.testing.assert_array_equal(back.transl, motion.transl)
    np.testing.assert_allclose(back.global_orient, motion.global_orient, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.hand_pose, motion.hand_pose, rtol=0, atol=1e-12)
    assert back.betas is None and back.texts == ()  # they do not travel
    assert conv.stamp_to_s(msg.header.stamp) == conv.stamp_to_s(conv.stamp_from_s(STAMP_S))


def test_motion_message_layout() -> None:
    motion = _motion(seed=3, num_frames=3)
    msg = conv.motion_to_msg(motion, stamp_s=10.0, frame_id='map')
    assert msg.header.frame_id == 'map'
    assert [conv.stamp_to_s(p.time_from_start) for p in msg.points] == pytest.approx(
        [0.0, 1 / 30, 2 / 30], abs=1e-9)
    point = msg.points[1]
    right_index_pip = conv.MOTION_JOINT_NAMES.index('right/index_pip')
    tf = point.transforms[right_index_pip]
    keypoint = motion.keypoints[1, 1, KEYPOINT_NAMES.index('index_pip')]
    np.testing.assert_array_equal([tf.translation.x, tf.translation.y, tf.translation.z],
                                  keypoint.astype(np.float64))
    # index_pip is MANO joint 2 (hand_pose row 1); ROS quaternions are xyzw.
    angle = np.linalg.norm(motion.hand_pose[1, 1, 1])
    assert tf.rotation.w == pytest.approx(math.cos(angle / 2), abs=1e-12)
    assert [tf.rotation.x, tf.rotation.y, tf.rotation.z] == pytest.approx(
        list(motion.hand_pose[1, 1, 1] / angle * math.sin(angle / 2)), abs=1e-12)
    tip = point.transforms[conv.MOTION_JOINT_NAMES.index('left/thumb_tip')].rotation
    assert (tip.x, tip.y, tip.z, tip.w) == (0.0, 0.0, 0.0, 1.0)
    root = point.transforms[conv.MOTION_JOINT_NAMES.index('left/mano_root')]
    np.testing.assert_array_equal([root.translation.x, root.translation.y, root.translation.z],
                                  motion.transl[1, 0])


def test_motion_from_msg_accepts_reordered_names() -> None:
    motion = _motion(seed=4, num_frames=5)
    msg = conv.motion_to_msg(motion, stamp_s=1.0)
    order = np.random.default_rng(4).permutation(44)
    msg.joint_names = [msg.joint_names[i] for i in order]
    for point in msg.points:
        point.transforms = [point.transforms[i] for i in order]
    back = conv.motion_from_msg(msg)
    np.testing.assert_array_equal(back.keypoints, motion.keypoints)
    np.testing.assert_allclose(back.hand_pose, motion.hand_pose, rtol=0, atol=1e-12)


def _motion_msg(num_frames: int = 6) -> MultiDOFJointTrajectory:
    return conv.motion_to_msg(_motion(seed=5, num_frames=num_frames), stamp_s=1.0)


def _set_time(point: MultiDOFJointTrajectoryPoint | JointTrajectoryPoint, t: float) -> None:
    point.time_from_start = Duration(sec=int(t), nanosec=round((t - int(t)) * 1e9))


def _motion_case(name: str) -> tuple[MultiDOFJointTrajectory, str]:
    msg = _motion_msg()
    tf = msg.points[2].transforms[7]
    if name == 'frame':
        msg.header.frame_id = 'camera'
        return msg, "frame_id must be 'world', got 'camera'"
    if name == 'one point':
        msg.points = msg.points[:1]
        return msg, 'expected 2 to 9000 points'
    if name == 'names':
        msg.joint_names[3] = 'left/extra_finger'
        return msg, "missing .*'left/thumb_ip'.*unexpected .*'left/extra_finger'"
    if name == 'name count':
        msg.joint_names = msg.joint_names[:43]
        return msg, 'expected exactly 44 joint names, got 43'
    if name == 'transforms':
        msg.points[3].transforms = msg.points[3].transforms[:43]
        return msg, 'expected 44 transforms per point, got 43 at point 3'
    if name == 'nan':
        tf.translation.y = math.nan
        return msg, r'finite, got nan at index \(2, 7, 1\) \(left/index_dip\)'
    if name == 'inf rotation':
        tf.rotation.x = -math.inf
        return msg, 'finite, got -inf'
    if name == 'far':
        tf.translation.z = 1e6
        return msg, r'<= 10 m, got 1000000.0 at index \(2, 7, 2\)'
    if name == 'huge':
        tf.translation.x = 1e308
        return msg, '<= 10 m'
    if name == 'zero quaternion':
        tf.rotation.x = tf.rotation.y = tf.rotation.z = tf.rotation.w = 0.0
        return msg, r'unit norm .*got norm 0.0 at index \(2, 7\)'
    if name == 'scaled quaternion':
        tf.rotation.w *= 2.0
        tf.rotation.x *= 2.0
        tf.rotation.y *= 2.0
        tf.rotation.z *= 2.0
        return msg, 'unit norm'
    if name == 'root disagrees':
        wrist = msg.points[4].transforms[21].rotation  # right/wrist
        wrist.x, wrist.y, wrist.z, wrist.w = 0.0, 0.0, math.sin(0.1), math.cos(0.1)
        return msg, 'right/wrist rotation must equal right/mano_root .* at point 4'
    if name == 'non-uniform':
        _set_time(msg.points[3], 0.11)
        return msg, 'uniform .*point 3'
    if name == 'not from zero':
        for i, point in enumerate(msg.points):
            _set_time(point, (i + 1) / 30)
        return msg, 'first point must be 0'
    if name == 'decreasing':
        msg.points[2].time_from_start, msg.points[3].time_from_start = (
            msg.points[3].time_from_start, msg.points[2].time_from_start)
        return msg, 'rise strictly'
    if name == 'same time':
        for point in msg.points:
            point.time_from_start = Duration()
        return msg, 'rise strictly'
    if name == 'too fast':
        for i, point in enumerate(msg.points):
            point.time_from_start = Duration(nanosec=i * 500_000)
        return msg, r'frame rate must be between 1 and 1000 frames per second, got 2000.0'
    if name == 'too slow':  # two frames an hour apart: an hour of simulation for the gate
        for i, point in enumerate(msg.points):
            point.time_from_start = Duration(sec=i * 3600)
        return msg, r'frame rate must be between 1 and 1000 .* got 0.000277'
    raise AssertionError(name)


@pytest.mark.parametrize('name', [
    'frame', 'one point', 'names', 'name count', 'transforms', 'nan', 'inf rotation', 'far',
    'huge', 'zero quaternion', 'scaled quaternion', 'root disagrees', 'non-uniform',
    'not from zero', 'decreasing', 'same time', 'too fast', 'too slow'])
def test_motion_from_msg_rejects(name: str) -> None:
    msg, match = _motion_case(name)
    with pytest.raises(MessageError, match=match):
        conv.motion_from_msg(msg)


def test_motion_from_msg_rejects_too_many_frames_by_size_first() -> None:
    msg = _motion_msg(num_frames=4)
    with pytest.raises(MessageError, match='expected 2 to 3 points .*got 4'):
        conv.motion_from_msg(msg, max_frames=3)
    point = MultiDOFJointTrajectoryPoint()  # empty: would fail later if it were converted
    msg.points = [point] * 1_000_000
    start = time.perf_counter()
    with pytest.raises(MessageError, match='got 1000000'):
        conv.motion_from_msg(msg)
    assert time.perf_counter() - start < 1.0


def test_motion_from_msg_normalises_nearly_unit_quaternions() -> None:
    motion = _motion(seed=6, num_frames=4)
    msg = conv.motion_to_msg(motion, stamp_s=1.0)
    for point in msg.points:
        for tf in point.transforms:
            tf.rotation.w *= 1.0005
            tf.rotation.x *= 1.0005
            tf.rotation.y *= 1.0005
            tf.rotation.z *= 1.0005
    back = conv.motion_from_msg(msg)
    np.testing.assert_allclose(back.hand_pose, motion.hand_pose, rtol=0, atol=1e-12)


def test_motion_round_trip_120_frames_is_fast() -> None:
    motion = _motion(seed=7, num_frames=120)
    conv.motion_from_msg(conv.motion_to_msg(motion, stamp_s=1.0))  # warm up
    start = time.perf_counter()
    back = conv.motion_from_msg(conv.motion_to_msg(motion, stamp_s=1.0))
    assert time.perf_counter() - start < 1.0  # ~50 ms typical; generous for a loaded machine
    np.testing.assert_array_equal(back.keypoints, motion.keypoints)


# ---------------------------------------------------------------------------- observed hands


def test_observed_round_trip_with_one_hand_absent() -> None:
    keypoints = _observed_keypoints(8)
    keypoints[HandSide.LEFT] = np.nan
    msg = conv.keypoints_to_pose_array(keypoints, stamp_s=STAMP_S)
    assert len(msg.poses) == 42 and msg.header.frame_id == 'world'
    assert msg.poses[30].orientation.w == 1.0 and msg.poses[30].orientation.x == 0.0
    frame = conv.observed_from_msg(_wire(msg))
    assert isinstance(frame, conv.ObservedFrame)
    assert frame.present.tolist() == [False, True] and frame.num_present == 1
    assert np.isnan(frame.keypoints[0]).all()
    np.testing.assert_array_equal(frame.keypoints[1], keypoints[1])
    assert frame.stamp_s == conv.stamp_to_s(conv.stamp_from_s(STAMP_S))
    assert not frame.keypoints.flags.writeable


def test_observed_both_hands_and_inf_hand_counts_as_absent() -> None:
    keypoints = _observed_keypoints(9)
    frame = conv.observed_from_msg(conv.keypoints_to_pose_array(keypoints, stamp_s=2.0))
    assert frame.present.tolist() == [True, True]
    np.testing.assert_array_equal(frame.keypoints, keypoints)
    msg = conv.keypoints_to_pose_array(keypoints, stamp_s=2.0)
    for pose in msg.poses[21:]:
        pose.position.x = math.inf
    frame = conv.observed_from_msg(msg)
    assert frame.present.tolist() == [True, False] and np.isnan(frame.keypoints[1]).all()


def _observed_case(name: str) -> tuple[PoseArray, str]:
    msg = conv.keypoints_to_pose_array(_observed_keypoints(10), stamp_s=1.0)
    if name == 'count':
        msg.poses = msg.poses[:41]
        return msg, 'expected exactly 42 poses, got 41'
    if name == 'million':
        msg.poses = [Pose()] * 1_000_000
        return msg, 'expected exactly 42 poses, got 1000000'
    if name == 'frame':
        msg.header.frame_id = ''
        return msg, "frame_id must be 'world', got ''"
    if name == 'partial':
        msg.poses[21 + 8].position.z = math.nan
        return msg, r"right hand is partly non-finite \(keypoints \['index_tip'\]\)"
    if name == 'none':
        for pose in msg.poses:
            pose.position.x = math.nan
        return msg, 'no hand present'
    if name == 'far':
        msg.poses[5].position.y = -11.0
        return msg, '<= 10 m, got -11.0'
    raise AssertionError(name)


@pytest.mark.parametrize('name', ['count', 'million', 'frame', 'partial', 'none', 'far'])
def test_observed_from_msg_rejects(name: str) -> None:
    msg, match = _observed_case(name)
    with pytest.raises(MessageError, match=match):
        conv.observed_from_msg(msg)
    if name == 'million':  # 56 MB: refused by its size before anything is read
        match = f'56000028 bytes > {conv.MAX_OBSERVED_BYTES}'
    with pytest.raises(MessageError, match=match):
        conv.observed_from_cdr(serialize_message(msg))


@pytest.mark.parametrize('seed', [12, 13])
def test_observed_from_cdr_reads_what_observed_from_msg_reads(seed: int) -> None:
    keypoints = _observed_keypoints(seed)
    keypoints[seed % 2] = np.nan  # one hand absent
    for frame_id, hands in (('world', keypoints), ('map', _observed_keypoints(seed + 1))):
        msg = conv.keypoints_to_pose_array(hands, stamp_s=STAMP_S + seed, frame_id=frame_id)
        data = serialize_message(msg)
        fast = conv.observed_from_cdr(data, frame_id=frame_id)
        slow = conv.observed_from_msg(msg, frame_id=frame_id)
        assert fast.stamp_s == slow.stamp_s
        np.testing.assert_array_equal(fast.keypoints, slow.keypoints)
        np.testing.assert_array_equal(fast.present, slow.present)
        assert not fast.keypoints.flags.writeable


def test_observed_from_cdr_reads_big_endian_and_refuses_broken_bytes() -> None:
    import struct

    keypoints = _observed_keypoints(14)
    # Big endian, written by hand: header, 'world', 42 poses (position, orientation w=1).
    body = struct.pack('>iI', 5, 250_000_000) + struct.pack('>I', 6) + b'world\x00'
    body += b'\x00' * (-len(body) % 4) + struct.pack('>I', 42)
    body += b'\x00' * (-len(body) % 8)
    body += b''.join(struct.pack('>7d', *p, 0.0, 0.0, 0.0, 1.0) for p in keypoints.reshape(-1, 3))
    frame = conv.observed_from_cdr(b'\x00\x00\x00\x00' + body)
    assert frame.stamp_s == 5.25
    np.testing.assert_array_equal(frame.keypoints, keypoints)
    data = serialize_message(conv.keypoints_to_pose_array(keypoints, stamp_s=1.0))
    for broken, match in ((data[:-8], 'truncated inside its 42 poses'),
                          (data[:10], 'truncated'), (b'', 'not a CDR-encoded message'),
                          (b'\x07\x07' + data[2:], 'not a CDR-encoded message'),
                          (data + b'\x00' * conv.MAX_OBSERVED_BYTES, 'bytes >')):
        with pytest.raises(MessageError, match=match):
            conv.observed_from_cdr(broken)


def test_keypoints_to_pose_array_rejects_what_observed_from_msg_would() -> None:
    with pytest.raises(MessageError, match=r'shape \(2, 21, 3\), got \(21, 3\)'):
        conv.keypoints_to_pose_array(np.zeros((21, 3)), stamp_s=1.0)
    keypoints = _observed_keypoints(11)
    keypoints[0, 3] = np.nan
    with pytest.raises(MessageError, match='left hand is partly non-finite'):
        conv.keypoints_to_pose_array(keypoints, stamp_s=1.0)
    with pytest.raises(MessageError, match='no hand present'):
        conv.keypoints_to_pose_array(np.full((2, 21, 3), np.nan), stamp_s=1.0)


# ---------------------------------------------------------------------------- robot trajectory


@pytest.mark.parametrize('base', [True, False])
def test_trajectory_round_trip(base: bool) -> None:
    trajectory = _trajectory(seed=12, base=base, fps=29.97)
    msg = conv.trajectory_to_msg(trajectory, stamp_s=STAMP_S)
    expected_names = ROBOT_JOINTS + (conv.BASE_JOINT_NAMES if base else ())
    assert tuple(msg.joint_names) == expected_names
    assert not conv.is_live_target(msg)
    back = conv.trajectory_from_msg(_wire(msg), robot='allegro', joint_names=ROBOT_JOINTS)
    assert (back.robot, back.fps, back.joint_names) == ('allegro', 29.97, ROBOT_JOINTS)
    np.testing.assert_array_equal(back.qpos, trajectory.qpos)
    if base:
        np.testing.assert_allclose(back.base_poses[..., :3], trajectory.base_poses[..., :3],
                                   rtol=0, atol=0)
        assert _same_quaternions(back.base_poses[..., 3:], trajectory.base_poses[..., 3:])
    else:
        assert back.base_poses is None


def test_trajectory_base_joints_carry_position_and_rotation_vector() -> None:
    trajectory = _trajectory(seed=13, num_frames=2)
    msg = conv.trajectory_to_msg(trajectory, stamp_s=1.0)
    positions = np.asarray(msg.points[1].positions)
    n = len(ROBOT_JOINTS)
    np.testing.assert_array_equal(positions[n + 6:n + 9], trajectory.base_poses[1, 1, :3])
    quat = trajectory.base_poses[1, 1, 3:]
    quat = quat if quat[0] >= 0 else -quat
    angle = 2 * math.atan2(np.linalg.norm(quat[1:]), quat[0])
    np.testing.assert_allclose(positions[n + 9:], quat[1:] / np.linalg.norm(quat[1:]) * angle,
                               atol=1e-12)
    assert conv.stamp_to_s(msg.points[1].time_from_start) == pytest.approx(1 / 30, abs=1e-9)


def test_trajectory_from_msg_reorders_by_name() -> None:
    trajectory = _trajectory(seed=14)
    msg = conv.trajectory_to_msg(trajectory, stamp_s=1.0)
    shuffled = ROBOT_JOINTS[::-1]
    back = conv.trajectory_from_msg(msg, robot='allegro', joint_names=shuffled)
    assert back.joint_names == shuffled
    np.testing.assert_array_equal(back.qpos, trajectory.qpos[:, ::-1])


def _trajectory_case(name: str) -> tuple[JointTrajectory, str]:
    msg = conv.trajectory_to_msg(_trajectory(seed=15, num_frames=5), stamp_s=1.0)
    if name == 'live':
        msg.points = msg.points[:1]
        return msg, 'live target'
    if name == 'empty':
        msg.points = []
        return msg, 'expected 2 to 9000 points, got 0'
    if name == 'million':
        msg.points = [JointTrajectoryPoint()] * 1_000_000
        return msg, 'got 1000000'
    if name == 'frame':
        msg.header.frame_id = 'odom'
        return msg, "frame_id must be 'world', got 'odom'"
    if name == 'missing':
        msg.joint_names[2] = 'joint_99'
        return msg, r"missing \['joint_2'\], unexpected \['joint_99'\]"
    if name == 'partial base':
        msg.joint_names = msg.joint_names[:-6]
        return msg, 'expected 16 joint names .*got 22'
    if name == 'duplicate':
        msg.joint_names[1] = 'joint_0'
        return msg, "'joint_0' appears more than once"
    if name == 'positions':
        msg.points[3].positions = msg.points[3].positions[:-1]
        return msg, 'expected 28 positions per point .*got 27 at point 3'
    if name == 'nan':
        msg.points[2].positions[4] = math.nan
        return msg, r'finite, got nan at index \(2, 4\)'
    if name == 'huge':
        msg.points[2].positions[4] = 1e300
        return msg, "joint 'joint_4' value 1e\\+300 exceeds 1000"
    if name == 'far base':
        msg.points[2].positions[16] = 50.0
        return msg, 'base position: .*<= 10 m, got 50.0'
    if name == 'non-uniform':
        _set_time(msg.points[4], 0.2)
        return msg, 'uniform'
    raise AssertionError(name)


@pytest.mark.parametrize('name', [
    'live', 'empty', 'million', 'frame', 'missing', 'partial base', 'duplicate', 'positions',
    'nan', 'huge', 'far base', 'non-uniform'])
def test_trajectory_from_msg_rejects(name: str) -> None:
    msg, match = _trajectory_case(name)
    start = time.perf_counter()
    with pytest.raises(MessageError, match=match):
        conv.trajectory_from_msg(msg, robot='allegro', joint_names=ROBOT_JOINTS)
    assert time.perf_counter() - start < 1.0


def test_trajectory_from_msg_rejects_bad_arguments_and_limits() -> None:
    msg = conv.trajectory_to_msg(_trajectory(seed=16, num_frames=5), stamp_s=1.0)
    with pytest.raises(MessageError, match='expected 2 to 4 points'):
        conv.trajectory_from_msg(msg, robot='allegro', joint_names=ROBOT_JOINTS, max_points=4)
    with pytest.raises(MessageError, match='appears more than once'):
        conv.trajectory_from_msg(msg, robot='allegro', joint_names=ROBOT_JOINTS + ('joint_0',))
    with pytest.raises(MessageError, match='robot'):
        conv.trajectory_from_msg(msg, robot='', joint_names=ROBOT_JOINTS)


def test_trajectory_to_msg_rejects_names_clashing_with_base_joints() -> None:
    rng = np.random.default_rng(17)
    base_poses = np.concatenate([np.zeros((2, 2, 3)), _unit_quaternions(rng, (2, 2))], -1)
    trajectory = RobotTrajectory(robot='allegro', fps=30.0, joint_names=('left/base_x',),
                                 qpos=np.zeros((2, 1)), base_poses=base_poses)
    with pytest.raises(MessageError, match='clash'):
        conv.trajectory_to_msg(trajectory, stamp_s=1.0)


# ---------------------------------------------------------------------------- live target


def test_live_target_from_msg_orders_by_name_and_ignores_base_joints() -> None:
    trajectory = _trajectory(seed=18, num_frames=1)
    msg = conv.trajectory_to_msg(trajectory, stamp_s=STAMP_S)
    assert conv.is_live_target(msg)
    names = ROBOT_JOINTS[5:] + ROBOT_JOINTS[:5]
    stamp_s, qpos = conv.live_target_from_msg(_wire(msg), joint_names=names)
    assert stamp_s == conv.stamp_to_s(conv.stamp_from_s(STAMP_S))
    np.testing.assert_array_equal(
        qpos, trajectory.qpos[0, [ROBOT_JOINTS.index(n) for n in names]])
    plain = _trajectory(seed=18, num_frames=1, base=False)
    msg = conv.trajectory_to_msg(plain, stamp_s=1.0)
    _, qpos = conv.live_target_from_msg(msg, joint_names=ROBOT_JOINTS)
    np.testing.assert_array_equal(qpos, plain.qpos[0])


def _live_case(name: str) -> tuple[JointTrajectory, str]:
    msg = conv.trajectory_to_msg(_trajectory(seed=19, num_frames=1, base=False), stamp_s=1.0)
    if name == 'clip':
        msg.points = msg.points * 2
        return msg, 'expected exactly 1 point, got 2'
    if name == 'frame':
        msg.header.frame_id = 'base_link'
        return msg, "frame_id must be 'world'"
    if name == 'names':
        msg.joint_names = msg.joint_names[:-1] + ['wrong']
        return msg, r"missing \['joint_15'\], unexpected \['wrong'\]"
    if name == 'positions':
        msg.points[0].positions = msg.points[0].positions[:3]
        return msg, 'expected 16 positions .*got 3'
    if name == 'inf':
        msg.points[0].positions[7] = math.inf
        return msg, 'finite, got inf'
    if name == 'huge':
        msg.points[0].positions[7] = -5e4
        return msg, "joint 'joint_7' value -50000.0 exceeds"
    raise AssertionError(name)


@pytest.mark.parametrize('name', ['clip', 'frame', 'names', 'positions', 'inf', 'huge'])
def test_live_target_from_msg_rejects(name: str) -> None:
    msg, match = _live_case(name)
    with pytest.raises(MessageError, match=match):
        conv.live_target_from_msg(msg, joint_names=ROBOT_JOINTS)


# ---------------------------------------------------------------------------- commands


def test_joint_state_and_controller_command() -> None:
    rng = np.random.default_rng(20)
    qpos, qvel = rng.normal(size=16), rng.normal(size=16)
    state = _wire(conv.joint_state_msg(ROBOT_JOINTS, qpos, qvel, stamp_s=STAMP_S))
    assert tuple(state.name) == ROBOT_JOINTS
    np.testing.assert_array_equal(state.position, qpos)
    np.testing.assert_array_equal(state.velocity, qvel)
    assert len(state.effort) == 0
    command = _wire(conv.controller_command_msg(ROBOT_JOINTS, qpos, qvel, stamp_s=STAMP_S,
                                                horizon_s=0.05))
    assert tuple(command.joint_names) == ROBOT_JOINTS and len(command.points) == 1
    np.testing.assert_array_equal(command.points[0].positions, qpos)
    np.testing.assert_array_equal(command.points[0].velocities, qvel)
    assert (command.points[0].time_from_start.sec,
            command.points[0].time_from_start.nanosec) == (0, 50_000_000)
    assert conv.stamp_to_s(command.header.stamp) == conv.stamp_to_s(state.header.stamp)


def test_command_builders_reject_unsafe_values() -> None:
    qpos = np.zeros(16)
    with pytest.raises(MessageError, match=r'expected shape \(16,\), got \(15,\)'):
        conv.joint_state_msg(ROBOT_JOINTS, qpos[:15], qpos, stamp_s=1.0)
    bad = qpos.copy()
    bad[3] = np.nan
    with pytest.raises(MessageError, match='finite'):
        conv.controller_command_msg(ROBOT_JOINTS, bad, qpos, stamp_s=1.0, horizon_s=0.1)
    with pytest.raises(MessageError, match='finite'):
        conv.joint_state_msg(ROBOT_JOINTS, qpos, bad, stamp_s=1.0)
    for horizon in (0.0, -1.0, math.nan):
        with pytest.raises(MessageError, match='horizon_s'):
            conv.controller_command_msg(ROBOT_JOINTS, qpos, qpos, stamp_s=1.0, horizon_s=horizon)


# ---------------------------------------------------------------------------- sim report


def test_sim_report_round_trip() -> None:
    summary = {'max_tracking_error_rad': 0.0123, 'contacts': {'self': 3, 'table': 0},
               'stable': True}
    msg = conv.sim_report_msg(
        robot='allegro', passed=False, reasons=['tracking error 0.3 rad', 'self\ncollision'],
        summary=summary, stamp_s=STAMP_S, motion_stamp_s=STAMP_S - 1.5)
    status = msg.status[0]
    assert (status.name, status.hardware_id, status.level) == (
        'handx/sim_gate', 'allegro', DiagnosticStatus.ERROR)
    assert status.message == 'fail: tracking error 0.3 rad'
    assert [kv.key for kv in status.values][:3] == ['passed', 'motion_stamp', 'reasons']
    report = conv.sim_report_from_msg(_wire(msg))
    assert report == {
        'robot': 'allegro', 'passed': False,
        'reasons': ['tracking error 0.3 rad', 'self collision'],
        'motion_stamp_s': STAMP_S - 1.5,
        'summary': {'max_tracking_error_rad': '0.0123', 'contacts/self': '3',
                    'contacts/table': '0', 'stable': 'True'}}
    passed = conv.sim_report_msg(robot='shadow', passed=True, reasons=[], summary={},
                                 stamp_s=1.0, motion_stamp_s=0.5)
    assert passed.status[0].level == DiagnosticStatus.OK and passed.status[0].message == 'pass'
    assert conv.sim_report_from_msg(passed) == {
        'robot': 'shadow', 'passed': True, 'reasons': [], 'motion_stamp_s': 0.5, 'summary': {}}


def test_sim_report_rejects() -> None:
    with pytest.raises(MessageError, match='reserved'):
        conv.sim_report_msg(robot='allegro', passed=True, reasons=[], summary={'passed': 1},
                            stamp_s=1.0, motion_stamp_s=1.0)
    good = conv.sim_report_msg(robot='allegro', passed=True, reasons=[], summary={'a': 1},
                               stamp_s=1.0, motion_stamp_s=1.0)
    with pytest.raises(MessageError, match="one status named 'handx/sim_gate'"):
        conv.sim_report_from_msg(DiagnosticArray())
    other = DiagnosticArray(status=[DiagnosticStatus(name='motors')])
    with pytest.raises(MessageError, match="got \\['motors'\\]"):
        conv.sim_report_from_msg(other)
    status = good.status[0]
    for key, value, match in (('passed', 'yes', "'passed' must be 'true' or 'false'"),
                              ('motion_stamp', 'soon', "'motion_stamp' must be a float"),
                              ('motion_stamp', 'nan', 'finite')):
        values = [KeyValue(key=kv.key, value=value if kv.key == key else kv.value)
                  for kv in status.values]
        msg = DiagnosticArray(status=[DiagnosticStatus(name='handx/sim_gate', values=values)])
        with pytest.raises(MessageError, match=match):
            conv.sim_report_from_msg(msg)
    msg = DiagnosticArray(status=[DiagnosticStatus(name='handx/sim_gate', values=[])])
    with pytest.raises(MessageError, match='missing values'):
        conv.sim_report_from_msg(msg)


# ---------------------------------------------------------------------------- markers


def _points(marker: Marker) -> np.ndarray:
    return np.asarray([[p.x, p.y, p.z] for p in marker.points])


def test_hand_markers_structure() -> None:
    keypoints = _observed_keypoints(21)
    msg = conv.hand_markers_msg(keypoints, stamp_s=3.0, frame_id='world', ns='gen')
    assert isinstance(msg, MarkerArray)
    markers = _wire(msg).markers
    assert [(m.id, m.type, m.action) for m in markers] == [
        (0, Marker.LINE_LIST, Marker.ADD), (1, Marker.SPHERE_LIST, Marker.ADD),
        (2, Marker.LINE_LIST, Marker.ADD), (3, Marker.SPHERE_LIST, Marker.ADD)]
    assert all(m.ns == 'gen' and m.header.frame_id == 'world' for m in markers)
    bones = _points(markers[2]).reshape(20, 2, 3)
    for k in range(20):
        np.testing.assert_array_equal(bones[k, 0], keypoints[1, k + 1])
        np.testing.assert_array_equal(bones[k, 1], keypoints[1, KEYPOINT_PARENTS[k + 1]])
    np.testing.assert_array_equal(_points(markers[1]), keypoints[0])
    assert markers[0].color.a == 1.0 and markers[0].scale.x > 0.0
    assert markers[1].scale.x == markers[1].scale.y == markers[1].scale.z > 0.0
    assert markers[0].pose.orientation.w == 1.0


def test_hand_markers_delete_an_absent_hand() -> None:
    keypoints = _observed_keypoints(22)
    keypoints[1] = np.nan
    markers = conv.hand_markers_msg(keypoints, stamp_s=3.0).markers
    assert [(m.id, m.action) for m in markers] == [
        (0, Marker.ADD), (1, Marker.ADD), (2, Marker.DELETE), (3, Marker.DELETE)]
    assert markers[0].ns == 'handx' and len(markers[2].points) == 0
    with pytest.raises(MessageError, match=r'shape \(2, 21, 3\)'):
        conv.hand_markers_msg(np.zeros((2, 20, 3)), stamp_s=1.0)


def test_message_error_is_a_handx_error() -> None:
    assert issubclass(MessageError, HandxError) and issubclass(MessageError, ValueError)


def test_oversized_name_lists_are_rejected_quickly() -> None:
    msg = conv.trajectory_to_msg(_trajectory(seed=23, num_frames=3), stamp_s=1.0)
    msg.joint_names = [f'joint_{i}' for i in range(1_000_000)]
    start = time.perf_counter()
    with pytest.raises(MessageError, match='got 1000000') as info:
        conv.trajectory_from_msg(msg, robot='allegro', joint_names=ROBOT_JOINTS)
    msg.points = msg.points[:1]
    with pytest.raises(MessageError, match='got 1000000'):
        conv.live_target_from_msg(msg, joint_names=ROBOT_JOINTS)
    motion = _motion_msg()
    motion.joint_names = msg.joint_names
    with pytest.raises(MessageError, match='expected exactly 44 joint names, got 1000000'):
        conv.motion_from_msg(motion)
    assert time.perf_counter() - start < 2.0 and len(str(info.value)) < 400


def test_sequence_length_reads_the_count_and_enforces_a_bound() -> None:
    from handx_ros.nodes.wire import sequence_length

    data = serialize_message(conv.trajectory_to_msg(_trajectory(seed=24, num_frames=5),
                                                    stamp_s=1.0))
    assert sequence_length(data, string_arrays=1) == 5
    assert sequence_length(data, string_arrays=1, most=5) == 5
    with pytest.raises(MessageError, match='trajectory: expected at most 4 points, got 5'):
        sequence_length(data, string_arrays=1, what='trajectory', most=4)
    with pytest.raises(MessageError, match='truncated'):
        sequence_length(data[:12], string_arrays=1)
