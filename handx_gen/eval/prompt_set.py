"""Labelled prompt sets: prompts in people's own words, each with what it names.

The corpus texts all come from the annotation's templates; a model can do well on them and
still miss what people type ("clap twice", "can you interlock your fingers?"). A labelled
prompt set is a list of such prompts, written by hand, each with machine-readable labels of
what it asks for, so that generated clips can be scored against the prompt itself rather than
against a synthesis plan. The shipped set (``benchmarks/prompts/heldout/``) is never used for
training or validation (its path: :data:`HELDOUT_SET`); ``benchmarks/bench_heldout.py``
scores both models on it, and ``handx eval --heldout`` adds its rows to the evaluation
table.

**File** (YAML, read with ``yaml.safe_load``)::

    format: handx-prompt-set/1
    prompts:
      - id: tap-palm-1                # unique
        text: tap your left palm with your right index finger 3 times
        type: tap_palm                # the corpus motion type it asks for
        contacts: [left.palm~right.index_tip]
        bend: [right.fingers]         # optional, as are all that follow
        extend: [right.index]
        spread: [right]
        coordination: alternating
        either_hand: false
        lead: right
        style: [digits, precise]

**Vocabulary** (the feature extractor's, :mod:`handx_gen.annotate.features`):

* ``contacts``: ``SIDE.PART~SIDE.PART`` with ``SIDE`` ``left`` or ``right`` and ``PART`` a
  :class:`~handx_gen.hand.parts.HandPart` value (``palm``, ``back``, ``index_tip``,
  ``index`` for the finger's shaft, ...). Between the hands any pair; within one hand only the
  thumb tip on another fingertip (:data:`~handx_gen.annotate.surface.SELF_CONTACT_PAIRS`,
  the only touches within a hand the extractor reports). Parts match per finger (tip or
  shaft), palm and back, as everywhere in the evaluation.
* ``bend`` / ``extend``: fingers whose flexion the prompt says rises (curl, close, fold,
  make a fist) or falls (open, straighten, stretch out), the
  :class:`~handx_gen.data.plan.FingerAction` values the plans use; ``SIDE.FINGER`` with
  ``SIDE`` ``left``, ``right`` or ``both`` and ``FINGER`` a
  :class:`~handx_gen.hand.topology.Finger` name, ``all`` (the five) or ``fingers`` (the four
  without the thumb). Holds are not labelled: a held finger is no event to find.
* ``spread``: hands whose fingers fan out (``left``, ``right``, ``both``).
* ``coordination``: the bimanual pattern the prompt names, a
  :class:`~handx_gen.annotate.features.Coordination` value (``mirrored``, ``alternating``,
  ``together``, ``left_only``, ``right_only``).
* ``either_hand``: the prompt does not say which hand acts; the labels are written for one
  reading (the right hand, by convention) and a clip doing the mirror image counts as well.
* ``lead``: the hand that acts, for choosing a corpus clip of the same motion type (a
  left-led clip is the corpus' left-dominant variant); default ``right``.
* ``style``: how it is phrased (:class:`Phrasing`), for reading results by phrasing.

**Scores** reuse the evaluation's metrics (:mod:`handx_gen.eval.metrics`): the labels become
a :class:`~handx_gen.eval.metrics.Statement` whose contacts last the whole clip, read with the
plans' convention (a palm-on-palm contact absorbs finger contacts between the hands that it
covers), and :func:`score_prompt` reports :func:`~handx_gen.eval.metrics.contact_score`,
:func:`~handx_gen.eval.metrics.articulation_score` (which counts a stated thumb pinch among
the finger actions too) and :func:`~handx_gen.eval.metrics.coordination_realised`, for the
reading that fits the clip best where ``either_hand`` allows two.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from handx_gen.annotate.check import ContactSpan, PartMatch, absorb_dominated, merge_contacts
from handx_gen.annotate.features import Coordination, MotionFeatures
from handx_gen.annotate.surface import SELF_CONTACT_PAIRS
from handx_gen.data.plan import FingerAction
from handx_gen.errors import unknown_choice
from handx_gen.eval.metrics import (
    EvalError,
    Statement,
    articulation_score,
    contact_score,
    coordination_realised,
)
from handx_gen.eval.names import HELDOUT_SET
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

__all__ = [
    'HELDOUT_SET',
    'PROMPT_SET_FORMAT',
    'LabelledPrompt',
    'Phrasing',
    'PromptScore',
    'load_prompt_set',
    'normalise_text',
    'parse_prompt',
    'score_prompt',
    'verbatim_overlap',
]

PROMPT_SET_FORMAT = 'handx-prompt-set/1'

_KEYS = ('id', 'text', 'type', 'contacts', 'bend', 'extend', 'spread', 'coordination',
         'either_hand', 'lead', 'style')
_SIDES = {'left': (HandSide.LEFT,), 'right': (HandSide.RIGHT,),
          'both': (HandSide.LEFT, HandSide.RIGHT)}
_FINGER_GROUPS = {'all': tuple(Finger),
                  'fingers': tuple(f for f in Finger if f is not Finger.THUMB),
                  **{f.name.lower(): (f,) for f in Finger}}
_COORDINATIONS = (Coordination.MIRRORED, Coordination.ALTERNATING, Coordination.TOGETHER,
                  Coordination.LEFT_ONLY, Coordination.RIGHT_ONLY)
_SELF_PAIRS = {frozenset(pair) for pair in SELF_CONTACT_PAIRS}


class Phrasing(str, enum.Enum):
    """How a prompt is phrased. Four are read off the text and checked against it by the
    tests (``question``, ``digits``, ``several_sentences``, ``short``); ``no_side`` goes with
    ``either_hand``."""

    SHORT = 'short'  # four words or fewer
    QUESTION = 'question'  # asks ("could you ...?"), ends with a question mark
    DIGITS = 'digits'  # a count in digits ("3 times")
    COUNT_WORDS = 'count_words'  # a count in words ("twice", "four times")
    SYNONYM = 'synonym'  # words the corpus does not use (hand for palm, pointer, curl, fold)
    SIDE_ORDER = 'side_order'  # the hands named in another order than the corpus' sentences
    NO_SIDE = 'no_side'  # a one-hand action without saying which hand
    CASUAL = 'casual'  # everyday register, images ("like you're praying")
    PRECISE = 'precise'  # names parts and sides exactly
    SEVERAL_SENTENCES = 'several_sentences'  # two sentences or more
    DEGREE = 'degree'  # how: slowly, quickly, a little, hard, gently


@dataclasses.dataclass(frozen=True)
class LabelledPrompt:
    """One prompt and what it names (see the module docstring for the vocabulary).

    Attributes:
        prompt_id: Unique name in its set.
        text: The prompt as a user would type it.
        motion_type: The corpus motion type it asks for.
        contacts: Part pairs that touch.
        finger_actions: ``(side, finger, action)``, bends and extensions.
        spread: Hands whose fingers fan out.
        coordination: The bimanual pattern named, if any.
        either_hand: The mirror image of the labels counts as well.
        lead: The hand that acts.
        style: How it is phrased.
    """

    prompt_id: str
    text: str
    motion_type: str
    contacts: tuple[tuple[PartRef, PartRef], ...] = ()
    finger_actions: tuple[tuple[HandSide, Finger, FingerAction], ...] = ()
    spread: tuple[HandSide, ...] = ()
    coordination: Coordination | None = None
    either_hand: bool = False
    lead: HandSide = HandSide.RIGHT
    style: tuple[Phrasing, ...] = ()

    @property
    def names_contacts(self) -> bool:
        return bool(self.contacts)

    @property
    def names_articulation(self) -> bool:
        """Whether the prompt states finger actions, a spread or a pinch (what
        :func:`~handx_gen.eval.metrics.articulation_score` counts)."""
        return bool(self.finger_actions or self.spread
                    or any(a.side == b.side for a, b in self.contacts))

    def statement(self, num_frames: int, fps: float) -> Statement:
        """The labels as a statement whose contacts last the whole clip of ``num_frames``."""
        spans = [ContactSpan(0, num_frames, a, b) for a, b in self.contacts]
        contacts = merge_contacts(absorb_dominated(spans), PartMatch.FINGER)
        return Statement(contacts, self.finger_actions, self.spread, self.coordination, fps)

    def mirrored(self) -> LabelledPrompt:
        """The same prompt with left and right exchanged in every label."""
        def side(s: HandSide) -> HandSide:
            return HandSide.RIGHT if s is HandSide.LEFT else HandSide.LEFT

        coordination = {Coordination.LEFT_ONLY: Coordination.RIGHT_ONLY,
                        Coordination.RIGHT_ONLY: Coordination.LEFT_ONLY}.get(
            self.coordination, self.coordination)  # type: ignore[arg-type]
        return dataclasses.replace(
            self,
            contacts=tuple((PartRef(side(a.side), a.part), PartRef(side(b.side), b.part))
                           for a, b in self.contacts),
            finger_actions=tuple((side(s), f, a) for s, f, a in self.finger_actions),
            spread=tuple(side(s) for s in self.spread), coordination=coordination,
            lead=side(self.lead))

    def to_dict(self) -> dict[str, Any]:
        """The labels in the file's notation (``both`` and finger groups expanded)."""
        def fingers(action: FingerAction) -> list[str]:
            return [f'{s.name.lower()}.{f.name.lower()}' for s, f, a in self.finger_actions
                    if a is action]

        return {'id': self.prompt_id, 'text': self.text, 'type': self.motion_type,
                'contacts': [f'{a.to_json()}~{b.to_json()}' for a, b in self.contacts],
                'bend': fingers(FingerAction.BEND), 'extend': fingers(FingerAction.EXTEND),
                'spread': [s.name.lower() for s in self.spread],
                'coordination': None if self.coordination is None else self.coordination.value,
                'either_hand': self.either_hand, 'lead': self.lead.name.lower(),
                'style': [s.value for s in self.style]}


# ============================================================================ reading


def _list(entry: str, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalError(f'prompt {entry}: {key} must be a list of names, got {value!r:.120}')
    return [v.strip() for v in value]


def _side(entry: str, what: str, name: str, allow_both: bool) -> tuple[HandSide, ...]:
    valid = ['left', 'right', 'both'] if allow_both else ['left', 'right']
    if name not in valid:
        raise EvalError(f'prompt {entry}, {what}: {unknown_choice("side", name, valid)}')
    return _SIDES[name]


def _part_ref(entry: str, text: str) -> PartRef:
    side, dot, part = text.partition('.')
    if not dot:
        raise EvalError(f'prompt {entry}: contact part {text!r} must be SIDE.PART, e.g. '
                        f"'left.palm'")
    (hand,) = _side(entry, f'contact part {text!r}', side, allow_both=False)
    try:
        return PartRef(hand, HandPart(part))
    except ValueError:
        raise EvalError(f'prompt {entry}, contact part {text!r}: ' + unknown_choice(
            'hand part', part, [p.value for p in HandPart])) from None


def _contact(entry: str, text: str) -> tuple[PartRef, PartRef]:
    first, tilde, second = text.partition('~')
    if not tilde:
        raise EvalError(f'prompt {entry}: contact {text!r} must be SIDE.PART~SIDE.PART, e.g. '
                        f"'left.palm~right.index_tip'")
    a, b = _part_ref(entry, first.strip()), _part_ref(entry, second.strip())
    if a == b:
        raise EvalError(f'prompt {entry}: contact {text!r} names one part twice')
    if a.side == b.side and frozenset((a.part, b.part)) not in _SELF_PAIRS:
        pairs = sorted(f'{x.value}~{y.value}' for x, y in SELF_CONTACT_PAIRS)
        raise EvalError(f'prompt {entry}: contact {text!r} is within one hand; the features '
                        f'report only {", ".join(pairs)} there')
    return a, b


def _fingers(entry: str, key: str, names: Iterable[str]) -> list[tuple[HandSide, Finger]]:
    out = []
    for name in names:
        side, dot, group = name.partition('.')
        if not dot:
            raise EvalError(f'prompt {entry}: {key} entry {name!r} must be SIDE.FINGER, e.g. '
                            f"'right.index' or 'both.all'")
        sides = _side(entry, f'{key} entry {name!r}', side, allow_both=True)
        if group not in _FINGER_GROUPS:
            raise EvalError(f'prompt {entry}, {key} entry {name!r}: ' + unknown_choice(
                'finger', group, list(_FINGER_GROUPS)))
        out += [(s, f) for s in sides for f in _FINGER_GROUPS[group]]
    return out


def _unique(entry: str, what: str, items: Sequence[Any]) -> tuple[Any, ...]:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            raise EvalError(f'prompt {entry}: {what} {item!r} is given twice')
        seen.append(item)
    return tuple(seen)


def parse_prompt(data: Mapping[str, Any], motion_types: Iterable[str] | None = None
                 ) -> LabelledPrompt:
    """One entry of a prompt set.

    Args:
        data: The entry's mapping.
        motion_types: The valid motion types (default: every registered corpus type).

    Raises:
        EvalError: A missing or unknown key, or a value outside the vocabulary; the message
            names the entry, the value and the valid options.
    """
    if not isinstance(data, Mapping):
        raise EvalError(f'a prompt entry must be a mapping, got {type(data).__name__}')
    entry = repr(data.get('id', '?'))
    for key in data:
        if key not in _KEYS:
            raise EvalError(f'prompt {entry}: {unknown_choice("key", key, _KEYS)}')
    for key in ('id', 'text', 'type'):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise EvalError(f'prompt {entry}: {key!r} must be a non-empty string')
    text = data['text']
    if '\n' in text.strip() or text != text.strip():
        raise EvalError(f'prompt {entry}: the text must be one line without surrounding '
                        f'spaces, got {text!r:.120}')
    if motion_types is None:
        from handx_gen.data.synthetic import SynthConfig, resolve_motion_types

        motion_types = resolve_motion_types(SynthConfig())
    motion_types = tuple(motion_types)
    if data['type'] not in motion_types:
        raise EvalError(f'prompt {entry}: ' + unknown_choice('motion type', data['type'],
                                                              motion_types))
    contacts = _unique(entry, 'contact', [
        _contact(entry, c) for c in _list(entry, 'contacts', data.get('contacts'))])
    if len({frozenset(c) for c in contacts}) != len(contacts):
        raise EvalError(f'prompt {entry}: a contact is given twice (in either order)')
    actions = []
    for key, action in (('bend', FingerAction.BEND), ('extend', FingerAction.EXTEND)):
        actions += [(s, f, action) for s, f in _fingers(entry, key, _list(entry, key,
                                                                            data.get(key)))]
    spread = [s for name in _list(entry, 'spread', data.get('spread'))
              for s in _side(entry, 'spread', name, allow_both=True)]
    coordination = data.get('coordination')
    if coordination is not None:
        valid = [c.value for c in _COORDINATIONS]
        if coordination not in valid:
            raise EvalError(f'prompt {entry}: ' + unknown_choice('coordination', coordination,
                                                                  valid))
        coordination = Coordination(coordination)
    either = data.get('either_hand', False)
    if not isinstance(either, bool):
        raise EvalError(f'prompt {entry}: either_hand must be true or false, got {either!r}')
    (lead,) = _side(entry, 'lead', data.get('lead', 'right'), allow_both=False)
    style = []
    for name in _list(entry, 'style', data.get('style')):
        try:
            style.append(Phrasing(name))
        except ValueError:
            raise EvalError(f'prompt {entry}: ' + unknown_choice(
                'style', name, [p.value for p in Phrasing])) from None
    return LabelledPrompt(
        data['id'], text, data['type'], contacts, _unique(entry, 'finger action', actions),
        _unique(entry, 'spread hand', spread), coordination, either, lead,
        _unique(entry, 'style', style))


def load_prompt_set(path: str | os.PathLike, motion_types: Iterable[str] | None = None
                    ) -> tuple[LabelledPrompt, ...]:
    """Every prompt of a prompt-set file, in file order.

    Raises:
        EvalError: Unreadable file, another format, no prompts, a bad entry (see
            :func:`parse_prompt`), or two entries with one id or one text (compared by
            :func:`normalise_text`).
    """
    from handx_gen.config import read_yaml

    data = read_yaml(path, 'prompt set', error=EvalError)
    if data.get('format') != PROMPT_SET_FORMAT:
        raise EvalError(f'{path}: format {data.get("format")!r}; expected '
                        f'{PROMPT_SET_FORMAT!r}')
    unknown = set(data) - {'format', 'prompts'}
    if unknown:
        raise EvalError(f'{path}: unknown keys {sorted(unknown)}; valid: format, prompts')
    entries = data.get('prompts')
    if not isinstance(entries, list) or not entries:
        raise EvalError(f'{path}: prompts must be a non-empty list')
    if motion_types is None:
        from handx_gen.data.synthetic import SynthConfig, resolve_motion_types

        motion_types = resolve_motion_types(SynthConfig())
    motion_types = tuple(motion_types)
    prompts = []
    ids: dict[str, int] = {}
    texts: dict[str, str] = {}
    for index, entry in enumerate(entries):
        try:
            prompt = parse_prompt(entry, motion_types)
        except EvalError as exc:
            raise EvalError(f'{path}: entry {index}: {exc}') from None
        if prompt.prompt_id in ids:
            raise EvalError(f'{path}: id {prompt.prompt_id!r} is used by entries '
                            f'{ids[prompt.prompt_id]} and {index}')
        key = normalise_text(prompt.text)
        if key in texts:
            raise EvalError(f'{path}: entries {texts[key]!r} and {prompt.prompt_id!r} have '
                            f'the same text')
        ids[prompt.prompt_id] = index
        texts[key] = prompt.prompt_id
        prompts.append(prompt)
    return tuple(prompts)


# ============================================================================ overlap


def normalise_text(text: str) -> str:
    """``text`` compared as words: case folded, punctuation dropped, spaces collapsed."""
    return ' '.join(re.sub(r"[^\w\s']", ' ', text.casefold()).split())


def verbatim_overlap(prompts: Iterable[LabelledPrompt], texts: Iterable[str]
                     ) -> list[tuple[str, str]]:
    """``(prompt id, text)`` for every prompt whose text is one of ``texts`` (compared by
    :func:`normalise_text`); the first of ``texts`` that matches is named."""
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(normalise_text(text), text)
    return [(p.prompt_id, seen[normalise_text(p.text)]) for p in prompts
            if normalise_text(p.text) in seen]


# ============================================================================ scores


@dataclasses.dataclass(frozen=True)
class PromptScore:
    """What a clip realises of one prompt's labels (the better reading where the prompt
    leaves the hand open).

    Attributes:
        contacts_stated: Contacts named (merged per part family).
        contacts_found: Of those, contacts that occur in the clip.
        actions_stated: Finger actions, spreads and pinches named.
        actions_realised: Of those, the ones the clip does.
        coordination: Whether the named bimanual pattern is the clip's (``None``: none named).
        mirrored: The mirror image of the labels was the better reading.
    """

    contacts_stated: int
    contacts_found: int
    actions_stated: int
    actions_realised: int
    coordination: bool | None
    mirrored: bool = False

    @property
    def all_contacts(self) -> bool | None:
        """Every named contact occurs (``None`` when none is named)."""
        return None if not self.contacts_stated else \
            self.contacts_found == self.contacts_stated

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), 'all_contacts': self.all_contacts}


def _score(prompt: LabelledPrompt, features: MotionFeatures, mirrored: bool) -> PromptScore:
    statement = prompt.statement(features.num_frames, features.fps)
    contacts = contact_score(statement, features)
    realised, stated = articulation_score(statement, features)
    return PromptScore(contacts.stated, contacts.found, stated, realised,
                       coordination_realised(statement, features), mirrored)


def score_prompt(prompt: LabelledPrompt, features: MotionFeatures) -> PromptScore:
    """Score a clip's features against a prompt's labels; with ``either_hand``, against the
    labels and their mirror image, keeping the reading with more of them realised (contacts
    found, finger actions realised and the coordination together; ties keep the labels as
    written)."""
    best = _score(prompt, features, False)
    if prompt.either_hand:
        other = _score(prompt.mirrored(), features, True)

        def total(s: PromptScore) -> int:
            return s.contacts_found + s.actions_realised + int(bool(s.coordination))

        if total(other) > total(best):
            best = other
    return best
