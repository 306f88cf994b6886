"""Pieces the generated asv modules share (no benchmark classes live here)."""

from __future__ import annotations

import functools

import factorbench as fb

from . import suite

BENCHMARK_PREFIXES = ("time_", "peakmem_", "track_")


def method(body, **attributes):
    """A fresh function per class, so per-benchmark attributes (params, version) stay apart."""
    @functools.wraps(body)
    def benchmark(self, *params):
        return body(self, *params)

    benchmark.__dict__.update(attributes)
    return benchmark


def _skipped(self, *params):
    raise NotImplementedError(f"{type(self).__name__} is not in this commit's registry")


class Absent(type):
    """Stand-in for a case this commit's registry lacks. asv runs the benchmark list of
    the newest commit at every commit it measures (``asv continuous main HEAD`` after a
    paradigm was added); answering "skipped" keeps the comparison going instead of
    failing the whole run."""

    def __getattr__(cls, attr):
        if attr.startswith(BENCHMARK_PREFIXES):
            return method(_skipped, params=suite.param_grid(cls.spec, medium_only=not attr.startswith("time_")),
                          param_names=cls.param_names)
        raise AttributeError(attr)


def stand_in(module: str, name: str) -> type:
    """The module ``__getattr__`` of a generated suite: a stand-in for a case name."""
    kernel = name.split("__", 1)[0]
    if name.startswith("_") or "__" not in name or kernel not in fb.kernels():
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    spec = fb.kernel(kernel)
    return Absent(name, (), {"spec": spec, "param_names": [spec.size_param, *spec.variants], "setup": _skipped,
                             "__getattr__": lambda self, attr: getattr(type(self), attr).__get__(self)})
