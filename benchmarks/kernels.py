"""asv benchmarks generated from the factorbench registry: one class per (kernel,
implementation, settings), named ``<kernel>__<implementation>[__<setting>_<value>]``.

- ``time_call``: one call, at the small and medium sizes crossed with the kernel's
  variants (memory order). Implementations too slow at a size (the Python loops at
  medium size) skip it.
- ``peakmem_call``: peak resident memory of the process around one call at medium size,
  for the kernels that move the most memory (``suite.MEMORY_HEAVY_BYTES``). It includes
  the interpreter and whatever setup built, so ``track_peak_allocated`` beside it gives
  the call's own figure: the most bytes it held allocated at once (tracemalloc, which
  sees NumPy's buffers): output plus temporaries.
- ``track_time_vs_loop``: this implementation's time per element at medium size over the
  Python loop's at the small size (0.01 = 100x faster). asv takes a larger tracked value
  as worse, so every tracked figure here is one where smaller is better: a speed-up
  (larger is better) would show an improvement as a regression in ``asv continuous``.

The figures implementations report through ``metrics()`` are tracked in figures.py.

Rounds and samples: asv runs each (benchmark, parameters, round) in a process of its own,
so what a process costs before its first sample is paid again for each. In-process
implementations keep asv's two rounds (the spread between processes is part of their
noise) and take 5 to 50 samples a round, cut at 1 s. The paradigms the callgrind gate
leaves to wall time (multiprocessing, Dask, GPUs) spend seconds in every process starting
a pool, a cluster, a device or Dask's scheduler and graph, more than sampling: one round
of 3 to 10 samples, cut at 1 s; their call is still timed warm, after the check and size
fit started what it needs.

``setup`` builds the inputs (outside the timed region) and runs the correctness check,
so a wrong implementation fails loudly instead of being timed; an unavailable one raises
NotImplementedError, which asv reports as skipped. Each class's ``version`` hashes the
implementation's source, so its history restarts when its code changes.
"""

from __future__ import annotations

import functools
import tracemalloc

import factorbench as fb
from factorbench.measure.check import expected_outputs
from factorbench.measure.timer import measure

from . import _asv, suite

TRACK_REPEAT = 3


def _setup(self, size, *variants):
    self.args = suite.prepare(self.case, size, *variants)
    self.call = functools.partial(self.case.impl.func, **self.case.settings)


def _call(self, *params):
    self.call(*self.args)


def _peak_allocated(self, *params):
    tracemalloc.start()
    try:
        self.call(*self.args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _per_element_s(case, call, args, params) -> float:
    timing = measure(lambda: call(*args), repeat=TRACK_REPEAT, min_sample_s=0.01)
    return timing.median / case.spec.elements(params)


def _time_vs_loop(self, size, *variants):
    """Per element, so the loop is timed at the small size it finishes quickly at."""
    base = suite.baseline(self.case)
    base_size = suite.sizes(base.spec)[0]
    base_args = suite.prepare(base, base_size, *variants)
    base_s = _per_element_s(base, base.call, base_args, base.kernel_params(base_size, *variants))
    own_s = _per_element_s(self.case, self.call, self.args, self.case.kernel_params(size, *variants))
    return own_s / base_s


def uses_other_processes(case: suite.Benchmark) -> bool:
    """Process pools, Dask, GPUs: the paradigms whose counts do not reproduce either, for
    the same reason (the work and its start-up happen elsewhere or follow wall time). A
    commit whose registry predates the flag counts as not."""
    reason = getattr(case.impl, "uncountable_reason", None)
    return bool(reason and reason(case.settings))


def suite_class(case: suite.Benchmark) -> type:
    medium = {"params": case.medium_params, "param_names": case.param_names}
    body = {
        "case": case,
        "version": case.version,
        "params": case.params,
        "param_names": case.param_names,
        # asv times one call per sample when setup is defined: 5 to 50 samples a round,
        # cut at 1 s (the slowest cases, ~0.5 s a call, take the 5 and no more).
        "repeat": (5, 50, 1.0),
        "setup": _setup,
        "time_call": _asv.method(_call),
    }
    if suite.is_memory_heavy(case.spec):
        body["peakmem_call"] = _asv.method(_call, **medium)
        body["track_peak_allocated"] = _asv.method(_peak_allocated, unit="bytes", **medium)
    if uses_other_processes(case):
        # Every asv process starts its own pool or cluster (seconds, more than the
        # samples): one round, and 3 to 10 samples capped at 1 s (see the docstring).
        body.update(rounds=1, repeat=(3, 10, 1.0))
    base = suite.baseline(case)
    if base is not None:
        body["track_time_vs_loop"] = _asv.method(_time_vs_loop, unit="fraction of loop time",
                                             version=case.version + base.version, **medium)
    return type(case.name, (), body)


globals().update({case.name: suite_class(case) for case in suite.benchmarks()})

# asv forks every benchmark process from a process that imported this module: computing
# the correctness check's float64 references here spares each process the slow ones.
for _kernel in fb.kernels():
    expected_outputs(_kernel, suite.SEED)


def __getattr__(name):
    return _asv.stand_in(__name__, name)
