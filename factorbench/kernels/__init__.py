"""Kernel specifications: what each factor computes, its inputs and its float64 reference.

One module per kernel in this package defines a ``KERNEL = Kernel(...)``; it is found by
name, so adding a kernel is adding a file. Implementations of a kernel live in
``factorbench.impls`` (one module per paradigm). Plugins (``factorbench.discovery``) add
kernels with ``KERNEL = Kernel(...)`` or ``KERNELS = [...]``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from factorbench.discovery import PluginError, choose, discover, loaded_plugins

Params = Mapping[str, Any]
CheckInput = tuple[str, tuple]


@dataclass(frozen=True)
class InputClass:
    """A kind of input real data contains, with the behaviour the kernel promises on it.

    The kernel's reference implements exactly ``semantics``; the correctness matrix
    (factorbench.measure.matrix) runs every implementation on ``cases`` and compares. Where
    the reference raises ValueError on every case (empty input, wrong dimensions), the
    promise is that same ValueError, message included, from every implementation."""

    name: str
    short: str
    """Column header of the CLI matrix (a few characters)."""
    semantics: str
    cases: Callable[[np.random.Generator], Iterable[CheckInput]]
    rtol: float | None = None
    atol: float | None = None
    """Tolerances of this class where the kernel's own would not test the promise (e.g. an
    absolute tolerance on 1e12-level data, where a relative one hides lost digits)."""


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
    classes: tuple[InputClass, ...] = ()
    """Input classes beyond the check inputs, profiled by the correctness matrix but not
    deciding whether an implementation is timed."""
    trusted: str | None = None
    """The paradigm (or implementation) whose code, once it passes the check, gives the answer a timed
    call is compared with at sizes over ``reference_elements``: for a kernel whose reference
    is a slow Python loop. None: the reference gives the answer at every size."""
    reference_elements: int = 0
    """The most elements (``elements(params)``) at which the reference gives that answer
    when ``trusted`` is set. A count, not a timing, so the choice is the same on every
    machine and under callgrind."""

    def __post_init__(self):
        if self.trusted is not None and self.reference_elements < 1:
            raise ValueError(f"kernel {self.name!r}: trusted={self.trusted!r} needs reference_elements >= 1 "
                             f"(the largest size its reference computes)")


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


def vector(x, name: str = "x") -> np.ndarray:
    """``x`` (any array-like, any real dtype) as a float64 vector of at least one value,
    or a ValueError saying what is wrong: the one input rule of every vector kernel."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: at least one value is needed")
    return real(x, name)


def matrix(m, name: str = "m") -> np.ndarray:
    """``m`` as a float64 matrix with at least one row and one column (the same rule for
    matrices); its memory order is kept."""
    m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional, got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"{name} is empty: at least one row and one column are needed, got shape {m.shape}")
    return real(m, name)


def real(array: np.ndarray, name: str) -> np.ndarray:
    """float64 view or copy of an integer, float or bool array (order kept); other dtypes
    (strings, objects, complex) are refused rather than guessed at."""
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64, order="K")


def check_window(window, n: int) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise ValueError(f"window must be an integer, got {window!r}")
    if not 1 <= window <= n:
        raise ValueError(f"window must be between 1 and len(x) = {n}, got {window}")
    return int(window)


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number with 0 < alpha <= 1, got {alpha!r}")
    return float(alpha)


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


def with_values(x: np.ndarray, values: Mapping[int, float]) -> np.ndarray:
    """A copy of ``x`` with ``x[i] = value`` for each item of ``values`` (flat indices)."""
    x = x.copy()
    for index, value in values.items():
        x.flat[index] = value
    return x


def read_only(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x.flags.writeable = False
    return x


def large_level(rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
    """1e12 plus moves of about 1: a running sum over this keeps few of the moves' digits."""
    return 1e12 + np.cumsum(rng.normal(0.0, 1.0, int(np.prod(size)))).reshape(size)
