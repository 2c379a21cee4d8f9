"""The contract between motion-type primitives and the synthetic corpus builder.

A primitive (one motion type: a clap, counting to three, a steeple, ...) is a function
``build(ctx) -> PrimitiveClip`` registered with :func:`register`. It returns per-frame targets
for both hands in anatomical joint angles and wrist poses, plus what it intends (contacts,
finger actions, a semantic label), with frame indices relative to its own start. The builder
(:mod:`handx_gen.data.synthetic`) composes 2-3 primitives with smooth transitions, converts the
angles to MANO ``hand_pose`` with :func:`handx_gen.hand.limits.anatomical_to_pose`, and shifts
the plan entries into clip frames.

Angles are ``[flexion, abduction, twist]`` per MANO pose joint (see
:mod:`handx_gen.hand.limits`), the same for both hands (mirror-symmetric frames). Wrist poses
are in the world frame (Z up, metres): ``R_world_wrist`` is the MANO global orientation as a
matrix, ``p_world_wrist`` the wrist keypoint's position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from handx_gen.data.plan import MotionCategory, PlannedContact, PlannedFingerAction
from handx_gen.errors import ConfigError, unknown_choice
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import HandSide

__all__ = ['PRIMITIVES', 'PrimitiveClip', 'PrimitiveSpec', 'SynthContext', 'get_primitive',
           'register']


@dataclasses.dataclass(frozen=True)
class SynthContext:
    """What a primitive may vary on, drawn per clip by the builder.

    Attributes:
        rng: The primitive's own random generator (deterministic by seed).
        fps: Frame rate of the clip.
        skeletons: (left, right) skeletons the clip is built with (scaled by hand size).
        dominant: The hand that leads single-hand and asymmetric motion types.
        tempo: Speed factor, 1.0 = typical; durations divide by it.
        amplitude: Size factor of the movement, 1.0 = typical.
        repetitions: How often a repeated action repeats (taps, claps, waves), >= 1.
        start_angles: (2, 15, 3) the posture the clip starts from (the previous primitive's
            end inside a composition); primitives may start there or at their own posture and
            let the builder blend.
    """

    rng: np.random.Generator
    fps: float
    skeletons: tuple[HandSkeleton, HandSkeleton]
    dominant: HandSide
    tempo: float
    amplitude: float
    repetitions: int
    start_angles: np.ndarray


@dataclasses.dataclass(frozen=True)
class PrimitiveClip:
    """Targets and intent of one primitive; frames relative to its start.

    Attributes:
        angles: (T, 2, 15, 3) anatomical joint angles, radians, inside the joint ranges.
        R_world_wrist: (T, 2, 3, 3) wrist orientations.
        p_world_wrist: (T, 2, 3) wrist positions, metres.
        contacts: Intended contacts, frames in ``[0, T)``.
        finger_actions: Intended bend/extend/hold per finger, frames in ``[0, T)``.
        label: Short semantic phrase, e.g. ``'the right hand counts to three'``.
        params: JSON-able values the primitive drew (for the plan).
    """

    angles: np.ndarray
    R_world_wrist: np.ndarray
    p_world_wrist: np.ndarray
    contacts: tuple[PlannedContact, ...] = ()
    finger_actions: tuple[PlannedFingerAction, ...] = ()
    label: str = ''
    params: dict = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.angles.shape[0])


@dataclasses.dataclass(frozen=True)
class PrimitiveSpec:
    name: str
    category: MotionCategory
    build: Callable[[SynthContext], PrimitiveClip]
    description: str


PRIMITIVES: dict[str, PrimitiveSpec] = {}


def register(name: str, category: MotionCategory, description: str):
    """Decorator registering ``build(ctx) -> PrimitiveClip`` as motion type ``name``."""

    def decorate(build: Callable[[SynthContext], PrimitiveClip]):
        if name in PRIMITIVES:
            raise ConfigError(f'motion type {name!r} registered twice')
        PRIMITIVES[name] = PrimitiveSpec(name, category, build, description)
        return build

    return decorate


def get_primitive(name: str) -> PrimitiveSpec:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise ConfigError(unknown_choice('motion type', name, PRIMITIVES)) from None
