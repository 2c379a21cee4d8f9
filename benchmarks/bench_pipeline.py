"""Latency of the running node graph, end to end through ROS 2 on this machine.

Starts the demo's nodes (:mod:`handx_ros.graph`) as processes in a private ROS domain, exactly
as ``make demo`` does, and measures from a client process (this one):

* **text to first command**: a prompt published on ``/handx/text_command`` until the first
  ``/handx/joint_commands`` message after the clip's gate report (generation, retargeting,
  MuJoCo gate, first streaming tick);
* **teleop**: observed two-hand frames stream at 30 Hz on ``/handx/observed_hands``; each probe
  waits until the commands are still, then publishes a frame of another pose and times the
  first streamed command that moves (retargeting node, sim node's safety filter and timer,
  three hops of DDS). p50/p99 over ``--probes``;
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

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node('handx_bench_client')
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, np.ndarray]] = []  # (arrival, stamp, qpos)
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
        with self.lock:
            self.commands.append((now, stamp, np.array(message.position)))

    def _report(self, message) -> None:
        with self.lock:
            self.reports.append((time.monotonic(), message))

    def _diagnostics(self, message) -> None:
        with self.lock:
            self.nodes_seen.update(status.name for status in message.status)

    def close(self) -> None:
        self.executor.shutdown()
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
    latencies: list[float] = []
    stamp_jitter: list[float] = []
    pose, next_send = 0, time.monotonic()
    probe_sent: float | None = None
    probe_base: np.ndarray | None = None
    still_since: float | None = None
    deadline = time.monotonic() + 30.0 + 2.0 * probes
    with client.lock:
        start_index = len(client.commands)
    while len(latencies) < probes and time.monotonic() < deadline:
        now = time.monotonic()
        with client.lock:
            recent = client.commands[-2:]
        if probe_sent is not None and recent:
            moved = [c for c in client.commands[-20:]
                     if c[0] > probe_sent and np.max(np.abs(c[2] - probe_base)) > MOVED_RAD]
            if moved:
                latencies.append(moved[0][0] - probe_sent)
                probe_sent, still_since = None, None
        elif probe_sent is None and len(recent) == 2:
            still = np.max(np.abs(recent[1][2] - recent[0][2])) < STILL_RAD
            still_since = (still_since or now) if still else None
            if still_since is not None and now - still_since > 0.1:
                pose = 1 - pose  # the probe: the other pose, published now
                probe_base = recent[1][2]
                client.observed.publish(keypoints_to_pose_array(poses[pose],
                                                                stamp_s=_ros_now(client)))
                probe_sent = time.monotonic()
                next_send = probe_sent + period
                continue
        if now >= next_send:
            client.observed.publish(keypoints_to_pose_array(poses[pose],
                                                            stamp_s=_ros_now(client)))
            next_send += period
        time.sleep(0.0005)
    with client.lock:
        stream = client.commands[start_index:]
    stamps = np.array([c[1] for c in stream])
    arrivals = np.array([c[0] for c in stream])
    rate = nodes.overrides.get('handx_sim', {}).get('rate_hz', 100.0)
    if stamps.size > 2:
        stamp_jitter = list(np.abs(np.diff(stamps) - 1.0 / rate))
    return {'probes': len(latencies), 'observed_to_command_ms': percentiles_ms(latencies)
            if latencies else None,
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
    parser.add_argument('--rate-hz', type=float, default=100.0, help='command rate')
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
