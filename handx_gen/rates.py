"""The frame rates and clip sizes HandX accepts: one place, used by every reader and node.

A clip's frame rate sets how much work it asks for downstream: simulating a clip costs time
in proportion to its duration (``frames / fps``), settling a robot takes steps in proportion
to ``fps``, and resampling allocates ``duration x new fps`` frames. A frame rate or a size
outside these bounds is refused where a clip comes in (a motion or trajectory file, a ROS
message, a constructor), with one error naming the value and the range, before any work is
sized from it.

* :data:`MIN_FPS`, :data:`MAX_FPS`: 1 to 1000 frames per second. Hand trackers and motion
  capture run at 15-240 fps, simulation control loops at up to 1 kHz; below one frame a
  second a "clip" is a slide show, and 1/3600 fps made a two-frame clip last an hour.
* :data:`MAX_FRAMES`: 108,000 frames (one hour at 30 fps) in one file or container.
* :data:`MAX_DURATION_S`: 3,600 s, the longest clip by time (frames / fps).
"""

from __future__ import annotations

import math

import numpy as np

from handx_gen.errors import HandxError, MotionError

__all__ = ['MAX_DURATION_S', 'MAX_FPS', 'MAX_FRAMES', 'MIN_FPS', 'check_clip_size', 'check_fps']

MIN_FPS = 1.0
MAX_FPS = 1000.0
MAX_FRAMES = 108_000
MAX_DURATION_S = 3600.0


def check_fps(fps: object, *, what: str = 'fps',
              error: type[HandxError] = MotionError) -> float:
    """``fps`` as a float, checked to be a real number in ``[MIN_FPS, MAX_FPS]``.

    Raises:
        error: Not a real scalar, not finite, or outside the range (the message names both).
    """
    if isinstance(fps, (bool, np.bool_, str, bytes)) or np.ndim(fps) != 0:
        raise error(f'{what} must be a number of frames per second, got {_shown(fps)}')
    try:
        value = float(fps)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(f'{what} must be a number of frames per second, got {_shown(fps)}') from exc
    if not (math.isfinite(value) and MIN_FPS <= value <= MAX_FPS):
        raise error(f'{what} must be between {MIN_FPS:g} and {MAX_FPS:g} frames per second, '
                    f'got {value!r}')
    return value


def check_clip_size(num_frames: int, fps: float, *, what: str = 'clip',
                    error: type[HandxError] = MotionError,
                    max_frames: int = MAX_FRAMES,
                    max_duration_s: float = MAX_DURATION_S) -> None:
    """Refuse a clip of more than ``max_frames`` frames or longer than ``max_duration_s``.

    Raises:
        error: Too many frames or too long (the message names the count, duration and bound).
    """
    if num_frames > max_frames:
        raise error(f'{what} has {num_frames} frames; at most {max_frames} are accepted')
    duration_s = num_frames / fps
    if duration_s > max_duration_s:
        raise error(f'{what} lasts {duration_s:.6g} s ({num_frames} frames at {fps:g} fps); '
                    f'at most {max_duration_s:g} s are accepted')


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f'{text[:limit]}... ({len(text)} chars)'
