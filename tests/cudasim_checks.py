"""The `cuda` paradigm's Numba kernels in Numba's CUDA simulator, against the references.

tests/test_gpu.py runs this file in a subprocess with NUMBA_ENABLE_CUDASIM=1: the variable
must be set before numba is first imported, and setting it inside the pytest process would
turn every later numba.cuda import there into the simulator. It prints one JSON line per
case: {"label", "ok", "max_error", "message"}.

The simulator runs every GPU thread as a Python thread, so most cases use a small block
shape (8 threads x 3 items: tiles of 24 elements; 8 carry threads, so segments of
several tiles past 192 elements) that crosses tile and segment boundaries within a few
hundred elements; one EMA case and the runner's trig gate use the production shape
(256 threads x 11 items). The kernels read these
constants at run time in the simulator, which is what makes the swap possible here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback

import numpy as np

from factorbench.kernels import price_walk

SMALL_SHAPE = {"THREADS": 8, "ITEMS": 3, "CARRY_THREADS": 8, "ACROSS_CHUNK": 4, "SMA_MIN_RUN": 4}
SMALL_TILE = SMALL_SHAPE["THREADS"] * SMALL_SHAPE["ITEMS"]
SPAN = SMALL_SHAPE["CARRY_THREADS"] * SMALL_TILE
"""Beyond this many elements (small shape), each carry-scan thread takes several tiles."""
PRODUCTION_TILE = 256 * 11
RUNNER_LABEL = "runner: trig in the simulator is gated, then skipped as untimed"


def with_values(x, values):
    x = x.copy()
    for index, value in values.items():
        x[index] = value
    return x


def with_nans(x, positions):
    x = x.copy()
    x[list(positions)] = np.nan
    return x


def cases():
    """(label, kernel, args, shape) for every check; deterministic, numpy only."""
    rng = np.random.default_rng(7)
    walk = price_walk(rng, 4000)
    yield f"ema production shape n={PRODUCTION_TILE + 1}", "ema", (walk[:PRODUCTION_TILE + 1].copy(), 0.1), "production"
    for n in (1, 2, 3, SMALL_TILE - 1, SMALL_TILE, SMALL_TILE + 1, SPAN - 1, SPAN, SPAN + 1, 2 * SPAN + 11):
        yield f"ema n={n}", "ema", (walk[:n].copy(), 0.1), "small"
    yield "ema alpha=1", "ema", (walk[:100].copy(), 1.0), "small"
    yield "ema alpha=1e-3", "ema", (walk[:300].copy(), 1e-3), "small"
    yield "ema alpha=0.9 (powers underflow to 0)", "ema", (walk[:450].copy(), 0.9), "small"
    yield "ema NaN first", "ema", (with_nans(walk[:50], [0]), 0.1), "small"
    yield "ema NaN at a tile start", "ema", (with_nans(walk[:100], [SMALL_TILE]), 0.1), "small"
    yield "ema NaN in a later carry segment", "ema", (with_nans(walk[:SPAN + 100], [SPAN + 30]), 0.1), "small"
    yield "ema strided view", "ema", (walk[:602:2], 0.2), "small"

    yield "sma n=1 window=1", "sma", (walk[:1].copy(), 1), "small"
    yield "sma window=1", "sma", (walk[:50].copy(), 1), "small"
    yield "sma n == window", "sma", (walk[:20].copy(), 20), "small"
    yield "sma odd n", "sma", (walk[:101].copy(), 7), "small"
    yield "sma window longer than a run", "sma", (walk[:400].copy(), 20), "small"
    yield "sma level 1e5", "sma", (walk[:300] * 1000.0, 50), "small"
    yield "sma NaN first", "sma", (with_nans(walk[:120], [0]), 10), "small"
    yield "sma NaN middle", "sma", (with_nans(walk[:120], [60]), 10), "small"
    yield "sma NaN last", "sma", (with_nans(walk[:120], [119]), 10), "small"
    yield "sma NaNs close", "sma", (with_nans(walk[:120], [30, 33, 90]), 5), "small"
    yield "sma strided view", "sma", (walk[:400:2], 13), "small"
    yield "sma +inf, windows after finite", "sma", (with_values(walk[:120], {30: np.inf}), 5), "small"
    yield "sma +inf and -inf in one window", "sma", (with_values(walk[:120], {30: np.inf, 32: -np.inf}), 5), "small"
    yield "ema +inf carried past underflow", "ema", (with_values(walk[:SPAN + 100], {3: np.inf}), 0.9), "small"
    yield "ema -inf then +inf", "ema", (with_values(walk[:SPAN + 100], {30: -np.inf, SPAN + 7: np.inf}), 0.9), "small"
    yield "ema +inf, alpha=1", "ema", (with_values(walk[:100], {30: np.inf}), 1.0), "small"

    m = price_walk(rng, (37, 29))
    yield "row_sums 1x1", "row_sums", (m[:1, :1].copy(),), "small"
    yield "row_sums 1 row", "row_sums", (m[:1, :].copy(),), "small"
    yield "row_sums 1 column", "row_sums", (m[:30, :1].copy(),), "small"
    yield "row_sums C 37x29", "row_sums", (m.copy(),), "small"
    yield "row_sums F 37x29", "row_sums", (np.asfortranarray(m),), "small"
    yield "row_sums F 3x7", "row_sums", (np.asfortranarray(m[:3, :7]),), "small"
    yield "row_sums strided view", "row_sums", (m[::2, ::3],), "small"
    yield "row_sums NaN in one row", "row_sums", (_nan_matrix(m),), "small"

    a, b = price_walk(rng, (16, 16)), price_walk(rng, (16, 16))
    yield "trig 1x1", "trig", (a[:1, :1].copy(), b[:1, :1].copy()), "small"
    yield "trig 7x13", "trig", (a[:7, :13].copy(), b[:7, :13].copy()), "small"
    yield "trig C and F mixed", "trig", (a.copy(), np.asfortranarray(b)), "small"
    yield "trig F and C mixed", "trig", (np.asfortranarray(a), b.copy()), "small"
    yield "trig strided views", "trig", (a[::2, 1::3], b[1::2, 2::3]), "small"
    yield "trig NaN", "trig", (_nan_matrix(a), b.copy()), "small"

    x = price_walk(rng, (41, 13))
    yield "gram_colsum 1x1", "gram_colsum", (x[:1, :1].copy(),), "small"
    yield "gram_colsum 1 row", "gram_colsum", (x[:1, :].copy(),), "small"
    yield "gram_colsum 1 column", "gram_colsum", (x[:30, :1].copy(),), "small"
    yield "gram_colsum C 41x13", "gram_colsum", (x.copy(),), "small"
    yield "gram_colsum F order", "gram_colsum", (np.asfortranarray(x),), "small"
    yield "gram_colsum strided view", "gram_colsum", (x[::3, ::2],), "small"


def _nan_matrix(m):
    m = np.asfortranarray(m)
    m[5, 3] = np.nan
    return m


def labels() -> list[str]:
    return [label for label, *_ in cases()] + [RUNNER_LABEL]


def check_runner() -> dict:
    """The runner gates the simulated kernels but records no simulated times."""
    from factorbench.measure.runner import RunOptions, run

    doc = run(RunOptions(kernels=["trig"], paradigms=["cuda"], quick=True, workloads=[]))
    [row] = doc["results"]
    ok = (row["status"] == "skipped" and row["reason"].startswith("not timed: CUDA simulator")
          and "correctness check passed" in row["reason"] and row["extra"].get("cuda_simulator") is True
          and row["times"] == [] and row["max_error"] is not None)
    return {"label": RUNNER_LABEL, "ok": ok, "max_error": row["max_error"] or 0.0,
            "message": "" if ok else json.dumps(row)[:500]}


def lock_simulated_shared_arrays() -> None:
    """Serialise the simulator's shared-array allocation.

    numba-cuda's FakeCUDAShared.array looks up the allocation for the calling line and
    creates it when missing, without a lock: two threads of a block that interleave there
    get separate arrays, and the kernel sees a race that real shared memory cannot have.
    The short switch interval below makes that interleaving likely, so the same lookup
    runs here under a lock (same key: the calling file and line).
    """
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np import numpy_support

    unlocked = FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return unlocked(self, shape, dtype, alignment)
        if not isinstance(dtype, np.dtype):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe(1), limit=1)[-1][0:2]
        with lock:
            allocation = self._allocations.get(caller)
            if allocation is None:
                allocation = self._allocations[caller] = np.empty(shape, dtype)
        return allocation

    FakeCUDAShared.array = array


def main() -> int:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        print("run with NUMBA_ENABLE_CUDASIM=1", file=sys.stderr)
        return 2
    # The simulator's threads meet at barriers constantly; a short GIL switch interval
    # hands over between them about ten times faster than the default 5 ms.
    sys.setswitchinterval(1e-5)
    lock_simulated_shared_arrays()
    import factorbench as fb
    from factorbench.impls._support import cuda_loops
    from factorbench.kernels import kernel
    from factorbench.measure.check import compare

    production = {name: getattr(cuda_loops, name) for name in SMALL_SHAPE}

    def use_shape(values):
        for name, value in values.items():
            setattr(cuda_loops, name, value)
        cuda_loops.TILE = cuda_loops.THREADS * cuda_loops.ITEMS

    print(json.dumps(check_runner()), flush=True)
    for label, name, args, shape in cases():
        use_shape(SMALL_SHAPE if shape == "small" else production)
        spec = kernel(name)
        impl = fb.implementations(name, "cuda")[0]
        inputs = tuple(arg.copy(order="K") if isinstance(arg, np.ndarray) and arg.flags.owndata else arg
                       for arg in args)
        try:
            actual = impl(*inputs)
        except Exception as exc:
            print(json.dumps({"label": label, "ok": False, "max_error": None,
                              "message": f"raised {type(exc).__name__}: {exc}"}), flush=True)
            continue
        ok, max_error, message = compare(spec.reference(*args), actual, spec.rtol, spec.atol)
        if not all(np.array_equal(before, after, equal_nan=True)
                   for before, after in zip(args, inputs) if isinstance(before, np.ndarray)):
            ok, message = False, "modified its input"
        print(json.dumps({"label": label, "ok": ok, "max_error": max_error, "message": message}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
