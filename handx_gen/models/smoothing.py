"""Temporal smoothing of generated motion, with the given frames as hard constraints.

Both generation models leave high-frequency artefacts in their clips: the diffusion model
denoises 2-frame patches, and neighbouring patches disagree by a few millimetres (a period-2
zigzag) and sometimes by centimetres (a move made in one frame); the AR model's tokens cover 4
frames and their seams show. Hand motion has little above a few hertz, so these artefacts are
what a person's hand never does, and what makes retargeted clips exceed a robot's joint
velocity limits.

:class:`Smoother` removes them by *jerk-penalised least squares* (a Whittaker-Henderson
smoother of order 3), column by column over the feature layout::

    minimise   sum_t (y_t - x_t)^2  +  sum_k w_k (Delta^3 y)_k^2
    subject to y_t = x_t  for every given frame t of that column

so the given parts of a clip (the observed hand of a reaction, the ends of an in-betweening,
keyframes, a wrist path) come out bit-exact, and the generated frames next to them blend into
them instead of jumping. Why this and not a Savitzky-Golay or Butterworth filter: it is one
linear system with the constraints inside it (a filter then pasting the given frames back
reopens the seams), it needs no padding at the clip's ends, and away from the ends it moves a
smooth signal by about ``w`` times its sixth difference, which a quintic, a minimum-jerk
movement, does not have: such a movement is left nearly as it is. Frequency response away from
the ends and the constraints: ``1 / (1 + w (2 sin(pi f / fps))^6)``; :attr:`SmoothingConfig.
cutoff_hz` sets ``w`` so that this is one half at ``cutoff_hz`` (4 Hz by default), and
:attr:`SmoothingConfig.finger_cutoff_hz` the finger joints' own (6 Hz: fingers tap and count
faster than wrists travel; at 4 Hz a stated finger bend or two more of the held-out clips
stayed under the annotation's flexion threshold). The period-2 zigzag (15 Hz at 30 fps) is
attenuated by ``1 / (1 + 64 w)``.

The smoother is linear and keeps constants, so smoothing normalised features and smoothing
raw features are the same operation. It works on the features of
:data:`~handx_gen.motion.features.FEATURE_LAYOUT`: translations in metres and rotations in the
continuous 6D form (first two matrix columns; the decoder projects any 6 numbers back onto a
rotation), so rotations are smoothed without the wrap-around of axis-angle.

Where it runs (:meth:`handx_gen.Generator.generate`, on by default, ``smoothing=False`` for
the raw output): in the diffusion sampler, on the x0 prediction of its last
:attr:`SmoothingConfig.denoising_steps` steps (10 of 50), so the next step denoises towards a
smooth clip and the model fills in detail the smoother took away instead of its patch seams;
then once more on the decoded clip's features, for both models
(:attr:`SmoothingConfig.final_pass`).

Wrist speed. With :attr:`SmoothingConfig.max_wrist_step_m` set, the final pass keeps every
step of a generated wrist between two frames within it: where the smoothed wrist still steps
further, a penalty on that step (its first difference), tapering over the steps
:attr:`SmoothingConfig.slow_down_s` around it, is added and raised round by round until every
step is within the bound or :attr:`SmoothingConfig.max_rounds` are spent. A move the model
made in one frame is spread over the frames around it, the wrist slowing down and speeding up
smoothly. Steps between two given frames are the given motion's own and are left alone; a
gap that the given frames ask to be crossed faster than the bound cannot be, and the largest
step left is reported (:attr:`SmoothingResult.max_wrist_step_m`, and in a generated clip's
annotation).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.linalg import solveh_banded

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup, FeatureLayout

__all__ = [
    'SmoothingConfig',
    'SmoothingResult',
    'Smoother',
    'penalty_weight',
    'smooth_columns',
]

_ORDER = 3  # the penalised difference: jerk
_JERK = np.array([-1.0, 3.0, -3.0, 1.0])  # third difference of frames k..k+3
_STEP = np.array([-1.0, 1.0])  # first difference of frames k, k+1
_NUMPY_FLOATS = {torch.float16: np.float16, torch.float32: np.float32,
                 torch.float64: np.float64}


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Settings of the jerk-penalised smoothing of generated clips (see the module notes)."""

    cutoff_hz: float = 4.0  # frequency at which the smoother halves an oscillation, Hz
    finger_cutoff_hz: float | None = 6.0  # the same for the finger joints; None: cutoff_hz
    max_wrist_step_m: float | None = 0.01  # generated wrist's largest step per frame; None: any
    denoising_steps: int | None = 10  # diffusion: smooth x0 in the last N steps (None: all)
    final_pass: bool = True  # smooth the decoded clip's features (and bound the wrists)
    max_rounds: int = 40  # rounds of penalising the steps over the bound, harder each time
    growth: float = 4.0  # each round multiplies the penalty on a step still over it by this
    slow_down_s: float = 0.2  # the penalty on a step reaches the steps this long around it

    def __post_init__(self) -> None:
        for name in ('cutoff_hz', 'growth', 'slow_down_s'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ConfigError(f'smoothing {name} must be a positive number, got {value!r}')
        if self.growth <= 1:
            raise ConfigError(f'smoothing growth must exceed 1, got {self.growth!r}')
        finger = self.finger_cutoff_hz
        if finger is not None and (isinstance(finger, bool) or not isinstance(finger, (int, float))
                                   or not math.isfinite(finger) or finger <= 0):
            raise ConfigError(f'smoothing finger_cutoff_hz must be a positive number or None, '
                              f'got {finger!r}')
        step = self.max_wrist_step_m
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                                 or not math.isfinite(step) or step <= 0):
            raise ConfigError(f'smoothing max_wrist_step_m must be a positive number or None, '
                              f'got {step!r}')
        for name in ('max_rounds', 'denoising_steps'):
            value = getattr(self, name)
            if value is None and name == 'denoising_steps':
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f'smoothing {name} must be an integer >= 0, got {value!r}')
        if not isinstance(self.final_pass, bool):
            raise ConfigError(f'smoothing final_pass must be true or false, got '
                              f'{self.final_pass!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SmoothingConfig:
        """Build from a mapping (e.g. YAML).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or bad values.
        """
        return cls(**config_kwargs(cls, values, 'smoothing'))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SmoothingResult(NamedTuple):
    """What :meth:`Smoother.smooth_features` did.

    Attributes:
        features: (T, D) the smoothed features; given entries equal the input's bit for bit.
        max_wrist_step_m: The largest step of a generated wrist between two frames (one of
            them generated), metres, after smoothing; 0 when no wrist is generated.
        rounds: Rounds of step penalties the wrist bound took (0: none needed).
    """

    features: np.ndarray
    max_wrist_step_m: float
    rounds: int


def penalty_weight(cutoff_hz: float, fps: float) -> float:
    """The jerk penalty weight whose smoother halves an oscillation of ``cutoff_hz`` at
    ``fps``.

    Raises:
        ConfigError: A cutoff at or above the Nyquist frequency ``fps / 2``, or a bad value.
    """
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(cutoff_hz) and cutoff_hz > 0):
        raise ConfigError(f'cutoff {cutoff_hz!r} Hz at {fps!r} fps: both must be positive')
    if cutoff_hz >= fps / 2:
        raise ConfigError(f'smoothing cutoff {cutoff_hz:g} Hz must be below half the frame '
                          f'rate ({fps / 2:g} Hz)')
    gain = 2.0 * math.sin(math.pi * cutoff_hz / fps)  # |1 - e^{i w}| at the cutoff
    return gain ** (-2 * _ORDER)


def _add_penalty(bands: np.ndarray, coefficients: np.ndarray, weights: np.ndarray) -> None:
    """Add ``sum_k weights_k (c . y[k:k+n])^2`` to the upper bands (``bands[u - d, j]`` holds
    the entry (j - d, j)) of a symmetric matrix."""
    upper = bands.shape[0] - 1
    count = weights.shape[0]
    for a, ca in enumerate(coefficients):
        for b in range(a, len(coefficients)):
            # entry (k + a, k + b) for every row k: diagonal offset b - a, column k + b
            bands[upper - (b - a), b:b + count] += weights * ca * coefficients[b]


def smooth_columns(x: np.ndarray, free: np.ndarray, jerk_weights: Any,
                   step_weights: Any = 0.0) -> np.ndarray:
    """Columns of ``x`` smoothed by penalised least squares, the frames not ``free`` fixed.

    Minimises ``|y - x|^2 + sum_k jerk_weights_k (Delta^3 y)_k^2 + sum_k step_weights_k
    (Delta y)_k^2`` per column over the ``free`` frames; one banded Cholesky solve (no dense
    matrix products, so no thread pool is woken for a 120-frame clip).

    Args:
        x: (T, C) values.
        free: (T,) bool, true on the frames to smooth; the others keep their values.
        jerk_weights: Weight of each third difference, (T - 3,) or one number.
        step_weights: Weight of each first difference, (T - 1,) or one number.

    Returns:
        (T, C) float64; ``x`` itself (a copy) with nothing free, or with fewer than 4
        frames and no step weights (too short for a third difference).
    """
    x = np.asarray(x, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    num_frames = x.shape[0]
    out = x.copy()
    steps = np.broadcast_to(np.asarray(step_weights, np.float64), (max(num_frames - 1, 0),))
    if not free.any() or (num_frames <= _ORDER and not steps.any()):
        return out
    bands = np.zeros((_ORDER + 1, num_frames))
    bands[_ORDER] = 1.0  # the fidelity term
    if num_frames > _ORDER:
        _add_penalty(bands, _JERK, np.broadcast_to(np.asarray(jerk_weights, np.float64),
                                                   (num_frames - _ORDER,)))
    if steps.any():
        _add_penalty(bands, _STEP, steps)
    rows = np.flatnonzero(free)
    rhs = x[rows].copy()
    if rows.size < num_frames:
        # move the fixed frames' terms to the right-hand side: rhs -= A[free, fixed] x[fixed]
        for offset in range(1, _ORDER + 1):
            coupling = bands[_ORDER - offset, offset:]  # A[j - offset, j] for j >= offset
            upper_free, lower = free[:-offset], free[offset:]
            # (i, i + offset) with i free and i + offset fixed, and the mirror entry
            pairs = np.flatnonzero(upper_free & ~lower)
            np.subtract.at(out, pairs, coupling[pairs, None] * x[pairs + offset])
            pairs = np.flatnonzero(~upper_free & lower)
            np.subtract.at(out, pairs + offset, coupling[pairs, None] * x[pairs])
        rhs = out[rows]
    # the free frames' system, still banded in their own order (a removed frame only shortens
    # the distance between the ones it separated, beyond the band it was in)
    sub = np.zeros((_ORDER + 1, rows.size))
    position = np.full(num_frames, -1)
    position[rows] = np.arange(rows.size)
    sub[_ORDER] = bands[_ORDER, rows]
    for offset in range(1, _ORDER + 1):
        i = np.arange(num_frames - offset)
        keep = free[i] & free[i + offset]
        gap = position[i[keep] + offset] - position[i[keep]]
        np.add.at(sub, (_ORDER - gap, position[i[keep] + offset]),
                  bands[_ORDER - offset, i[keep] + offset])
    out[rows] = solveh_banded(sub, rhs, check_finite=False)
    return out


class Smoother:
    """Jerk-penalised least-squares smoothing at one frame rate (see the module notes)."""

    def __init__(self, config: SmoothingConfig | None = None, *, fps: float,
                 layout: FeatureLayout = FEATURE_LAYOUT) -> None:
        """
        Args:
            config: Settings; default :class:`SmoothingConfig`.
            fps: Frame rate of the clips, Hz.
            layout: The feature layout (for the wrist translations).

        Raises:
            ConfigError: A cutoff at or above half the frame rate, or a bad frame rate.
        """
        self.config = SmoothingConfig() if config is None else config
        if not isinstance(self.config, SmoothingConfig):
            raise ConfigError(f'smoothing config must be a SmoothingConfig, got '
                              f'{type(self.config).__name__}')
        self.fps = float(fps)
        self.weight = penalty_weight(self.config.cutoff_hz, self.fps)
        finger = self.config.finger_cutoff_hz
        finger_weight = self.weight if finger is None else penalty_weight(finger, self.fps)
        self.layout = layout
        # (D,) the penalty weight of each feature column: the finger joints' own
        fingers = layout.group_mask([(side, FeatureGroup.HAND_POSE) for side in HandSide])
        self._column_weights = np.where(fingers, finger_weight, self.weight)

    def smooth(self, x: Any, given: Any | None = None) -> Any:
        """Smooth every column of ``x`` over time, keeping its given entries exactly.

        Args:
            x: (T, C) or (B, T, C), numpy or torch (the result is of the same kind, dtype and
                device).
            given: Bool of ``x``'s shape (or broadcastable to it), true where given;
                ``None``: nothing given.

        Returns:
            The smoothed values; given entries equal ``x``'s.

        Raises:
            ModelError: Shapes that do not fit.
        """
        is_torch = isinstance(x, torch.Tensor)
        if is_torch:
            # numpy does the conversions: a torch op on a busy machine waits for its threads
            source = x.detach().cpu()
            values = np.asarray((source if source.dtype in _NUMPY_FLOATS else source.float())
                                .numpy(), dtype=np.float64)
        else:
            values = np.asarray(x, dtype=np.float64)
        if values.ndim not in (2, 3):
            raise ModelError(f'smooth takes (T, C) or (B, T, C) values, got {values.shape}')
        batched = values if values.ndim == 3 else values[None]
        if given is None:
            mask = np.zeros(batched.shape, dtype=bool)
        else:
            mask = given.detach().cpu().numpy() if isinstance(given, torch.Tensor) \
                else np.asarray(given)
            if mask.dtype != bool:
                raise ModelError(f'given must be boolean, got dtype {mask.dtype}')
            try:
                mask = np.broadcast_to(mask, batched.shape)
            except ValueError:
                raise ModelError(f'given of shape {mask.shape} does not fit values of shape '
                                 f'{values.shape}') from None
        out = np.stack([self._smooth_patterns(batched[b], mask[b])
                        for b in range(batched.shape[0])])
        out = np.where(mask, batched, out)  # given entries bit-exact
        out = out if values.ndim == 3 else out[0]
        if is_torch:
            dtype = _NUMPY_FLOATS.get(x.dtype, np.float32)
            result = torch.from_numpy(out.astype(dtype))
            if result.dtype != x.dtype or x.device.type != 'cpu':
                result = result.to(device=x.device, dtype=x.dtype)
            return result
        return out.astype(np.asarray(x).dtype, copy=False)

    def _smooth_patterns(self, x: np.ndarray, given: np.ndarray) -> np.ndarray:
        """(T, C) smoothed column by column; the columns of one given pattern in one solve."""
        out = x.copy()
        weights = self._column_weights if x.shape[1] == self.layout.dim \
            else np.full(x.shape[1], self.weight)
        groups: dict[tuple[bytes, float], list[int]] = {}
        for column, key in enumerate(np.packbits(given, axis=0).T):
            groups.setdefault((key.tobytes(), float(weights[column])), []).append(column)
        for (_, weight), columns in groups.items():
            pattern = given[:, columns[0]]
            if not pattern.all():
                out[:, columns] = smooth_columns(x[:, columns], ~pattern, weight)
        return out

    def smooth_features(self, features: Any, given: Any) -> SmoothingResult:
        """Smooth the (T, D) raw features of a clip: every column, then, where a generated
        wrist still steps further than ``max_wrist_step_m``, its translation harder there.

        Args:
            features: (T, D) raw features (the wrist bound reads the translations in metres).
            given: (T, D) bool, true where given.

        Returns:
            The smoothed features (float64) with the largest generated wrist step left.

        Raises:
            ModelError: Shapes that do not fit the layout.
        """
        x = np.asarray(features, dtype=np.float64)
        mask = np.asarray(given, dtype=bool)
        if x.ndim != 2 or x.shape[1] != self.layout.dim or mask.shape != x.shape:
            raise ModelError(f'smooth_features takes (T, {self.layout.dim}) features and a '
                             f'mask of the same shape, got {x.shape} and {mask.shape}')
        out = self.smooth(x, mask)
        largest, rounds = 0.0, 0
        for side in HandSide:
            columns = self.layout.slice(side, FeatureGroup.TRANSL)
            transl, step, used = self._bound_wrist(x[:, columns], out[:, columns],
                                                   mask[:, columns])
            out[:, columns] = transl
            largest, rounds = max(largest, step), max(rounds, used)
        return SmoothingResult(np.where(mask, x, out), largest, rounds)

    def _bound_wrist(self, x: np.ndarray, y: np.ndarray, given: np.ndarray
                     ) -> tuple[np.ndarray, float, int]:
        """One hand's (T, 3) translation ``y`` (smoothed from ``x``) with its generated steps
        brought within the bound; the largest generated step left and the rounds used."""
        num_frames = x.shape[0]
        if num_frames < 2:
            return y, 0.0, 0
        free = ~given.all(axis=1)  # (T,) a frame with any generated coordinate
        generated_step = free[1:] | free[:-1]  # (T - 1,)
        if not generated_step.any():
            return y, 0.0, 0
        bound = self.config.max_wrist_step_m
        uniform = bool((given == given[:, :1]).all())  # one pattern for x, y and z

        def largest(values: np.ndarray) -> tuple[np.ndarray, float]:
            steps = np.linalg.norm(np.diff(values, axis=0), axis=1)  # (T - 1,)
            steps = np.where(generated_step, steps, 0.0)
            return steps, float(steps.max())

        steps, worst = largest(y)
        if bound is None or worst <= bound or not uniform:
            return y, worst, 0
        step_weights = np.zeros(num_frames - 1)
        # a step's weight reaches its neighbours, tapering to nothing over `spread` steps, so
        # the wrist slows down and speeds up again smoothly instead of kinking at the step
        spread = max(1.0, self.config.slow_down_s * self.fps)
        index = np.arange(num_frames - 1)
        taper = np.clip(1.0 - np.abs(index[:, None] - index[None, :]) / spread, 0.0, None)
        for round_ in range(1, self.config.max_rounds + 1):
            over = steps > bound
            step_weights = np.where(over, np.maximum(step_weights * self.config.growth,
                                                     (steps / bound) ** 2 - 1), step_weights)
            weights = (taper * step_weights[None, :]).max(axis=1)  # (T - 1,)
            y = np.where(given, x, smooth_columns(x, free, self.weight, weights))
            steps, worst = largest(y)
            if worst <= bound:
                return y, worst, round_
        return y, worst, self.config.max_rounds
