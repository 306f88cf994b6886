"""pytest-benchmark over the registry: every (kernel, implementation, settings) at the
asv suite's small and medium sizes and memory orders (ids ``<case>-small-C`` ...).

Not part of the default test run (``norecursedirs`` leaves this folder out); run it as

    pytest tests/benchmarks --benchmark-only --benchmark-json=out.json
    pytest tests/benchmarks --benchmark-only --benchmark-autosave
    pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:15%
    pytest tests/benchmarks --benchmark-disable -k small     # smoke test: one call each, checked

Every case passes the correctness check, then one warm-up call (JIT compile, GPU context,
first-touch of the output at this size) whose result must match the float64 reference
before any timing counts; the timed rounds' result is checked again.
"""

import functools
import itertools
import math
import time

import pytest

import factorbench as fb
from benchmarks import suite
from factorbench.measure.check import compare

ROUND_S = 0.005
"""Calls per round are calibrated so that one round lasts at least this long."""
BUDGET_S = 0.5
"""Rounds per case are capped so that timing one case takes about this long."""
MIN_ROUNDS, MAX_ROUNDS = 3, 25


def _benchmark_params():
    params = []
    for case in suite.benchmarks():
        sizes, *variant_values = case.params
        for size in sizes:
            size_label = "medium" if size == sizes[-1] else "small"
            for variants in itertools.product(*variant_values):
                params.append(pytest.param(case, size, variants, id="-".join([case.name, size_label, *map(str, variants)]),
                                           marks=pytest.mark.benchmark(group=f"{case.impl.kernel}-{size_label}")))
    return params


@functools.cache
def _expected(kernel, params_key):
    return fb.kernel(kernel).reference(*suite.inputs(kernel, params_key))


def _assert_matches_reference(case, params, result):
    spec = case.spec
    ok, _error, why = compare(_expected(spec.name, tuple(params.items())), result, spec.rtol, spec.atol)
    assert ok, f"{case.label} at {params}: {why}"


@pytest.mark.parametrize("case, size, variants", _benchmark_params())
def test_benchmark(benchmark, case, size, variants):
    try:
        args = suite.prepare(case, size, *variants)
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    params = case.kernel_params(size, *variants)
    start = time.perf_counter()
    warm = case.call(*args)
    call_s = max(time.perf_counter() - start, 1e-9)
    _assert_matches_reference(case, params, warm)

    iterations = max(1, math.ceil(ROUND_S / call_s))
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET_S / (call_s * iterations))))
    benchmark.extra_info.update(params=params, settings=case.settings, paradigm=case.impl.paradigm)
    result = benchmark.pedantic(case.call, args=args, warmup_rounds=1, rounds=rounds, iterations=iterations)
    _assert_matches_reference(case, params, result)
