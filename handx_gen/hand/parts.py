"""Named parts of the hand surface, the vocabulary shared by synthesis plans and features.

A contact is between two :class:`PartRef` (a hand side and a part). Fingertips are the distal
segments (pad and nail), finger shafts the proximal and middle segments; the palm is the
palmar side of the metacarpal region and the back its dorsal side. How each part is modelled
geometrically (capsules, palm slab) lives in :mod:`handx_gen.annotate.surface`. The thumb's
metacarpal (the thenar eminence) belongs to the palm there, not to the thumb shaft.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from handx_gen.hand.topology import Finger, HandSide

__all__ = ['FINGER_PARTS', 'FINGERTIP_PARTS', 'HandPart', 'PartRef']


class HandPart(str, enum.Enum):
    """Surface regions of one hand."""

    PALM = 'palm'
    BACK = 'back'
    THUMB_TIP = 'thumb_tip'
    INDEX_TIP = 'index_tip'
    MIDDLE_TIP = 'middle_tip'
    RING_TIP = 'ring_tip'
    LITTLE_TIP = 'little_tip'
    THUMB = 'thumb'  # shaft: the segments below the tip
    INDEX = 'index'
    MIDDLE = 'middle'
    RING = 'ring'
    LITTLE = 'little'

    @property
    def finger(self) -> Finger | None:
        """The finger this part belongs to, or ``None`` for the palm and back."""
        name = self.value.removesuffix('_tip').upper()
        return Finger[name] if name in Finger.__members__ else None

    @property
    def is_tip(self) -> bool:
        return self.value.endswith('_tip')


FINGERTIP_PARTS: dict[Finger, HandPart] = {
    Finger.THUMB: HandPart.THUMB_TIP, Finger.INDEX: HandPart.INDEX_TIP,
    Finger.MIDDLE: HandPart.MIDDLE_TIP, Finger.RING: HandPart.RING_TIP,
    Finger.LITTLE: HandPart.LITTLE_TIP,
}
FINGER_PARTS: dict[Finger, HandPart] = {
    Finger.THUMB: HandPart.THUMB, Finger.INDEX: HandPart.INDEX, Finger.MIDDLE: HandPart.MIDDLE,
    Finger.RING: HandPart.RING, Finger.LITTLE: HandPart.LITTLE,
}


class PartRef(NamedTuple):
    """One part of one hand."""

    side: HandSide
    part: HandPart

    def to_json(self) -> str:
        """``'left.index_tip'`` style name."""
        return f'{self.side.name.lower()}.{self.part.value}'

    @classmethod
    def from_json(cls, text: str) -> PartRef:
        side, _, part = text.partition('.')
        return cls(HandSide[side.upper()], HandPart(part))
