"""What the benchmark scripts share (run as scripts, this folder is on ``sys.path``)."""

from __future__ import annotations

import json
import math
import os
import platform
import sys


def save_report(report: dict, path: str | None) -> None:
    """Write ``report`` as indented JSON to ``path`` (nothing when ``path`` is empty)."""
    if path:
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(report, handle, indent=2)
        print(f'saved {path}')


def machine() -> dict:
    """What the numbers were measured on: platform, Python, CPUs and the load at the end."""
    return {'platform': platform.platform(), 'python': sys.version.split()[0],
            'cpus': os.cpu_count(), 'load_average_1min': os.getloadavg()[0]}



def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (nan, nan when ``n`` is 0)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)
