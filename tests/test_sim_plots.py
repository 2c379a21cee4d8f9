"""The plot of a simulation run says what the gate said: its title carries the verdict and
the failed checks, and its bound lines are the gate's own thresholds."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from handx_ros.retarget import build_retargeter
from handx_ros.retarget.trajectory import RobotTrajectory
from handx_ros.sim.evaluate import SimStatus, simulate
from handx_ros.sim.gate import GateConfig, judge, load_gate_config
from handx_ros.sim.plots import plot_result, result_figure
from handx_ros.sim.scene import build_scene

matplotlib.use('Agg')

FPS = 30.0
FRAMES = 24


@pytest.fixture(scope='module')
def too_fast():
    """A clip the simulation plays without trouble (status ok) that the gate fails: one finger
    of the right Inspire hand at 1 rad/s, twice its velocity limit."""
    retargeter = build_retargeter('inspire')
    names = retargeter.joint_names
    lower, upper = retargeter.joint_limits()
    qpos = np.tile(retargeter.neutral_qpos(), (FRAMES, 1))  # (T, n)
    column = names.index('inspire_right/index')
    qpos[:, column] = lower[column] + 0.1 * (upper[column] - lower[column]) \
        + np.clip(np.arange(FRAMES) - 8, 0, 8) / FPS * 1.0
    poses = np.tile(np.array([0.0, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0]), (FRAMES, 2, 1))
    poses[:, 0, 0], poses[:, 1, 0] = -0.25, 0.25
    trajectory = RobotTrajectory(robot='inspire', fps=FPS, joint_names=names, qpos=qpos,
                                 base_poses=poses)
    return simulate(build_scene('inspire'), trajectory)


def _bounds(fig) -> dict[str, float]:
    """The y of every horizontal line whose label names the gate, by label."""
    return {line.get_label(): float(line.get_ydata()[0])
            for ax in fig.axes for line in ax.get_lines()
            if line.get_label().startswith(('gate', 'penetrating frame'))}


def test_title_carries_the_gate_verdict_not_the_simulation_status(too_fast):
    assert too_fast.status == SimStatus.OK and not judge(too_fast).passed
    fig = result_figure(too_fast, gate=GateConfig())
    title = fig.axes[0].get_title()
    assert title.startswith('inspire: gate FAIL (joint_velocity)')
    assert 'simulation ok' in title
    fig = result_figure(too_fast, gate=GateConfig(max_joint_velocity_rad_s=2.0), title='clip')
    assert fig.axes[0].get_title().startswith('clip: gate pass\n')


def test_bound_lines_are_the_gates_own(too_fast, tmp_path):
    gate = GateConfig(max_penetration_m=0.007, max_command_penetration_m=0.012,
                      max_joint_error_p95_rad=0.2, max_penetrating_fraction=0.1)
    bounds = _bounds(result_figure(too_fast, gate=gate))
    assert bounds['gate: deepest penetration'] == pytest.approx(7.0)
    assert bounds['gate: commanded penetration'] == pytest.approx(-12.0)
    assert bounds['gate bound on its p95'] == pytest.approx(0.2)
    tolerance_mm = too_fast.config.penetration_tolerance_m * 1e3
    assert bounds['penetrating frame (gate: at most 10% of frames)'] == \
        pytest.approx(tolerance_mm)
    installed = load_gate_config()  # the default, as `handx sim`
    bounds = _bounds(result_figure(too_fast))
    assert bounds['gate: deepest penetration'] == pytest.approx(installed.max_penetration_m * 1e3)
    path = plot_result(too_fast, tmp_path / 'sub' / 'p.png')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
