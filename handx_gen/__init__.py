"""HandX library: hand model, motion container, data, annotation, models and evaluation.

This package never imports rclpy or ROS message packages.
"""

from handx_gen.errors import (
    ConfigError,
    DataSourceError,
    HandModelError,
    HandxError,
    ManoModelError,
    ModelError,
    MotionError,
    MotionFormatError,
    RetargetError,
    RobotModelError,
    SimulationError,
    SynthesisError,
)

__version__ = '0.1.0'

__all__ = [
    'ConfigError',
    'DataSourceError',
    'HandModelError',
    'HandxError',
    'ManoModelError',
    'ModelError',
    'MotionError',
    'MotionFormatError',
    'RetargetError',
    'RobotModelError',
    'SimulationError',
    'SynthesisError',
    '__version__',
]
