"""Hand model: topology, surface parts, rotations, skeleton, FK, joint limits, IK and fitting.

MANO model files (``handx_gen.hand.mano``: the chumpy-free loader, converter and smplx layer) are
imported from their module directly, since that module loads torch.

Canonical hand frame (SMPL-H T-pose frame, shared by MANO): the right hand at rest has its
fingers along -x, palm normal -y and thumb towards +z; the left hand is its mirror image through
the x = 0 plane. Units are metres and radians.
"""

from handx_gen.lazy import lazy_exports

# module -> the names re-exported from it, imported on first use (handx_gen.lazy)
_EXPORTS = {
    'handx_gen.hand.fit': ('FitConfig', 'HandFit', 'fit_hand'),
    'handx_gen.hand.ik': ('PALM_MANO_JOINTS', 'IKResult', 'fit_skeleton', 'inverse_kinematics'),
    'handx_gen.hand.kinematics': (
        'forward_kinematics', 'forward_kinematics_torch', 'joint_world_rotations',
        'mirror_axis_angle', 'mirror_points',
    ),
    'handx_gen.hand.limits': (
        'JOINT_RANGES', 'POSE_JOINT_NAMES', 'THUMB_FLEXION_TILT_RAD', 'AnatomicalBounds',
        'JointRange', 'anatomical_bounds', 'anatomical_to_pose', 'clamp_to_limits', 'joint_frames',
        'limit_violation', 'pose_to_anatomical', 'synthesis_bounds',
    ),
    'handx_gen.hand.parts': ('FINGER_PARTS', 'FINGERTIP_PARTS', 'HandPart', 'PartRef'),
    'handx_gen.hand.rotations': (
        'axis_angle_to_matrix', 'axis_angle_to_quaternion', 'axis_angle_to_rot6d', 'is_torch',
        'matrix_to_axis_angle', 'matrix_to_quaternion', 'matrix_to_rot6d', 'quaternion_multiply',
        'quaternion_slerp', 'quaternion_to_axis_angle', 'quaternion_to_matrix',
        'rot6d_to_axis_angle', 'rot6d_to_matrix', 'rotation_between_vectors',
    ),
    'handx_gen.hand.skeleton': ('DEFAULT_HAND_LENGTH_M', 'HandSkeleton', 'default_skeleton'),
    'handx_gen.hand.topology': (
        'FINGER_MANO_JOINTS', 'KEYPOINT_FROM_MANO_JOINT', 'KEYPOINT_NAMES', 'KEYPOINT_PARENTS',
        'MANO_FINGERTIP_VERTEX_IDS', 'MANO_JOINT_NAMES', 'MANO_PARENTS', 'NUM_KEYPOINTS',
        'NUM_MANO_JOINTS', 'NUM_POSE_JOINTS', 'TIP_KEYPOINTS', 'TIP_PARENT_MANO_JOINT', 'Finger',
        'HandSide', 'finger_keypoints', 'keypoints_from_mano_joints',
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    'AnatomicalBounds',
    'DEFAULT_HAND_LENGTH_M',
    'FINGERTIP_PARTS',
    'FINGER_MANO_JOINTS',
    'FINGER_PARTS',
    'Finger',
    'FitConfig',
    'HandFit',
    'HandPart',
    'HandSide',
    'HandSkeleton',
    'IKResult',
    'JOINT_RANGES',
    'JointRange',
    'KEYPOINT_FROM_MANO_JOINT',
    'KEYPOINT_NAMES',
    'KEYPOINT_PARENTS',
    'MANO_FINGERTIP_VERTEX_IDS',
    'MANO_JOINT_NAMES',
    'MANO_PARENTS',
    'NUM_KEYPOINTS',
    'NUM_MANO_JOINTS',
    'NUM_POSE_JOINTS',
    'PALM_MANO_JOINTS',
    'POSE_JOINT_NAMES',
    'PartRef',
    'THUMB_FLEXION_TILT_RAD',
    'TIP_KEYPOINTS',
    'TIP_PARENT_MANO_JOINT',
    'anatomical_bounds',
    'anatomical_to_pose',
    'axis_angle_to_matrix',
    'axis_angle_to_quaternion',
    'axis_angle_to_rot6d',
    'clamp_to_limits',
    'default_skeleton',
    'finger_keypoints',
    'fit_hand',
    'fit_skeleton',
    'forward_kinematics',
    'forward_kinematics_torch',
    'inverse_kinematics',
    'is_torch',
    'joint_frames',
    'joint_world_rotations',
    'keypoints_from_mano_joints',
    'limit_violation',
    'matrix_to_axis_angle',
    'matrix_to_quaternion',
    'matrix_to_rot6d',
    'mirror_axis_angle',
    'mirror_points',
    'pose_to_anatomical',
    'quaternion_multiply',
    'quaternion_slerp',
    'quaternion_to_axis_angle',
    'quaternion_to_matrix',
    'rot6d_to_axis_angle',
    'rot6d_to_matrix',
    'rotation_between_vectors',
    'synthesis_bounds',
]
