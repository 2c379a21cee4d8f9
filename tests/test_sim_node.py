"""sim_node: the MuJoCo gate in front of the robot, and the safe command stream (in-process
nodes in a private domain): a passing clip streams within limits at the rate, a failing one
streams nothing but a report with the reasons, live targets stream, stale input halts
smoothly and fresh input resumes, bad messages are rejected and counted."""

from __future__ import annotations

import dataclasses
import struct
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from node_harness import (  # noqa: E402
    diagnostics_rejected,
    ros_harness,
    undeserializable,
)
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip  # noqa: E402
from handx_gen.errors import SimulationError  # noqa: E402
from handx_ros import conversions  # noqa: E402
from handx_ros.nodes.common import DIAGNOSTICS_TOPIC, run_node  # noqa: E402
from handx_ros.nodes.sim_node import (  # noqa: E402
    JOINT_COMMANDS_TOPIC,
    SIM_REPORT_TOPIC,
    TRAJECTORY_TOPIC,
    SimNode,
)
from handx_ros.retarget import RobotTrajectory, build_retargeter  # noqa: E402
from handx_ros.sim import SafetyConfig, build_scene, simulate  # noqa: E402

pytestmark = pytest.mark.ros

ROBOT = 'allegro'
RATE_HZ = 100.0
DT_S = 1.0 / RATE_HZ
SAFETY = SafetyConfig()  # config/safety.yaml holds the defaults (a safety test keeps it so)
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclasses.dataclass
class Robot:
    names: tuple[str, ...]
    safe_lower: np.ndarray  # (n,)
    safe_upper: np.ndarray  # (n,)
    neutral: np.ndarray  # (n,)
    max_velocity: np.ndarray  # (n,) the robot model's, what the safety filter bounds
    max_acceleration: np.ndarray  # (n,)


@pytest.fixture(scope='module')
def robot() -> Robot:
    retargeter = build_retargeter(ROBOT)
    lower, upper = retargeter.joint_limits()
    margin = SAFETY.limit_margin_rad
    return Robot(retargeter.joint_names, lower + margin, upper - margin,
                 np.clip(retargeter.neutral_qpos(), lower + margin, upper - margin),
                 retargeter.joint_velocity_limits(), retargeter.joint_acceleration_limits())


@pytest.fixture(scope='module')
def clips():
    """A wave retargeted onto the Allegro pair (passes the gate), and the same clip with the
    right hand driven into the left for its middle third (fails it)."""
    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 2.0), primitives_per_clip=(1, 1))
    motion = synthesize_clip(config, 1, 1, motion_types=['wave']).motion
    trajectory = build_retargeter(ROBOT, fps=motion.fps).retarget_motion(motion)
    poses = trajectory.base_poses.copy()
    frames = np.arange(trajectory.num_frames)
    start, stop = trajectory.num_frames // 3, 2 * trajectory.num_frames // 3
    weight = np.clip(np.minimum(frames - start + 5, stop + 5 - frames) / 5.0, 0.0, 1.0)
    poses[:, 1, :3] += weight[:, None] * (poses[:, 0, :3] - poses[:, 1, :3])
    return trajectory, dataclasses.replace(trajectory, base_poses=poses)


@pytest.fixture(scope='module')
def ros():
    with ros_harness(seed=73) as harness:
        node = harness.add(SimNode(context=harness.context, parameter_overrides=[
            Parameter('rate_hz', value=RATE_HZ)]))
        states = harness.record(JointState, JOINT_COMMANDS_TOPIC)
        commands = harness.record(JointTrajectory, f'/{ROBOT}/joint_trajectory')
        reports = harness.record(DiagnosticArray, SIM_REPORT_TOPIC, LATCHED)
        publisher = harness.publisher(JointTrajectory, TRAJECTORY_TOPIC)
        harness.connect(publisher)
        harness.wait_for(lambda: len(states) >= 5 and len(commands) >= 5,
                         what='the command stream')
        yield harness, node, publisher, states, commands, reports


def _arrays(messages: list[JointState]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stamps = np.array([conversions.stamp_to_s(m.header.stamp) for m in messages])  # (k,)
    qpos = np.array([list(m.position) for m in messages])  # (k, n)
    qvel = np.array([list(m.velocity) for m in messages])  # (k, n)
    return stamps, qpos, qvel


def _at_rest(states, count: int = 5) -> bool:
    messages = states.messages[-count:]
    return len(messages) == count and all(
        not np.any(np.asarray(m.velocity)) and list(m.position) == list(messages[0].position)
        for m in messages)


def _check_safe(robot: Robot, messages: list[JointState]) -> None:
    """Stamps strictly increasing; inside the safe range, velocity and acceleration bounded over
    the time between the stamps, every value finite, and the published velocity the one
    actually done."""
    _, qpos, qvel = _arrays(messages)
    ns = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in messages])
    dt = np.diff(ns)[:, None] * 1e-9  # (k-1, 1) exact to the nanosecond of the stamps
    assert np.all(dt > 0.0)
    assert np.all(np.isfinite(qpos)) and np.all(np.isfinite(qvel))
    assert np.all(qpos >= robot.safe_lower - 1e-9) and np.all(qpos <= robot.safe_upper + 1e-9)
    assert np.all(np.abs(qvel) <= robot.max_velocity + 1e-9)
    assert np.all(np.abs(np.diff(qvel, axis=0)) <= robot.max_acceleration * dt + 1e-6)
    # Stamps are rounded to the nanosecond: a position is known to max_velocity * 1 ns.
    np.testing.assert_allclose(np.diff(qpos, axis=0), qvel[1:] * dt, atol=1e-8)


def _reports(reports) -> list[dict]:
    return [conversions.sim_report_from_msg(m) for m in reports.messages]


def test_before_any_input_the_robot_holds_its_neutral_pose(ros, robot):
    _, node, _, states, commands, _ = ros
    first = states.messages[:5]
    assert all(tuple(m.name) == robot.names for m in first)  # controller names, no bases
    np.testing.assert_array_equal(np.array([list(m.position) for m in first]),
                                  np.tile(robot.neutral, (len(first), 1)))
    assert all(not np.any(np.asarray(m.velocity)) for m in first)
    command = commands.messages[0]
    assert tuple(command.joint_names) == robot.names and len(command.points) == 1
    assert command.points[0].time_from_start.nanosec == int(2 * DT_S * 1e9)  # two ticks ahead
    assert node._counters()['stale_ticks'] >= 5
    assert node._counters()['skipped_ticks'] == 0  # the node's clock only moves forward


def test_a_passing_clip_streams_at_the_rate_inside_the_limits(ros, robot, clips):
    harness, node, publisher, states, commands, reports = ros
    trajectory, _ = clips
    stamp_s = 555.5
    start = len(states)
    publisher.publish(conversions.trajectory_to_msg(trajectory, stamp_s=stamp_s))
    report = harness.wait_for(lambda: _reports(reports), what='a sim report')[-1]
    assert report['passed'] and report['reasons'] == [], report
    assert report['motion_stamp_s'] == stamp_s and report['robot'] == ROBOT
    assert float(report['summary']['joint_error_p95_rad']) <= 0.1
    harness.wait_for(lambda: node._counters()['playing'], what='playback to start')
    harness.wait_for(lambda: not node._counters()['playing'], timeout_s=30.0,
                     what='playback to end')
    harness.wait_for(lambda: _at_rest(states), what='the robot at rest')
    played = states.messages[start:]
    stamps, qpos, _ = _arrays(played)
    _check_safe(robot, played)
    assert all(tuple(m.name) == robot.names for m in played)
    rate_hz = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 0.8 * RATE_HZ <= rate_hz <= 1.05 * RATE_HZ  # streamed at rate_hz (a busy CPU skips)
    assert len(played) >= 0.8 * RATE_HZ * trajectory.duration_s
    # It played the clip: moved, and came to rest on the clip's last frame.
    last = trajectory.qpos[-1, [trajectory.joint_index(n) for n in robot.names]]
    assert np.ptp(qpos, axis=0).max() > 0.1
    np.testing.assert_allclose(qpos[-1], np.clip(last, robot.safe_lower, robot.safe_upper),
                               atol=0.02)
    counters = node._counters()
    assert counters['clips_passed'] == 1 and counters['clips_failed'] == 0
    assert counters['queue_length'] == 0 and counters['gate_queue_length'] == 0
    controller = commands.messages[-1]
    assert tuple(controller.joint_names) == robot.names
    assert list(controller.points[0].positions) == list(played[-1].position)


def test_a_clip_too_fast_for_the_robot_is_retimed_gated_and_reported(ros, robot, clips):
    harness, node, publisher, states, _, reports = ros
    trajectory, _ = clips
    # Three times as fast, and a finger beating at 4 Hz (0.25 rad: 6.3 rad/s, within its
    # 7 rad/s, but 158 rad/s^2 against its 100): feasible only slower.
    fast = dataclasses.replace(trajectory[::3], fps=trajectory.fps)
    qpos = np.array(fast.qpos)
    j = fast.joint_index('allegro_right/index_mcp')
    t = np.arange(fast.num_frames) / fast.fps
    qpos[:, j] = 0.6 + 0.25 * np.sin(2 * np.pi * 4.0 * t)
    fast = dataclasses.replace(fast, qpos=qpos)
    harness.wait_for(lambda: _at_rest(states), what='the robot at rest')
    before, retimed = len(_reports(reports)), node._counters()['clips_retimed']
    publisher.publish(conversions.trajectory_to_msg(fast, stamp_s=888.5))
    report = harness.wait_for(lambda: _reports(reports)[before:], what='a sim report')[0]
    summary = report['summary']
    assert float(summary['retimed_from_s']) == pytest.approx(fast.duration_s, abs=1e-3)
    assert float(summary['retimed_to_s']) > fast.duration_s
    assert float(summary['retime_factor']) > 1.0
    assert report['passed'], report['reasons']
    assert node._counters()['clips_retimed'] == retimed + 1
    # Played to its end (not merely not started yet), so that the next test starts at rest.
    harness.wait_for(lambda: node._counters()['playing'], what='playback to start')
    harness.wait_for(lambda: not node._counters()['playing']
                     and not node._counters()['queue_length'], timeout_s=60.0,
                     what='playback to end')


def test_a_failing_clip_streams_nothing_but_a_report_with_the_reasons(ros, clips):
    harness, node, publisher, states, _, reports = ros
    _, pushed = clips
    harness.wait_for(lambda: _at_rest(states), what='the robot at rest')
    before = len(_reports(reports))
    failed = node._counters()['clips_failed']
    publisher.publish(conversions.trajectory_to_msg(pushed, stamp_s=777.25))
    report = harness.wait_for(lambda: _reports(reports)[before:], what='a sim report')[0]
    assert not report['passed'] and report['motion_stamp_s'] == 777.25
    assert any('commanded penetration' in reason for reason in report['reasons'])
    start = len(states)
    harness.wait_for(lambda: len(states) >= start + 50, what='50 more commands')
    held = states.messages[start - 1:]
    assert all(list(m.position) == list(held[0].position) for m in held)
    assert all(not np.any(np.asarray(m.velocity)) for m in held)
    counters = node._counters()
    assert counters['clips_failed'] == failed + 1 and counters['playing'] == 0
    assert counters['queue_length'] == 0


def _live_target(names: tuple[str, ...], qpos: np.ndarray, frame_id: str = 'world'
                 ) -> JointTrajectory:
    message = JointTrajectory()
    message.header.stamp = conversions.stamp_from_s(time.time())
    message.header.frame_id = frame_id
    message.joint_names = list(names)
    message.points = [JointTrajectoryPoint(positions=qpos.tolist())]
    return message


def _stream_live(publisher, robot: Robot, seconds: float, phase: float = 0.0) -> None:
    """Live targets at 50 Hz sweeping every joint (~1 rad/s)."""
    middle = (robot.safe_lower + robot.safe_upper) / 2
    half = (robot.safe_upper - robot.safe_lower) / 2
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        t = time.monotonic() - start + phase
        target = middle + 0.3 * half * np.sin(2 * np.pi * 0.7 * t)
        publisher.publish(_live_target(robot.names, target))
        time.sleep(0.02)


def test_live_targets_stream_stale_input_halts_smoothly_and_fresh_input_resumes(ros, robot):
    harness, node, publisher, states, _, _ = ros
    live = node._counters()['live_targets']
    stale = node._counters()['stale_ticks']
    start = len(states)
    _stream_live(publisher, robot, 1.5)
    # The robot stops on the last target; the watchdog then marks the input stale.
    harness.wait_for(lambda: node._counters()['stale_ticks'] > stale, what='stale input')
    harness.wait_for(lambda: _at_rest(states, 10), timeout_s=10.0, what='a halt')
    messages = states.messages[start:]
    _check_safe(robot, messages)  # no jump anywhere: velocity and acceleration bounded
    stamps, _, qvel = _arrays(messages)
    speed = np.abs(qvel).max(axis=1)  # (k,)
    moving = np.flatnonzero(speed > 0.3)
    assert moving.size > 0.5 * RATE_HZ  # it followed the targets
    # Halted within the watchdog timeout after the last target, then a braking ramp over the
    # real time, each ending at most one tick interval late.
    after = np.flatnonzero(stamps > node.last_live_target_s)
    halted = after[speed[after] == 0.0][0]
    ramp_s = speed[after].max() / robot.max_acceleration.min()
    interval_s = max(DT_S, float(np.diff(stamps[after[0] - 1:halted + 1]).max()))
    assert stamps[halted] - node.last_live_target_s \
        <= SAFETY.watchdog_timeout_s + ramp_s + 2 * interval_s + 1e-6
    counters = node._counters()
    assert counters['live_targets'] > live + 30
    # Fresh input resumes.
    start = len(states)
    _stream_live(publisher, robot, 0.4, phase=0.3)
    resumed = states.messages[start:]
    assert max(np.abs(np.asarray(m.velocity)).max() for m in resumed) > 0.1
    _check_safe(robot, resumed)


def test_bad_trajectories_are_rejected_and_counted_and_the_stream_goes_on(ros, robot, clips):
    harness, node, publisher, states, _, _ = ros
    trajectory, _ = clips

    def rejected() -> int:
        return sum(n for key, n in node.rejections.counts.items()
                   if key.startswith(f'{TRAJECTORY_TOPIC}: '))

    before = rejected()
    nan = conversions.trajectory_to_msg(trajectory, stamp_s=1.0)
    nan.points[5].positions[3] = float('nan')
    renamed = conversions.trajectory_to_msg(trajectory, stamp_s=1.0)
    renamed.joint_names[0] = 'elbow'
    long = conversions.trajectory_to_msg(trajectory, stamp_s=1.0)
    long.points = [long.points[0]] * (conversions.MAX_TRAJECTORY_POINTS + 1)
    wrong_frame = _live_target(robot.names, robot.neutral, frame_id='camera')
    wild = _live_target(robot.names, robot.neutral + 3.0)  # far outside the limits
    for message in (nan, renamed, long, wrong_frame, wild):
        publisher.publish(message)
    harness.wait_for(lambda: rejected() >= before + 5, what='five rejections')
    text = ' '.join(key for key in node.rejections.counts if key.startswith(TRAJECTORY_TOPIC))
    assert 'camera' in text and 'joint names' in text and 'out_of_range' in text
    assert '9001' in text and 'finite' in text
    sent = node._counters()['commands_sent']
    harness.wait_for(lambda: node._counters()['commands_sent'] >= sent + 20,
                     what='the stream going on')
    counters = node._counters()
    assert counters['safety/rejected_input'] >= 1
    assert counters['queue_length'] == 0 and counters['gate_queue_length'] == 0
    assert rejected() == before + 5


def _rejected(node) -> int:
    return sum(n for key, n in node.rejections.counts.items()
               if key.startswith(f'{TRAJECTORY_TOPIC}: '))


def test_bytes_that_do_not_deserialize_are_rejected_and_counted_and_the_stream_goes_on(
        ros, robot, clips):
    """Issue 21, 1: a 32-byte one-point trajectory (header, frame 'world', no joint names,
    point count 1, then nothing) ended the executor's spin; now it, truncated clips and random
    bytes are each one counted rejection, on /diagnostics too, and the commands go on."""
    harness, node, publisher, states, _, _ = ros
    trajectory, _ = clips
    diagnostics = harness.record(DiagnosticArray, DIAGNOSTICS_TOPIC)
    one_point = JointTrajectory()
    one_point.header.frame_id = 'world'
    one_point.points = [JointTrajectoryPoint(positions=[0.0])]
    killer = serialize_message(one_point)[:32]
    assert killer[-4:] == struct.pack('<I', 1)  # the point count, then nothing
    payloads = [killer] + undeserializable(conversions.trajectory_to_msg(trajectory, stamp_s=1.0),
                                           seed=5)
    before = _rejected(node)
    sent = node._counters()['commands_sent']
    streamed = len(states)
    for payload in payloads:
        publisher.publish(payload)  # serialized bytes go out as they are
        time.sleep(0.02)  # within the histories (depth 10) of publisher and subscription
    harness.wait_for(lambda: _rejected(node) >= before + len(payloads), timeout_s=30.0,
                     what=f'{len(payloads)} rejections')
    keys = [key for key in node.rejections.counts if 'cannot deserialize' in key]
    assert keys and any('live target' in key for key in keys), keys
    name = node.get_fully_qualified_name()
    harness.wait_for(lambda: diagnostics_rejected(diagnostics.messages, name)
                     >= before + len(payloads), what='the rejections on /diagnostics')
    harness.wait_for(lambda: node._counters()['commands_sent'] >= sent + 50
                     and len(states) >= streamed + 50, what='the stream going on')
    assert _rejected(node) == before + len(payloads)
    assert node._counters()['gate_queue_length'] == 0


def _slowed(trajectory: RobotTrajectory, repeats: int, fps: float) -> JointTrajectory:
    """``trajectory`` repeated ``repeats`` times, at ``fps``."""
    poses = trajectory.base_poses
    return conversions.trajectory_to_msg(dataclasses.replace(
        trajectory, fps=fps, qpos=np.tile(trajectory.qpos, (repeats, 1)), converged=None,
        residual_m=None,
        base_poses=None if poses is None else np.tile(poses, (repeats, 1, 1))), stamp_s=2.0)


def test_a_clip_longer_than_max_clip_duration_is_rejected_before_simulation(ros, clips):
    """Issue 21, 3: a clip is bounded by duration before it is simulated (60 s default)."""
    harness, node, publisher, _, _, reports = ros
    trajectory, _ = clips  # 60 frames
    before, reported = _rejected(node), len(reports)
    slow = _slowed(trajectory, 1, 1.0)
    for i, point in enumerate(slow.points):
        point.time_from_start.sec = 2 * i  # 0.5 fps: refused by conversion
    publisher.publish(slow)
    publisher.publish(_slowed(trajectory, 2, 1.5))  # 120 frames, 80 s: too long to gate
    harness.wait_for(lambda: _rejected(node) >= before + 2, what='two rejections')
    keys = ' '.join(k for k in node.rejections.counts if k.startswith(TRAJECTORY_TOPIC))
    assert 'frames per second' in keys and 'at most 60 s' in keys, keys
    time.sleep(0.2)
    assert len(reports) == reported  # never simulated
    assert node._counters()['gate_queue_length'] == 0


def test_the_gate_stops_a_clip_at_its_wall_time_limit_and_says_so(ros, clips, monkeypatch):
    """Issue 21, 3: the worker's time per clip is bounded; the report names the limit."""
    harness, node, publisher, _, _, reports = ros
    trajectory, _ = clips
    monkeypatch.setitem(node.params, 'max_gate_wall_s', 1e-4)  # read at each clip
    before = len(_reports(reports))
    failed = node._counters()['clips_failed']
    publisher.publish(conversions.trajectory_to_msg(trajectory, stamp_s=3.0))
    report = harness.wait_for(lambda: _reports(reports)[before:], what='a sim report')[0]
    assert not report['passed']
    assert any('wall-time limit of 0.0001 s' in r for r in report['reasons']), report
    assert node._counters()['clips_failed'] == failed + 1
    assert node._counters()['queue_length'] == 0


def test_simulate_raises_past_max_wall_s(robot, clips):
    trajectory, _ = clips
    scene = build_scene(build_retargeter(ROBOT).spec)
    with pytest.raises(SimulationError, match=r'wall-time limit of 0\.001 s .* stopped at frame'):
        simulate(scene, trajectory, max_wall_s=1e-3)
    assert simulate(scene, trajectory, max_wall_s=60.0).stable
    with pytest.raises(SimulationError, match='max_wall_s'):
        simulate(scene, trajectory, max_wall_s=0.0)


def test_a_humanoid_streams_under_its_own_joint_names():
    """``robot:=gr1`` goes through the same node: the GR1's neutral hold streams on
    ``/gr1/joint_trajectory`` with its controller names, and a clip closing its fingers within
    their 0.5 rad/s passes the gate and streams."""
    retargeter = build_retargeter('gr1')
    names = retargeter.joint_names
    neutral = retargeter.neutral_qpos()
    fingers = np.array([name.startswith(('L_', 'R_')) for name in names])
    assert fingers.sum() == 12 and len(names) == 26
    fps, frames = 30.0, 30
    qpos = np.tile(neutral, (frames, 1))
    qpos[:, fingers] += np.linspace(0.0, 0.3, frames)[:, None]  # 0.3 rad in 1 s
    trajectory = RobotTrajectory('gr1', fps, names, qpos)
    with ros_harness(seed=75) as harness:
        node = harness.add(SimNode(context=harness.context, parameter_overrides=[
            Parameter('robot', value='gr1'), Parameter('rate_hz', value=RATE_HZ)]))
        states = harness.record(JointState, JOINT_COMMANDS_TOPIC)
        commands = harness.record(JointTrajectory, '/gr1/joint_trajectory')
        reports = harness.record(DiagnosticArray, SIM_REPORT_TOPIC, LATCHED)
        publisher = harness.publisher(JointTrajectory, TRAJECTORY_TOPIC)
        harness.connect(publisher)
        harness.wait_for(lambda: len(states) >= 5 and len(commands) >= 5, what='commands')
        assert tuple(states.messages[0].name) == names
        assert tuple(commands.messages[0].joint_names) == names
        publisher.publish(conversions.trajectory_to_msg(trajectory, stamp_s=12.5))
        report = harness.wait_for(lambda: _reports(reports), what='a sim report')[-1]
        assert report['robot'] == 'gr1' and report['passed'], report
        harness.wait_for(lambda: node._counters()['playing'], what='playback to start')
        harness.wait_for(lambda: not node._counters()['playing'], timeout_s=30.0,
                         what='playback to end')
        last = np.array(list(states.messages[-1].position))
        np.testing.assert_allclose(last, qpos[-1], atol=1e-6)


def test_halt_publishes_a_hold_command_where_the_robot_was(robot):
    """Issue 21, 1: a node that dies ends in a halt the controller sees: the last command is
    the position last commanded, with zero velocity."""
    with ros_harness(seed=74) as harness:
        node = harness.add(SimNode(context=harness.context, parameter_overrides=[
            Parameter('rate_hz', value=RATE_HZ)]))
        states = harness.record(JointState, JOINT_COMMANDS_TOPIC)
        commands = harness.record(JointTrajectory, f'/{ROBOT}/joint_trajectory')
        publisher = harness.publisher(JointTrajectory, TRAJECTORY_TOPIC)
        harness.connect(publisher)
        harness.wait_for(lambda: len(states) >= 5 and len(commands) >= 5, what='commands')
        _stream_live(publisher, robot, 0.5)  # moving
        assert np.abs(np.asarray(states.messages[-1].velocity)).max() > 0.0
        node.halt()
        held = node._safety.qpos.copy()
        time.sleep(0.3)
        count = len(states)
        harness.wait_for(lambda: list(states.messages[-1].position) == held.tolist(),
                         what='the hold command')
        last, final = states.messages[-1], commands.messages[-1]
        assert not np.any(np.asarray(last.velocity))
        assert list(final.points[0].positions) == held.tolist()
        assert not np.any(np.asarray(final.points[0].velocities))
        time.sleep(0.2)
        assert len(states) == count  # nothing after it


class _Dying(Node):
    """A node whose timer raises on its third tick, and that notes when it is halted."""

    def __init__(self) -> None:
        super().__init__('handx_test_dying')
        self.ticks = 0
        self.halted_while_ok: list[bool] = []
        self.create_timer(0.01, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        if self.ticks == 3:
            raise RuntimeError('a bug in a timer')

    def halt(self) -> None:
        import rclpy

        self.halted_while_ok.append(rclpy.ok())


def test_run_node_halts_a_node_that_dies_on_an_unexpected_error(monkeypatch):
    from ros_env import isolated_ros_env

    monkeypatch.setenv('ROS_DOMAIN_ID', isolated_ros_env(seed=76)['ROS_DOMAIN_ID'])
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    nodes: list[_Dying] = []

    def factory() -> _Dying:
        nodes.append(_Dying())
        return nodes[-1]

    with pytest.raises(RuntimeError, match='a bug in a timer'):
        run_node(factory, args=[])
    assert nodes[0].halted_while_ok == [True]  # once, while it could still publish
