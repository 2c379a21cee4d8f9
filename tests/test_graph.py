"""The node graph as separate processes (as ``make demo`` and ``ros2 launch`` start it): a
prompt reaches the robot as safe commands, hostile messages leave every node alive and
counted, and killing the generation node mid-stream halts the streamer smoothly until it is
restarted."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from node_harness import inflated_message
from ros_env import isolated_ros_env

from handx_ros.demo_graph import GraphClient, NodeProcesses
from handx_ros.graph import DEMO_NODES, argument_overrides

ROBOT = 'allegro'
RATE_HZ = 100.0
PROMPT = 'Both hands make a fist, then open.'


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    """The three nodes in a private domain, and a client in this process."""
    env = isolated_ros_env(seed=23)
    env['HF_HUB_OFFLINE'] = '1'
    saved = {key: os.environ.get(key) for key in ('ROS_DOMAIN_ID',
                                                  'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    os.environ.update({key: env[key] for key in saved})
    overrides = argument_overrides({'robot': ROBOT, 'model': 'diffusion'})
    overrides['handx_sim']['rate_hz'] = RATE_HZ
    overrides['handx_generation']['steps'] = 10  # text clips faster on this CPU
    nodes = NodeProcesses(env, tmp_path_factory.mktemp('logs'), overrides)
    client = GraphClient(ROBOT)
    try:
        wait(lambda: all(f'/{s.name}' in client.diagnostics for s in DEMO_NODES)
             and client.text.get_subscription_count() > 0 and client.wired(), 180.0, nodes,
             'the nodes')
        yield nodes, client
    finally:
        codes = nodes.stop()
        client.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert all(code == 0 for code in codes.values()), f'unclean shutdown: {codes}'


def wait(condition, timeout_s: float, nodes: NodeProcesses, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        nodes.check_alive()
        time.sleep(0.02)
    raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')


def counter(client: GraphClient, node: str, key: str) -> int:
    with client.lock:
        return int(client.diagnostics.get(f'/{node}', {}).get(key, 0))


def robot_limits():
    from handx_ros.retarget import build_retargeter

    retargeter = build_retargeter(ROBOT)
    lower, upper = retargeter.joint_limits()
    return list(retargeter.joint_names), lower, upper


def test_prompt_reaches_the_robot_as_safe_commands(graph):
    from std_msgs.msg import String

    from handx_ros.conversions import sim_report_from_msg

    nodes, client = graph
    sent = client.now_s()
    client.text.publish(String(data=PROMPT))
    arrival, message = wait(lambda: next(((t, m) for t, m in client.snapshot(client.reports)
                                          if t >= sent), None), 120.0, nodes, 'a gate report')
    verdict = sim_report_from_msg(message)
    assert verdict['robot'] == ROBOT
    assert verdict['passed'], verdict['reasons']
    time.sleep(5.0)  # the 4 s clip plays
    commands = [(t, m) for t, m in client.snapshot(client.commands) if t >= arrival]
    names, lower, upper = robot_limits()
    assert all(list(m.name) == names for _, m in commands)
    qpos = np.array([m.position for _, m in commands])  # (N, nq)
    assert np.all(np.isfinite(qpos))
    assert np.all(qpos >= lower - 1e-9) and np.all(qpos <= upper + 1e-9)
    # Streamed at the rate over the whole clip (a loaded machine may delay a tick, or the
    # middleware a message: the stamps say when each was sent).
    stamps = np.array([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for _, m in commands])
    assert stamps[-1] - stamps[0] > 4.0
    assert len(commands) > 0.6 * RATE_HZ * (stamps[-1] - stamps[0])
    assert np.median(np.diff(stamps)) == pytest.approx(1.0 / RATE_HZ, rel=0.1)
    # The clip moved the robot, at most at the safety filter's velocity: one tick moves a
    # joint at most max_velocity / rate, and between two messages received in order at most
    # that many ticks went by as their stamps are apart, plus one for a late tick.
    assert np.ptp(qpos, axis=0).max() > 0.2
    step = np.abs(np.diff(qpos, axis=0)).max(axis=1)  # (N-1,)
    ticks = np.maximum(1.0, np.round(np.diff(stamps) * RATE_HZ)) + 1.0
    from handx_ros.retarget import build_retargeter

    vmax = build_retargeter(ROBOT).joint_velocity_limits().max()  # the safety filter's bound
    assert np.all(step <= ticks * vmax / RATE_HZ + 1e-9)
    assert np.median(step) <= vmax / RATE_HZ + 1e-9
    # Nothing was published into the void on the way (a clip sent before discovery matched
    # its consumer is lost: the nodes count it).
    time.sleep(1.5)  # a fresh /diagnostics round
    assert counter(client, 'handx_generation', 'clips_unheard') == 0
    assert counter(client, 'handx_retargeting', 'unheard') == 0


def test_hostile_messages_leave_every_node_alive_and_counted(graph):
    from geometry_msgs.msg import Pose, PoseArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    from trajectory_msgs.msg import (
        JointTrajectory,
        JointTrajectoryPoint,
        MultiDOFJointTrajectory,
        MultiDOFJointTrajectoryPoint,
    )

    from handx_ros.conversions import MOTION_JOINT_NAMES, keypoints_to_pose_array
    from handx_ros.demo import compose_clip

    nodes, client = graph
    time.sleep(1.5)  # a fresh /diagnostics round
    before = {spec.name: counter(client, spec.name, 'rejected') for spec in DEMO_NODES}
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    motion_pub = client.node.create_publisher(MultiDOFJointTrajectory, '/handx/motion',
                                              reliable)
    trajectory_pub = client.node.create_publisher(JointTrajectory, '/handx/robot_trajectory',
                                                  reliable)
    wait(lambda: motion_pub.get_subscription_count() and
         trajectory_pub.get_subscription_count(), 30.0, nodes, 'subscribers')

    def expect(counts: dict[str, int]) -> None:
        for name, n in counts.items():
            before[name] += n
            wait(lambda name=name: counter(client, name, 'rejected') >= before[name],
                 60.0, nodes, f'{name} to count {before[name]} rejections in all')

    keypoints = compose_clip().keypoints[0].astype(np.float64)  # (2, 21, 3)
    # Prompts: empty, whitespace, 10,000 characters.
    for text in ('', '   ', 'x' * 10_000):
        client.text.publish(String(data=text))
    # Observed hands (generation and retargeting see them): NaN in part of a hand, the wrong
    # frame.
    partly_nan = keypoints.copy()
    partly_nan[0, 5] = np.nan
    client.observed.publish(_pose_array(partly_nan, client.now_s()))
    wrong_frame = keypoints_to_pose_array(keypoints, stamp_s=client.now_s())
    wrong_frame.header.frame_id = 'camera'
    client.observed.publish(wrong_frame)
    # A motion of the wrong size and a trajectory with NaN and unknown joints.
    motion = MultiDOFJointTrajectory()
    motion.header.frame_id = 'world'
    motion.joint_names = ['left/wrist']
    motion_pub.publish(motion)
    trajectory = JointTrajectory()
    trajectory.header.frame_id = 'world'
    trajectory.joint_names = ['no_such_joint']
    trajectory.points = [JointTrajectoryPoint(positions=[float('nan')]) for _ in range(3)]
    trajectory_pub.publish(trajectory)
    expect({'handx_generation': 3 + 2, 'handx_retargeting': 2 + 1, 'handx_sim': 1})

    # A million elements each: a motion and a trajectory of 10^6 points (reliable: counted
    # from their serialized size) and 10^6 observed poses (56 MB over the best-effort
    # sensor-data QoS: the middleware may drop it on the way, so it is not counted on; the
    # nodes must survive it either way).
    def huge_motion(n: int) -> MultiDOFJointTrajectory:
        message = MultiDOFJointTrajectory()
        message.header.frame_id = 'world'
        message.joint_names = list(MOTION_JOINT_NAMES)
        message.points = [MultiDOFJointTrajectoryPoint() for _ in range(n)]
        return message

    def huge_trajectory(n: int) -> JointTrajectory:
        message = JointTrajectory()
        message.header.frame_id = 'world'
        message.joint_names = robot_limits()[0]
        message.points = [JointTrajectoryPoint() for _ in range(n)]
        return message

    def huge_observed(n: int) -> PoseArray:
        message = PoseArray()
        message.header.frame_id = 'world'
        message.poses = [Pose() for _ in range(n)]
        return message

    motion_pub.publish(inflated_message(huge_motion, 10**6))
    trajectory_pub.publish(inflated_message(huge_trajectory, 10**6))
    client.observed.publish(inflated_message(huge_observed, 10**6))
    expect({'handx_retargeting': 1, 'handx_sim': 1})
    nodes.check_alive()
    client.node.destroy_publisher(motion_pub)
    client.node.destroy_publisher(trajectory_pub)
    # Still serving: a good prompt still produces a clip.
    sent = client.now_s()
    client.text.publish(String(data=PROMPT))
    wait(lambda: any(t >= sent for t, _ in client.snapshot(client.motions)), 120.0, nodes,
         'a clip after the hostile messages')


def _pose_array(keypoints: np.ndarray, stamp_s: float):
    """A PoseArray built by hand (the conversion refuses partly-NaN hands)."""
    from geometry_msgs.msg import Point, Pose, PoseArray

    from handx_ros.conversions import stamp_from_s

    message = PoseArray()
    message.header.frame_id = 'world'
    message.header.stamp = stamp_from_s(stamp_s)
    message.poses = [Pose(position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])))
                     for p in keypoints.reshape(-1, 3)]
    return message


def test_killing_generation_mid_stream_halts_smoothly_and_restart_resumes(graph):
    from handx_ros.conversions import keypoints_to_pose_array, sim_report_from_msg
    from handx_ros.demo import compose_clip
    from handx_ros.sim.safety import SafetyConfig

    nodes, client = graph
    keypoints = compose_clip().keypoints.astype(np.float64)  # (T, 2, 21, 3)
    keypoints[:, 0] = np.nan  # only the right hand is observed: reaction mode
    state = {'frame': 0}

    def stream(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = keypoints[state['frame'] % keypoints.shape[0]]
            client.observed.publish(keypoints_to_pose_array(frame, stamp_s=client.now_s()))
            state['frame'] += 1
            time.sleep(1.0 / 30.0)

    start = client.now_s()
    stream(4.0)
    clips = [t for t, _ in client.snapshot(client.motions) if t >= start]
    assert len(clips) >= 3, 'the reaction stream did not start'
    # The generation node dies while frames keep coming.
    killed = client.now_s()
    with client.lock:  # clips the sim node still had to play (its last diagnostics)
        sim = client.diagnostics.get('/handx_sim', {})
        waiting = int(sim.get('queue_length', 0)) + int(sim.get('playing', 0))
    nodes.kill('handx_generation')
    try:
        stream(4.0)
        # Frames keep coming until the robot has held still for 1.5 s (or 24 s: clips that
        # were retimed play longer; when it halted is checked against halt_by below).
        deadline = time.monotonic() + 20.0
        while True:
            commands = [(t, m) for t, m in client.snapshot(client.commands) if t >= killed]
            times = np.array([t for t, _ in commands])
            stamps = np.array([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec
                               for _, m in commands])
            qpos = np.array([m.position for _, m in commands])  # (N, nq)
            moving = np.abs(np.diff(qpos, axis=0)).max(axis=1) > 1e-9
            last_motion = times[1:][moving].max() if moving.any() else killed
            if times[-1] - last_motion > 1.5 or time.monotonic() > deadline:
                break
            stream(0.5)
        # The clips made before the kill still reach the robot: the last one arrives at
        # the sim node, is gated, plays (one 0.5 s stride), its last frame stays the target
        # for settle_s (1.0 s), and then the watchdog halts the robot smoothly. Clips that
        # passed the gate earlier and still wait to play go first, each with its stride and
        # a lead-in from where the robot is (up to 1 s each here).
        last_clip = max([t for t, _ in client.snapshot(client.trajectories)] + [killed])
        assert last_clip - killed < 2.0, 'clips still arrive after the generator died'
        safety = SafetyConfig()
        # A clip too fast for the robot plays retimed (slower): its length is in its report.
        played = [float(sim_report_from_msg(m)['summary'].get('retimed_to_s', 0.5))
                  for t, m in client.snapshot(client.reports) if t >= killed - 4.0]
        clip_s = max([0.5, *played])
        halt_by = last_clip + 1.0 + clip_s + 1.0 + safety.watchdog_timeout_s + 0.5 \
            + waiting * (clip_s + 1.0)
        assert last_motion < halt_by, (last_motion - killed, last_clip - killed)
        # Smoothly: over the time between the stamps of consecutive ticks (about a period
        # apart: no message missed between them), the acceleration stays inside its bound.
        dt = np.diff(stamps)  # (N-1,)
        consecutive = np.abs(dt * RATE_HZ - 1.0) < 0.5  # (N-1,)
        both = consecutive[1:] & consecutive[:-1]
        velocity = np.diff(qpos, axis=0) / dt[:, None]  # (N-1, nq)
        acceleration = np.abs(np.diff(velocity, axis=0)).max(axis=1) / dt[1:]  # (N-2,)
        assert both.sum() > 100
        from handx_ros.retarget import build_retargeter

        amax = build_retargeter(ROBOT).joint_acceleration_limits().max()
        assert acceleration[both].max() <= amax * 1.01
        assert times[-1] - last_motion > 1.5  # it holds still afterwards
    finally:
        nodes.start('handx_generation')
    # Restarted (above): service resumes. Reaction clips go through the gate as any clip
    # does (some fail it: retargeted finger velocities), so stream until one passes.
    restarted = client.now_s()

    def passed_since() -> float | None:
        return next((t for t, m in client.snapshot(client.reports)
                     if t >= restarted and sim_report_from_msg(m)['passed']), None)

    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and passed_since() is None:
        stream(1.0)
    assert any(t >= restarted for t, _ in client.snapshot(client.motions)), \
        'no reaction clip after the restart'
    passed = passed_since()
    assert passed is not None, 'no reaction clip passed the gate after the restart'
    stream(1.5)
    after = np.array([m.position for t, m in client.snapshot(client.commands) if t >= passed])
    assert np.ptp(after, axis=0).max() > 1e-3, 'the robot did not move again'


def test_demo_report_says_whether_the_robot_hands_touched():
    from handx_ros.demo_graph import _touch_line

    touched = _touch_line({'robot_contact_events': '2', 'min_inter_hand_distance_m': '-6.7e-05',
                           'min_command_distance_m': '-0.002133'})
    assert 'they touch (2 contact events, closest -0.1 mm, commanded -2.1 mm' in touched
    apart = _touch_line({'robot_contact_events': '0', 'min_inter_hand_distance_m': '0.02'})
    assert 'never touch, closest 20.0 mm' in apart
    assert 'no contact summary' in _touch_line({})


@pytest.mark.parametrize('rate_hz, problems, warnings', [(200.0, 0, 0), (172.0, 0, 1),
                                                          (80.0, 1, 0)])
def test_demo_recording_check_warns_on_a_slow_stream_and_fails_a_broken_one(
        monkeypatch, tmp_path, rate_hz, problems, warnings):
    from sensor_msgs.msg import JointState

    import handx_ros.recorder
    from handx_ros import conversions as cv
    from handx_ros.demo_graph import DemoGraphConfig, _check_recording

    names, _, _ = robot_limits()

    def command(i: int) -> JointState:
        message = JointState(name=names, position=[0.0] * len(names))
        message.header.stamp = cv.stamp_from_s(100.0 + i / rate_hz)
        return message

    report = cv.sim_report_msg(robot=ROBOT, passed=True, reasons=[], summary={},
                               stamp_s=101.0, motion_stamp_s=99.5)
    topics = {'/handx/joint_commands': [(0.0, command(i)) for i in range(400)],
              '/handx/sim_report': [(0.0, report)]}
    monkeypatch.setattr(handx_ros.recorder, 'read_mcap', lambda path: topics)
    checked = _check_recording(tmp_path, DemoGraphConfig(robot=ROBOT, rate_hz=200.0),
                               {'text': {'motion_stamp_s': 99.5, 'gate': {'passed': True}}})
    assert checked['joint_commands_rate_hz'] == pytest.approx(rate_hz)
    assert (len(checked['problems']), len(checked['warnings'])) == (problems, warnings)
    assert all('Hz' in line for line in checked['problems'] + checked['warnings'])
