"""Kernel specifications: what each factor computes, its inputs and its float64 reference.

One module per kernel in this package defines a ``KERNEL = Kernel(...)``; it is found by
name, so adding a kernel is adding a file. Implementations of a kernel live in
``factorbench.impls`` (one module per paradigm). Plugins (``factorbench.discovery``) add
kernels with ``KERNEL = Kernel(...)`` or ``KERNELS = [...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from factorbench.discovery import PluginError, choose, discover, loaded_plugins

Params = Mapping[str, Any]
CheckInput = tuple[str, tuple]


@dataclass(frozen=True)
class Kernel:
    name: str
    signature: str
    summary: str
    defaults: Mapping[str, Any]
    """Benchmark parameters at default size (sizes and scalar arguments)."""
    quick: Mapping[str, Any]
    """Overrides of ``defaults`` for ``--quick`` runs."""
    size_param: str
    """The parameter ``--size`` sets; the time budget shrinks this one too."""
    make_args: Callable[[Params, np.random.Generator], tuple]
    """Builds the call arguments for ``params``; deterministic for a seeded generator."""
    reference: Callable[..., np.ndarray]
    """Obviously correct float64 implementation (slow is fine: it runs on check sizes)."""
    check_inputs: Callable[[np.random.Generator], Iterable[CheckInput]]
    """(label, args) pairs for the correctness check: edge sizes, NaN positions, layouts."""
    elements: Callable[[Params], int]
    """Input elements processed by one call (for elements/s)."""
    bytes_moved: Callable[[Params], int]
    """Least bytes one call must read and write: the memory-bandwidth floor."""
    validate: Callable[[Params], None]
    """Raises ValueError naming the bad parameter and what is allowed."""
    rtol: float
    atol: float = 0.0
    output_bytes: Callable[[Params], int] | None = None
    """Bytes of the new array one call returns (None: it returns none); the case is then
    held against the fresh-output floor, which includes allocating that output."""
    variants: Mapping[str, tuple] = field(default_factory=dict)
    """Parameters every run sweeps (e.g. memory order), so each paradigm meets each value."""
    trial: Mapping[str, Any] = field(default_factory=dict)
    """Small parameters for estimating a slow implementation's cost per element."""


def price_walk(rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
    """Price-like float64 data: a log random walk starting at 100 with small steps."""
    count = int(np.prod(size))
    steps = rng.normal(0.0, 1e-4, count)
    return (100.0 * np.exp(np.cumsum(steps))).reshape(size)


def require_int(params: Params, key: str, low: int, high: int | None = None) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{key} must be {allowed}, got {value}")
    return int(value)


def plugin_kernels(module) -> list[Kernel]:
    found = [getattr(module, "KERNEL", None), *getattr(module, "KERNELS", ())]
    return [spec for spec in found if isinstance(spec, Kernel)]


@cache
def _kernels() -> dict[str, Kernel]:
    found = discover(__name__, "KERNEL")
    defined_by = {name: f"factorbench.kernels.{name}" for name in found}
    for plugin in loaded_plugins():
        for spec in plugin_kernels(plugin.module) if plugin.module else ():
            if spec.name in found:
                raise PluginError(f"kernel {spec.name!r} is defined twice: by {defined_by[spec.name]} "
                                  f"and by {plugin.describe()}")
            found[spec.name] = spec
            defined_by[spec.name] = plugin.describe()
    return found


def kernels() -> list[str]:
    return list(_kernels())


def kernel(name: str) -> Kernel:
    return choose(_kernels(), name, "kernel")
