"""``make demo``: the HandX node graph end to end, as a ROS 2 user would run it.

Starts the nodes declared in :mod:`handx_ros.graph` as separate processes (the same nodes,
parameters and topics ``ros2 launch handx_ros demo.launch.py`` starts) in a private ROS domain
on loopback, and acts as their client:

1. **text**: publishes a prompt on ``/handx/text_command``; the generation node makes a clip,
   the retargeting node maps it onto the robot, the sim node checks it in MuJoCo, reports on
   ``/handx/sim_report`` and, if the gate passes, streams it through the safety filter;
2. **reaction**: replays an observed one-hand stream (the right hand of the data demo's clip)
   at 30 Hz on ``/handx/observed_hands``; the generation node answers with the other hand in
   short overlapping windows, which go the same way to the robot;
3. **teleop**: replays both hands; the retargeting node retargets every frame directly and the
   sim node streams the targets.

Every ``/handx`` topic (and the controller topic and ``/diagnostics``) is recorded to an MCAP
file; at the end the nodes are stopped with SIGINT and ``demo_out/`` holds ``report.json`` /
``report.md`` (gate verdicts and reasons as published on the bus, latencies, streaming rate
and jitter, rejection counters), ``commands.png`` (the streamed joint commands with the
phases), ``latency.png``, a video of the text clip simulated on the robot beside the
generated human motion, the recording and each node's log.

Run: ``python -m handx_ros.demo_graph --out demo_out`` (``make demo`` does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.errors import HandxError
from handx_ros.graph import DEMO_NODES, argument_overrides, node_command

__all__ = ['DemoError', 'DemoGraphConfig', 'GraphClient', 'NodeProcesses',
           'isolated_environment', 'main', 'run']

GENERATION_PROMPT = 'The hands move towards each other, then the palms strike together twice.'
OBSERVED_FPS = 30.0


@dataclasses.dataclass(frozen=True)
class DemoGraphConfig:
    """What the graph demo runs.

    Attributes:
        robot: Robot folder (launch argument ``robot``).
        model: Generation model (launch argument ``model``).
        prompt: The text-phase prompt.
        reaction_s: Seconds of the observed one-hand stream.
        teleop_s: Seconds of the observed two-hand stream.
        rate_hz: The sim node's command rate (checked against the recording).
        timeout_s: Longest wait for any one step.
        domain_id: ROS domain; ``None``: a random one in 1-100.
        video: Render the text clip's simulation.
    """

    robot: str = 'allegro'
    model: str = 'diffusion'
    prompt: str = GENERATION_PROMPT
    reaction_s: float = 4.0
    teleop_s: float = 4.0
    rate_hz: float = 200.0
    timeout_s: float = 120.0
    domain_id: int | None = None
    video: bool = True


class DemoError(HandxError):
    """The graph demo could not complete (a node died, a step timed out, a check failed)."""


def isolated_environment(domain_id: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None
                               else random.Random(os.getpid()).randint(1, 100))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('HF_HUB_OFFLINE', '1')
    return env


class _Progress:
    """One status line: elapsed time, the phase, what it waits for. On a terminal the line is
    rewritten in place; in a log, a line is written when the step changes (the text before
    its first ':' or ','), else at most once a second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._last = ''
        self._printed_step = ''
        self._printed_s = -1.0

    def say(self, text: str) -> None:
        now = time.monotonic()
        line = f'[{now - self.start:6.1f} s] {text}'
        if self._tty:
            sys.stderr.write('\r' + line.ljust(len(self._last)))
            sys.stderr.flush()
            self._last = line
            return
        step = text.replace(',', ':').split(':')[0]
        if step != self._printed_step or now - self._printed_s >= 1.0:
            print(line, file=sys.stderr, flush=True)
            self._printed_step, self._printed_s = step, now

    def done(self, text: str) -> None:
        if self._tty and self._last:
            sys.stderr.write('\n')
        print(f'[{time.monotonic() - self.start:6.1f} s] {text}', file=sys.stderr, flush=True)
        self._last = ''
        self._printed_step = ''


class NodeProcesses:
    """The graph's nodes as separate processes (what ``ros2 launch`` would start), with logs.

    Args:
        env: Environment of the processes (the ROS domain and discovery range).
        logs: Folder of the per-node logs (stdout and stderr).
        overrides: Per node name, parameter overrides (see
            :func:`handx_ros.graph.argument_overrides`).
        names: Which nodes of :data:`handx_ros.graph.DEMO_NODES` to start; default all.
    """

    def __init__(self, env: dict[str, str], logs: Path,
                 overrides: dict[str, dict[str, Any]] | None = None,
                 names: Sequence[str] | None = None) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.overrides = overrides or {}
        self.specs = {spec.name: spec for spec in DEMO_NODES
                      if names is None or spec.name in names}
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs = {name: logs / f'{name}.log' for name in self.specs}
        self.started_s = time.monotonic()
        for name in self.specs:
            self.start(name)

    def start(self, name: str) -> None:
        """Start (or restart) one node; its log is appended to."""
        with self.logs[name].open('a') as handle:
            self.processes[name] = subprocess.Popen(
                node_command(self.specs[name], self.overrides.get(name, {})), env=self.env,
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL one node (a crash, as far as the others can tell)."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def check_alive(self) -> None:
        """Raise :class:`DemoError` with the log's tail if a node has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[name].read_text(errors='replace').splitlines()[-15:]
                raise DemoError(f'node {name} exited with status {process.returncode}; last '
                                f'lines of {self.logs[name]}:\n' + '\n'.join(tail))

    def stop(self, timeout_s: float = 15.0) -> dict[str, int | None]:
        """SIGINT every node (as Ctrl-C in ``ros2 launch``), then wait; kill stragglers
        (their status is ``None``)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[name] = None
        return codes


def run(out: Path, config: DemoGraphConfig | None = None) -> dict[str, Any]:
    """Run the graph demo, writing everything below ``out``; returns the report.

    Raises:
        DemoError: A node died, a step timed out, or a check of the result failed.
    """
    config = config or DemoGraphConfig()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / 'recording', out / 'logs'):  # a previous run's
        shutil.rmtree(stale, ignore_errors=True)
    env = isolated_environment(config.domain_id)
    os.environ.update({key: env[key] for key in ('ROS_DOMAIN_ID',
                                                 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    progress = _Progress()
    progress.done(f'starting {", ".join(s.name for s in DEMO_NODES)} in ROS domain '
                  f'{env["ROS_DOMAIN_ID"]} (logs in {out / "logs"})')
    overrides = argument_overrides({'robot': config.robot, 'model': config.model})
    overrides['handx_sim']['rate_hz'] = float(config.rate_hz)
    nodes = NodeProcesses(env, out / 'logs', overrides)
    client = None
    try:
        client = GraphClient(config.robot, out / 'recording')
        report = _drive(client, nodes, config, progress, out)
    finally:
        codes = nodes.stop()
        recording = client.close() if client is not None else None
    report['nodes'] = {name: {'exit_status': code, 'log': str(nodes.logs[name].relative_to(out))}
                       for name, code in codes.items()}
    report['recording'] = _check_recording(recording, config, report)
    _write_outputs(out, report, config)  # written whatever the checks found: nothing is lost
    for warning in report['recording'].get('warnings', []):
        print(f'demo: warning: {warning}', file=sys.stderr)
    problems = list(report['recording'].get('problems', []))
    bad = [name for name, code in codes.items() if code != 0]
    if bad:
        problems.append(f'nodes did not shut down cleanly on SIGINT: {bad} (see logs/)')
    if problems:
        raise DemoError('; '.join(problems) + f' (the report is in {out})')
    return report


class GraphClient:
    """A client of the graph, as a user's program would be: publishes prompts and observed
    frames, keeps what the nodes publish (with receive times), optionally records every topic
    to MCAP. Its node spins in a background thread; rclpy is initialised here and shut down
    by :meth:`close`.

    Args:
        robot: The robot the graph runs (for the controller topic's name).
        recording: Where the recorder writes; ``None``: no recording.
    """

    def __init__(self, robot: str, recording: Path | None = None) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
        from visualization_msgs.msg import MarkerArray

        from handx_ros.recorder import McapRecorder

        rclpy.init()
        self._rclpy = rclpy
        self.node = rclpy.create_node('handx_demo_client')
        self.topics = {
            '/handx/text_command': String, '/handx/observed_hands': PoseArray,
            '/handx/motion': MultiDOFJointTrajectory, '/handx/hand_markers': MarkerArray,
            '/handx/robot_trajectory': JointTrajectory, '/handx/sim_report': DiagnosticArray,
            '/handx/joint_commands': JointState, f'/{robot}/joint_trajectory':
            JointTrajectory, '/diagnostics': DiagnosticArray}
        reliable = QoSProfile(depth=400, reliability=ReliabilityPolicy.RELIABLE)  # 2 s at 200 Hz
        # Our own inputs are recorded from the start (the others once their publishers show).
        self.recorder = None if recording is None else McapRecorder(
            self.node, recording, self.topics,
            qos={'/handx/text_command': reliable,
                 '/handx/observed_hands': qos_profile_sensor_data})
        latched = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.lock = threading.Lock()
        self.motions: list[tuple[float, Any]] = []  # (receive time, message)
        self.trajectories: list[tuple[float, Any]] = []
        self.reports: list[tuple[float, Any]] = []
        self.commands: list[tuple[float, Any]] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        for topic, kind, store, qos in (
                ('/handx/motion', MultiDOFJointTrajectory, self.motions, reliable),
                ('/handx/robot_trajectory', JointTrajectory, self.trajectories, reliable),
                ('/handx/sim_report', DiagnosticArray, self.reports, latched),
                ('/handx/joint_commands', JointState, self.commands, reliable)):
            self.node.create_subscription(kind, topic, self._keeper(store), qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      reliable)
        self.text = self.node.create_publisher(String, '/handx/text_command', reliable)
        self.observed = self.node.create_publisher(PoseArray, '/handx/observed_hands',
                                                   qos_profile_sensor_data)
        # One thread: the callbacks only append; rclpy's multi-threaded executor here left
        # subscriptions unserved for up to 0.5 s, and the streamed commands overflowed.
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    # The links between the nodes: topic -> (publishing node, subscribing node).
    LINKS = {'/handx/motion': ('handx_generation', 'handx_retargeting'),
             '/handx/robot_trajectory': ('handx_retargeting', 'handx_sim')}

    def wired(self) -> bool:
        """Whether this client sees every link between the nodes (each topic's publishing
        and subscribing node): a clip published before discovery has matched the two ends is
        lost, so a caller waits for this before sending the first prompt."""
        for topic, (source, sink) in self.LINKS.items():
            publishers = {info.node_name for info in self.node.get_publishers_info_by_topic(topic)}
            readers = {info.node_name for info in self.node.get_subscriptions_info_by_topic(topic)}
            if source not in publishers or sink not in readers:
                return False
        return True

    def now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _keeper(self, store: list) -> Callable[[Any], None]:
        def keep(message: Any) -> None:
            with self.lock:
                store.append((self.now_s(), message))
        return keep

    def _on_diagnostics(self, message: Any) -> None:
        from handx_ros.nodes.common import counters_from_diagnostics

        with self.lock:
            self.diagnostics.update(counters_from_diagnostics(message))

    def snapshot(self, store: list) -> list:
        with self.lock:
            return list(store)

    def close(self) -> Path | None:
        """Stop spinning, finish the recording (its path, or ``None``), shut rclpy down."""
        path = None if self.recorder is None else self.recorder.close()
        self.executor.shutdown()
        self._spin.join(5.0)
        self.node.destroy_node()
        if self._rclpy.ok():
            self._rclpy.shutdown()
        return path


def _wait(progress: _Progress, nodes: NodeProcesses, what: str, ready: Callable[[], Any],
          timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = ready()
        if value:
            return value
        nodes.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f'timed out after {timeout_s:.0f} s waiting for {what}')
        progress.say(f'waiting for {what}')
        time.sleep(0.05)


def _drive(client: GraphClient, nodes: NodeProcesses, config: DemoGraphConfig, progress: _Progress,
           out: Path) -> dict[str, Any]:
    from std_msgs.msg import String

    from handx_ros import conversions as cv
    from handx_ros.demo import compose_clip

    report: dict[str, Any] = {'config': dataclasses.asdict(config)}
    names = [f'/{spec.name}' for spec in DEMO_NODES]
    _wait(progress, nodes, 'every node to come up (' + ', '.join(names) + ')',
          lambda: all(name in client.diagnostics for name in names)
          and client.text.get_subscription_count() > 0 and client.wired(), config.timeout_s)
    report['startup_s'] = time.monotonic() - nodes.started_s
    progress.done(f'nodes up after {report["startup_s"]:.1f} s')

    # 1. Text to robot.
    sent_s = client.now_s()
    client.text.publish(String(data=config.prompt))
    motion_msg = _wait(progress, nodes, f'the generated clip for {config.prompt!r}',
                       lambda: _first_after(client.snapshot(client.motions), sent_s),
                       config.timeout_s)
    motion_stamp = cv.stamp_to_s(motion_msg[1].header.stamp)
    trajectory_msg = _wait(progress, nodes, 'the retargeted trajectory',
                           lambda: _with_stamp(client.snapshot(client.trajectories),
                                               motion_stamp), config.timeout_s)
    report_msg = _wait(progress, nodes, 'the MuJoCo gate report',
                       lambda: _report_for(client.snapshot(client.reports), motion_stamp),
                       config.timeout_s)
    verdict = cv.sim_report_from_msg(report_msg[1])
    text: dict[str, Any] = {
        'prompt': config.prompt, 'motion_stamp_s': motion_stamp,
        'frames': len(motion_msg[1].points), 'gate': verdict,
        'latency_s': {'motion': motion_msg[0] - sent_s,
                      'trajectory': trajectory_msg[0] - sent_s,
                      'sim_report': report_msg[0] - sent_s}}
    clip_s = len(trajectory_msg[1].points) / _fps(trajectory_msg[1])
    if verdict['passed']:
        first = _wait(progress, nodes, 'the first streamed command of the clip',
                      lambda: _first_after(client.snapshot(client.commands), report_msg[0]),
                      config.timeout_s)
        text['latency_s']['first_command'] = first[0] - sent_s
        progress.say(f'streaming the {clip_s:.1f} s clip')
        time.sleep(clip_s + 0.5)
    report['text'] = text
    progress.done(f'text: gate {"pass" if verdict["passed"] else "fail"}; first command '
                  f'{text["latency_s"].get("first_command", float("nan")):.2f} s after the '
                  'prompt')
    phases = {'text': (sent_s, client.now_s())}

    # 2. Reaction to an observed one-hand stream; 3. teleoperation with both hands.
    clip = compose_clip()
    for phase, seconds, present in (('reaction', config.reaction_s, (False, True)),
                                    ('teleop', config.teleop_s, (True, True))):
        start_s = client.now_s()
        frames = _replay(client, progress, clip.keypoints, seconds, present, phase)
        _wait(progress, nodes, f'the {phase} phase to settle', lambda: True, 1.0)
        time.sleep(1.0)
        end_s = client.now_s()
        phases[phase] = (start_s, end_s)
        motions = [(t, m) for t, m in client.snapshot(client.motions) if start_s <= t <= end_s]
        reports = [cv.sim_report_from_msg(m) for t, m in client.snapshot(client.reports)
                   if start_s <= t <= end_s]
        entry: dict[str, Any] = {'frames_sent': frames, 'clips_generated': len(motions),
                                 'gate_passed': sum(r['passed'] for r in reports),
                                 'gate_failed': sum(not r['passed'] for r in reports),
                                 'gate_reasons': sorted({reason for r in reports
                                                         for reason in r['reasons']})[:5]}
        if motions:
            delays = [t - cv.stamp_to_s(m.header.stamp) for t, m in motions]
            entry['observed_to_clip_s'] = _percentiles(delays)
        entry['commands'] = sum(start_s <= t <= end_s
                                for t, _ in client.snapshot(client.commands))
        report[phase] = entry
        progress.done(f'{phase}: {frames} frames sent, {entry["clips_generated"]} clips, '
                      f'{entry["commands"]} commands streamed')
    report['phases'] = {name: [a - phases['text'][0], b - phases['text'][0]]
                        for name, (a, b) in phases.items()}
    time.sleep(1.2)  # one more /diagnostics round
    with client.lock:
        report['diagnostics'] = dict(client.diagnostics)
    report['streaming'] = _streaming(client.snapshot(client.commands), config.rate_hz)
    report['_plot'] = {'commands': client.snapshot(client.commands), 'phases': phases,
                       'trajectory': trajectory_msg[1], 'motion': motion_msg[1]}
    return report


def _replay(client: GraphClient, progress: _Progress, keypoints: np.ndarray, seconds: float,
            present: tuple[bool, bool], phase: str) -> int:
    """Publish observed frames at 30 Hz on a fixed schedule; absent hands are NaN."""
    from handx_ros import conversions as cv

    count = min(int(round(seconds * OBSERVED_FPS)), keypoints.shape[0])
    start = time.monotonic()
    for index in range(count):
        frame = keypoints[index].astype(np.float64).copy()  # (2, 21, 3)
        for side, shown in enumerate(present):
            if not shown:
                frame[side] = np.nan
        client.observed.publish(cv.keypoints_to_pose_array(frame, stamp_s=client.now_s()))
        progress.say(f'{phase}: replaying observed hands, frame {index + 1}/{count}')
        delay = start + (index + 1) / OBSERVED_FPS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return count


def _first_after(store: list, t0: float) -> Any:
    return next((item for item in store if item[0] >= t0), None)


def _with_stamp(store: list, stamp_s: float) -> Any:
    from handx_ros.conversions import stamp_to_s

    return next((item for item in store if abs(stamp_to_s(item[1].header.stamp) - stamp_s)
                 < 1e-6), None)


def _report_for(store: list, stamp_s: float) -> Any:
    from handx_ros.conversions import sim_report_from_msg

    return next((item for item in store
                 if abs(sim_report_from_msg(item[1])['motion_stamp_s'] - stamp_s) < 1e-6), None)


def _fps(trajectory: Any) -> float:
    points = trajectory.points
    t1 = points[1].time_from_start
    return 1.0 / (t1.sec + 1e-9 * t1.nanosec)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {'n': int(array.size), 'p50': float(np.percentile(array, 50)),
            'p99': float(np.percentile(array, 99)), 'max': float(array.max())}


def _streaming(commands: list, rate_hz: float) -> dict[str, Any]:
    """Rate and jitter of the received command stream."""
    if len(commands) < 3:
        return {'messages': len(commands)}
    received = np.array([t for t, _ in commands])
    from handx_ros.conversions import stamp_to_s

    stamps = np.array([stamp_to_s(m.header.stamp) for _, m in commands])
    period = 1.0 / rate_hz
    return {'messages': len(commands),
            'rate_hz': float((len(commands) - 1) / (stamps[-1] - stamps[0])),
            'stamp_jitter_ms': _percentiles(1e3 * np.abs(np.diff(stamps) - period)),
            'arrival_jitter_ms': _percentiles(1e3 * np.abs(np.diff(received) - period)),
            'joint_names': list(commands[-1][1].name)}


def _check_recording(path: Path | None, config: DemoGraphConfig,
                     report: dict[str, Any]) -> dict[str, Any]:
    """Read the recording back and check it against the report: commands at the configured
    rate with the robot's joint names, and the gate verdict the report states.

    Returns what it read, with ``problems`` (each fails the demo, after the report is
    written) and ``warnings``: a command rate more than 10% off the configured one is a
    warning (a loaded machine delays the sim node's timer; the safety bounds hold over the
    commands' own stamps either way), below half of it a problem.
    """
    from handx_ros import conversions as cv
    from handx_ros.recorder import read_mcap

    if path is None:
        return {'problems': ['nothing was recorded']}
    topics = read_mcap(path)
    counts = {topic: len(items) for topic, items in topics.items()}
    result: dict[str, Any] = {'path': str(path), 'messages': counts, 'problems': [],
                              'warnings': []}
    problems, warnings = result['problems'], result['warnings']
    commands = topics.get('/handx/joint_commands', [])
    if len(commands) < 10:
        problems.append(f'the recording holds {len(commands)} /handx/joint_commands messages')
        return result
    stamps = np.array([cv.stamp_to_s(m.header.stamp) for _, m in commands])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    result['joint_commands_rate_hz'] = float(rate)
    off = f'/handx/joint_commands recorded at {rate:.1f} Hz, configured {config.rate_hz:g} Hz'
    if rate < 0.5 * config.rate_hz or rate > 1.5 * config.rate_hz:
        problems.append(off)
    elif abs(rate - config.rate_hz) > 0.1 * config.rate_hz:
        warnings.append(f"{off} (was the machine busy? the sim node's timer falls behind "
                        'when it cannot get a core)')
    names = list(commands[-1][1].name)
    result['joint_names'] = names
    expected = _controller_joint_names(config.robot)
    if sorted(names) != sorted(expected):
        problems.append(f'streamed joint names {names} are not the {config.robot} joints '
                        f'{expected}')
    text_stamp = report['text']['motion_stamp_s']
    bus = [cv.sim_report_from_msg(m) for _, m in topics.get('/handx/sim_report', [])]
    bus = [r for r in bus if abs(r['motion_stamp_s'] - text_stamp) < 1e-6]
    if not bus or bus[0]['passed'] != report['text']['gate']['passed']:
        problems.append("the recorded /handx/sim_report does not match the report's gate "
                        'result')
    return result


def _controller_joint_names(robot: str) -> list[str]:
    from handx_ros.retarget.bimanual import build_retargeter

    return list(build_retargeter(robot).joint_names)


def _write_outputs(out: Path, report: dict[str, Any], config: DemoGraphConfig) -> None:
    plot = report.pop('_plot', None)
    if plot is not None:
        report['figures'] = _figures(out, plot, report, config)
    (out / 'report.json').write_text(json.dumps(report, indent=2, default=_json_default))
    (out / 'report.md').write_text(_markdown(report))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _figures(out: Path, plot: dict[str, Any], report: dict[str, Any],
             config: DemoGraphConfig) -> dict[str, str]:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt


    figures = {}
    commands = plot['commands']
    t0 = plot['phases']['text'][0]
    if commands:
        times = np.array([t for t, _ in commands]) - t0
        qpos = np.array([list(m.position) for _, m in commands])  # (N, nq)
        names = list(commands[-1][1].name)
        fig, ax = plt.subplots(figsize=(12, 4.5))
        spread = np.ptp(qpos, axis=0)
        for j in np.argsort(spread)[::-1][:6]:
            ax.plot(times, qpos[:, j], lw=1.2, label=names[j])
        colors = {'text': 'tab:blue', 'reaction': 'tab:orange', 'teleop': 'tab:green'}
        for name, (a, b) in plot['phases'].items():
            ax.axvspan(a - t0, b - t0, color=colors[name], alpha=0.08)
            ax.text(a - t0, ax.get_ylim()[1], f' {name}', va='top', fontsize=9)
        ax.set(xlabel='time since the prompt (s)', ylabel='commanded position (rad)',
               title=f'/handx/joint_commands on {config.robot} ({len(commands)} messages, '
                     f'{report["streaming"].get("rate_hz", 0):.0f} Hz)')
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), title='most moved',
                  title_fontsize=7)
        fig.tight_layout()
        fig.savefig(out / 'commands.png', dpi=100)
        plt.close(fig)
        figures['commands'] = 'commands.png'
    latency = {'text: prompt to ' + k: v for k, v in report['text']['latency_s'].items()}
    for phase in ('reaction',):
        if 'observed_to_clip_s' in report.get(phase, {}):
            latency[f'{phase}: observed frame to clip (p50)'] = \
                report[phase]['observed_to_clip_s']['p50']
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(list(latency), list(latency.values()), color='tab:blue')
    ax.set(xlabel='seconds', title='latencies measured by the demo client')
    fig.tight_layout()
    fig.savefig(out / 'latency.png', dpi=100)
    plt.close(fig)
    figures['latency'] = 'latency.png'
    if config.video:
        figures.update(_video(out, plot, config))
    return figures


def _video(out: Path, plot: dict[str, Any], config: DemoGraphConfig) -> dict[str, str]:
    """The text clip as the sim node simulated it (retimed to the robot's limits as the node
    does), rendered beside the generated motion, each human frame beside the robot frame
    that plays it."""
    from handx_ros import conversions as cv
    from handx_ros.retarget.bimanual import build_retargeter
    from handx_ros.retarget.retime import retime
    from handx_ros.sim import build_scene, simulate
    from handx_ros.sim.evaluate import retimed_source_frames
    from handx_ros.sim.render import render_video

    motion = cv.motion_from_msg(plot['motion'])
    retargeter = build_retargeter(config.robot)  # the joint names and the sim node's limits
    trajectory = cv.trajectory_from_msg(plot['trajectory'], robot=config.robot,
                                        joint_names=list(retargeter.joint_names))
    trajectory, _ = retime(trajectory, retargeter.motion_limits())
    scene = build_scene(config.robot)
    result = simulate(scene, trajectory, motion)
    try:
        path = render_video(scene.model, result.qpos_sim, out / 'text_clip.mp4',
                            trajectory.fps, motion=motion, focus_bodies=scene.hand_body_ids,
                            source_frames=retimed_source_frames(trajectory))
    except HandxError as error:  # no offscreen OpenGL here: say so, keep the rest
        print(f'demo: no video ({error})', file=sys.stderr)
        return {}
    return {'video': str(path.relative_to(out))}


def _touch_line(summary: dict[str, Any]) -> str:
    """Whether the robot's hands touched in the gate's simulation, from its summary."""
    def number(key: str) -> float | None:
        try:
            return float(summary[key])
        except (KeyError, TypeError, ValueError):
            return None

    events, closest, commanded = (number(k) for k in (
        'robot_contact_events', 'min_inter_hand_distance_m', 'min_command_distance_m'))
    if events is None:
        return 'Robot hands in simulation: no contact summary.'
    where = '' if closest is None else f', closest {closest * 1e3:.1f} mm'
    command = '' if commanded is None else f', commanded {commanded * 1e3:.1f} mm'
    if not events:
        return f'Robot hands in simulation: they never touch{where}{command}.'
    return (f'Robot hands in simulation: they touch ({int(events)} contact event'
            f'{"s" if events != 1 else ""}{where}{command}; negative: overlap).')


def _markdown(report: dict[str, Any]) -> str:
    text = report['text']
    gate = text['gate']
    lines = ['# HandX demo: the node graph', '',
             f"Nodes up in {report['startup_s']:.1f} s. Prompt: *{text['prompt']}*", '',
             f"Gate on the {report['config']['robot']} (from `/handx/sim_report`): "
             f"**{'pass' if gate['passed'] else 'fail'}**"
             + ('' if gate['passed'] else ': ' + '; '.join(gate['reasons'])), '',
             _touch_line(gate.get('summary') or {}), '',
             '| step | seconds after the prompt |', '|---|---|']
    lines += [f'| {name} | {value:.3f} |' for name, value in text['latency_s'].items()]
    for phase in ('reaction', 'teleop'):
        entry = report.get(phase, {})
        lines += ['', f'**{phase}**: {entry.get("frames_sent", 0)} observed frames, '
                  f'{entry.get("clips_generated", 0)} clips on /handx/motion, gate '
                  f'{entry.get("gate_passed", 0)} passed / {entry.get("gate_failed", 0)} '
                  f'failed, {entry.get("commands", 0)} commands streamed.']
        if 'observed_to_clip_s' in entry:
            d = entry['observed_to_clip_s']
            lines.append(f"Observed frame to reaction clip: p50 {d['p50']:.3f} s, p99 "
                         f"{d['p99']:.3f} s over {d['n']} clips.")
    stream = report['streaming']
    if 'rate_hz' in stream:
        lines += ['', f"Commands: {stream['messages']} messages at {stream['rate_hz']:.1f} Hz; "
                  f"stamp jitter p50 {stream['stamp_jitter_ms']['p50']:.2f} ms, p99 "
                  f"{stream['stamp_jitter_ms']['p99']:.2f} ms; arrival jitter p99 "
                  f"{stream['arrival_jitter_ms']['p99']:.2f} ms."]
    recording = report.get('recording', {})
    for kind in ('problems', 'warnings'):
        for item in recording.get(kind, []):
            lines += ['', f'**{kind[:-1]}**: {item}']
    if recording.get('messages'):
        lines += ['', f"Recording `{recording['path']}`:", '', '| topic | messages |',
                  '|---|---|']
        lines += [f'| {topic} | {n} |' for topic, n in sorted(recording['messages'].items())]
    lines += ['', '| node | rejected messages | exit status |', '|---|---|---|']
    for name, entry in report.get('nodes', {}).items():
        counters = report.get('diagnostics', {}).get(f'/{name}', {})
        lines.append(f"| {name} | {counters.get('rejected', '-')} | {entry['exit_status']} |")
    for key, path in report.get('figures', {}).items():
        lines += ['', f'![{key}]({path})' if path.endswith('.png') else f'[{key}]({path})']
    return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('demo_out'), help='output folder')
    parser.add_argument('--robot', default='allegro', help='robot folder (default allegro)')
    parser.add_argument('--model', default='diffusion', choices=['diffusion', 'ar'])
    parser.add_argument('--prompt', default=GENERATION_PROMPT, help='the text-phase prompt')
    parser.add_argument('--no-video', action='store_true', help='skip the rendered video')
    parser.add_argument('--timeout-s', type=float, default=120.0,
                        help='longest wait for any one step (default 120)')
    args = parser.parse_args(argv)
    config = DemoGraphConfig(robot=args.robot, model=args.model, prompt=args.prompt,
                             video=not args.no_video, timeout_s=args.timeout_s)
    try:
        run(args.out, config)
    except HandxError as error:
        print(f'demo: error: {error}', file=sys.stderr)
        return 2
    print((args.out / 'report.md').read_text())
    print(f'demo: wrote {args.out}/report.json, report.md, commands.png, latency.png, the '
          'recording and logs/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
