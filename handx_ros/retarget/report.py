"""One clip's retargeting metrics, from a retargeter and the trajectory it produced.

:func:`trajectory_report` recomputes everything from the trajectory (forward kinematics of
the written joint angles, not the solver's own numbers), so it judges any backend alike:
fingertip error at robot scale, joint-limit violations, self- and inter-hand collisions
(signed distances on the collision geometry), normalised jerk, convergence and time; for a
humanoid also the wrist position error, where a wrist could not reach its target (``reach``)
and how close the arms came to the body. A hand absent from the clip has no target: fingertip
errors are of the present hand, ``absent`` names the other, whose joints the report checks
for staying still (``absent_joint_motion_rad``: the largest change of any of its joints over
the clip, 0 when it held); limits, jerk and collisions count every joint and link.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handx_gen.hand.topology import KEYPOINT_NAMES
from handx_gen.motion import BimanualMotion
from handx_ros.retarget import metrics
from handx_ros.retarget.bimanual import HumanoidRetargeter, PairRetargeter, reach_summary
from handx_ros.retarget.frames import keypoints_in_wrist_frame, wrist_poses_from_motion
from handx_ros.retarget.trajectory import RobotTrajectory

__all__ = ['trajectory_report']


def trajectory_report(retargeter: PairRetargeter | HumanoidRetargeter,
                      trajectory: RobotTrajectory, motion: BimanualMotion, *,
                      collisions: bool = True) -> dict[str, Any]:
    """Metrics of ``trajectory`` (made by ``retargeter`` from ``motion``) as JSON-able data.

    Args:
        retargeter: The retargeter (for kinematics, joint order and limits).
        trajectory: Its output.
        motion: The human clip.
        collisions: Also compute collision distances (the slowest part, ~1 ms a frame).
    """
    R, p = wrist_poses_from_motion(motion)
    kp_wrist = keypoints_in_wrist_frame(motion.keypoints, R, p)  # (T, 2, 21, 3)
    names = list(trajectory.joint_names)
    tips: list[np.ndarray] = []
    hand_q: list[np.ndarray] = []
    absent_motion = 0.0
    for side, hand in enumerate(retargeter.hands):
        columns = [names.index(_controller(retargeter, side, joint))
                   for joint in hand.joint_names]
        columns += _arm_columns(retargeter, side, names)
        q = trajectory.qpos[:, columns[:len(hand.joint_names)]]  # (T, n)
        hand_q.append(q)
        if not motion.present[side]:  # nothing to track: how still did it hold?
            held = trajectory.qpos[:, columns]
            absent_motion = max(absent_motion, float(np.abs(held - held[0]).max()))
            continue
        fingertips = list(hand.hand.fingertips)
        index = [KEYPOINT_NAMES.index(k) for k in fingertips]
        errors = np.empty((trajectory.num_frames, len(fingertips)))
        for t in range(trajectory.num_frames):
            robot = hand.robot_keypoints(q[t])
            target = hand.human_targets(kp_wrist[t, side])
            errors[t] = [np.linalg.norm(robot[k] - target[i])
                         for k, i in zip(fingertips, index, strict=True)]
        tips.append(errors)
    lower, upper = _limits(retargeter, names)
    min_distance = None
    collision: dict[str, Any] = {}
    if collisions:
        from handx_ros.retarget.collision import HandCollisionModel, collision_report

        models = [HandCollisionModel(hand.chain) for hand in retargeter.hands]
        poses = trajectory.base_poses  # None for a humanoid: its hands' own links only
        result = collision_report(models, hand_q, poses)
        self_min = np.asarray(result.self_min_m)  # (T, hands)
        collision['self_collision_rate'] = metrics.collision_rate(self_min)
        collision['self_min_distance_mm'] = float(self_min.min() * 1e3)
        if result.inter_min_m is not None:
            inter = np.asarray(result.inter_min_m)
            collision['inter_hand_collision_rate'] = metrics.collision_rate(inter)
            collision['inter_hand_min_distance_mm'] = float(np.min(inter) * 1e3)
        min_distance = np.asarray(result.min_m)
    time_s = np.asarray(trajectory.info.get('time_s', []), dtype=np.float64)
    summary = metrics.summarize(
        fingertip_error_m=np.stack(tips, axis=1), qpos=trajectory.qpos,
        fps=trajectory.fps, lower=lower, upper=upper, min_distance_m=min_distance,
        converged=trajectory.converged, time_s=time_s if time_s.size else None)
    report: dict[str, Any] = {
        'robot': trajectory.robot,
        'absent': [side.name.lower() for side in motion.absent_sides],
        'backend': trajectory.info.get('backend'),
        'objective': trajectory.info.get('objective'),
        'frames': trajectory.num_frames,
        'converged_frames': int(np.count_nonzero(trajectory.converged))
        if trajectory.converged is not None else None,
        'fingertip_error_median_mm': float(np.median(np.concatenate(
            [t.ravel() for t in tips])) * 1e3),
        'fingertip_error_p95_mm': float(np.percentile(np.concatenate(
            [t.ravel() for t in tips]), 95) * 1e3),
        'time_p50_ms': float(np.median(time_s) * 1e3) if time_s.size else None,
        'lag': trajectory.info.get('lag'),
        'contact': {key: value for key, value in (trajectory.info.get('contact') or {}).items()
                    if key != 'shift_m_per_hand'} or None,
        'metrics': summary.to_dict(),
        **collision,
    }
    if motion.absent_sides:
        report['absent_joint_motion_rad'] = absent_motion
    wrist = trajectory.info.get('wrist_error_m_per_hand')
    if isinstance(retargeter, HumanoidRetargeter) and wrist is not None:
        wrist = np.asarray(wrist)
        tracked = wrist[:, np.asarray(motion.present)]  # an absent hand's arm has no target
        report['wrist_error_median_mm'] = float(np.median(tracked) * 1e3)
        report['wrist_error_p95_mm'] = float(np.percentile(tracked, 95) * 1e3)
        report['wrist_error_max_mm'] = float(tracked.max() * 1e3)
        rotation = trajectory.info.get('wrist_rotation_error_rad_per_hand')
        report['reach'] = reach_summary(wrist, retargeter.config.reach_tolerance_m,
                                        trajectory.fps, rotation,
                                        retargeter.config.arm_tilt_rad)
        if collisions:
            report['arm_body_min_distance_mm'] = _arm_body_clearance(retargeter, trajectory)
    return report


def _arm_body_clearance(retargeter: HumanoidRetargeter, trajectory: RobotTrajectory
                        ) -> float | None:
    """Smallest distance between an arm's links and the body over the clip, millimetres
    (:mod:`handx_ros.retarget.body_collision`; ``None`` when the arms are not checked)."""
    names = list(trajectory.joint_names)
    best = None
    for arm in retargeter.arms:
        if arm.body is None:
            continue
        columns = [names.index(retargeter.spec.controller_names.get(j, j))
                   for j in arm.chain.joint_names]
        d = min(arm.body.min_distance(q) for q in trajectory.qpos[:, columns])
        best = d if best is None else min(best, d)
    return None if best is None else float(best * 1e3)


def _arm_columns(retargeter: PairRetargeter | HumanoidRetargeter, side: int,
                 names: list[str]) -> list[int]:
    """Trajectory columns of a humanoid's arm on ``side`` (none for a pair)."""
    if not isinstance(retargeter, HumanoidRetargeter):
        return []
    chain = retargeter.arms[side].chain
    return [names.index(retargeter.spec.controller_names.get(j, j)) for j in chain.joint_names]


def _controller(retargeter: PairRetargeter | HumanoidRetargeter, side: int, joint: str) -> str:
    spec = retargeter.members[side] if isinstance(retargeter, PairRetargeter) else \
        retargeter.spec
    return spec.controller_names.get(joint, joint)


def _limits(retargeter: PairRetargeter | HumanoidRetargeter, names: list[str]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(nq,) limits in trajectory order."""
    lower, upper = retargeter.joint_limits()  # (nq,) in the retargeter's joint order
    columns = [retargeter.joint_names.index(name) for name in names]
    return lower[columns], upper[columns]
