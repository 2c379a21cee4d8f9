"""MuJoCo evaluation of robot trajectories and command safety (numpy, mujoco; no rclpy).

:mod:`~handx_ros.sim.scene` builds the scene of a robot folder, :mod:`~handx_ros.sim.evaluate`
plays a trajectory in it and measures tracking, contacts and stability,
:mod:`~handx_ros.sim.gate` judges the result, :mod:`~handx_ros.sim.safety` keeps streamed
commands inside limits, and :mod:`~handx_ros.sim.render` / :mod:`~handx_ros.sim.plots` show
what happened.
"""

from handx_ros.sim.evaluate import SimConfig, SimResult, SimStatus, simulate
from handx_ros.sim.gate import GateConfig, GateVerdict, judge, load_gate_config
from handx_ros.sim.safety import CommandSafety, SafetyConfig, filter_trajectory
from handx_ros.sim.scene import SceneConfig, SimScene, build_scene

__all__ = [
    'CommandSafety',
    'GateConfig',
    'GateVerdict',
    'SafetyConfig',
    'SceneConfig',
    'SimConfig',
    'SimResult',
    'SimScene',
    'SimStatus',
    'build_scene',
    'filter_trajectory',
    'judge',
    'load_gate_config',
    'simulate',
]
