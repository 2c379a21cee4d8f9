"""MuJoCo evaluation of robot trajectories and command safety (numpy, mujoco; no rclpy).

:mod:`~handx_ros.sim.scene` builds the scene of a robot folder, :mod:`~handx_ros.sim.evaluate`
plays a trajectory in it and measures tracking, contacts and stability,
:mod:`~handx_ros.sim.gate` judges the result, :mod:`~handx_ros.sim.safety` keeps streamed
commands inside limits, and :mod:`~handx_ros.sim.render` / :mod:`~handx_ros.sim.plots` show
what happened.
"""

from handx_gen.lazy import lazy_exports

# module -> the names re-exported from it, imported on first use (handx_gen.lazy)
_EXPORTS = {
    'handx_ros.sim.evaluate': ('SimConfig', 'SimResult', 'SimStatus', 'simulate'),
    'handx_ros.sim.gate': ('GateConfig', 'GateVerdict', 'judge', 'load_gate_config'),
    'handx_ros.sim.safety': ('CommandSafety', 'SafetyConfig', 'filter_trajectory'),
    'handx_ros.sim.scene': ('SceneConfig', 'SimScene', 'build_scene'),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
