"""asv ``track_`` benchmarks for the figures implementations report through
``metrics()`` (bytes pickled per task, tasks per call, pool start-up, OpenMP team size,
compile time...): one class per case that reports any, named like its class in
kernels.py, one ``track_<figure>`` per numeric figure, at medium size.

Which figures exist is known only after an implementation ran, and a call may start
worker pools, which must not live in the process asv forks its benchmarks from: the
keys come from one small call per case in a child process, cached by the cases' code.
The figures themselves come from one real call per case at medium size in asv's shared
``setup_cache`` (one process for all, so pools start once).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import factorbench as fb

from . import _asv, suite


def metric_keys() -> dict[str, list[str]]:
    # Availability is probed in the child only: probing multiprocessing here starts its
    # resource tracker in the process asv's forkserver forks every benchmark from; they
    # would all share it, and it is killed with that server at the end of the run without
    # unlinking their shared memory (~1,300 segments and semaphores after one full run).
    # The installed distributions stand in for availability in the cache's key.
    with_metrics = [case for case in suite.benchmarks() if case.impl.metrics is not None]
    if not with_metrics:
        return {}
    installed = sorted(f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions())
    code = json.dumps([fb.__file__, *(case.version for case in with_metrics), *installed])
    cache = Path(tempfile.gettempdir()) / f"factorbench-metric-keys-{hashlib.sha256(code.encode()).hexdigest()[:16]}.json"
    if not cache.exists():
        partial = cache.with_suffix(".partial")
        # -P and appending the suite's parent keep the installed factorbench first on the path
        subprocess.run([sys.executable, "-P", "-c", "import sys; sys.path.append(sys.argv[1]); "
                        f"from {__package__} import suite; suite.write_metric_keys(sys.argv[2])",
                        str(Path(__file__).resolve().parents[1]), str(partial)],
                       check=True, stdout=subprocess.DEVNULL, timeout=600)
        partial.replace(cache)
    return json.loads(cache.read_text())


def measure_figures(names=None) -> dict:
    """{case name: {params: figures}}, each from one call at medium size after the gate."""
    figures = {}
    for case in suite.benchmarks():
        if case.name not in (FIGURE_CASES if names is None else names):
            continue
        for params in itertools.product(*case.medium_params):
            try:
                args = suite.prepare(case, *params)
            except NotImplementedError:
                continue
            case.call(*args)
            figures.setdefault(case.name, {})[params] = {
                key: value for key, value in case.impl.metrics().items() if suite.is_figure(value)}
    return figures


def _setup_cache(self):
    return measure_figures()


_setup_cache.timeout = 600


def _track(key):
    def track(self, figures, *params):
        return figures.get(self.case.name, {}).get(params, {}).get(key, math.nan)

    return track


def figures_class(case: suite.Benchmark, keys: list[str]) -> type:
    body = {"case": case, "version": case.version, "params": case.medium_params, "param_names": case.param_names,
            "setup_cache": _setup_cache}
    for key in keys:
        body[f"track_{suite.identifier(key)}"] = _asv.method(_track(key), unit=key)
    return type(case.name, (), body)


FIGURE_CASES = metric_keys()
globals().update({case.name: figures_class(case, FIGURE_CASES[case.name])
                  for case in suite.benchmarks() if FIGURE_CASES.get(case.name)})


def __getattr__(name):
    return _asv.stand_in(__name__, name)
