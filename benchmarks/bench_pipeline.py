"""Latency of the running node graph, end to end through ROS 2 on this machine.

Starts the demo's nodes (:mod:`handx_ros.graph`) as processes in a private ROS domain, exactly
as ``make demo`` does, and measures from a client process (this one):

* **text to first command**: a prompt published on ``/handx/text_command`` until the first
  ``/handx/joint_commands`` message after the clip's gate report (generation, retargeting,
  MuJoCo gate, first streaming tick);
* **teleop**: observed two-hand frames stream at 30 Hz on ``/handx/observed_hands``; each probe
  waits until the commands are still, then publishes a frame of another pose and times the
  first streamed command that moves (retargeting node, sim node's safety filter and timer,
  three hops of DDS), and the live target it caused on ``/handx/robot_trajectory`` (the
  retargeting node's share). p50/p99 over ``--probes``;
* **jitter**: the intervals of the command stream against the configured rate, by header
  stamp (the sim node's timer) and by arrival here.

Run::

    .venv/bin/python benchmarks/bench_pipeline.py --save pipeline.json
    .venv/bin/python benchmarks/bench_pipeline.py --robot inspire --probes 50 --prompts 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_ros.demo_graph import (  # noqa: E402
    GENERATION_PROMPT,
    NodeProcesses,
    isolated_environment,
)
from handx_ros.graph import argument_overrides  # noqa: E402

PROMPTS = (GENERATION_PROMPT,
           'The left hand waves while the right hand stays still.',
           'Both hands make a fist, then open.')
MOVED_RAD = 1e-3  # a command moved by more than this counts as the reaction to a probe
STILL_RAD = 1e-5  # consecutive commands closer than this count as still


def percentiles_ms(values: list[float]) -> dict[str, float]:
    array = 1e3 * np.asarray(values, dtype=np.float64)
    return {'n': int(array.size), 'p50': float(np.percentile(array, 50)),
            'p95': float(np.percentile(array, 95)), 'p99': float(np.percentile(array, 99)),
            'max': float(array.max())}


class Client:
    """Publishes prompts and observed frames; keeps every command and report it receives."""

    def __init__(self) -> None:
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
        from trajectory_msgs.msg import JointTrajectory

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node('handx_bench_client')
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, np.ndarray]] = []  # (arrival, stamp, qpos)
        self.last_move_s = time.monotonic()  # arrival of the last command that moved
        self.probe_sent_s: float | None = None  # a probe waiting for its answer
        self.probe_base = np.zeros(0)  # the commanded position when it was sent
        self.latencies: list[float] = []  # probe to the first command that moved, seconds
        self.target_latencies: list[float] = []  # probe to its live target from retargeting
        self.target_seen = False
        self.reports: list[tuple[float, object]] = []
        self.nodes_seen: set[str] = set()
        self.node.create_subscription(JointState, '/handx/joint_commands', self._command,
                                      reliable)
        self.node.create_subscription(
            DiagnosticArray, '/handx/sim_report', self._report,
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics,
                                      reliable)
        self.node.create_subscription(JointTrajectory, '/handx/robot_trajectory', self._target,
                                      reliable)
        self.text = self.node.create_publisher(String, '/handx/text_command', reliable)
        self.observed = self.node.create_publisher(PoseArray, '/handx/observed_hands',
                                                   qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _command(self, message) -> None:
        now = time.monotonic()
        stamp = message.header.stamp.sec + 1e-9 * message.header.stamp.nanosec
        qpos = np.array(message.position)
        with self.lock:
            previous = self.commands[-1][2] if self.commands else None
            self.commands.append((now, stamp, qpos))
            if previous is None or np.max(np.abs(qpos - previous)) >= STILL_RAD:
                self.last_move_s = now
            # The probe's answer is timed here, on arrival: the measuring loop never polls.
            if self.probe_sent_s is not None and \
                    np.max(np.abs(qpos - self.probe_base)) > MOVED_RAD:
                self.latencies.append(now - self.probe_sent_s)
                self.probe_sent_s = None

    def _target(self, message) -> None:
        now = time.monotonic()
        with self.lock:
            if self.probe_sent_s is not None and not self.target_seen and \
                    len(message.points) == 1:
                self.target_latencies.append(now - self.probe_sent_s)
                self.target_seen = True

    def _report(self, message) -> None:
        with self.lock:
            self.reports.append((time.monotonic(), message))

    def _diagnostics(self, message) -> None:
        with self.lock:
            self.nodes_seen.update(status.name for status in message.status)

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(5.0)
        self.node.destroy_node()
        self.rclpy.shutdown()


def wait_for(condition, timeout_s: float, what: str, nodes: NodeProcesses):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        nodes.check_alive()
        time.sleep(0.002)
    raise TimeoutError(f'timed out after {timeout_s:.0f} s waiting for {what}')


def text_latency(client: Client, nodes: NodeProcesses, prompts: list[str]) -> dict:
    from std_msgs.msg import String

    from handx_ros.conversions import sim_report_from_msg

    rows = []
    for prompt in prompts:
        with client.lock:
            seen = len(client.reports)
        sent = time.monotonic()
        client.text.publish(String(data=prompt))
        arrival, message = wait_for(
            lambda seen=seen: client.reports[seen] if len(client.reports) > seen else None,
            120.0, 'a gate report', nodes)
        verdict = sim_report_from_msg(message)
        row = {'prompt': prompt, 'report_s': arrival - sent, 'passed': verdict['passed']}
        if verdict['passed']:
            first = wait_for(lambda arrival=arrival: next(
                (c for c in list(client.commands) if c[0] > arrival), None), 10.0, 'a command',
                nodes)
            row['first_command_s'] = first[0] - sent
            time.sleep(4.5)  # let the clip play out before the next prompt
        rows.append(row)
        print(f'text: {row}', flush=True)
    firsts = [r['first_command_s'] for r in rows if 'first_command_s' in r]
    return {'prompts': rows, 'first_command_ms': percentiles_ms(firsts) if firsts else None}


def teleop_latency(client: Client, nodes: NodeProcesses, probes: int) -> dict:
    from handx_ros.conversions import keypoints_to_pose_array
    from handx_ros.demo import FPS, compose_clip

    keypoints = compose_clip().keypoints.astype(np.float64)  # (T, 2, 21, 3)
    poses = [keypoints[0], keypoints[int(1.5 * FPS)]]  # open hands, left fist
    period = 1.0 / 30.0
    stamp_jitter: list[float] = []
    pose, next_send = 0, time.monotonic()
    deadline = time.monotonic() + 30.0 + 2.0 * probes
    with client.lock:
        start_index = len(client.commands)
        client.latencies.clear()
        client.target_latencies.clear()
    # Frames go out at 30 Hz. Once the commands have been still for 0.1 s, the next frame is
    # a probe: the other pose; the client's callback times the first command that moves.
    while time.monotonic() < deadline:
        with client.lock:
            if len(client.latencies) >= probes:
                break
            probe = (client.probe_sent_s is None and client.commands and
                     time.monotonic() - client.last_move_s > 0.1)
            if probe:
                pose = 1 - pose
                message = keypoints_to_pose_array(poses[pose], stamp_s=_ros_now(client))
                client.probe_base = client.commands[-1][2]
                client.target_seen = False
                client.probe_sent_s = time.monotonic()
        if not probe:
            message = keypoints_to_pose_array(poses[pose], stamp_s=_ros_now(client))
        client.observed.publish(message)  # a probe: sent at most a few µs after its time
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    with client.lock:
        latencies = list(client.latencies)
        targets = list(client.target_latencies)
        client.probe_sent_s = None
        stream = client.commands[start_index:]
    stamps = np.array([c[1] for c in stream])
    arrivals = np.array([c[0] for c in stream])
    rate = nodes.overrides['handx_sim']['rate_hz']
    if stamps.size > 2:
        stamp_jitter = list(np.abs(np.diff(stamps) - 1.0 / rate))
    return {'probes': len(latencies), 'observed_to_command_ms': percentiles_ms(latencies)
            if latencies else None,
            'observed_to_target_ms': percentiles_ms(targets) if targets else None,
            'command_rate_hz': float((stamps.size - 1) / (stamps[-1] - stamps[0]))
            if stamps.size > 2 else None,
            'stamp_jitter_ms': percentiles_ms(stamp_jitter) if stamp_jitter else None,
            'arrival_jitter_ms': percentiles_ms(list(np.abs(np.diff(arrivals) - 1.0 / rate)))
            if arrivals.size > 2 else None}


def _ros_now(client: Client) -> float:
    return client.node.get_clock().now().nanoseconds * 1e-9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--robot', default='allegro')
    parser.add_argument('--model', default='diffusion', choices=['diffusion', 'ar'])
    parser.add_argument('--rate-hz', type=float, default=200.0,
                        help='command rate (default 200, as config/nodes.yaml)')
    parser.add_argument('--prompts', type=int, default=3, help='text prompts to time (max 3)')
    parser.add_argument('--probes', type=int, default=100, help='teleop probes')
    parser.add_argument('--save', help='write the JSON report here')
    args = parser.parse_args(argv)
    env = isolated_environment(None)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    overrides = argument_overrides({'robot': args.robot, 'model': args.model})
    overrides['handx_sim']['rate_hz'] = args.rate_hz
    logs = Path(tempfile.mkdtemp(prefix='handx_bench_pipeline_'))
    nodes = NodeProcesses(env, logs, overrides)
    client = Client()
    try:
        names = {'/handx_generation', '/handx_retargeting', '/handx_sim'}
        wait_for(lambda: names <= client.nodes_seen and client.text.get_subscription_count(),
                 180.0, 'the nodes', nodes)
        print(f'nodes up after {time.monotonic() - nodes.started_s:.1f} s (logs in {logs})',
              flush=True)
        report = {'robot': args.robot, 'model': args.model, 'rate_hz': args.rate_hz,
                  'text': text_latency(client, nodes, list(PROMPTS[:args.prompts])),
                  'teleop': teleop_latency(client, nodes, args.probes), 'machine': machine()}
    finally:
        codes = nodes.stop()
        client.close()
    report['exit_status'] = codes
    teleop = report['teleop']['observed_to_command_ms']
    if teleop:
        print(f"teleop observed frame -> command: p50 {teleop['p50']:.2f} ms, p99 "
              f"{teleop['p99']:.2f} ms over {teleop['n']} probes")
        target = report['teleop']['observed_to_target_ms']
        if target:
            print(f"  of which observed frame -> live target (retargeting node): p50 "
                  f"{target['p50']:.2f} ms, p99 {target['p99']:.2f} ms")
    if report['text']['first_command_ms']:
        print(f"text -> first command: p50 {report['text']['first_command_ms']['p50']:.0f} ms")
    jitter = report['teleop']['stamp_jitter_ms']
    if jitter:
        print(f"command stream {report['teleop']['command_rate_hz']:.1f} Hz, stamp jitter p99 "
              f"{jitter['p99']:.2f} ms")
    save_report(report, args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
