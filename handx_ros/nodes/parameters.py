"""Typed node parameters: declared with their defaults, read back checked.

ROS parameters are strictly typed: ``-p rate_hz:=100`` is an integer and would not set a
``double`` parameter. :func:`declare_parameters` declares each parameter with dynamic typing
and checks the value against its default's type itself (an integer is accepted where a float
is expected), so a wrong value is one :class:`~handx_gen.errors.ConfigError` naming the
parameter, the value and the type expected, not a traceback from rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from handx_gen.errors import ConfigError

__all__ = ['declare_parameters']


def declare_parameters(node: Node, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Declare ``defaults`` (name -> default of type bool, int, float or str) on ``node`` and
    return the values in effect (overrides from the parameter file or the command line).

    Raises:
        ConfigError: A value of the wrong type, a non-finite float, or a parameter rclpy
            refuses (the message names it).
    """
    values: dict[str, Any] = {}
    for name, default in defaults.items():
        try:
            value = node.declare_parameter(
                name, default, ParameterDescriptor(dynamic_typing=True)).value
        except ParameterException as error:
            raise ConfigError(f'parameter {name!r}: {error}') from None
        values[name] = _checked(node.get_name(), name, value, default)
    return values


def _checked(node_name: str, name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    where = f'parameter {name!r} of {node_name}'
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(f'{where} must be a {expected.__name__}, got {value!r}')
    if expected is float and not math.isfinite(value):
        raise ConfigError(f'{where} must be finite, got {value!r}')
    return value
