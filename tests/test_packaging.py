"""The package builds as a ROS 2 user builds it (colcon) and declares what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ['setup.py', 'setup.cfg', 'package.xml']
PACKAGE_DIRS = ['handx_gen', 'handx_ros', 'resource', 'launch', 'config', 'robot_models']


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp('ws')
    source = workspace / 'src' / 'handx_ros'
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, source / name)
    for name in PACKAGE_DIRS:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns('__pycache__')
            )
    result = subprocess.run(
        [sys.executable, '-m', 'colcon', 'build', '--base-paths', 'src'],
        cwd=workspace, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (workspace / 'build_output.txt').write_text(result.stdout + result.stderr)
    return workspace / 'install' / 'handx_ros'


def test_colcon_build_prints_no_warning_from_the_package(colcon_install: Path):
    """colcon shows a package's stderr (setuptools' warnings, e.g. for ``tests_require``) in a
    ``--- stderr: handx_ros`` section; a clean build has none."""
    output = (colcon_install.parents[1] / 'build_output.txt').read_text()
    assert 'stderr: handx_ros' not in output, output
    # Byte-compiling is the environment's choice (PYTHONDONTWRITEBYTECODE), not the package's.
    warnings = [line for line in output.splitlines() if 'warning' in line.lower()
                and 'byte-compiling is disabled' not in line]
    assert not warnings, output


def test_colcon_installs_index_marker_and_data(colcon_install: Path):
    share = colcon_install / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'handx_ros').is_file()
    assert (share / 'handx_ros' / 'package.xml').is_file()
    for folder, pattern in [('launch', '*.launch.py'), ('config', '*.yaml')]:
        expected = sorted(p.name for p in (ROOT / folder).glob(pattern))
        installed = sorted(p.name for p in (share / 'handx_ros' / folder).glob(pattern))
        assert installed == expected, folder


def test_colcon_installs_console_script_where_ros2_run_looks(colcon_install: Path):
    script = colcon_install / 'lib' / 'handx_ros' / 'handx'
    assert script.is_file()
    site = next((colcon_install / 'lib').glob('python3*/site-packages'))
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, str(script), '--help'], capture_output=True, text=True, env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert 'usage: handx' in result.stdout


def test_package_xml_is_format_3_ament_python_with_runtime_deps():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'handx_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    for dep in ['rclpy', 'launch', 'launch_ros', 'ros2launch', 'sensor_msgs', 'trajectory_msgs',
                'geometry_msgs', 'visualization_msgs', 'diagnostic_msgs', 'std_msgs',
                'python3-numpy', 'python3-scipy', 'python3-torch', 'pinocchio']:
        assert dep in exec_deps, f'package.xml does not declare {dep}'


def test_torch_is_pinned_by_constraints():
    lines = (ROOT / 'constraints.txt').read_text().split()
    assert 'torch==2.13.0' in lines


def test_every_module_imports_first_without_a_cycle():
    """Each module imports on its own, before anything else of the project (no import cycle)."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import handx_gen, handx_ros
        names = [m.name for pkg in (handx_gen, handx_ros)
                 for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')
                 if not m.name.startswith('handx_ros.nodes')]
        failed = []
        for name in names:
            for loaded in [m for m in sys.modules if m.startswith(('handx_gen', 'handx_ros'))]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception as error:
                failed.append(f'{name}: {type(error).__name__}: {error}')
        print(len(names))
        assert not failed, failed
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 20


LAZY_PACKAGES = {'handx_gen.annotate': 'scipy', 'handx_gen.data': 'numpy',
                 'handx_gen.hand': 'numpy', 'handx_gen.models': 'torch',
                 'handx_ros.retarget': 'pinocchio', 'handx_ros.sim': 'mujoco'}


def test_packages_export_their_names_on_first_use():
    """A package's re-exported names load their module when first asked for: importing the
    package (or its ``cli``) loads no heavy library, and every name of ``__all__`` resolves."""
    code = textwrap.dedent(f"""
        import importlib, sys
        packages = {LAZY_PACKAGES!r}
        for name, heavy in packages.items():
            package = importlib.import_module(name)
            assert heavy not in sys.modules, (name, heavy)
            assert set(package.__all__) <= set(dir(package)), name
        for name in packages:
            package = importlib.import_module(name)
            for export in package.__all__:
                value = getattr(package, export)
                assert value is not None and export in vars(package), (name, export)
        from handx_ros.sim import simulate
        from handx_ros.sim.evaluate import simulate as defined
        assert simulate is defined
        try:
            importlib.import_module('handx_ros.sim').no_such_name
        except AttributeError as error:
            assert 'no_such_name' in str(error)
        else:
            raise AssertionError('no AttributeError')
        print('ok')
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == 'ok'
