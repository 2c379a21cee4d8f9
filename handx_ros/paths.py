"""Where the package's data lives: the ament share folder, or the source tree.

Under ``colcon build`` the data files (``config/``, ``launch/``, ``robot_models/``) are
installed to ``share/handx_ros``; an editable ``pip install -e .`` does not install them, and
the source tree is used instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PACKAGE_NAME = 'handx_ros'
SOURCE_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """The package's share folder (ament index first, then the source checkout)."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        pass
    else:
        try:
            return Path(get_package_share_directory(PACKAGE_NAME))
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    if (SOURCE_ROOT / 'package.xml').is_file():
        return SOURCE_ROOT
    raise FileNotFoundError(
        f'cannot find the {PACKAGE_NAME} share folder: not in the ament index and no '
        f'package.xml in {SOURCE_ROOT}'
    )


def config_dir() -> Path:
    """Folder of the installed ``config/*.yaml`` parameter files."""
    return share_dir() / 'config'


def robot_models_dir() -> Path:
    """Folder holding one sub-folder per robot."""
    return share_dir() / 'robot_models'
