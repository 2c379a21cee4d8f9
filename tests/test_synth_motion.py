"""Tests for handx_gen.data.synth_motion: timing, postures and placement helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import handx_gen.annotate  # noqa: F401  (the package first: plan and annotate import each other)
from handx_gen.data.plan import FingerAction
from handx_gen.data.synth_motion import (
    Schedule,
    Step,
    couple_fingers,
    local_keypoints,
    minimum_jerk,
    place_keypoints,
    schedule_finger_actions,
    set_finger,
    touching_intervals,
    wrist_rotation,
)
from handx_gen.errors import ConfigError
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import Finger, HandSide


def test_minimum_jerk_profile() -> None:
    s = np.linspace(0.0, 1.0, 101)
    x = minimum_jerk(s)
    assert x[0] == 0.0 and x[-1] == 1.0 and x[50] == pytest.approx(0.5)
    velocity = np.gradient(x, s)
    assert velocity[0] == pytest.approx(0.0, abs=1e-3)
    assert velocity.max() == pytest.approx(1.875, rel=1e-3)  # 15/8 at the midpoint


def test_schedule_frames_and_tracks() -> None:
    schedule = Schedule([Step(0.3, 0.2), Step(0.5)], fps=30.0)
    assert schedule.num_frames == 1 + 9 + 6 + 15
    first, second = schedule.frames
    assert (first.start, first.arrive, first.stop) == (1, 9, 16)
    assert (second.start, second.arrive, second.stop) == (16, 30, 31)
    track = schedule.track([0.0, 1.0, 3.0])
    assert track[0] == 0.0 and np.all(track[9:16] == 1.0) and track[-1] == 3.0
    assert np.all(np.diff(track) >= 0.0)
    turns = np.stack([np.eye(3), wrist_rotation(np.array([0.0, 1.0, 0.0]), -np.eye(3)[2],
                                                HandSide.RIGHT), np.eye(3)])
    rotations = schedule.rotation_track(turns)
    np.testing.assert_allclose(rotations[9], turns[1], atol=1e-12)
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2),
                               np.broadcast_to(np.eye(3), rotations.shape), atol=1e-12)
    with pytest.raises(ConfigError, match='needs 3 keys'):
        schedule.track([0.0, 1.0])


@pytest.mark.parametrize('side', list(HandSide))
def test_wrist_rotation_places_the_hand(side: HandSide) -> None:
    fingers, palm = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    R = wrist_rotation(fingers, palm, side)
    assert np.linalg.det(R) == pytest.approx(1.0)
    skeleton = default_skeleton(side)
    keypoints = place_keypoints(local_keypoints(np.zeros((15, 3)), skeleton), R,
                                np.array([0.0, 0.0, 1.0]))
    along = keypoints[9] - keypoints[0]  # wrist to middle MCP
    np.testing.assert_allclose(along / np.linalg.norm(along), fingers, atol=1e-12)
    # The thumb lies on fingers x palm for the right hand, palm x fingers for the left.
    thumb = keypoints[4] - keypoints[0]
    expected = np.cross(fingers, palm) if side == HandSide.RIGHT else np.cross(palm, fingers)
    assert thumb @ expected > 0.0


def test_finger_coupling() -> None:
    angles = np.zeros((15, 3))
    set_finger(angles, Finger.LITTLE, 60.0, 90.0, dip_deg=0.0)
    coupled = couple_fingers(angles)
    little_dip, ring_mcp = 8, 9  # MANO pose rows: little3, ring1
    assert coupled[little_dip, 0] == pytest.approx(math.radians(60.0))  # 2/3 of the PIP
    assert coupled[ring_mcp, 0] == pytest.approx(0.35 * math.radians(60.0))
    with pytest.raises(ConfigError, match='set_thumb'):
        set_finger(angles, Finger.THUMB, 10.0, 10.0)


def test_schedule_finger_actions() -> None:
    open_hand = np.zeros((2, 15, 3))
    fist = open_hand.copy()
    set_finger(fist[1], Finger.INDEX, 80.0, 95.0)
    schedule = Schedule([Step(0.4, 0.4), Step(0.4, 0.4)], fps=30.0)
    track = schedule.track(np.stack([open_hand, fist, open_hand]))
    actions = schedule_finger_actions(schedule, track)
    index = [(a.action, a.start, a.stop) for a in actions
             if a.side == HandSide.RIGHT and a.finger == Finger.INDEX]
    first, second = schedule.frames
    assert index == [(FingerAction.BEND, first.start, first.arrive + 1),
                     (FingerAction.EXTEND, second.start, second.arrive + 1)]
    # The other fingers hold all along.
    thumb = [a for a in actions if a.side == HandSide.LEFT and a.finger == Finger.THUMB]
    assert [(a.action, a.start, a.stop) for a in thumb] == [
        (FingerAction.HOLD, 1, schedule.num_frames)]


def test_touching_intervals() -> None:
    distance = np.array([9.0, 1.0, 1.0, 9.0, 1.0, 9.0])
    assert touching_intervals(distance, 2.0) == [(1, 3), (4, 5)]
    assert touching_intervals(distance, 2.0, min_frames=2) == [(1, 3)]
