"""Tests for handx_gen.data.synth_interactions: the bimanual contact motion types."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import handx_gen.annotate  # noqa: F401  (the package first: plan and annotate import each other)
from handx_gen.annotate.surface import (
    ContactConfig,
    hand_surface,
    inter_hand_penetration,
    part_distance,
)
from handx_gen.data.filters import filter_motion
from handx_gen.data.plan import FingerAction, MotionCategory
from handx_gen.data.synth_base import PRIMITIVES, SynthContext, get_primitive
from handx_gen.data.synth_interactions import CONTACT_TYPES
from handx_gen.data.synth_motion import clip_keypoints, clip_to_motion
from handx_gen.hand.limits import anatomical_bounds
from handx_gen.hand.parts import PartRef
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide

CONFIG = ContactConfig()
FPS = 30.0
# (seed, dominant hand, hand scale): both handednesses, three hand sizes.
CASES = ((0, HandSide.RIGHT, 1.0), (1, HandSide.LEFT, 0.9), (2, HandSide.RIGHT, 1.1))


def _context(seed: int, dominant: HandSide, scale: float) -> SynthContext:
    rng = np.random.default_rng(seed)
    skeletons = tuple(default_skeleton(side).scaled(scale) for side in HandSide)
    return SynthContext(rng=rng, fps=FPS, skeletons=skeletons, dominant=dominant,
                        tempo=float(rng.uniform(0.8, 1.25)),
                        amplitude=float(rng.uniform(0.8, 1.2)),
                        repetitions=int(rng.integers(1, 5)),
                        start_angles=np.zeros((2, 15, 3)))


@functools.cache
def _built(name: str, case: int):
    seed, dominant, scale = CASES[case]
    ctx = _context(seed, dominant, scale)
    clip = get_primitive(name).build(ctx)
    keypoints = clip_keypoints(clip.angles, clip.R_world_wrist, clip.p_world_wrist,
                               ctx.skeletons)
    surfaces = (hand_surface(keypoints[:, 0], HandSide.LEFT),
                hand_surface(keypoints[:, 1], HandSide.RIGHT))
    return ctx, clip, keypoints, surfaces


def _distance(surfaces, a: PartRef, b: PartRef) -> np.ndarray:
    return part_distance(surfaces[a.side], a.part, surfaces[b.side], b.part).distance


def _pairs(clip) -> dict[tuple[PartRef, PartRef], list[tuple[int, int]]]:
    out: dict[tuple[PartRef, PartRef], list[tuple[int, int]]] = {}
    for contact in clip.contacts:
        out.setdefault((contact.a, contact.b), []).append((contact.start, contact.stop))
    return out


def test_all_contact_types_registered() -> None:
    assert len(CONTACT_TYPES) == 11
    for name in CONTACT_TYPES:
        assert PRIMITIVES[name].category == MotionCategory.BIMANUAL_CONTACT


@pytest.mark.parametrize('case', range(len(CASES)))
@pytest.mark.parametrize('name', CONTACT_TYPES)
def test_contact_type(name: str, case: int) -> None:
    ctx, clip, keypoints, surfaces = _built(name, case)
    num_frames = clip.num_frames
    assert clip.angles.shape == (num_frames, 2, 15, 3)
    bounds = anatomical_bounds()
    assert np.all(clip.angles >= bounds.lower - 1e-9)
    assert np.all(clip.angles <= bounds.upper + 1e-9)
    # No deep interpenetration anywhere.
    assert inter_hand_penetration(*surfaces).max() <= 0.005
    # Every planned contact is a contact event of the geometry (contact_intervals: it starts
    # and ends touching and stays within the release distance) ...
    pairs = _pairs(clip)
    for (a, b), intervals in pairs.items():
        distance = _distance(surfaces, a, b)
        for start, stop in intervals:
            assert 0 <= start < stop <= num_frames
            assert distance[start] <= CONFIG.touch_gap_m
            assert distance[stop - 1] <= CONFIG.touch_gap_m
            assert distance[start:stop].max() <= CONFIG.apart_gap_m
        # ... and between two contacts of a pair the parts separate clearly.
        for (_, stop), (start, _) in zip(intervals, intervals[1:], strict=False):
            assert distance[stop:start].max() > CONFIG.apart_gap_m, (a, b, stop, start)
    # The intended contacts happen, touching on >= 90 % of their frames, and the parts are
    # clearly apart at the start and the end.
    intended = clip.params['intended']
    assert intended
    for name_pair in intended:
        a, b = (PartRef.from_json(text) for text in name_pair.split('~'))
        assert (a, b) in pairs, (name_pair, sorted(pairs))
        distance = _distance(surfaces, a, b)
        for start, stop in pairs[a, b]:
            touching = distance[start:stop] <= CONFIG.touch_gap_m
            assert touching.mean() >= 0.9, (name_pair, start, stop)
        assert distance[0] > CONFIG.apart_gap_m and distance[-1] > CONFIG.apart_gap_m
    # Finger actions lie in the clip; the quality filters keep the motion.
    for action in clip.finger_actions:
        assert 0 <= action.start < action.stop <= num_frames
        assert action.action in FingerAction
    motion = clip_to_motion(clip, ctx.skeletons, FPS)
    np.testing.assert_allclose(motion.keypoints, keypoints, atol=1e-5)
    assert filter_motion(motion).kept_fraction >= 0.95


def test_dominant_hand_leads() -> None:
    for case, (_, dominant, _) in enumerate(CASES[:2]):
        _, clip, _, _ = _built('tap_palm', case)
        taps = [c for c in clip.contacts if 'index_tip' in (c.a.part.value, c.b.part.value)]
        assert taps
        for contact in taps:
            tapper = contact.a if contact.a.part.value == 'index_tip' else contact.b
            assert tapper.side == dominant
        assert len(taps) == clip.params['taps']


def test_claps_and_counting_follow_the_plan() -> None:
    _, clip, _, _ = _built('clap', 0)
    palms = [c for c in clip.contacts if (c.a.part.value, c.b.part.value) == ('palm', 'palm')]
    assert len(palms) == clip.params['claps']
    _, clip, _, _ = _built('count_on_fingers', 0)
    touched = [c for c in clip.contacts if 'index_tip' in (c.a.part.value, c.b.part.value)
               and c.a.side != c.b.side]
    assert len(touched) == clip.params['count']
    assert [c.start for c in touched] == sorted(c.start for c in touched)


def test_deterministic_by_seed() -> None:
    first = get_primitive('heart_shape').build(_context(5, HandSide.RIGHT, 1.0))
    second = get_primitive('heart_shape').build(_context(5, HandSide.RIGHT, 1.0))
    np.testing.assert_array_equal(first.angles, second.angles)
    np.testing.assert_array_equal(first.p_world_wrist, second.p_world_wrist)
    assert first.contacts == second.contacts
