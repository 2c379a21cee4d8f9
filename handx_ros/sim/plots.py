"""PNG plots of a simulation run: tracking error, contact timelines and penetration.

One figure, three panels sharing the time axis, titled with the gate's verdict (the failed
checks named) and drawn with the gate's own bounds, so the picture says what the gate said:

1. tracking: per frame the largest joint error (rad, left axis) and the largest fingertip
   error (mm, right axis), with the gate's bounds on their 95th percentiles;
2. contacts: the human between-hands contact events (when the clip was given) above the
   robot's simulated ones, as bars;
3. penetration: the deepest penetration per frame (mm) with the gate's bound on it and the
   depth beyond which a frame counts as penetrating (the gate bounds the share of such
   frames), and the signed distance between the hands, simulated and as commanded, with the
   gate's bound on the commanded penetration (below zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from handx_ros.sim.evaluate import SimResult
from handx_ros.sim.gate import GateConfig, judge, load_gate_config

__all__ = ['plot_result', 'result_figure']


def plot_result(result: SimResult, path: str | Path, *, gate: GateConfig | None = None,
                title: str | None = None) -> Path:
    """Write the three-panel PNG of ``result`` to ``path``; returns the path.

    Args:
        result: What :func:`~handx_ros.sim.evaluate.simulate` measured.
        path: The PNG to write (its folder is created).
        gate: The thresholds the clip is judged by (default: the installed
            ``config/sim_gate.yaml``, as ``handx sim``).
        title: What the title starts with (default the robot's name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = result_figure(result, gate=gate, title=title)
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def result_figure(result: SimResult, *, gate: GateConfig | None = None,
                  title: str | None = None) -> Any:
    """The matplotlib figure :func:`plot_result` saves (same arguments); close it when done."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    gate = load_gate_config() if gate is None else gate
    verdict = judge(result, gate)
    failed = [check.name for check in verdict.checks if not check.passed]
    heading = f'{title or result.robot}: gate ' + (
        'pass' if verdict.passed else f'FAIL ({", ".join(failed)})')
    t = result.times_s  # (F,)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True,
                             gridspec_kw={'height_ratios': [2, 1, 2]})
    ax = axes[0]
    if result.joint_error_rad.size:
        ax.plot(t, result.joint_error_rad.max(axis=1), color='tab:blue', lw=1.2,
                label='max joint error (rad)')
    ax.axhline(gate.max_joint_error_p95_rad, color='tab:blue', ls='--', lw=0.8,
               label='gate bound on its p95')
    ax.set_ylabel('joint error (rad)', color='tab:blue')
    if result.fingertip_error_m.size:
        twin = ax.twinx()
        twin.plot(t, result.fingertip_error_m.max(axis=1) * 1e3, color='tab:orange', lw=1.2)
        twin.axhline(gate.max_fingertip_error_p95_m * 1e3, color='tab:orange', ls='--',
                     lw=0.8)
        twin.set_ylabel('max fingertip error (mm)', color='tab:orange')
    ax.set_title(f'{heading}\nsimulation {result.status.value}, '
                 f'{result.realtime_factor:.0f}x real time', fontsize=10)

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
    ax.axhline(gate.max_penetration_m * 1e3, color='tab:red', ls='--', lw=0.8,
               label='gate: deepest penetration')
    ax.axhline(result.config.penetration_tolerance_m * 1e3, color='tab:red', ls=':', lw=0.8,
               label=f'penetrating frame (gate: at most '
                     f'{gate.max_penetrating_fraction:.0%} of frames)')
    ax.axhline(-gate.max_command_penetration_m * 1e3, color='tab:purple', ls='--', lw=0.8,
               label='gate: commanded penetration')
    ax.axhline(0.0, color='black', lw=0.5)
    ax.set_ylabel('mm')
    ax.set_xlabel('time (s)')
    ax.legend(loc='upper right', fontsize=7)
    fig.tight_layout()
    return fig
