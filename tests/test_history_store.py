"""The history store: the same tests on a SQLite file and on a real PostgreSQL server
(started by the tests themselves, see postgres_server.py; skipped where it is not installed).

Idempotent storing, series that never mix machines, modes, metrics or parameters, several
writer processes at once losing nothing, and the refusals: a wrong or unreachable URL, a
store written by a newer schema.
"""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa
from postgres_server import postgres_server, postgres_url  # noqa: F401 (fixtures)

from factorbench.history.store import ENV_VAR, Point, StoreError, open_store, resolve_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    return request.getfixturevalue("postgres_url")


def points(run: str, commits: int = 5, **fields) -> list[Point]:
    """A series of ``commits`` points; a run's id names one commit (run@commit), as a run
    over a range of commits stores them."""
    defaults = {"benchmark": "kernels.sma__numba.time_call(32000)", "machine": "ci-1", "mode": "wall",
                "metric": "seconds", "unit": "seconds", "params": ""}
    defaults.update(fields)
    return [Point(**defaults, run_id=f"{run}@{i}", commit=f"{i:040x}", commit_time=1_700_000_000.0 + i,
                  subject=f"commit {i}", value=1.0 + i / 100, ci_low=0.99 + i / 100, ci_high=1.01 + i / 100)
            for i in range(commits)]


def test_a_run_stored_twice_is_stored_once(store_url):
    with open_store(store_url) as store:
        run = points("run-1", commits=1) + points("run-1", commits=1, benchmark="other")
        assert store.add(run) == 2
        assert store.add(run) == 0
        assert store.add(points("run-2", commits=1)) == 1
        # the same point twice in one batch is stored once too
        assert store.add(points("run-3", commits=1) * 2) == 1
        assert store.count() == 4
    with open_store(store_url) as store:  # reopened: the schema is there, nothing migrated twice
        assert store.count() == 4


def test_a_series_reads_back_in_commit_order_with_every_field(store_url):
    # stored newest first, in runs of one commit each: read back oldest first
    stored = [Point(benchmark="b", machine="m", mode="callgrind", metric="instructions", unit="instructions",
                    params='{"n": 10}', commit=f"{i:040x}", commit_time=1000.0 + i, subject=f"change {i}",
                    value=None if i == 2 else 100.0 + i, ci_low=None, ci_high=None,
                    status="failed" if i == 2 else "ok", reason="ImportError: sma" if i == 2 else "",
                    package="movingwin", package_version=f"1.{i}", dirty=i == 4, factorbench_version="0.1.0",
                    run_id=f"run-{i}") for i in reversed(range(5))]
    with open_store(store_url) as store:
        assert store.add(stored) == 5
        series = store.series("b", "m", "callgrind", "instructions", '{"n": 10}')
    assert series == sorted(stored, key=lambda p: p.commit_time)
    assert series[2].value is None and series[2].status == "failed" and series[4].dirty


def test_a_series_never_mixes_machines_modes_metrics_or_params(store_url):
    variants = [{"machine": "ci-2"}, {"mode": "callgrind"}, {"metric": "instructions"}, {"params": '{"n": 1}'}]
    with open_store(store_url) as store:
        store.add(points("run-1"))
        for variant in variants:
            store.add(points("run-1", **variant))
        keys = store.keys()
        assert len(keys) == 5
        for key in keys:
            series = store.series(*key)
            assert len(series) == 5
            assert {p.key for p in series} == {key}
        assert store.series("kernels.sma__numba.time_call(32000)", "nowhere", "wall", "seconds") == []
        assert [len(series) for series in store.all_series()] == [5] * 5


def test_a_bad_point_stores_nothing_of_its_batch(store_url):
    with open_store(store_url) as store:
        store.add(points("run-1", commits=2))
        with pytest.raises(ValueError, match="status"):
            store.add([*points("run-2", commits=2), Point("b", "m", "wall", "seconds", "s", status="great")])
        assert store.count() == 2


def write_run(url: str, writer: int, barrier) -> None:
    """One writer process: its own run of 50 commits x 4 benchmarks, plus one run every
    writer stores (as parallel CI jobs that import the same file)."""
    barrier.wait()
    with open_store(url) as store:
        for benchmark in range(4):
            store.add(points(f"writer-{writer}", commits=50, benchmark=f"bench-{benchmark}"))
        store.add(points("shared-run", commits=50, benchmark="shared"))


def test_several_writers_at_once_lose_nothing(store_url):
    writers = 4
    context = multiprocessing.get_context("spawn")  # no inherited connections
    barrier = context.Barrier(writers)
    processes = [context.Process(target=write_run, args=(store_url, writer, barrier)) for writer in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0] * writers
    with open_store(store_url) as store:
        assert store.count() == writers * 4 * 50 + 50
        assert len(store.series("shared", "ci-1", "wall", "seconds")) == 50
        assert {p.run_id.partition("@")[0] for p in store.series("bench-0", "ci-1", "wall", "seconds")} == {
            f"writer-{w}" for w in range(writers)}


def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_was(store_url):
    with open_store(store_url) as store:
        store.add(points("run-1"))
    engine = sa.create_engine(store_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"written by a newer factorbench \(schema 99, this one knows up to 1\)"):
        open_store(store_url)
    engine = sa.create_engine(store_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM points")).scalar_one() == 5
    engine.dispose()


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://user@host/db", "mysql is not supported (allowed: sqlite, postgresql)"),
    ("postgresql://nobody@127.0.0.1:1/none", "cannot be opened: connection failed"),
    ("sqlite:////no/such/folder/history.sqlite", "cannot be opened: unable to open database file"),
    ("post gres://db", "is not a database URL"),
    ("postgresql://user@host:port/db", "is not a database URL"),
])
def test_a_wrong_or_unreachable_url_is_one_line(url, message):
    with pytest.raises(StoreError, match="^store .*" + message.replace("(", r"\(").replace(")", r"\)")) as raised:
        open_store(url)
    assert "\n" not in str(raised.value)


def test_the_default_store_is_a_file_under_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path / '.factorbench' / 'history.sqlite'}"
    monkeypatch.setenv(ENV_VAR, "postgresql://ci@db/history")
    assert resolve_url(None, tmp_path) == "postgresql+psycopg://ci@db/history"
    assert resolve_url(str(tmp_path / "h.sqlite")) == f"sqlite:///{tmp_path / 'h.sqlite'}"


def test_the_sqlite_file_uses_a_write_ahead_log(tmp_path):
    with open_store(str(tmp_path / "h.sqlite")) as store:
        store.add(points("run-1"))
    assert sqlite3.connect(tmp_path / "h.sqlite").execute("PRAGMA journal_mode").fetchone() == ("wal",)
