"""The tick workload: generator, reference, every engine, incremental streaming, the workload."""

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factorbench.cli import main
from factorbench.measure.runner import RunOptions, validate_options
from factorbench.workloads import run_workload
from factorbench.workloads.ticks import DEFAULTS, columnar, data, main_data, stream
from factorbench.workloads.ticks.engines import ENGINES, run_once
from factorbench.workloads.ticks.factors import FACTORS, FactorSpec, compare, reference
from factorbench.workloads.ticks.isolated import measure, measure_here

pytest.importorskip("pyarrow", reason="the tick workload needs pyarrow (extra 'ticks')")

SMALL = {"rows": 20_000, "symbols": 40, "files": 3}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A generated data set with every edge case, and its reference output."""
    files = data.generate(tmp_path_factory.mktemp("ticks"), seed=3, **SMALL)
    return files, reference(data.read_frame(files))


# generator ------------------------------------------------------------------------------

def test_same_seed_same_files_other_seed_differs(tmp_path):
    import pyarrow.parquet as pq

    first = data.generate(tmp_path / "a", rows=5000, symbols=30, files=3, seed=7)
    again = data.generate(tmp_path / "b", rows=5000, symbols=30, files=3, seed=7)
    other = data.generate(tmp_path / "c", rows=5000, symbols=30, files=3, seed=8)
    assert [p.name for p in first] == [p.name for p in again]
    for a, b in zip(first, again):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert not data.read_frame(first).equals(data.read_frame(other))


def test_file_count_does_not_change_the_ticks(tmp_path):
    one = data.generate(tmp_path / "one", rows=5000, symbols=30, files=1, seed=1)
    four = data.generate(tmp_path / "four", rows=5000, symbols=30, files=4, seed=1)
    assert len(four) == 4
    pd.testing.assert_frame_equal(data.read_frame(one), data.read_frame(four))


def test_generated_ticks_are_plausible(small):
    files, expected = small
    ticks = data.read_frame(files)
    assert len(ticks) == SMALL["rows"]
    assert (ticks["ask"] > ticks["bid"]).all()
    assert ((ticks["last"] >= ticks["bid"]) & (ticks["last"] <= ticks["ask"])).all()
    assert (ticks["vwap"] > 0).all()
    assert ticks["timestamp"].is_monotonic_increasing and ticks["timestamp"].duplicated().any()
    assert (ticks["seq"].to_numpy() == np.arange(len(ticks))).all()
    assert 0.2 < (ticks["volume"] > 1000).mean() < 0.4
    assert (ticks["volume"] == 1000).any()
    kept_per_symbol = expected.groupby("symbol").size()
    assert (kept_per_symbol < 5).any(), "a symbol with fewer kept ticks than the momentum lag"
    assert ((kept_per_symbol >= 5) & (kept_per_symbol < 25)).any(), "momentum but no full z-score window"
    assert (kept_per_symbol >= 25).any()


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "--rows: expected a positive integer"),
    (["--rows", "10", "--symbols", "20"], "symbols (20) must not exceed rows (10)"),
    (["--rows", "100", "--symbols", "5", "--files", "101"], "files (101) must not exceed rows (100)"),
    (["--symbols", "many"], "--symbols: expected a positive integer"),
])
def test_data_ticks_rejects_bad_options(tmp_path, capsys, args, message):
    assert main(["data", "ticks", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_data_ticks_writes_files_and_will_not_overwrite(tmp_path, capsys):
    command = ["data", "ticks", "--rows", "3000", "--symbols", "10", "--files", "2", "--out", str(tmp_path)]
    assert main(command) == 0
    assert len(data.tick_files(tmp_path)) == 2
    assert main(command) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*command, "--force", "--seed", "5"]) == 0


# the definition -------------------------------------------------------------------------

def hand_made_ticks() -> pd.DataFrame:
    """A: vwaps 1, 1, 1, e with one tick at exactly volume 1000 (dropped), rows out of order
    and a timestamp tie; B: 2 kept ticks; C: none kept. One 1-s bucket, except A's last tick.
    The momenta are 0 or log(e) - log(1), equal bit for bit in every engine, so ties are real."""
    t0 = pd.Timestamp("2024-01-02 09:30:00")
    rows = [  # timestamp offset ms, seq, symbol, bid, ask, volume, vwap
        (10, 3, "A", 10.00, 10.04, 2000, 1.0),
        (0, 0, "A", 10.00, 10.02, 1500, 1.0),
        (10, 2, "A", 10.00, 10.04, 1000, 50.0),
        (10, 1, "A", 10.00, 10.04, 3000, 1.0),
        (1500, 6, "A", 10.00, 10.02, 1200, math.e),
        (5, 4, "B", 20.00, 20.10, 5000, 1.0),
        (7, 5, "B", 20.00, 20.10, 1001, math.e),
        (8, 7, "C", 30.00, 30.50, 900, 3.0),
    ]
    frame = pd.DataFrame(rows, columns=["ms", "seq", "symbol", "bid", "ask", "volume", "vwap"])
    frame.insert(0, "timestamp", t0 + pd.to_timedelta(frame.pop("ms"), unit="ms"))
    frame["last"] = frame["bid"]
    return frame


TINY_SPEC = FactorSpec(lag=1, window=2, alpha=0.5)


def test_reference_follows_the_definition_by_hand():
    out = reference(hand_made_ticks(), TINY_SPEC)
    assert out["symbol"].tolist() == ["A", "A", "A", "A", "B", "B"]
    assert out["seq"].tolist() == [0, 1, 3, 6, 4, 5]
    np.testing.assert_allclose(out["momentum"], [np.nan, 0, 0, 1, np.nan, 1])
    # window [0, 0] has std 0 -> NaN; window [0, 1]: (1 - 0.5) / sqrt(0.5)
    np.testing.assert_allclose(out["zscore"], [np.nan, np.nan, np.nan, 0.5 / math.sqrt(0.5), np.nan, np.nan])
    np.testing.assert_allclose(out["spread"], [0.02, 0.04, 0.04, 0.02, 0.1, 0.1], atol=1e-12)
    np.testing.assert_allclose(out["ema_spread"], [0.02, 0.03, 0.035, 0.0275, 0.1, 0.1], atol=1e-12)
    # bucket 0 holds momenta 0, 0 (A) and 1 (B): the tie shares rank 1.5 of 3; A's last is alone in bucket 1
    np.testing.assert_allclose(out["rank"], [np.nan, 0.5, 0.5, 1.0, np.nan, 1.0])


def write_ticks(frame: pd.DataFrame, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "part-00000.parquet"
    frame.to_parquet(path, index=False)
    return [path]


def available_engines():
    return [pytest.param(name, marks=pytest.mark.skipif(bool(ENGINES[name].reason), reason=ENGINES[name].reason
                                                       or "")) for name in ENGINES]


@pytest.mark.parametrize("name", available_engines())
def test_engine_equals_reference(small, name):
    files, expected = small
    ok, _, message = compare(run_once(name, files), expected)
    assert ok, message


@pytest.mark.parametrize("name", available_engines())
def test_engine_equals_hand_made_reference(tmp_path, name):
    ticks = hand_made_ticks()
    files = write_ticks(ticks, tmp_path)
    ok, _, message = compare(run_once(name, files, TINY_SPEC), reference(ticks, TINY_SPEC))
    assert ok, message


@pytest.mark.skipif(bool(ENGINES["dask"].reason), reason=ENGINES["dask"].reason or "")
def test_dask_engine_on_a_scheduler_address(small):
    """A real scheduler and worker process, reached by tcp:// address as `--scheduler` gives it."""
    distributed = pytest.importorskip("distributed")
    files, expected = small
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        result = run_once("dask", files, settings={"scheduler": cluster.scheduler_address})
    ok, _, message = compare(result, expected)
    assert ok, message


def test_unknown_dask_scheduler_is_named():
    pytest.importorskip("dask.dataframe")
    with pytest.raises(ValueError, match="expected threads, local-cluster or tcp://HOST:PORT, got 'udp://x'"):
        run_once("dask", [], settings={"scheduler": "udp://x"})


def test_comparison_catches_a_wrong_value(small):
    _, expected = small
    wrong = expected.copy()
    wrong.loc[wrong["zscore"].notna().idxmax(), "zscore"] += 1e-3
    ok, _, message = compare(wrong, expected)
    assert not ok and "zscore differs" in message
    shifted = expected.copy()
    shifted.loc[shifted["momentum"].isna().idxmax(), "momentum"] = 0.0
    assert "NaN pattern" in compare(shifted, expected)[2]


# streaming ------------------------------------------------------------------------------

NUMBA = "numba"


@pytest.mark.parametrize("backend, batch_size", [(NUMBA, 1), (NUMBA, 7), (NUMBA, 997), (NUMBA, 10**6),
                                                 ("python", 997), ("python", 10**6)])
def test_incremental_equals_batch(small, backend, batch_size):
    if backend == NUMBA and columnar.numba_missing():
        pytest.skip(columnar.numba_missing())
    files, expected = small
    ticks = columnar.read_ticks(files)
    latencies = []
    incremental = stream.incremental_factors(ticks, FactorSpec(), batch_size, backend, latencies)
    assert len(latencies) == -(-len(ticks) // batch_size)
    assert compare(incremental.to_frame(), expected)[0]
    batch = columnar.compute(ticks, FactorSpec(), NUMBA if backend == NUMBA else "numpy")
    for column in ("symbol_id", "timestamp", "seq"):
        np.testing.assert_array_equal(getattr(incremental, column), getattr(batch, column))
    for factor in FACTORS:
        if backend == NUMBA:
            # Same kernels and summation order, but compiled once per array type (the batch
            # engine's inputs are read-only), and LLVM may fuse multiply-adds differently in
            # each: a few ulps on one CPU (amplified up to 3e-11 where a z-score divides by a small
            # deviation), none on another; still 100x tighter than the python path.
            np.testing.assert_allclose(getattr(incremental, factor), getattr(batch, factor), rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(getattr(incremental, factor), getattr(batch, factor), rtol=1e-7, atol=1e-9)


def test_batches_split_symbols_and_buckets(small):
    files, _ = small
    ticks = columnar.read_ticks(files)
    first, second = list(stream.batches(ticks, 997))[:2]
    assert set(first.symbol_id) & set(second.symbol_id), "a symbol continues in the next batch"
    assert first.timestamp[-1] // 10**9 == second.timestamp[0] // 10**9, "a bucket continues in the next batch"


def test_incremental_refuses_time_going_back(small):
    ticks = columnar.read_ticks(small[0])
    engine = stream.IncrementalFactors(ticks.names, FactorSpec(), "python")
    engine.update(ticks.rows(slice(5000, 5100)))
    with pytest.raises(ValueError, match="non-decreasing timestamp"):
        engine.update(ticks.rows(slice(0, 100)))


def test_recompute_latencies_are_sampled_and_bounded(small):
    ticks = columnar.read_ticks(small[0])
    seconds = stream.recompute_latencies(ticks, FactorSpec(), 1000, "numpy", window_ticks=5000, samples=4)
    assert len(seconds) == 4 and all(s > 0 for s in seconds)
    summary = stream.LatencySummary.of(seconds)
    assert summary.p50 <= summary.p95 <= summary.p99 <= max(seconds)


# measurement and workload ---------------------------------------------------------------

def measure_request(files, reference_path, engine="numpy"):
    return {"engine": engine, "files": [str(f) for f in files], "check_files": [str(f) for f in files],
            "reference": str(reference_path), "spec": FactorSpec().to_json(), "settings": {}, "repeat": 2,
            "budget_s": 5}


def test_measure_runs_an_engine_in_a_fresh_process(small, tmp_path):
    files, expected = small
    expected.to_parquet(tmp_path / "reference.parquet")
    result = measure(measure_request(files, tmp_path / "reference.parquet"), timeout_s=120)
    assert result["status"] == "ok", result
    assert len(result["times"]) == 2 and result["rows_out"] == len(expected)
    assert 0 < result["baseline_rss"] <= result["peak_rss"]


def test_measure_reports_a_wrong_engine_without_timing_it(small, tmp_path):
    files, expected = small
    expected.assign(spread=expected["spread"] + 1.0).to_parquet(tmp_path / "reference.parquet")
    result = measure_here(measure_request(files, tmp_path / "reference.parquet"))
    assert result["status"] == "wrong" and "spread differs" in result["reason"] and "times" not in result


def test_workload_quick_section(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    options = RunOptions(quick=True, repeat=1, time_budget_s=0.5, workloads=["ticks"],
                         params={"ticks_rows": 12_000, "ticks_symbols": 30, "ticks_files": 2,
                                 "ticks_batch": 1000, "ticks_engines": "pandas"})
    validate_options(options)
    section = run_workload("ticks", options)
    assert section["status"] == "ok", section.get("traceback")
    labels = [row["label"] for row in section["rows"]]
    assert labels[:3] == ["pandas", "read only (pyarrow)", "read only (polars)"]
    assert labels[3].startswith("stream incremental") and labels[4].startswith("stream recompute")
    fastest_read = min(row["wall_s"] for row in section["rows"][1:3])
    assert section["rows"][0]["x_read"] == pytest.approx(section["rows"][0]["wall_s"] / fastest_read)
    for row in section["rows"][:1]:
        assert row["status"] == "ok" and row["ticks"] == 12_000
        assert row["ticks_per_s"] == pytest.approx(12_000 / row["wall_s"])
        assert row["peak_rss"] > 0
    assert set(section["latency"]) == {"incremental", "recompute"}
    assert len(section["latency"]["incremental"]["samples"]) == 12
    assert section["latency"]["incremental"]["p50"] <= section["latency"]["incremental"]["p99"]
    assert not any(tmp_path.iterdir()), "temporary data sets are removed"


def test_workload_makes_and_keeps_a_data_dir_it_was_given(tmp_path):
    chosen = {**DEFAULTS, "ticks_data": str(tmp_path), "ticks_rows": 3000, "ticks_symbols": 20, "ticks_files": 2}
    with main_data(chosen, seed=0) as (files, label):
        assert label == str(tmp_path) and len(files) == 2
    made = [(f, f.stat().st_mtime_ns) for f in data.tick_files(tmp_path)]
    with main_data({**chosen, "ticks_rows": 9999}, seed=0) as (files, _):
        assert [(f, f.stat().st_mtime_ns) for f in files] == made, "an existing data set is used as is"


@pytest.mark.parametrize("params, message", [
    ({"ticks_rows": 0}, "ticks_rows must be a positive integer"),
    ({"ticks_engines": "polars,spark"}, "unknown engine(s) spark"),
    ({"ticks_alpha": 1.5}, "ticks_alpha must satisfy"),
    ({"ticks_symbols": 10, "ticks_rows": 5}, "symbols (10) must not exceed rows (5)"),
    ({"nonsense": 1}, "belong to none of the selected kernels or workloads (workload ticks)"),
])
def test_workload_rejects_bad_params(params, message):
    with pytest.raises(ValueError) as error:
        validate_options(RunOptions(quick=True, workloads=["ticks"], params=params))
    assert message in str(error.value)


def test_cli_reports_a_bad_workload_param_in_one_line(capsys):
    assert main(["run", "--quick", "--workload", "ticks", "--param", "ticks_batch=-3"]) == 2
    err = capsys.readouterr().err
    assert "ticks_batch must be a positive integer" in err and "Traceback" not in err


def test_workload_without_numba_skips_its_engine_and_streams_in_python(monkeypatch):
    from dataclasses import replace

    import factorbench.workloads.ticks as ticks_workload

    monkeypatch.setitem(ticks_workload.ENGINES, "numba", replace(ENGINES["numba"], requires=("not_a_module_xyz",)))
    monkeypatch.setattr(columnar, "numba_missing", lambda: "numba is not installed")
    options = RunOptions(quick=True, repeat=1, time_budget_s=0.5, workloads=["ticks"],
                         params={"ticks_rows": 4000, "ticks_symbols": 20, "ticks_files": 1, "ticks_batch": 500,
                                 "ticks_engines": "numba", "ticks_recompute_samples": 2})
    section = run_workload("ticks", options)
    assert section["status"] == "ok", section.get("traceback")
    engine_row, _, _, incremental_row, recompute_row = section["rows"]  # the two read-only rows between
    assert engine_row["status"] == "skipped" and engine_row["reason"] == "not_a_module_xyz is not installed"
    assert incremental_row["label"] == "stream incremental (python)" and incremental_row["status"] == "ok"
    assert recompute_row["label"].startswith("stream recompute (numpy")


# Numba engine by stages -----------------------------------------------------------------

def test_stages_equal_reference_in_any_row_order(small, tmp_path):
    """Rows out of (timestamp, seq) order within a symbol are re-sorted; the stages are all timed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, expected = small
    table = pa.concat_tables([pq.read_table(f) for f in files])
    shuffled = table.take(np.random.default_rng(1).permutation(len(table)))
    pq.write_table(shuffled.slice(0, 7000), tmp_path / "a.parquet")
    pq.write_table(shuffled.slice(7000), tmp_path / "b.parquet")
    stages: dict = {}
    result = columnar.compute_files([tmp_path / "a.parquet", tmp_path / "b.parquet"], FactorSpec(), stages)
    ok, _, message = compare(result.to_frame(), expected)
    assert ok, message
    assert set(stages) == set(columnar.STAGES) and all(seconds >= 0 for seconds in stages.values())


def test_bucket_rank_equals_sort_based_rank_dense_and_sparse():
    rng = np.random.default_rng(2)
    values = rng.choice([np.nan, 0.5, 1.0, 1.5, 2.0], 5000)  # ties and NaN in most buckets
    dense = np.sort(rng.integers(0, 50, 5000)) * 1_000
    sparse = rng.integers(0, 10**12, 5000) * 1_000  # counting sort over this range would not pay
    for timestamp in (dense, sparse):
        expected = columnar.bucket_pct_rank(timestamp // 1_000, values)
        np.testing.assert_array_equal(columnar.bucket_rank(timestamp, values, 1_000), expected)


def test_group_by_symbol_skips_symbols_without_kept_ticks(small):
    files, expected = small
    chunks = columnar.read_chunks(files)
    grouped = columnar.group_by_symbol(chunks, 1000)
    kept_symbols = set(expected["symbol"])
    empty = [name for name in chunks.names if name not in kept_symbols]
    assert empty, "the data set has symbols whose ticks are all filtered out"
    sizes = np.diff(grouped.starts)
    assert all(sizes[np.searchsorted(chunks.names, name)] == 0 for name in empty)
    assert len(grouped.seq) == len(expected)


@pytest.mark.parametrize("threads", [1, 3])
def test_stages_on_any_thread_count_give_the_same_bits(small, tmp_path, monkeypatch, threads):
    """Shares of rows, symbols and buckets per thread; row groups of odd sizes (so polars' chunks
    and pyarrow's differ, and each row group has its own symbol dictionary); microsecond timestamps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, expected = small
    table = pa.concat_tables([pq.read_table(f) for f in files])
    table = table.set_column(0, "timestamp", table.column("timestamp").cast(pa.timestamp("us")))
    pq.write_table(table.slice(0, 8000), tmp_path / "a.parquet", row_group_size=777)
    pq.write_table(table.slice(8000), tmp_path / "b.parquet", row_group_size=5000)
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    chunks = columnar.read_chunks(paths)
    assert len({id(batch.symbol_of_code) for batch in chunks.batches}) > 2, "row groups with their own dictionaries"
    single = columnar.compute_files(paths, FactorSpec())
    monkeypatch.setattr(columnar, "_threads", lambda: threads)
    shared = columnar.compute_files(paths, FactorSpec())
    ok, _, message = compare(shared.to_frame(), expected)
    assert ok, message
    for column in ("symbol_id", "timestamp", "seq", *FACTORS):
        np.testing.assert_array_equal(getattr(shared, column), getattr(single, column))


def test_row_shares_cut_batches_into_consecutive_runs():
    ticks = columnar.Ticks(np.array(["A"], dtype=object), *(np.arange(n) for n in [10] * 7))
    batches = [batch for part in (slice(0, 3), slice(3, 10)) for batch in columnar.Chunks.of(ticks.rows(part)).batches]
    shares = columnar._row_shares(batches, 4)  # cuts at rows 2, 5 and 7
    assert [[len(batch.seq) for batch in share] for share in shares] == [[2], [1, 2], [2], [3]]
    assert np.array_equal(np.concatenate([batch.seq for share in shares for batch in share]), np.arange(10))


def test_bucket_rank_ties_signed_zeros_and_infinities():
    """The radix sort's integer keys order every float64 and make -0.0 equal to 0.0."""
    rng = np.random.default_rng(4)
    special = [np.nan, -0.0, 0.0, -np.inf, np.inf, -5e-324, 5e-324, -1e300, 1e300, -1.0, 1.0]
    values = np.where(rng.random(6000) < 0.5, rng.choice(special, 6000), rng.standard_normal(6000))
    timestamp = np.sort(rng.integers(0, 40, 6000)) * 1_000
    expected = columnar.bucket_pct_rank(timestamp // 1_000, values)
    np.testing.assert_array_equal(columnar.bucket_rank(timestamp, values, 1_000), expected)
