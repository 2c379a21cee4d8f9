"""Hand collision models: signed distances against hand-computed boxes, self-collision pairs,
residual Jacobians against finite differences, and avoidance inside the retargeter."""

from __future__ import annotations

import math

import numpy as np
import pinocchio as pin
import pytest

from handx_gen.errors import ConfigError, RetargetError
from handx_gen.hand.rotations import matrix_to_quaternion
from handx_ros.retarget.collision import (
    GeometrySource,
    HandCollisionModel,
    PairExclusion,
    collision_report,
    stack_residuals,
)
from handx_ros.retarget.metrics import collision_rate
from handx_ros.retarget.retargeter import HandRetargeter, RetargetConfig
from handx_ros.retarget.spec import load_robot_spec

# Allegro palm_link collision box (allegro_right_hand.urdf): size 0.0408 x 0.1130 x 0.095 at
# xyz (-0.0093, 0, -0.0475) in palm_link.
PALM_HALF = np.array([0.0204, 0.0565, 0.0475])
PALM_CENTRE = np.array([-0.0093, 0.0, -0.0475])
INDEX_LINKS = ('link_0.0', 'link_1.0', 'link_2.0', 'link_3.0', 'link_3.0_tip')
MIDDLE_LINKS = ('link_4.0', 'link_5.0', 'link_6.0', 'link_7.0', 'link_7.0_tip')


@pytest.fixture(scope='module')
def right() -> HandRetargeter:
    return HandRetargeter(load_robot_spec('allegro_right'))


@pytest.fixture(scope='module')
def right_model(right) -> HandCollisionModel:
    return HandCollisionModel(right.chain)


@pytest.fixture(scope='module')
def left_model() -> HandCollisionModel:
    return HandCollisionModel.from_spec(load_robot_spec('allegro_left'), 'left')


def _crossed_fingers(model: HandCollisionModel) -> np.ndarray:
    """Index and middle flexed at the MCP and abducted towards each other as far as they go:
    the two fingers overlap."""
    chain = model.chain
    u = chain.neutral()
    u[0], u[1] = chain.lower[0], 0.6  # index abduction, MCP
    u[4], u[5] = chain.upper[4], 0.6  # middle abduction, MCP
    return u


def _curled(model: HandCollisionModel) -> np.ndarray:
    """Index, middle and ring flexed at the MCP and PIP joints."""
    u = model.chain.neutral()
    u[[1, 5, 9]] = 0.9
    u[[2, 6, 10]] = 0.5
    return u


# Left hand facing the right palm, 9 cm away along the right palm normal (+x): curling the
# right fingers drives them into the left hand.
T_RIGHT_LEFT = pin.SE3(pin.utils.rotate('z', math.pi), np.array([0.09, 0.0, 0.0]))


def _finite_difference(residuals, u: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    r, _ = residuals(u)
    A = np.zeros((r.size, u.size))
    for k in range(u.size):
        step = np.zeros_like(u)
        step[k] = eps
        r_plus, _ = residuals(u + step)
        r_minus, _ = residuals(u - step)
        assert r_plus.shape == r.shape == r_minus.shape, 'active pairs changed within the step'
        A[:, k] = (r_plus - r_minus) / (2 * eps)
    return A


# ----------------------------------------------------------------------------- distances

@pytest.mark.parametrize(('offset', 'expected'), [
    ((0.0, 0.113 + 0.010, 0.0), 0.010),  # side by side, 1 cm gap along y
    ((0.0, 0.113 - 0.004, 0.0), -0.004),  # overlapping by 4 mm along y
    ((0.0408 + 0.003, 0.113 + 0.004, 0.0), 0.005),  # edge to edge: hypot(3 mm, 4 mm)
])
def test_palm_box_distance_matches_hand_computation(right_model, offset, expected):
    model = right_model
    u = model.chain.neutral()
    T_b = np.eye(4)
    T_b[:3, 3] = offset
    distances = model.inter_hand_distances(u, np.eye(4), model, u, T_b)
    palm = model.geometry_names.index('palm_link_0')
    g = model.num_geometries
    assert distances.shape == (g * g,)
    assert distances[palm * g + palm] == pytest.approx(expected, abs=1e-7)
    placement = model.placements(u)[palm]
    np.testing.assert_allclose(placement[:3, 3], PALM_CENTRE, atol=1e-12)


def test_rotated_palm_distance(right_model):
    # The second palm turned 90 degrees about x: its y half-extent becomes its z half-extent.
    model = right_model
    u = model.chain.neutral()
    T_b = pin.SE3(pin.utils.rotate('x', math.pi / 2), np.zeros(3))
    shift = PALM_CENTRE - T_b.rotation @ PALM_CENTRE + np.array([0.0, 0.0, -0.2])
    T_b.translation = shift  # palm centres 0.2 m apart along z
    palm = model.geometry_names.index('palm_link_0')
    g = model.num_geometries
    d = model.inter_hand_distances(u, pin.SE3.Identity(), model, u, T_b)[palm * g + palm]
    assert d == pytest.approx(0.2 - PALM_HALF[2] - PALM_HALF[1], abs=1e-7)


def test_cutoff_skips_far_pairs_and_minimum_is_exact(right_model, left_model):
    u, u_left = _curled(right_model), left_model.chain.neutral()
    all_pairs = right_model.inter_hand_distances(u, np.eye(4), left_model, u_left,
                                                 T_RIGHT_LEFT)
    near = right_model.inter_hand_distances(u, np.eye(4), left_model, u_left, T_RIGHT_LEFT,
                                            cutoff_m=0.01)
    assert np.all(np.isfinite(all_pairs))
    assert 0 < np.isfinite(near).sum() < near.size
    np.testing.assert_array_equal(near[near <= 0.01], all_pairs[near <= 0.01])
    assert np.all(all_pairs[~np.isfinite(near)] > 0.01)
    minimum = right_model.min_inter_hand_distance(u, np.eye(4), left_model, u_left,
                                                  T_RIGHT_LEFT)
    assert minimum == all_pairs.min() < -0.01  # the curled fingers enter the other hand


# ----------------------------------------------------------------------------- self pairs

def test_self_pairs_exclude_same_and_adjacent_links(right_model):
    model = right_model
    g = model.num_geometries
    pairs = set(model.self_pair_names)
    assert len(pairs) + len(model.excluded_pairs) == g * (g - 1) // 2
    assert not pairs & set(model.excluded_pairs)
    excluded = model.excluded_pairs
    assert excluded[('link_3.0_0', 'link_3.0_tip_0')] == PairExclusion.SAME_BODY
    assert excluded[('link_1.0_0', 'link_2.0_0')] == PairExclusion.ADJACENT
    assert excluded[('palm_link_0', 'link_0.0_0')] == PairExclusion.ADJACENT
    assert excluded[('palm_link_0', 'link_12.0_0')] == PairExclusion.ADJACENT
    links = dict(zip(model.geometry_names, model.link_names, strict=True))
    parent = {'link_1.0': 'link_0.0', 'link_2.0': 'link_1.0', 'link_3.0': 'link_2.0',
              'link_0.0': 'palm_link'}
    for a, b in pairs:
        assert parent.get(links[a]) != links[b] and parent.get(links[b]) != links[a], (a, b)
    assert ('link_1.0_0', 'link_5.0_0') in pairs  # neighbouring fingers are checked
    # A finger's own links meet only at its joints; the palm holds each finger's first two.
    assert excluded[('link_1.0_0', 'link_3.0_0')] == PairExclusion.SAME_FINGER
    assert excluded[('palm_link_0', 'link_13.0_0')] == PairExclusion.PALM_PROXIMAL
    assert ('palm_link_0', 'link_14.0_0') in pairs  # the thumb's distal links against the palm


def test_allegro_neutral_pose_is_free_of_self_collision(right_model, left_model):
    for model in (right_model, left_model):
        assert model.source == GeometrySource.COLLISION
        assert model.num_geometries == 21
        u = model.chain.neutral()
        distances = model.self_distances(u)
        assert distances.shape == (len(model.self_pairs),)
        assert distances.min() > 0.005
        assert model.min_self_distance(u) == pytest.approx(distances.min(), abs=1e-12)
        # The only contact at rest, the thumb's base against the palm, is a palm-proximal
        # pair, excluded before the neutral-pose test.
        neutral = [k for k, v in model.excluded_pairs.items()
                   if v == PairExclusion.NEUTRAL_CONTACT]
        assert neutral == []


def test_crossed_fingers_overlap_is_detected(right_model):
    model = right_model
    distances = model.self_distances(_crossed_fingers(model))
    worst = int(np.argmin(distances))
    assert distances[worst] < -0.01
    a, b = model.self_pair_names[worst]
    links = dict(zip(model.geometry_names, model.link_names, strict=True))
    assert {links[a] in INDEX_LINKS, links[b] in INDEX_LINKS} == {True, False}
    assert {links[a] in MIDDLE_LINKS, links[b] in MIDDLE_LINKS} == {True, False}


def test_humanoid_hand_keeps_only_hand_links():
    model = HandCollisionModel.from_spec(load_robot_spec('g1_hands'), 'right')
    assert model.source == GeometrySource.COLLISION
    assert all(name.startswith('right_hand_') for name in model.link_names)
    assert 'right_hand_palm_link' in model.link_names
    assert len(model.link_names) == 8  # palm + 7 finger links; no wrist or arm links
    assert model.min_self_distance(model.chain.neutral()) > 0
    # Meshes became convex hulls: overlapping links give negative distances and exact
    # gradients.
    rng = np.random.default_rng(3)
    residuals = model.self_collision_residuals(0.005, 10.0)
    for _ in range(50):
        u = rng.uniform(model.chain.lower, model.chain.upper)
        if model.min_self_distance(u) < -0.002:
            break
    else:
        pytest.fail('no self-colliding configuration among 50 random ones')
    r, A = residuals(u)
    assert r.size >= 1
    np.testing.assert_allclose(A, _finite_difference(residuals, u), atol=1e-5)


def test_hand_without_collision_geometry_uses_visual_hulls():
    model = HandCollisionModel.from_spec(load_robot_spec('inspire_right'), 'right')
    assert model.source == GeometrySource.VISUAL
    assert 'R_hand_base_link' in model.link_names
    assert model.min_self_distance(model.chain.neutral()) > 0
    assert model.min_self_distance(model.chain.upper) < 0  # closed fingers reach the palm


def test_humanoid_hand_without_collision_geometry_uses_its_own_visual_hulls():
    # The GR1's body has collision cylinders, its Inspire hands none: the hand falls back to
    # its visual meshes, without the wrist or arm links.
    model = HandCollisionModel.from_spec(load_robot_spec('gr1'), 'left')
    assert model.source == GeometrySource.VISUAL
    assert 'L_hand_base_link' in model.link_names
    assert all(name.startswith('L_') for name in model.link_names)
    assert model.min_self_distance(model.chain.neutral()) > 0


# ----------------------------------------------------------------------------- residuals

def test_self_residual_jacobian_matches_finite_differences(right_model):
    model = right_model
    residuals = model.self_collision_residuals(0.01, 4.0)
    overlapping = _crossed_fingers(model)
    near = overlapping.copy()
    near[0], near[4] = -0.2, 0.2  # fingers closer than the margin, some not touching
    for u in (overlapping, near):
        r, A = residuals(u)
        assert r.shape == (A.shape[0],) and A.shape[1] == model.chain.nu
        assert r.size >= 3 and np.all(r > 0)
        np.testing.assert_allclose(A, _finite_difference(residuals, u), atol=1e-6)
    d = model.self_distances(near)
    assert np.any((d > 0) & (d < 0.01))


def test_inter_hand_residual_jacobian_matches_finite_differences(right_model, left_model):
    residuals = right_model.inter_hand_residuals(left_model, left_model.chain.neutral(),
                                                 T_RIGHT_LEFT.homogeneous, 0.01, 4.0)
    u = _curled(right_model)
    r, A = residuals(u)
    assert r.size >= 3
    np.testing.assert_allclose(A, _finite_difference(residuals, u), atol=1e-6)
    combined = stack_residuals(residuals, None, right_model.self_collision_residuals(0.01, 4))
    r_all, A_all = combined(u)
    np.testing.assert_array_equal(r_all[:r.size], r)
    np.testing.assert_array_equal(A_all[:r.size], A)


def test_residuals_are_empty_outside_the_margin(right_model, left_model):
    u = right_model.chain.neutral()
    for residuals in (right_model.self_collision_residuals(0.001, 1.0),
                      right_model.inter_hand_residuals(left_model, u, T_RIGHT_LEFT, 0.001,
                                                       1.0)):
        r, A = residuals(u)
        assert r.shape == (0,) and A.shape == (0, right_model.chain.nu)


def test_inter_hand_avoidance_keeps_the_hands_apart(right, right_model, left_model):
    u_target = _curled(right_model)
    keypoints = right.keypoints_from_robot(right.robot_keypoints(u_target))
    u_left = left_model.chain.neutral()

    def gap(u):
        return right_model.min_inter_hand_distance(u, np.eye(4), left_model, u_left,
                                                   T_RIGHT_LEFT)

    right.reset()
    free = right.step(keypoints)
    right.reset()
    extra = right_model.inter_hand_residuals(left_model, u_left, T_RIGHT_LEFT, 0.005, 100.0)
    avoided = right.step(keypoints, extra=extra)
    right.reset()
    assert gap(free.qpos) < -0.015  # without avoidance the fingers enter the other hand
    assert avoided.converged
    assert gap(avoided.qpos) > -0.001
    assert np.all((avoided.qpos >= right.lower) & (avoided.qpos <= right.upper))


def test_self_collision_avoidance_uncrosses_the_fingers(right_model):
    # Without the retargeter's own barrier, which keeps these fingers apart as well
    # (tests/test_self_collision.py), the free solve crosses them.
    plain = HandRetargeter(load_robot_spec('allegro_right'),
                           config=RetargetConfig(self_collision=False))
    u_target = _crossed_fingers(right_model)
    keypoints = plain.keypoints_from_robot(plain.robot_keypoints(u_target))
    free = plain.step(keypoints)
    plain.reset()
    avoided = plain.step(keypoints, extra=right_model.self_collision_residuals(0.003, 100.0))
    assert right_model.min_self_distance(free.qpos) < -0.01
    assert right_model.min_self_distance(avoided.qpos) > -0.001


# ----------------------------------------------------------------------------- report

def test_collision_report_matches_direct_distances(right_model, left_model):
    rng = np.random.default_rng(0)
    T = 4
    q_left = np.array([left_model.chain.neutral()] * T)
    q_right = np.array([_curled(right_model), right_model.chain.neutral(),
                        _crossed_fingers(right_model),
                        rng.uniform(right_model.chain.lower, right_model.chain.upper)])
    # World poses: left hand at the origin, right hand placed so the left one sits at
    # T_RIGHT_LEFT in its frame.
    T_world_right = T_RIGHT_LEFT.inverse()
    poses = np.zeros((T, 2, 7))
    poses[:, 0, 3] = 1.0
    poses[:, 1, :3] = T_world_right.translation
    poses[:, 1, 3:] = matrix_to_quaternion(T_world_right.rotation)
    report = collision_report([left_model, right_model], [q_left, q_right], poses)
    assert report.self_min_m.shape == (T, 2) and report.inter_min_m.shape == (T,)
    for t in range(T):
        assert report.self_min_m[t, 1] == pytest.approx(
            right_model.min_self_distance(q_right[t]), abs=1e-9)
        direct = left_model.inter_hand_distances(q_left[t], np.eye(4), right_model,
                                                 q_right[t], T_world_right).min()
        assert report.inter_min_m[t] == pytest.approx(direct, abs=1e-9)
    assert report.inter_min_m[0] < 0 < report.inter_min_m[1]
    assert report.self_min_m[2, 1] < 0
    assert collision_rate(report.min_m) >= 0.5
    alone = collision_report([right_model], [q_right])
    assert alone.inter_min_m is None
    np.testing.assert_array_equal(alone.min_m, report.self_min_m[:, 1])


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_rejected_clearly(right_model, left_model):
    u = right_model.chain.neutral()
    with pytest.raises(RetargetError, match='16 finite joint angles'):
        right_model.self_distances(u[:3])
    with pytest.raises(RetargetError, match='finite'):
        right_model.min_self_distance(np.full(16, np.nan))
    with pytest.raises(ConfigError, match='margin_m'):
        right_model.self_collision_residuals(-0.01, 1.0)
    with pytest.raises(ConfigError, match='weight'):
        right_model.inter_hand_residuals(left_model, u, T_RIGHT_LEFT, 0.01, math.inf)
    with pytest.raises(RetargetError, match='4x4'):
        right_model.inter_hand_residuals(left_model, u, np.eye(3), 0.01, 1.0)
    with pytest.raises(RetargetError, match='rigid'):
        right_model.min_inter_hand_distance(u, 2 * np.eye(4), left_model, u, np.eye(4))
    with pytest.raises(RetargetError, match='qpos of hand 0'):
        collision_report([right_model], [np.zeros((3, 5))])
    with pytest.raises(RetargetError, match=r'\(2, 2, 7\)'):
        collision_report([left_model, right_model], [np.zeros((2, 16))] * 2, np.zeros((2, 7)))
    with pytest.raises(ConfigError, match='geometry source'):
        HandCollisionModel(right_model.chain, source='meshes')
