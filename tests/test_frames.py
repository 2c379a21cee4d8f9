"""Tests for handx_gen.data.frames: axes maps, placement and moving motions and points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handx_gen.data.frames import (
    IDENTITY,
    AxesMap,
    FrameChange,
    default_placement,
    move_motion,
    move_points,
    place_offsets,
    placement,
    source_frame,
)
from handx_gen.data.kinds import Placement, SourceFrame, UpAxis
from handx_gen.data.sources import Y_UP_TO_Z_UP
from handx_gen.data.workspace import CANONICAL_WRIST_M
from handx_gen.errors import ConfigError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.motion import BimanualMotion

RIGHT, FORWARD, UP = np.eye(3)


def test_axes_map_sends_each_file_axis_where_it_is_said_to_point() -> None:
    # A camera facing the person: image x is the person's left, y down, depth into the person.
    axes = AxesMap.parse('left,down,back')
    R = axes.R_world_source
    np.testing.assert_array_equal(R @ [1.0, 0.0, 0.0], -RIGHT)
    np.testing.assert_array_equal(R @ [0.0, 1.0, 0.0], -UP)
    np.testing.assert_array_equal(R @ [0.0, 0.0, 1.0], -FORWARD)
    assert not axes.is_reflection and not axes.is_identity
    assert str(axes) == 'left,down,back'
    # A head-mounted camera looking forward: x right, y down, z forward (R is not symmetric).
    R = AxesMap.parse('right,down,forward').R_world_source
    np.testing.assert_array_equal(R @ [0.1, 0.2, 0.3], [0.1, 0.3, -0.2])
    assert AxesMap.parse(' Right  forward,UP ') == IDENTITY and IDENTITY.is_identity
    # x right, y down, z towards a facing camera: left-handed axes, a reflection.
    assert AxesMap.parse('left,down,forward').is_reflection


def test_up_axis_is_a_shorthand_for_axes() -> None:
    np.testing.assert_array_equal(AxesMap.from_up_axis('y').R_world_source, Y_UP_TO_Z_UP)
    assert AxesMap.from_up_axis(UpAxis.Y) == AxesMap.parse('right,up,back')
    assert AxesMap.from_up_axis('z') == IDENTITY


@pytest.mark.parametrize(('text', 'why'), [
    ('left,down', '2 directions, not 3'),
    ('left,down,back,up', '4 directions, not 3'),
    ('left,down,behind', "'behind' is not a direction"),
    ('up,down,left', 'two axes point along the same world axis'),
    ('', '0 directions, not 3'),
])
def test_bad_axes_say_why_and_what_is_valid(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        AxesMap.parse(text)
    message = str(info.value)
    assert why in message and 'right, left, forward, back, up, down' in message
    assert "'left,down,back'" in message and '\n' not in message


def test_frame_and_placement_values() -> None:
    assert source_frame('WRIST') is SourceFrame.WRIST
    assert placement('canonical') is Placement.CANONICAL
    assert default_placement(SourceFrame.WRIST) is Placement.CANONICAL
    assert default_placement(SourceFrame.WORLD) is Placement.NONE
    with pytest.raises(ConfigError, match="unknown source frame 'hand'.*'world', 'wrist'"):
        source_frame('hand')
    with pytest.raises(ConfigError, match="unknown placement 'centre'.*'canonical', 'none'"):
        placement('centre')


def _wrists(num_frames: int = 20) -> np.ndarray:
    """(T, 2, 3) wrists circling about (-1, 2, 0.5) (left) and (1.5, -1, 0.2) (right)."""
    t = np.linspace(0.0, 2.0 * math.pi, num_frames, endpoint=False)
    circle = 0.05 * np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=-1)  # mean 0
    return np.stack([circle + [-1.0, 2.0, 0.5], circle + [1.5, -1.0, 0.2]], axis=1)


def test_wrist_frame_places_each_hand_at_its_spot_keeping_its_motion() -> None:
    wrists = _wrists()
    offsets = place_offsets(wrists, SourceFrame.WRIST, Placement.CANONICAL)
    placed = wrists + offsets
    np.testing.assert_allclose(placed.mean(axis=0), CANONICAL_WRIST_M, atol=1e-12)
    np.testing.assert_allclose(np.diff(placed, axis=0), np.diff(wrists, axis=0), atol=1e-12)
    assert np.all(place_offsets(wrists, SourceFrame.WRIST, Placement.NONE) == 0.0)


def test_world_frame_moves_both_hands_as_one() -> None:
    wrists = _wrists()
    offsets = place_offsets(wrists, SourceFrame.WORLD, Placement.CANONICAL)
    np.testing.assert_array_equal(offsets[0], offsets[1])  # the hands' relation is kept
    placed = wrists + offsets
    np.testing.assert_allclose(placed.mean(axis=(0, 1)), CANONICAL_WRIST_M.mean(axis=0),
                               atol=1e-12)


def test_placement_works_per_hand_with_an_absent_hand() -> None:
    """A hand missing in some frames is placed from the frames it is in; a hand missing in
    every frame is left alone, and the other hand is placed on its own."""
    wrists = _wrists()
    wrists[:5, 0] = np.nan
    offsets = place_offsets(wrists, SourceFrame.WRIST, Placement.CANONICAL)
    np.testing.assert_allclose(np.nanmean(wrists + offsets, axis=0), CANONICAL_WRIST_M,
                               atol=1e-12)
    wrists[:, 0] = np.nan
    for frame in SourceFrame:
        offsets = place_offsets(wrists, frame, Placement.CANONICAL)
        np.testing.assert_array_equal(offsets[0], 0.0)
        np.testing.assert_allclose((wrists[:, 1] + offsets[1]).mean(axis=0),
                                   CANONICAL_WRIST_M[1], atol=1e-12)
    np.testing.assert_array_equal(
        place_offsets(np.full((3, 2, 3), np.nan), SourceFrame.WRIST, Placement.CANONICAL), 0.0)


def test_move_points_rotates_then_translates_each_hand() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(4, 2, 21, 3))
    points[1, 0, 3] = np.nan
    R = AxesMap.parse('right,down,forward').R_world_source
    offsets = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    moved = move_points(points, R, offsets)
    np.testing.assert_allclose(moved[2, 1, 7], R @ points[2, 1, 7] + offsets[1], atol=1e-12)
    np.testing.assert_array_equal(np.isfinite(moved), np.isfinite(points))


def _motion(num_frames: int = 6) -> BimanualMotion:
    rng = np.random.default_rng(1)
    return BimanualMotion.from_mano(
        30.0, rng.normal(scale=0.5, size=(num_frames, 2, 3)),
        rng.normal(scale=0.2, size=(num_frames, 2, 15, 3)),
        rng.normal(scale=0.2, size=(num_frames, 2, 3)), texts='Both hands wave.',
        annotation={'plan': 'kept only when the hands move as one'})


def test_move_motion_agrees_with_forward_kinematics() -> None:
    """A moved motion's parameters give its moved keypoints (the rest wrist read off the
    motion is right), and the hand poses stay."""
    motion = _motion()
    R = AxesMap.parse('right,down,forward').R_world_source
    offsets = np.array([[0.1, 0.2, 0.3], [-0.4, 0.5, 0.6]])
    moved = move_motion(motion, R, offsets)
    np.testing.assert_allclose(moved.keypoints, move_points(motion.keypoints, R, offsets),
                               atol=1e-6)
    again = BimanualMotion.from_mano(30.0, moved.global_orient, moved.hand_pose, moved.transl)
    np.testing.assert_allclose(again.keypoints, moved.keypoints, atol=1e-6)
    np.testing.assert_allclose(axis_angle_to_matrix(moved.global_orient),
                               R @ axis_angle_to_matrix(motion.global_orient), atol=1e-9)
    np.testing.assert_array_equal(moved.hand_pose, motion.hand_pose)
    assert moved.texts == motion.texts
    assert moved.annotation is None  # the hands turned and moved apart: features are stale
    shifted = move_motion(motion, np.eye(3), np.array([[0.0, 0.1, 1.0]] * 2))
    assert shifted.annotation == motion.annotation
    np.testing.assert_allclose(shifted.transl, motion.transl + [0.0, 0.1, 1.0], atol=1e-12)


def test_move_motion_refuses_a_reflection() -> None:
    with pytest.raises(ConfigError, match=r'only be turned by a rotation.*determinant -1'):
        move_motion(_motion(), AxesMap.parse('left,down,forward').R_world_source,
                    np.zeros((2, 3)))


def test_frame_change_describes_what_was_done() -> None:
    change = FrameChange(AxesMap.parse('left,down,back'), SourceFrame.WRIST,
                         Placement.CANONICAL, np.array([[0.0, 0.0, 1.0], [0.0, 0.3, 0.4]]))
    assert change.describe() == ('axes left,down,back, wrist frame, placed at the canonical '
                                 'spots (moved left 1.00 m, right 0.50 m)')
    assert not change.is_identity
    assert FrameChange(IDENTITY, SourceFrame.WORLD, Placement.NONE, np.zeros((2, 3))).is_identity
