"""Data: the 52-joint SMPL-H layout, source readers and quality filters.

Every source is converted to a :class:`~handx_gen.motion.BimanualMotion` (bodies through the
52-joint :class:`UnifiedMotion`), in the world frame (its axes, frame and placement:
:mod:`handx_gen.data.frames`; where hands usually are: :mod:`handx_gen.data.workspace`), then
:func:`filter_motion` keeps its clean segments. What a hand tracker does to a clean motion,
for tests and benchmarks of the readers and the filter: :mod:`handx_gen.data.tracker_noise`.
The ``handx data`` commands live in :mod:`handx_gen.data.cli`.
"""

from handx_gen.lazy import lazy_exports

# module -> the names re-exported from it, imported on first use (handx_gen.lazy)
_EXPORTS = {
    'handx_gen.data.filters': (
        'DEFAULT_CHECKS', 'DroppedSegment', 'DropReason', 'FilterConfig', 'FilterResult',
        'Segment', 'filter_motion', 'filter_reading',
    ),
    'handx_gen.data.tracker_noise': (
        'Implausible', 'TrackedClip', 'TrackerNoiseConfig', 'inject_implausible', 'track',
    ),
    'handx_gen.data.smplh': (
        'BODY_CHAIN_TO_WRIST', 'HAND_SLICES', 'LEFT_HAND_SLICE', 'LEFT_WRIST', 'NUM_BODY_JOINTS',
        'NUM_SMPLH_JOINTS', 'PELVIS', 'RIGHT_HAND_SLICE', 'RIGHT_WRIST', 'SMPLH_JOINT_NAMES',
        'SMPLH_PARENTS', 'SMPLH_REST_JOINTS_M', 'WRIST_JOINTS', 'BodyPose', 'UnifiedMotion',
        'body_forward_kinematics', 'from_bimanual', 'to_bimanual', 'wrist_global_rotations',
    ),
    'handx_gen.data.frames': (
        'AxesMap', 'FrameChange', 'move_motion', 'move_points', 'place_offsets',
    ),
    'handx_gen.data.kinds': ('Direction', 'Placement', 'SourceFrame', 'SourceKind', 'UpAxis'),
    'handx_gen.data.workspace': (
        'CANONICAL_WRIST_M', 'WORKSPACE', 'WorkspaceBox', 'WorkspaceFinding', 'check_workspace',
    ),
    'handx_gen.data.sources': (
        'Y_UP_TO_Z_UP', 'SourceReading', 'detect_kind', 'format_frame_ranges', 'load_source',
        'read_amass_smplh', 'read_amass_unified', 'read_keypoint_sequence',
        'read_mano_sequence', 'read_source',
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    'AxesMap',
    'BODY_CHAIN_TO_WRIST',
    'CANONICAL_WRIST_M',
    'DEFAULT_CHECKS',
    'BodyPose',
    'Direction',
    'DropReason',
    'DroppedSegment',
    'FilterConfig',
    'FilterResult',
    'FrameChange',
    'HAND_SLICES',
    'Implausible',
    'LEFT_HAND_SLICE',
    'LEFT_WRIST',
    'NUM_BODY_JOINTS',
    'NUM_SMPLH_JOINTS',
    'PELVIS',
    'Placement',
    'RIGHT_HAND_SLICE',
    'RIGHT_WRIST',
    'SMPLH_JOINT_NAMES',
    'SMPLH_PARENTS',
    'SMPLH_REST_JOINTS_M',
    'Segment',
    'SourceFrame',
    'SourceKind',
    'SourceReading',
    'TrackedClip',
    'TrackerNoiseConfig',
    'UnifiedMotion',
    'UpAxis',
    'WORKSPACE',
    'WRIST_JOINTS',
    'WorkspaceBox',
    'WorkspaceFinding',
    'Y_UP_TO_Z_UP',
    'body_forward_kinematics',
    'check_workspace',
    'detect_kind',
    'filter_motion',
    'filter_reading',
    'format_frame_ranges',
    'from_bimanual',
    'inject_implausible',
    'load_source',
    'move_motion',
    'move_points',
    'place_offsets',
    'read_amass_smplh',
    'read_amass_unified',
    'read_keypoint_sequence',
    'read_mano_sequence',
    'read_source',
    'to_bimanual',
    'track',
    'wrist_global_rotations',
]
