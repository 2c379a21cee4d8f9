"""Text descriptions of a clip at three granularities, written from its feature record alone.

:func:`describe` turns a :class:`~handx_gen.annotate.features.MotionFeatures` record into at
least one description per :class:`Granularity`:

* ``SEMANTIC``: what the person does (intent). The source's action label is used when the
  caller passes one (a dataset's label, or a synthetic clip's primitive labels); otherwise
  the intent is read from the record (claps, taps, a fist, pointing, waving, how the hands
  move relative to each other).
* ``INTERACTION``: contacts and relations between the hands, in time order ("the right index
  fingertip taps the left palm twice, then the hands move apart").
* ``ARTICULATION``: finger level ("the ring and little fingers of the right hand curl slowly
  while the thumb stays extended").

Template design: every statement comes from one *fact* of the record (a contact event group,
a flexion event group, a span of a relation), so nothing is said that the record does not
hold. Facts are rendered by small phrase builders with synonym tables and several sentence
structures, picked by a seeded generator (the same seed gives the same text); fingers moving
together are grouped ("the index and middle fingers"), counts are words ("twice", "three
times"), and clauses are joined in time order with connectives ("then", "while", "before").
A record with nothing happening still gets a plain sentence, never an empty string. A clip
with one hand absent (``MotionFeatures.present``) is described as one hand: nothing is said of
the absent hand, of the hands' relation or of contacts between them, and the interaction
text says which hand the clip holds.

An optional language-model backend, :class:`LMRewriter`, rewrites each template text with a
local ``transformers`` model (``DescribeConfig.lm_path``; never downloads). Its output is only
kept when it passes a faithfulness guard (:func:`faithful_rewrite`: it may not name a side,
finger, part or count the template does not, nor drop the template's sides and counts);
otherwise, or when the model cannot be loaded or fails, the template text is kept and a
warning is logged.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from handx_gen.annotate.features import (
    ContactEvent,
    Coordination,
    DistanceTrend,
    FingerFeatures,
    FlexionBin,
    FlexionEvent,
    MotionFeatures,
    PalmPair,
    RelativePosition,
    RepetitionSource,
    Span,
    SpreadState,
)
from handx_gen.config import config_kwargs
from handx_gen.data.plan import FingerAction
from handx_gen.errors import ConfigError, unknown_choice
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

__all__ = [
    'COUNT_WORDS',
    'DescribeConfig',
    'Description',
    'Descriptions',
    'Granularity',
    'LMRewriter',
    'Rewriter',
    'TextSource',
    'describe',
    'describe_facts',
    'faithful_rewrite',
]

logger = logging.getLogger(__name__)


class Granularity(str, enum.Enum):
    """How closely a description looks at the motion."""

    SEMANTIC = 'semantic'  # intent: what the person does
    INTERACTION = 'interaction'  # contacts and relations between the hands
    ARTICULATION = 'articulation'  # finger level
    REQUEST = 'request'  # users' register: how a person asks for it (handx_gen.annotate.request)


class TextSource(str, enum.Enum):
    """Who wrote a description."""

    TEMPLATE = 'template'
    LANGUAGE_MODEL = 'language_model'


@dataclasses.dataclass(frozen=True)
class Description:
    """One description of a clip."""

    granularity: Granularity
    text: str
    source: TextSource = TextSource.TEMPLATE

    def to_dict(self) -> dict[str, str]:
        return {'granularity': self.granularity.value, 'text': self.text,
                'source': self.source.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Description:
        return cls(Granularity(data['granularity']), str(data['text']),
                   TextSource(data.get('source', TextSource.TEMPLATE.value)))


@dataclasses.dataclass(frozen=True)
class Descriptions:
    """The descriptions of one clip, in granularity order (semantic, interaction, articulation).
    """

    items: tuple[Description, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(d.text for d in self.items)

    def of(self, granularity: Granularity) -> tuple[Description, ...]:
        """The descriptions of one granularity."""
        return tuple(d for d in self.items if d.granularity == granularity)

    def to_list(self) -> list[dict[str, str]]:
        """JSON-compatible list of ``{'granularity', 'text', 'source'}`` dicts."""
        return [d.to_dict() for d in self.items]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Descriptions:
        return cls(tuple(Description.from_dict(item) for item in items))

    def __iter__(self) -> Iterator[Description]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclasses.dataclass(frozen=True)
class DescribeConfig:
    """Settings of :func:`describe`.

    Attributes:
        per_granularity: 1: descriptions written per granularity (each with its own random
            wording; identical variants are kept once).
        use_label: True: the semantic description uses the caller's action label when given.
        slow_deg_s: 100 deg/s: a finger movement whose flexion rate peaks below this is
            "slow" (the feature record's peak speeds: a slow curl peaks near 50-100 deg/s).
        fast_deg_s: 350 deg/s: one peaking above this is "quick".
        tap_max_s: 0.5 s: a touch at most this long is brief (a tap, a clap).
        rest_min_s: 1.0 s: a touch at least this long rests, presses or holds.
        max_contact_groups: 4: touching part pairs named in an interaction description; the
            rest are counted.
        max_articulation_groups: 6: finger movements narrated per hand before the description
            switches to per-finger counts.
        group_overlap: 0.5: flexion events of different fingers form one group ("the index
            and middle fingers bend") when their intervals overlap by at least this fraction
            of the shorter one.
        lm_path: A local ``transformers`` model folder (config, weights, tokenizer); ``None``
            uses the templates only.
        lm_max_new_tokens: 80: generation length of the language model.
        lm_granularities: The granularities the language model rewrites (default all).
    """

    per_granularity: int = 1
    use_label: bool = True
    slow_deg_s: float = 100.0
    fast_deg_s: float = 350.0
    tap_max_s: float = 0.5
    rest_min_s: float = 1.0
    max_contact_groups: int = 4
    max_articulation_groups: int = 6
    group_overlap: float = 0.5
    lm_path: str | None = None
    lm_max_new_tokens: int = 80
    lm_granularities: tuple[Granularity, ...] = tuple(Granularity)

    def __post_init__(self) -> None:
        for name in ('per_granularity', 'max_contact_groups', 'max_articulation_groups',
                     'lm_max_new_tokens'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'describe config {name!r} must be an integer >= 1, '
                                  f'got {value!r}')
        for name in ('slow_deg_s', 'fast_deg_s', 'tap_max_s', 'rest_min_s', 'group_overlap'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not np.isfinite(value) or value <= 0:
                raise ConfigError(f'describe config {name!r} must be a positive number, '
                                  f'got {value!r}')
        if self.slow_deg_s >= self.fast_deg_s:
            raise ConfigError(f'describe config slow_deg_s ({self.slow_deg_s}) must be below '
                              f'fast_deg_s ({self.fast_deg_s})')
        if self.lm_path is not None and not isinstance(self.lm_path, (str, Path)):
            raise ConfigError(f'describe config lm_path must be a path or None, got '
                              f'{self.lm_path!r}')
        try:
            grans = tuple(Granularity(g) for g in self.lm_granularities)
        except ValueError:
            bad = [g for g in self.lm_granularities if g not in {x.value for x in Granularity}]
            raise ConfigError(unknown_choice('granularity', bad[0] if bad else None,
                                             [g.value for g in Granularity])) from None
        object.__setattr__(self, 'lm_granularities', grans)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DescribeConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys."""
        kwargs = config_kwargs(cls, values, 'describe')
        if 'lm_granularities' in kwargs:
            kwargs['lm_granularities'] = tuple(kwargs['lm_granularities'])
        return cls(**kwargs)


# ============================================================================== vocabulary

NUMBER_WORDS = {1: 'one', 2: 'two', 3: 'three', 4: 'four', 5: 'five', 6: 'six', 7: 'seven',
                8: 'eight', 9: 'nine', 10: 'ten', 11: 'eleven', 12: 'twelve'}
COUNT_WORDS = {1: 'once', 2: 'twice', **{n: f'{w} times' for n, w in NUMBER_WORDS.items()
                                         if n > 2}}


def count_word(n: int) -> str:
    """``'once'``, ``'twice'``, ``'three times'`` ... (digits above twelve)."""
    return COUNT_WORDS.get(n, f'{n} times')


def number_word(n: int) -> str:
    return NUMBER_WORDS.get(n, str(n))


_FINGER_WORD = {Finger.THUMB: 'thumb', Finger.INDEX: 'index', Finger.MIDDLE: 'middle',
                Finger.RING: 'ring', Finger.LITTLE: 'little'}
_SIDE_WORD = {HandSide.LEFT: 'left', HandSide.RIGHT: 'right'}

# Verbs as (third person singular, plural). The first entry of each action is its plain form.
_VERBS: dict[FingerAction, tuple[tuple[str, str], ...]] = {
    FingerAction.BEND: (('bends', 'bend'), ('flexes', 'flex')),
    FingerAction.EXTEND: (('straightens', 'straighten'), ('extends', 'extend'),
                          ('stretches out', 'stretch out')),
}
_CURL = ('curls', 'curl')  # only for bends that end curled (FlexionBin.CURLED)
_SLOW = ('slowly', 'gradually')
_FAST = ('quickly', 'rapidly', 'sharply')
_HOLD_VERBS = (('stays', 'stay'), ('remains', 'remain'), ('is held', 'are held'))
_BIN_WORDS: dict[FlexionBin | None, tuple[str, ...]] = {
    FlexionBin.EXTENDED: ('extended', 'straight'), FlexionBin.BENT: ('half bent', 'partly bent'),
    FlexionBin.CURLED: ('curled', 'fully bent'), None: ('still', 'steady')}

_SEQUENTIAL = ('{a}, then {b}', '{a}, and then {b}', '{a}; after that, {b}', '{a} before {b}')
_SIMULTANEOUS = ('{a} while {b}', '{a}, and at the same time {b}', '{a} as {b}')


class _Rng:
    """Seeded choices of wording."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self._rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self._rng.random() < p)


def _join(words: Sequence[str]) -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'``."""
    if len(words) <= 1:
        return ''.join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text.endswith(('.', '!', '?')) else text + '.'


def _fingers_phrase(fingers: Sequence[Finger], side: HandSide | None, rng: _Rng,
                    *, allow_side_first: bool = True) -> tuple[str, bool]:
    """A noun phrase for some fingers of one hand (or of both hands, ``side=None``).

    Returns:
        The phrase and whether it is plural.
    """
    fingers = sorted(set(fingers))
    others = [f for f in fingers if f != Finger.THUMB]
    thumb = Finger.THUMB in fingers
    plural = len(fingers) > 1 or side is None
    if len(fingers) == 5:
        core = rng.pick(('all five fingers', 'all the fingers'))
        whole = True
    elif not thumb and len(others) == 4:
        core = rng.pick(('the four fingers', 'all four fingers'))
        whole = True
    else:
        whole = False
        names = (['thumb'] if thumb else []) + [_FINGER_WORD[f] for f in others]
        if not others:
            core = 'thumb' if side is not None else 'thumbs'
        else:
            noun = 'finger' if len(others) == 1 and side is not None else 'fingers'
            core = f'{_join(names)} {noun}'
    if side is None:
        if whole:
            return f'{core} of both hands', True
        if len(fingers) == 1:
            return rng.pick((f'the {core} of both hands', f'both {core}')), True
        return f'the {core} of both hands', True
    sw = _SIDE_WORD[side]
    if whole:
        return f'{core} of the {sw} hand', plural
    forms = [f'the {core} of the {sw} hand', f"the {sw} hand's {core}"]
    if allow_side_first:
        forms.append(f'the {sw} {core}')
    return rng.pick(forms), plural


def _part_phrase(ref: PartRef, rng: _Rng) -> str:
    """A noun phrase for one part of one hand: 'the right index fingertip', 'the left palm'."""
    sw = _SIDE_WORD[ref.side]
    part = ref.part
    if part == HandPart.PALM:
        return rng.pick((f'the {sw} palm', f'the palm of the {sw} hand'))
    if part == HandPart.BACK:
        return f'the back of the {sw} hand'
    finger = part.finger
    assert finger is not None
    name = _FINGER_WORD[finger]
    if part.is_tip:
        if finger == Finger.THUMB:
            return rng.pick((f'the {sw} thumb tip', f'the tip of the {sw} thumb'))
        return rng.pick((f'the {sw} {name} fingertip', f'the tip of the {sw} {name} finger'))
    return f'the {sw} thumb' if finger == Finger.THUMB else f'the {sw} {name} finger'


def _bare_part(part: HandPart) -> str:
    """A part without its side: 'index fingertip', 'palm'."""
    if part in (HandPart.PALM, HandPart.BACK):
        return part.value
    finger = part.finger
    assert finger is not None
    if finger == Finger.THUMB:
        return 'thumb tip' if part.is_tip else 'thumb'
    return f'{_FINGER_WORD[finger]} fingertip' if part.is_tip else f'{_FINGER_WORD[finger]} finger'


@dataclasses.dataclass(frozen=True)
class _Clause:
    """One statement with the frames it is about (for ordering and connectives).

    ``subject`` identifies what the statement is about; when the statement follows one about
    the same subject in a sentence, ``pronoun_text`` (the statement with 'they' / 'it')
    replaces ``text``.
    """

    start: int
    stop: int
    text: str
    subject: object = None
    pronoun_text: str = ''


def _narrate(clauses: Sequence[_Clause], rng: _Rng, *, per_sentence: int = 2,
             tolerance: int = 0) -> str:
    """Join clauses in time order into sentences with temporal connectives.

    Clauses whose intervals overlap by more than ``tolerance`` frames are joined with a
    simultaneous connective ('while'), others with a sequential one ('then', 'before').
    """
    clauses = sorted(clauses, key=lambda c: (c.start, c.stop))
    sentences: list[str] = []
    current: list[_Clause] = []
    text = ''
    for clause in clauses:
        if not current:
            current, text = [clause], clause.text
            continue
        previous = current[-1]
        overlap = min(previous.stop, clause.stop) - max(previous.start, clause.start)
        template = rng.pick(_SIMULTANEOUS if overlap > tolerance else _SEQUENTIAL)
        if len(current) >= per_sentence:
            sentences.append(_sentence(text))
            current, text = [clause], clause.text
            continue
        same = clause.subject is not None and clause.subject == previous.subject
        text = template.format(a=text, b=clause.pronoun_text if same and clause.pronoun_text
                               else clause.text)
        current.append(clause)
    if current:
        sentences.append(_sentence(text))
    return ' '.join(sentences)


# ============================================================================== helpers


def _held_bin(finger: FingerFeatures, num_frames: int) -> FlexionBin | None:
    """The flexion bin of a finger that does not move, when one bin covers at least 80% of
    the clip (a slow drift across a bin border is not called 'stays extended')."""
    best, best_frames = None, -1
    for span in finger.bins:
        if span.num_frames > best_frames:
            best, best_frames = span.label, span.num_frames
    return best if best_frames >= 0.8 * num_frames else None


def _bin_at(finger: FingerFeatures, frame: int) -> FlexionBin:
    for span in finger.bins:
        if span.start <= frame < span.stop:
            return span.label
    return finger.bins[-1].label if finger.bins else FlexionBin.EXTENDED


def _moves(finger: FingerFeatures) -> list[FlexionEvent]:
    return [e for e in finger.events if e.action != FingerAction.HOLD]


def _overlap_fraction(a0: int, a1: int, b0: int, b1: int) -> float:
    inter = min(a1, b1) - max(a0, b0)
    shorter = max(1, min(a1 - a0, b1 - b0))
    return max(0, inter) / shorter


def _speed_adverb(events: Sequence[FlexionEvent], config: DescribeConfig,
                  rng: _Rng) -> str:
    if all(e.peak_speed_deg_s < config.slow_deg_s for e in events):
        return rng.pick(_SLOW)
    if all(e.peak_speed_deg_s > config.fast_deg_s for e in events):
        return rng.pick(_FAST)
    return ''


def _contact_key(event: ContactEvent) -> tuple[PartRef, PartRef]:
    a, b = sorted((event.a, event.b), key=lambda r: (int(r.side), list(HandPart).index(r.part)))
    return a, b


_POINTEDNESS = {HandPart.PALM: 3, HandPart.BACK: 2}


def _pointedness(ref: PartRef) -> int:
    """Smaller = more pointed: fingertips 0, finger shafts 1, back 2, palm 3."""
    if ref.part in _POINTEDNESS:
        return _POINTEDNESS[ref.part]
    return 0 if ref.part.is_tip else 1


# ============================================================================== writer


class _Writer:
    """Writes the three granularities from one record with one random stream."""

    def __init__(self, features: MotionFeatures, rng: np.random.Generator,
                 config: DescribeConfig) -> None:
        self.f = features
        self.rng = _Rng(rng)
        self.config = config
        self.fps = features.fps
        self.inter = [c for c in features.contacts if c.inter_hand]
        self.same = [c for c in features.contacts if not c.inter_hand]
        self.sides = features.present_sides  # the hands the clip holds
        self.one = self.sides[0] if len(self.sides) == 1 else None  # its one hand, if so

    def frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))

    # ------------------------------------------------------------------ semantic

    def semantic(self, labels: Sequence[str]) -> str:
        if labels:
            return self._from_labels(labels)
        parts = self._intent()
        return ' '.join(_sentence(p) for p in parts)

    def _from_labels(self, labels: Sequence[str]) -> str:
        cleaned = [label.strip().rstrip('.').strip() for label in labels]
        cleaned = [c for c in cleaned if c]
        text = cleaned[0]
        for label in cleaned[1:]:
            text = self.rng.pick(('{a}, then {b}', '{a}, and then {b}',
                                  '{a}; after that, {b}')).format(a=text, b=label)
        return _sentence(text)

    def _intent(self) -> list[str]:
        """Intent sentences from the record (claps, taps, gestures, coordination)."""
        out: list[str] = []
        groups = self._contact_groups(self.inter)
        if groups:
            out.append(self._intent_contact(groups))
        gestures = [g for g in (self._gesture(side) for side in self.sides) if g]
        out += gestures
        waves = self._wrist_repetitions()
        out += waves
        if not out or (not groups and not waves):
            out.append(self._coordination_sentence())
        return out

    def _intent_contact(self, groups: dict[tuple[PartRef, PartRef], list[ContactEvent]]) -> str:
        rng = self.rng
        palms = (PartRef(HandSide.LEFT, HandPart.PALM), PartRef(HandSide.RIGHT, HandPart.PALM))
        if palms in groups:
            events = groups[palms]
            n = len(events)
            if n >= 2 and all(e.num_frames <= self.frames(self.config.tap_max_s)
                              for e in events):
                return rng.pick(('the person claps {c}', 'someone claps their hands {c}',
                                 'the hands clap together {c}')).format(c=count_word(n))
            if all(e.num_frames >= self.frames(self.config.rest_min_s) for e in events):
                return rng.pick(('the person presses the palms together',
                                 'the hands are pressed together palm to palm'))
            return rng.pick(('the hands come together palm to palm',
                             'the palms of the two hands meet'))
        tips = [a.part.finger for a, b in groups if a.part == b.part and a.part.is_tip]
        if len(tips) >= 3:
            return rng.pick(('the hands touch fingertip to fingertip',
                             'the fingertips of the two hands are held together'))
        # The longest-touching pair names the interaction.
        (a, b), events = max(groups.items(), key=lambda kv: sum(e.num_frames for e in kv[1]))
        subject, obj = (a, b) if _pointedness(a) <= _pointedness(b) else (b, a)
        n = len(events)
        short = all(e.num_frames <= self.frames(self.config.tap_max_s) for e in events)
        if short and n >= 2:
            verb = rng.pick(('taps', 'touches'))
            return (f'the {_SIDE_WORD[subject.side]} hand {verb} the '
                    f'{_SIDE_WORD[obj.side]} hand {count_word(n)}')
        if n == 1:
            return rng.pick((f'the {_SIDE_WORD[subject.side]} hand touches the '
                             f'{_SIDE_WORD[obj.side]} hand',
                             'the two hands touch each other'))
        return f'the hands touch each other {count_word(n)}'

    def _gesture(self, side: HandSide) -> str:
        """A hand shape the hand moves into, read from the flexion bins at the last frame."""
        hand = self.f.hand(side)
        if not any(_moves(finger) for finger in hand.fingers):
            return ''
        last = self.f.num_frames - 1
        end = {finger.finger: _bin_at(finger, last) for finger in hand.fingers}
        sw = _SIDE_WORD[side]
        long_fingers = [Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE]
        extended = [f for f in long_fingers if end[f] == FlexionBin.EXTENDED]
        curled = [f for f in long_fingers if end[f] == FlexionBin.CURLED]
        rng = self.rng
        if len(curled) == 4:
            return rng.pick((f'the {sw} hand closes into a fist',
                             f'the {sw} hand makes a fist'))
        if extended == [Finger.INDEX] and len(curled) == 3:
            return rng.pick((f'the {sw} hand points with the index finger',
                             f'the {sw} index finger points while the other fingers are curled'))
        if len(extended) == 4 and end[Finger.THUMB] == FlexionBin.EXTENDED:
            return rng.pick((f'the {sw} hand ends open with all fingers extended',
                             f'the {sw} hand opens up'))
        thumb_curled = end[Finger.THUMB] == FlexionBin.CURLED
        if extended and len(extended) + len(curled) == 4 and (
                len(curled) >= 2 or (thumb_curled and len(extended) == 4)):
            n = len(extended) + (end[Finger.THUMB] == FlexionBin.EXTENDED)
            return (f'the {sw} hand ends holding up {number_word(n)} '
                    f'finger{"s" if n > 1 else ""}')
        return rng.pick((f'the {sw} hand moves its fingers',
                         f'the fingers of the {sw} hand move'))

    def _wrist_repetitions(self) -> list[str]:
        out = []
        for hand in self.f.hands:
            for rep in hand.repetitions:
                if rep.source != RepetitionSource.WRIST:
                    continue
                sw = _SIDE_WORD[hand.side]
                out.append(self.rng.pick((
                    f'the {sw} hand moves back and forth {count_word(rep.count)}',
                    f'the {sw} hand repeats a movement {count_word(rep.count)}',
                    f'the {sw} hand waves {count_word(rep.count)}')))
        return out

    def _coordination_sentence(self) -> str:
        rng = self.rng
        if self.one is not None:  # nothing to say of the absent hand
            sw = _SIDE_WORD[self.one]
            if self.f.coordination is Coordination.STILL:
                return rng.pick((f'the {sw} hand stays still', f'the {sw} hand rests in place'))
            return rng.pick((f'the {sw} hand moves', f'the {sw} hand is in motion'))
        table = {
            Coordination.TOGETHER: ('both hands move together in the same direction',
                                    'the two hands move in unison'),
            Coordination.MIRRORED: ('the hands move as mirror images of each other',
                                    'both hands make mirrored movements'),
            Coordination.ALTERNATING: ('the hands move in turns',
                                       'the two hands alternate their movements'),
            Coordination.LEFT_ONLY: ('only the left hand moves while the right hand rests',
                                     'the left hand moves and the right hand stays still'),
            Coordination.RIGHT_ONLY: ('only the right hand moves while the left hand rests',
                                      'the right hand moves and the left hand stays still'),
            Coordination.INDEPENDENT: ('both hands move, each in its own way',
                                       'the two hands move independently'),
            Coordination.STILL: ('the hands stay still', 'both hands rest in place'),
        }
        return rng.pick(table[self.f.coordination])

    # ------------------------------------------------------------------ interaction

    def _contact_groups(self, events: Sequence[ContactEvent],
                        ) -> dict[tuple[PartRef, PartRef], list[ContactEvent]]:
        groups: dict[tuple[PartRef, PartRef], list[ContactEvent]] = {}
        for event in events:
            groups.setdefault(_contact_key(event), []).append(event)
        return groups

    def interaction(self) -> str:
        clauses: list[_Clause] = []
        groups = self._contact_groups(self.inter)
        if groups:
            clauses += self._contact_clauses(groups)
            first = min(e.start for e in self.inter)
            last = max(e.stop for e in self.inter)
            clauses += self._approach_and_separate(first, last)
        clauses += self._pinch_clauses()
        text = _narrate(clauses, self.rng) if clauses else ''
        parts = [text] if text else []
        if self.one is not None:  # one hand: no relation, no contact between hands to tell
            parts.append(_sentence(self.rng.pick((
                f'only the {_SIDE_WORD[self.one]} hand is in the clip',
                f'the clip shows the {_SIDE_WORD[self.one]} hand alone'))))
            return ' '.join(parts)
        relations = self._relation_sentences(with_contact=bool(groups))
        parts += [_sentence(r) for r in relations]
        if not parts:
            parts.append(_sentence('the hands do not touch each other'))
        return ' '.join(parts)

    def _contact_clauses(self, groups: dict[tuple[PartRef, PartRef], list[ContactEvent]],
                         ) -> list[_Clause]:
        rng = self.rng
        config = self.config
        clauses: list[_Clause] = []
        # Fingers touching their counterparts (steeple-like), at overlapping times, form one
        # clause: 'the index and middle fingertips of both hands touch'.
        matched: dict[tuple[bool, int], list[tuple[Finger, list[ContactEvent]]]] = {}
        for (a, b), events in groups.items():
            if a.part == b.part and a.part.finger is not None:
                matched.setdefault((a.part.is_tip, 0), []).append((a.part.finger, events))
        used: set[tuple[PartRef, PartRef]] = set()
        for (is_tip, _), items in matched.items():
            if len(items) < 2:
                continue
            fingers = sorted(f for f, _ in items)
            events = [e for _, evs in items for e in evs]
            start, stop = min(e.start for e in events), max(e.stop for e in events)
            counts = {len(evs) for _, evs in items}
            noun = 'fingertips' if is_tip else 'fingers'
            names = _join((['thumb'] if Finger.THUMB in fingers else [])
                          + [_FINGER_WORD[f] for f in fingers if f != Finger.THUMB])
            if Finger.THUMB in fingers and len(fingers) == 1:
                names, noun = 'thumb', 'tips' if is_tip else 'thumbs'
            verb = rng.pick(('touch', 'meet', 'press together'))
            subject = rng.pick((f'the {names} {noun} of both hands',
                                f'the {names} {noun} of the two hands'))
            count = f' {count_word(counts.pop())}' if len(counts) == 1 and len(events) > \
                len(items) else ''
            clauses.append(_Clause(start, stop, f'{subject} {verb}{count}'))
            for finger, _ in items:
                part = PartRef(HandSide.LEFT, next(
                    p for p in HandPart if p.finger == finger and p.is_tip == is_tip))
                used.add((part, PartRef(HandSide.RIGHT, part.part)))
        rest = {k: v for k, v in groups.items() if k not in used}
        ranked = sorted(rest.items(), key=lambda kv: -sum(e.num_frames for e in kv[1]))
        named = ranked[:config.max_contact_groups]
        for (a, b), events in named:
            clauses.append(self._pair_clause(a, b, events))
        leftover = len(ranked) - len(named)
        if leftover > 0:
            events = [e for _, evs in ranked[len(named):] for e in evs]
            start, stop = min(e.start for e in events), max(e.stop for e in events)
            pairs = 'pair' if leftover == 1 else 'pairs'
            clauses.append(_Clause(start, stop, rng.pick((
                f'{number_word(leftover)} other {pairs} of parts of the two hands touch',
                f'the hands also touch at {number_word(leftover)} other {pairs} of parts'))))
        return clauses

    def _pair_clause(self, a: PartRef, b: PartRef, events: list[ContactEvent]) -> _Clause:
        rng = self.rng
        config = self.config
        n = len(events)
        start, stop = min(e.start for e in events), max(e.stop for e in events)
        short = all(e.num_frames <= self.frames(config.tap_max_s) for e in events)
        long = all(e.num_frames >= self.frames(config.rest_min_s) for e in events)
        count = f' {count_word(n)}' if n > 1 else ''
        if a.part == HandPart.PALM and b.part == HandPart.PALM:
            if short and n > 1:
                text = rng.pick(('the hands clap{c}', 'the palms strike together{c}',
                                 'the palms meet{c}'))
            elif long:
                text = rng.pick(('the palms press together{c}', 'the palms rest together{c}',
                                 'the hands press palm to palm{c}'))
            else:
                text = rng.pick(('the palms touch{c}', 'the palms meet{c}'))
            return _Clause(start, stop, text.format(c=count))
        subject, obj = (a, b) if _pointedness(a) <= _pointedness(b) else (b, a)
        if _pointedness(subject) == _pointedness(obj) and subject.side != HandSide.RIGHT:
            subject, obj = obj, subject  # symmetric pairs: the right hand leads the sentence
        s, o = _part_phrase(subject, rng), _part_phrase(obj, rng)
        if short and n > 1:
            verb = rng.pick(('taps', 'touches', 'briefly touches'))
        elif short:
            verb = rng.pick(('briefly touches', 'taps'))
        elif long:
            verb = rng.pick(('rests on', 'presses against', 'stays on'))
        else:
            verb = rng.pick(('touches', 'comes into contact with', 'meets'))
        if rng.chance(0.3) and not short:
            passive = {'rests on': 'has {s} resting on it', 'presses against':
                       'is pressed by {s}', 'stays on': 'has {s} on it',
                       'touches': 'is touched by {s}', 'comes into contact with':
                       'is touched by {s}', 'meets': 'is met by {s}'}[verb]
            return _Clause(start, stop, f'{o} {passive.format(s=s)}{count}')
        return _Clause(start, stop, f'{s} {verb} {o}{count}')

    def _approach_and_separate(self, first: int, last: int) -> list[_Clause]:
        """'the hands come together' before the first touch, 'move apart' after the last."""
        rng = self.rng
        tol = self.frames(0.2)
        out = []
        trend = self.f.relations.distance_trend
        before = [s for s in trend if s.label == DistanceTrend.APPROACHING
                  and s.stop <= first + tol]
        after = [s for s in trend if s.label == DistanceTrend.SEPARATING
                 and s.start >= last - tol]
        if before:
            span = before[-1]
            out.append(_Clause(span.start, min(span.stop, first), rng.pick((
                'the hands come together', 'the hands move towards each other',
                'the hands approach each other'))))
        if after:
            span = after[0]
            out.append(_Clause(max(span.start, last), span.stop, rng.pick((
                'the hands move apart', 'the hands separate', 'the hands draw apart'))))
        return out

    def _pinch_clauses(self) -> list[_Clause]:
        rng = self.rng
        groups = self._contact_groups(self.same)
        out = []
        for (a, b), events in groups.items():
            n = len(events)
            count = f' {count_word(n)}' if n > 1 else ''
            sw = _SIDE_WORD[a.side]
            thumb, other = (a, b) if a.part == HandPart.THUMB_TIP else (b, a)
            start, stop = min(e.start for e in events), max(e.stop for e in events)
            text = rng.pick((
                f'the {sw} thumb tip touches the {_bare_part(other.part)}{count}',
                f'the {sw} hand pinches its thumb and {_bare_part(other.part)} '
                f'together{count}',
                f'{_part_phrase(thumb, rng)} and the {_bare_part(other.part)} of the same '
                f'hand meet{count}'))
            out.append(_Clause(start, stop, text))
        return out

    def _relation_sentences(self, *, with_contact: bool) -> list[str]:
        rng = self.rng
        rel = self.f.relations
        out: list[str] = []
        n = self.f.num_frames
        facing = sum(s.num_frames for s in rel.palm_pair if s.label == PalmPair.FACING_EACH_OTHER)
        if facing >= max(1, n // 2):
            out.append(rng.pick(('the palms face each other', 'the palms are turned towards '
                                 'each other')))
        elif any(s.label == PalmPair.FACING_EACH_OTHER for s in rel.palm_pair) \
                and not with_contact:
            out.append('at times the palms face each other')
        if with_contact:
            return out
        lateral = {s.label for s in rel.lateral}
        if RelativePosition.LEFT in lateral:
            out.append(rng.pick(('the hands cross, the right hand passing to the left of the '
                                 'left hand', 'the arms cross so that the right hand is to the '
                                 'left of the left hand')))
        where, always = [], True
        for spans, labels in ((rel.vertical, {RelativePosition.ABOVE: 'above',
                                              RelativePosition.BELOW: 'below'}),
                              (rel.depth, {RelativePosition.IN_FRONT: 'in front of',
                                           RelativePosition.BEHIND: 'behind'})):
            major = max(spans, key=lambda s: s.num_frames, default=None)
            if major is not None and major.label in labels and 2 * major.num_frames >= n:
                where.append(labels[major.label])
                always = always and major.num_frames == n
        if where:
            place = ' and '.join(where)
            out.append(rng.pick((f'the right hand stays {place} the left one',
                                 f'the right hand is held {place} the left hand'))
                       if always else f'the right hand is mostly {place} the left hand')
        trend = [s for s in rel.distance_trend if s.label != DistanceTrend.STEADY]
        approaches = sum(s.label == DistanceTrend.APPROACHING for s in trend)
        separations = len(trend) - approaches
        if approaches >= 2 and separations >= 2:
            out.append(rng.pick(('the hands repeatedly move towards each other and apart',
                                 'again and again the hands approach each other and separate')))
        elif trend:
            words = {DistanceTrend.APPROACHING: ('the hands move towards each other',
                                                 'the hands approach each other'),
                     DistanceTrend.SEPARATING: ('the hands move apart',
                                                'the hands move away from each other')}
            clauses, seen = [], set()
            for s in trend:
                again = ' again' if s.label in seen else ''
                seen.add(s.label)
                clauses.append(_Clause(s.start, s.stop, rng.pick(words[s.label]) + again))
            out.append(_narrate(clauses, rng, per_sentence=3).rstrip('.'))
        else:
            cm = int(round(rel.distance_mean_m * 20)) * 5  # nearest 5 cm
            if rel.distance_max_m - rel.distance_min_m < 0.1 and cm > 0:
                out.append(rng.pick((f'the hands stay about {cm} centimetres apart',
                                     f'the hands keep a distance of about {cm} centimetres')))
            else:
                out.append('the hands stay apart without touching')
        if not out:
            out.append('the hands do not touch each other')
        return out

    # ------------------------------------------------------------------ articulation

    def articulation(self) -> str:
        if self.one is not None:
            return self._render_hand(self._hand_plan(self.one), self.one)
        plans = {side: self._hand_plan(side) for side in HandSide}
        left, right = plans[HandSide.LEFT], plans[HandSide.RIGHT]
        if left.signature == right.signature and self._in_step():
            return self._render_hand(right, None)
        order = [HandSide.RIGHT, HandSide.LEFT]
        moving = [s for s in order if plans[s].moving]
        still = [s for s in order if not plans[s].moving]
        texts = [self._render_hand(plans[s], s) for s in moving + still]
        return ' '.join(t for t in texts if t)

    def _hand_plan(self, side: HandSide) -> _HandPlan:
        hand = self.f.hand(side)
        config = self.config
        moves = {finger.finger: _moves(finger) for finger in hand.fingers}
        moving = [f for f, events in moves.items() if events]
        held = [f for f in Finger if f not in moving]
        repetitive = any(sum(e.action == FingerAction.BEND for e in events) >= 2
                         for events in moves.values())
        groups: list[list[FlexionEvent]] = []
        for event in sorted((e for events in moves.values() for e in events),
                            key=lambda e: (e.start, e.finger)):
            for group in groups:
                if group[0].action == event.action \
                        and all(e.finger != event.finger for e in group) \
                        and _overlap_fraction(group[0].start, group[0].stop, event.start,
                                              event.stop) >= config.group_overlap:
                    group.append(event)
                    break
            else:
                groups.append([event])
        summary = repetitive or len(groups) > config.max_articulation_groups
        if summary:
            counts = {f: (sum(e.action == FingerAction.BEND for e in moves[f]),
                          sum(e.action == FingerAction.EXTEND for e in moves[f]))
                      for f in moving}
            signature: tuple = ('summary', tuple(sorted(counts.items())), tuple(held))
        else:
            counts = {}
            signature = ('groups', tuple((g[0].action, tuple(sorted(e.finger for e in g)))
                                         for g in groups), tuple(held))
        held_bins = {f: _held_bin(hand.finger(f), self.f.num_frames) for f in held}
        signature += (tuple(sorted(held_bins.items(), key=_bin_key)),)
        spread = [s for s in hand.spread]
        if not moving:
            signature = ('still', tuple(sorted(held_bins.items(), key=_bin_key)))
        return _HandPlan(side, bool(moving), groups, counts, summary, held_bins,
                         spread, signature)

    def _in_step(self) -> bool:
        """Whether each finger's movements start at about the same frames on both hands."""
        tol = self.frames(0.25)
        for finger in Finger:
            left = [e.start for e in _moves(self.f.hand(HandSide.LEFT).finger(finger))]
            right = [e.start for e in _moves(self.f.hand(HandSide.RIGHT).finger(finger))]
            if len(left) != len(right) or any(abs(a - b) > tol
                                              for a, b in zip(left, right, strict=True)):
                return False
        return True

    def _render_hand(self, plan: _HandPlan, side: HandSide | None) -> str:
        """One hand's finger narrative (``side=None``: both hands do the same)."""
        rng = self.rng
        sides = [plan.side] if side is not None else list(HandSide)
        if not plan.moving:
            return self._render_still(plan, side)
        clauses: list[_Clause] = []
        if plan.summary:
            by_counts: dict[tuple[int, int], list[Finger]] = {}
            for finger, counts in plan.counts.items():
                by_counts.setdefault(counts, []).append(finger)
            first_move: dict[Finger, int] = {}
            for finger in plan.counts:
                starts = [e.start for s in sides for e in _moves(self.f.hand(s).finger(finger))]
                first_move[finger] = min(starts)
            for (bends, extends), fingers in sorted(by_counts.items(),
                                                    key=lambda kv: min(kv[1])):
                subject, plural = _fingers_phrase(fingers, side, rng)
                each = ' each' if len(fingers) > 1 or side is None else ''
                i = 1 if plural else 0
                bend = rng.pick(_VERBS[FingerAction.BEND])[i]
                extend = rng.pick(_VERBS[FingerAction.EXTEND])[i]
                if bends and bends == extends:
                    verb = f'{bend} and {extend} {count_word(bends)}'
                elif bends and extends:
                    verb = f'{bend} {count_word(bends)} and {extend} {count_word(extends)}'
                elif bends:
                    verb = f'{bend} {count_word(bends)}'
                else:
                    verb = f'{extend} {count_word(extends)}'
                start = min(first_move[f] for f in fingers)
                clauses.append(_Clause(start, start + 1, f'{subject}{each} {verb}'))
        else:
            for group in plan.groups:
                clauses.append(self._group_clause(group, side))
        clauses += self._spread_clauses(plan, side)
        text = _narrate(clauses, rng, tolerance=self.frames(0.05))
        if plan.held_bins:
            held = self._held_clause(plan, side, after_moving=True)
            text = text.rstrip('.') + rng.pick((', while {h}.', ' while {h}.', '; {h}.')).format(
                h=held)
        return text

    def _group_clause(self, group: Sequence[FlexionEvent], side: HandSide | None) -> _Clause:
        rng = self.rng
        fingers = [e.finger for e in group]
        subject, plural = _fingers_phrase(fingers, side, rng)
        action = group[0].action
        i = 1 if plural else 0
        options = list(_VERBS[action])
        if action == FingerAction.BEND and all(
                _bin_at(self.f.hand(e.side).finger(e.finger), e.stop - 1) == FlexionBin.CURLED
                for e in group):
            options.append(_CURL)
        verb = rng.pick(options)[i]
        adverb = _speed_adverb(group, self.config, rng)
        start, stop = min(e.start for e in group), max(e.stop for e in group)
        key = (side, frozenset(fingers))
        pronoun = 'they' if plural else 'it'
        if adverb and rng.chance(0.3):
            return _Clause(start, stop, f'{adverb}, {subject} {verb}', key,
                           f'{adverb}, {pronoun} {verb}')
        if side is not None and rng.chance(0.3) and verb in ('bends', 'bend', 'curls', 'curl',
                                                             'straightens', 'straighten'):
            # Transitive: 'the right hand curls its ring and little fingers'.
            verb3 = verb if verb.endswith('s') else f'{verb}s'
            text = f'the {_SIDE_WORD[side]} hand {verb3} its {_transitive_object(fingers)}'
            return _Clause(start, stop, f'{text} {adverb}'.rstrip())
        return _Clause(start, stop, f'{subject} {verb} {adverb}'.rstrip(), key,
                       f'{pronoun} {verb} {adverb}'.rstrip())

    def _spread_clauses(self, plan: _HandPlan, side: HandSide | None) -> list[_Clause]:
        if side is None:
            return []
        rng = self.rng
        out = []
        sw = _SIDE_WORD[side]
        spans: Sequence[Span[SpreadState]] = plan.spread
        spreads = [s for s in spans[1:] if s.label == SpreadState.SPREAD]
        closings = [s for s in spans[1:] if s.label == SpreadState.TOGETHER]
        if spreads:
            n = len(spreads)
            text = rng.pick((f'the {sw} hand spreads its fingers apart',
                             f'the fingers of the {sw} hand spread out'))
            out.append(_Clause(spreads[0].start, spreads[-1].start + 1,
                               text + (f' {count_word(n)}' if n > 1 else '')))
        if closings:
            n = len(closings)
            text = rng.pick((f'the {sw} hand brings its fingers together',
                             f'the fingers of the {sw} hand close up side by side'))
            out.append(_Clause(closings[0].start, closings[-1].start + 1,
                               text + (f' {count_word(n)}' if n > 1 else '')))
        return out

    def _held_clause(self, plan: _HandPlan, side: HandSide | None, *,
                     after_moving: bool) -> str:
        rng = self.rng
        by_bin: dict[FlexionBin | None, list[Finger]] = {}
        for finger, label in plan.held_bins.items():
            by_bin.setdefault(label, []).append(finger)
        parts = []
        for label, fingers in sorted(by_bin.items(), key=lambda kv: min(kv[1])):
            if after_moving:
                # The side was named in the clause before ('while the thumb stays extended').
                phrase, plural = _fingers_phrase(fingers, side, rng, allow_side_first=False) \
                    if side is None else _bare_fingers(fingers, rng)
            else:
                phrase, plural = _fingers_phrase(fingers, side, rng)
            verb = rng.pick(_HOLD_VERBS)[1 if plural else 0]
            parts.append(f'{phrase} {verb} {rng.pick(_BIN_WORDS[label])}')
        return _join(parts)

    def _render_still(self, plan: _HandPlan, side: HandSide | None) -> str:
        """A hand whose fingers hold their posture ('the left hand keeps its fingers curled')."""
        rng = self.rng
        labels = set(plan.held_bins.values())
        if len(labels) == 1 and side is not None:
            label = labels.pop()
            sw = _SIDE_WORD[side]
            word = rng.pick(_BIN_WORDS[label])
            return _sentence(rng.pick((
                f'all fingers of the {sw} hand stay {word}',
                f'the {sw} hand keeps its fingers {word}',
                f'the fingers of the {sw} hand remain {word} throughout')))
        return _sentence(self._held_clause(plan, side, after_moving=False))


def _bin_key(item: tuple[Finger, FlexionBin | None]) -> tuple[int, str]:
    return int(item[0]), '' if item[1] is None else item[1].value


def _transitive_object(fingers: Sequence[Finger]) -> str:
    fingers = sorted(set(fingers))
    if len(fingers) == 5:
        return 'fingers'
    if len(fingers) == 4 and Finger.THUMB not in fingers:
        return 'four fingers'
    others = [_FINGER_WORD[f] for f in fingers if f != Finger.THUMB]
    names = (['thumb'] if Finger.THUMB in fingers else []) + others
    if not others:
        return 'thumb'
    return f"{_join(names)} {'finger' if len(others) == 1 and len(fingers) == 1 else 'fingers'}"


def _bare_fingers(fingers: Sequence[Finger], rng: _Rng) -> tuple[str, bool]:
    """Fingers of the hand just named: 'the thumb', 'the other fingers'."""
    fingers = sorted(set(fingers))
    if len(fingers) == 5:
        return 'all fingers', True
    return f'the {_transitive_object(fingers)}', len(fingers) > 1


@dataclasses.dataclass
class _HandPlan:
    side: HandSide
    moving: bool
    groups: list[list[FlexionEvent]]
    counts: dict[Finger, tuple[int, int]]
    summary: bool
    held_bins: dict[Finger, FlexionBin | None]
    spread: Sequence[Span[SpreadState]]
    signature: tuple


# ============================================================================== facts prompt


def describe_facts(features: MotionFeatures) -> str:
    """A compact, deterministic summary of the record (the language model's prompt)."""
    facts = []
    if len(features.present_sides) == 1:
        facts.append(f'only the {features.present_sides[0].name.lower()} hand present')
    for key, events in _group_by_key(features.contacts).items():
        facts.append(f'contact {key[0].to_json()} with {key[1].to_json()} x{len(events)}')
    for hand in (features.hand(side) for side in features.present_sides):
        for finger in hand.fingers:
            for action in (FingerAction.BEND, FingerAction.EXTEND):
                n = sum(e.action == action for e in finger.events)
                if n:
                    facts.append(f'{hand.side.name.lower()} {finger.finger.name.lower()} '
                                 f'{action.value} x{n}')
        for rep in hand.repetitions:
            facts.append(f'{hand.side.name.lower()} {rep.source.value} repeats x{rep.count}')
    facts.append(f'coordination {features.coordination.value}')
    return '; '.join(facts)


def _group_by_key(events: Sequence[ContactEvent]) -> dict[tuple[PartRef, PartRef],
                                                          list[ContactEvent]]:
    groups: dict[tuple[PartRef, PartRef], list[ContactEvent]] = {}
    for event in events:
        groups.setdefault(_contact_key(event), []).append(event)
    return groups


# ============================================================================== language model


class Rewriter(Protocol):
    """Rewrites a template description; raises on failure (the caller falls back)."""

    def rewrite(self, text: str, facts: str, granularity: Granularity) -> str: ...


_SIDES = {'left', 'right', 'both'}
_CRITICAL = _SIDES | {'thumb', 'thumbs', 'index', 'middle', 'ring', 'little', 'palm', 'palms',
                      'back', 'fist'} | set(NUMBER_WORDS.values()) | {'once', 'twice'}
_COUNTS = set(NUMBER_WORDS.values()) | {'once', 'twice'}
_WORD = re.compile(r'[a-z]+')


def faithful_rewrite(candidate: str, template: str) -> bool:
    """Whether a rewrite keeps to the template's facts (a conservative lexical guard).

    A rewrite passes when it has at least three words, names no side, finger, part or count
    that the template does not, pairs sides with the same words as the template ('right
    index' only if the template says 'right index'), and keeps every side and count word of
    the template.
    """
    cand = _WORD.findall(candidate.lower())
    temp = _WORD.findall(template.lower())
    if len(cand) < 3:
        return False
    cand_set, temp_set = set(cand), set(temp)
    if not (cand_set & _CRITICAL) <= (temp_set & _CRITICAL):
        return False
    if not (temp_set & (_SIDES | _COUNTS)) <= cand_set:
        return False
    pairs = {(a, b) for a, b in zip(temp, temp[1:], strict=False) if a in _SIDES}
    return all((a, b) in pairs for a, b in zip(cand, cand[1:], strict=False)
               if a in _SIDES and b in _CRITICAL | {'hand', 'hands', 'fingertip'})


class LMRewriter:
    """Rewrites template descriptions with a local ``transformers`` model.

    The model is read from a local folder only (``local_files_only=True``; nothing is ever
    downloaded, whatever ``HF_HUB_OFFLINE`` says), as a sequence-to-sequence model when its
    config is an encoder-decoder (T5, BART) and as a causal language model otherwise (GPT-2,
    Llama). Decoding is greedy, so the output is deterministic.

    Args:
        model: A loaded model with ``generate``.
        tokenizer: Its tokenizer.
        encoder_decoder: Whether the model is sequence-to-sequence.
        max_new_tokens: Generation length.
    """

    PROMPT = ('Rewrite the description of a two-hand motion in other words. Keep every fact '
              'and never swap left and right.\nFacts: {facts}\nDescription: {text}\nRewrite:')

    def __init__(self, model: Any, tokenizer: Any, *, encoder_decoder: bool,
                 max_new_tokens: int = 80) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.encoder_decoder = encoder_decoder
        self.max_new_tokens = max_new_tokens

    @classmethod
    def load(cls, path: str | Path, *, max_new_tokens: int = 80) -> LMRewriter:
        """Load a model and tokenizer from a local folder.

        Raises:
            ConfigError: ``path`` is not a folder holding a ``config.json``, or transformers
                cannot read the model there (corrupt files, weights that are not plain
                tensors); one line.
        """
        folder = Path(path).expanduser()
        if not folder.is_dir() or not (folder / 'config.json').is_file():
            raise ConfigError(f'language model path {str(path)!r} is not a local model folder '
                              f'(a folder with config.json); models are never downloaded')
        import transformers  # deferred: heavy, and only needed with a model

        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder,
                                                                   local_files_only=True)
            encoder_decoder = bool(getattr(config, 'is_encoder_decoder', False))
            auto = (transformers.AutoModelForSeq2SeqLM if encoder_decoder
                    else transformers.AutoModelForCausalLM)
            model = auto.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - an untrusted folder fails in many ways
            # OSError, ValueError, KeyError, pickle.UnpicklingError (a pytorch_model.bin that
            # is not plain weights), json and safetensors errors, ...
            reason = ' '.join(str(exc).split())[:300] or type(exc).__name__
            raise ConfigError(f'cannot load the language model at {str(path)!r} '
                              f'({type(exc).__name__}: {reason})') from exc
        model.eval()
        return cls(model, tokenizer, encoder_decoder=encoder_decoder,
                   max_new_tokens=max_new_tokens)

    @classmethod
    def prompt(cls, text: str, facts: str) -> str:
        """The model's input for one template text."""
        return cls.PROMPT.format(facts=facts, text=text)

    def rewrite(self, text: str, facts: str, granularity: Granularity) -> str:
        """Generate a rewrite of ``text`` (no faithfulness check here; see :func:`describe`)."""
        import torch

        del granularity  # one prompt for all granularities
        inputs = self.tokenizer(self.prompt(text, facts), return_tensors='pt')
        pad = getattr(self.tokenizer, 'pad_token_id', None)
        if pad is None:
            pad = getattr(self.tokenizer, 'eos_token_id', None)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                         do_sample=False, num_beams=1, pad_token_id=pad)
        tokens = output[0] if self.encoder_decoder else output[0][inputs['input_ids'].shape[1]:]
        decoded = self.tokenizer.decode(tokens, skip_special_tokens=True)
        line = decoded.strip().split('\n')[0].strip()
        return re.sub(r'\s+([.,;:!?])', r'\1', re.sub(r'\s+', ' ', line))


@functools.lru_cache(maxsize=4)
def load_rewriter(path: str, max_new_tokens: int = 80) -> LMRewriter:
    """:meth:`LMRewriter.load`, once per process per folder; for callers that want a model
    that cannot be loaded to be an error (``handx annotate --lm-path``).

    Raises:
        ConfigError: Not a model folder, or the model cannot be loaded (one line).
    """
    return LMRewriter.load(path, max_new_tokens=max_new_tokens)


@functools.lru_cache(maxsize=4)
def _cached_rewriter(path: str, max_new_tokens: int) -> LMRewriter | None:
    """Load once per process; ``None`` (with a warning) when the model cannot be loaded."""
    try:
        return load_rewriter(path, max_new_tokens)
    except (ConfigError, OSError, ValueError, KeyError, TypeError, ImportError,
            RuntimeError) as exc:
        logger.warning('language model at %s unavailable (%s: %s); using the templates',
                       path, type(exc).__name__, exc)
        return None


# ============================================================================== entry point


def describe(features: MotionFeatures, *, seed: int | None = None,
             rng: np.random.Generator | None = None,
             label: str | Sequence[str] | None = None,
             config: DescribeConfig | None = None,
             rewriter: Rewriter | None = None) -> Descriptions:
    """Write descriptions of a clip from its feature record.

    Args:
        features: The clip's feature record.
        seed: Seed of the wording choices (same seed, same text). Give ``seed`` or ``rng``;
            neither means seed 0.
        rng: A generator to draw the wording from instead of ``seed``.
        label: The source's action label, or several in time order (a synthetic clip's
            primitive labels); used by the semantic description when
            ``config.use_label``.
        config: Settings; default :class:`DescribeConfig`.
        rewriter: A language-model rewriter to use instead of loading ``config.lm_path``.

    Returns:
        ``config.per_granularity`` descriptions (fewer when variants coincide) of each
        granularity, semantic first; every text non-empty.

    Raises:
        ConfigError: Both ``seed`` and ``rng`` given, or a bad ``label``.
    """
    from handx_gen.annotate.request import request_text

    config = config or DescribeConfig()
    if seed is not None and rng is not None:
        raise ConfigError('describe takes seed or rng, not both')
    if rng is None:
        rng = np.random.default_rng(0 if seed is None else seed)
    labels = _labels(label) if config.use_label else ()
    writer = _Writer(features, rng, config)
    methods: dict[Granularity, Callable[[], str]] = {
        Granularity.SEMANTIC: lambda: writer.semantic(labels),
        Granularity.INTERACTION: writer.interaction,
        Granularity.ARTICULATION: writer.articulation,
        Granularity.REQUEST: lambda: request_text(writer, labels),
    }
    items: list[Description] = []
    for granularity, write in methods.items():
        seen: set[str] = set()
        for variant in range(config.per_granularity):
            if granularity == Granularity.SEMANTIC and labels and variant % 2 == 1:
                text = writer.semantic(())  # odd variants: intent from the record
            else:
                text = write()
            text = text.strip() or _sentence(
                'the hands move' if writer.one is None else
                f'the {_SIDE_WORD[writer.one]} hand moves')
            if text not in seen:
                seen.add(text)
                items.append(Description(granularity, text))
    if rewriter is None and config.lm_path is not None:
        rewriter = _cached_rewriter(str(config.lm_path), config.lm_max_new_tokens)
    if rewriter is not None:
        items = _rewrite_all(items, rewriter, describe_facts(features), config)
    return Descriptions(tuple(items))


def _labels(label: str | Sequence[str] | None) -> tuple[str, ...]:
    if label is None:
        return ()
    if isinstance(label, str):
        label = (label,)
    if not all(isinstance(item, str) for item in label):
        raise ConfigError(f'label must be a string or a sequence of strings, got {label!r}')
    return tuple(item for item in label if item.strip())


def _rewrite_all(items: Sequence[Description], rewriter: Rewriter, facts: str,
                 config: DescribeConfig) -> list[Description]:
    out = []
    for item in items:
        if item.granularity not in config.lm_granularities:
            out.append(item)
            continue
        try:
            candidate = rewriter.rewrite(item.text, facts, item.granularity)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
                RuntimeError) as exc:
            logger.warning('language model failed on a %s description (%s: %s); keeping the '
                           'template text', item.granularity.value, type(exc).__name__, exc)
            out.append(item)
            continue
        if isinstance(candidate, str) and faithful_rewrite(candidate, item.text):
            out.append(Description(item.granularity, _sentence(candidate),
                                   TextSource.LANGUAGE_MODEL))
        else:
            logger.warning('language model rewrite of a %s description did not keep to the '
                           'facts (%r); keeping the template text', item.granularity.value,
                           candidate)
            out.append(item)
    return out
