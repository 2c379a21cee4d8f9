"""Contact completion: the contacts a prompt names, made where a generated clip comes close.

Both generation models bring the named parts of the two hands near each other and then miss
by one to three centimetres where the contact is brief: the index tip counting the other
hand's fingertips (4-8 frames each), a fingertip tapping a palm. A contact is a fact of the
clip (the annotation, the retargeting gate and the robots read it), so a near miss is a missed
contact. :func:`complete_contacts` makes each contact stated by the prompt
(:func:`~handx_gen.annotate.contact_text.stated_contacts`) where the clip comes closest to it:

1. For each stated contact, the signed surface distance between its two parts (a finger's tip
   and shaft are one part, as the contact check reads them) over the frames
   (:func:`~handx_gen.annotate.surface.part_distance`). Each contact gets a frame of its own,
   the closest first (a contact stated three times gets three frames), at least
   :attr:`ContactGuidanceConfig.min_separation_s` apart; a contact already made there is left
   as it is.
2. A contact further than :attr:`ContactGuidanceConfig.max_reach_m` at its frame is not the
   clip's to make (the hands are elsewhere) and is left out; the others are closed to
   :attr:`ContactGuidanceConfig.target_gap_m` by moving the hands along the line between the
   parts' closest points, half each (all of it by a hand that is free where the other is
   given), held for :attr:`ContactGuidanceConfig.hold_frames` frames each side of the frame and
   eased in and out with a raised cosine, long enough that no hand's added step per frame
   exceeds :attr:`ContactGuidanceConfig.max_step_m`.
3. Step 2 is repeated :attr:`ContactGuidanceConfig.rounds` times on the result, as the
   displacements of neighbouring contacts add up.

Only the wrists move (translation of the whole hand): the finger joints are the model's, so
the joint limits hold and a hand's own links do not pass through each other. A displacement
that would make the hands overlap deeper than
:attr:`ContactGuidanceConfig.max_penetration_m` anywhere it acts (deeper than the clip already
did) is scaled back until it does not. Given parts of a clip stay exact: a hand given at a frame
is not moved there, and a contact whose easing would move a given hand is made by the other
hand alone, or not at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from handx_gen.annotate.contact_text import StatedContact, stated_contacts
from handx_gen.annotate.surface import (
    ContactConfig,
    hand_surface,
    inter_hand_penetration,
    part_distance,
)
from handx_gen.config import check_integers, check_positive
from handx_gen.errors import ConfigError
from handx_gen.hand.parts import FINGER_PARTS, FINGERTIP_PARTS, HandPart
from handx_gen.hand.topology import HandSide
from handx_gen.motion.container import BimanualMotion

__all__ = ['ContactCompletion', 'ContactGuidanceConfig', 'complete_contacts']

TOUCH_GAP_M = ContactConfig().touch_gap_m  # parts this close touch (the annotation's rule)


@dataclasses.dataclass(frozen=True)
class ContactGuidanceConfig:
    """Settings of :func:`complete_contacts` (see the module docstring)."""

    max_reach_m: float = 0.08  # a contact further apart than this at its frame is left out
    target_gap_m: float = 0.001  # surface gap a completed contact is closed to (touch: 5 mm)
    hold_frames: int = 1  # frames each side of a contact's frame held at the contact
    min_ease_frames: int = 4  # frames at least of easing in (and out) of a contact
    max_step_m: float = 0.005  # most a hand's added displacement changes per frame
    min_separation_s: float = 0.2  # the frames of two stated contacts at least this apart
    max_penetration_m: float = 0.008  # hands may overlap this deep where a contact moves them
    rounds: int = 3  # passes over the stated contacts

    def __post_init__(self) -> None:
        check_positive(self, 'contact guidance',
                       ('max_reach_m', 'max_step_m', 'min_separation_s', 'max_penetration_m'))
        gap = self.target_gap_m
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not math.isfinite(gap) \
                or not -0.005 <= gap <= 0.004:
            raise ConfigError(f'contact guidance target_gap_m must be in [-0.005, 0.004] m (a '
                              f'touch is a gap of 5 mm or less), got {gap!r}')
        check_integers(self, 'contact guidance',
                       (('hold_frames', 0), ('min_ease_frames', 1), ('rounds', 1)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ContactCompletion(NamedTuple):
    """What :func:`complete_contacts` did.

    Attributes:
        motion: The clip with the contacts made (the input itself when nothing moved).
        stated: The contacts the prompt states (between the hands), in its order.
        frames: The frame given to each stated contact, -1 where the clip has none for it.
        completed: Per stated contact: made by moving the hands.
        already: Per stated contact: the clip made it without help.
        max_shift_m: The largest displacement added to a wrist, metres.
    """

    motion: BimanualMotion
    stated: tuple[StatedContact, ...]
    frames: tuple[int, ...]
    completed: tuple[bool, ...]
    already: tuple[bool, ...]
    max_shift_m: float

    def to_dict(self) -> dict[str, Any]:
        return {'stated': [c.to_json() for c in self.stated], 'frames': list(self.frames),
                'completed': list(self.completed), 'already': list(self.already),
                'max_shift_m': round(self.max_shift_m, 4)}


def _family(part: HandPart) -> tuple[HandPart, ...]:
    """A finger's tip and shaft (one part for the contact check), or the part alone."""
    finger = part.finger
    if finger is None:
        return (part,)
    return (FINGERTIP_PARTS[finger], FINGER_PARTS[finger])


def _closest(keypoints: np.ndarray, contact: StatedContact, frames: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance (F,), closest points on ``a`` and ``b`` (F, 3) of a stated contact over
    ``frames`` (all when None) of (T, 2, 21, 3) keypoints."""
    kp = keypoints if frames is None else keypoints[frames]
    surfaces = [hand_surface(kp[:, side], side) for side in HandSide]
    best = None
    for pa in _family(contact.a.part):
        for pb in _family(contact.b.part):
            found = part_distance(surfaces[contact.a.side], pa, surfaces[contact.b.side], pb)
            if best is None:
                best = [found.distance.copy(), found.point_a.copy(), found.point_b.copy()]
            else:
                closer = found.distance < best[0]
                best[0] = np.where(closer, found.distance, best[0])
                best[1] = np.where(closer[:, None], found.point_a, best[1])
                best[2] = np.where(closer[:, None], found.point_b, best[2])
    return best[0], best[1], best[2]


def _frames_for(distances: Sequence[np.ndarray], separation: int) -> list[int]:
    """A frame per stated contact, closest contacts first, frames ``separation`` apart where
    the clip is long enough (-1 where no frame is left)."""
    num_frames = len(distances[0]) if distances else 0
    taken = np.zeros(num_frames, dtype=bool)
    chosen = [-1] * len(distances)
    order = sorted(range(len(distances)), key=lambda i: float(distances[i].min()))
    for i in order:
        d = np.where(taken, np.inf, distances[i])
        if not np.isfinite(d).any():
            d = distances[i]  # the clip is too short for every contact to have its own frame
        if not np.isfinite(d).any():
            continue  # no frame where a hand may move
        frame = int(np.argmin(d))
        chosen[i] = frame
        taken[max(0, frame - separation + 1):frame + separation] = True
    return chosen


def _ease(num_frames: int, frame: int, hold: int, ease: int) -> np.ndarray:
    """(T,) 1 within ``hold`` frames of ``frame``, a raised cosine down to 0 over ``ease``
    frames beyond."""
    t = np.abs(np.arange(num_frames) - frame) - hold
    weight = np.where(t <= 0, 1.0, 0.5 * (1.0 + np.cos(np.pi * np.clip(t, 0, ease) / ease)))
    weight[t >= ease] = 0.0
    return weight


def complete_contacts(motion: BimanualMotion, text: str | Sequence[StatedContact], *,
                      free: np.ndarray | None = None,
                      config: ContactGuidanceConfig | None = None) -> ContactCompletion:
    """Make the contacts a prompt states where the clip comes close to them.

    Args:
        motion: A generated clip (both hands present; otherwise it is returned as it is).
        text: The prompt, or the contacts it states.
        free: (T, 2) bool, whether each hand may move at each frame (False where a hand is
            given); default every hand at every frame.
        config: Settings; default :class:`ContactGuidanceConfig`.

    Returns:
        :class:`ContactCompletion`, the clip with its wrists moved and what was done.

    Raises:
        ConfigError: ``free`` of the wrong shape.
    """
    config = config or ContactGuidanceConfig()
    stated = tuple(stated_contacts(text)) if isinstance(text, str) else tuple(text)
    num_frames = motion.num_frames
    free = np.ones((num_frames, 2), dtype=bool) if free is None else \
        np.asarray(free, dtype=bool)
    if free.shape != (num_frames, 2):
        raise ConfigError(f'free must have shape ({num_frames}, 2), got {free.shape}')
    nothing = ContactCompletion(motion, stated, (-1,) * len(stated), (False,) * len(stated),
                                (False,) * len(stated), 0.0)
    if not stated or not bool(np.all(motion.present)) or num_frames < 2:
        return nothing
    keypoints = motion.keypoints.astype(np.float64)  # (T, 2, 21, 3)
    offsets = np.zeros((num_frames, 2, 3))
    separation = max(1, int(round(config.min_separation_s * motion.fps)))
    distances = [_closest(keypoints, c)[0] for c in stated]
    reach_frames = config.hold_frames + config.min_ease_frames
    kernel = np.ones(2 * reach_frames + 1)
    held = [np.convolve(~free[:, side], kernel, mode='same') == 0 for side in HandSide]
    movable = held[0] | held[1]  # (T,) frames around which some hand may move
    frames = _frames_for([np.where(movable, d, np.inf) for d in distances], separation)
    already = tuple(f >= 0 and bool(d[f] <= TOUCH_GAP_M)
                    for d, f in zip(distances, frames, strict=True))
    reach = [f >= 0 and bool(d[f] <= config.max_reach_m)
             for d, f in zip(distances, frames, strict=True)]
    surfaces = [hand_surface(keypoints[:, side], side) for side in HandSide]
    allowed = np.maximum(inter_hand_penetration(*surfaces), config.max_penetration_m)  # (T,)
    completed = [False] * len(stated)
    for _ in range(config.rounds):
        for i, contact in enumerate(stated):
            frame = frames[i]
            if not reach[i]:
                continue
            moved = keypoints + offsets[:, :, None, :]
            gap, point_a, point_b = (x[0] for x in _closest(moved, contact, np.array([frame])))
            if gap <= config.target_gap_m + 1e-4:
                completed[i] = completed[i] or bool(np.abs(offsets[frame]).max() > 0)
                continue
            direction = point_b - point_a
            norm = float(np.linalg.norm(direction))
            if norm < 1e-9:
                continue
            close = (gap - config.target_gap_m) * direction / norm  # move a by +, b by -
            share = np.array([0.5, 0.5])
            sides = (contact.a.side, contact.b.side)
            step = np.linalg.norm(close) * share.max()
            ease = max(config.min_ease_frames,
                       int(math.ceil(0.5 * math.pi * step / config.max_step_m)))
            weight = _ease(num_frames, frame, config.hold_frames, ease)
            acting = weight > 0
            hands = [bool(free[acting, side].all()) for side in sides]
            window = np.flatnonzero(acting)
            if not any(hands):
                continue
            if not all(hands):
                share = np.array(hands, dtype=float)
                ease = max(config.min_ease_frames,
                           int(math.ceil(0.5 * math.pi * np.linalg.norm(close)
                                         / config.max_step_m)))
                weight = _ease(num_frames, frame, config.hold_frames, ease)
                window = np.flatnonzero(weight > 0)
                if not free[window][:, [s for s, m in zip(sides, hands, strict=True)
                                        if m]].all():
                    continue
            for scale in (1.0, 0.75, 0.5, 0.25):
                trial = offsets.copy()
                trial[:, sides[0]] += scale * share[0] * weight[:, None] * close
                trial[:, sides[1]] -= scale * share[1] * weight[:, None] * close
                kp = keypoints[window] + trial[window][:, :, None, :]
                depth = inter_hand_penetration(*[hand_surface(kp[:, s], s) for s in HandSide])
                if np.all(depth <= allowed[window] + 1e-6):
                    offsets = trial
                    completed[i] = True
                    break
    if not np.any(offsets):
        return nothing._replace(frames=tuple(frames), already=already)
    moved = (keypoints + offsets[:, :, None, :]).astype(np.float32)
    result = motion._replace(transl=motion.transl + offsets, keypoints=moved)
    return ContactCompletion(result, stated, tuple(frames), tuple(completed), already,
                             float(np.linalg.norm(offsets, axis=-1).max()))
