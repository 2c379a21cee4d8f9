"""Metrics of generated motion: the text-to-motion set (Guo et al. 2022) on evaluator
embeddings, and contact-focused, articulation, coordination and plausibility metrics on the
structured features of :mod:`handx_gen.annotate.features`.

Embedding metrics take plain arrays, so they are checked by hand on tiny inputs:

* :func:`frechet_distance`: FID between two sets of embeddings (mean and covariance).
* :func:`r_precision`: for each motion, its text among ``batch_size - 1`` others of a random
  batch, ranked by Euclidean distance; the share whose own text ranks within the top 1/2/3.
* :func:`matching_distance` (MM-Dist): the mean distance of a motion to its own text.
* :func:`diversity`: the mean distance between random pairs of motions.
* :func:`multimodality`: the mean distance between pairs of motions made for the same text.
* :func:`mean_ci`: the mean over repeated runs with its 95% confidence interval.

Feature metrics compare what a clip does with what was *stated*: a :class:`Statement` holds
the contacts, finger actions, spread, pinches and bimanual pattern of a reference, read from a
synthesis plan (:meth:`Statement.from_plan`) or measured on a reference clip
(:meth:`Statement.from_features`, for real data). Parts match per finger (tip or shaft), palm
and back, as :func:`handx_gen.annotate.check.stated_contacts_found` does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from handx_gen.annotate.check import PartMatch, absorb_dominated, merge_contacts, parts_match
from handx_gen.annotate.features import Coordination, MotionFeatures, SpreadState
from handx_gen.data.plan import ClipPlan, FingerAction
from handx_gen.errors import HandxError
from handx_gen.hand.topology import Finger, HandSide

__all__ = [
    'ContactScore',
    'EvalError',
    'Plausibility',
    'Statement',
    'articulation_score',
    'contact_score',
    'coordination_realised',
    'diversity',
    'frechet_distance',
    'interpenetration',
    'matching_distance',
    'mean_ci',
    'multimodality',
    'palm_frame_tips',
    'plausibility',
    'r_precision',
]

# Frames of overlap deeper than this count as interpenetration (the quality filter's limit:
# touching hand proxies overlap by a few millimetres).
PENETRATION_TOLERANCE_M = 0.008


class EvalError(HandxError):
    """Bad input to an evaluation: shapes, too few samples, a directory without clips."""


# ============================================================================ embeddings


def _matrix(name: str, x: Any, min_rows: int = 1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        raise EvalError(f'{name} must be (N >= {min_rows}, D) embeddings, got shape {x.shape}')
    if not np.isfinite(x).all():
        raise EvalError(f'{name} holds NaN or infinite values')
    return x


def frechet_distance(a: Any, b: Any) -> float:
    """Fréchet distance of Gaussians fitted to two embedding sets (N, D) and (M, D):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    Raises:
        EvalError: Fewer than 2 rows in a set, different widths, or non-finite values.
    """
    a, b = _matrix('a', a, 2), _matrix('b', b, 2)
    if a.shape[1] != b.shape[1]:
        raise EvalError(f'embedding widths differ: {a.shape[1]} and {b.shape[1]}')
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr((S_a S_b)^(1/2)) = tr((R S_b R)^(1/2)) with R = S_a^(1/2): symmetric, so both roots
    # come from eigendecompositions (stable for the rank-deficient covariances of few clips)
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                  - 2.0 * cross)
    return max(value, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances."""
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def r_precision(motion: Any, text: Any, *, top_k: int = 3, batch_size: int = 32,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """R-precision top-1..``top_k``: row ``i`` of ``motion`` belongs with row ``i`` of
    ``text``. The rows are shuffled (``rng``; none keeps their order) and cut into batches of
    ``batch_size`` (a last, smaller batch is dropped); in each batch every motion ranks the
    batch's texts by distance.

    Returns:
        (top_k,) share of motions whose own text is within the first 1, 2, ... ``top_k``.

    Raises:
        EvalError: Mismatched rows, or fewer rows than one batch.
    """
    motion, text = _matrix('motion', motion), _matrix('text', text)
    if motion.shape != text.shape:
        raise EvalError(f'motion {motion.shape} and text {text.shape} embeddings differ')
    if motion.shape[0] < batch_size:
        raise EvalError(f'R-precision needs at least one batch of {batch_size} pairs, got '
                        f'{motion.shape[0]}')
    order = rng.permutation(motion.shape[0]) if rng is not None else np.arange(len(motion))
    hits = np.zeros(top_k)
    count = 0
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size]
        dist = _distances(motion[idx], text[idx])  # (B, B)
        rank = (dist < np.diag(dist)[:, None]).sum(1)  # texts strictly closer than its own
        hits += (rank[:, None] < np.arange(1, top_k + 1)[None]).sum(0)
        count += batch_size
    return hits / count


def matching_distance(motion: Any, text: Any) -> float:
    """MM-Dist: the mean distance between each motion and its own text (row ``i`` with
    row ``i``)."""
    motion, text = _matrix('motion', motion), _matrix('text', text)
    if motion.shape != text.shape:
        raise EvalError(f'motion {motion.shape} and text {text.shape} embeddings differ')
    return float(np.linalg.norm(motion - text, axis=1).mean())


def diversity(x: Any, pairs: int = 300, rng: np.random.Generator | None = None) -> float:
    """Mean distance between ``pairs`` random pairs of distinct rows (fewer rows than
    ``pairs``: every row once against another)."""
    x = _matrix('embeddings', x, 2)
    rng = rng or np.random.default_rng(0)
    n = len(x)
    pairs = min(pairs, n)
    first = rng.choice(n, pairs, replace=False)
    second = (first + rng.integers(1, n, pairs)) % n  # never the same row
    return float(np.linalg.norm(x[first] - x[second], axis=1).mean())


def multimodality(groups: Any, pairs: int = 10, rng: np.random.Generator | None = None
                  ) -> float:
    """Mean distance between ``pairs`` random pairs of motions generated for one text,
    averaged over texts. ``groups`` is (texts, samples per text, D) with 2 or more samples."""
    groups = np.asarray(groups, dtype=np.float64)
    if groups.ndim != 3 or groups.shape[1] < 2 or not np.isfinite(groups).all():
        raise EvalError(f'multimodality needs (texts, samples >= 2, D) finite embeddings, '
                        f'got shape {groups.shape}')
    rng = rng or np.random.default_rng(0)
    samples = groups.shape[1]
    first = rng.integers(0, samples, (groups.shape[0], pairs))
    second = (first + rng.integers(1, samples, first.shape)) % samples
    rows = np.arange(groups.shape[0])[:, None]
    return float(np.linalg.norm(groups[rows, first] - groups[rows, second], axis=-1).mean())


def mean_ci(values: Iterable[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% confidence interval) over repeated runs:
    ``1.96 * std / sqrt(n)``, as text-to-motion work reports it; 0 for a single run.
    Non-finite values (a metric undefined in a run) are left out; (nan, nan) when none is
    left."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if arr.size == 0:
        return (math.nan, math.nan)
    half = 1.96 * arr.std() / math.sqrt(arr.size) if arr.size > 1 else 0.0
    return (float(arr.mean()), float(half))


# ============================================================================ statements


@dataclasses.dataclass(frozen=True)
class Statement:
    """What a reference says a clip does.

    Attributes:
        contacts: Contacts (merged per part family), in time order of onset.
        finger_actions: ``(side, finger, action)`` bends and extensions.
        spread: The hands whose fingers fan out.
        coordination: The bimanual pattern (``None``: not stated).
        fps: Frame rate of the frame indices.
    """

    contacts: tuple[Any, ...] = ()  # ContactSpan
    finger_actions: tuple[tuple[HandSide, Finger, FingerAction], ...] = ()
    spread: tuple[HandSide, ...] = ()
    coordination: Coordination | None = None
    fps: float = 30.0

    @classmethod
    def from_plan(cls, plan: ClipPlan, features: MotionFeatures | None = None) -> Statement:
        """The synthesis plan's contacts and bends/extensions; spread and the bimanual
        pattern, which a plan does not hold, from ``features`` of the reference clip when
        given."""
        measured = cls.from_features(features) if features is not None else cls()
        actions = _unique((a.side, a.finger, a.action) for a in plan.finger_actions
                          if a.action is not FingerAction.HOLD)
        return cls(_stated(plan.contacts), actions, measured.spread, measured.coordination,
                   plan.fps)

    @classmethod
    def from_features(cls, features: MotionFeatures | None) -> Statement:
        """What a reference clip is measured to do (contacts, bends/extensions, spread, the
        dominant bimanual pattern unless the hands are still)."""
        if features is None:
            return cls()
        actions = _unique((e.side, e.finger, e.action) for e in features.flexion_events
                          if e.action is not FingerAction.HOLD)
        spread = tuple(h.side for h in features.hands
                       if any(s.label is SpreadState.SPREAD for s in h.spread))
        pattern = None if features.coordination is Coordination.STILL else \
            features.coordination
        return cls(_stated(features.contacts), actions, spread, pattern, features.fps)


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def _stated(contacts: Sequence[Any]) -> tuple[Any, ...]:
    """Contacts merged per part family, broad palm/back contacts absorbing the ones they
    cover, in onset order."""
    return merge_contacts(absorb_dominated(contacts), PartMatch.FINGER)


# ============================================================================ contacts


@dataclasses.dataclass(frozen=True)
class ContactScore:
    """How the contacts of a clip meet a statement.

    Attributes:
        stated: Contacts stated.
        detected: Contacts in the clip (merged per part family, each touch once).
        found: Stated contacts that occur in the clip (at any time).
        correct: Detected contacts that were stated.
        order_pairs: Pairs of found contacts with distinct stated onsets.
        order_correct: Of those, pairs in the stated order.
        timing_error_s: Mean |onset| and |offset| difference of found contacts, seconds
            (``None`` when none is found).
    """

    stated: int
    detected: int
    found: int
    correct: int
    order_pairs: int
    order_correct: int
    timing_error_s: float | None

    @property
    def precision(self) -> float | None:
        return self.correct / self.detected if self.detected else None

    @property
    def recall(self) -> float | None:
        return self.found / self.stated if self.stated else None

    @property
    def all_found(self) -> bool:
        return self.found == self.stated


def contact_score(statement: Statement, features: MotionFeatures) -> ContactScore:
    """Precision and recall of the stated contacts (parts per finger, palm and back), their
    order, and the timing error of each found contact against its first match."""
    rule = PartMatch.FINGER
    detected = merge_contacts(features.contacts, rule)
    stated = statement.contacts
    onsets: list[tuple[int, int]] = []  # (stated onset, detected onset) of found contacts
    errors: list[float] = []
    for c in stated:
        matches = [e for e in detected if parts_match((c.a, c.b), (e.a, e.b), rule)]
        if matches:
            best = min(matches, key=lambda e: abs(e.start - c.start))
            onsets.append((c.start, best.start))
            errors.append((abs(best.start - c.start) / statement.fps
                           + abs(best.stop - c.stop) / statement.fps) / 2)
    correct = sum(any(parts_match((e.a, e.b), (c.a, c.b), rule) for c in stated)
                  for e in detected)
    pairs = right = 0
    for i in range(len(onsets)):
        for j in range(i + 1, len(onsets)):
            if onsets[i][0] == onsets[j][0]:
                continue
            pairs += 1
            right += (onsets[i][0] < onsets[j][0]) == (onsets[i][1] < onsets[j][1])
    return ContactScore(len(stated), len(detected), len(onsets), int(correct), pairs, right,
                        float(np.mean(errors)) if errors else None)


def interpenetration(keypoints: Any, hand_length_m: float | None = None,
                     tolerance_m: float = PENETRATION_TOLERANCE_M) -> tuple[float, float]:
    """(mean depth over the frames that interpenetrate beyond ``tolerance_m``, in metres
    (0 when none does), share of such frames) between the two hands' surface proxies.

    ``keypoints`` is (T, 2, 21, 3)."""
    from handx_gen.annotate.surface import hand_surface, inter_hand_penetration

    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 4 or keypoints.shape[1:] != (2, 21, 3):
        raise EvalError(f'keypoints must be (T, 2, 21, 3), got {keypoints.shape}')
    extra = {} if hand_length_m is None else {'hand_length_m': hand_length_m}
    surfaces = [hand_surface(keypoints[:, side], side, **extra) for side in HandSide]
    depth = inter_hand_penetration(*surfaces)  # (T,)
    deep = depth > tolerance_m
    return (float(depth[deep].mean()) if deep.any() else 0.0, float(deep.mean()))


def palm_frame_tips(keypoints: Any) -> np.ndarray:
    """(T, 5, 3) fingertips of one hand's (T, 21, 3) keypoints in the palm's frame (x: wrist
    to middle base, y: little base to index base, made orthogonal; origin at the wrist): the
    fingers' own motion, whatever the wrist does."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (21, 3):
        raise EvalError(f'keypoints must be (T, 21, 3), got {kp.shape}')
    x = kp[:, 9] - kp[:, 0]
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = kp[:, 5] - kp[:, 17]
    y -= (y * x).sum(-1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    rotation = np.stack([x, y, np.cross(x, y)], axis=-1)  # (T, 3, 3) palm axes as columns
    return np.einsum('tji,tkj->tki', rotation, kp[:, [4, 8, 12, 16, 20]] - kp[:, :1])


# ============================================================================ articulation


def articulation_score(statement: Statement, features: MotionFeatures) -> tuple[int, int]:
    """(realised, stated) finger actions: each stated bend or extension of a finger occurs in
    the clip (at any time), each stated spread hand spreads, and each stated thumb pinch (a
    same-hand contact of the thumb) occurs."""
    done = {(e.side, e.finger, e.action) for e in features.flexion_events}
    realised = sum(action in done for action in statement.finger_actions)
    spread = {h.side for h in features.hands
              if any(s.label is SpreadState.SPREAD for s in h.spread)}
    realised += sum(side in spread for side in statement.spread)
    pinches = [c for c in statement.contacts if c.a.side == c.b.side]
    if pinches:
        rule = PartMatch.FINGER
        detected = merge_contacts(features.contacts, rule)
        realised += sum(any(parts_match((c.a, c.b), (e.a, e.b), rule) for e in detected)
                        for c in pinches)
    return realised, len(statement.finger_actions) + len(statement.spread) + len(pinches)


def coordination_realised(statement: Statement, features: MotionFeatures) -> bool | None:
    """Whether the clip's dominant bimanual pattern is the stated one (``None`` when none is
    stated). Mirrored and together motions along y/z are the same thing (the extractor
    reports them as together), so either satisfies the other."""
    if statement.coordination is None:
        return None
    same = {Coordination.TOGETHER, Coordination.MIRRORED}
    got = features.coordination
    return got is statement.coordination or (got in same and statement.coordination in same)


# ============================================================================ plausibility


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """Physical plausibility of one clip.

    Attributes:
        limit_violation_rate: Share of joint-frames outside the anatomical joint ranges by
            more than 5 degrees.
        limit_violation_deg: Mean excess of the violating joint-frames, degrees (0 if none).
        jitter_m_s3: Mean jerk magnitude of the 42 keypoints, m/s^3.
        bone_length_cv: Mean over the 40 bones of std/mean of the bone's length over the clip
            (0 for rigid bones).
    """

    limit_violation_rate: float
    limit_violation_deg: float
    jitter_m_s3: float
    bone_length_cv: float


def plausibility(motion: Any, tolerance_deg: float = 5.0) -> Plausibility:
    """Joint-limit violations (from the MANO pose), jitter and bone-length constancy (from the
    keypoints) of a :class:`~handx_gen.motion.container.BimanualMotion`."""
    from handx_gen.hand.limits import limit_violation
    from handx_gen.hand.skeleton import default_skeleton
    from handx_gen.hand.topology import bone_lengths

    excess = np.stack([np.degrees(limit_violation(motion.hand_pose[:, side],
                                                  default_skeleton(side)))
                       for side in HandSide], 1)  # (T, 2, 15)
    bad = excess > tolerance_deg
    keypoints = np.asarray(motion.keypoints, dtype=np.float64)
    if keypoints.shape[0] >= 4:
        jerk = np.diff(keypoints, n=3, axis=0) * motion.fps ** 3
        jitter = float(np.linalg.norm(jerk, axis=-1).mean())
    else:
        jitter = 0.0
    length = bone_lengths(keypoints)  # (T, 2, 20)
    cv = length.std(0) / np.maximum(length.mean(0), 1e-9)  # (2, 20)
    return Plausibility(float(bad.mean()), float(excess[bad].mean()) if bad.any() else 0.0,
                        jitter, float(cv.mean()))
