"""asv benchmarks generated from the factorbench registry: one class per (kernel,
implementation, settings), named ``<kernel>__<implementation>[__<setting>_<value>]``.

- ``time_call``: one call, at the small and medium sizes crossed with the kernel's
  variants (memory order). Implementations too slow at a size (the Python loops at
  medium size) skip it.
- ``peakmem_call``: peak resident memory of one call at medium size, for the kernels that
  move the most memory (``cases.MEMORY_HEAVY_BYTES``).
- ``track_speedup_vs_loop``: time per element of the fastest size the Python loop
  finishes at, over this implementation's at medium size.
- ``track_<metric>``: each numeric figure the implementation's ``metrics()`` reports
  (threads used, bytes pickled per task...) after one call at medium size.

``setup`` builds the inputs (outside the timed region) and runs the correctness gate,
so a wrong implementation fails loudly instead of being timed; an unavailable one raises
NotImplementedError, which asv reports as skipped. Each class's ``version`` hashes the
implementation's source, so its history restarts when its code changes.
"""

from __future__ import annotations

import functools
import numbers

import factorbench as fb
from factorbench.timing import measure

from . import cases

TRACK_REPEAT = 5
BENCHMARK_PREFIXES = ("time_", "peakmem_", "track_")


def _setup(self, size, *variants):
    self.args = cases.prepare(self.case, size, *variants)
    self.call = functools.partial(self.case.impl.func, **self.case.settings)


def _call(self, *params):
    self.call(*self.args)


def _per_element_s(case, call, args, params) -> float:
    timing = measure(lambda: call(*args), repeat=TRACK_REPEAT, min_sample_s=0.01)
    return timing.median / case.spec.elements(params)


def _speedup_vs_loop(self, size, *variants):
    base = cases.baseline(self.case)
    for base_size in reversed(cases.sizes(base.spec)):
        try:
            base_args = cases.prepare(base, base_size, *variants)
        except NotImplementedError:
            continue
        base_s = _per_element_s(base, base.call, base_args, base.kernel_params(base_size, *variants))
        own_s = _per_element_s(self.case, self.call, self.args, self.case.kernel_params(size, *variants))
        return base_s / own_s
    raise NotImplementedError(f"{base.label} fits no benchmark size")


def _metric(key):
    def track(self, *params):
        self.call(*self.args)
        return self.case.impl.metrics()[key]

    return track


def _method(body, **attributes):
    """A fresh function per class, so per-benchmark attributes (params, version) stay apart."""
    @functools.wraps(body)
    def method(self, *params):
        return body(self, *params)

    method.__dict__.update(attributes)
    return method


def _metric_keys(case: cases.BenchCase) -> list[str]:
    """Numeric keys of ``metrics()``; it must answer before the first call to be tracked."""
    if case.impl.metrics is None or not case.impl.available:
        return []
    try:
        figures = case.impl.metrics()
    except Exception:  # figures that exist only after a call cannot be declared up front
        return []
    return sorted(key for key, value in figures.items()
                  if isinstance(value, numbers.Real) and not isinstance(value, bool))


def suite_class(case: cases.BenchCase) -> type:
    medium = {"params": case.medium_params, "param_names": case.param_names}
    body = {
        "case": case,
        "version": case.version,
        "params": case.params,
        "param_names": case.param_names,
        # Many short samples: asv times one call per sample when setup is defined.
        "repeat": (10, 50, 5.0),
        "setup": _setup,
        "time_call": _method(_call),
    }
    if cases.is_memory_heavy(case.spec):
        body["peakmem_call"] = _method(_call, **medium)
    base = cases.baseline(case)
    if base is not None:
        body["track_speedup_vs_loop"] = _method(_speedup_vs_loop, unit="x", version=case.version + base.version,
                                                **medium)
    for key in _metric_keys(case):
        body[f"track_{cases.identifier(key)}"] = _method(_metric(key), unit=key, **medium)
    return type(case.name, (), body)


globals().update({case.name: suite_class(case) for case in cases.cases()})


class _Absent(type):
    """Stand-in for a case this commit's registry lacks. asv runs the benchmark list of
    the newest commit at every commit it measures (``asv continuous main HEAD`` after a
    paradigm was added); answering "skipped" keeps the comparison going instead of
    failing the whole run."""

    def __getattr__(cls, attr):
        if attr.startswith(BENCHMARK_PREFIXES):
            return _method(_call, params=cases.param_grid(cls.spec, medium_only=not attr.startswith("time_")),
                           param_names=cls.param_names)
        raise AttributeError(attr)


def _absent_setup(self, *params):
    raise NotImplementedError(f"{type(self).__name__} is not in this commit's registry")


def __getattr__(name):
    kernel = name.split("__", 1)[0]
    if name.startswith("_") or "__" not in name or kernel not in fb.kernels():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    spec = fb.kernel(kernel)
    return _Absent(name, (), {"spec": spec, "param_names": [spec.size_param, *spec.variants], "setup": _absent_setup,
                              "__getattr__": lambda self, attr: getattr(type(self), attr).__get__(self)})
