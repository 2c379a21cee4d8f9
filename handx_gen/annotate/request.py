"""The users' register: a clip described as a person would ask for it.

People do not type the annotations' third-person narration ("the right index fingertip taps
the left palm three times"); they type requests: "tap your left palm with your right index
finger 3 times", "clap twice", "make a fist with your left hand, then open it", "could you
rub your hands together slowly?". :func:`request_text` writes that register from the same
feature record as the three granularities of :mod:`handx_gen.annotate.describe`, fact by
fact, so it too says only what the record holds (it may say less: users leave out sides,
counts of minor contacts and held fingers). What varies, drawn from a seeded generator:

* imperative and second person ("press your palms together"), short commands ("clap 2x"),
  questions and politeness ("can you ...?", "please ...");
* counts as digits, words and "2x"; synonyms (palm / hand, clap / strike, curl / close /
  fold, straighten / open / stretch out, tap / touch / poke);
* sides named, left out of the object when the subject names its side, or in either order;
* degree words from the record's flexion speeds and end postures ("slowly", "quickly", "a
  little");
* one sentence with "then" / "and then" or several sentences, lower-case casual or
  capitalised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from handx_gen.annotate.describe import (
    _FINGER_WORD,
    _SIDE_WORD,
    NUMBER_WORDS,
    _bin_at,
    _join,
    _moves,
    _pointedness,
    _Rng,
    _speed_adverb,
    _Writer,
)
from handx_gen.annotate.features import (
    ContactEvent,
    Coordination,
    DistanceTrend,
    FlexionBin,
    FlexionEvent,
    RepetitionSource,
)
from handx_gen.data.plan import FingerAction
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

__all__ = ['label_request', 'request_text']

_LONG = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)


def _count(n: int, rng: _Rng) -> str:
    """``'twice'``, ``'2 times'``, ``'two times'``, ``'2x'`` (n >= 2)."""
    word = NUMBER_WORDS.get(n, str(n))
    options = [f'{n} times', f'{word} times', f'{n}x']
    if n == 2:
        options += ['twice', 'twice']
    return rng.pick(options)


def _fingers(fingers: Sequence[Finger], side: HandSide | None, rng: _Rng) -> str:
    """'your right index and middle fingers', 'your left thumb', 'all your fingers', 'the
    fingers of both hands'."""
    fingers = sorted(set(fingers))
    whose = 'your' if side is None else f'your {_SIDE_WORD[side]}'
    if len(fingers) == 5:
        core = 'fingers'
        if side is None:
            return rng.pick(('all your fingers', 'the fingers of both hands'))
        return rng.pick((f'all the fingers of your {_SIDE_WORD[side]} hand',
                         f'your {_SIDE_WORD[side]} hand'))
    if len(fingers) == 4 and Finger.THUMB not in fingers:
        core = 'four fingers'
    else:
        names = [_FINGER_WORD[f] for f in fingers]
        others = [f for f in fingers if f != Finger.THUMB]
        if not others:
            core = 'thumbs' if side is None else 'thumb'
        else:
            noun = 'finger' if len(fingers) == 1 and side is not None else 'fingers'
            core = f'{_join(names)} {noun}'
    if side is None:
        return rng.pick((f'your {core} on both hands', f'the {core} of both hands',
                         f'both {core}' if len(fingers) == 1 else f'your {core} on both hands'))
    return f'{whose} {core}'


def _part(ref: PartRef, rng: _Rng, *, side: bool = True) -> str:
    """'your left palm', 'your right index finger', 'the back of your left hand'."""
    sw = f'{_SIDE_WORD[ref.side]} ' if side else ''
    part = ref.part
    if part == HandPart.PALM:
        return rng.pick((f'your {sw}palm', f'your {sw}hand', f'the palm of your {sw}hand'))
    if part == HandPart.BACK:
        return f'the back of your {sw}hand'
    finger = part.finger
    assert finger is not None
    name = _FINGER_WORD[finger]
    if finger == Finger.THUMB:
        return rng.pick((f'your {sw}thumb', f'your {sw}thumb tip')) if part.is_tip \
            else f'your {sw}thumb'
    if part.is_tip:
        return rng.pick((f'your {sw}{name} finger', f'your {sw}{name} fingertip',
                         f'the tip of your {sw}{name} finger'))
    return f'your {sw}{name} finger'


class _Step:
    """One request with the frame it starts at."""

    def __init__(self, start: int, text: str) -> None:
        self.start = start
        self.text = text


class _Requests:
    """Writes the request steps of one record (uses the describe writer's facts)."""

    def __init__(self, writer: _Writer) -> None:
        self.w = writer
        self.f = writer.f
        self.rng = writer.rng

    # ------------------------------------------------------------------ contacts

    def contacts(self) -> list[_Step]:
        rng = self.rng
        groups = self.w._contact_groups(self.w.inter)
        if not groups:
            return []
        steps: list[_Step] = []
        palms = (PartRef(HandSide.LEFT, HandPart.PALM), PartRef(HandSide.RIGHT, HandPart.PALM))
        used: set[tuple[PartRef, PartRef]] = set()
        if palms in groups:
            steps.append(self._palms(groups[palms]))
            used.add(palms)
        tips = sorted({a.part.finger for (a, b) in groups
                       if a.part == b.part and a.part.is_tip and a.part.finger is not None})
        if len(tips) >= 2:
            events = [e for (a, b), evs in groups.items()
                      if a.part == b.part and a.part.is_tip for e in evs]
            used |= {k for k in groups if k[0].part == k[1].part and k[0].part.is_tip}
            if len(tips) >= 4:
                text = rng.pick(('touch your fingertips together',
                                 'put the fingertips of both hands together',
                                 'press your fingertips against each other'))
            else:
                names = _join([_FINGER_WORD[f] for f in tips])
                text = rng.pick((f'touch the tips of your {names} fingers together',
                                 f'press your {names} fingertips together'))
            steps.append(_Step(min(e.start for e in events), text))
        rest = sorted(((k, v) for k, v in groups.items() if k not in used),
                      key=lambda kv: -sum(e.num_frames for e in kv[1]))
        for (a, b), events in rest[:max(1, 2 - len(steps))]:
            steps.append(self._pair(a, b, events))
        first = min(e.start for e in self.w.inter)
        last = max(e.stop for e in self.w.inter)
        trend = self.f.relations.distance_trend
        tol = self.w.frames(0.2)
        if rng.chance(0.4) and any(s.label == DistanceTrend.APPROACHING and s.stop <= first + tol
                                   for s in trend):
            steps.insert(0, _Step(first - 1, rng.pick((
                'bring your hands together', 'move your hands towards each other'))))
        if rng.chance(0.4) and any(s.label == DistanceTrend.SEPARATING and s.start >= last - tol
                                   for s in trend):
            steps.append(_Step(last, rng.pick(('pull your hands apart',
                                                'move your hands apart',
                                                'separate your hands'))))
        return steps

    def _palms(self, events: Sequence[ContactEvent]) -> _Step:
        rng, config = self.rng, self.w.config
        n = len(events)
        start = min(e.start for e in events)
        short = all(e.num_frames <= self.w.frames(config.tap_max_s) for e in events)
        long = all(e.num_frames >= self.w.frames(config.rest_min_s) for e in events)
        if short and n >= 2:
            c = _count(n, rng)
            return _Step(start, rng.pick((f'clap {c}', f'clap your hands {c}',
                                          f'clap your hands together {c}',
                                          f'strike your palms together {c}')))
        if short:
            return _Step(start, rng.pick(('clap once', 'clap your hands once',
                                          'give one clap')))
        if long:
            return _Step(start, rng.pick(('press your palms together',
                                          'press your hands together',
                                          'put your hands together palm to palm',
                                          'hold your palms against each other')))
        verb = rng.pick(('bring your palms together', 'touch your palms together',
                         'put your hands together'))
        return _Step(start, verb + (f' {_count(n, rng)}' if n >= 2 else ''))

    def _pair(self, a: PartRef, b: PartRef, events: Sequence[ContactEvent]) -> _Step:
        rng, config = self.rng, self.w.config
        n = len(events)
        start = min(e.start for e in events)
        short = all(e.num_frames <= self.w.frames(config.tap_max_s) for e in events)
        long = all(e.num_frames >= self.w.frames(config.rest_min_s) for e in events)
        subject, obj = (a, b) if _pointedness(a) <= _pointedness(b) else (b, a)
        if _pointedness(subject) == _pointedness(obj) and subject.side != HandSide.RIGHT:
            subject, obj = obj, subject
        s = _part(subject, rng)
        # Users often leave out the side of the touched part once the touching one has its.
        o = _part(obj, rng, side=subject.side == obj.side or not rng.chance(0.3))
        c = f' {_count(n, rng)}' if n >= 2 else ''
        if short and n >= 2:
            text = rng.pick((f'tap {o} with {s}{c}', f'use {s} to tap {o}{c}',
                             f'poke {o} with {s}{c}'))
        elif short:
            text = rng.pick((f'tap {o} with {s}', f'give {o} a quick tap with {s}'))
        elif long:
            text = rng.pick((f'rest {s} on {o}', f'press {s} against {o}',
                             f'hold {s} on {o}'))
        else:
            text = rng.pick((f'touch {o} with {s}{c}', f'put {s} on {o}{c}'))
        return _Step(start, text)

    def pinches(self) -> list[_Step]:
        rng = self.rng
        steps = []
        for (a, b), events in self.w._contact_groups(self.w.same).items():
            thumb, other = (a, b) if a.part == HandPart.THUMB_TIP else (b, a)
            finger = other.part.finger
            if finger is None:
                continue
            name = _FINGER_WORD[finger]
            sw = _SIDE_WORD[a.side]
            c = f' {_count(len(events), rng)}' if len(events) >= 2 else ''
            steps.append(_Step(min(e.start for e in events), rng.pick((
                f'pinch your {sw} thumb and {name} finger together{c}',
                f'touch your {sw} thumb to your {name} finger{c}',
                f'bring your {sw} thumb and {name} finger together{c}'))))
        return steps

    # ------------------------------------------------------------------ hands

    def shapes(self) -> list[_Step]:
        """Fists, pointing, open hands and numbers of fingers held up, else finger moves."""
        rng = self.rng
        last = self.f.num_frames - 1
        shapes: dict[HandSide, tuple[str, int]] = {}
        for side in self.w.sides:
            hand = self.f.hand(side)
            moving = [m for finger in hand.fingers for m in _moves(finger)]
            if not moving:
                continue
            end = {finger.finger: _bin_at(finger, last) for finger in hand.fingers}
            extended = [f for f in _LONG if end[f] == FlexionBin.EXTENDED]
            curled = [f for f in _LONG if end[f] == FlexionBin.CURLED]
            start = min(m.start for m in moving)
            if len(curled) == 4:
                shapes[side] = ('fist', start)
            elif extended == [Finger.INDEX] and len(curled) == 3:
                shapes[side] = ('point', start)
            elif len(extended) == 4 and end[Finger.THUMB] == FlexionBin.EXTENDED \
                    and any(m.action == FingerAction.EXTEND for m in moving):
                shapes[side] = ('open', start)
            elif extended and len(extended) + len(curled) == 4 and len(curled) >= 2:
                n = len(extended) + (end[Finger.THUMB] == FlexionBin.EXTENDED)
                shapes[side] = (f'hold {n}', start)
        steps: list[_Step] = []
        both = [s for s in HandSide if s in shapes]
        if len(both) == 2 and shapes[HandSide.LEFT][0] == shapes[HandSide.RIGHT][0] \
                and shapes[HandSide.LEFT][0] in ('fist', 'open'):
            kind = shapes[HandSide.LEFT][0]
            start = min(shapes[s][1] for s in both)
            steps.append(_Step(start, rng.pick((
                'make fists with both hands', 'make a fist with each hand',
                'close both hands into fists') if kind == 'fist' else (
                'open both hands', 'open your hands all the way', 'spread both hands open'))))
            done = set(both)
        else:
            done = set()
        for side in (HandSide.RIGHT, HandSide.LEFT):
            if side in done or side not in self.w.sides:
                continue
            if side not in shapes:
                steps += self._finger_moves(side)
                continue
            kind, start = shapes[side]
            sw = _SIDE_WORD[side]
            if kind == 'fist':
                text = rng.pick((f'make a fist with your {sw} hand',
                                 f'close your {sw} hand into a fist',
                                 f'{sw} hand: make a fist'))
            elif kind == 'point':
                text = rng.pick((f'point with your {sw} index finger',
                                 f'point your {sw} index finger',
                                 f'point with your {sw} hand'))
            elif kind == 'open':
                text = rng.pick((f'open your {sw} hand', f'open up your {sw} hand',
                                 f'stretch out the fingers of your {sw} hand'))
            else:
                n = int(kind.split()[1])
                num = rng.pick((str(n), NUMBER_WORDS.get(n, str(n))))
                noun = 'finger' if n == 1 else 'fingers'
                text = rng.pick((f'hold up {num} {noun} on your {sw} hand',
                                 f'show {num} {noun} with your {sw} hand'))
            steps.append(_Step(start, text))
        return steps

    def _finger_moves(self, side: HandSide) -> list[_Step]:
        rng = self.rng
        plan = self.w._hand_plan(side)
        if not plan.moving:
            return []
        steps = []
        if plan.summary:
            by_counts: dict[tuple[int, int], list[Finger]] = {}
            for finger, counts in plan.counts.items():
                by_counts.setdefault(counts, []).append(finger)
            for (bends, extends), fingers in sorted(by_counts.items(),
                                                    key=lambda kv: min(kv[1]))[:2]:
                start = min(e.start for f in fingers
                            for e in _moves(self.f.hand(side).finger(f)))
                who = _fingers(fingers, side, rng)
                n = max(bends, extends)
                c = f' {_count(n, rng)}' if n >= 2 else ''
                if bends and extends:
                    text = rng.pick((f'bend and straighten {who}{c}',
                                     f'curl and uncurl {who}{c}', f'flex {who}{c}'))
                elif bends:
                    text = f'{rng.pick(("bend", "curl"))} {who}{c}'
                else:
                    text = f'{rng.pick(("straighten", "stretch out"))} {who}{c}'
                steps.append(_Step(start, text))
            return steps
        for group in plan.groups[:2]:
            steps.append(self._group(group, side))
        return steps

    def _group(self, group: Sequence[FlexionEvent], side: HandSide) -> _Step:
        rng = self.rng
        fingers = [e.finger for e in group]
        who = _fingers(fingers, side, rng)
        hand = self.f.hand(side)
        ends = {_bin_at(hand.finger(e.finger), e.stop - 1) for e in group}
        if group[0].action == FingerAction.BEND:
            if ends == {FlexionBin.CURLED}:
                verb = rng.pick(('curl', 'close', 'fold', 'bend'))
                degree = ''
            else:
                verb = rng.pick(('bend', 'curl'))
                degree = rng.pick((' a little', ' partway', ' halfway')) \
                    if ends == {FlexionBin.BENT} else ''
        else:
            verb = rng.pick(('straighten', 'stretch out', 'open'))
            degree = rng.pick((' a little', ' partway')) if ends == {FlexionBin.BENT} else ''
        adverb = _speed_adverb(group, self.w.config, rng)
        text = f'{verb} {who}{degree}'
        if adverb:
            text = rng.pick((f'{text} {adverb}', f'{adverb} {text}'))
        return _Step(min(e.start for e in group), text)

    def waves(self) -> list[_Step]:
        rng = self.rng
        steps = []
        for hand in (self.f.hand(side) for side in self.w.sides):
            for rep in hand.repetitions:
                if rep.source != RepetitionSource.WRIST:
                    continue
                sw = _SIDE_WORD[hand.side]
                c = _count(rep.count, rng) if rep.count >= 2 else 'once'
                steps.append(_Step(rep.start, rng.pick((
                    f'wave your {sw} hand {c}', f'wave with your {sw} hand',
                    f'move your {sw} hand back and forth {c}',
                    f'shake your {sw} hand side to side {c}'))))
        return steps

    def fallback(self) -> _Step:
        if len(self.w.sides) == 1:  # one hand in the clip
            sw = _SIDE_WORD[self.w.sides[0]]
            still = self.f.coordination == Coordination.STILL
            return _Step(0, self.rng.pick((f'keep your {sw} hand still', f'hold your {sw} hand '
                                           'still') if still else (f'move your {sw} hand',
                                                                   f'move your {sw} hand a bit')))
        table = {
            Coordination.TOGETHER: ('move both hands together the same way',
                                    'move your hands in the same direction together'),
            Coordination.MIRRORED: ('move your hands like mirror images',
                                    'mirror one hand with the other'),
            Coordination.ALTERNATING: ('move your hands one after the other',
                                       'take turns moving each hand'),
            Coordination.LEFT_ONLY: ('move only your left hand',
                                     'keep your right hand still and move the left one'),
            Coordination.RIGHT_ONLY: ('move only your right hand',
                                      'keep your left hand still and move the right one'),
            Coordination.INDEPENDENT: ('move each hand its own way',
                                       'move both hands independently'),
            Coordination.STILL: ('keep your hands still', 'hold both hands still'),
        }
        return _Step(0, self.rng.pick(table[self.f.coordination]))


def _frame(steps: Sequence[_Step], rng: _Rng) -> str:
    """Join the steps in time order and give the whole a user's form."""
    texts = [s.text for s in sorted(steps, key=lambda s: s.start)]
    several = False
    body = texts[0]
    if len(texts) > 1 and rng.chance(0.35):
        several = True
        parts = [_cap(texts[0])]
        for text in texts[1:]:
            prefix = rng.pick(('Then ', 'After that, ', ''))
            parts.append(prefix + text if prefix else _cap(text))
        body = '. '.join(parts)
    else:
        for text in texts[1:]:
            body = rng.pick(('{a}, then {b}', '{a} and then {b}', '{a}, and {b}',
                             '{a} then {b}')).format(a=body, b=text)
    if not several and rng.chance(0.12):
        return f"{rng.pick(('Can you', 'Could you', 'Please can you'))} {body}?"
    if rng.chance(0.12):
        return f'Please {body}.' if not several else f'{body}, please.'
    if not several and rng.chance(0.3):
        return body  # casual: no capital, no full stop
    return f'{_cap(body)}.'


_SUBJECT = re.compile(r'^(the (left|right) hand|both hands|the hands|the (left|right) ([a-z ]+?)) '
                      r'([a-z]+)\b(.*)$')
# Verbs of the corpus' labels after "and" / "then", put into the base form with the first.
_LATER_VERB = re.compile(r'\b(and|then) (opens|closes|pumps|returns|comes|goes|moves|turns|'
                         r'spreads|curls|taps|waves|bends|straightens|pushes|pulls|presses|'
                         r'holds|points|releases|relaxes|rests|repeats)\b')
_NUMBER_COUNTS = {word: n for n, word in NUMBER_WORDS.items()}


def _base(verb: str) -> str:
    """'opens' -> 'open', 'clenches' -> 'clench', 'carries' -> 'carry' ('is' -> 'be')."""
    if verb == 'is':
        return 'be'
    if verb.endswith('ies'):
        return verb[:-3] + 'y'
    if verb.endswith(('ches', 'shes', 'sses', 'xes', 'zes')):
        return verb[:-2]
    return verb[:-1] if verb.endswith('s') and not verb.endswith('ss') else verb


def _your(text: str) -> str:
    """'the left palm' -> 'your left palm', 'the fingers of both hands' -> 'your fingers'."""
    text = re.sub(r'\bthe (fingers|palms|hands) of both hands\b', r'your \1', text)
    return re.sub(r'\bthe (left |right )?(palms?|hands?|fingers?|thumbs?|index finger|'
                  r'middle finger|ring finger|little finger)\b', r'your \1\2', text)


def _recount(text: str, rng: _Rng) -> str:
    """Counts in the forms users type: 'three times' -> '3 times' / '3x', 'twice' -> '2x'."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        n = 2 if word == 'twice' else _NUMBER_COUNTS.get(word.split()[0])
        if n is None:
            n = int(word.split()[0])
        return _count(n, rng)
    words = '|'.join(NUMBER_WORDS.values())
    return re.sub(rf'\btwice\b|\b(\d+|{words}) times\b', swap, text)


_PAIR_SUBJECT = re.compile(r'^the (left|right) ([a-z ]+?) (pinch|touch|tap|meet|press)\b(.*)$')
# Verbs whose natural object is the hand itself ('turn your right hand over').
_HAND_OBJECT = ('clench', 'turn', 'close', 'open', 'shake', 'raise', 'lower', 'move', 'roll',
                'rub', 'press', 'bring', 'put')


def label_request(label: str, rng: _Rng) -> str:
    """A source's action label said as a request: 'the right hand makes a fist' -> 'make a
    fist with your right hand'; 'Tap the left palm with the right index finger 3 times' ->
    'tap your left palm with your right index finger 3x'. Says what the label says."""
    text = label.strip().rstrip('.').strip()
    if not text:
        return text
    lower = text[0].lower() + text[1:]
    pair = _PAIR_SUBJECT.match(lower)
    match = _SUBJECT.match(lower)
    if pair is not None:  # the right thumb and index finger pinch together
        text = f'{pair.group(3)} your {pair.group(1)} {pair.group(2)}{pair.group(4)}'
    elif match is None:  # already a command ('Interlace the fingers of both hands')
        text = lower
    else:
        verb, rest = _base(match.group(5)), match.group(6)
        rest = _LATER_VERB.sub(lambda m: f'{m.group(1)} {_base(m.group(2))}', rest)
        side = match.group(2)
        if side is None:  # both hands / the hands
            text = f'{verb} your hands{rest}' if verb in _HAND_OBJECT \
                else f'{verb}{rest} with both hands'
        elif verb in _HAND_OBJECT:
            text = f'{verb} your {side} hand{rest}'
        elif re.search(r'\bits\b', rest):
            text = verb + re.sub(r'\bits\b', f'your {side}', rest)
        elif not rest.strip():
            text = rng.pick((f'{verb} with your {side} hand', f'{verb} your {side} hand'))
        else:
            text = rng.pick((f'{verb}{rest} with your {side} hand',
                             f'with your {side} hand, {verb}{rest}',
                             f'{side} hand: {verb}{rest}'))
    return _recount(_your(text), rng)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def request_text(writer: _Writer, labels: Sequence[str] = ()) -> str:
    """The users' register of the record the describe writer holds (see the module
    docstring): half the time, when the source gave action labels, those labels as
    requests; otherwise at most three requests, chosen in the order contacts between the hands,
    pinches, hand shapes or finger movements, waves, and said in time order; a record with
    none of these gets the coordination as a request."""
    requests = _Requests(writer)
    if labels and writer.rng.chance(0.5):  # the intent, as the source names it
        steps = [_Step(i, label_request(label, writer.rng)) for i, label in enumerate(labels)]
        return _frame([step for step in steps if step.text], writer.rng)
    # In order of what a user asks for first; at most three requests, then in time order.
    ranked = requests.contacts() + requests.pinches() + requests.shapes() + requests.waves()
    steps = ranked[:3] or [requests.fallback()]
    return _frame(steps, writer.rng)
