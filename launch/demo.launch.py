"""The HandX demo graph: ``ros2 launch handx_ros demo.launch.py [robot:=...] [model:=...]
[prompt:='...']``.

Nothing about the graph is written here: the nodes come from :data:`handx_ros.graph.DEMO_NODES`
and the arguments from :data:`handx_ros.graph.LAUNCH_ARGUMENTS`, the same declaration that
``make demo`` starts on the PyPI rclpy wheels, so the two launchers cannot drift
(``tests/test_launch.py`` holds this file to it). Every node reads its section of the installed
``config/nodes.yaml``; an argument then overrides the single parameters it targets.

The nodes stand or fall together: when any node exits (it could not start, with an unknown
``robot:=`` say, or it died), the launch shuts the whole graph down, so no node goes on alone
(a generation node feeding nothing, a robot with no gate in front of it).
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from handx_ros.graph import DEMO_NODES, LAUNCH_ARGUMENTS, PARAMETERS_FILE
from handx_ros.paths import PACKAGE_NAME, share_dir

# Parameter types a launch argument's text is converted to (the type of the parameter's value
# in nodes.yaml), so that a prompt such as 'yes' or '' stays a string.
SCALAR_TYPES = (bool, int, float, str)


def package_share() -> str:
    """The installed share folder (ament index), else the source checkout's
    (:func:`handx_ros.paths.share_dir`, for a launch from a source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return str(share_dir())
    try:
        return get_package_share_directory(PACKAGE_NAME)
    except (LookupError, OSError):  # PackageNotFoundError is a KeyError; OSError: no index
        return str(share_dir())


def node_parameters(parameters_file: str) -> dict[str, dict[str, Any]]:
    """Per node name, the ``ros__parameters`` section of ``parameters_file``."""
    with open(parameters_file, encoding='utf-8') as stream:
        sections = yaml.safe_load(stream)
    return {name: section.get('ros__parameters', {}) for name, section in sections.items()}


def argument_parameters(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per node name, ``{parameter: value}`` for the parameters launch arguments set.

    Raises:
        KeyError: An argument targets a parameter that the parameter file does not declare.
    """
    overrides: dict[str, dict[str, Any]] = {spec.name: {} for spec in DEMO_NODES}
    for argument in LAUNCH_ARGUMENTS:
        for node, parameter in argument.targets:
            declared = sections.get(node, {})
            if parameter not in declared:
                raise KeyError(f'launch argument {argument.name!r} sets {node}.{parameter}, '
                               f'which {PARAMETERS_FILE} does not declare: {sorted(declared)}')
            value_type = type(declared[parameter])
            overrides[node][parameter] = ParameterValue(
                LaunchConfiguration(argument.name),
                value_type=value_type if value_type in SCALAR_TYPES else None)
    return overrides


def generate_launch_description() -> LaunchDescription:
    parameters_file = os.path.join(package_share(), 'config', PARAMETERS_FILE)
    overrides = argument_parameters(node_parameters(parameters_file))
    arguments = [
        DeclareLaunchArgument(argument.name, default_value=argument.default,
                              description=argument.description)
        for argument in LAUNCH_ARGUMENTS
    ]
    nodes = [
        Node(
            package=PACKAGE_NAME,
            executable=spec.executable,
            name=spec.name,
            parameters=[parameters_file, overrides[spec.name]] if overrides[spec.name]
            else [parameters_file],
            remappings=list(spec.remappings),
            output='screen',
            on_exit=Shutdown(reason=f'{spec.name} exited; the demo graph stands or falls as one'),
        )
        for spec in DEMO_NODES
    ]
    return LaunchDescription([*arguments, *nodes])
