"""``retargeting_node``: human hand motion onto the robot chosen by parameter.

Topics (DESIGN.md):

* in ``/handx/motion`` (``trajectory_msgs/MultiDOFJointTrajectory``, reliable): a clip. It is
  queued (``queue_size``; beyond that it is rejected and counted) and retargeted on a worker
  thread (:meth:`~handx_ros.retarget.bimanual.PairRetargeter.retarget_motion`); the robot
  trajectory goes out on ``/handx/robot_trajectory`` with the motion's stamp.
* in ``/handx/observed_hands`` (``geometry_msgs/PoseArray``, sensor-data QoS), when
  ``teleop`` is true: a frame with both hands present is retargeted at once on the
  subscription's thread by a second retargeter (its own warm start) and published as a
  one-point ``JointTrajectory`` (a live target) stamped with the frame's stamp. Frames with one
  hand are the generation node's (reactions) and are ignored here.
* out ``/handx/robot_trajectory`` (``trajectory_msgs/JointTrajectory``, reliable): the
  robot's controller joint names, then the floating wrists as virtual joints (pairs).
* out ``/diagnostics``: rejections and ``clips_retargeted``, ``teleop_frames``,
  ``teleop_lagging_frames`` (live targets that lag their frame at the velocity limits),
  ``last_retarget_s``, ``queue_length``, ``unheard`` (trajectories and live targets published
  while no subscriber of ``/handx/robot_trajectory`` was matched: lost, and warned about).

Every message is checked by :mod:`handx_ros.conversions`; a bad one (bytes that do not
deserialize, truncated or random, included) is rejected and counted, and the node carries on:
both callbacks are guarded (:meth:`~handx_ros.nodes.common.Rejections.guard`), and the
worker reports what a clip raises. A clip's frame rate and length are checked on the way in
(1-1000 fps, :mod:`handx_gen.rates`), so a clip of two frames an hour apart is refused here,
not passed on to the gate. Both subscriptions are raw: the size a message declares is read
from its bytes first (:mod:`handx_ros.nodes.wire`), so a hostile one (a million points or
poses) is rejected in microseconds instead of being deserialized, and clips are deserialized
on the worker thread. An unknown robot or a bad parameter stops the node at start with one
clear log line and exit status 1.

Parameters (``config/nodes.yaml``, section ``handx_retargeting``): ``robot``, ``contact``
(default true: the robot hands touch where the human hands touch and keep clear elsewhere,
:mod:`handx_ros.retarget.contact`; clips and teleop alike), ``avoid_collisions`` (default
false; pairs only, ignored with a warning for a humanoid; keeps the hands apart, so it turns
``contact`` off for clips), ``frame_id``,
``teleop``, ``teleop_fps`` (the observed stream's rate, for the retargeter's input filter and
its per-frame velocity bound: each teleop frame moves every joint by at most its velocity
limit / ``teleop_fps`` from the last one, so a stream faster than ``teleop_fps`` could command
up to its rate / ``teleop_fps`` times the limit), ``teleop_reset_s`` (a gap longer than this
between observed frames restarts the teleop retargeter's warm start; the first frame after it
is not bounded, the command side leads in to it), ``teleop_prediction`` (the teleop
retargeter's constant-velocity prediction, :class:`RetargetConfig` ``prediction``; default 0:
a still hand gives still commands and a new pose is reached as fast as the velocity limits
allow, where the clip default 1.0 lets the
redundant thumb joints of the Allegro hand wander by up to 0.07 rad a frame on a static
input), ``teleop_max_iterations`` (solver iterations per teleop frame, default 10: a
jump to a new pose costs at most ~3.5 ms instead of ~5.6 ms and is finished on the next
frames; a still hand converges the same), ``teleop_avoid_collisions`` (default false: on
the Allegro pair it takes a teleop step from 1.3 ms to 4.1 ms, p99 2.1 to 13.7 ms),
``queue_size``, ``max_motion_frames``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from handx_gen.errors import ConfigError, HandxError, MessageError
from handx_gen.hand.topology import HandSide
from handx_ros import conversions
from handx_ros.nodes.common import Rejections, Unheard, run_node
from handx_ros.nodes.parameters import declare_parameters
from handx_ros.nodes.wire import deserialize, sequence_length
from handx_ros.nodes.worker import QueueWorker
from handx_ros.retarget import (
    HumanoidRetargeter,
    PairRetargeter,
    RetargetConfig,
    RobotKind,
    RobotTrajectory,
    build_retargeter,
    load_robot_spec,
    wrist_frames_from_keypoints,
)

__all__ = ['MOTION_TOPIC', 'OBSERVED_TOPIC', 'TRAJECTORY_TOPIC', 'RetargetingNode', 'main']

NODE_NAME = 'handx_retargeting'
MOTION_TOPIC = '/handx/motion'
OBSERVED_TOPIC = '/handx/observed_hands'
TRAJECTORY_TOPIC = '/handx/robot_trajectory'

PARAMETERS: dict[str, Any] = {
    'robot': 'allegro',
    'contact': True,
    'avoid_collisions': False,
    'frame_id': 'world',
    'teleop': True,
    'teleop_fps': 30.0,
    'teleop_reset_s': 0.5,
    'teleop_prediction': 0.0,
    'teleop_max_iterations': 10,
    'teleop_avoid_collisions': False,
    'queue_size': 4,
    'max_motion_frames': conversions.MAX_MOTION_FRAMES,
}

Retargeter = PairRetargeter | HumanoidRetargeter


class RetargetingNode(Node):
    """Retargets clips on a worker thread and, in teleop, observed frames as they arrive.

    Args:
        node_name: The node name (its section in ``config/nodes.yaml``).
        **kwargs: Passed to :class:`rclpy.node.Node` (e.g. ``parameter_overrides``).

    Raises:
        HandxError: Unknown robot or bad parameters (logged first, the node destroyed).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            params = declare_parameters(self, PARAMETERS)
            if params['queue_size'] < 1 or params['max_motion_frames'] < 2:
                raise ConfigError(f'queue_size must be >= 1 and max_motion_frames >= 2, got '
                                  f'{params["queue_size"]} and {params["max_motion_frames"]}')
            if params['teleop_fps'] <= 0.0:
                raise ConfigError(f'teleop_fps must be > 0, got {params["teleop_fps"]}')
            self._spec = load_robot_spec(params['robot'])
            self._avoid_collisions = bool(params['avoid_collisions'])
            self._contact = bool(params['contact'])
            if self._spec.kind != RobotKind.PAIR and (self._avoid_collisions
                                                      or params['teleop_avoid_collisions']):
                self.get_logger().warning(
                    f'{self._spec.name} is a {self._spec.kind.value}: collision avoidance is '
                    'for pairs of hands, retargeting without it')
                self._avoid_collisions = False
                params['teleop_avoid_collisions'] = False
            self._clip_retargeters: dict[float, Retargeter] = {}
            self._clip_retargeter(params['teleop_fps'])  # fails now on a robot it cannot do
            self._teleop: Retargeter | None = build_retargeter(
                self._spec, RetargetConfig(prediction=params['teleop_prediction'],
                                           max_iterations=params['teleop_max_iterations']),
                fps=params['teleop_fps'], avoid_collisions=params['teleop_avoid_collisions'],
                contact=params['contact'] and not params['teleop_avoid_collisions']
            ) if params['teleop'] else None
        except HandxError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            self.destroy_node()
            raise
        self.params = params
        self.robot = self._spec.name
        self.frame_id: str = params['frame_id']
        self._lock = threading.Lock()
        self.clips_retargeted = 0
        self.teleop_frames = 0
        self.teleop_lagging_frames = 0
        self.last_retarget_s = float('nan')
        self._last_teleop_stamp_s = float('-inf')
        self.rejections = Rejections(self, extra=self._counters)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._publisher = Unheard(
            self, self.create_publisher(JointTrajectory, TRAJECTORY_TOPIC, reliable),
            'the sim node')
        self._worker: QueueWorker[bytes] = QueueWorker(
            'handx_retarget_clips', self._retarget_clip, self._clip_failed,
            params['queue_size'])
        # Raw subscriptions: sizes are checked before anything is deserialized, and a clip is
        # deserialized on the worker thread, so the executor's callbacks all take
        # milliseconds (separate groups, so that a multi-threaded executor runs them side by
        # side).
        self.create_subscription(MultiDOFJointTrajectory, MOTION_TOPIC,
                                 self.rejections.guard(MOTION_TOPIC, self._on_motion), reliable,
                                 callback_group=MutuallyExclusiveCallbackGroup(), raw=True)
        if self._teleop is not None:
            self.create_subscription(PoseArray, OBSERVED_TOPIC,
                                     self.rejections.guard(OBSERVED_TOPIC, self._on_observed),
                                     qos_profile_sensor_data,
                                     callback_group=MutuallyExclusiveCallbackGroup(), raw=True)
        self.get_logger().info(
            f'retargeting onto {self.robot} ({len(self._teleop_names())} joints); teleop '
            f'{"on" if self._teleop is not None else "off"}')

    # ------------------------------------------------------------------ clips

    def _on_motion(self, data: bytes) -> None:
        """Queue a serialized clip for the worker, unless it declares too many frames."""
        try:
            sequence_length(data, string_arrays=1, what='motion',
                            most=self.params['max_motion_frames'])
        except MessageError as error:
            self.rejections.reject(MOTION_TOPIC, str(error))
            return
        if not self._worker.submit(data):
            self.rejections.reject(MOTION_TOPIC, f'queue full ({self.params["queue_size"]} '
                                   'clips waiting)')

    def _clip_retargeter(self, fps: float) -> Retargeter:
        """The clip retargeter for a frame rate (its input filter depends on it), cached."""
        retargeter = self._clip_retargeters.get(fps)
        if retargeter is None:
            retargeter = build_retargeter(
                self._spec, fps=fps, avoid_collisions=self._avoid_collisions,
                contact=self._contact and not self._avoid_collisions)
            self._clip_retargeters[fps] = retargeter
        return retargeter

    def _retarget_clip(self, data: bytes) -> None:
        """Worker thread: check, retarget and publish one serialized clip."""
        start = time.perf_counter()
        msg = deserialize(data, MultiDOFJointTrajectory, what='motion')
        motion = conversions.motion_from_msg(msg, frame_id=self.frame_id,
                                             max_frames=self.params['max_motion_frames'])
        trajectory = self._clip_retargeter(motion.fps).retarget_motion(motion)
        message = conversions.trajectory_to_msg(
            trajectory, stamp_s=conversions.stamp_to_s(msg.header.stamp),
            frame_id=self.frame_id)
        self._publisher.publish(message)
        seconds = time.perf_counter() - start
        with self._lock:
            self.clips_retargeted += 1
            self.last_retarget_s = seconds
        converged = 0 if trajectory.converged is None else int(trajectory.converged.sum())
        self.get_logger().info(
            f'retargeted a clip of {trajectory.num_frames} frames onto {self.robot} in '
            f'{seconds:.2f} s ({converged}/{trajectory.num_frames} frames converged)')

    def _clip_failed(self, data: bytes, error: Exception) -> None:
        if isinstance(error, MessageError):
            self.rejections.reject(MOTION_TOPIC, str(error))
            return
        if isinstance(error, HandxError):
            self.rejections.reject(MOTION_TOPIC, f'cannot retarget: {error}')
            return
        self.get_logger().error(f'retargeting a clip failed unexpectedly: {error!r}')
        self.rejections.reject(MOTION_TOPIC, f'internal error: {type(error).__name__}')

    # ------------------------------------------------------------------ teleop

    def _on_observed(self, data: bytes) -> None:
        """Retarget a frame with both hands now and publish it as a live target."""
        try:
            frame = conversions.observed_from_cdr(data, frame_id=self.frame_id)
        except MessageError as error:
            self.rejections.reject(OBSERVED_TOPIC, str(error))
            return
        if not bool(np.all(frame.present)):
            return  # one hand: the generation node's reaction input, not teleoperation
        retargeter = self._teleop
        assert retargeter is not None
        keypoints = frame.keypoints  # (2, 21, 3)
        R_world_wrist = np.empty((2, 3, 3))
        p_world_wrist = np.empty((2, 3))
        try:
            for side in HandSide:
                R_world_wrist[side], p_world_wrist[side] = wrist_frames_from_keypoints(
                    keypoints[side], side)
            gap_s = frame.stamp_s - self._last_teleop_stamp_s
            if not 0.0 <= gap_s <= self.params['teleop_reset_s']:
                retargeter.reset()  # a new stream (or a clock jump): no stale warm start
            result = retargeter.step(keypoints, R_world_wrist, p_world_wrist)
            trajectory = RobotTrajectory(
                robot=self.robot, fps=self.params['teleop_fps'],
                joint_names=retargeter.joint_names, qpos=result.qpos[None],
                base_poses=None if result.base_poses is None else result.base_poses[None])
        except HandxError as error:
            self.rejections.reject(OBSERVED_TOPIC, f'cannot retarget: {error}')
            return
        self._last_teleop_stamp_s = frame.stamp_s
        self._publisher.publish(conversions.trajectory_to_msg(
            trajectory, stamp_s=frame.stamp_s, frame_id=self.frame_id))
        with self._lock:
            self.teleop_frames += 1
            self.teleop_lagging_frames += int(bool(np.any(result.velocity_limited)))

    # ------------------------------------------------------------------ health

    def _teleop_names(self) -> tuple[str, ...]:
        return self._clip_retargeter(self.params['teleop_fps']).joint_names

    def _counters(self) -> dict[str, Any]:
        with self._lock:
            return {'clips_retargeted': self.clips_retargeted,
                    'teleop_frames': self.teleop_frames,
                    'teleop_lagging_frames': self.teleop_lagging_frames,
                    'last_retarget_s': self.last_retarget_s,
                    'unheard': self._publisher.count,
                    'queue_length': self._worker.pending + int(self._worker.busy)}

    def close(self) -> None:
        """Stop the worker thread (after the clip it is retargeting, if any)."""
        self._worker.close()


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run handx_ros retargeting_node``; exit status 1 when it cannot start."""
    return run_node(RetargetingNode, args)


if __name__ == '__main__':
    sys.exit(main())
