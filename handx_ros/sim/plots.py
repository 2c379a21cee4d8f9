"""PNG plots of a simulation run: tracking error, contact timelines and penetration.

One figure, three panels sharing the time axis:

1. tracking: per frame the largest joint error (rad, left axis) and the largest fingertip
   error (mm, right axis);
2. contacts: the human between-hands contact events (when the clip was given) above the
   robot's simulated ones, as bars;
3. penetration: the deepest penetration per frame (mm) with the gate's tolerance, and the
   signed distance between the hands, simulated and as commanded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handx_ros.sim.evaluate import SimResult

__all__ = ['plot_result']


def plot_result(result: SimResult, path: str | Path, *, tolerance_m: float | None = None,
                title: str | None = None) -> Path:
    """Write the three-panel PNG of ``result`` to ``path``; returns the path."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = result.times_s  # (F,)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True,
                             gridspec_kw={'height_ratios': [2, 1, 2]})
    ax = axes[0]
    if result.joint_error_rad.size:
        ax.plot(t, result.joint_error_rad.max(axis=1), color='tab:blue', lw=1.2,
                label='max joint error (rad)')
    ax.set_ylabel('joint error (rad)', color='tab:blue')
    if result.fingertip_error_m.size:
        twin = ax.twinx()
        twin.plot(t, result.fingertip_error_m.max(axis=1) * 1e3, color='tab:orange', lw=1.2)
        twin.set_ylabel('max fingertip error (mm)', color='tab:orange')
    ax.set_title(title or f'{result.robot}: {result.status.value}, '
                 f'{result.realtime_factor:.0f}x real time')

    ax = axes[1]
    rows = [('robot', result.robot_contacts, 'tab:red')]
    if result.fidelity is not None:
        rows.insert(0, ('human', result.fidelity.human, 'tab:green'))
    for y, (_, intervals, colour) in enumerate(reversed(rows)):
        spans = [(start / result.fps, (stop - start) / result.fps) for start, stop in intervals]
        if spans:
            ax.broken_barh(spans, (y - 0.35, 0.7), color=colour)
    ax.set_yticks(range(len(rows)), [name for name, _, _ in reversed(rows)])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_ylabel('between hands')

    ax = axes[2]
    ax.plot(t, result.penetration_m * 1e3, color='tab:red', lw=1.2, label='deepest penetration')
    distance = np.asarray(result.inter_hand_distance_m, dtype=np.float64)
    ax.plot(t, distance * 1e3, color='tab:gray', lw=1.0, label='distance between hands')
    commanded = np.asarray(result.command_distance_m, dtype=np.float64)
    ax.plot(t, commanded * 1e3, color='tab:purple', lw=1.0, ls=':',
            label='distance between hands, commanded')
    tolerance = result.config.penetration_tolerance_m if tolerance_m is None else tolerance_m
    ax.axhline(tolerance * 1e3, color='tab:red', ls='--', lw=0.8, label='tolerance')
    ax.axhline(0.0, color='black', lw=0.5)
    ax.set_ylabel('mm')
    ax.set_xlabel('time (s)')
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
