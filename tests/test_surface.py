"""Tests for handx_gen.annotate.surface: the hand surface proxy, distances and contacts."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.annotate import (
    HAND_PARTS,
    ContactConfig,
    HandPart,
    bone_distance,
    contact_intervals,
    contact_matrix,
    hand_surface,
    inter_hand_penetration,
    intra_hand_penetration,
    part_distance,
    part_distance_matrix,
    reference_contact_matrix,
)
from handx_gen.annotate.surface import _segment_quad, _segment_segment
from handx_gen.errors import ConfigError, HandModelError
from handx_gen.hand.skeleton import DEFAULT_HAND_LENGTH_M, default_skeleton
from handx_gen.hand.topology import HandSide

RIGHT_REST = default_skeleton(HandSide.RIGHT).keypoints_rest()  # (21, 3), palm facing -y
HALF_THICKNESS = 0.0135  # palm slab, mid plane to face, at the default hand length
# The thenar capsule (thumb CMC to MCP, part of the palm, radius 10 mm) starts at the CMC joint,
# 0.05 hand lengths palmar of the palm's mid plane: it reaches 0.75 mm past the mid plane.
THENAR_PAST_MID_PLANE = 0.010 - 0.05 * 0.185


def _backs_facing(gap_between_mid_planes: float) -> tuple:
    """The right hand at rest (palm -y, back +y) and a left hand lying on it back to back:
    the right hand reflected through y = 0 (a left hand, palm +y) and moved up by the gap.
    The thumbs stand out on the palmar sides, away from the other hand."""
    left = RIGHT_REST * np.array([1.0, -1.0, 1.0]) + np.array([0.0, gap_between_mid_planes, 0.0])
    return hand_surface(left, HandSide.LEFT), hand_surface(RIGHT_REST, HandSide.RIGHT)


def _tips_facing(gap: float) -> tuple:
    """The right hand at rest and its x-mirror (a left hand, fingers +x) shifted so that the
    two middle fingertips (both on the x axis) are ``gap`` apart, fingers pointing at each
    other."""
    length = DEFAULT_HAND_LENGTH_M
    left = RIGHT_REST * np.array([-1.0, 1.0, 1.0]) - np.array([2 * length + gap, 0.0, 0.0])
    return hand_surface(left, HandSide.LEFT), hand_surface(RIGHT_REST, HandSide.RIGHT)


def test_rest_surface_sizes() -> None:
    surface = hand_surface(RIGHT_REST, HandSide.RIGHT)
    assert surface.scale == pytest.approx(1.0)
    np.testing.assert_allclose(surface.palm_normal, [0.0, -1.0, 0.0], atol=1e-12)
    assert surface.palm_half_thickness == pytest.approx(HALF_THICKNESS)
    bigger = hand_surface(default_skeleton(HandSide.RIGHT).scaled(1.2).keypoints_rest(), 1)
    assert bigger.scale == pytest.approx(1.2)
    np.testing.assert_allclose(bigger.capsule_radius, 1.2 * surface.capsule_radius)
    left = hand_surface(default_skeleton(HandSide.LEFT).keypoints_rest(), HandSide.LEFT)
    np.testing.assert_allclose(left.palm_normal, [0.0, -1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize('gap', [0.02, 0.003, 0.0, -0.004])
def test_fingertips_end_to_end(gap: float) -> None:
    left, right = _tips_facing(gap)
    result = part_distance(left, HandPart.MIDDLE_TIP, right, HandPart.MIDDLE_TIP)
    assert result.distance == pytest.approx(gap, abs=1e-9)
    # The closest points are the fingertips (keypoints on the skin).
    np.testing.assert_allclose(result.point_b, RIGHT_REST[12], atol=1e-9)
    assert inter_hand_penetration(left, right) == pytest.approx(max(-gap, 0.0), abs=1e-9)
    # The keypoint bones meet at the fingertips.
    assert bone_distance(left.keypoints, right.keypoints) == pytest.approx(max(gap, 0.0),
                                                                          abs=1e-9)


@pytest.mark.parametrize('mid_plane_gap', [0.04, 0.027, 0.02])
def test_backs_facing(mid_plane_gap: float) -> None:
    left, right = _backs_facing(mid_plane_gap)
    back = part_distance(left, HandPart.BACK, right, HandPart.BACK)
    # Two faces, each HALF_THICKNESS from its mid plane.
    assert back.distance == pytest.approx(mid_plane_gap - 2 * HALF_THICKNESS, abs=1e-9)
    assert back.point_b[1] == pytest.approx(HALF_THICKNESS)  # on the right back's face
    assert back.point_a[1] == pytest.approx(mid_plane_gap - HALF_THICKNESS)
    # The palm halves end at the mid planes, but for the thenar capsules.
    palm_back = part_distance(left, HandPart.PALM, right, HandPart.BACK).distance
    assert palm_back == pytest.approx(mid_plane_gap - HALF_THICKNESS - THENAR_PAST_MID_PLANE,
                                      abs=1e-9)
    palm_palm = part_distance(left, HandPart.PALM, right, HandPart.PALM).distance
    assert palm_palm == pytest.approx(mid_plane_gap - 2 * THENAR_PAST_MID_PLANE, abs=1e-9)
    matrix = part_distance_matrix(left, right)
    back_index, palm_index = HAND_PARTS.index(HandPart.BACK), HAND_PARTS.index(HandPart.PALM)
    assert matrix[back_index, back_index] == pytest.approx(back.distance)
    assert matrix[palm_index, back_index] == pytest.approx(palm_back)
    assert inter_hand_penetration(left, right) == pytest.approx(
        max(0.0, 2 * HALF_THICKNESS - mid_plane_gap), abs=1e-9)


def test_palms_facing_thenar_stands_out() -> None:
    # The right hand reflected through y = 0 and moved down: palms face each other, and so do
    # the thenar eminences (the first metacarpal, part of the palm), which stand out of the
    # slab on the palmar side: the palms touch before the slab faces do.
    gap = 0.04
    left = hand_surface(RIGHT_REST * np.array([1.0, -1.0, 1.0]) - np.array([0.0, gap, 0.0]),
                        HandSide.LEFT)
    right = hand_surface(RIGHT_REST, HandSide.RIGHT)
    palm = part_distance(left, HandPart.PALM, right, HandPart.PALM).distance
    assert palm < gap - 2 * HALF_THICKNESS - 0.005


def test_penetration_sign_and_contacts() -> None:
    left, right = _backs_facing(2 * HALF_THICKNESS - 0.006)  # backs 6 mm into each other
    assert part_distance(left, HandPart.BACK, right, HandPart.BACK).distance == \
        pytest.approx(-0.006)
    assert inter_hand_penetration(left, right) == pytest.approx(0.006)
    left, right = _backs_facing(2 * HALF_THICKNESS + 0.003)
    touching = contact_matrix(left, right, ContactConfig())
    palm, back = HAND_PARTS.index(HandPart.PALM), HAND_PARTS.index(HandPart.BACK)
    assert touching[back, back]
    assert not touching[palm, palm] and not touching[palm, back]
    left, right = _backs_facing(0.05)
    assert not contact_matrix(left, right)[back, back]


def test_reference_contacts() -> None:
    # Palm centres 30 mm and 50 mm apart (HandX: palms touch below 40 mm).
    palm = HAND_PARTS.index(HandPart.PALM)
    assert reference_contact_matrix(*_backs_facing(0.03))[palm, palm]
    assert not reference_contact_matrix(*_backs_facing(0.05))[palm, palm]
    # Middle fingertips 15 mm apart touch (< 20 mm), 25 mm apart do not.
    tip = HAND_PARTS.index(HandPart.MIDDLE_TIP)
    assert reference_contact_matrix(*_tips_facing(0.015))[tip, tip]
    assert not reference_contact_matrix(*_tips_facing(0.025))[tip, tip]


def test_vectorised_over_frames() -> None:
    gaps = np.array([0.05, 0.03, 0.027, 0.02])
    left = RIGHT_REST * np.array([1.0, -1.0, 1.0]) + gaps[:, None, None] * np.array([0, 1, 0])
    sl = hand_surface(left, HandSide.LEFT)
    sr = hand_surface(RIGHT_REST, HandSide.RIGHT)  # broadcasts against the frames
    result = part_distance(sl, HandPart.BACK, sr, HandPart.BACK)
    assert result.distance.shape == (4,)
    np.testing.assert_allclose(result.distance, gaps - 2 * HALF_THICKNESS, atol=1e-9)
    assert result.point_a.shape == (4, 3)
    single = [part_distance_matrix(hand_surface(k, 0), sr) for k in left]
    np.testing.assert_allclose(part_distance_matrix(sl, sr), np.stack(single))


def test_segment_kernels_hand_computed() -> None:
    # Skew segments: x axis at z = 0 and y axis at z = 0.01, crossing above the origin.
    dist, cp, cq = _segment_segment(np.array([-1.0, 0, 0]), np.array([1.0, 0, 0]),
                                    np.array([0.0, -1, 0.01]), np.array([0.0, 1, 0.01]))
    assert dist == pytest.approx(0.01)
    np.testing.assert_allclose(cp, [0, 0, 0], atol=1e-12)
    # Parallel segments offset by 3 along y, overlapping in x.
    dist, _, _ = _segment_segment(np.array([0.0, 0, 0]), np.array([2.0, 0, 0]),
                                  np.array([1.0, 3, 0]), np.array([4.0, 3, 0]))
    assert dist == pytest.approx(3.0)
    # Segment end-to-end along a line.
    dist, _, _ = _segment_segment(np.array([0.0, 0, 0]), np.array([1.0, 0, 0]),
                                  np.array([1.5, 0, 0]), np.array([3.0, 0, 0]))
    assert dist == pytest.approx(0.5)
    square = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1, 0], [0.0, 1, 0]])
    # Above the square, tilted: the lower end decides.
    dist, cp, cq = _segment_quad(np.array([0.5, 0.5, 0.2]), np.array([0.6, 0.5, 0.9]), square)
    assert dist == pytest.approx(0.2)
    np.testing.assert_allclose(cq, [0.5, 0.5, 0.0])
    # Piercing the square.
    dist, _, _ = _segment_quad(np.array([0.3, 0.3, -1.0]), np.array([0.3, 0.3, 1.0]), square)
    assert dist == 0.0
    # Beside the square, parallel to an edge: edge-to-segment.
    dist, _, _ = _segment_quad(np.array([2.0, 0.2, 0.0]), np.array([2.0, 0.8, 0.0]), square)
    assert dist == pytest.approx(1.0)


def test_intra_hand_flat() -> None:
    surface = hand_surface(RIGHT_REST, HandSide.RIGHT)
    assert intra_hand_penetration(surface) < 0.002  # neighbouring knuckles only


def test_config_and_input_errors() -> None:
    with pytest.raises(ConfigError, match='apart_gap_m'):
        ContactConfig(touch_gap_m=0.02, apart_gap_m=0.01)
    with pytest.raises(ConfigError, match='palm_palm_m'):
        ContactConfig(palm_palm_m=-1.0)
    with pytest.raises(HandModelError, match=r'\(\.\.\., 21, 3\)'):
        hand_surface(np.zeros((20, 3)), HandSide.RIGHT)
    with pytest.raises(HandModelError, match='side'):
        hand_surface(RIGHT_REST, 'right')


def test_contact_intervals_hysteresis() -> None:
    config = ContactConfig()  # touch 5 mm, apart 15 mm, at least 0.05 s
    mm = 0.001
    distance = np.array([30, 10, 4, 2, 8, 3, 12, 20, 4, 30, 3, 2, 1, 40]) * mm
    # 4, 2, 8, 3 stay within 15 mm: one event (frames 2-5); the lone 4 at frame 8 is one
    # frame (shorter than 0.05 s at 30 fps); frames 10-12 are the third event.
    assert contact_intervals(distance, 30.0, config) == [(2, 6), (10, 13)]
    assert contact_intervals(distance, 10.0, config) == [(2, 6), (8, 9), (10, 13)]
    assert contact_intervals(np.full(5, 0.1), 30.0) == []
