"""The contacts between the hands that a prompt states, read from its words.

The reverse of the describe and request writers (:mod:`handx_gen.annotate.describe`,
:mod:`handx_gen.annotate.request`) for one kind of fact: which part of one hand touches which
part of the other, and how often. It reads both registers, the annotation's narration ("the
tip of the right index finger taps the left palm three times", "the index and middle
fingertips of both hands meet", "the palms strike together") and users' requests ("tap your
left palm with your right pointer 4 times", "count the fingers of your left hand with your
right index", "press your palms together"), with the parts of
:class:`~handx_gen.hand.parts.HandPart` (a finger named as a tool or a target is its tip; "hand"
as what is tapped is its palm; "the back of the hand" is its back).

Contacts within one hand (a pinch) are not read: :func:`stated_contacts` is for sampling-time
guidance of contacts between the hands (:mod:`handx_gen.models.contact_guidance`), which moves
whole hands. A clause is read when it has a contact verb (touch, tap, poke, press, meet,
strike, stroke, pat, count, ...); in it the first two parts named are the pair, read as
between the hands when both name a side and the sides differ, or when neither names one (the
tool then the right hand's, the target the left's: "poke your palm with your index finger");
one side named leaves the other part on the same hand ("the right thumb tip touches the index
fingertip"), which is not read. A count ("five times", "twice", "3x") repeats the contact; counting
fingers with a finger of the other hand ("count to 3 on your left hand", "touch each fingertip
of your left hand") states one contact per finger counted, index finger first.

What it does not understand it leaves out: the result may state fewer contacts than the
prompt, never a contact the words do not name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from handx_gen.annotate.describe import NUMBER_WORDS
from handx_gen.hand.parts import FINGERTIP_PARTS, HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

__all__ = ['MAX_REPEATS', 'StatedContact', 'stated_contacts']

MAX_REPEATS = 6  # the most times one stated contact is repeated ("ten times" reads as 6)


class StatedContact(NamedTuple):
    """A contact between the hands that a prompt states (``a`` on the left hand)."""

    a: PartRef
    b: PartRef

    def to_json(self) -> str:
        return f'{self.a.to_json()}~{self.b.to_json()}'


_FINGER_WORDS = {'thumb': Finger.THUMB, 'index': Finger.INDEX, 'pointer': Finger.INDEX,
                 'forefinger': Finger.INDEX, 'middle': Finger.MIDDLE, 'ring': Finger.RING,
                 'little': Finger.LITTLE, 'pinky': Finger.LITTLE, 'pinkie': Finger.LITTLE}
_FINGER = '(?:' + '|'.join(_FINGER_WORDS) + ')'
_SIDE = r'(?:(?P<{0}>left|right)\s+)?'
_COUNT_WORDS = {word: n for n, word in NUMBER_WORDS.items()}
_NUMBER = r'(\d+|' + '|'.join(_COUNT_WORDS) + ')'

# A contact verb makes a clause a contact (any form: tap, taps, tapping, tapped).
_VERBS = re.compile(r'\b(touch|tap|poke|press|meet|met|strike|struck|stroke|pat|clap|rub|'
                    r'applau|namaste|pray|together|'
                    r'brush|contact|count|rest|stays? on|placed on|put|bump|hit|push)\w*')
# Mentions of parts, the longest forms first (one alternation, scanned left to right).
_MENTION = re.compile('|'.join([
    r'(?:the|your|its)\s+back\s+of\s+(?:the\s+|your\s+)?' + _SIDE.format('s1') + r'hand',
    r'(?:the\s+)?(?:palm|middle|centre|center)\s+of\s+(?:the\s+|your\s+)?'
    + _SIDE.format('s2') + r'hand',
    r'(?:the\s+)?tip\s+of\s+(?:the\s+|your\s+)?' + _SIDE.format('s3') + rf'(?P<f3>{_FINGER})'
    r'(?:\s+finger)?',
    _SIDE.format('s4') + rf'(?P<f4>{_FINGER})(?:\s+finger)?\s*(?:tip|fingertip)s?\b',
    _SIDE.format('s5') + rf'(?P<f5>{_FINGER})(?:\s+finger)?\b',
    _SIDE.format('s6') + r'(?P<palm>palm)s?\b',
    r'(?P<s7>left|right)\s+(?P<hand7>hand)\b',
]))
_BOTH = re.compile(r'(?:fingertips|fingers|tips)\s+of\s+(?:both|the\s+two)\s+hands'
                   r'|both\s+hands.\s*(?:fingertips|fingers)')
_PALMS = re.compile(r'\bpalms?\b.*\b(together|to\s+palm|against\s+each\s+other)'
                    r'|\bpalm\s+to\s+palm\b|\bclap|\bapplause|\bapplaud|\bpraying'
                    r'|\bpalms\s+(?:meet|strike|touch|come)|\bnamaste\b|\brub\w*\s+(?:your\s+|the\s+)?(?:hands|palms)')
_COUNTING = re.compile(r'\bcount\w*\b|\beach\s+(?:finger|fingertip)|\bone\s+by\s+one\b')
_COUNT_TO = re.compile(r'(?:count\w*\s+(?:to\s+|off\s+)?|up\s+to\s+)' + _NUMBER)
_REPEATS = re.compile(_NUMBER + r'\s*(?:times\b|x\b)|\b(twice|once)\b')
_CLAUSES = re.compile(r'[.;!?]|,\s*(?:and\s+)?then\b|\bthen\b|,\s*after\s+that\b|\bbefore\b'
                      r'|\bafter\s+that\b|\bwhile\b|\bas\s+well\s+as\b|\bas\b|\bat\s+the\s+same\s+time\b')
_COUNT_ORDER = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE, Finger.THUMB)


class _Mention(NamedTuple):
    side: HandSide | None
    part: HandPart
    hand_only: bool  # "the left hand" (a palm when tapped, or the hand whose fingers count)


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _COUNT_WORDS.get(word, 1)


def _mentions(clause: str) -> list[_Mention]:
    out = []
    for m in _MENTION.finditer(clause):
        groups = m.groupdict()
        side_word = next((groups[k] for k in groups if k.startswith('s') and groups[k]), None)
        side = None if side_word is None else HandSide[side_word.upper()]
        if m.group(0).split()[0] in ('the', 'your', 'its') and 'back' in m.group(0)[:10]:
            out.append(_Mention(side, HandPart.BACK, False))
        elif groups['s2'] is not None or re.match(r'(?:the\s+)?(?:palm|middle|centre|center)'
                                                  r'\s+of', m.group(0)):
            out.append(_Mention(side, HandPart.PALM, False))
        elif groups['palm']:
            out.append(_Mention(side, HandPart.PALM, False))
        elif groups['hand7']:
            out.append(_Mention(side, HandPart.PALM, True))
        else:
            word = groups['f3'] or groups['f4'] or groups['f5']
            out.append(_Mention(side, FINGERTIP_PARTS[_FINGER_WORDS[word]], False))
    return out


def _other(side: HandSide) -> HandSide:
    return HandSide.RIGHT if side is HandSide.LEFT else HandSide.LEFT


def _pair(a: PartRef, b: PartRef) -> StatedContact:
    return StatedContact(a, b) if a.side is HandSide.LEFT else StatedContact(b, a)


def _repeats(clause: str) -> int:
    m = _REPEATS.search(clause)
    if m is None:
        return 1
    if m.group(2):
        return 2 if m.group(2) == 'twice' else 1
    return max(1, min(MAX_REPEATS, _number(m.group(1))))


def _counting(clause: str, mentions: list[_Mention]) -> list[StatedContact]:
    """Counting the fingers of one hand with a finger of the other."""
    tools = [m for m in mentions if not m.hand_only and m.part is not HandPart.PALM]
    counted = [m for m in mentions if m.hand_only or m.part is HandPart.PALM]
    if not tools:
        return []
    tool = tools[-1]  # "count the fingers of your left hand with your right index"
    if counted and counted[0].side is not None:
        side = counted[0].side
    elif tool.side is not None:
        side = _other(tool.side)
    else:
        side = HandSide.LEFT
    tool_side = tool.side if tool.side is not None and tool.side is not side else _other(side)
    m = _COUNT_TO.search(clause)
    if m is not None:
        count = max(1, min(len(_COUNT_ORDER), _number(m.group(1))))
    else:  # "each finger" / "all the fingers": the thumb too; "count the fingers": four
        count = len(_COUNT_ORDER) if re.search(r'\b(?:each|every|all)\b', clause) else 4
    tool_ref = PartRef(tool_side, tool.part)
    return [_pair(PartRef(side, FINGERTIP_PARTS[f]), tool_ref) for f in _COUNT_ORDER[:count]]


def _both_hands(clause: str) -> list[StatedContact]:
    """'the index and middle fingertips of both hands meet'."""
    head = _BOTH.split(clause)[0]
    fingers = [_FINGER_WORDS[w] for w in re.findall(_FINGER, head)]
    if not fingers and re.search(r'\b(all|the)\s+(?:fingertips|fingers)', clause):
        fingers = list(Finger)
    return [StatedContact(PartRef(HandSide.LEFT, FINGERTIP_PARTS[f]),
                          PartRef(HandSide.RIGHT, FINGERTIP_PARTS[f]))
            for f in dict.fromkeys(fingers)]


def _clause_contacts(clause: str) -> list[StatedContact]:
    if not _VERBS.search(clause):
        return []
    if _BOTH.search(clause):
        return _both_hands(clause)
    mentions = _mentions(clause)
    if _COUNTING.search(clause) and 'times' not in clause:
        counted = _counting(clause, mentions)
        if counted:
            return counted
    parts = mentions
    if len(parts) < 2:
        if _PALMS.search(clause) and not any(m.part is not HandPart.PALM for m in parts):
            return [StatedContact(PartRef(HandSide.LEFT, HandPart.PALM),
                                  PartRef(HandSide.RIGHT, HandPart.PALM))] * _repeats(clause)
        return []
    first, second = parts[0], parts[1]
    if first.side is not None and second.side is not None:
        if first.side is second.side:
            return []  # within one hand: not read here
        sides = first.side, second.side
    elif first.side is not None or second.side is not None:
        return []  # one side named: the other part is the same hand's ('its', 'of the same hand')
    else:  # no side named: the target (palm, back, counted hand) left, the tool right
        target_first = first.part in (HandPart.PALM, HandPart.BACK) or first.hand_only
        sides = (HandSide.LEFT, HandSide.RIGHT) if target_first else \
            (HandSide.RIGHT, HandSide.LEFT)
    contact = _pair(PartRef(sides[0], first.part), PartRef(sides[1], second.part))
    return [contact] * _repeats(clause)


def stated_contacts(text: str) -> tuple[StatedContact, ...]:
    """The contacts between the hands that ``text`` states, in the order it states them,
    a contact stated ``n`` times listed ``n`` times (at most :data:`MAX_REPEATS`).

    See the module docstring for what is read; an empty tuple when the prompt states no
    contact between the hands (or none this reader understands).
    """
    text = ' '.join(str(text).lower().replace('-', ' ').split())
    text = re.sub(r'\bfinger\s+tips?\b', 'fingertip', text)
    out: list[StatedContact] = []
    for clause in _CLAUSES.split(text):
        out += _clause_contacts(clause)
    return tuple(out)

