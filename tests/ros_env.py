"""Helpers for tests that run ROS 2 processes in an isolated domain on loopback."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Mapping


def isolated_ros_env(seed: int | None = None) -> dict[str, str]:
    """Environment for child processes: a private ROS domain, discovery on localhost only.

    The domain id is drawn from 1-100 (0 is the default everybody uses) so parallel test runs
    and other ROS users on the machine do not see each other's traffic.
    """
    rng = random.Random(seed if seed is not None else os.getpid())
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(rng.randint(1, 100))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)  # deprecated in favour of the discovery range
    env['PYTHONUNBUFFERED'] = '1'
    return env


def start_python(code: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter of the test's environment."""
    return subprocess.Popen(
        [sys.executable, '-c', code],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
