"""retargeting_node: clips to robot trajectories, teleop frames to live targets, bad messages
rejected and counted, an unknown robot refused at start (in-process nodes, a private domain)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from node_harness import (  # noqa: E402
    diagnostics_rejected,
    inflated_message,
    ros_harness,
    undeserializable,
)
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_env import isolated_ros_env  # noqa: E402
from trajectory_msgs.msg import (  # noqa: E402
    JointTrajectory,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)

from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip  # noqa: E402
from handx_gen.hand.topology import HandSide  # noqa: E402
from handx_ros import conversions  # noqa: E402
from handx_ros.nodes.common import counters_from_diagnostics  # noqa: E402
from handx_ros.nodes.retargeting_node import (  # noqa: E402
    MOTION_TOPIC,
    OBSERVED_TOPIC,
    PARAMETERS,
    TRAJECTORY_TOPIC,
    RetargetingNode,
)
from handx_ros.retarget import (  # noqa: E402
    RetargetConfig,
    build_retargeter,
    wrist_frames_from_keypoints,
)

pytestmark = pytest.mark.ros

ROBOT = 'allegro'
STAMP_S = 1234.5


@pytest.fixture(scope='module')
def motion():
    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 2.0), primitives_per_clip=(1, 1))
    return synthesize_clip(config, 1, 1, motion_types=['wave']).motion  # 60 frames


@pytest.fixture(scope='module')
def ros():
    with ros_harness(seed=71) as harness:
        node = harness.add(RetargetingNode(context=harness.context))
        trajectories = harness.record(JointTrajectory, TRAJECTORY_TOPIC)
        diagnostics = harness.record(DiagnosticArray, '/diagnostics')
        motion_pub = harness.publisher(MultiDOFJointTrajectory, MOTION_TOPIC)
        observed_pub = harness.publisher(PoseArray, OBSERVED_TOPIC, qos_profile_sensor_data)
        harness.connect(motion_pub)
        harness.connect(observed_pub)
        harness.wait_for(lambda: harness.client.count_publishers(TRAJECTORY_TOPIC) > 0,
                         what='the trajectory publisher')
        yield harness, node, trajectories, diagnostics, motion_pub, observed_pub


def _clips(recorder) -> list[JointTrajectory]:
    return [m for m in recorder.messages if len(m.points) >= 2]


def _live(recorder) -> list[JointTrajectory]:
    return [m for m in recorder.messages if len(m.points) == 1]


def _motion_rejections(node, topic: str) -> int:
    return sum(n for key, n in node.rejections.counts.items() if key.startswith(f'{topic}: '))


def test_clip_becomes_a_trajectory_with_the_robots_joint_names(ros, motion):
    harness, node, trajectories, diagnostics, motion_pub, _ = ros
    before = len(_clips(trajectories))
    motion_pub.publish(conversions.motion_to_msg(motion, stamp_s=STAMP_S))
    harness.wait_for(lambda: len(_clips(trajectories)) > before, what='a robot trajectory')
    message = _clips(trajectories)[-1]
    retargeter = build_retargeter(ROBOT, fps=motion.fps)  # as the node: contacts kept
    assert list(message.joint_names) == list(retargeter.joint_names) + list(
        conversions.BASE_JOINT_NAMES)
    assert conversions.stamp_to_s(message.header.stamp) == STAMP_S
    assert message.header.frame_id == 'world'
    trajectory = conversions.trajectory_from_msg(message, robot=ROBOT,
                                                 joint_names=retargeter.joint_names)
    assert trajectory.num_frames == motion.num_frames and trajectory.fps == motion.fps
    expected = retargeter.retarget_motion(
        conversions.motion_from_msg(conversions.motion_to_msg(motion, stamp_s=0.0)))
    np.testing.assert_allclose(trajectory.qpos, expected.qpos, atol=1e-9)
    np.testing.assert_allclose(trajectory.base_poses[..., :3], expected.base_poses[..., :3],
                               atol=1e-9)
    harness.wait_for(lambda: node._counters()['clips_retargeted'] >= 1, what='the counter')
    assert node._counters()['last_retarget_s'] > 0.0
    # The counters reach /diagnostics.
    name = node.get_fully_qualified_name()

    def published() -> dict[str, str] | None:
        for message in reversed(diagnostics.messages):
            values = counters_from_diagnostics(message).get(name)
            if values and int(values['clips_retargeted']) >= 1:
                return values
        return None

    values = harness.wait_for(published, what='clips_retargeted on /diagnostics')
    assert {'teleop_frames', 'teleop_lagging_frames', 'last_retarget_s', 'rejected'} <= set(
        values)


def _huge_motion_bytes(points: int) -> bytes:
    """A serialized motion message with ``points`` empty points."""
    def make(n: int) -> MultiDOFJointTrajectory:
        message = MultiDOFJointTrajectory()
        message.header.frame_id = 'world'
        message.joint_names = list(conversions.MOTION_JOINT_NAMES)
        message.points = [MultiDOFJointTrajectoryPoint() for _ in range(n)]
        return message

    return inflated_message(make, points)


def test_bad_motions_are_rejected_and_counted_and_the_node_lives(ros, motion):
    harness, node, trajectories, _, motion_pub, _ = ros
    rejected = _motion_rejections(node, MOTION_TOPIC)
    good = conversions.motion_to_msg(motion, stamp_s=STAMP_S)
    nan = conversions.motion_to_msg(motion, stamp_s=STAMP_S)
    nan.points[10].transforms[3].translation.x = float('nan')
    wrong_frame = conversions.motion_to_msg(motion, stamp_s=STAMP_S, frame_id='camera')
    for bad in (nan, wrong_frame):
        motion_pub.publish(bad)
    motion_pub.publish(_huge_motion_bytes(10**6))  # 20 MB, a million points
    harness.wait_for(lambda: _motion_rejections(node, MOTION_TOPIC) >= rejected + 3,
                     timeout_s=45.0, what='three rejections')
    keys = [key for key in node.rejections.counts if key.startswith(f'{MOTION_TOPIC}: ')]
    text = ' '.join(keys).lower()
    assert 'nan' in text or 'finite' in text
    assert 'camera' in text
    assert '1000000' in text
    # Still alive: a good clip goes through.
    before = len(_clips(trajectories))
    motion_pub.publish(good)
    harness.wait_for(lambda: len(_clips(trajectories)) > before, what='a trajectory')
    assert _motion_rejections(node, MOTION_TOPIC) == rejected + 3


def _frame_message(keypoints: np.ndarray, stamp_s: float) -> PoseArray:
    return conversions.keypoints_to_pose_array(keypoints, stamp_s=stamp_s)


def _send_until(harness, publisher, keypoints: np.ndarray, stamp_s: float, done) -> None:
    """Publish the frame (best-effort QoS) again, 10 ms later each time, until ``done()``."""
    for attempt in range(20):
        publisher.publish(_frame_message(keypoints, stamp_s + 0.01 * attempt))
        try:
            harness.wait_for(done, timeout_s=1.0)
            return
        except AssertionError:
            continue
    raise AssertionError('no answer to 20 observed frames')


def test_teleop_frame_becomes_a_live_target(ros, motion):
    harness, node, trajectories, _, _, observed_pub = ros
    keypoints = np.asarray(motion.keypoints[20], dtype=np.float64)  # (2, 21, 3)
    before = len(_live(trajectories))
    frames_before = node._counters()['teleop_frames']
    stamp = 2000.25
    _send_until(harness, observed_pub, keypoints, stamp, lambda: len(_live(trajectories)) >
                before)
    message = _live(trajectories)[before]
    assert conversions.stamp_to_s(message.header.stamp) == stamp
    retargeter = build_retargeter(ROBOT, RetargetConfig(  # as the node's
        prediction=0.0, max_iterations=PARAMETERS['teleop_max_iterations']))
    stamp_s, qpos = conversions.live_target_from_msg(message,
                                                     joint_names=retargeter.joint_names)
    R = np.empty((2, 3, 3))
    p = np.empty((2, 3))
    for side in HandSide:
        R[side], p[side] = wrist_frames_from_keypoints(keypoints[side], side)
    expected = retargeter.step(keypoints, R, p)  # a fresh warm start, as the node's first
    np.testing.assert_allclose(qpos, expected.qpos, atol=1e-9)
    assert list(message.joint_names)[-12:] == list(conversions.BASE_JOINT_NAMES)
    assert node._counters()['teleop_frames'] > frames_before


def test_one_hand_frames_are_ignored_and_bad_frames_counted(ros, motion):
    harness, node, trajectories, _, _, observed_pub = ros
    keypoints = np.asarray(motion.keypoints[30], dtype=np.float64)
    one_hand = keypoints.copy()
    one_hand[HandSide.LEFT] = np.nan  # the generation node's reaction input
    bad = _frame_message(keypoints, 3000.0)
    bad.poses = bad.poses[:10]  # 10 poses, not 42
    rejected = _motion_rejections(node, OBSERVED_TOPIC)
    frames_before = node._counters()['teleop_frames']
    live_before = len(_live(trajectories))
    for k in range(10):
        observed_pub.publish(_frame_message(one_hand, 3000.0 + 0.03 * k))
        observed_pub.publish(bad)
    harness.wait_for(lambda: _motion_rejections(node, OBSERVED_TOPIC) > rejected,
                     what='a rejected frame')
    # Then a two-hand frame, which is answered: everything before it has been handled.
    _send_until(harness, observed_pub, keypoints, 3001.0,
                lambda: len(_live(trajectories)) > live_before)
    live = _live(trajectories)[live_before:]
    assert live and all(conversions.stamp_to_s(m.header.stamp) >= 3001.0 for m in live)
    assert node._counters()['teleop_frames'] == frames_before + len(live)
    keys = [key for key in node.rejections.counts if key.startswith(f'{OBSERVED_TOPIC}: ')]
    assert keys and all('42' in key for key in keys)


def test_unknown_robot_is_a_clear_error_at_start():
    env = isolated_ros_env(seed=72)
    process = subprocess.run(
        [sys.executable, '-m', 'handx_ros.nodes.retargeting_node', '--ros-args', '-p',
         'robot:=no_such_robot'], env=env, capture_output=True, text=True, timeout=60)
    output = process.stdout + process.stderr
    assert process.returncode == 1, output
    assert 'no_such_robot' in output and 'allegro' in output  # the valid ones listed
    assert 'Traceback' not in output


def test_bytes_that_do_not_deserialize_are_rejected_and_counted_and_the_node_lives(ros, motion):
    """Issue 21, 1: truncated and random bytes on both subscribed topics are counted
    rejections (on /diagnostics too); the node goes on retargeting."""
    harness, node, trajectories, diagnostics, motion_pub, observed_pub = ros
    clip = conversions.motion_to_msg(motion, stamp_s=STAMP_S)
    frame = _frame_message(np.asarray(motion.keypoints[0], dtype=np.float64), 4000.0)
    motions = undeserializable(clip, seed=1)
    frames = undeserializable(frame, seed=2)
    on_motion = _motion_rejections(node, MOTION_TOPIC)
    on_observed = _motion_rejections(node, OBSERVED_TOPIC)
    total = node.rejections.total
    for payload in motions:
        motion_pub.publish(payload)
        time.sleep(0.02)  # within the histories (depth 10)
    for payload in frames:
        observed_pub.publish(payload)  # best effort: some may be lost on the way
        time.sleep(0.02)
    harness.wait_for(lambda: _motion_rejections(node, MOTION_TOPIC) == on_motion + len(motions)
                     and _motion_rejections(node, OBSERVED_TOPIC) > on_observed,
                     timeout_s=30.0, what='the rejections')
    assert _motion_rejections(node, OBSERVED_TOPIC) <= on_observed + len(frames)
    assert any('cannot deserialize' in key for key in node.rejections.counts)
    name = node.get_fully_qualified_name()
    harness.wait_for(lambda: diagnostics_rejected(diagnostics.messages, name)
                     >= total + len(motions) + 1, what='the rejections on /diagnostics')
    before = len(_clips(trajectories))
    motion_pub.publish(clip)
    harness.wait_for(lambda: len(_clips(trajectories)) > before, what='a trajectory')


def test_a_two_frame_clip_lasting_an_hour_is_refused_not_passed_on(ros, motion):
    """Issue 21, 3: the clip that tied up the gate (two frames an hour apart) used to be
    retargeted with its rate passed through; it is refused here now."""
    harness, node, trajectories, _, motion_pub, _ = ros
    message = conversions.motion_to_msg(motion[:2], stamp_s=STAMP_S)
    message.points[1].time_from_start.sec = 3600  # 1/3600 fps
    message.points[1].time_from_start.nanosec = 0
    rejected = _motion_rejections(node, MOTION_TOPIC)
    before = len(_clips(trajectories))
    motion_pub.publish(message)
    harness.wait_for(lambda: _motion_rejections(node, MOTION_TOPIC) > rejected,
                     what='a rejection')
    keys = ' '.join(k for k in node.rejections.counts if k.startswith(f'{MOTION_TOPIC}: '))
    assert 'frames per second' in keys, keys
    time.sleep(0.3)
    assert len(_clips(trajectories)) == before
