"""Random forest regression on the GPU (cuML) and the CPU (scikit-learn), same data.

The article (section 4.2) fits cuml.ensemble.RandomForestRegressor on 1e6 x 50 float32
rows with 100 trees and claims it is 40x faster than scikit-learn. Here both libraries
get the same float32 data, the same held-out split and the same hyperparameters, and
both report fit time, predict time and R² on the held-out rows, so a speed claim comes
with its accuracy. The target is Friedman's #1 function (a nonlinear function of five
features plus unit noise; the other columns are distractors), so R² means something.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import time

from factorbench.kernels import require_int
from factorbench.registry import registry
from factorbench.workloads import Workload

ARTICLE_SIZE = {"rows": 1_000_000, "cols": 50, "trees": 100}
"""The article's problem: the default when a GPU and cuML are present."""
CPU_SIZE = {"rows": 20_000, "cols": 20, "trees": 20}
"""The default without a GPU side: scikit-learn alone at the article's size takes many minutes."""
QUICK_SIZE = {"rows": 5_000, "cols": 10, "trees": 10}
DEPTH = 16
"""cuML's default max_depth, given to both: scikit-learn's default (unbounded) would grow
deeper trees and make the comparison one of tree sizes."""
TEST_FRACTION = 0.2
LIMITS = {"rows": 100, "cols": 5, "trees": 1, "depth": 1}
"""Least allowed value of each --param (Friedman #1 uses five features)."""


def gpu_reason() -> str | None:
    """Why the cuML side cannot run here, or None."""
    if importlib.util.find_spec("cuml") is None:
        return "cuML not installed (pip install -e '.[rapids]')"
    cupy_paradigm = registry().paradigms.get("cupy")  # cuML runs on CuPy: the same device probe
    if cupy_paradigm is not None and cupy_paradigm.reason:
        return cupy_paradigm.reason
    try:
        importlib.import_module("cuml")
    except Exception as exc:
        return f"cuML does not import: {type(exc).__name__}: {exc}"
    return None


def validate(chosen: dict) -> None:
    for key, low in LIMITS.items():
        if chosen[key] is not None:
            value = chosen[key]
            if isinstance(value, float) and value.is_integer():  # the CLI reads "0" as 0.0
                value = int(value)
            require_int({key: value}, key, low)


def resolve_params(options) -> tuple[dict, str]:
    """The problem size to run and why it was chosen."""
    if options.quick:
        base, why = QUICK_SIZE, "quick size"
    elif gpu_reason() is None:
        base, why = ARTICLE_SIZE, "the article's size"
    else:
        base, why = CPU_SIZE, ("reduced default (no GPU side here; the article uses rows=1000000 cols=50 "
                               "trees=100: scale with --param rows=,cols=,trees=)")
    explicit = {key: int(options.params[key]) for key in LIMITS if key in options.params}
    if explicit:
        why += "; set by --param: " + ", ".join(explicit)
    return {**base, "depth": DEPTH, **explicit}, why


NODE_BYTES = 100
"""Memory per tree node (scikit-learn's node record and value), an estimate."""


def data_bytes(options) -> int:
    """The data as float64 and its float32 split, and the forest: at most 2 nodes per row
    and 2**(depth+1) per tree."""
    params, _ = resolve_params(options)
    nodes = min(2 * params["rows"], 2 ** (params["depth"] + 1))
    return 16 * params["rows"] * params["cols"] + NODE_BYTES * params["trees"] * nodes


def make_data(params: dict, seed: int):
    """Friedman #1 regression data as float32, split into train and held-out test rows."""
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import train_test_split

    x, y = make_friedman1(n_samples=params["rows"], n_features=params["cols"], noise=1.0, random_state=seed)
    return train_test_split(x.astype("float32"), y.astype("float32"), test_size=TEST_FRACTION,
                            random_state=seed)


def hyperparameters(params: dict, seed: int) -> dict:
    """The same forest for both libraries (max_features=1.0 and bootstrap are both defaults)."""
    return {"n_estimators": params["trees"], "max_depth": params["depth"], "max_features": 1.0,
            "bootstrap": True, "random_state": seed}


def fit_sklearn(data, params: dict, seed: int, jobs: int) -> dict:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score

    x_train, x_test, y_train, y_test = data
    model = RandomForestRegressor(**hyperparameters(params, seed), n_jobs=jobs)
    start = time.perf_counter()
    model.fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = model.predict(x_test)
    predict_s = time.perf_counter() - start
    return {"label": f"scikit-learn {importlib.metadata.version('scikit-learn')} (CPU, n_jobs={jobs})",
            "status": "ok", "fit_s": fit_s, "predict_s": predict_s, "r2": float(r2_score(y_test, predicted))}


def fit_cuml(data, params: dict, seed: int) -> dict:
    """cuML on device-resident data; the copy to the device is timed on its own."""
    import cuml
    import cupy
    from cuml.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score

    x_train, x_test, y_train, y_test = data
    device = cupy.cuda.Device()
    # A small fit first: CUDA context, cuML's handle and memory pool, kernel loading.
    start = time.perf_counter()
    RandomForestRegressor(n_estimators=2, max_depth=4).fit(cupy.asarray(x_train[:1000]), cupy.asarray(y_train[:1000]))
    device.synchronize()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    resident = [cupy.asarray(array) for array in (x_train, y_train, x_test)]
    device.synchronize()
    transfer_s = time.perf_counter() - start
    model = RandomForestRegressor(**hyperparameters(params, seed))
    start = time.perf_counter()
    model.fit(resident[0], resident[1])
    device.synchronize()
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = model.predict(resident[2])
    device.synchronize()
    predict_s = time.perf_counter() - start
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
    return {"label": f"cuML {cuml.__version__} (GPU, {name})", "status": "ok",
            "fit_s": fit_s, "predict_s": predict_s, "r2": float(r2_score(y_test, cupy.asnumpy(predicted))),
            "transfer_s": transfer_s, "warmup_s": warmup_s}


def sklearn_reason() -> str | None:
    if importlib.util.find_spec("sklearn") is None:
        return "scikit-learn not installed (pip install -e '.[ml]')"
    return None


def run(options) -> dict:
    params, why = resolve_params(options)
    data = make_data(params, options.seed)
    jobs = max(options.threads) if options.threads else (len(os.sched_getaffinity(0))
                                                          if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    cpu = fit_sklearn(data, params, options.seed, jobs)
    reason = gpu_reason()
    if reason:
        gpu = {"label": "cuML (GPU)", "status": "skipped", "reason": reason}
    else:
        try:
            gpu = fit_cuml(data, params, options.seed)
        except Exception as exc:  # e.g. out of device memory: the CPU side still stands
            gpu = {"label": "cuML (GPU)", "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    notes = [f"size: {why}",
             f"same float32 data and split ({1 - TEST_FRACTION:.0%} train, {TEST_FRACTION:.0%} held out), "
             f"same forest: {params['trees']} trees, max_depth {params['depth']}, max_features 1.0, bootstrap",
             "scikit-learn searches exact split points, cuML histogram bins (128 by default): "
             "compare R² as well as time",
             "one fit and one predict each; cuML after a small warm-up fit, on data already on the device "
             "(transfer_s is the copy)"]
    if gpu["status"] == "ok":
        gpu["fit_speedup"] = cpu["fit_s"] / gpu["fit_s"]
        notes.append(f"cuML fits {gpu['fit_speedup']:.3g}x faster than scikit-learn "
                     f"(R² {gpu['r2']:.4f} vs {cpu['r2']:.4f})")
    return {"params": {**params, "test_fraction": TEST_FRACTION, "sklearn_jobs": jobs},
            "rows": [cpu, gpu],
            "units": {"fit_s": "s", "predict_s": "s", "transfer_s": "s", "warmup_s": "s", "fit_speedup": "x"},
            "notes": notes}


WORKLOAD = Workload(
    name="random_forest",
    summary="RandomForestRegressor fit/predict/R²: cuML on the GPU vs scikit-learn on the CPU",
    run=run,
    probe=sklearn_reason,
    params=dict.fromkeys(LIMITS),  # None: sized by resolve_params from what this machine can run
    validate=validate,
    data_bytes=data_bytes,
)
