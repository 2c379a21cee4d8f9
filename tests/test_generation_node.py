"""generation_node: prompts to clips, one observed hand to reaction clips, bad input counted.

One node (small DDIM step counts, so generation is quick on a CPU) and one client node run
in this process on a private ROS context in an isolated domain, spun by the test's executor;
messages go through DDS as between processes. The node's worker thread generates and
publishes while the test spins.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion
from node_harness import diagnostics_rejected, inflated_message, undeserializable
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import serialize_message
from rclpy.signals import SignalHandlerOptions
from ros_env import isolated_ros_env
from std_msgs.msg import String
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from handx_gen.errors import ConfigError, HandxError
from handx_gen.hand import default_skeleton, forward_kinematics
from handx_gen.hand.topology import HandSide
from handx_ros import conversions
from handx_ros.graph import parameters_path
from handx_ros.nodes.common import DIAGNOSTICS_TOPIC, counters_from_diagnostics
from handx_ros.nodes.generation_node import (
    MARKERS_TOPIC,
    MIN_STAMP_STEP_S,
    MOTION_TOPIC,
    NODE_NAME,
    OBSERVED_TOPIC,
    PARAMETERS,
    TEXT_TOPIC,
    GenerationNode,
    _resample,
)

FPS = 30.0
OVERRIDES = {
    'steps': 2,  # DDIM steps: quick on a CPU; quality is not tested here
    'seconds': 1.0,
    'reaction_steps': 2,
    'reaction_window_s': 1.0,
    'reaction_stride_s': 0.5,
    'reaction_timeout_s': 0.5,
    'queue_size': 1,
    'torch_threads': 1,
    'seed': 3,
}
STRIDE_FRAMES = 15


class Harness:
    """The node under test, a client node, and an executor spinning both."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.node = GenerationNode(
            context=context,
            parameter_overrides=[Parameter(k, value=v) for k, v in OVERRIDES.items()])
        self.client = rclpy.create_node('handx_test_generation_client', context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.text = self.client.create_publisher(String, TEXT_TOPIC, reliable)
        self.observed = self.client.create_publisher(PoseArray, OBSERVED_TOPIC,
                                                     qos_profile_sensor_data)
        self.motions: list[MultiDOFJointTrajectory] = []
        self.markers: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.client.create_subscription(MultiDOFJointTrajectory, MOTION_TOPIC,
                                        self.motions.append, QoSProfile(
                                            depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.client.create_subscription(MarkerArray, MARKERS_TOPIC, self.markers.append,
                                        reliable)
        self.client.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                        self.diagnostics.append, reliable)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.spin_until(lambda: self.text.get_subscription_count() > 0
                        and self.observed.get_subscription_count() > 0, 20.0)

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f'timed out after {timeout_s} s'
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=max(0.0, min(0.02, deadline - time.monotonic())))

    def counters(self) -> dict[str, Any]:
        return self.node._counters()

    def rejected(self, topic: str) -> int:
        return sum(n for key, n in self.node.rejections.counts.items()
                   if key.startswith(f'{topic}: '))

    def close(self) -> None:
        assert self.node.close(), 'the worker thread did not stop'
        self.executor.shutdown()
        self.client.destroy_node()
        self.node.destroy_node()


@pytest.fixture(scope='module')
def ros() -> Iterator[Harness]:
    import torch

    threads = torch.get_num_threads()
    env = isolated_ros_env(seed=11)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        patch.delenv('ROS_LOCALHOST_ONLY', raising=False)
        patch.setenv('HF_HUB_OFFLINE', '1')
        context = Context()
        rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']),
                   signal_handler_options=SignalHandlerOptions.NO)
        harness = None
        try:
            harness = Harness(context)
            yield harness
        finally:
            if harness is not None:
                harness.close()
            rclpy.shutdown(context=context)
            torch.set_num_threads(threads)


def _one_hand_stream(side: HandSide, num: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """(num,) stamps at 30 Hz and (num, 21, 3) keypoints of a slowly waving hand (smooth, so
    linear interpolation between frames is exact to far below a millimetre)."""
    t = np.arange(num) / FPS
    phase = 2.0 * math.pi * 0.5 * t  # 0.5 Hz
    orient = np.stack([0.3 * np.sin(phase), 0.2 * np.ones_like(t), 0.1 * np.cos(phase)], -1)
    pose = np.zeros((num, 15, 3))
    pose[:, :, 2] = 0.3 * (0.5 + 0.5 * np.sin(phase))[:, None]  # fingers curl and open
    sign = -1.0 if side is HandSide.LEFT else 1.0
    transl = np.stack([sign * 0.15 + 0.03 * np.sin(phase), 0.3 + 0.0 * t,
                       1.0 + 0.02 * np.cos(phase)], -1)
    keypoints = forward_kinematics(orient, pose, transl, default_skeleton(side))
    return t0 + t, keypoints


def _pose_array(keypoints: np.ndarray, stamp_s: float, frame_id: str = 'world') -> PoseArray:
    return conversions.keypoints_to_pose_array(keypoints, stamp_s=stamp_s, frame_id=frame_id)


def _one_hand(side: HandSide, hand: np.ndarray) -> np.ndarray:
    both = np.full((2, 21, 3), np.nan)
    both[side] = hand
    return both


def test_prompt_gives_a_clip_and_markers(ros: Harness) -> None:
    before = len(ros.motions)
    ros.text.publish(String(data='  Both hands clap twice.  '))
    sent_s = ros.node.get_clock().now().nanoseconds * 1e-9
    ros.spin_until(lambda: len(ros.motions) > before, 30.0)
    msg = ros.motions[before]
    motion = conversions.motion_from_msg(msg)
    assert motion.num_frames == round(OVERRIDES['seconds'] * FPS)
    assert motion.fps == pytest.approx(FPS)
    assert np.isfinite(motion.keypoints).all()
    assert sent_s - 1.0 <= conversions.stamp_to_s(msg.header.stamp) <= sent_s + 30.0
    ros.spin_until(lambda: len(ros.markers) > 0, 5.0)
    assert {m.id for m in ros.markers[-1].markers} == {0, 1, 2, 3}
    assert ros.counters()['prompts_done'] >= 1
    # the counters reach /diagnostics
    ros.spin_until(lambda: any(
        int(values.get('prompts_done', '0')) >= 1
        for message in ros.diagnostics
        for values in counters_from_diagnostics(message).values()), 5.0)


def test_empty_and_oversized_prompts_are_rejected_and_counted(ros: Harness) -> None:
    rejected = ros.counters()['prompts_rejected']
    on_topic = ros.rejected(TEXT_TOPIC)
    done = ros.counters()['prompts_done']
    for text in ('', '   \n\t ', 'x' * 10_000):
        ros.text.publish(String(data=text))
    ros.spin_until(lambda: ros.counters()['prompts_rejected'] == rejected + 3, 10.0)
    assert ros.rejected(TEXT_TOPIC) == on_topic + 3
    keys = [key for key in ros.node.rejections.counts if key.startswith(TEXT_TOPIC)]
    assert any('empty' in key for key in keys) and any('2000' in key for key in keys)
    ros.spin_for(0.3)
    assert ros.counters()['prompts_done'] == done  # nothing was generated for them


def test_prompts_beyond_the_queue_are_rejected_never_lost(ros: Harness) -> None:
    counters = ros.counters()
    done, rejected = counters['prompts_done'], counters['prompts_rejected']
    queue_full = sum(n for key, n in ros.node.rejections.counts.items() if 'queue full' in key)
    # six prompts within microseconds: one runs, queue_size (1) waits, the rest are refused
    for i in range(6):
        ros.node._on_text(String(data=f'The right hand waves {i + 1} times.'))
    assert ros.counters()['queue_length'] <= OVERRIDES['queue_size']

    def settled() -> bool:
        c = ros.counters()
        return c['prompts_done'] + c['prompts_rejected'] - done - rejected == 6
    ros.spin_until(settled, 30.0)
    refused = ros.counters()['prompts_rejected'] - rejected
    assert refused >= 1
    assert sum(n for key, n in ros.node.rejections.counts.items()
               if 'queue full' in key) == queue_full + refused
    assert ros.counters()['prompts_failed'] == 0


def test_one_observed_hand_gives_reaction_clips(ros: Harness) -> None:
    side = HandSide.RIGHT
    # Every clip published so far has arrived (one per generation): none of an earlier test
    # is taken for a reaction below.
    counters = ros.counters()
    ros.spin_until(lambda: len(ros.motions) >= counters['prompts_done']
                   + counters['reactions_done'], 10.0)
    before = len(ros.motions)
    done = ros.counters()['reactions_done']
    t0 = ros.node.get_clock().now().nanoseconds * 1e-9
    stamps, keypoints = _one_hand_stream(side, 31, t0)  # 1 s: reactions at 0.5 s and 1 s
    for stamp, hand in zip(stamps, keypoints, strict=True):
        ros.observed.publish(_pose_array(_one_hand(side, hand), float(stamp)))
        ros.spin_for(1.0 / FPS)  # paced as a camera would be (sensor QoS is best effort)
    ros.spin_until(lambda: ros.counters()['reactions_done'] >= done + 2, 30.0)
    assert ros.counters()['reactions_failed'] == 0
    ros.spin_until(lambda: len(ros.motions) >= before + 2, 5.0)
    clips = ros.motions[before:]
    # The clips follow each other frame by frame on the session's grid (the observed stamps
    # here): the first covers the session so far, each later one the frames after it.
    next_frame = 0
    joined = []
    for msg in clips:
        clip = conversions.motion_from_msg(msg)
        stamp = conversions.stamp_to_s(msg.header.stamp)
        last = int(round((stamp - stamps[0]) * FPS))
        assert stamp == pytest.approx(stamps[last], abs=1e-6)  # an observed frame's stamp
        assert last - clip.num_frames + 1 == next_frame, 'a gap or an overlap between clips'
        assert clip.num_frames >= STRIDE_FRAMES
        next_frame = last + 1
        # the clip's last frame is that frame; the given hand is the observed one
        expected = keypoints[last - clip.num_frames + 1:last + 1]  # (n, 21, 3)
        error = np.linalg.norm(clip.keypoints[:, side] - expected, axis=-1).max()
        assert error < 1e-3, f'given hand off by {error * 1e3:.2f} mm'
        other = clip.keypoints[:, side.other]
        assert np.isfinite(other).all()
        assert np.linalg.norm(other - expected, axis=-1).mean() > 0.01  # generated, not copied
        joined.append(other)
    assert conversions.stamp_to_s(clips[-1].header.stamp) == pytest.approx(stamps[-1], abs=1e-6)
    # the reacting hand continues from one clip into the next (the windows are joined; the
    # shipped model at 2 DDIM steps moves its wrist centimetres a frame anyway)
    wrist = np.concatenate(joined)[:, 0]  # (T, 3)
    steps = np.linalg.norm(np.diff(wrist, axis=0), axis=-1)
    seams = np.cumsum([len(o) for o in joined])[:-1] - 1  # step from a clip's last frame
    assert steps[seams].max() <= max(1.5 * np.delete(steps, seams).max(), 0.01)
    latency = ros.counters()['last_reaction_latency_s']
    assert 0.0 < latency < 10.0
    # the stream stops: the session ends and its buffer clears
    assert ros.counters()['reaction_frames_buffered'] > 0
    ros.spin_until(lambda: ros.counters()['reaction_frames_buffered'] == 0, 5.0)
    assert ros.node._session is None


def test_both_hands_ignored_and_bad_frames_rejected_node_alive(ros: Harness) -> None:
    rejected = ros.rejected(OBSERVED_TOPIC)
    ignored = ros.counters()['teleop_frames_ignored']
    sessions = ros.counters()['reaction_sessions']
    t0 = ros.node.get_clock().now().nanoseconds * 1e-9
    _, left = _one_hand_stream(HandSide.LEFT, 1, t0)
    _, right = _one_hand_stream(HandSide.RIGHT, 1, t0)
    both = np.stack([left[0], right[0]])
    ros.observed.publish(_pose_array(both, t0))
    ros.spin_until(lambda: ros.counters()['teleop_frames_ignored'] == ignored + 1, 5.0)
    assert ros.rejected(OBSERVED_TOPIC) == rejected  # plain teleop is not a rejection
    bad = [_pose_array(both, t0, frame_id='camera')]
    message = _pose_array(both, t0)
    message.poses[7].position.x = float('nan')
    bad.append(message)  # a partly NaN hand
    message = _pose_array(both, t0)
    message.poses[3].position.z = 1e9  # absurdly far
    bad.append(message)
    for message in bad:
        ros.observed.publish(message)
        ros.spin_for(0.05)
    ros.spin_until(lambda: ros.rejected(OBSERVED_TOPIC) == rejected + len(bad), 5.0)
    # 10^6 poses (56 MB): handed to the callback directly (serialized, as the raw subscription
    # gets it), since a best-effort transport may drop a message that large before it arrives
    def poses(n: int) -> PoseArray:
        message = PoseArray()
        message.header.frame_id = 'world'
        message.poses = [Pose(position=Point(), orientation=Quaternion(w=1.0))
                         for _ in range(n)]
        return message

    start = time.perf_counter()
    ros.node._on_observed(inflated_message(poses, 1_000_000))
    assert time.perf_counter() - start < 1.0  # refused by its size, not converted
    assert ros.rejected(OBSERVED_TOPIC) == rejected + len(bad) + 1
    assert any('56000028 bytes' in key for key in ros.node.rejections.counts)
    assert ros.counters()['reaction_sessions'] == sessions  # none of them started a session
    # still alive: a prompt is served
    done = ros.counters()['prompts_done']
    ros.text.publish(String(data='Both hands rest.'))
    ros.spin_until(lambda: ros.counters()['prompts_done'] == done + 1, 30.0)


def test_out_of_order_frames_rejected_and_side_switch_restarts(ros: Harness) -> None:
    rejected = ros.rejected(OBSERVED_TOPIC)
    sessions = ros.counters()['reaction_sessions']
    t0 = ros.node.get_clock().now().nanoseconds * 1e-9
    stamps, keypoints = _one_hand_stream(HandSide.LEFT, 3, t0)
    for i in (0, 1, 1, 0):  # the last two repeat and go back in time
        ros.node._on_observed(serialize_message(
            _pose_array(_one_hand(HandSide.LEFT, keypoints[i]), stamps[i])))
    assert ros.rejected(OBSERVED_TOPIC) == rejected + 2
    assert ros.counters()['reaction_frames_buffered'] == 2
    _, right = _one_hand_stream(HandSide.RIGHT, 1, t0)
    ros.node._on_observed(serialize_message(
        _pose_array(_one_hand(HandSide.RIGHT, right[0]), stamps[2])))
    assert ros.counters()['reaction_sessions'] == sessions + 2  # left, then right
    assert ros.counters()['reaction_frames_buffered'] == 1


def test_resample_keeps_observed_frames_and_fills_gaps() -> None:
    stamps = 100.0 + np.array([0, 1, 2, 4, 5]) / FPS  # frame 3 missing
    values = np.arange(5, dtype=float)[:, None, None] * np.ones((5, 21, 3))
    values[3:] += 1.0  # value = frame index at each stamp
    out = _resample(stamps, values, 100.0 + np.arange(6) / FPS)
    assert out.shape == (6, 21, 3)
    np.testing.assert_allclose(out[:, 0, 0], np.arange(6), atol=1e-6)
    np.testing.assert_allclose(_resample(stamps, values, 100.0 + np.array([2.5, 7]) / FPS)[
        :, 0, 0], [2.5, 5], atol=1e-6)  # between frames, and held after the last


@pytest.mark.parametrize('overrides', [
    {'model': 'gan'},
    {'queue_size': 0},
    {'reaction_stride_s': 3.0},  # longer than the window
    {'seconds': 'long'},
    {'initial_prompt': 'x' * 3000},
])
def test_bad_parameters_stop_the_node_at_start(ros: Harness, overrides: dict[str, Any]
                                               ) -> None:
    with pytest.raises(ConfigError) if 'initial_prompt' not in overrides \
            else pytest.raises(HandxError):
        GenerationNode('handx_generation_bad', context=ros.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in overrides.items()])


def test_bad_checkpoint_stops_the_node_at_start(ros: Harness, tmp_path: Any) -> None:
    bad = tmp_path / 'model.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(HandxError, match='model.pt'):
        GenerationNode('handx_generation_bad', context=ros.context, parameter_overrides=[
            Parameter('diffusion_checkpoint', value=str(bad))])


def test_parameter_file_section_matches_the_node_defaults() -> None:
    import yaml

    section = yaml.safe_load(parameters_path().read_text())[NODE_NAME]['ros__parameters']
    assert section == PARAMETERS
    assert {k: type(v) for k, v in section.items()} == {k: type(v) for k, v in PARAMETERS.items()}


def test_bytes_that_do_not_deserialize_are_rejected_and_counted_and_the_node_lives(
        ros: Harness) -> None:
    """Issue 21, 1: truncated and random bytes on both subscribed topics are counted
    rejections (on /diagnostics too); a prompt is still served."""
    t0 = ros.node.get_clock().now().nanoseconds * 1e-9
    _, right = _one_hand_stream(HandSide.RIGHT, 1, t0)
    prompts = undeserializable(String(data='Both hands clap.'), seed=3)
    frames = undeserializable(_pose_array(_one_hand(HandSide.RIGHT, right[0]), t0), seed=4)
    on_text, on_observed = ros.rejected(TEXT_TOPIC), ros.rejected(OBSERVED_TOPIC)
    total = ros.node.rejections.total
    received = ros.counters()['prompts_received']
    for payload in prompts:
        ros.text.publish(payload)
        ros.spin_for(0.01)
    for payload in frames:
        ros.observed.publish(payload)  # best effort: some may be lost on the way
        ros.spin_for(0.02)
    ros.spin_until(lambda: ros.rejected(TEXT_TOPIC) == on_text + len(prompts)
                   and ros.rejected(OBSERVED_TOPIC) > on_observed, 20.0)
    assert ros.counters()['prompts_received'] == received + len(prompts)
    assert any('cannot deserialize' in key for key in ros.node.rejections.counts)
    name = ros.node.get_fully_qualified_name()
    ros.spin_until(lambda: diagnostics_rejected(ros.diagnostics, name)
                   >= total + len(prompts) + 1, 5.0)
    done = ros.counters()['prompts_done']
    ros.text.publish(String(data='Both hands rest.'))
    ros.spin_until(lambda: ros.counters()['prompts_done'] == done + 1, 30.0)


def test_a_burst_of_prompts_is_received_or_counted(ros: Harness) -> None:
    """Issue 21, 8: 500 prompts published at once used to be overwritten in the reader's
    history (depth 10) before the node saw them; each is now received, and each is either
    queued or rejected and counted."""
    burst = 500
    publisher = ros.client.create_publisher(String, TEXT_TOPIC, QoSProfile(
        depth=burst, reliability=ReliabilityPolicy.RELIABLE))
    ros.spin_until(lambda: publisher.get_subscription_count() > 0, 10.0)
    c = ros.counters()
    received, rejected, accepted = (c['prompts_received'], c['prompts_rejected'],
                                    ros.node._prompt_count)
    queue_full = sum(n for k, n in ros.node.rejections.counts.items() if 'queue full' in k)
    for i in range(burst):
        publisher.publish(String(data=f'The left hand taps {i} times.'))
    ros.spin_until(lambda: ros.counters()['prompts_received'] == received + burst, 30.0)
    refused = ros.counters()['prompts_rejected'] - rejected
    assert refused + ros.node._prompt_count - accepted == burst
    assert sum(n for k, n in ros.node.rejections.counts.items()
               if 'queue full' in k) == queue_full + refused
    ros.client.destroy_publisher(publisher)


def test_crawling_stamps_are_rejected_and_the_buffer_is_bounded(ros: Harness) -> None:
    """Issue 21, 4: a one-hand stream whose stamps advance 1 us a frame never left the
    window and grew the buffer without bound; such frames are rejected and counted now, and
    the buffer is bounded by frame count as well."""
    ros.spin_until(lambda: ros.node._session is None, 5.0)
    side = HandSide.LEFT
    _, keypoints = _one_hand_stream(side, 1, 0.0)
    message = _pose_array(_one_hand(side, keypoints[0]), 0.0)
    t0 = ros.node.get_clock().now().nanoseconds * 1e-9
    rejected = ros.rejected(OBSERVED_TOPIC)
    for i in range(300):
        message.header.stamp = conversions.stamp_from_s(t0 + i * 1e-6)
        ros.node._on_observed(serialize_message(message))
    assert ros.counters()['reaction_frames_buffered'] == 1
    assert ros.rejected(OBSERVED_TOPIC) == rejected + 299
    assert any('less than 1 ms' in key for key in ros.node.rejections.counts)
    # Stamps just far enough apart: kept by stamp time, never past the count bound.
    bound = ros.node.buffer_frames
    assert ros.node._session.stamps_s.maxlen == bound
    t1 = t0 + 1.0
    for i in range(bound + 100):
        message.header.stamp = conversions.stamp_from_s(t1 + i * 1.01 * MIN_STAMP_STEP_S)
        ros.node._on_observed(serialize_message(message))
    assert 0 < ros.counters()['reaction_frames_buffered'] <= bound
    ros.spin_until(lambda: ros.node._session is None, 5.0)  # the stream stopped
