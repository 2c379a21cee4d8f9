"""Hand-built feature records (:class:`MotionFeatures`) for the text and check tests.

The builders fill in what a test does not care about (still hands, steady relations) so a
test states only its facts: a few flexion movements, a few contacts. :func:`random_record`
draws a whole record from a seed for fuzzing the text writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from handx_gen.annotate.features import (
    ContactEvent,
    Coordination,
    DistanceTrend,
    FingerFeatures,
    FlexionBin,
    FlexionEvent,
    HandFeatures,
    InterHandRelations,
    MotionFeatures,
    PalmFacing,
    PalmPair,
    RelativePosition,
    Repetition,
    RepetitionSource,
    Span,
    SpeedPhase,
    SpreadState,
)
from handx_gen.data.plan import FingerAction
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

FPS = 30.0

# A movement: (start, stop, action, start_deg, stop_deg, peak_speed_deg_s).
Move = tuple[int, int, FingerAction, float, float, float]


def ref(text: str) -> PartRef:
    return PartRef.from_json(text)


def contact(start: int, stop: int, a: str, b: str, distance: float = 0.0) -> ContactEvent:
    return ContactEvent(start, stop, ref(a), ref(b), distance)


def _bin(deg: float) -> FlexionBin:
    if deg < 30.0:
        return FlexionBin.EXTENDED
    return FlexionBin.BENT if deg < 60.0 else FlexionBin.CURLED


def _spans_of(labels: Sequence) -> tuple[Span, ...]:
    spans, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            spans.append(Span(start, i, labels[start]))
            start = i
    return tuple(spans)


def finger(side: HandSide, which: Finger, num_frames: int, moves: Sequence[Move] = (),
           rest_deg: float = 10.0, curves: bool = False) -> FingerFeatures:
    """A finger holding ``rest_deg`` except during ``moves`` (time ordered, not overlapping).
    Holds fill the gaps and keep the flexion of the movement before them."""
    events: list[FlexionEvent] = []
    curve = np.full(num_frames, rest_deg)
    frame, deg = 0, rest_deg
    for start, stop, action, d0, d1, speed in sorted(moves):
        if start > frame:
            events.append(FlexionEvent(side, which, frame, start, FingerAction.HOLD, deg, deg,
                                       5.0))
            curve[frame:start] = deg
        events.append(FlexionEvent(side, which, start, stop, action, d0, d1, speed))
        curve[start:stop] = np.linspace(d0, d1, stop - start)
        frame, deg = stop, d1
    if frame < num_frames:
        events.append(FlexionEvent(side, which, frame, num_frames, FingerAction.HOLD, deg, deg,
                                   5.0))
        curve[frame:] = deg
    bins = _spans_of([_bin(v) for v in curve])
    return FingerFeatures(side, which, float(curve.mean()), float(curve.min()),
                          float(curve.max()), bins, tuple(events),
                          None if which == Finger.THUMB else 0.05,
                          tuple(float(v) for v in curve) if curves else ())


def hand(side: HandSide, num_frames: int, moves: Mapping[Finger, Sequence[Move]] | None = None,
         rest_deg: Mapping[Finger, float] | float = 10.0,
         spread: Sequence[Span] | None = None, moving: bool | None = None,
         repetitions: Sequence[Repetition] = (), curves: bool = False) -> HandFeatures:
    moves = moves or {}
    rests = rest_deg if isinstance(rest_deg, Mapping) else {f: rest_deg for f in Finger}
    fingers = tuple(finger(side, f, num_frames, moves.get(f, ()), rests.get(f, 10.0), curves)
                    for f in Finger)
    moving = bool(moves) if moving is None else moving
    phase = SpeedPhase.MOVING if moving else SpeedPhase.PAUSE
    return HandFeatures(
        side, fingers,
        tuple(spread) if spread else (Span(0, num_frames, SpreadState.NEUTRAL),),
        (20.0, 10.0, 10.0, 10.0),
        (Span(0, num_frames, PalmFacing.TOWARDS_OTHER),),
        (Span(0, num_frames, phase),), 0.1 if moving else 0.0, 0.3 if moving else 0.0,
        tuple(repetitions))


def relations(num_frames: int, *, trend: Sequence[Span] | None = None,
              palm_pair: PalmPair = PalmPair.FACING_EACH_OTHER,
              lateral: Sequence[Span] | None = None, vertical: Sequence[Span] | None = None,
              depth: Sequence[Span] | None = None, distance: tuple[float, float, float] = (
                  0.2, 0.3, 0.4)) -> InterHandRelations:
    level = (Span(0, num_frames, RelativePosition.LEVEL),)
    return InterHandRelations(
        tuple(lateral) if lateral else (Span(0, num_frames, RelativePosition.RIGHT),),
        tuple(vertical) if vertical else level, tuple(depth) if depth else level,
        distance[0], distance[1], distance[2],
        tuple(trend) if trend else (Span(0, num_frames, DistanceTrend.STEADY),),
        (Span(0, num_frames, palm_pair),))


def record(num_frames: int = 120, *, left: HandFeatures | None = None,
           right: HandFeatures | None = None, contacts: Iterable[ContactEvent] = (),
           rel: InterHandRelations | None = None,
           coordination: Coordination = Coordination.STILL) -> MotionFeatures:
    left = left or hand(HandSide.LEFT, num_frames)
    right = right or hand(HandSide.RIGHT, num_frames)
    events = tuple(sorted(contacts, key=lambda e: (e.start, e.a.to_json(), e.b.to_json())))
    return MotionFeatures(FPS, num_frames, (left, right), events, rel or relations(num_frames),
                          coordination, (Span(0, num_frames, coordination),))


def bend(start: int, stop: int, d0: float = 10.0, d1: float = 70.0,
         speed: float = 150.0) -> Move:
    return (start, stop, FingerAction.BEND, d0, d1, speed)


def extend(start: int, stop: int, d0: float = 70.0, d1: float = 10.0,
           speed: float = 150.0) -> Move:
    return (start, stop, FingerAction.EXTEND, d0, d1, speed)


# ------------------------------------------------------------------------------ random


_INTER_PARTS = tuple(HandPart)


def random_record(seed: int, num_frames: int = 150) -> MotionFeatures:
    """A random but well-formed record: movements, contacts, relations, repetitions."""
    rng = np.random.default_rng(seed)
    hands = []
    for side in HandSide:
        moves: dict[Finger, list[Move]] = {}
        for which in Finger:
            if rng.random() < 0.4:
                continue
            frame, deg, items = int(rng.integers(0, 20)), float(rng.uniform(0, 20)), []
            while frame < num_frames - 12 and rng.random() < 0.8:
                length = int(rng.integers(6, 30))
                stop = min(frame + length, num_frames)
                up = deg < 50 if rng.random() < 0.8 else deg < 20
                d1 = float(np.clip(deg + (1 if up else -1) * rng.uniform(15, 70), 0, 100))
                if abs(d1 - deg) < 12:
                    break
                action = FingerAction.BEND if d1 > deg else FingerAction.EXTEND
                items.append((frame, stop, action, deg, d1, float(rng.uniform(40, 500))))
                frame, deg = stop + int(rng.integers(0, 15)), d1
            if items:
                moves[which] = items
        spread = None
        if rng.random() < 0.3:
            cut = int(rng.integers(20, num_frames - 20))
            states = list(SpreadState)
            a, b = rng.choice(len(states), 2, replace=False)
            spread = [Span(0, cut, states[a]), Span(cut, num_frames, states[b])]
        reps = []
        if rng.random() < 0.3:
            reps.append(Repetition(side, RepetitionSource.WRIST, (), 0, num_frames,
                                   int(rng.integers(2, 6)), 2.0, 0.8))
        hands.append(hand(side, num_frames, moves, float(rng.uniform(0, 80)), spread,
                          repetitions=reps))
    contacts = []
    for _ in range(int(rng.integers(0, 7))):
        if rng.random() < 0.8:
            a = PartRef(HandSide.LEFT, _INTER_PARTS[int(rng.integers(len(_INTER_PARTS)))])
            b = PartRef(HandSide.RIGHT, _INTER_PARTS[int(rng.integers(len(_INTER_PARTS)))])
        else:
            side = HandSide(int(rng.integers(2)))
            tip = (HandPart.INDEX_TIP, HandPart.MIDDLE_TIP, HandPart.RING_TIP,
                   HandPart.LITTLE_TIP)[int(rng.integers(4))]
            a, b = PartRef(side, HandPart.THUMB_TIP), PartRef(side, tip)
        start = int(rng.integers(0, num_frames - 5))
        stop = min(num_frames, start + int(rng.integers(3, 60)))
        if any(c.a == a and c.b == b and c.start < stop + 3 and start < c.stop + 3
               for c in contacts):
            continue
        contacts.append(ContactEvent(start, stop, a, b, -0.001))
    cuts = sorted(set(int(x) for x in rng.integers(10, num_frames - 10, 3)))
    bounds = [0, *cuts, num_frames]
    trend = [Span(a, b, list(DistanceTrend)[int(rng.integers(3))])
             for a, b in zip(bounds, bounds[1:], strict=False)]
    merged: list[Span] = []
    for span in trend:
        if merged and merged[-1].label == span.label:
            merged[-1] = Span(merged[-1].start, span.stop, span.label)
        else:
            merged.append(span)
    positions = list(RelativePosition)
    rel = relations(num_frames, trend=merged,
                    palm_pair=list(PalmPair)[int(rng.integers(len(PalmPair)))],
                    lateral=[Span(0, num_frames, positions[int(rng.integers(2))])],
                    vertical=[Span(0, num_frames, (RelativePosition.ABOVE, RelativePosition.BELOW,
                                                   RelativePosition.LEVEL)[int(rng.integers(3))])],
                    depth=[Span(0, num_frames, (RelativePosition.IN_FRONT,
                                                RelativePosition.BEHIND,
                                                RelativePosition.LEVEL)[int(rng.integers(3))])])
    return record(num_frames, left=hands[0], right=hands[1], contacts=contacts, rel=rel,
                  coordination=list(Coordination)[int(rng.integers(len(Coordination)))])
