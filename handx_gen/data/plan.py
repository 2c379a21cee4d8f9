"""The plan of a synthetic clip: what the generator intended, kept apart from annotation.

The plan is ground truth for checking the annotation pipeline (``handx data check-annotation``):
the feature extractor never reads it. Frame ranges are half-open ``[start, stop)`` at the clip's
frame rate. Stored in a motion file's ``annotation`` JSON under the key ``'plan'``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from handx_gen.errors import MotionError
from handx_gen.hand.parts import PartRef
from handx_gen.hand.topology import Finger, HandSide

__all__ = [
    'PLAN_FORMAT',
    'ClipPlan',
    'FingerAction',
    'MotionCategory',
    'PlannedContact',
    'PlannedFingerAction',
    'PlannedPrimitive',
]

PLAN_FORMAT = 'handx-plan/1'


class MotionCategory(str, enum.Enum):
    SINGLE_HAND = 'single_hand'
    BIMANUAL_CONTACT = 'bimanual_contact'
    BIMANUAL_COORDINATION = 'bimanual_coordination'


class FingerAction(str, enum.Enum):
    """What a finger's flexion does over an interval."""

    BEND = 'bend'  # flexion increases (curls towards the palm)
    EXTEND = 'extend'  # flexion decreases
    HOLD = 'hold'  # stays (within a few degrees)


@dataclasses.dataclass(frozen=True)
class PlannedContact:
    """Parts ``a`` and ``b`` touch during frames ``[start, stop)``."""

    start: int
    stop: int
    a: PartRef
    b: PartRef

    def shifted(self, frames: int) -> PlannedContact:
        return dataclasses.replace(self, start=self.start + frames, stop=self.stop + frames)

    def to_dict(self) -> dict[str, Any]:
        return {'start': self.start, 'stop': self.stop, 'a': self.a.to_json(),
                'b': self.b.to_json()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedContact:
        return cls(int(data['start']), int(data['stop']), PartRef.from_json(data['a']),
                   PartRef.from_json(data['b']))


@dataclasses.dataclass(frozen=True)
class PlannedFingerAction:
    """One finger of one hand does ``action`` during frames ``[start, stop)``."""

    side: HandSide
    finger: Finger
    start: int
    stop: int
    action: FingerAction

    def shifted(self, frames: int) -> PlannedFingerAction:
        return dataclasses.replace(self, start=self.start + frames, stop=self.stop + frames)

    def to_dict(self) -> dict[str, Any]:
        return {'side': self.side.name.lower(), 'finger': self.finger.name.lower(),
                'start': self.start, 'stop': self.stop, 'action': self.action.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedFingerAction:
        return cls(HandSide[data['side'].upper()], Finger[data['finger'].upper()],
                   int(data['start']), int(data['stop']), FingerAction(data['action']))


@dataclasses.dataclass(frozen=True)
class PlannedPrimitive:
    """One motion type placed in the clip during frames ``[start, stop)``."""

    motion_type: str
    category: MotionCategory
    start: int
    stop: int
    label: str  # a short semantic phrase, e.g. 'clap the hands three times'
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # JSON-able

    def shifted(self, frames: int) -> PlannedPrimitive:
        return dataclasses.replace(self, start=self.start + frames, stop=self.stop + frames)

    def to_dict(self) -> dict[str, Any]:
        return {'motion_type': self.motion_type, 'category': self.category.value,
                'start': self.start, 'stop': self.stop, 'label': self.label,
                'params': dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedPrimitive:
        return cls(data['motion_type'], MotionCategory(data['category']), int(data['start']),
                   int(data['stop']), data['label'], dict(data.get('params', {})))


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    """Everything the generator intended for one clip."""

    seed: int  # the clip's seed (variation)
    composition_seed: int  # the seed choosing the composition; splits never share one
    fps: float
    num_frames: int
    primitives: tuple[PlannedPrimitive, ...]
    contacts: tuple[PlannedContact, ...] = ()
    finger_actions: tuple[PlannedFingerAction, ...] = ()
    dominant: HandSide = HandSide.RIGHT
    hand_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            'format': PLAN_FORMAT, 'seed': self.seed, 'composition_seed': self.composition_seed,
            'fps': self.fps, 'num_frames': self.num_frames,
            'primitives': [p.to_dict() for p in self.primitives],
            'contacts': [c.to_dict() for c in self.contacts],
            'finger_actions': [f.to_dict() for f in self.finger_actions],
            'dominant': self.dominant.name.lower(), 'hand_scale': self.hand_scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipPlan:
        if data.get('format') != PLAN_FORMAT:
            raise MotionError(f'plan format {data.get("format")!r}; expected {PLAN_FORMAT!r}')
        return cls(
            seed=int(data['seed']), composition_seed=int(data['composition_seed']),
            fps=float(data['fps']), num_frames=int(data['num_frames']),
            primitives=tuple(PlannedPrimitive.from_dict(p) for p in data['primitives']),
            contacts=tuple(PlannedContact.from_dict(c) for c in data['contacts']),
            finger_actions=tuple(PlannedFingerAction.from_dict(f)
                                 for f in data['finger_actions']),
            dominant=HandSide[data['dominant'].upper()], hand_scale=float(data['hand_scale']),
        )
