"""Small motion types for testing the corpus builder without the real primitives.

Importing this module registers ``fixture_fist`` (single hand), ``fixture_clap`` (bimanual
contact: the hands approach until the thumbs meet), ``fixture_sway`` (bimanual coordination)
and ``fixture_touch`` (the thumbs touch throughout, so transitions start or end with touching
hands; not in FIXTURE_TYPES). Tests select them with ``SynthConfig(motion_types=...,
primitive_modules=FIXTURE_MODULES)`` so worker processes register them too. The hands face
each other, fingers forward (+y), thumbs up, the wrists 0.3 m apart at 1 m height."""

from __future__ import annotations

import math

import numpy as np

from handx_gen.data.plan import (
    ClipPlan,
    FingerAction,
    MotionCategory,
    PlannedContact,
    PlannedFingerAction,
)
from handx_gen.data.synth_base import PrimitiveClip, SynthContext, register
from handx_gen.hand.limits import POSE_JOINT_NAMES
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.topology import Finger, HandSide
from handx_gen.motion import BimanualMotion

FIXTURE_TYPES = ('fixture_clap', 'fixture_fist', 'fixture_sway')
FIXTURE_MODULES = ('synth_fixtures',)

HEIGHT_M = 1.0
HALF_GAP_M = 0.15  # wrist distance from the midline at rest
# The flat thumbs stand out on the palmar side: at this wrist distance from the midline the
# thumbs of a 0.185 m hand meet (their surface proxies about 1 mm apart).
TOUCH_HALF_GAP_M = 0.037
# Right hand: fingers +y, palm -x, thumb +z is a -90 deg turn about z; left: its mirror.
R_WORLD_WRIST = np.stack([axis_angle_to_matrix(np.array([0.0, 0.0, math.pi / 2])),
                          axis_angle_to_matrix(np.array([0.0, 0.0, -math.pi / 2]))])
FIST_FLEXION_DEG = {1: 80.0, 2: 95.0, 3: 60.0}


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def _wrists(num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    rotation = np.broadcast_to(R_WORLD_WRIST, (num_frames, 2, 3, 3)).copy()
    position = np.zeros((num_frames, 2, 3))
    position[:, HandSide.LEFT, 0] = -HALF_GAP_M
    position[:, HandSide.RIGHT, 0] = HALF_GAP_M
    position[:, :, 1] = 0.3
    position[:, :, 2] = HEIGHT_M
    return rotation, position


def _flat(ctx: SynthContext, num_frames: int) -> np.ndarray:
    """(T, 2, 15, 3) the fingers straight (flexion 0), abduction and twist as at the start."""
    angles = np.broadcast_to(ctx.start_angles, (num_frames, 2, 15, 3)).copy()
    angles[..., 0] = 0.0
    return angles


@register('fixture_clap', MotionCategory.BIMANUAL_CONTACT, 'test: the hands meet at the thumbs')
def build_clap(ctx: SynthContext) -> PrimitiveClip:
    cycle = max(int(round(ctx.fps / ctx.tempo)), 10)  # approach, touch, part
    touch = max(int(round(0.1 * ctx.fps)), 2)
    approach = (cycle - touch) // 2
    num_frames = ctx.repetitions * cycle + approach
    rotation, position = _wrists(num_frames)
    half_gap = np.full(num_frames, HALF_GAP_M * ctx.amplitude)
    contacts = []
    for rep in range(ctx.repetitions):
        t0 = rep * cycle
        ramp = minimum_jerk(np.arange(approach + 1) / approach)  # (approach + 1,)
        open_gap = HALF_GAP_M * ctx.amplitude
        half_gap[t0:t0 + approach + 1] = open_gap + ramp * (TOUCH_HALF_GAP_M - open_gap)
        half_gap[t0 + approach:t0 + approach + touch] = TOUCH_HALF_GAP_M
        back = t0 + approach + touch - 1
        stop = min(back + approach + 1, num_frames)
        half_gap[back:stop] = TOUCH_HALF_GAP_M + ramp[:stop - back] * (open_gap
                                                                       - TOUCH_HALF_GAP_M)
        contacts.append(PlannedContact(t0 + approach, t0 + approach + touch,
                                       PartRef(HandSide.LEFT, HandPart.THUMB),
                                       PartRef(HandSide.RIGHT, HandPart.THUMB)))
    position[:, HandSide.LEFT, 0] = -half_gap
    position[:, HandSide.RIGHT, 0] = half_gap
    return PrimitiveClip(_flat(ctx, num_frames), rotation, position, tuple(contacts), (),
                         f'the thumbs meet {ctx.repetitions} times', {'touch_frames': touch})


@register('fixture_fist', MotionCategory.SINGLE_HAND, 'test: one hand closes and opens')
def build_fist(ctx: SynthContext) -> PrimitiveClip:
    half = max(int(round(0.6 * ctx.fps / ctx.tempo)), 4)
    num_frames = ctx.repetitions * 2 * half + 1
    side = ctx.dominant
    angles = np.broadcast_to(ctx.start_angles, (num_frames, 2, 15, 3)).copy()
    fist = ctx.start_angles[side].copy()
    for name in ('index', 'middle', 'ring', 'little'):
        for level, degrees in FIST_FLEXION_DEG.items():
            fist[POSE_JOINT_NAMES.index(f'{name}{level}'), 0] = math.radians(degrees)
    ramp = minimum_jerk(np.arange(half + 1) / half)[:, None, None]  # (half + 1, 1, 1)
    actions = []
    for rep in range(ctx.repetitions):
        t0 = rep * 2 * half
        close = ctx.start_angles[side] + ramp * (fist - ctx.start_angles[side])
        angles[t0:t0 + half + 1, side] = close
        angles[t0 + half:t0 + 2 * half + 1, side] = close[::-1]
        for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
            actions.append(PlannedFingerAction(side, finger, t0, t0 + half + 1,
                                               FingerAction.BEND))
            actions.append(PlannedFingerAction(side, finger, t0 + half, t0 + 2 * half + 1,
                                               FingerAction.EXTEND))
    rotation, position = _wrists(num_frames)
    return PrimitiveClip(angles, rotation, position, (), tuple(actions),
                         f'the {side.name.lower()} hand makes a fist', {})


@register('fixture_sway', MotionCategory.BIMANUAL_COORDINATION, 'test: both hands bob')
def build_sway(ctx: SynthContext) -> PrimitiveClip:
    period = max(int(round(1.2 * ctx.fps / ctx.tempo)), 6)
    num_frames = ctx.repetitions * period + 1
    rotation, position = _wrists(num_frames)
    lift = 0.05 * ctx.amplitude * (1.0 - np.cos(2 * math.pi * np.arange(num_frames) / period))
    position[:, :, 2] += lift[:, None]
    angles = np.broadcast_to(ctx.start_angles, (num_frames, 2, 15, 3)).copy()
    return PrimitiveClip(angles, rotation, position, (), (), 'both hands bob up and down', {})


@register('fixture_touch', MotionCategory.BIMANUAL_CONTACT,
          'test: the thumbs touch from start to end while the hands rock')
def build_touch(ctx: SynthContext) -> PrimitiveClip:
    num_frames = max(int(round(1.5 * ctx.fps / ctx.tempo)), 10)
    rotation, position = _wrists(num_frames)
    position[:, HandSide.LEFT, 0] = -TOUCH_HALF_GAP_M
    position[:, HandSide.RIGHT, 0] = TOUCH_HALF_GAP_M
    position[:, :, 2] += 0.03 * ctx.amplitude * np.sin(
        2 * math.pi * np.arange(num_frames) / num_frames)[:, None]
    contact = PlannedContact(0, num_frames, PartRef(HandSide.LEFT, HandPart.THUMB),
                             PartRef(HandSide.RIGHT, HandPart.THUMB))
    return PrimitiveClip(_flat(ctx, num_frames), rotation, position, (contact,), (),
                         'the thumbs stay together', {})


def fixture_annotate(motion: BimanualMotion, plan: ClipPlan) -> tuple[tuple[str, ...], dict]:
    """A stand-in annotator: one text naming the motion types, a small feature entry."""
    text = ', then '.join(p.motion_type for p in plan.primitives)
    return (text,), {'features': {'frames': motion.num_frames}}
