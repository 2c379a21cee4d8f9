"""Keeping the hands' contacts: the robot hands touch where the human hands do, and only
there (handx_ros.retarget.contact)."""

from __future__ import annotations

import math

import numpy as np
import pinocchio as pin
import pytest

from handx_gen.annotate.features import extract_features
from handx_gen.annotate.surface import (
    hand_surface,
    inter_hand_distance,
    part_distance,
    part_distance_matrix,
)
from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip
from handx_gen.errors import ConfigError, RetargetError
from handx_gen.hand.parts import HandPart
from handx_ros.retarget import build_retargeter
from handx_ros.retarget.bimanual import _se3
from handx_ros.retarget.contact import ContactTargets, human_hand_distance, human_palm_distance
from handx_ros.retarget.frames import wrist_poses_from_motion
from handx_ros.retarget.spec import load_robot_spec


@pytest.fixture(scope='module')
def clap():
    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 3.0), primitives_per_clip=(1, 1))
    return synthesize_clip(config, 0, 0, motion_types=['clap']).motion


@pytest.fixture(scope='module')
def plain_clap(clap):
    """The clap on the Allegro pair with the wrists on the human wrists."""
    return build_retargeter('allegro', fps=clap.fps, contact=False).retarget_motion(clap)


def test_targets_press_lightly_at_a_touch_and_keep_clear_apart():
    targets = ContactTargets()
    assert targets.target(0.0) == (pytest.approx(-targets.preload_m), 1.0)
    assert targets.target(-0.01)[0] == pytest.approx(-targets.preload_m)
    far, pull = targets.target(1.0)
    assert far == pytest.approx(targets.clearance_m) and pull == 0.0
    assert targets.target(math.inf) == (pytest.approx(targets.clearance_m), 0.0)
    values = [targets.target(d) for d in np.linspace(-0.01, 0.05, 61)]
    assert all(a[0] <= b[0] + 1e-12 and a[1] >= b[1]
               for a, b in zip(values[:-1], values[1:], strict=True))
    for bad in ({'preload_m': -0.001}, {'human_apart_m': 0.001}, {'iterations': 0},
                {'decay': 1.5}, {'clearance_m': math.nan}):
        with pytest.raises(ConfigError):
            ContactTargets(**bad)


def test_human_distance_is_the_annotations_surface_distance(clap):
    kp = np.asarray(clap.keypoints, dtype=np.float64)
    exact = part_distance_matrix(hand_surface(kp[:, 0], 0), hand_surface(kp[:, 1], 1)
                                 ).min(axis=(1, 2))
    assert human_hand_distance(kp) == pytest.approx(exact, abs=1e-12)
    within = human_hand_distance(kp, within=0.02)
    near = exact <= 0.02
    assert within[near] == pytest.approx(exact[near], abs=1e-12)
    assert np.all(within[~near] > 0.02)
    # The clap's hands touch by the annotations' definition.
    assert any(e.inter_hand for e in extract_features(clap).contacts)
    assert exact.min() <= ContactTargets().human_touch_m
    surfaces = [hand_surface(kp[:3, s], s) for s in (0, 1)]
    assert inter_hand_distance(*surfaces).shape == (3,)
    with pytest.raises(RetargetError, match='shape'):
        human_hand_distance(kp[:, 0])


def test_a_clap_touches_without_driving_one_hand_into_the_other(clap, plain_clap):
    retargeter = build_retargeter('allegro', fps=clap.fps)  # keeps contacts by default
    trajectory = retargeter.retarget_motion(clap)
    keeper = retargeter.contact
    models = keeper.models
    human = human_hand_distance(clap.keypoints)
    touching = human <= keeper.targets.human_touch_m
    assert touching.sum() >= 3

    def commanded(traj) -> np.ndarray:
        out = []
        for q, poses in zip(traj.qpos, traj.base_poses, strict=True):
            out.append(models[0].min_inter_hand_distance(q[:16], _se3(poses[0]), models[1],
                                                         q[16:], _se3(poses[1])))
        return np.array(out)

    plain, kept = commanded(plain_clap), commanded(trajectory)
    # Wrists on the human wrists: the bigger robot palms go centimetres into each other.
    assert plain[touching].min() < -0.01
    # Kept: where the human hands touch the robot's touch, pressing by about the preload.
    assert kept[touching].min() > -keeper.targets.preload_m - 0.002
    assert np.median(kept[touching]) < 0.001
    summary = trajectory.info['contact']
    assert summary['human_touch_frames'] == int(touching.sum())
    assert summary['max_shift_m'] > 0.005
    assert len(summary['shift_m_per_hand']) == clap.num_frames
    assert plain_clap.info['contact'] is None


def test_wrist_shifts_do_not_jump_and_fade_when_the_hands_part(clap):
    retargeter = build_retargeter('allegro', fps=clap.fps)
    frames = []
    R, p = wrist_poses_from_motion(clap)
    for t in range(clap.num_frames):
        frames.append(retargeter.step(clap.keypoints[t], R[t], p[t]))
    shift = np.array([f.contact.shift_m for f in frames])  # (T, 2, 3)
    assert np.allclose(shift[:, 0], -shift[:, 1])  # half each, opposite
    step = np.linalg.norm(np.diff(shift[:, 1], axis=0), axis=1)
    assert step.max() < 0.012  # never a jump of a centimetre between frames
    # The same frame again gives the same shift (no drift on a still input).
    again = retargeter.step(clap.keypoints[-1], R[-1], p[-1])
    assert np.linalg.norm(again.contact.shift_m - frames[-1].contact.shift_m) < 0.003


def test_contacts_and_collision_avoidance_exclude_each_other():
    with pytest.raises(RetargetError, match='exclude'):
        build_retargeter('allegro', contact=True, avoid_collisions=True)
    assert build_retargeter('allegro', avoid_collisions=True).contact is None
    assert build_retargeter('allegro', contact=False).contact is None


@pytest.mark.parametrize('robot', ['g1_hands', 'gr1'])
def test_a_humanoid_clap_touches_from_where_the_arms_put_the_hands(clap, robot):
    """The arm IK may miss its target by millimetres: distances come from the arms' forward
    kinematics of the written trajectory."""
    import pinocchio as pin

    from handx_ros.retarget.contact import _closest, _Hand

    human = human_hand_distance(clap.keypoints)
    touching = human <= ContactTargets().human_touch_m
    distances = {}
    for contact in (False, True):
        retargeter = build_retargeter(robot, fps=clap.fps, contact=contact)
        trajectory = retargeter.retarget_motion(clap)
        names = list(trajectory.joint_names)
        models = build_retargeter(robot, fps=clap.fps).contact.models

        def joints(chain_names, row, names=names, spec=retargeter.spec):
            return np.array([row[names.index(spec.controller_names.get(n, n))]
                             for n in chain_names])

        out = []
        for row in trajectory.qpos:
            hands = []
            for i, (arm, hand) in enumerate(zip(retargeter.arms, retargeter.hands,
                                                strict=True)):
                chain = arm.chain
                pin.framesForwardKinematics(chain.model, chain.data,
                                            chain.full_q(joints(chain.joint_names, row)))
                base = chain.data.oMf[chain.model.getFrameId(hand.chain.reference_frame)]
                hands.append(_Hand(models[i], joints(hand.joint_names, row), base.copy()))
            out.append(_closest(hands, np.zeros(3), math.inf)[0])
        distances[contact] = np.array(out)
    assert distances[False][touching].min() < -0.01  # wrists on target: hands go through
    assert distances[True][touching].min() > -0.005  # kept: a light press at most
    assert np.median(distances[True][touching]) < 0.001  # and they do touch


@pytest.fixture(scope='module')
def palm_press():
    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 2.5), primitives_per_clip=(1, 1))
    return synthesize_clip(config, 0, 0, motion_types=['rub_palms']).motion


def test_finger_clearance_fades_in_as_the_human_palms_approach():
    targets = ContactTargets()
    assert targets.palm_weight(0.0) == pytest.approx(targets.finger_clearance_weight)
    assert targets.palm_weight(targets.human_apart_m) == 0.0
    assert targets.palm_weight(math.inf) == 0.0
    weights = [targets.palm_weight(d) for d in np.linspace(-0.01, 0.03, 41)]
    assert all(a >= b for a, b in zip(weights[:-1], weights[1:], strict=True))
    assert 0.0 < targets.palm_weight(0.01) < targets.finger_clearance_weight
    assert ContactTargets(finger_clearance_weight=0.0).palm_weight(0.0) == 0.0
    for bad in ({'finger_clearance_m': -0.001}, {'finger_clearance_weight': math.inf}):
        with pytest.raises(ConfigError):
            ContactTargets(**bad)


def test_human_palm_distance_is_the_palm_parts_surface_distance(palm_press):
    kp = np.asarray(palm_press.keypoints, dtype=np.float64)
    surfaces = [hand_surface(kp[:, s], s) for s in (0, 1)]
    exact = part_distance(surfaces[0], HandPart.PALM, surfaces[1], HandPart.PALM).distance
    assert human_palm_distance(kp) == pytest.approx(exact, abs=1e-12)
    within = human_palm_distance(kp, within=0.02)
    known = np.isfinite(within)
    assert within[known] == pytest.approx(exact[known], abs=1e-12)
    assert np.all(exact[~known] > 0.02) and (~known).any()
    # The palms of a palm press touch; never closer than the hands as a whole.
    assert exact.min() <= ContactTargets().human_touch_m
    assert np.all(exact >= human_hand_distance(kp) - 1e-12)
    with pytest.raises(RetargetError, match='shape'):
        human_palm_distance(kp[:, 0])


def test_only_the_links_the_joints_move_are_kept_clear():
    from handx_ros.retarget.collision import HandCollisionModel

    spec = load_robot_spec('g1_hands')
    left, right = (HandCollisionModel.from_spec(spec, side) for side in ('left', 'right'))
    base = left.chain.reference_frame
    fixed = [link == base for link in left.link_names]
    assert any(fixed) and not np.all(fixed)
    assert np.array_equal(left.moving, ~np.array(fixed))
    # The right hand laid onto the left one: every left geometry overlaps the right hand, and
    # only the moving ones give residuals when asked for those alone.
    u_l, u_r = left.chain.neutral(), right.chain.neutral()
    every = left.inter_hand_residuals(right, u_r, pin.SE3.Identity(), 0.003, 100.0)
    moving = left.inter_hand_residuals(right, u_r, pin.SE3.Identity(), 0.003, 100.0,
                                       moving_only=True)
    (r_every, _), (r_moving, A_moving) = every(u_l), moving(u_l)
    assert r_every.size > r_moving.size > 0
    assert A_moving.shape == (r_moving.size, left.chain.nu)
    assert np.all(np.abs(A_moving).sum(axis=1) > 0.0)  # each row moves with the joints
