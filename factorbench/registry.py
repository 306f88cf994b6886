"""The one registry of (kernel, paradigm) implementations.

Each module in ``factorbench.impls`` creates a :class:`Paradigm` and decorates
its functions with ``@paradigm.implements(kernel)``. Modules must import without their
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

from factorbench.discovery import choose
from factorbench.kernels import kernel as get_kernel
from factorbench.kernels import kernels as kernel_names

IMPLEMENTATIONS_PACKAGE = "factorbench.impls"


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

    def __init__(self, name: str, summary: str, *, rank: int, requires: Iterable[str] = (),
                 probe: Callable[[], str | None] | None = None,
                 untimed: Callable[[], str | None] | None = None,
                 countable: bool | Callable[[dict], bool] = True, uncountable_why: str = ""):
        """``untimed`` returns why the runner should gate but not time the paradigm here
        (e.g. a GPU paradigm running in a CPU simulator), or None.

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

    def implements(self, kernel: str, *, name: str | None = None, requires: Iterable[str] = (),
                   probe: Callable[[], str | None] | None = None,
                   metrics: Callable[[], dict] | None = None, settings: dict[str, tuple] | None = None):
        """Register the decorated function as ``kernel``'s implementation in this paradigm.

        ``settings`` names keyword-only arguments of the function that the runner sweeps,
        e.g. ``{"processes": (1, 2)}``; CLI options of the same name override the values.
        """
        get_kernel(kernel)  # unknown kernel names fail at import, not at run time

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

    def all(self) -> list[Implementation]:
        impls = [impl for p in self.paradigms.values() for impl in p.implementations]
        order = {name: i for i, name in enumerate(kernel_names())}
        return sorted(impls, key=lambda i: (order[i.kernel], self.paradigms[i.paradigm].rank, i.name))


@cache
def registry() -> Registry:
    package = importlib.import_module(IMPLEMENTATIONS_PACKAGE)
    paradigms: dict[str, Paradigm] = {}
    errors: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name.startswith("_"):
            continue
        module_name = f"{IMPLEMENTATIONS_PACKAGE}.{module_info.name}"
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
    ordered = dict(sorted(paradigms.items(), key=lambda item: (item[1].rank, item[0])))
    return Registry(paradigms=ordered, load_errors=errors)


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
