"""Generation over motion of any length: overlapping windows, each continuing the one before.

The one implementation behind clips longer than a model makes at once
(:meth:`~handx_gen.generate.Generator.generate`, ``handx generate``) and the generation node's
endless reaction stream (:meth:`~handx_gen.generate.Generator.stream`). A model makes at most
``W`` frames at a time (the shipped models 120, 4 s at 30 fps); :func:`plan_windows` covers
``T`` frames with windows of ``W`` frames that overlap by ``O`` or more::

    window 0    [0, W)                    keeps [0, W - H)
    window 1    [W - O, 2W - O)           frames [W - O, W - H) made: the last C given
    ...
    last        [T - W, T)                moved back to be whole; keeps its end

How a window joins what was made before it (:class:`MotionStream`, :class:`WindowSettings`):

* **Hold.** A window keeps its frames up to ``H`` (``hold_frames``) before its end; the next
  window makes them again. A window's last frames are where a model is least sure (the AR
  model's last token is decoded at the edge of its decoder: its wrist steps 15-19 mm in the
  last two frames against 2 mm inside), so no join is made there. The last window keeps its
  end, and a stream that publishes as it goes (the node) holds nothing.
* **Context.** Of the frames a window shares with what was made, the last ``C``
  (``context_frames``, moved back to a token boundary for the AR model) are given to the model
  as known, every feature of both hands, by the same masked conditioning the modes use (the
  diffusion model conditions on them at every step, the AR model fixes the tokens that cover
  them and continues them as it continues any prefix). The frames before them are made again
  and dropped: they give the model a past of its own to continue from. The context is short
  on purpose: the AR model continues a hand held still with probability 0.9997 a token (a
  hand that rests while the other gestures is common in its corpus), so windows given the
  22-30 frames they shared with the ones before kept a still hand still to the end of a 20 s
  clip; one token joins the motion and lets each window decide anew.
* **Fading the step.** A model does not quite continue the known frames (unfaded, the
  shipped models' reacting wrist stepped 1-17 cm into a window's first new frame). The step
  is measured as the difference between where the known frames were heading (their last
  frame moved on at their last velocity) and where the new frames start (:func:`join_step`),
  and added to the new frames with a weight falling from 1 to 0 over ``blend_frames`` frames
  (a raised cosine). Frames once kept never change: a stream has published them.
* **The given parts.** Features the mode gives (a reaction's given hand, in-betweening's ends)
  are then set to the given values, and a hand given whole at a frame takes the given
  motion's parameters and keypoints: a reaction's given hand is the given motion's, bit for
  bit.

Every window gets its own sampling seed (window 0 the stream's seed, so a clip that fits one
window is what it was before windows existed). The seams measured on the shipped models are
in the README (generation section).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion.container import BimanualMotion
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup

__all__ = [
    'MotionStream',
    'Window',
    'WindowSampler',
    'WindowSettings',
    'fade_weights',
    'join_step',
    'plan_windows',
    'window_seed',
]

WindowSampler = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``sample(known, mask, index) -> features``: one window of a model. ``known`` (n, D) raw
(denormalised) features, read where ``mask`` (n, D) bool is true; ``index`` the window's number
in its stream (its seed); returns the model's (n, D) raw features (the given parts need not be
set: the stream sets them)."""


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """How motion longer than one window is made (see the module docstring).

    Attributes:
        window_frames: Frames per window; ``None``: the longest clip the model makes (120 for
            the shipped models).
        overlap_frames: 30 (1 s at 30 fps): the least number of frames a window shares with
            the one before (held frames, then frames made again, then context).
        context_frames: 4 (one AR token): the last frames made before a window that it is
            given as known.
        hold_frames: 8: frames at the end of a window (but the last) that the next window
            makes again.
        blend_frames: 8: new frames over which the step at a join is faded out; 0 keeps the
            model's frames as they are.
    """

    window_frames: int | None = None
    overlap_frames: int = 30
    context_frames: int = 4
    hold_frames: int = 8
    blend_frames: int = 8

    def __post_init__(self) -> None:
        lows = {'window_frames': 2, 'overlap_frames': 1, 'context_frames': 1,
                'hold_frames': 0, 'blend_frames': 0}
        for name, low in lows.items():
            value = getattr(self, name)
            if value is None and name == 'window_frames':
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < low:
                raise ConfigError(f'{name} must be an integer >= {low}, got {value!r}')
            object.__setattr__(self, name, int(value))
        if self.hold_frames >= self.overlap_frames:
            raise ConfigError(f'hold_frames={self.hold_frames} must be less than '
                              f'overlap_frames={self.overlap_frames}: a window needs frames '
                              f'made before it to continue')

    def resolve(self, model_frames: int) -> tuple[int, int]:
        """``(window, overlap)`` frames for a model that makes at most ``model_frames``.

        Raises:
            ConfigError: A window longer than the model makes, or an overlap that leaves no
                new frame in a window.
        """
        window = model_frames if self.window_frames is None else self.window_frames
        if window > model_frames:
            raise ConfigError(f'window_frames={window} is longer than the model makes '
                              f'({model_frames} frames)')
        if self.overlap_frames >= window:
            raise ConfigError(f'overlap_frames={self.overlap_frames} must be less than the '
                              f'window ({window} frames): each window makes new frames')
        return window, self.overlap_frames


class Window(NamedTuple):
    """Frames ``[start, stop)`` of a clip, made as window ``index``."""

    index: int
    start: int
    stop: int


def plan_windows(num_frames: int, window_frames: int, overlap_frames: int
                 ) -> tuple[Window, ...]:
    """Windows of ``window_frames`` covering ``num_frames``, each overlapping the one before
    by ``overlap_frames`` or more (the last moved back to be whole); one window when the clip
    fits.

    Raises:
        ConfigError: Non-positive counts, or an overlap not shorter than the window.
    """
    for name, value in (('num_frames', num_frames), ('window_frames', window_frames),
                        ('overlap_frames', overlap_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f'{name} must be a positive integer, got {value!r}')
    if overlap_frames >= window_frames:
        raise ConfigError(f'overlap_frames={overlap_frames} must be less than window_frames='
                          f'{window_frames}')
    if num_frames <= window_frames:
        return (Window(0, 0, int(num_frames)),)
    stride = window_frames - overlap_frames
    starts = list(range(0, num_frames - window_frames, stride)) + [num_frames - window_frames]
    return tuple(Window(i, start, start + window_frames) for i, start in enumerate(starts))


def fade_weights(num_frames: int) -> np.ndarray:
    """(num_frames,) raised-cosine weights falling from just under 1 to just over 0: how much
    of the step at a join each new frame keeps."""
    steps = np.arange(1, num_frames + 1) / (num_frames + 1)
    return 0.5 * (1.0 + np.cos(math.pi * steps))


def join_step(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The step at a join: where the frames ``before`` (n, D) were heading, less where the
    frames ``after`` (m, D) start.

    Both ends are read over two frames: the heading is the last frame moved on at the mean
    velocity of the last two steps, the start the mean of the first two frames (half a frame
    later), so a motion that alternates from frame to frame (the diffusion model's 2-frame
    patches do) steps no more than it moves.

    Returns:
        (D,): added to ``after``'s first frames (faded out), it joins them to ``before``.
    """
    velocity = (before[-1] - before[max(0, len(before) - 3)]) / max(1, min(2, len(before) - 1))
    start = after[:2].mean(axis=0)
    return before[-1] + 0.5 * (min(2, len(after)) + 1) * velocity - start


def window_seed(seed: int, index: int) -> int:
    """The sampling seed of window ``index`` of a stream seeded ``seed``: ``seed`` itself for
    window 0, then seeds drawn from both (not ``seed + index``, which the next stream's
    windows would share)."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _hand_dims(side: HandSide) -> np.ndarray:
    """(D,) bool: the parameter groups of one hand (what decides its keypoints)."""
    return FEATURE_LAYOUT.group_mask([(side, group) for group in (
        FeatureGroup.TRANSL, FeatureGroup.GLOBAL_ORIENT, FeatureGroup.HAND_POSE)])


class MotionStream:
    """Motion made window by window, each window continuing the frames kept before it (see
    the module docstring). Made by :meth:`~handx_gen.generate.Generator.stream`, or by
    :meth:`~handx_gen.generate.Generator.generate` for a long clip.

    Frames are numbered from the stream's start; :meth:`extend` makes a window and returns
    its frames not kept before. Not thread-safe.

    Args:
        sample: One window of the model (:data:`WindowSampler`).
        fps: Frame rate of the motion.
        window_frames: The longest window :meth:`extend` takes.
        settings: Context, hold and blend frames (``window_frames`` and ``overlap_frames``
            are the caller's business).
        align: The context starts at a multiple of this many frames into a window (the AR
            model fixes whole tokens: its frames per token).
        frame_mask: ``n -> (n, D)`` bool, what the mode gives in a window of ``n`` frames,
            for :meth:`extend` calls without a mask (modes whose mask is the same for every
            frame: text, reaction, trajectory); ``None``: every call passes its mask.
        skeletons: (left, right) skeletons of the made hands, or ``fit(given)`` giving them
            from the first window's given motion, or ``None`` for the default hands.
        texts, annotation: Of every returned motion.
    """

    def __init__(
        self,
        sample: WindowSampler,
        fps: float,
        *,
        window_frames: int,
        settings: WindowSettings | None = None,
        align: int = 1,
        frame_mask: Callable[[int], np.ndarray] | None = None,
        skeletons: Sequence[HandSkeleton] | Callable[[BimanualMotion], Sequence[HandSkeleton]]
        | None = None,
        texts: Iterable[str] | str = (),
        annotation: dict[str, Any] | None = None,
    ) -> None:
        self._sample = sample
        self.fps = float(fps)
        self.window_frames = int(window_frames)
        self.settings = settings if settings is not None else WindowSettings()
        self.align = int(align)
        self._frame_mask = frame_mask
        self._skeletons = skeletons
        self._texts = texts
        self._annotation = annotation
        self._hand_dims = {side: _hand_dims(side) for side in HandSide}
        self.reset()

    def reset(self) -> None:
        """Forget the frames kept: the next window starts afresh (the skeletons stay)."""
        self._buffer = np.zeros((0, FEATURE_LAYOUT.dim), np.float32)  # (n, D) kept frames
        self._buffer_start = 0  # frame number of the buffer's first row
        self.end: int | None = None  # the frames kept so far end here (excluded)
        self.windows = 0  # windows made

    def extend(self, start: int, stop: int, *, given: BimanualMotion | None = None,
               mask: np.ndarray | None = None, last: bool = False) -> BimanualMotion:
        """Make window ``[start, stop)`` and return its frames not kept before.

        The frames of the window already kept are its context; a window that starts after
        the last frame kept starts afresh (a gap in the motion).

        Args:
            start, stop: The window's frames, ``stop - start`` at most ``window_frames``.
            given: The given motion of the window's frames (``stop - start`` frames at the
                stream's rate); ``None`` when the mode gives nothing.
            mask: (stop - start, D) bool, what the mode gives; default from ``frame_mask``.
            last: Keep the window's end too (no ``hold_frames``): the clip's last window.

        Returns:
            Frames ``[max(start, end), stop - hold)``, ``hold`` 0 for the last window.

        Raises:
            ModelError: A window out of order (nothing new to keep, or starting before the
                frames kept), too long, or a given motion or mask of the wrong size or rate.
        """
        num = stop - start
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0 \
                or not 1 <= num <= self.window_frames:
            raise ModelError(f'window [{start}, {stop}) must start at frame >= 0 and hold 1 to '
                             f'{self.window_frames} frames')
        keep = stop if last else max(stop - self.settings.hold_frames, start + 1)
        end = self.end
        if end is not None and keep <= end:
            raise ModelError(f'window [{start}, {stop}) has no frame to keep after frame '
                             f'{end}, the end of the frames kept')
        if end is not None and start < self._buffer_start:
            raise ModelError(f'window [{start}, {stop}) starts before frame '
                             f'{self._buffer_start}, the first the stream keeps')
        if mask is None:
            if self._frame_mask is None:
                raise ModelError('this stream needs the mask of every window')
            mask = self._frame_mask(num)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (num, FEATURE_LAYOUT.dim):
            raise ModelError(f'mask: expected shape {(num, FEATURE_LAYOUT.dim)}, got '
                             f'{mask.shape}')
        if given is not None:
            if not isinstance(given, BimanualMotion):
                raise ModelError(f'given must be a BimanualMotion, got {type(given).__name__}')
            if given.num_frames != num or abs(given.fps - self.fps) > 1e-6:
                raise ModelError(f'the given motion of window [{start}, {stop}) has '
                                 f'{given.num_frames} frames at {given.fps:g} fps; expected '
                                 f'{num} at {self.fps:g}')
            known = FEATURE_LAYOUT.encode(given)  # (n, D)
        elif mask.any():
            raise ModelError('the mask gives features but no given motion was passed')
        else:
            known = np.zeros((num, FEATURE_LAYOUT.dim), np.float32)
        if callable(self._skeletons):
            self._skeletons = tuple(self._skeletons(given))
        made = 0 if end is None or start >= end else end - start  # window frames kept before
        first = made  # the first of them given as context
        mask_known = mask
        if made:
            first = max(0, made - self.settings.context_frames)
            first -= first % self.align
            known = known.copy()
            known[first:made] = self._buffer[start + first - self._buffer_start:
                                             end - self._buffer_start]
            mask_known = mask.copy()
            mask_known[first:made] = True
        raw = np.asarray(self._sample(known, mask_known, self.windows), dtype=np.float64)
        if raw.shape != known.shape:
            raise ModelError(f'the sampler gave shape {raw.shape}, expected {known.shape}')
        new = raw[made:keep - start].copy()  # (n', D)
        blend = min(self.settings.blend_frames, len(new))
        if made and blend:  # the step off where the kept frames were heading, faded out
            new[:blend] += fade_weights(self.settings.blend_frames)[:blend, None] \
                * join_step(known[first:made], raw[made:])
        given_mask = mask[made:keep - start]
        new = np.where(given_mask, known[made:keep - start], new)  # the given parts as given
        out = FEATURE_LAYOUT.decode(new, self.fps, skeletons=self._skeletons)
        orient, pose = out.global_orient.copy(), out.hand_pose.copy()
        transl, keypoints = out.transl.copy(), out.keypoints.copy()
        if given is not None:  # a hand given whole at a frame: the given motion's, exactly
            part = given[made:keep - start]
            for side in HandSide:
                whole = given_mask[:, self._hand_dims[side]].all(axis=1)  # (n',)
                for target, source in ((orient, part.global_orient), (pose, part.hand_pose),
                                       (transl, part.transl), (keypoints, part.keypoints)):
                    target[whole, side] = source[whole, side]
        motion = BimanualMotion(self.fps, orient, pose, transl, keypoints, texts=self._texts,
                                annotation=self._annotation)
        kept = FEATURE_LAYOUT.encode(motion)  # the context of later windows, as kept
        if end is None or start > end:
            self._buffer, self._buffer_start = kept, start
        else:
            self._buffer = np.concatenate([self._buffer, kept])
        drop = max(0, len(self._buffer) - self.window_frames)
        self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop
        self.end = keep
        self.windows += 1
        return motion
