"""GPU paradigms (cuda, cupy) and the random_forest workload.

Without a GPU, the cuda paradigm's kernels run in Numba's CUDA simulator in a subprocess
(cudasim_checks.py: NUMBA_ENABLE_CUDASIM must be set before numba is imported, and must
not leak into this process), the GPU paradigms must show as unavailable with a reason,
and runs must skip them. With a GPU, every GPU implementation is gated for real and its
resident timing checked.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import factorbench as fb
from factorbench.cli import main
from factorbench.kernels import kernel, price_walk
from factorbench.measure import check as gate
from factorbench.measure.runner import RunOptions, run
from factorbench.parallel.gpu import peak_bandwidth, version_text
from factorbench.registry import Paradigm, registry
from factorbench.workloads import run_workload

sys.path.insert(0, str(Path(__file__).parent))
import cudasim_checks

GPU_PARADIGMS = ("cuda", "cupy")
KERNELS = ("sma", "ema", "row_sums", "trig", "gram_colsum")
FAST = dict(repeat=3, min_sample_s=0.001, time_budget_s=2.0)
GPU_IMPLS = [impl for paradigm in GPU_PARADIGMS for impl in fb.implementations(paradigm=paradigm)]
NO_GPU = not any(impl.available for impl in GPU_IMPLS)
NO_GPU_REASONS = ("no CUDA device", "not installed")


@pytest.fixture(scope="module")
def simulated():
    """label -> result of every simulator check, from one subprocess."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (it is in the dev extra)")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, str(Path(cudasim_checks.__file__))], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {entry["label"]: entry for entry in map(json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize("label", cudasim_checks.labels())
def test_cuda_kernels_in_the_simulator_match_the_reference(simulated, label):
    result = simulated[label]
    assert result["ok"], f"{label}: {result['message']}"


def test_simulator_stays_out_of_this_process():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") != "1"
    if "numba" in sys.modules:
        assert not sys.modules["numba"].config.ENABLE_CUDASIM


@pytest.mark.parametrize("paradigm", GPU_PARADIGMS)
def test_every_kernel_has_a_gpu_implementation(paradigm):
    assert {impl.kernel for impl in fb.implementations(paradigm=paradigm)} == set(KERNELS)
    assert not registry().load_errors


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: the paradigms are available")
@pytest.mark.parametrize("impl", GPU_IMPLS, ids=lambda impl: f"{impl.kernel}/{impl.name}")
def test_unavailable_without_a_gpu_says_why(impl):
    assert not impl.available
    assert any(text in impl.reason for text in NO_GPU_REASONS), impl.reason
    with pytest.raises(RuntimeError, match="unavailable"):
        impl(np.ones(5), 2)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: the paradigms are available")
def test_list_shows_gpu_paradigms_unavailable_with_reason(capsys):
    assert main(["list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for paradigm in GPU_PARADIGMS:
        impl = fb.implementation("ema", paradigm)
        assert f"({' '.join(impl.reason.split())}): " in out
        assert f"ema/{impl.name}" in out


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: the paradigms are available")
def test_run_skips_gpu_paradigms_and_goes_on(tmp_path):
    doc = run(RunOptions(kernels=["sma"], paradigms=["cuda", "cupy", "vectorized"], sizes=[2000], **FAST),
              json_path=str(tmp_path / "out.json"))
    by_paradigm = {}
    for row in doc["results"]:
        by_paradigm.setdefault(row["paradigm"], []).append(row)
    for paradigm in GPU_PARADIGMS:
        [row] = by_paradigm[paradigm]
        assert row["status"] == "skipped" and any(text in row["reason"] for text in NO_GPU_REASONS)
    assert {row["status"] for row in by_paradigm["vectorized"]} == {"ok"}


def test_untimed_paradigm_is_gated_but_not_timed(monkeypatch, tmp_path):
    """The hook the simulator uses: a correct implementation is skipped with its gate
    result, a wrong one is still reported wrong."""
    paradigm = Paradigm("simulated", "runs in a simulator", rank=998, untimed=lambda: "test simulator")

    @paradigm.implements("ema", name="sim-right")
    def ema_right(x, alpha):
        return kernel("ema").reference(x, alpha)

    @paradigm.implements("ema", name="sim-wrong")
    def ema_wrong(x, alpha):
        return kernel("ema").reference(x, alpha) * 1.001

    monkeypatch.setitem(registry().paradigms, "simulated", paradigm)
    # In-process: the paradigm is registered in this process only.
    doc = run(RunOptions(kernels=["ema"], paradigms=["simulated"], sizes=[1000], in_process=True, **FAST))
    rows = {row["implementation"]: row for row in doc["results"]}
    assert rows["sim-right"]["status"] == "skipped"
    assert rows["sim-right"]["reason"] == "not timed: test simulator; correctness check passed"
    assert rows["sim-right"]["times"] == [] and rows["sim-right"]["max_error"] < 1e-15
    assert rows["sim-wrong"]["status"] == "wrong"


def test_peak_bandwidth_from_clock_and_bus():
    assert peak_bandwidth(2_619_000, 5120) == pytest.approx(3.352e12, rel=1e-3)  # H100 SXM: 3.35 TB/s
    assert peak_bandwidth(None, 5120) is None and peak_bandwidth(2_619_000, 0) is None
    assert version_text(12040) == "12.4" and version_text(13000) == "13.0"


# --- with a GPU ---------------------------------------------------------------------------

# test_correctness.py gates every available implementation, the GPU ones included.

@functools.cache
def long_ema_case(n: int):
    """Past 1024 tiles of 2816 elements each carry-scan thread composes several tiles."""
    x = price_walk(np.random.default_rng(3), n)
    x[n // 2] = np.nan
    return x, kernel("ema").reference(x, 0.05)


@pytest.mark.parametrize("paradigm", GPU_PARADIGMS)
@pytest.mark.parametrize("n", [1024 * 2816 + 1, 3_000_017])
def test_gpu_ema_scan_with_multi_tile_carry_segments(paradigm, n):
    impl = fb.implementation("ema", paradigm)
    if not impl.available:
        pytest.skip(impl.reason)
    x, expected = long_ema_case(n)
    ok, _error, message = gate.compare(expected, impl(x, 0.05), 1e-12, 0.0)
    assert ok, message


@pytest.mark.parametrize("paradigm", GPU_PARADIGMS)
def test_gpu_metrics_report_resident_time_and_bandwidth(paradigm):
    impl = fb.implementation("trig", paradigm)
    if not impl.available:
        pytest.skip(impl.reason)
    spec = kernel("trig")
    impl(*spec.make_args({"n": 1000}, np.random.default_rng(0)))
    figures = impl.metrics()
    assert figures["resident_median_s"] > 0 and len(figures["resident_times_s"]) >= 3
    assert figures["resident_bandwidth_Bps"] == pytest.approx(spec.bytes_moved({"n": 1000})
                                                              / figures["resident_median_s"])
    assert figures["gpu"]["name"] and figures["gpu"]["driver_version"] and figures["gpu"]["memory_bytes"] > 0
    assert figures["copy_bandwidth_Bps"] > 0
    assert impl.metrics() == {}  # the inputs were released after use


# --- random forest workload --------------------------------------------------------------

TINY_FOREST = {"rows": 600, "cols": 6, "trees": 4}


def test_random_forest_cpu_side_runs_and_gpu_side_says_why():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (it is in the dev extra)")
    section = run_workload("random_forest", RunOptions(params=TINY_FOREST, quick=True))
    assert section["status"] == "ok", section["reason"]
    assert section["params"]["rows"] == 600 and section["params"]["trees"] == 4
    cpu, gpu = section["rows"]
    assert cpu["status"] == "ok" and cpu["fit_s"] > 0 and cpu["predict_s"] > 0
    assert 0.3 < cpu["r2"] <= 1.0  # Friedman #1 has real signal
    if gpu["status"] == "skipped":
        assert "cuML not installed" in gpu["reason"] or "CUDA device" in gpu["reason"]
    else:
        assert gpu["status"] == "ok" and 0.3 < gpu["r2"] <= 1.0 and gpu["fit_speedup"] > 0


def test_random_forest_from_the_cli_runs_only_the_workload(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (it is in the dev extra)")
    path = tmp_path / "rf.json"
    args = [f"--param={key}={value}" for key, value in TINY_FOREST.items()]
    assert main(["run", "--workload", "random_forest", *args, "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert doc["results"] == []
    [section] = doc["workloads"]
    assert section["params"]["cols"] == 6
    assert "scikit-learn" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--param", "trees=0"], "trees must be >= 1, got 0"),
    (["--param", "cols=3"], "cols must be >= 5, got 3"),
    (["--param", "rows=many"], "rows must be an integer, got 'many'"),
    (["--param", "leaves=3"], "parameter(s) leaves belong to none of the selected kernels"),
])
def test_random_forest_bad_params_are_usage_errors(argv, message, tmp_path, capsys):
    assert main(["run", "--workload", "random_forest", *argv, "--json", str(tmp_path / "x.json")]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "x.json").exists()
