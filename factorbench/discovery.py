"""Finding plug-in modules by name: kernels and workloads are one file each."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any


def discover(package: str, attribute: str) -> dict[str, Any]:
    """{obj.name: obj} for the ``attribute`` of every module in ``package``, sorted by name."""
    path = importlib.import_module(package).__path__
    found = {}
    for module in pkgutil.iter_modules(path):
        obj = getattr(importlib.import_module(f"{package}.{module.name}"), attribute)
        found[obj.name] = obj
    return dict(sorted(found.items()))


def choose(known: Mapping[str, Any], name: str, what: str) -> Any:
    """``known[name]``, or a ValueError that lists the valid choices."""
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; choose from: {', '.join(known) or '(none installed)'}")
    return known[name]
