"""Retargeting human hand motion onto robot hands and humanoids, by Pinocchio kinematics.

No torch and no rclpy here: :mod:`handx_ros.retarget.dex_backend` (the dex-retargeting
baseline, which imports torch) and :mod:`handx_ros.retarget.collision` load on demand.
"""

from handx_gen.lazy import lazy_exports

# module -> the names re-exported from it, imported on first use (handx_gen.lazy)
_EXPORTS = {
    'handx_ros.retarget.bimanual': (
        'BimanualFrame', 'HumanoidRetargeter', 'PairRetargeter', 'build_retargeter',
        'retarget_motion',
    ),
    'handx_ros.retarget.filters': ('OneEuroFilter',),
    'handx_ros.retarget.frames': (
        'base_poses', 'keypoints_in_wrist_frame', 'wrist_frames_from_keypoints',
        'wrist_poses_from_motion',
    ),
    'handx_ros.retarget.retargeter': (
        'FrameResult', 'HandRetargeter', 'Objective', 'RetargetConfig', 'RetargetResult',
    ),
    'handx_ros.retarget.robot': ('ChainKinematics', 'hand_kinematics', 'load_urdf_model'),
    'handx_ros.retarget.spec': ('RobotKind', 'RobotSpec', 'available_robots', 'load_robot_spec'),
    'handx_ros.retarget.trajectory': ('TRAJECTORY_FORMAT', 'RobotTrajectory'),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
