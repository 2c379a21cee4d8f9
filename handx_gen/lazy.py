"""Package ``__init__`` files whose re-exported names are imported on first use.

A package re-exports its modules' public names (``from handx_ros.sim import simulate``), but
importing every module up front makes importing any one of them pay for all: ``handx_ros.sim.cli``
would load MuJoCo, and ``handx --help`` would load MuJoCo, Pinocchio, torch and scipy before
printing a line. :func:`lazy_exports` gives a package a module ``__getattr__`` (PEP 562) that
imports a name's module when the name is first asked for, and a ``__dir__`` that lists it::

    _EXPORTS = {'handx_ros.sim.evaluate': ('SimResult', 'simulate'), ...}
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

``from package import name``, ``package.name`` and ``from package import *`` work as before; an
import error of the defining module surfaces at that first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ['lazy_exports']


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that re-exports names lazily.

    Args:
        package: The package's ``__name__``.
        exports: Defining module (full name) -> the names the package re-exports from it.

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's top level. A name once loaded is
        stored in the package, so later lookups do not reach ``__getattr__``.

    Raises:
        ValueError: A name listed under two modules.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f'{package}: {name!r} is exported from both {where[name]} '
                                 f'and {module}')
            where[name] = module

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
