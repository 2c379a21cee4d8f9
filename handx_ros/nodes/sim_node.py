"""``sim_node``: gate robot trajectories in MuJoCo, then stream them safely to the robot.

Topics (DESIGN.md):

* in ``/handx/robot_trajectory`` (``trajectory_msgs/JointTrajectory``, reliable):

  - a **clip** (two points or more) is queued for the gate (``queue_size``; beyond that it is
    rejected and counted). A worker thread deserializes and checks it (a clip longer than
    ``max_clip_duration_s`` is rejected and counted before it is simulated), simulates it in
    the robot's scene (built once, at start), judges it (``gate_config``) and publishes
    ``/handx/sim_report``; a clip that passes is appended to the playback queue (at most
    ``max_playback_clips`` waiting). Simulating one clip may take at most ``max_gate_wall_s``
    of wall time: past that the simulation stops and the clip fails, the report naming the
    limit, so one clip cannot hold the gate (and the clips queued behind it) for long.
  - a **live target** (one point, teleoperation) goes straight to the safety filter, stamped
    with its receive time. It takes over from playback: the playing clip and the queued ones
    are dropped (counted as ``clips_preempted``).

  Bytes that do not deserialize as a ``JointTrajectory`` (truncated, random), like any other
  bad message, are rejected and counted on ``/diagnostics``; the stream goes on.

* out ``/handx/sim_report`` (``diagnostic_msgs/DiagnosticArray``, reliable, transient local):
  one status per gated clip, pass or fail with every reason and the simulation's summary.
* out the controller topic (``controller_topic``, default ``/<robot>/joint_trajectory``,
  ``trajectory_msgs/JointTrajectory``) and ``/handx/joint_commands``
  (``sensor_msgs/JointState``), both reliable, one message each per tick of a timer at
  ``rate_hz``. Each tick submits the playing clip's target at the clip time (linear
  interpolation between frames) and publishes what
  :class:`~handx_ros.sim.safety.CommandSafety` returns: inside the joint limits, velocity
  and acceleration bounded per joint by the robot's own limits (capped or replaced by
  ``config/safety.yaml``, :mod:`~handx_ros.sim.safety`), and halting smoothly when no fresh
  target came within the watchdog timeout (live targets from a dead upstream node, a clip
  that has settled). Before any input the robot holds its neutral pose. Joint names: the
  robot's controller names (floating wrists are not streamed).

  Playback timeline: a clip queued while another plays starts where it ends (back to back).
  A clip that starts the robot from a hold first gets a lead-in on its first frame, long
  enough to reach it within the safety bounds (:func:`lead_in_s`). After the last queued clip
  its last frame stays the target for ``settle_s`` (the robot finishes the gated motion
  exactly, even if it lags), then input goes stale and the robot holds.
* out ``/diagnostics``: rejections and ``clips_passed``, ``clips_failed``, ``clips_retimed``,
  ``clips_preempted``,
  ``live_targets``, ``commands_sent``, ``stale_ticks``, ``skipped_ticks`` (ticks that sent
  nothing: the clock had not passed the last command's stamp), ``queue_length`` (clips waiting to
  play), ``gate_queue_length``, ``playing``, ``tick_interval_p99_ms`` and
  ``tick_interval_max_ms`` (over the last ``TICK_WINDOW`` ticks), and the safety filter's
  intervention counts as ``safety/<kind>``.

If the node dies anyway (an unexpected exception ends its spin), :meth:`SimNode.halt` first
publishes one last command on both command topics: the position last commanded, zero
velocity, so that the controller holds there rather than following a stale trajectory.

The timer and the subscription have their own callback groups and do little work (no
simulation, no allocation beyond the messages); simulation runs on the worker thread. It
holds the GIL only in short stretches (MuJoCo and NumPy release it): measured on the 2-core
machine at 200 Hz, with clips simulated between the ticks, the stamps of the streamed
commands are 5 ms apart with jitter p99 1.2-3.4 ms (``make demo``, ``bench_pipeline.py``).

Parameters (``config/nodes.yaml``, section ``handx_sim``): ``robot``, ``rate_hz``,
``gate_config`` and ``safety_config`` ('' : the installed ``config/sim_gate.yaml`` and
``config/safety.yaml``), ``controller_topic``, ``frame_id``, ``queue_size``,
``max_playback_clips``, ``settle_s``, ``command_horizon_s`` (the controller message's
``time_from_start``; 0: two ticks), ``max_trajectory_points``, ``max_clip_duration_s``
(longest clip gated, by its frames and frame rate), ``max_gate_wall_s`` (most wall time
simulating one clip).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from handx_gen.errors import ConfigError, HandxError, MessageError
from handx_gen.rates import MAX_DURATION_S, check_clip_size
from handx_ros import conversions
from handx_ros.nodes.common import Rejections, run_node
from handx_ros.nodes.parameters import declare_parameters
from handx_ros.nodes.wire import deserialize, sequence_length
from handx_ros.nodes.worker import QueueWorker
from handx_ros.paths import config_dir
from handx_ros.retarget import RobotTrajectory, build_retargeter
from handx_ros.retarget.retime import retime
from handx_ros.sim import (
    CommandSafety,
    SafetyConfig,
    build_scene,
    judge,
    load_gate_config,
    simulate,
)
from handx_ros.sim.safety import INTERVENTION_KINDS, SafeCommand

__all__ = ['JOINT_COMMANDS_TOPIC', 'SIM_REPORT_TOPIC', 'TRAJECTORY_TOPIC', 'SimNode', 'lead_in_s',
           'main']

NODE_NAME = 'handx_sim'
TRAJECTORY_TOPIC = '/handx/robot_trajectory'
SIM_REPORT_TOPIC = '/handx/sim_report'
JOINT_COMMANDS_TOPIC = '/handx/joint_commands'
SAFETY_CONFIG_FILE = 'safety.yaml'
TICK_WINDOW = 500  # ticks over which the interval statistics are reported
MAX_LIVE_TARGET_BYTES = 65536  # a live target of a 100-joint robot takes ~4 kB

PARAMETERS: dict[str, Any] = {
    'robot': 'allegro',
    'rate_hz': 200.0,
    'gate_config': '',
    'safety_config': '',
    'controller_topic': '',
    'frame_id': 'world',
    'queue_size': 4,
    'max_playback_clips': 8,
    'settle_s': 1.0,
    'command_horizon_s': 0.0,
    'max_trajectory_points': conversions.MAX_TRAJECTORY_POINTS,
    'max_clip_duration_s': 60.0,
    'max_gate_wall_s': 20.0,
}


@dataclasses.dataclass(frozen=True)
class _Clip:
    trajectory: RobotTrajectory
    stamp_s: float  # the trajectory message's stamp (that of the motion it came from)


@dataclasses.dataclass
class _Playback:
    qpos: np.ndarray  # (T, n) in the streamed joint order
    fps: float
    start_s: float  # node-clock time of frame 0

    @property
    def duration_s(self) -> float:
        return self.qpos.shape[0] / self.fps

    def target(self, t_s: float) -> np.ndarray:
        """(n,) the clip at time ``t_s`` from its start, linear between frames."""
        last = self.qpos.shape[0] - 1
        f = min(max(t_s * self.fps, 0.0), float(last))
        i = min(int(f), max(last - 1, 0))
        w = f - i
        return self.qpos[i] if last == 0 else (1.0 - w) * self.qpos[i] + w * self.qpos[i + 1]


def lead_in_s(gap: np.ndarray, max_velocity: np.ndarray, max_acceleration: np.ndarray,
              margin: float = 1.5) -> float:
    """Time to give a joint-space ``gap`` (n,) before a clip starts: per joint the rest-to-rest
    time at the bounds (``max(d / v_max, 2 sqrt(d / a_max))``), the slowest joint's, times
    ``margin``."""
    distance = np.abs(gap)
    seconds = np.maximum(distance / max_velocity, 2.0 * np.sqrt(distance / max_acceleration))
    return margin * float(seconds.max(initial=0.0))


class SimNode(Node):
    """The simulation gate and the safe command streamer of one robot.

    Args:
        node_name: The node name (its section in ``config/nodes.yaml``).
        **kwargs: Passed to :class:`rclpy.node.Node` (e.g. ``parameter_overrides``).

    Raises:
        HandxError: Unknown robot, unreadable configs or bad parameters (logged first, the
            node destroyed).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            params = declare_parameters(self, PARAMETERS)
            for name in ('rate_hz', 'max_gate_wall_s'):
                if params[name] <= 0.0:
                    raise ConfigError(f'{name} must be > 0, got {params[name]}')
            if not 0.0 < params['max_clip_duration_s'] <= MAX_DURATION_S:
                raise ConfigError(f'max_clip_duration_s must be in (0, {MAX_DURATION_S:g}], '
                                  f'got {params["max_clip_duration_s"]}')
            for name in ('settle_s', 'command_horizon_s'):
                if params[name] < 0.0:
                    raise ConfigError(f'{name} must be >= 0, got {params[name]}')
            for name, least in (('queue_size', 1), ('max_playback_clips', 1),
                                ('max_trajectory_points', 2)):
                if params[name] < least:
                    raise ConfigError(f'{name} must be >= {least}, got {params[name]}')
            retargeter = build_retargeter(params['robot'])
            self._scene = build_scene(retargeter.spec)
            self._gate = load_gate_config(params['gate_config'] or None)
            safety_config = SafetyConfig.from_yaml(
                Path(params['safety_config']) if params['safety_config']
                else config_dir() / SAFETY_CONFIG_FILE)
            self.joint_names: tuple[str, ...] = retargeter.joint_names
            lower, upper = retargeter.joint_limits()  # (n,)
            self._limits = retargeter.motion_limits()
            self._safety = CommandSafety(self.joint_names, lower, upper, safety_config,
                                         rate_hz=params['rate_hz'],
                                         max_velocity=self._limits.max_velocity,
                                         max_acceleration=self._limits.max_acceleration)
            self._safety.reset(retargeter.neutral_qpos())
        except HandxError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            self.destroy_node()
            raise
        self.params = params
        self.robot = retargeter.spec.name
        self.frame_id: str = params['frame_id']
        self.horizon_s = params['command_horizon_s'] or 2.0 / params['rate_hz']
        self.controller_topic = params['controller_topic'] or f'/{self.robot}/joint_trajectory'
        # Everything below the lock is shared by the timer, the subscription and the worker.
        self._lock = threading.Lock()
        self._playing: _Playback | None = None
        self._queue: collections.deque[_Clip] = collections.deque()
        self._tick_times: collections.deque[float] = collections.deque(maxlen=TICK_WINDOW + 1)
        self.last_live_target_s = float('nan')  # node clock, when the last one was accepted
        self.counts = dict.fromkeys(('clips_passed', 'clips_failed', 'clips_retimed',
                                     'clips_preempted',
                                     'live_targets', 'commands_sent', 'stale_ticks'), 0)
        self.rejections = Rejections(self, extra=self._counters)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._report_publisher = self.create_publisher(DiagnosticArray, SIM_REPORT_TOPIC,
                                                       latched)
        self._controller_publisher = self.create_publisher(JointTrajectory,
                                                           self.controller_topic, reliable)
        # One second of history: a subscriber that stalls (a recorder on a loaded machine)
        # still gets every command; a reliable writer drops what its history cannot hold.
        self._state_publisher = self.create_publisher(
            JointState, JOINT_COMMANDS_TOPIC,
            QoSProfile(depth=max(10, int(np.ceil(params['rate_hz']))),
                       reliability=ReliabilityPolicy.RELIABLE))
        self._worker: QueueWorker[bytes] = QueueWorker(
            'handx_sim_gate', self._gate_clip, self._gate_crashed, params['queue_size'])
        # Raw: the point count is read from the bytes first; a clip is deserialized on the
        # worker thread, a live target (small) here.
        self.create_subscription(JointTrajectory, TRAJECTORY_TOPIC,
                                 self.rejections.guard(TRAJECTORY_TOPIC, self._on_trajectory),
                                 reliable, callback_group=MutuallyExclusiveCallbackGroup(),
                                 raw=True)
        self._timer = self.create_timer(1.0 / params['rate_hz'], self._tick,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f'streaming {self.robot} ({len(self.joint_names)} joints) at '
            f'{params["rate_hz"]:g} Hz on {self.controller_topic} and {JOINT_COMMANDS_TOPIC}')

    # ------------------------------------------------------------------ input

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_trajectory(self, data: bytes) -> None:
        """A serialized trajectory: a live target now, a clip to the gate's queue. (Guarded:
        what it raises is rejected and counted.)"""
        try:
            points = sequence_length(data, string_arrays=1, what='trajectory',
                                     most=self.params['max_trajectory_points'])
        except MessageError as error:
            self.rejections.reject(TRAJECTORY_TOPIC, str(error))
            return
        if points == 1:
            if len(data) > MAX_LIVE_TARGET_BYTES:  # long names: not deserialized here
                self.rejections.reject(TRAJECTORY_TOPIC, f'live target: {len(data)} bytes > '
                                       f'{MAX_LIVE_TARGET_BYTES}')
                return
            self._on_live_target(deserialize(data, JointTrajectory, what='live target'))
        elif not self._worker.submit(data):
            self.rejections.reject(TRAJECTORY_TOPIC, f'gate queue full '
                                   f'({self.params["queue_size"]} clips waiting)')

    def _on_live_target(self, msg: JointTrajectory) -> None:
        try:
            _, qpos = conversions.live_target_from_msg(msg, joint_names=self.joint_names,
                                                       frame_id=self.frame_id)
        except MessageError as error:
            self.rejections.reject(TRAJECTORY_TOPIC, str(error))
            return
        with self._lock:
            dropped = len(self._queue) + (self._playing is not None)
            self._playing = None
            self._queue.clear()
            now_s = self._now_s()
            reason = self._safety.submit(qpos, now_s)
            self.counts['clips_preempted'] += dropped
            if reason is None:
                self.counts['live_targets'] += 1
                self.last_live_target_s = now_s
        if dropped:
            self.get_logger().warning(f'a live target took over: dropped {dropped} clip(s) '
                                      'playing or waiting to play')
        if reason is not None:
            self.rejections.reject(TRAJECTORY_TOPIC, f'unsafe live target: {reason.value}')

    # ------------------------------------------------------------------ gate (worker thread)

    def _gate_clip(self, data: bytes) -> None:
        """Worker thread: check a serialized clip, simulate and judge it, report, queue it."""
        start = time.perf_counter()
        try:
            msg = deserialize(data, JointTrajectory, what='trajectory')
            trajectory = conversions.trajectory_from_msg(
                msg, robot=self.robot, joint_names=self.joint_names, frame_id=self.frame_id,
                max_points=self.params['max_trajectory_points'])
            check_clip_size(trajectory.num_frames, trajectory.fps, what='trajectory',
                            error=MessageError, max_frames=self.params['max_trajectory_points'],
                            max_duration_s=self.params['max_clip_duration_s'])
        except MessageError as error:
            self.rejections.reject(TRAJECTORY_TOPIC, str(error))
            return
        stamp_s = conversions.stamp_to_s(msg.header.stamp)
        extra: dict[str, Any] = {}
        try:
            retimed, retiming = retime(trajectory, self._limits,
                                       max_duration_s=self.params['max_clip_duration_s'])
        except HandxError as error:  # gated as it came, failing there with its reason
            retimed, retiming = trajectory, None
            extra = {'not_retimed': str(error)}
        clip = _Clip(retimed, stamp_s)
        if retiming is None:
            pass
        elif retiming.retimed:
            extra = {'retimed_from_s': round(retiming.duration_before_s, 4),
                     'retimed_to_s': round(retiming.duration_after_s, 4),
                     'retime_factor': round(retiming.factor, 4)}
            with self._lock:
                self.counts['clips_retimed'] += 1
            self.get_logger().info(f'clip of {trajectory.num_frames} frames '
                                   f'{retiming.describe()}')
        elif retiming.reason:
            extra = {'not_retimed': retiming.reason}
        try:
            result = simulate(self._scene, clip.trajectory,
                              max_wall_s=self.params['max_gate_wall_s'])
        except HandxError as error:  # a pair's clip without its wrist poses, the time limit
            self._report(clip, False, [f'cannot simulate: {error}'], {
                **extra, 'gate_wall_s': round(time.perf_counter() - start, 4)})
            return
        verdict = judge(result, self._gate)
        summary = {**result.summary(), **extra}
        summary['gate_wall_s'] = round(time.perf_counter() - start, 4)
        self._report(clip, verdict.passed, list(verdict.reasons), summary)
        if verdict.passed:
            with self._lock:
                full = len(self._queue) >= self.params['max_playback_clips']
                if not full:
                    self._queue.append(clip)
            if full:
                self.rejections.reject(TRAJECTORY_TOPIC, f'playback queue full '
                                       f'({self.params["max_playback_clips"]} clips waiting)')

    def _gate_crashed(self, data: bytes, error: Exception) -> None:
        """An unexpected error on a clip: logged and counted, the worker goes on."""
        self.get_logger().error(f'gating a clip failed unexpectedly: {error!r}')
        self.rejections.reject(TRAJECTORY_TOPIC, f'internal error: {type(error).__name__}')

    def _report(self, clip: _Clip, passed: bool, reasons: list[str],
                summary: dict[str, Any]) -> None:
        self._report_publisher.publish(conversions.sim_report_msg(
            robot=self.robot, passed=passed, reasons=reasons, summary=summary,
            stamp_s=self._now_s(), motion_stamp_s=clip.stamp_s))
        with self._lock:
            self.counts['clips_passed' if passed else 'clips_failed'] += 1
        if passed:
            self.get_logger().info(f'gate passed a clip of {clip.trajectory.num_frames} frames')
        else:
            self.get_logger().warning(f'gate failed a clip of {clip.trajectory.num_frames} '
                                      f'frames: {"; ".join(reasons)}')

    # ------------------------------------------------------------------ streaming (timer)

    def _playback_target(self, now_s: float) -> np.ndarray | None:
        """The target now: the playing clip's at the clip time, starting the next queued clip
        as one ends, or the last clip's last frame while it settles; ``None`` when nothing
        plays. Call with the lock held."""
        while True:
            playing = self._playing
            if playing is None:
                if not self._queue:
                    return None
                self._playing = self._start(self._queue.popleft(), now_s, None)
                continue
            t_s = now_s - playing.start_s
            if t_s < playing.duration_s:
                return playing.target(t_s)
            if self._queue:
                self._playing = self._start(self._queue.popleft(), now_s,
                                            playing.start_s + playing.duration_s)
                continue
            if t_s < playing.duration_s + self.params['settle_s']:
                return playing.qpos[-1]
            self._playing = None
            return None

    def _start(self, clip: _Clip, now_s: float, after_s: float | None) -> _Playback:
        """Playback of ``clip`` from its lead-in, or back to back ``after_s`` (the end of the
        previous clip) when the robot can follow from there."""
        columns = [clip.trajectory.joint_index(name) for name in self.joint_names]
        qpos = np.asarray(clip.trajectory.qpos[:, columns])  # (T, n)
        current = self._safety.qpos
        assert current is not None  # reset at start
        start_s = now_s + lead_in_s(qpos[0] - current, self._safety.max_velocity,
                                    self._safety.max_acceleration)
        if after_s is not None:
            start_s = max(start_s, after_s)
        return _Playback(qpos, clip.trajectory.fps, start_s)

    def _tick(self) -> None:
        with self._lock:
            now_s = self._now_s()
            self._tick_times.append(time.monotonic())
            target = self._playback_target(now_s)
            if target is not None:
                self._safety.submit(target, now_s)
            command: SafeCommand | None = self._safety.tick(now_s)
            if command is None:  # not after the last command (the clock stepped back): no
                return  # message, the controller keeps the last one
            self.counts['commands_sent'] += 1
            self.counts['stale_ticks'] += int(command.stale)
        # Stamped with the command's own time: the filter's bounds hold over these stamps.
        self._controller_publisher.publish(conversions.controller_command_msg(
            self.joint_names, command.qpos, command.qvel, stamp_s=command.time_s,
            horizon_s=self.horizon_s))
        self._state_publisher.publish(conversions.joint_state_msg(
            self.joint_names, command.qpos, command.qvel, stamp_s=command.time_s))

    # ------------------------------------------------------------------ health

    def _counters(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
            counts['queue_length'] = len(self._queue)
            counts['playing'] = int(self._playing is not None)
            counts['skipped_ticks'] = self._safety.skipped_ticks
            ticks = np.diff(np.array(self._tick_times))
            safety = self._safety.counters()
        counts['gate_queue_length'] = self._worker.pending + int(self._worker.busy)
        if ticks.size:
            counts['tick_interval_p99_ms'] = round(float(np.percentile(ticks, 99)) * 1e3, 3)
            counts['tick_interval_max_ms'] = round(float(ticks.max()) * 1e3, 3)
        counts.update({f'safety/{kind.name.lower()}': safety[kind.name.lower()]
                       for kind in INTERVENTION_KINDS})
        return counts

    def halt(self) -> None:
        """Publish a hold command now: the position last commanded, zero velocity, on the
        controller topic and ``/handx/joint_commands`` (what :func:`run_node` calls when the
        node dies on an unexpected error, so the robot does not follow a stale command)."""
        self._timer.cancel()
        with self._lock:
            qpos = self._safety.qpos
        if qpos is None:  # never: reset at start
            return
        qpos = np.array(qpos, dtype=float)  # (n,)
        qvel = np.zeros_like(qpos)
        now_s = self._now_s()
        self._controller_publisher.publish(conversions.controller_command_msg(
            self.joint_names, qpos, qvel, stamp_s=now_s, horizon_s=self.horizon_s))
        self._state_publisher.publish(conversions.joint_state_msg(
            self.joint_names, qpos, qvel, stamp_s=now_s))
        self.get_logger().warning(f'halted: holding {self.robot} where it was last commanded')

    def close(self) -> None:
        """Stop the gate's worker thread (after the clip it is simulating, if any)."""
        self._timer.cancel()
        self._worker.close()


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run handx_ros sim_node``; exit status 1 when it cannot start."""
    return run_node(SimNode, args)


if __name__ == '__main__':
    sys.exit(main())
