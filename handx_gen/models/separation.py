"""Hand separation: generated hands that pass into each other, moved apart until they touch.

Both generation models now and then put one hand into the other: a finger stroking the back
of the other hand sinks into it, palms rubbing or rolling over each other overlap by one to
two centimetres. Hands do not do that, and a robot asked to follow such a clip drives its two
hands into each other. :func:`separate_hands` moves the generated wrists apart where the two
hands' surface proxies (:mod:`~handx_gen.annotate.surface`) overlap deeper than
:attr:`SeparationConfig.max_depth_m` (3 mm: less than the 5 mm touch gap of the contact check,
so a touch stays a touch and the annotation still sees it):

1. Every pair of primitives (a finger segment, the palm, the back) of the two hands that
   overlaps deeper than the allowed depth at a frame asks for a move of one hand against the
   other along the line between their cores
   (:func:`~handx_gen.annotate.surface.inter_hand_overlaps`), by the excess and
   :attr:`SeparationConfig.margin_m` more: ``u . (o_b(t) - o_a(t)) >= excess``. Per frame,
   the smallest relative move that meets all of its pairs' requests (Hildreth's method) is
   the frame's request. A frame whose pairs ask for opposite moves, or for more than
   :attr:`SeparationConfig.max_shift_m`, is left as it is.
2. The wrists' added displacements ``o_a``, ``o_b`` (T, 3) are the smallest and smoothest that
   meet the frames' requests, by jerk-penalised least squares as in
   :mod:`~handx_gen.models.smoothing`::

       minimise   sum_h sum_t |o_h(t)|^2 + w |Delta^3 o_h|^2
       subject to the requests of step 1,  o_h(t) = 0 where hand h is given

   solved with the requests as an active set (a request met without being imposed is left
   out). Both hands share the move where both are free (the smallest displacement does that),
   a hand given at a frame is not moved there, and frames where both are given are not
   touched. ``w`` is :attr:`SeparationConfig.spread_s` in frames to the sixth power, so a move
   eases in and out over about that long; where a hand's added displacement would still change
   by more than :attr:`SeparationConfig.max_step_m` between two frames, or a moved wrist step
   further than :attr:`SeparationConfig.max_wrist_step_m` (1 cm, the smoothing's bound; or
   than the clip's own step where that was further), ``w`` is raised (four times, up to
   :attr:`SeparationConfig.max_spread_rounds` times) until it does not.
3. The overlaps are measured again on the moved clip and steps 1-2 repeated
   (:attr:`SeparationConfig.rounds` in all; a frame asking again replaces its request), as a
   move is linear only while the primitives' cores do not cross. A round whose move would
   break the step bound or exceed :attr:`SeparationConfig.max_shift_m` is not taken.

Only the wrists move (translation of the whole hand), as in contact completion
(:mod:`~handx_gen.models.contact_guidance`): the finger joints are the model's. What a wrist
shift cannot undo it leaves (:attr:`Separation.frames_left`): fingers interlaced through the
other hand's fingers, where one finger asks for a move one way and its neighbour the opposite
way, and a fingertip sunk right through the other hand (the cores cross, the depth saturates
and the direction out is not known from the proxies).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from handx_gen.annotate.surface import hand_surface, inter_hand_overlaps
from handx_gen.config import check_integers, check_positive
from handx_gen.errors import ConfigError
from handx_gen.hand.topology import HandSide
from handx_gen.motion.container import BimanualMotion

__all__ = ['Separation', 'SeparationConfig', 'separate_hands']


@dataclasses.dataclass(frozen=True)
class SeparationConfig:
    """Settings of :func:`separate_hands` (see the module docstring)."""

    max_depth_m: float = 0.003  # overlap left as it is (a touch: the touch gap is 5 mm)
    margin_m: float = 0.0005  # a separated pair is moved this much beyond the allowed depth
    max_shift_m: float = 0.015  # a frame asking the hands to move further apart is left
    spread_s: float = 0.1  # a move eases in and out over about this long (and no shorter)
    max_step_m: float = 0.005  # most a hand's added displacement changes per frame
    max_wrist_step_m: float = 0.01  # no moved wrist steps further per frame (unless it did)
    max_spread_rounds: int = 6  # times the easing may be lengthened to keep max_step_m
    rounds: int = 3  # passes: measure the overlaps, move the hands

    def __post_init__(self) -> None:
        check_positive(self, 'separation', ('max_depth_m', 'max_shift_m', 'spread_s',
                                            'max_step_m', 'max_wrist_step_m'))
        margin = self.margin_m
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
                or not math.isfinite(margin) or margin < 0:
            raise ConfigError(f'separation margin_m must be a number >= 0, got {margin!r}')
        check_integers(self, 'separation', (('rounds', 1), ('max_spread_rounds', 0)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Separation(NamedTuple):
    """What :func:`separate_hands` did.

    Attributes:
        motion: The clip with the hands moved apart (the input itself when nothing moved).
        frames_before: Frames whose hands overlapped deeper than the allowed depth (and
            :attr:`SeparationConfig.margin_m`) before.
        frames_left: Such frames after.
        max_depth_before_m: The deepest overlap before, metres.
        max_depth_after_m: The deepest overlap after, metres.
        max_shift_m: The largest displacement added to a wrist, metres.
        max_step_m: The largest change of an added displacement between two frames, metres.
    """

    motion: BimanualMotion
    frames_before: int
    frames_left: int
    max_depth_before_m: float
    max_depth_after_m: float
    max_shift_m: float
    max_step_m: float

    def to_dict(self) -> dict[str, Any]:
        return {'frames_before': self.frames_before, 'frames_left': self.frames_left,
                'max_depth_before_m': round(self.max_depth_before_m, 4),
                'max_depth_after_m': round(self.max_depth_after_m, 4),
                'max_shift_m': round(self.max_shift_m, 4),
                'max_step_m': round(self.max_step_m, 4)}


class _Requests(NamedTuple):
    """Separation requests: frame (R,), unit direction from hand 0 to hand 1 (R, 3), the gap
    each asks to open (R,)."""

    frame: np.ndarray
    direction: np.ndarray
    excess: np.ndarray


def _overlaps(keypoints: np.ndarray, depth: float) -> tuple[np.ndarray, _Requests]:
    """(T,) deepest overlap per frame of (T, 2, 21, 3) keypoints, and the requests of the
    primitive pairs overlapping deeper than ``depth``."""
    surfaces = [hand_surface(keypoints[:, side], side) for side in HandSide]
    signed, direction = inter_hand_overlaps(*surfaces)  # (T, 17, 17), (T, 17, 17, 3)
    deepest = np.maximum(-signed.min(axis=(1, 2)), 0.0)
    frame, row, col = np.nonzero(-signed > depth)
    return deepest, _Requests(frame, direction[frame, row, col],
                              -signed[frame, row, col] - depth)


def _frame_moves(requests: _Requests, margin: float, max_shift: float, sweeps: int = 60
                 ) -> tuple[_Requests, np.ndarray]:
    """One request per frame: the smallest relative move ``v`` of the hands that meets all of
    the frame's pair requests (each with ``margin`` more), as direction and length; and the
    frames left out, whose pairs ask for more than ``max_shift`` or for opposite moves.

    The smallest move is found by Hildreth's method (coordinate ascent on the multipliers of
    ``min |v|^2 subject to u_r . v >= e_r``), all frames at once.
    """
    if not len(requests.frame):
        return requests, np.zeros(0, dtype=int)
    frames, slot = np.unique(requests.frame, return_inverse=True)
    slot = slot.reshape(-1)
    order = np.argsort(slot, kind='stable')
    first = np.searchsorted(slot[order], np.arange(len(frames)))
    rank = np.empty(len(slot), dtype=int)
    rank[order] = np.arange(len(slot)) - first[slot[order]]  # position within its frame
    width = int(rank.max()) + 1 if len(slot) else 0
    u = np.zeros((len(frames), width, 3))
    e = np.full((len(frames), width), -np.inf)
    u[slot, rank] = requests.direction
    e[slot, rank] = requests.excess + margin
    v = np.zeros((len(frames), 3))
    multiplier = np.zeros((len(frames), width))
    for _ in range(sweeps):
        for r in range(width):
            short = e[:, r] - np.einsum('fk,fk->f', u[:, r], v)
            new = np.maximum(0.0, multiplier[:, r] + np.where(np.isfinite(short), short, 0.0))
            v += (new - multiplier[:, r])[:, None] * u[:, r]
            multiplier[:, r] = new
    length = np.linalg.norm(v, axis=-1)
    unmet = (e - np.einsum('frk,fk->fr', u, v)).max(axis=1) > 0.1 * margin + 1e-4
    keep = (length <= max_shift) & ~unmet & (length > 0)
    direction = v[keep] / length[keep, None]
    return _Requests(frames[keep], direction, length[keep]), frames[~keep]


def _difference_matrix(num_frames: int, order: int) -> np.ndarray:
    """(T - order, T) the ``order``-th forward difference."""
    d = np.eye(num_frames)
    for _ in range(order):
        d = d[1:] - d[:-1]
    return d


def _solve(requests: _Requests, free: np.ndarray, weight: float,
           max_iterations: int = 30) -> np.ndarray:
    """(T, 2, 3) the smallest, smoothest wrist displacements meeting the requests (module
    docstring, step 2), given hands held where ``free`` (T, 2) is False.

    The objective is a sum over hands and axes of ``o' S o`` with ``S = I + w D3' D3``
    restricted to the hand's free frames; with the active requests ``A o = b`` as equalities
    the solution is ``o = S^-1 A' l`` with ``(A S^-1 A') l = b``. A request met without being
    imposed is left out, one whose multiplier turns negative (it would pull the hands
    together) is let go.
    """
    num_frames = free.shape[0]
    smooth = np.eye(num_frames)
    if num_frames > 3:
        jerk = _difference_matrix(num_frames, 3)
        smooth = smooth + weight * jerk.T @ jerk  # (T, T)
    count = len(requests.frame)
    inverses, columns = [], []  # per hand: S^-1 on its free frames; request -> its column
    for side in HandSide:
        frames = np.flatnonzero(free[:, side])
        inverses.append(np.linalg.inv(smooth[np.ix_(frames, frames)]) if len(frames) else
                        np.zeros((0, 0)))
        column = np.full(num_frames, -1)
        column[frames] = np.arange(len(frames))
        columns.append(column[requests.frame])
    # Request r asks sum_h sign_h u_r . o_h(frame_r) >= excess_r (hand 1 along u, hand 0
    # against it); its row of A is nonzero only at the frame's column of each free hand.
    coupling = np.zeros((count, count))  # A S^-1 A'
    for side in HandSide:
        ok = columns[side] >= 0
        index = np.flatnonzero(ok)
        if index.size:
            inner = requests.direction[index] @ requests.direction[index].T  # (r, r)
            coupling[np.ix_(index, index)] += inner * inverses[side][
                np.ix_(columns[side][index], columns[side][index])]
    reachable = np.diag(coupling) > 1e-12  # a request on two given hands cannot be met
    active = np.zeros(count, dtype=bool)
    multipliers = np.zeros(count)
    for _ in range(max_iterations):
        met = coupling[:, active] @ multipliers[active]
        violated = reachable & ~active & (met < requests.excess - 1e-5)
        pulling = active & (multipliers < 0)
        if not violated.any() and not pulling.any():
            break
        active = (active & ~pulling) | violated
        multipliers[:] = 0.0
        if active.any():
            multipliers[active] = np.linalg.lstsq(coupling[np.ix_(active, active)],
                                                  requests.excess[active], rcond=1e-10)[0]
    offsets = np.zeros((num_frames, 2, 3))
    for side in HandSide:
        sign = 1.0 if side == HandSide(1) else -1.0
        use = active & (columns[side] >= 0)
        if not use.any():
            continue
        frames = np.flatnonzero(free[:, side])
        # o_h = S_h^-1 A_h' l: each active request pushes its frame's column along its u.
        force = np.zeros((len(frames), 3))
        np.add.at(force, columns[side][use],
                  sign * multipliers[use, None] * requests.direction[use])
        offsets[frames, side] = inverses[side] @ force
    return offsets


def _largest_step(offsets: np.ndarray) -> float:
    if len(offsets) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(offsets, axis=0), axis=-1).max())


def _too_fast(offsets: np.ndarray, transl: np.ndarray, config: SeparationConfig) -> bool:
    """Whether an added displacement changes by more than ``max_step_m`` between two frames,
    or a moved wrist (``transl`` (T, 2, 3) plus it) steps further than ``max_wrist_step_m``
    where the clip's own step was within it (and further than the clip's own elsewhere)."""
    if len(offsets) < 2:
        return False
    if _largest_step(offsets) > config.max_step_m:
        return True
    own = np.linalg.norm(np.diff(transl, axis=0), axis=-1)  # (T - 1, 2)
    moved = np.linalg.norm(np.diff(transl + offsets, axis=0), axis=-1)
    return bool(np.any(moved > np.maximum(own, config.max_wrist_step_m) + 1e-9))


def separate_hands(motion: BimanualMotion, *, free: np.ndarray | None = None,
                   config: SeparationConfig | None = None) -> Separation:
    """Move the hands of a clip apart where they overlap deeper than a touch.

    Args:
        motion: A generated clip (both hands present; otherwise it is returned as it is).
        free: (T, 2) bool, whether each hand may move at each frame (False where a hand is
            given); default every hand at every frame.
        config: Settings; default :class:`SeparationConfig`.

    Returns:
        :class:`Separation`, the clip with its wrists moved and what was done.

    Raises:
        ConfigError: ``free`` of the wrong shape.
    """
    config = config or SeparationConfig()
    num_frames = motion.num_frames
    free = np.ones((num_frames, 2), dtype=bool) if free is None else \
        np.asarray(free, dtype=bool)
    if free.shape != (num_frames, 2):
        raise ConfigError(f'free must have shape ({num_frames}, 2), got {free.shape}')
    if not bool(np.all(motion.present)) or num_frames < 2:
        return Separation(motion, 0, 0, 0.0, 0.0, 0.0, 0.0)
    keypoints = motion.keypoints.astype(np.float64)  # (T, 2, 21, 3)
    depth, found = _overlaps(keypoints, config.max_depth_m)
    before = int((depth > config.max_depth_m).sum())
    depth_before = float(depth.max())
    nothing = Separation(motion, before, before, depth_before, depth_before, 0.0, 0.0)
    offsets = np.zeros((num_frames, 2, 3))
    transl = np.asarray(motion.transl, dtype=np.float64)  # (T, 2, 3)
    requests = _Requests(np.zeros(0, dtype=int), np.zeros((0, 3)), np.zeros(0))
    weight = (config.spread_s * motion.fps) ** 6
    for _ in range(config.rounds):
        moves, _ = _frame_moves(found, config.margin_m, config.max_shift_m)
        if not len(moves.frame):
            break
        # Measured on the moved clip: a frame that asks again asks for the relative move it
        # has so far and the one it still needs (that request replaces its earlier one).
        wanted = offsets[moves.frame, 1] - offsets[moves.frame, 0] \
            + moves.direction * moves.excess[:, None]
        length = np.linalg.norm(wanted, axis=-1)
        earlier = ~np.isin(requests.frame, moves.frame)
        trial_requests = _Requests(
            np.concatenate([requests.frame[earlier], moves.frame]),
            np.concatenate([requests.direction[earlier], wanted / length[:, None]]),
            np.concatenate([requests.excess[earlier], length]))
        for _ in range(config.max_spread_rounds + 1):
            trial = _solve(trial_requests, free, weight)
            if not _too_fast(trial, transl, config):
                break
            weight *= 4.0
        if _too_fast(trial, transl, config) \
                or np.linalg.norm(trial, axis=-1).max() > config.max_shift_m:
            break  # the requests conflict: keep the last round's move
        offsets, requests = trial, trial_requests
        depth, found = _overlaps(keypoints + offsets[:, :, None, :], config.max_depth_m)
    if not np.any(offsets):
        return nothing
    moved = (keypoints + offsets[:, :, None, :]).astype(np.float32)
    result = motion._replace(transl=motion.transl + offsets, keypoints=moved)
    return Separation(result, before, int((depth > config.max_depth_m).sum()), depth_before,
                      float(depth.max()), float(np.linalg.norm(offsets, axis=-1).max()),
                      _largest_step(offsets))
