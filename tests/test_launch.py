"""One graph, two launchers: launch/demo.launch.py and handx_ros/graph.py cannot drift.

Where ROS 2 ``launch``/``launch_ros`` are importable the real launch description is built and
checked against :mod:`handx_ros.graph`. They are not on PyPI, so here the file is checked
statically (``ast``) and executed against small stand-ins for the ``launch`` modules that
record what it constructs; both checks fail if the file stops following the graph. The graph's
own pieces (argument overrides, the command line ``make demo`` starts a node with, the
parameter file) are checked too, the command line by an rclpy process that parses it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from ros_env import isolated_ros_env

from handx_ros import graph
from handx_ros.graph import (
    DEMO_NODES,
    LAUNCH_ARGUMENTS,
    LaunchArgument,
    NodeSpec,
    argument_overrides,
    node_command,
    parameters_path,
)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'demo.launch.py'


def real_launch_available() -> bool:
    """ROS 2 launch and launch_ros (PyPI's unrelated 'launch' package does not count)."""
    try:
        import launch.actions
        import launch_ros.actions  # noqa: F401
    except ImportError:
        return False
    return hasattr(launch, 'LaunchDescription')


def load_launch_file() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location('handx_demo_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def node_sections() -> dict[str, dict[str, Any]]:
    sections = yaml.safe_load(parameters_path().read_text())
    return {name: section['ros__parameters'] for name, section in sections.items()}


def expected_overrides() -> dict[str, dict[str, str]]:
    """Per node, parameter -> the launch argument that sets it (via the graph's own
    :func:`argument_overrides`, passing each argument its name as value)."""
    return argument_overrides({a.name: a.name for a in LAUNCH_ARGUMENTS})


# ---------------------------------------------------------------------------------------------
# Stand-ins for launch / launch_ros: same constructor signatures, they record their arguments.


class Recorded:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.kwargs})'


class FakeLaunchDescription(Recorded):
    def __init__(self, initial_entities: list[Any] | None = None, *,
                 deprecated_reason: str | None = None) -> None:
        super().__init__(initial_entities=initial_entities)
        self.entities = list(initial_entities or [])


class FakeDeclareLaunchArgument(Recorded):
    def __init__(self, name: str, *, default_value: Any = None, description: str | None = None,
                 choices: list[str] | None = None) -> None:
        super().__init__(name=name, default_value=default_value, description=description,
                         choices=choices)


class FakeLaunchConfiguration(Recorded):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        super().__init__(variable_name=variable_name, default=default)


class FakeParameterValue(Recorded):
    def __init__(self, value: Any, *, value_type: Any = None) -> None:
        super().__init__(value=value, value_type=value_type)


class FakeShutdown(Recorded):
    def __init__(self, *, reason: str = 'reason not given') -> None:
        super().__init__(reason=reason)


class FakeNode(Recorded):
    def __init__(self, *, executable: str, package: str | None = None, name: str | None = None,
                 namespace: str | None = None, exec_name: str | None = None,
                 parameters: list[Any] | None = None, remappings: list[Any] | None = None,
                 ros_arguments: list[Any] | None = None, arguments: list[Any] | None = None,
                 output: str = 'log', emulate_tty: bool = False, on_exit: Any = None) -> None:
        super().__init__(executable=executable, package=package, name=name, namespace=namespace,
                         parameters=parameters, remappings=remappings, output=output,
                         on_exit=on_exit)


@pytest.fixture
def fake_launch(monkeypatch) -> None:
    modules = {
        'launch': {'LaunchDescription': FakeLaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': FakeDeclareLaunchArgument,
                           'Shutdown': FakeShutdown},
        'launch.launch_description': {'LaunchDescription': FakeLaunchDescription},
        'launch.substitutions': {'LaunchConfiguration': FakeLaunchConfiguration},
        'launch_ros': {},
        'launch_ros.actions': {'Node': FakeNode},
        'launch_ros.parameter_descriptions': {'ParameterValue': FakeParameterValue},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


def built_description() -> tuple[list[FakeDeclareLaunchArgument], list[FakeNode]]:
    description = load_launch_file().generate_launch_description()
    assert isinstance(description, FakeLaunchDescription)
    arguments = [e for e in description.entities if isinstance(e, FakeDeclareLaunchArgument)]
    nodes = [e for e in description.entities if isinstance(e, FakeNode)]
    assert len(arguments) + len(nodes) == len(description.entities), description.entities
    return arguments, nodes


def check_against_graph(arguments: list[FakeDeclareLaunchArgument],
                        nodes: list[FakeNode]) -> None:
    """What the launch file built is exactly the graph (the module's current values)."""
    sections = node_sections()
    assert [a.kwargs for a in arguments] == [
        {'name': a.name, 'default_value': a.default, 'description': a.description,
         'choices': None} for a in graph.LAUNCH_ARGUMENTS]
    assert len(nodes) == len(graph.DEMO_NODES)
    overrides = argument_overrides({a.name: a.name for a in graph.LAUNCH_ARGUMENTS})
    for node, spec in zip(nodes, graph.DEMO_NODES, strict=True):
        kwargs = dict(node.kwargs)
        parameters = kwargs.pop('parameters')
        # A node that exits (it cannot start, or dies) takes the whole graph down with it.
        on_exit = kwargs.pop('on_exit')
        assert isinstance(on_exit, FakeShutdown), on_exit
        assert spec.name in on_exit.kwargs['reason']
        assert kwargs == {'executable': spec.executable, 'package': 'handx_ros',
                          'name': spec.name, 'namespace': None,
                          'remappings': [tuple(r) for r in spec.remappings],
                          'output': 'screen'}
        # The parameter file first, then the argument overrides (later ones win in ROS 2).
        assert Path(parameters[0]) == parameters_path() and parameters_path().is_file()
        expected = overrides[spec.name]
        if not expected:
            assert parameters == [parameters[0]]
            continue
        assert len(parameters) == 2
        built = {name: (value.kwargs['value'].kwargs['variable_name'],
                        value.kwargs['value_type'])
                 for name, value in parameters[1].items()}
        assert built == {name: (argument, type(sections[spec.name][name]))
                         for name, argument in expected.items()}


# ---------------------------------------------------------------------------------------------
# The launch file


def test_launch_file_builds_exactly_the_graph(fake_launch):
    arguments, nodes = built_description()
    check_against_graph(arguments, nodes)
    # The demo graph as of issue 7, spelled out once here so a change is deliberate.
    assert [n.kwargs['executable'] for n in nodes] == [
        'generation_node', 'retargeting_node', 'sim_node']
    assert [a.kwargs['name'] for a in arguments] == ['robot', 'model', 'prompt']


def test_launch_file_follows_a_changed_graph(fake_launch, monkeypatch):
    """Nothing is copied into the launch file: a node or argument added to the graph (with a
    float parameter and a remapping) appears in the description, typed as nodes.yaml is."""
    extra_node = NodeSpec('sim_node', 'handx_sim_b', (('/handx/sim_report', '/b/sim_report'),))
    extra_argument = LaunchArgument('rate', '50.0', 'command rate', (('handx_sim', 'rate_hz'),))
    monkeypatch.setattr(graph, 'DEMO_NODES', (*DEMO_NODES, extra_node))
    monkeypatch.setattr(graph, 'LAUNCH_ARGUMENTS', (*LAUNCH_ARGUMENTS, extra_argument))
    arguments, nodes = built_description()
    check_against_graph(arguments, nodes)
    assert nodes[-1].kwargs['name'] == 'handx_sim_b'
    assert nodes[-1].kwargs['remappings'] == [('/handx/sim_report', '/b/sim_report')]
    assert len(nodes[-1].kwargs['parameters']) == 1  # no argument targets it
    sim = next(n for n in nodes if n.kwargs['name'] == 'handx_sim')
    rate = sim.kwargs['parameters'][1]['rate_hz']
    assert rate.kwargs['value_type'] is float
    assert rate.kwargs['value'].kwargs['variable_name'] == 'rate'
    assert arguments[-1].kwargs['default_value'] == '50.0'


def test_launch_file_rejects_an_argument_for_an_undeclared_parameter(fake_launch, monkeypatch):
    wrong = LaunchArgument('typo', 'x', 'targets nothing', (('handx_sim', 'rate'),))
    monkeypatch.setattr(graph, 'LAUNCH_ARGUMENTS', (*LAUNCH_ARGUMENTS, wrong))
    with pytest.raises(KeyError, match=r"'typo' sets handx_sim\.rate"):
        built_description()


def test_launch_file_structure():
    """Statically: it imports the graph, declares arguments and nodes in loops over it, uses
    the installed nodes.yaml through the ament index, and spells out no node of its own."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {('handx_ros.graph', 'DEMO_NODES'), ('handx_ros.graph', 'LAUNCH_ARGUMENTS'),
            ('handx_ros.graph', 'PARAMETERS_FILE'), ('launch_ros.actions', 'Node'),
            ('launch.actions', 'DeclareLaunchArgument'),
            ('launch.substitutions', 'LaunchConfiguration'),
            ('ament_index_python.packages', 'get_package_share_directory')} <= imported

    def calls_in_loop_over(function: str, iterable: str) -> list[ast.Call]:
        found = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
                loops = [g.iter for g in node.generators]
                body = node.elt
            elif isinstance(node, ast.For):
                loops, body = [node.iter], node
            else:
                continue
            if not any(isinstance(i, ast.Name) and i.id == iterable for i in loops):
                continue
            found += [c for c in ast.walk(body) if isinstance(c, ast.Call)
                      and isinstance(c.func, ast.Name) and c.func.id == function]
        return found

    node_calls = calls_in_loop_over('Node', 'DEMO_NODES')
    assert len(node_calls) == 1
    keywords = {k.arg: k.value for k in node_calls[0].keywords}
    assert set(keywords) >= {'package', 'executable', 'name', 'parameters', 'remappings',
                             'output'}
    for key, attribute in [('executable', 'executable'), ('name', 'name')]:
        value = keywords[key]
        assert isinstance(value, ast.Attribute) and value.attr == attribute, key
    assert len(calls_in_loop_over('DeclareLaunchArgument', 'LAUNCH_ARGUMENTS')) == 1
    assert len(calls_in_loop_over('LaunchConfiguration', 'LAUNCH_ARGUMENTS')) == 1
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    # No node, executable or argument name written into the file.
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    names = {s.executable for s in DEMO_NODES} | {s.name for s in DEMO_NODES}
    names |= {a.name for a in LAUNCH_ARGUMENTS} | {'nodes.yaml'}
    assert not strings & names
    assert 'config' in strings  # <share>/config/<PARAMETERS_FILE>


@pytest.mark.skipif(not real_launch_available(), reason='ROS 2 launch/launch_ros not installed')
def test_real_launch_description_matches_graph(monkeypatch, tmp_path):
    """With a ROS 2 install: the real actions, their arguments recorded as they are built,
    and the launch arguments' defaults evaluated through a real launch context."""
    import launch.actions  # binds `launch` too
    import launch_ros.actions
    import launch_ros.parameter_descriptions

    built: dict[str, list[Any]] = {'Node': [], 'DeclareLaunchArgument': []}

    class RecordingNode(launch_ros.actions.Node):
        def __init__(self, **kwargs: Any) -> None:
            built['Node'].append(kwargs)
            super().__init__(**kwargs)

    class RecordingArgument(launch.actions.DeclareLaunchArgument):
        def __init__(self, name: str, **kwargs: Any) -> None:
            built['DeclareLaunchArgument'].append({'name': name, **kwargs})
            super().__init__(name, **kwargs)

    monkeypatch.setattr(launch_ros.actions, 'Node', RecordingNode)
    monkeypatch.setattr(launch.actions, 'DeclareLaunchArgument', RecordingArgument)
    description = load_launch_file().generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    assert len(description.entities) == len(DEMO_NODES) + len(LAUNCH_ARGUMENTS)
    assert [kw['name'] for kw in built['DeclareLaunchArgument']] == [
        a.name for a in LAUNCH_ARGUMENTS]
    assert [(kw['package'], kw['executable'], kw['name']) for kw in built['Node']] == [
        ('handx_ros', s.executable, s.name) for s in DEMO_NODES]

    context = launch.LaunchContext()
    for action in description.entities:
        if isinstance(action, launch.actions.DeclareLaunchArgument):
            action.execute(context)
    sections = node_sections()
    for kwargs, spec in zip(built['Node'], DEMO_NODES, strict=True):
        assert isinstance(kwargs['on_exit'], launch.actions.Shutdown)
        assert Path(kwargs['parameters'][0]).name == 'nodes.yaml'
        assert Path(kwargs['parameters'][0]).is_file()
        for name, argument in expected_overrides()[spec.name].items():
            value = kwargs['parameters'][1][name]
            assert isinstance(value, launch_ros.parameter_descriptions.ParameterValue)
            evaluated = value.evaluate(context)
            default = next(a.default for a in LAUNCH_ARGUMENTS if a.name == argument)
            assert evaluated == type(sections[spec.name][name])(default)


# ---------------------------------------------------------------------------------------------
# The graph and its parameter file


def test_parameter_file_has_a_section_per_node_and_every_argument_target():
    sections = yaml.safe_load(parameters_path().read_text())
    for spec in DEMO_NODES:
        assert spec.name in sections, spec.name
        assert isinstance(sections[spec.name].get('ros__parameters'), dict), spec.name
    parameters = node_sections()
    node_names = {spec.name for spec in DEMO_NODES}
    for argument in LAUNCH_ARGUMENTS:
        assert argument.targets, argument.name
        for node, parameter in argument.targets:
            assert node in node_names, (argument.name, node)
            assert parameter in parameters[node], (argument.name, node, parameter)
            # Both launchers start the same graph with or without the argument given.
            value = parameters[node][parameter]
            assert type(value)(argument.default) == value, (argument.name, node, parameter)


def test_graph_names_are_unique_and_valid():
    names = [spec.name for spec in DEMO_NODES]
    assert len(set(names)) == len(names)
    assert len({a.name for a in LAUNCH_ARGUMENTS}) == len(LAUNCH_ARGUMENTS)
    for spec in DEMO_NODES:
        assert spec.module == f'handx_ros.nodes.{spec.executable}'
        assert spec.name.isidentifier() and spec.executable.isidentifier()


def test_every_node_executable_exists_with_main_and_console_script():
    """Each executable is a module with a main(args=None) and a console script of the same
    name (what `ros2 run handx_ros <executable>` and launch_ros start)."""
    setup = ast.parse((ROOT / 'setup.py').read_text())
    scripts = [n.value for n in ast.walk(setup) if isinstance(n, ast.Constant)
               and isinstance(n.value, str) and '=' in n.value and ':' in n.value]
    scripts = {s.split('=')[0].strip(): s.split('=')[1].strip() for s in scripts}
    for spec in DEMO_NODES:
        found = importlib.util.find_spec(spec.module)
        assert found is not None and found.origin, spec.module
        module = ast.parse(Path(found.origin).read_text())
        mains = [f for f in module.body if isinstance(f, ast.FunctionDef) and f.name == 'main']
        assert mains and [a.arg for a in mains[0].args.args] == ['args'], spec.module
        assert scripts.get(spec.executable) == f'{spec.module}:main', spec.executable


def test_argument_overrides_route_values_and_reject_unknown_names():
    overrides = argument_overrides({'robot': 'inspire', 'prompt': 'wave'})
    assert set(overrides) == {spec.name for spec in DEMO_NODES}
    assert overrides['handx_retargeting'] == {'robot': 'inspire'}
    assert overrides['handx_sim'] == {'robot': 'inspire'}
    assert overrides['handx_generation'] == {'initial_prompt': 'wave'}
    assert argument_overrides({}) == {spec.name: {} for spec in DEMO_NODES}
    with pytest.raises(KeyError) as error:
        argument_overrides({'robto': 'inspire'})
    message = str(error.value)
    assert "'robto'" in message
    assert all(a.name in message for a in LAUNCH_ARGUMENTS)


# Prompts that a naive `-p name:=value` would turn into another type, a YAML error or
# another string.
HOSTILE_PROMPTS = ['', 'yes', '1.5', 'null', 'a: b', "it's", '[1, 2]', '{open', '#hash',
                   '  padded  ', '@at', '*alias', '!tag', '|pipe', ',comma', 'tab\there',
                   'two\nlines', 'quote " and \\ backslash', 'déjà vu 手']

PARSE_COMMANDS = textwrap.dedent("""
    import json, sys
    import rclpy
    from rclpy.node import Node

    rclpy.init(args=[])
    results = []
    for command in json.loads(sys.stdin.read()):
        ros_args = command[command.index('--ros-args'):]
        node = Node('unnamed', cli_args=ros_args, use_global_arguments=False,
                    automatically_declare_parameters_from_overrides=True)
        parameters = {name: p.value for name, p in node.get_parameters_by_prefix('').items()
                      if name not in ('use_sim_time', 'start_type_description_service')}
        results.append({'name': node.get_name(), 'parameters': parameters,
                        'motion': node.resolve_topic_name('/handx/motion')})
        node.destroy_node()
    rclpy.shutdown()
    print(json.dumps(results))
""")


@pytest.mark.ros
def test_node_command_is_parsed_by_rclpy_as_intended():
    """The command line ``make demo`` starts each node with gives, once rclpy parses it, the
    node's name, its nodes.yaml section with the overrides applied (typed, strings intact)
    and its remappings."""
    sections = node_sections()
    cases: list[tuple[NodeSpec, dict[str, Any], dict[str, Any]]] = []
    for spec in DEMO_NODES:
        overrides = argument_overrides({'robot': 'inspire', 'model': 'ar',
                                        'prompt': 'clap: twice'})[spec.name]
        cases.append((spec, overrides, {**sections[spec.name], **overrides}))
    generation = DEMO_NODES[0]
    for prompt in HOSTILE_PROMPTS:
        overrides = {'initial_prompt': prompt}
        cases.append((generation, overrides, {**sections[generation.name], **overrides}))
    numbers = {'seconds': 2.5, 'seed': 7, 'queue_size': 0}
    cases.append((generation, numbers, {**sections[generation.name], **numbers}))
    remapped = dataclasses.replace(generation, name='handx_probe',
                                   remappings=(('/handx/motion', '/probe/motion'),))
    cases.append((remapped, {'seed': 3}, {'seed': 3}))

    commands = [node_command(spec, overrides) for spec, overrides, _ in cases]
    for command, (spec, _, _) in zip(commands, cases, strict=True):
        assert command[:3] == [sys.executable, '-m', spec.module]
    result = subprocess.run([sys.executable, '-c', PARSE_COMMANDS], input=json.dumps(commands),
                            env=isolated_ros_env(seed=33), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    for got, (spec, _, expected) in zip(parsed, cases, strict=True):
        assert got['name'] == spec.name
        assert got['parameters'] == expected
        for name, value in expected.items():  # 2.5 stays a float, 7 an int, 'yes' a string
            assert type(got['parameters'][name]) is type(value), (name, value)
    assert parsed[-1]['motion'] == '/probe/motion'
    assert parsed[0]['motion'] == '/handx/motion'


def test_node_command_rejects_values_ros_parameters_cannot_hold():
    with pytest.raises(TypeError, match='not a bool, number, string or list'):
        node_command(DEMO_NODES[0], {'seed': {'nested': 1}})
