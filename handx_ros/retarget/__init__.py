"""Retargeting human hand motion onto robot hands and humanoids, by Pinocchio kinematics.

No torch and no rclpy here: :mod:`handx_ros.retarget.dex_backend` (the dex-retargeting
baseline, which imports torch) and :mod:`handx_ros.retarget.collision` load on demand.
"""

from handx_ros.retarget.bimanual import (
    BimanualFrame,
    HumanoidRetargeter,
    PairRetargeter,
    build_retargeter,
    retarget_motion,
)
from handx_ros.retarget.filters import OneEuroFilter
from handx_ros.retarget.frames import (
    base_poses,
    keypoints_in_wrist_frame,
    wrist_frames_from_keypoints,
    wrist_poses_from_motion,
)
from handx_ros.retarget.retargeter import (
    FrameResult,
    HandRetargeter,
    Objective,
    RetargetConfig,
    RetargetResult,
)
from handx_ros.retarget.robot import ChainKinematics, hand_kinematics, load_urdf_model
from handx_ros.retarget.spec import RobotKind, RobotSpec, available_robots, load_robot_spec
from handx_ros.retarget.trajectory import TRAJECTORY_FORMAT, RobotTrajectory

__all__ = [
    'TRAJECTORY_FORMAT',
    'BimanualFrame',
    'ChainKinematics',
    'FrameResult',
    'HandRetargeter',
    'HumanoidRetargeter',
    'Objective',
    'OneEuroFilter',
    'PairRetargeter',
    'RetargetConfig',
    'RetargetResult',
    'RobotKind',
    'RobotSpec',
    'RobotTrajectory',
    'available_robots',
    'base_poses',
    'build_retargeter',
    'hand_kinematics',
    'keypoints_in_wrist_frame',
    'load_robot_spec',
    'load_urdf_model',
    'retarget_motion',
    'wrist_frames_from_keypoints',
    'wrist_poses_from_motion',
]
