"""The demo's node graph, declared once.

Both ways of starting the demo read this module: ``launch/demo.launch.py`` turns every
:class:`NodeSpec` into a ``launch_ros`` ``Node`` action (for users with a ROS 2 install), and
``make demo`` (:mod:`handx_ros.demo_graph`) starts the same nodes as processes on the PyPI rclpy
wheels with :func:`node_command`. A test keeps the launch file and this module in step.

Parameters come from ``config/nodes.yaml`` (a ROS 2 parameter file, one section per node
name); the launch arguments (:data:`LAUNCH_ARGUMENTS`) override single parameters.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from handx_ros.paths import PACKAGE_NAME, config_dir

__all__ = [
    'DEMO_NODES',
    'LAUNCH_ARGUMENTS',
    'PARAMETERS_FILE',
    'LaunchArgument',
    'NodeSpec',
    'argument_overrides',
    'node_command',
    'parameters_path',
]

PARAMETERS_FILE = 'nodes.yaml'


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        executable: The console script (``ros2 run handx_ros <executable>``); the node's code
            is ``handx_ros.nodes.<executable>`` with a ``main(args=None)``.
        name: The node name, also its section in ``config/nodes.yaml``.
        remappings: ``(from, to)`` topic remappings.
    """

    executable: str
    name: str
    remappings: tuple[tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        return f'{PACKAGE_NAME}.nodes.{self.executable}'


@dataclasses.dataclass(frozen=True)
class LaunchArgument:
    """A launch argument and the node parameters it sets.

    Attributes:
        name: Argument name (``ros2 launch handx_ros demo.launch.py robot:=inspire``).
        default: Default value, as the launch file declares it.
        description: Shown by ``ros2 launch --show-args``.
        targets: ``(node name, parameter name)`` pairs the value goes to.
    """

    name: str
    default: str
    description: str
    targets: tuple[tuple[str, str], ...]


DEMO_NODES: tuple[NodeSpec, ...] = (
    NodeSpec('generation_node', 'handx_generation'),
    NodeSpec('retargeting_node', 'handx_retargeting'),
    NodeSpec('sim_node', 'handx_sim'),
)

LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument('robot', 'allegro', 'robot folder in robot_models/ (a pair or a humanoid)',
                   (('handx_retargeting', 'robot'), ('handx_sim', 'robot'))),
    LaunchArgument('model', 'diffusion', 'generation model: diffusion or ar',
                   (('handx_generation', 'model'),)),
    LaunchArgument('prompt', '', 'a prompt to generate at start (empty: wait for '
                   '/handx/text_command)', (('handx_generation', 'initial_prompt'),)),
)


def parameters_path() -> Path:
    """The installed (or source-tree) ``config/nodes.yaml``."""
    return config_dir() / PARAMETERS_FILE


def argument_overrides(arguments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per node name, the parameters that launch ``arguments`` set (unknown names rejected).

    Raises:
        KeyError: An argument that :data:`LAUNCH_ARGUMENTS` does not declare (the message lists
            the declared ones).
    """
    declared = {argument.name: argument for argument in LAUNCH_ARGUMENTS}
    overrides: dict[str, dict[str, Any]] = {spec.name: {} for spec in DEMO_NODES}
    for name, value in arguments.items():
        if name not in declared:
            raise KeyError(f'unknown launch argument {name!r}; declared: {sorted(declared)}')
        for node, parameter in declared[name].targets:
            overrides[node][parameter] = value
    return overrides


def node_command(spec: NodeSpec, parameters: Mapping[str, Any] | None = None, *,
                 parameters_file: Path | None = None,
                 python: str = sys.executable) -> list[str]:
    """The command line that starts ``spec`` as its own process without the ``ros2`` CLI:
    the node's module under ``python``, with the node name, the parameter file and single
    parameter overrides as ROS arguments (what ``launch_ros`` passes to the executable)."""
    command = [python, '-m', spec.module, '--ros-args', '-r', f'__node:={spec.name}',
               '--params-file', str(parameters_file or parameters_path())]
    for source, target in spec.remappings:
        command += ['-r', f'{source}:={target}']
    for name, value in (parameters or {}).items():
        command += ['-p', f'{name}:={_parameter_text(value)}']
    return command


def _parameter_text(value: Any) -> str:
    """A parameter value as ``-p name:=value`` takes it (YAML): strings that would not read
    back as themselves (another type, YAML syntax, control characters) double-quoted with
    escapes (a JSON string is a YAML double-quoted scalar)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        import yaml

        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = None
        if value and isinstance(parsed, str) and parsed == value:
            return value
        return json.dumps(value)
    if isinstance(value, Sequence):  # a flow sequence: its strings always quoted (',', ']')
        return '[' + ', '.join(json.dumps(v) if isinstance(v, str) else _parameter_text(v)
                               for v in value) + ']'
    raise TypeError(f'parameter value {value!r} is not a bool, number, string or list')
