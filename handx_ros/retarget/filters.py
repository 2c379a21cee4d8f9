"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) for noisy keypoint streams.

A low-pass filter whose cut-off rises with the signal's speed: at rest it removes jitter
(cut-off ``min_cutoff_hz``), in fast motion it lets the signal through with little lag
(cut-off ``min_cutoff_hz + beta * |speed|``). It filters each coordinate of an array.
"""

from __future__ import annotations

import math

import numpy as np

from handx_gen.errors import ConfigError

__all__ = ['OneEuroFilter']


class OneEuroFilter:
    """One-Euro filter over arrays of a fixed shape, sampled at ``fps``.

    Args:
        fps: Sampling rate, Hz.
        min_cutoff_hz: Cut-off at rest.
        beta: Cut-off increase per unit of speed (units of the signal per second).
        derivative_cutoff_hz: Cut-off of the speed estimate.
    """

    def __init__(self, fps: float, min_cutoff_hz: float = 1.0, beta: float = 0.5,
                 derivative_cutoff_hz: float = 1.0) -> None:
        for name, value in (('fps', fps), ('min_cutoff_hz', min_cutoff_hz),
                            ('derivative_cutoff_hz', derivative_cutoff_hz)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f'One-Euro filter: {name} must be > 0, got {value!r}')
        if not (math.isfinite(beta) and beta >= 0):
            raise ConfigError(f'One-Euro filter: beta must be >= 0, got {beta!r}')
        self.dt_s = 1.0 / fps
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.derivative_cutoff_hz = derivative_cutoff_hz
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def _alpha(self, cutoff_hz: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau / self.dt_s)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / self.dt_s
        a_d = self._alpha(self.derivative_cutoff_hz)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()
