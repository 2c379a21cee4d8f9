"""Quality check of the annotation: extracted features against a synthetic clip's plan.

The plan (:class:`~handx_gen.data.plan.ClipPlan`) is what the generator intended; the feature
record (:class:`~handx_gen.annotate.features.MotionFeatures`) is what the extractor measured
from the geometry alone. Two scores, overall and per motion type:

**Contacts, event level.** A detected :class:`~handx_gen.annotate.features.ContactEvent`
matches a :class:`~handx_gen.data.plan.PlannedContact` when

* their frame intervals overlap with temporal IoU (intersection over union of the half-open
  intervals) of at least ``CheckConfig.iou_threshold`` (0.5), and
* their parts agree, the pair taken unordered ((a, b) = (b, a)). Under the default rule,
  :attr:`PartMatch.FINGER`, a part agrees with another part of the same *family* on the same
  hand: a finger's tip and its shaft are one family (one per finger), the palm and the back
  one each. So a planned index fingertip contact detected as the index shaft counts (the
  surface proxy reports the segment nearest the other hand, which for a bent finger may be
  the middle phalanx), while one detected on the palm, another finger or the other hand does
  not. :attr:`PartMatch.EXACT` demands the very parts; the report gives both.

The plan is read with the extractor's specificity convention: while palms (or backs) touch
palm or back, the fingers pressed together with them are part of that broad contact, so a
planned between-hands entry that a planned broad entry covers for at least
``CheckConfig.broad_dominance`` of its frames is absorbed by it (:func:`absorb_dominated`).
Before matching, entries of the same part pair under the rule whose intervals overlap or abut
are merged into one (:func:`merge_contacts`), on both sides alike: a plan may list one touch
of two thumbs as tip-tip, tip-shaft and shaft-shaft entries where the extractor reports one
event, and under the family rule these are one contact. Matching is then one-to-one, greedy
by IoU (highest first). Matched pairs are true positives,
unmatched detections false positives, unmatched plan entries false negatives; precision =
TP / (TP + FP), recall = TP / (TP + FN), undefined (``None``) when the denominator is 0.

**Flexion direction, per finger.** For each :class:`~handx_gen.data.plan.PlannedFingerAction`
the finger's extracted flexion (the record's per-frame curve when it was kept, else the
piecewise-linear curve through its flexion events' start and end values) is read over the
planned interval ``[start, stop)``:

* ``BEND`` agrees when it rises by at least ``min_flexion_change_deg`` (5 deg of mean joint
  flexion; the extractor's own bend events start at 12 deg, so smaller planned bends are
  judged on the curve, not on events), ``EXTEND`` when it falls by as much;
* ``HOLD`` agrees when the curve stays within ``hold_max_range_deg`` (10 deg, max - min).

**Buckets.** A plan entry belongs to the motion type of the planned primitive it overlaps
most (``'transition'`` when it lies between primitives, e.g. the finger actions the builder
plans for a transition); a detection with no match to the primitive it overlaps most.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from handx_gen.annotate.features import ContactEvent, FingerFeatures, MotionFeatures
from handx_gen.data.plan import ClipPlan, FingerAction, PlannedContact, PlannedPrimitive
from handx_gen.errors import ConfigError, MotionFormatError, unknown_choice
from handx_gen.hand.parts import HandPart, PartRef

__all__ = [
    'OVERALL',
    'TRANSITION',
    'CheckConfig',
    'CheckReport',
    'ClipCheck',
    'ContactCounts',
    'ContactMatch',
    'ContactScope',
    'ContactSpan',
    'FlexionCounts',
    'FlexionVerdict',
    'PartMatch',
    'absorb_dominated',
    'check_clip',
    'check_corpus',
    'check_records',
    'flexion_curve',
    'match_contacts',
    'merge_contacts',
    'parts_match',
    'stated_contacts_found',
    'temporal_iou',
]

OVERALL = 'overall'
TRANSITION = 'transition'


class ContactScope(str, enum.Enum):
    """Which contacts are scored."""

    ALL = 'all'
    BETWEEN_HANDS = 'between_hands'
    SAME_HAND = 'same_hand'


class PartMatch(str, enum.Enum):
    """When a detected part counts as the planned part."""

    EXACT = 'exact'  # the same part of the same hand
    FINGER = 'finger'  # the same family on the same hand: a finger (tip or shaft), palm, back


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """Rules of the check (see the module docstring).

    Attributes:
        iou_threshold: 0.5: least temporal IoU of a matched contact.
        part_match: :attr:`PartMatch.FINGER`: the part rule of the headline scores.
        min_flexion_change_deg: 5 deg: least rise (fall) of a bend (extension).
        hold_max_range_deg: 10 deg: largest flexion range during a hold.
        broad_dominance: 0.5: a planned between-hands contact that is not itself broad
            (palm or back against palm or back) is absorbed by a planned broad contact that
            covers at least this fraction of its frames, as the extractor leaves such events
            out (``FeatureConfig.contact_dominance_overlap``); 0 disables it.
        scope: :attr:`ContactScope.ALL`: the contacts scored (planned and detected alike);
            the report also splits the counts into between-hands and same-hand contacts.
    """

    iou_threshold: float = 0.5
    part_match: PartMatch = PartMatch.FINGER
    min_flexion_change_deg: float = 5.0
    hold_max_range_deg: float = 10.0
    broad_dominance: float = 0.5
    scope: ContactScope = ContactScope.ALL

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError(f'iou_threshold must be in (0, 1], got {self.iou_threshold!r}')
        try:
            object.__setattr__(self, 'part_match', PartMatch(self.part_match))
        except ValueError:
            raise ConfigError(unknown_choice('part match rule', self.part_match,
                                             [p.value for p in PartMatch])) from None
        for name in ('min_flexion_change_deg', 'hold_max_range_deg'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f'{name} must be a positive number, got {value!r}')
        try:
            object.__setattr__(self, 'scope', ContactScope(self.scope))
        except ValueError:
            raise ConfigError(unknown_choice('contact scope', self.scope,
                                             [c.value for c in ContactScope])) from None
        if not 0.0 <= self.broad_dominance <= 1.0:
            raise ConfigError(f'broad_dominance must be in [0, 1], got '
                              f'{self.broad_dominance!r}')

    def to_dict(self) -> dict[str, Any]:
        return {'iou_threshold': self.iou_threshold, 'part_match': self.part_match.value,
                'min_flexion_change_deg': self.min_flexion_change_deg,
                'hold_max_range_deg': self.hold_max_range_deg,
                'broad_dominance': self.broad_dominance, 'scope': self.scope.value}


# ============================================================================== rules


def temporal_iou(a_start: int, a_stop: int, b_start: int, b_stop: int) -> float:
    """Intersection over union of two half-open frame intervals (0 when both are empty)."""
    inter = max(0, min(a_stop, b_stop) - max(a_start, b_start))
    union = max(0, a_stop - a_start) + max(0, b_stop - b_start) - inter
    return inter / union if union > 0 else 0.0


def _family(ref: PartRef) -> tuple[int, str]:
    finger = ref.part.finger
    return int(ref.side), (finger.name if finger is not None else ref.part.value)


def _same(planned: PartRef, detected: PartRef, rule: PartMatch) -> bool:
    if rule == PartMatch.EXACT:
        return planned == detected
    return _family(planned) == _family(detected)


def parts_match(a: tuple[PartRef, PartRef], b: tuple[PartRef, PartRef],
                rule: PartMatch = PartMatch.FINGER) -> bool:
    """Whether two unordered part pairs agree under ``rule``."""
    return (_same(a[0], b[0], rule) and _same(a[1], b[1], rule)) or \
        (_same(a[0], b[1], rule) and _same(a[1], b[0], rule))


class ContactSpan(NamedTuple):
    """A contact interval between two parts (a planned contact or a detected event)."""

    start: int
    stop: int
    a: PartRef
    b: PartRef


def _pair_key(a: PartRef, b: PartRef, rule: PartMatch) -> tuple[Any, ...]:
    key = (_family(a), _family(b)) if rule == PartMatch.FINGER else \
        ((int(a.side), a.part.value), (int(b.side), b.part.value))
    return tuple(sorted(key))


def merge_contacts(entries: Iterable[PlannedContact | ContactEvent | ContactSpan],
                   rule: PartMatch = PartMatch.FINGER) -> tuple[ContactSpan, ...]:
    """Join entries of the same part pair (under ``rule``) whose intervals overlap or abut.

    Under :attr:`PartMatch.FINGER` a plan that lists one touch of two fingers as several
    entries (tip-tip, tip-shaft, shaft-shaft) and an extractor that reports it as one event
    describe the same contact; both sides are merged the same way before matching. The
    merged span keeps the parts of its earliest entry.
    """
    groups: dict[tuple[Any, ...], list[ContactSpan]] = {}
    for e in entries:
        span = ContactSpan(int(e.start), int(e.stop), e.a, e.b)
        groups.setdefault(_pair_key(span.a, span.b, rule), []).append(span)
    merged: list[ContactSpan] = []
    for spans in groups.values():
        spans.sort(key=lambda c: (c.start, c.stop))
        current = spans[0]
        for span in spans[1:]:
            if span.start <= current.stop:
                current = current._replace(stop=max(current.stop, span.stop))
            else:
                merged.append(current)
                current = span
        merged.append(current)
    return tuple(sorted(merged, key=lambda c: (c.start, c.stop, c.a.to_json(), c.b.to_json())))


_BROAD = (HandPart.PALM, HandPart.BACK)


def _broad(span: ContactSpan) -> bool:
    return span.a.part in _BROAD and span.b.part in _BROAD


def absorb_dominated(planned: Iterable[PlannedContact | ContactSpan],
                     overlap: float = 0.5) -> tuple[ContactSpan, ...]:
    """Drop planned between-hands contacts that a broad planned contact dominates.

    The extractor reports one event per touch and, while whole palms (or backs) touch, leaves
    out the finger contacts pressed together with them (``detect_contacts``). The plan is read
    with the same convention: a between-hands entry that is not palm/back against palm/back
    is dropped when a broad entry covers at least ``overlap`` of its frames. Same-hand
    entries and broad entries are kept. ``overlap <= 0`` keeps everything.
    """
    spans = [ContactSpan(int(c.start), int(c.stop), c.a, c.b) for c in planned]
    if overlap <= 0:
        return tuple(spans)
    broad = [c for c in spans if _broad(c) and c.a.side != c.b.side]
    kept = []
    for c in spans:
        if c.a.side != c.b.side and not _broad(c) and c.stop > c.start:
            covered = np.zeros(c.stop - c.start, dtype=bool)
            for b in broad:
                covered[max(b.start, c.start) - c.start:max(0, min(b.stop, c.stop) - c.start)] \
                    = True
            if covered.mean() >= overlap:
                continue
        kept.append(c)
    return tuple(kept)


@dataclasses.dataclass(frozen=True)
class ContactMatch:
    """A planned contact matched to a detected one (indices into the two lists)."""

    planned: int
    detected: int
    iou: float


def match_contacts(planned: Sequence[PlannedContact | ContactSpan],
                   detected: Sequence[ContactEvent | ContactSpan],
                   config: CheckConfig | None = None,
                   rule: PartMatch | None = None) -> tuple[ContactMatch, ...]:
    """One-to-one matches, greedy by temporal IoU (highest first), ties by index.

    Args:
        planned: The plan's contacts.
        detected: The feature record's contact events.
        config: The rules (IoU threshold, part rule).
        rule: Overrides ``config.part_match``.
    """
    config = config or CheckConfig()
    rule = config.part_match if rule is None else rule
    candidates = []
    for i, p in enumerate(planned):
        for j, d in enumerate(detected):
            iou = temporal_iou(p.start, p.stop, d.start, d.stop)
            if iou >= config.iou_threshold and parts_match((p.a, p.b), (d.a, d.b), rule):
                candidates.append((-iou, i, j))
    candidates.sort()
    used_p: set[int] = set()
    used_d: set[int] = set()
    matches = []
    for neg_iou, i, j in candidates:
        if i in used_p or j in used_d:
            continue
        used_p.add(i)
        used_d.add(j)
        matches.append(ContactMatch(i, j, -neg_iou))
    return tuple(sorted(matches, key=lambda m: m.planned))


def stated_contacts_found(planned: Iterable[PlannedContact | ContactSpan],
                          detected: Iterable[ContactEvent | ContactSpan],
                          rule: PartMatch = PartMatch.FINGER,
                          broad_dominance: float = 0.5) -> tuple[tuple[ContactSpan, bool], ...]:
    """Whether each stated contact occurs at all in a motion, whenever it happens.

    For generated motion, where the timing is the model's choice: the stated contacts (a
    plan's, merged under ``rule`` after :func:`absorb_dominated`) each paired with whether some
    detected event joins the same two parts (under ``rule``) at any time.
    """
    stated = merge_contacts(absorb_dominated(planned, broad_dominance), rule)
    events = merge_contacts(detected, rule)
    return tuple((c, any(parts_match((c.a, c.b), (e.a, e.b), rule) for e in events))
                 for c in stated)


def flexion_curve(finger: FingerFeatures, num_frames: int) -> np.ndarray:
    """(T,) the finger's mean joint flexion per frame, degrees, from the record.

    The stored curve when the record kept one; otherwise linear between the start and end
    values of the finger's flexion events (which cover the clip).
    """
    if len(finger.flexion_deg) == num_frames:
        return np.asarray(finger.flexion_deg, dtype=np.float64)
    frames, values = [], []
    for event in sorted(finger.events, key=lambda e: e.start):
        frames += [event.start, max(event.start, event.stop - 1)]
        values += [event.start_deg, event.stop_deg]
    if not frames:
        return np.full(num_frames, finger.mean_deg)
    order = np.argsort(frames, kind='stable')
    return np.interp(np.arange(num_frames), np.asarray(frames, dtype=np.float64)[order],
                     np.asarray(values, dtype=np.float64)[order])


class FlexionVerdict(str, enum.Enum):
    AGREE = 'agree'
    DISAGREE = 'disagree'


def _judge(action: FingerAction, curve: np.ndarray, start: int, stop: int,
           config: CheckConfig) -> tuple[FlexionVerdict, float]:
    """The verdict and the measured change (rise, or range for a hold) over [start, stop)."""
    start = int(np.clip(start, 0, len(curve) - 1))
    last = int(np.clip(stop - 1, start, len(curve) - 1))
    window = curve[start:last + 1]
    if action == FingerAction.HOLD:
        size = float(window.max() - window.min())
        ok = size <= config.hold_max_range_deg
    else:
        size = float(curve[last] - curve[start])
        sign = 1.0 if action == FingerAction.BEND else -1.0
        ok = sign * size >= config.min_flexion_change_deg
    return (FlexionVerdict.AGREE if ok else FlexionVerdict.DISAGREE), size


# ============================================================================== counts


@dataclasses.dataclass(frozen=True)
class ContactCounts:
    """Event counts of one bucket, under the headline part rule and the exact one."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_exact: int = 0
    fp_exact: int = 0
    fn_exact: int = 0

    def __add__(self, other: ContactCounts) -> ContactCounts:
        return ContactCounts(*(a + b for a, b in zip(dataclasses.astuple(self),
                                                      dataclasses.astuple(other), strict=True)))

    @property
    def planned(self) -> int:
        return self.tp + self.fn

    @property
    def detected(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def precision_exact(self) -> float | None:
        return _ratio(self.tp_exact, self.tp_exact + self.fp_exact)

    @property
    def recall_exact(self) -> float | None:
        return _ratio(self.tp_exact, self.tp_exact + self.fn_exact)

    def to_dict(self) -> dict[str, Any]:
        return {'tp': self.tp, 'fp': self.fp, 'fn': self.fn, 'precision': self.precision,
                'recall': self.recall, 'f1': self.f1, 'tp_exact': self.tp_exact,
                'fp_exact': self.fp_exact, 'fn_exact': self.fn_exact,
                'precision_exact': self.precision_exact, 'recall_exact': self.recall_exact}


@dataclasses.dataclass(frozen=True)
class FlexionCounts:
    """Planned finger actions of one bucket and how many the features agree with."""

    total: int = 0
    agree: int = 0
    bend_total: int = 0
    bend_agree: int = 0
    extend_total: int = 0
    extend_agree: int = 0
    hold_total: int = 0
    hold_agree: int = 0

    def __add__(self, other: FlexionCounts) -> FlexionCounts:
        return FlexionCounts(*(a + b for a, b in zip(dataclasses.astuple(self),
                                                      dataclasses.astuple(other), strict=True)))

    @classmethod
    def one(cls, action: FingerAction, agree: bool) -> FlexionCounts:
        name = action.value
        return cls(1, int(agree), **{f'{name}_total': 1, f'{name}_agree': int(agree)})

    @property
    def agreement(self) -> float | None:
        return _ratio(self.agree, self.total)

    def of(self, action: FingerAction) -> float | None:
        """Agreement over the actions of one kind."""
        name = action.value
        return _ratio(getattr(self, f'{name}_agree'), getattr(self, f'{name}_total'))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), 'agreement': self.agreement,
                **{f'{a.value}_agreement': self.of(a) for a in FingerAction}}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def _bucket(start: int, stop: int, primitives: Sequence[PlannedPrimitive]) -> str:
    best, best_overlap = TRANSITION, 0
    for p in primitives:
        overlap = min(stop, p.stop) - max(start, p.start)
        if overlap > best_overlap:
            best, best_overlap = p.motion_type, overlap
    return best


# ============================================================================== one clip


@dataclasses.dataclass(frozen=True)
class ClipCheck:
    """The check of one clip: counts per bucket (motion type or ``'transition'``).

    Attributes:
        contacts: Contact counts per bucket.
        flexion: Finger-action counts per bucket.
        planned: The plan's contacts merged under the headline part rule.
        detected: The record's contact events merged the same way.
        matches: Matches under the headline rule, indices into ``planned`` and ``detected``.
        contact_kinds: Contact counts of between-hands and same-hand contacts
            (:attr:`ContactScope.BETWEEN_HANDS` and :attr:`ContactScope.SAME_HAND` values).
    """

    contacts: Mapping[str, ContactCounts]
    flexion: Mapping[str, FlexionCounts]
    contact_kinds: Mapping[str, ContactCounts] = dataclasses.field(default_factory=dict)
    planned: tuple[ContactSpan, ...] = ()
    detected: tuple[ContactSpan, ...] = ()
    matches: tuple[ContactMatch, ...] = ()

    @property
    def contact_total(self) -> ContactCounts:
        return sum(self.contacts.values(), ContactCounts())

    @property
    def flexion_total(self) -> FlexionCounts:
        return sum(self.flexion.values(), FlexionCounts())


def check_clip(plan: ClipPlan, features: MotionFeatures,
               config: CheckConfig | None = None) -> ClipCheck:
    """Score one clip's feature record against its plan (see the module docstring)."""
    config = config or CheckConfig()
    if plan.num_frames != features.num_frames:
        raise MotionFormatError(f'plan has {plan.num_frames} frames, features '
                                f'{features.num_frames}')
    prims = plan.primitives
    contacts: dict[str, ContactCounts] = {}
    kinds: dict[str, ContactCounts] = {}

    def add(key: str, span: ContactSpan, counts: ContactCounts) -> None:
        contacts[key] = contacts.get(key, ContactCounts()) + counts
        kind = (ContactScope.BETWEEN_HANDS if span.a.side != span.b.side
                else ContactScope.SAME_HAND).value
        kinds[kind] = kinds.get(kind, ContactCounts()) + counts

    headline: tuple[tuple[ContactSpan, ...], tuple[ContactSpan, ...],
                    tuple[ContactMatch, ...]] = ((), (), ())
    for rule, fields in ((config.part_match, ('tp', 'fp', 'fn')),
                         (PartMatch.EXACT, ('tp_exact', 'fp_exact', 'fn_exact'))):
        planned = _in_scope(merge_contacts(
            absorb_dominated(plan.contacts, config.broad_dominance), rule), config.scope)
        detected = _in_scope(merge_contacts(features.contacts, rule), config.scope)
        rule_matches = match_contacts(planned, detected, config, rule)
        if fields[0] == 'tp':
            headline = (planned, detected, rule_matches)
        hit_p = {m.planned for m in rule_matches}
        hit_d = {m.detected for m in rule_matches}
        for i, c in enumerate(planned):
            key = _bucket(c.start, c.stop, prims)
            add(key, c, ContactCounts(**{fields[0 if i in hit_p else 2]: 1}))
        for j, d in enumerate(detected):
            if j not in hit_d:
                add(_bucket(d.start, d.stop, prims), d, ContactCounts(**{fields[1]: 1}))

    flexion: dict[str, FlexionCounts] = {}
    curves: dict[tuple[int, int], np.ndarray] = {}
    for action in plan.finger_actions:
        key = (int(action.side), int(action.finger))
        if key not in curves:
            curves[key] = flexion_curve(features.hand(action.side).finger(action.finger),
                                        features.num_frames)
        verdict, _ = _judge(action.action, curves[key], action.start, action.stop, config)
        bucket = _bucket(action.start, action.stop, prims)
        flexion[bucket] = flexion.get(bucket, FlexionCounts()) + FlexionCounts.one(
            action.action, verdict == FlexionVerdict.AGREE)
    return ClipCheck(contacts, flexion, kinds, *headline)


def _in_scope(spans: Sequence[ContactSpan], scope: ContactScope) -> tuple[ContactSpan, ...]:
    if scope == ContactScope.ALL:
        return tuple(spans)
    between = scope == ContactScope.BETWEEN_HANDS
    return tuple(c for c in spans if (c.a.side != c.b.side) == between)


# ============================================================================== reports


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """Scores over many clips, per motion type (and ``'transition'``) and overall."""

    clips: int
    contacts: Mapping[str, ContactCounts]
    flexion: Mapping[str, FlexionCounts]
    config: CheckConfig = CheckConfig()
    skipped: tuple[str, ...] = ()  # files without a plan or features, with the reason
    contact_kinds: Mapping[str, ContactCounts] = dataclasses.field(default_factory=dict)

    @property
    def contact_overall(self) -> ContactCounts:
        return sum(self.contacts.values(), ContactCounts())

    @property
    def flexion_overall(self) -> FlexionCounts:
        return sum(self.flexion.values(), FlexionCounts())

    def to_dict(self) -> dict[str, Any]:
        keys = sorted(set(self.contacts) | set(self.flexion))
        return {
            'clips': self.clips, 'config': self.config.to_dict(),
            OVERALL: {'contacts': self.contact_overall.to_dict(),
                      'flexion': self.flexion_overall.to_dict()},
            'contact_kinds': {k: v.to_dict() for k, v in sorted(self.contact_kinds.items())},
            'motion_types': {k: {'contacts': self.contacts.get(k, ContactCounts()).to_dict(),
                                 'flexion': self.flexion.get(k, FlexionCounts()).to_dict()}
                             for k in keys},
            'skipped': list(self.skipped),
        }

    def to_markdown(self) -> str:
        """The scores as a Markdown table, one row per motion type, overall last."""
        rule = self.config.part_match.value
        lines = [
            f'Annotation check: {self.clips} clips; contacts matched at temporal IoU >= '
            f'{self.config.iou_threshold:g}, parts rule {rule!r} (exact parts in brackets).',
            '',
            '| motion type | planned contacts | detected | precision | recall | '
            'flexion actions | agreement | bend | extend | hold |',
            '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ]
        keys = sorted(set(self.contacts) | set(self.flexion), key=lambda k: (k == TRANSITION,
                                                                             k))
        rows = [(k, self.contacts.get(k, ContactCounts()), self.flexion.get(k, FlexionCounts()))
                for k in keys]
        rows.append((f'**{OVERALL}**', self.contact_overall, self.flexion_overall))
        for kind in ContactScope:
            if kind.value in self.contact_kinds:
                rows.append((f'{OVERALL}, {kind.value.replace("_", " ")} contacts',
                             self.contact_kinds[kind.value], FlexionCounts()))
        for name, c, f in rows:
            lines.append(
                f'| {name} | {c.planned} | {c.detected} | '
                f'{_pct(c.precision)} ({_pct(c.precision_exact)}) | '
                f'{_pct(c.recall)} ({_pct(c.recall_exact)}) | {f.total} | '
                f'{_pct(f.agreement)} | {_pct(f.of(FingerAction.BEND))} | '
                f'{_pct(f.of(FingerAction.EXTEND))} | {_pct(f.of(FingerAction.HOLD))} |')
        if self.skipped:
            lines += ['', f'skipped {len(self.skipped)} file(s):']
            lines += [f'- {s}' for s in self.skipped]
        return '\n'.join(lines)


def _pct(value: float | None) -> str:
    return '-' if value is None else f'{value:.1%}'


def check_records(records: Iterable[tuple[ClipPlan, MotionFeatures]],
                  config: CheckConfig | None = None) -> CheckReport:
    """Sum the checks of ``(plan, features)`` pairs."""
    config = config or CheckConfig()
    contacts: dict[str, ContactCounts] = {}
    kinds: dict[str, ContactCounts] = {}
    flexion: dict[str, FlexionCounts] = {}
    clips = 0
    for plan, features in records:
        result = check_clip(plan, features, config)
        clips += 1
        for key, counts in result.contacts.items():
            contacts[key] = contacts.get(key, ContactCounts()) + counts
        for key, counts in result.contact_kinds.items():
            kinds[key] = kinds.get(key, ContactCounts()) + counts
        for key, fcounts in result.flexion.items():
            flexion[key] = flexion.get(key, FlexionCounts()) + fcounts
    return CheckReport(clips, contacts, flexion, config, contact_kinds=kinds)


def check_corpus(corpus_dir: str | Path, config: CheckConfig | None = None, *,
                 split: str | None = None) -> CheckReport:
    """Check every clip of a corpus written by the synthetic builder.

    Reads ``index.json`` and each clip's annotation (``'plan'`` and ``'features'``, as
    written by :func:`~handx_gen.data.synthetic.build_corpus` with
    :func:`~handx_gen.annotate.pipeline.annotate_synthetic`), one file at a time. Clips whose
    annotation lacks either entry are skipped and listed in the report.

    Args:
        corpus_dir: The corpus folder.
        config: The rules.
        split: Only this split (``'train'``, ``'val'``, ``'test'``).

    Raises:
        SynthesisError: No readable corpus index in ``corpus_dir``.
        MotionFormatError: A clip file or its plan or feature record is unreadable.
    """
    from handx_gen.data.synthetic import iter_clips

    config = config or CheckConfig()
    skipped: list[str] = []

    def records() -> Iterable[tuple[ClipPlan, MotionFeatures]]:
        for row, motion in iter_clips(corpus_dir, split):
            annotation = motion.annotation or {}
            missing = [k for k in ('plan', 'features') if k not in annotation]
            if missing:
                skipped.append(f'{row.file}: no {" or ".join(missing)} in the annotation')
                continue
            try:
                plan = ClipPlan.from_dict(annotation['plan'])
            except (KeyError, TypeError, ValueError) as exc:
                raise MotionFormatError(f'{row.file}: unreadable plan ({exc!r})') from exc
            yield plan, MotionFeatures.from_dict(annotation['features'])

    report = check_records(records(), config)
    return dataclasses.replace(report, skipped=tuple(skipped))
