"""Both hands per frame: wrist frames, floating pairs, the humanoid's arms, trajectories."""

from __future__ import annotations

import itertools

import numpy as np
import pinocchio as pin
import pytest

from handx_gen.data.synthetic import SynthConfig, synthesize_clip
from handx_gen.errors import RetargetError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.topology import HandSide
from handx_ros.retarget.bimanual import build_retargeter, retarget_motion, rotation_angle
from handx_ros.retarget.frames import (
    keypoints_in_wrist_frame,
    wrist_frames_from_keypoints,
    wrist_poses_from_motion,
)
from handx_ros.retarget.retargeter import RetargetConfig
from handx_ros.retarget.spec import load_robot_spec
from handx_ros.retarget.trajectory import RobotTrajectory

HUMANOIDS = ['g1_hands', 'gr1']


@pytest.fixture(scope='module')
def motion():
    return synthesize_clip(SynthConfig(), 3, 7).motion[:60]


def test_wrist_frames_from_keypoints_match_the_mano_orientation(motion):
    R_mano, p_mano = wrist_poses_from_motion(motion)
    for side in HandSide:
        R_fit, p_fit = wrist_frames_from_keypoints(motion.keypoints[:, side], side)
        np.testing.assert_allclose(p_fit, p_mano[:, side], atol=1e-6)
        # Same rotation up to the (small) flexion of the palm arc in the synthetic poses.
        angle = np.arccos(np.clip((np.trace(np.swapaxes(R_fit, -1, -2) @ R_mano[:, side],
                                            axis1=-2, axis2=-1) - 1) / 2, -1, 1))
        assert np.degrees(angle).max() < 8.0


def test_keypoints_in_wrist_frame_put_the_wrist_at_the_origin(motion):
    R, p = wrist_poses_from_motion(motion)
    kp = keypoints_in_wrist_frame(motion.keypoints, R, p)
    np.testing.assert_allclose(kp[:, :, 0], 0.0, atol=1e-6)
    # Right-hand fingers point along -x of the wrist frame, left-hand ones along +x.
    assert np.all(kp[:, 1, 12, 0] < 0) and np.all(kp[:, 0, 12, 0] > 0)


def test_pair_trajectory_places_each_robot_wrist_on_the_human_wrist(motion):
    retargeter = build_retargeter('allegro')
    trajectory = retargeter.retarget_motion(motion)
    assert isinstance(trajectory, RobotTrajectory)
    assert trajectory.robot == 'allegro' and trajectory.qpos.shape == (60, 32)
    assert trajectory.joint_names[0].startswith('allegro_left/')
    assert trajectory.joint_names[-1].startswith('allegro_right/')
    assert trajectory.converged.all()
    _, p_world_wrist = wrist_poses_from_motion(motion)
    for side, hand in enumerate(retargeter.hands):
        wrist_id = hand.chain.frame_ids([hand.hand.wrist])
        for t in (0, 30, 59):
            pose = trajectory.base_poses[t, side]
            w, x, y, z = pose[3:]
            T_world_base = pin.SE3(pin.Quaternion(w, x, y, z).toRotationMatrix(), pose[:3])
            p_base_wrist = hand.chain.positions(trajectory.qpos[t, side * 16:(side + 1) * 16],
                                                wrist_id)[0]
            np.testing.assert_allclose(T_world_base.act(p_base_wrist), p_world_wrist[t, side],
                                       atol=1e-6)


def test_trajectory_round_trips_through_its_file(motion, tmp_path):
    trajectory = retarget_motion(motion, 'inspire')
    assert trajectory.qpos.shape[1] == 12
    path = trajectory.save(tmp_path / 'inspire.npz')
    loaded = RobotTrajectory.load(path)
    np.testing.assert_array_equal(loaded.qpos, trajectory.qpos)
    assert loaded.joint_names == trajectory.joint_names


@pytest.mark.parametrize('robot', HUMANOIDS)
def test_humanoid_wrists_follow_the_human_wrists_and_fingers_move(motion, robot):
    retargeter = build_retargeter(robot)
    trajectory = retargeter.retarget_motion(motion)
    spec = load_robot_spec(robot)
    hand_dof = sum(len(hand.joints) for hand in spec.hands)
    assert len(trajectory.joint_names) == 14 + hand_dof
    assert trajectory.base_poses is None
    assert trajectory.converged.all()
    error = np.array(trajectory.info['wrist_error_m_per_hand'])
    assert np.median(error) < 0.005, np.median(error)
    assert error.max() < 0.02, error.max()
    # Arm joints stay inside their limits, hand joints move.
    arm = np.array([retargeter.joint_names.index(spec.controller_names.get(n, n))
                    for n in spec.arm_joints[0]])
    lower = np.concatenate([a.chain.lower for a in retargeter.arms])
    upper = np.concatenate([a.chain.upper for a in retargeter.arms])
    q_arms = trajectory.qpos[:, :14]
    assert np.all(q_arms >= lower) and np.all(q_arms <= upper)
    assert np.ptp(trajectory.qpos[:, arm], axis=0).max() > 0.01
    assert np.ptp(trajectory.qpos[:, 14:], axis=0).max() > 0.05


# Human wrist frames (columns: the canonical hand axes in the world), palms facing each other
# with the fingers forward: left fingers +y, palm towards +x; right fingers +y (its hand -x),
# palm towards -x.
_PALMS_FACING = np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                          [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])


@pytest.mark.parametrize('robot', HUMANOIDS)
def test_humanoid_reaches_the_human_workspace(robot):
    """The operator mapping puts where people hold their hands (about 1 m up, 0.2-0.3 m in
    front of the body, up to 0.25 m to either side) inside the arms' reach: each arm, from its
    rest pose, puts the wrist there within 1 cm and 10 degrees."""
    retargeter = build_retargeter(robot)
    for x, y, z in itertools.product((0.1, 0.25), (0.2, 0.3), (0.95, 1.1)):
        p = np.array([[-x, y, z], [x, y, z]])
        for arm, target in zip(retargeter.arms, retargeter.wrist_targets(_PALMS_FACING, p),
                               strict=True):
            arm.reset()
            u, converged, error_m, _ = arm.solve(target)
            pin.framesForwardKinematics(arm.chain.model, arm.chain.data, arm.chain.full_q(u))
            R_reached = arm.chain.data.oMf[arm.frame_id].rotation
            angle = np.linalg.norm(pin.log3(R_reached.T @ target.rotation))
            assert error_m < 0.01 and np.degrees(angle) < 10.0, (robot, (x, y, z), error_m,
                                                                  np.degrees(angle))


@pytest.mark.parametrize('robot', HUMANOIDS)
def test_humanoid_wrist_targets_follow_the_operator_mapping(robot):
    retargeter = build_retargeter(robot)
    op = retargeter.spec.operator
    R = np.stack([axis_angle_to_matrix(np.array([0.0, 0.0, 0.3]))] * 2)
    p = np.array([[-0.2, 0.3, 1.1], [0.2, 0.3, 1.1]])
    targets = retargeter.wrist_targets(R, p)
    moved = retargeter.wrist_targets(R, p + np.array([0.0, 0.1, 0.0]))  # 10 cm forward
    shift = retargeter.T_world_torso.rotation.T @ (moved[1].translation - targets[1].translation)
    np.testing.assert_allclose(shift, op.scale * op.R_robot_human @ [0.0, 0.1, 0.0],
                               atol=1e-12)


def test_bad_frames_are_rejected_without_changing_state(motion):
    retargeter = build_retargeter('allegro')
    R, p = wrist_poses_from_motion(motion)
    kp = np.asarray(motion.keypoints, dtype=np.float64)
    first = retargeter.step(kp[0], R[0], p[0]).qpos
    with pytest.raises(RetargetError, match='shape'):
        retargeter.step(kp[0, :, :20], R[0], p[0])
    bad = kp[1].copy()
    bad[1, 8] = np.nan
    with pytest.raises(RetargetError, match='index_tip'):
        retargeter.step(bad, R[1], p[1])
    with pytest.raises(RetargetError, match='rotation'):
        retargeter.step(kp[1], R[1] * 2.0, p[1])
    retargeter.reset()
    np.testing.assert_allclose(retargeter.step(kp[0], R[0], p[0]).qpos, first)
    with pytest.raises(RetargetError, match='single hand'):
        build_retargeter('allegro_left')


def test_config_overrides_reach_both_hands():
    retargeter = build_retargeter('allegro', RetargetConfig(max_iterations=3))
    assert all(hand.config.max_iterations == 3 for hand in retargeter.hands)


def _moved(motion, shift_m: np.ndarray):
    """``motion`` with each hand moved by ``shift_m`` (2, 3), wrists and keypoints alike."""
    from handx_gen.motion import BimanualMotion

    return BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose,
                          np.asarray(motion.transl) + shift_m,
                          (np.asarray(motion.keypoints) + shift_m[:, None]).astype(np.float32))


def test_humanoid_flags_a_wrist_that_cannot_reach(motion):
    retargeter = build_retargeter('g1_hands', RetargetConfig(reach_tolerance_m=0.05))
    reach = retargeter.retarget_motion(motion[:20]).info['reach']
    assert reach['frames'] == 0 and reach['tolerance_m'] == 0.05
    assert reach['right']['first_s'] is None and reach['right']['max_error_m'] < 0.005
    # The right hand a metre forward (0.68 m at the G1's scale): beyond its arm's reach.
    far = _moved(motion[:20], np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    trajectory = retargeter.retarget_motion(far)
    reach = trajectory.info['reach']
    error = np.array(trajectory.info['wrist_error_m_per_hand'])  # (T, 2)
    assert reach['frames'] == 20 and reach['left']['frames'] == 0
    rotation = np.array(trajectory.info['wrist_rotation_error_rad_per_hand'])  # (T, 2)
    assert reach['right'] == {
        'frames': 20, 'max_error_m': error[:, 1].max(),
        'max_error_s': int(np.argmax(error[:, 1])) / motion.fps, 'first_s': 0.0,
        'max_rotation_error_rad': rotation[:, 1].max(),
        'max_rotation_error_s': int(np.argmax(rotation[:, 1])) / motion.fps,
        'tilted_frames': int(np.count_nonzero(rotation[:, 1] > reach['tilted_rad']))}
    assert reach['tilt_rad'] == retargeter.config.arm_tilt_rad
    assert error[:, 1].min() > 0.3
    # The orientation errors are the wrists' own, frame by frame.
    arm = retargeter.arms[1]
    R, p = wrist_poses_from_motion(far)
    targets = retargeter.wrist_targets(R[-1], p[-1])
    column = [retargeter.joint_names.index(retargeter.spec.controller_names.get(name, name))
              for name in arm.chain.joint_names]
    wrist = arm.wrist_pose(trajectory.qpos[-1, column])
    assert rotation[-1, 1] == pytest.approx(rotation_angle(wrist.rotation,
                                                           targets[1].rotation), abs=1e-9)
    assert 'reach' not in retarget_motion(motion[:5], 'allegro').info  # floating wrists


# ---------------------------------------------------------------------------- one hand absent


def _absent(motion, side: HandSide):
    """``motion`` with the ``side`` hand absent (the rest hand in its place)."""
    from handx_gen.motion import BimanualMotion

    present = np.ones(2, dtype=bool)
    present[side] = False
    return BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose, motion.transl,
                          motion.keypoints, present=present)


def _columns(retargeter, side: HandSide) -> list[int]:
    hand = retargeter.hands[side]
    spec = retargeter.members[side] if hasattr(retargeter, 'members') else retargeter.spec
    return [retargeter.joint_names.index(spec.controller_names.get(j, j))
            for j in hand.joint_names]


@pytest.mark.parametrize('options', [{}, {'contact': False}, {'avoid_collisions': True},
                                     {'backend': 'dex-vector', 'contact': False}])
def test_an_absent_hand_of_a_pair_holds_its_rest_pose(motion, options):
    """The left hand absent: the left robot hand's joints stay at their neutral values and its
    base on the rest hand's wrist, every frame; the right hand is retargeted as without it."""
    from handx_gen.motion import rest_hand

    if options.get('backend'):
        pytest.importorskip('dex_retargeting')
    one = _absent(motion[:20], HandSide.LEFT)
    retargeter = build_retargeter('allegro', **options)
    trajectory = retargeter.retarget_motion(one)
    assert trajectory.info['absent'] == ['left'] and trajectory.info['contact'] is None
    left = trajectory.qpos[:, _columns(retargeter, HandSide.LEFT)]
    np.testing.assert_array_equal(left, np.broadcast_to(retargeter.hands[0].chain.neutral(),
                                                        left.shape))
    np.testing.assert_array_equal(trajectory.base_poses[:, 0],
                                  np.broadcast_to(trajectory.base_poses[0, 0], (20, 7)))
    hand = retargeter.hands[0]
    wrist = hand.chain.positions(left[0], hand.chain.frame_ids([hand.hand.wrist]))[0]
    w, x, y, z = trajectory.base_poses[0, 0, 3:]
    T_world_base = pin.SE3(pin.Quaternion(w, x, y, z).toRotationMatrix(),
                           trajectory.base_poses[0, 0, :3])
    np.testing.assert_allclose(T_world_base.act(wrist), rest_hand(HandSide.LEFT).keypoints[0],
                               atol=1e-6)
    assert np.array(trajectory.info['converged_per_hand'])[:, 0].all()
    right = trajectory.qpos[:, _columns(retargeter, HandSide.RIGHT)]
    assert np.ptp(right, axis=0).max() > 0.05  # the present hand moves
    if not options.get('avoid_collisions'):  # alone, the right hand is solved as it always is
        both = build_retargeter('allegro', **{**options, 'contact': False}).retarget_motion(
            motion[:20])
        np.testing.assert_allclose(right, both.qpos[:, _columns(retargeter, HandSide.RIGHT)],
                                   atol=1e-9)
        np.testing.assert_allclose(trajectory.base_poses[:, 1], both.base_poses[:, 1],
                                   atol=1e-9)


def test_contacts_are_not_kept_with_a_hand_absent(motion):
    """The right hand on top of where the absent left hand's stand-in rests: the contact
    keeper would move the wrists apart; with the left hand absent nothing moves."""
    from handx_gen.motion import rest_hand

    clip = motion[:10]
    shift = np.zeros((2, 3))
    shift[1] = rest_hand(HandSide.LEFT).keypoints[0] - np.asarray(clip.keypoints[0, 1, 0])
    on_top = _moved(clip, shift)
    keeper = build_retargeter('allegro')
    two = keeper.retarget_motion(_moved(clip, np.array([rest_hand(0).keypoints[0]
                                                        - clip.keypoints[0, 0, 0],
                                                        shift[1]])))
    assert two.info['contact']['max_shift_m'] > 0.005  # both present: the keeper pushes
    one = keeper.retarget_motion(_absent(on_top, HandSide.LEFT))
    plain = build_retargeter('allegro', contact=False).retarget_motion(
        _absent(on_top, HandSide.LEFT))
    assert one.info['contact'] is None
    np.testing.assert_array_equal(one.base_poses, plain.base_poses)


@pytest.mark.parametrize('robot', HUMANOIDS)
def test_an_absent_hand_of_a_humanoid_holds_its_arm(motion, robot):
    retargeter = build_retargeter(robot)
    trajectory = retargeter.retarget_motion(_absent(motion[:15], HandSide.RIGHT))
    spec = retargeter.spec
    arm = [retargeter.joint_names.index(spec.controller_names.get(n, n))
           for n in spec.arm_joints[1]]
    held = trajectory.qpos[:, arm + _columns(retargeter, HandSide.RIGHT)]
    neutral = np.concatenate([retargeter.arms[1].chain.neutral(),
                              retargeter.hands[1].chain.neutral()])
    np.testing.assert_array_equal(held, np.broadcast_to(neutral, held.shape))
    error = np.array(trajectory.info['wrist_error_m_per_hand'])
    np.testing.assert_array_equal(error[:, 1], 0.0)
    assert error[:, 0].max() < 0.02 and trajectory.info['reach']['right']['frames'] == 0
    assert trajectory.info['absent'] == ['right'] and trajectory.info['contact'] is None
    left_arm = [retargeter.joint_names.index(spec.controller_names.get(n, n))
                for n in spec.arm_joints[0]]
    assert np.ptp(trajectory.qpos[:, left_arm], axis=0).max() > 0.01


def test_the_report_of_a_one_hand_clip(motion):
    from handx_ros.retarget.report import trajectory_report

    one = _absent(motion[:12], HandSide.LEFT)
    retargeter = build_retargeter('allegro')
    report = trajectory_report(retargeter, retargeter.retarget_motion(one), one)
    assert report['absent'] == ['left'] and report['absent_joint_motion_rad'] == 0.0
    g1 = build_retargeter('g1_hands')
    trajectory = g1.retarget_motion(one)
    report = trajectory_report(g1, trajectory, one, collisions=False)
    assert report['absent_joint_motion_rad'] == 0.0
    error = np.array(trajectory.info['wrist_error_m_per_hand'])  # (T, 2), the left arm 0
    assert report['wrist_error_median_mm'] == pytest.approx(np.median(error[:, 1]) * 1e3)
