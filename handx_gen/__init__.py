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


def __getattr__(name: str):  # the generator imports torch: load it on first use only
    if name == 'Generator':
        from handx_gen.generate import Generator

        return Generator
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'ConfigError',
    'DataSourceError',
    'Generator',
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
