"""The one registry of (kernel, paradigm) implementations.

Each module in ``factorbench.impls`` creates a :class:`Paradigm` and decorates
its functions with ``@paradigm.implements(kernel)``; so does each plugin module
(``factorbench.discovery``) that defines a ``PARADIGM``. Modules must import without their
optional dependencies (import them inside the functions, or behind ``requires``), so
that a missing library shows as ``unavailable`` with a reason instead of an ImportError.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import pkgutil
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from factorbench import discovery
from factorbench.discovery import PluginError, choose
from factorbench.kernels import Kernel, _kernels, plugin_kernels
from factorbench.kernels import kernel as get_kernel
from factorbench.kernels import kernels as kernel_names

IMPLEMENTATIONS_PACKAGE = "factorbench.impls"
PLUGIN_RANK = 1000
"""Where plugin paradigms sort by default: after the built-in ones."""


def missing_modules(modules: Iterable[str]) -> str | None:
    """Reason string naming the first module that cannot be imported, else None."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{module} is not installed"
    return None


_artifacts_dir: contextvars.ContextVar[Path | None] = contextvars.ContextVar("artifacts_dir", default=None)


def artifacts_dir() -> Path | None:
    """Folder of the current run for files an implementation's metrics() or a workload
    writes for the report (recorded as paths in ``extra["artifacts"]``); None outside a
    run that has one. Not created until someone writes there."""
    return _artifacts_dir.get()


@contextlib.contextmanager
def artifacts_in(path: str | Path | None):
    token = _artifacts_dir.set(Path(path).resolve() if path else None)
    try:
        yield
    finally:
        _artifacts_dir.reset(token)


@dataclass(eq=False)
class Implementation:
    kernel: str
    paradigm: str
    name: str
    func: Callable[..., Any]
    summary: str
    requires: tuple[str, ...] = ()
    probe: Callable[[], str | None] | None = None
    """Returns why the implementation cannot run here (no GPU, extension not built), or None."""
    metrics: Callable[[], dict] | None = None
    """Returns figures about the last calls (bytes sent to workers, compile time...)."""
    settings: dict[str, tuple] = field(default_factory=dict)
    """Keyword arguments the runner sweeps (e.g. processes), with the values swept by default."""
    paradigm_obj: Paradigm | None = field(default=None, repr=False)

    @cached_property
    def reason(self) -> str | None:
        """Why this implementation is unavailable, or None when it can run."""
        paradigm_reason = self.paradigm_obj.reason if self.paradigm_obj else None
        if paradigm_reason:
            return paradigm_reason
        reason = missing_modules(self.requires)
        if reason is None and self.probe is not None:
            try:
                reason = self.probe()
            except Exception as exc:  # a probe must never take the registry down
                reason = f"availability probe failed: {type(exc).__name__}: {exc}"
        return reason

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def baseline_library(self) -> bool:
        """A baseline library's function (see ``Paradigm``): its deviations from the
        reference are findings, noted beside its timings, not failures."""
        return self.paradigm_obj.baseline_library if self.paradigm_obj else False

    @property
    def untimed_reason(self) -> str | None:
        """Why results here prove correctness but their times would mean nothing (a simulator)."""
        return self.paradigm_obj.untimed_reason if self.paradigm_obj else None

    def uncountable_reason(self, settings: dict | None = None) -> str | None:
        """Why an instruction count of one call with these settings would not reproduce
        (work in other processes or on a device, a coordinator polling them), or None."""
        return self.paradigm_obj.uncountable_reason(settings or {}) if self.paradigm_obj else None

    def __call__(self, *args, **kwargs):
        if not self.available:
            raise RuntimeError(f"{self.kernel}/{self.name} is unavailable: {self.reason}")
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        state = "available" if self.available else f"unavailable: {self.reason}"
        return f"<Implementation {self.kernel}/{self.name} ({self.paradigm}, {state})>"


class Paradigm:
    """One optimisation paradigm; its module registers implementations through it."""

    def __init__(self, name: str, summary: str, *, rank: int = PLUGIN_RANK, requires: Iterable[str] = (),
                 probe: Callable[[], str | None] | None = None,
                 untimed: Callable[[], str | None] | None = None,
                 countable: bool | Callable[[dict], bool] = True, uncountable_why: str = "",
                 baseline_library: bool = False):
        """``untimed`` returns why the runner should gate but not time the paradigm here
        (e.g. a GPU paradigm running in a CPU simulator), or None.

        ``baseline_library``: the paradigm wraps an existing library whose definition may differ
        from the kernel's (its NaN rule, an adjusted EMA). Its implementations are timed,
        ranked and gated even where they deviate from the reference, with the deviation
        noted beside the timings; only raising fails them.

        ``countable`` says whether callgrind counts of one call reproduce (False, or a
        function of the implementation's settings); ``uncountable_why`` says why not. The
        regression gate judges the others by wall time only."""
        self.name = name
        self.summary = summary
        self.rank = rank
        self.requires = tuple(requires)
        self._probe = probe
        self._untimed = untimed
        self._countable = countable
        self._uncountable_why = uncountable_why
        self.baseline_library = baseline_library
        self.implementations: list[Implementation] = []

    @cached_property
    def reason(self) -> str | None:
        reason = missing_modules(self.requires)
        if reason is None and self._probe is not None:
            try:
                reason = self._probe()
            except Exception as exc:
                reason = f"availability probe failed: {type(exc).__name__}: {exc}"
        return reason

    @cached_property
    def untimed_reason(self) -> str | None:
        return self._untimed() if self._untimed is not None and self.reason is None else None

    def uncountable_reason(self, settings: dict) -> str | None:
        countable = self._countable(settings) if callable(self._countable) else self._countable
        return None if countable else (self._uncountable_why or f"{self.name}: counts do not reproduce")

    def implements(self, kernel: str | Kernel, *, name: str | None = None, requires: Iterable[str] = (),
                   probe: Callable[[], str | None] | None = None,
                   metrics: Callable[[], dict] | None = None, settings: dict[str, tuple] | None = None):
        """Register the decorated function as ``kernel``'s implementation in this paradigm.

        ``kernel`` is a kernel's name or its ``Kernel`` (one a plugin defines beside its
        paradigm); the registry reports an unknown kernel as the module's load error.
        ``settings`` names keyword-only arguments of the function that the runner sweeps,
        e.g. ``{"processes": (1, 2)}``; CLI options of the same name override the values.
        """
        if isinstance(kernel, Kernel):
            kernel = kernel.name

        def register(func):
            impl = Implementation(
                kernel=kernel, paradigm=self.name, name=name or self.name, func=func,
                summary=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "",
                requires=tuple(requires), probe=probe, metrics=metrics,
                settings=dict(settings or {}), paradigm_obj=self,
            )
            if any(other.kernel == kernel and other.name == impl.name for other in self.implementations):
                raise ValueError(f"duplicate implementation name {kernel}/{impl.name}")
            self.implementations.append(impl)
            return func

        return register


@dataclass
class Registry:
    paradigms: dict[str, Paradigm]
    load_errors: dict[str, str]
    """Implementation modules that failed to import, with the error (a bug, not a missing extra)."""
    plugin_errors: dict[str, str] = field(default_factory=dict)
    """Plugins that failed to import or to register, with a one-line error; the rest runs."""

    def all(self) -> list[Implementation]:
        impls = [impl for p in self.paradigms.values() for impl in p.implementations]
        order = {name: i for i, name in enumerate(kernel_names())}
        return sorted(impls, key=lambda i: (order[i.kernel], self.paradigms[i.paradigm].rank, i.name))


def unknown_kernels(paradigm: Paradigm) -> str | None:
    unknown = sorted({impl.kernel for impl in paradigm.implementations} - set(kernel_names()))
    if not unknown:
        return None
    return f"implements unknown kernel {', '.join(map(repr, unknown))}; choose from: {', '.join(kernel_names())}"


@cache
def registry() -> Registry:
    package = importlib.import_module(IMPLEMENTATIONS_PACKAGE)
    paradigms: dict[str, Paradigm] = {}
    defined_by: dict[str, str] = {}
    errors: dict[str, str] = {}
    builtin = [f"{IMPLEMENTATIONS_PACKAGE}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
               if not info.name.startswith("_")]
    for module_name in builtin:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            errors[module_name] = traceback.format_exc(limit=3)
            continue
        paradigm = getattr(module, "PARADIGM", None)
        if not isinstance(paradigm, Paradigm):
            errors[module_name] = "module defines no PARADIGM = Paradigm(...)"
            continue
        if paradigm.name in paradigms:
            raise ValueError(f"paradigm {paradigm.name!r} is defined twice ({module_name})")
        paradigms[paradigm.name] = paradigm
        defined_by[paradigm.name] = module_name
    plugin_errors = discovery.plugin_errors()
    for plugin in discovery.loaded_plugins():
        if plugin.module is None:
            continue
        paradigm = getattr(plugin.module, "PARADIGM", None)
        if paradigm is None:
            if not plugin_kernels(plugin.module):
                plugin_errors[plugin.describe()] = "defines no KERNEL, KERNELS or PARADIGM"
            continue
        if not isinstance(paradigm, Paradigm):
            plugin_errors[plugin.describe()] = f"PARADIGM is a {type(paradigm).__name__}, not a factorbench.Paradigm"
            continue
        if paradigm.name in paradigms:
            raise PluginError(f"paradigm {paradigm.name!r} is defined twice: by {defined_by[paradigm.name]} "
                              f"and by {plugin.describe()}")
        reason = unknown_kernels(paradigm)
        if reason:
            plugin_errors[plugin.describe()] = reason
            continue
        paradigms[paradigm.name] = paradigm
        defined_by[paradigm.name] = plugin.describe()
    _check_unique_names(paradigms, defined_by)
    ordered = dict(sorted(paradigms.items(), key=lambda item: (item[1].rank, item[0])))
    return Registry(paradigms=ordered, load_errors=errors, plugin_errors=plugin_errors)


def _check_unique_names(paradigms: dict[str, Paradigm], defined_by: dict[str, str]) -> None:
    """Benchmarks and lookups name an implementation kernel/name: two paradigms may not share one."""
    seen: dict[tuple[str, str], str] = {}
    for paradigm in paradigms.values():
        for impl in paradigm.implementations:
            key = (impl.kernel, impl.name)
            if key in seen:
                raise PluginError(f"implementation {impl.kernel}/{impl.name} is defined twice: by {seen[key]} "
                                  f"and by {defined_by[paradigm.name]}")
            seen[key] = defined_by[paradigm.name]


def use_plugins(specs: Iterable[str], origin: str = "--plugin") -> None:
    """Load these plugins (module names or .py paths) too, here and in the processes a run
    starts; the kernels and the registry are rebuilt on their next use."""
    discovery.use_plugins(specs, origin)
    _kernels.cache_clear()
    registry.cache_clear()


def paradigms() -> list[str]:
    return list(registry().paradigms)


def implementations(kernel: str | None = None, paradigm: str | None = None) -> list[Implementation]:
    if kernel is not None:
        get_kernel(kernel)
    if paradigm is not None:
        choose(registry().paradigms, paradigm, "paradigm")
    return [impl for impl in registry().all()
            if kernel in (None, impl.kernel) and paradigm in (None, impl.paradigm)]


def implementation(kernel: str, name: str) -> Implementation:
    """The first implementation of ``kernel`` in paradigm ``name``, or the one named ``name``."""
    candidates = implementations(kernel)
    for impl in candidates:
        if name in (impl.paradigm, impl.name):
            return impl
    choices = sorted({impl.paradigm for impl in candidates} | {impl.name for impl in candidates})
    raise ValueError(f"no implementation {name!r} for kernel {kernel!r}; choose from: {', '.join(choices)}")
