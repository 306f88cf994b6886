"""The history store: points of every run and commit, in SQLite (a file, the default) or
PostgreSQL (a team's server), through one SQLAlchemy Core code path.

A *series* is one benchmark on one machine in one mode, of one metric and one set of
parameters; a *point* is that series measured on one commit by one run. The schema is
versioned by the Alembic migrations in ``migrations/``, run when a store is opened.
Writers may run at once: a point is unique per (series, run), so importing a run twice
stores it once and concurrent writers of the same run cannot duplicate it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

ENV_VAR = "FACTORBENCH_HISTORY_STORE"
DEFAULT_FILE = Path(".factorbench") / "history.sqlite"
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite writer waits for another writer's transaction before giving up."""
PG_MIGRATION_LOCK = 0x66626869  # any constant: serialises migrations of one PostgreSQL database
STATUSES = ("ok", "failed", "skipped")

WRITES = "factorbench_writes"
"""Execution option of a connection whose transaction will write."""

SeriesKey = tuple[str, str, str, str, str]
"""(benchmark, machine, mode, metric, params): what a series never mixes."""


class StoreError(Exception):
    """A store that cannot be used (a wrong or unreachable URL, a newer schema), in one line."""


class Point(msgspec.Struct, frozen=True):
    """One benchmark measured on one commit by one run."""

    benchmark: str
    """e.g. "kernels.sma__numba.time_call(32000)" or a factorbench row key."""
    machine: str
    mode: str
    """"callgrind" | "wall"."""
    metric: str
    """"instructions" | "seconds" | ..."""
    unit: str
    params: str = ""
    """The case's parameters as sorted JSON ("" if none)."""
    commit: str = ""
    """Full sha of the measured package's commit."""
    commit_time: float = 0.0
    """Committer time, unix seconds: orders a series."""
    subject: str = ""
    value: float | None = None
    """None when the benchmark failed or was skipped."""
    ci_low: float | None = None
    ci_high: float | None = None
    status: str = "ok"
    reason: str = ""
    package: str = ""
    package_version: str = ""
    dirty: bool = False
    factorbench_version: str = ""
    run_id: str = ""
    """The source run; (run_id, benchmark, machine, mode, metric, params) is unique, so a
    run over several commits gives each commit its own run_id."""

    @property
    def key(self) -> SeriesKey:
        return (self.benchmark, self.machine, self.mode, self.metric, self.params)


metadata = sa.MetaData()
# The tables as the newest migration leaves them (the migrations create them; these only query).
series_table = sa.Table(
    "series", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("benchmark", sa.String, nullable=False),
    sa.Column("machine", sa.String, nullable=False),
    sa.Column("mode", sa.String, nullable=False),
    sa.Column("metric", sa.String, nullable=False),
    sa.Column("params", sa.String, nullable=False),
    sa.Column("unit", sa.String, nullable=False),
    sa.UniqueConstraint("benchmark", "machine", "mode", "metric", "params", name="series_key"),
)
points_table = sa.Table(
    "points", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("commit", sa.String, nullable=False),
    sa.Column("commit_time", sa.Float, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("package", sa.String, nullable=False),
    sa.Column("package_version", sa.String, nullable=False),
    sa.Column("dirty", sa.Boolean, nullable=False),
    sa.Column("factorbench_version", sa.String, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
    sa.UniqueConstraint("series_id", "run_id", name="point_once_per_run"),
)
KEY_COLUMNS = ("benchmark", "machine", "mode", "metric", "params")
POINT_COLUMNS = ("run_id", "commit", "commit_time", "subject", "value", "ci_low", "ci_high", "status", "reason",
                 "package", "package_version", "dirty", "factorbench_version")


def repo_root(start: Path) -> Path:
    """The git work tree holding ``start``, or ``start`` itself outside one."""
    found = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True)
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else start.resolve()


def resolve_url(url: str | None = None, root: Path | None = None) -> str:
    """The store's SQLAlchemy URL: ``url``, else $FACTORBENCH_HISTORY_STORE, else the SQLite
    file .factorbench/history.sqlite under the repository root. A plain path is a SQLite
    file; postgresql:// means PostgreSQL through psycopg 3."""
    url = url or os.environ.get(ENV_VAR) or ""
    if not url:
        path = repo_root(root or Path.cwd()) / DEFAULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if "://" not in url:
        return f"sqlite:///{Path(url).absolute()}"
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return url


def one_line(exc: BaseException) -> str:
    """A driver's error message, first line only (psycopg adds hints on further lines)."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def make_engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StoreError(f"store URL {url!r} is not a database URL (allowed: a SQLite file path, sqlite:///PATH, "
                         "postgresql://USER@HOST/DB)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"store URL {shown(url)!r}: {parsed.get_backend_name()} is not supported "
                         "(allowed: sqlite, postgresql)")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _serialise_sqlite_writers(engine)
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise StoreError(f"store URL {shown(url)!r} needs a driver that is not installed ({one_line(exc)}); "
                         "PostgreSQL needs psycopg: pip install 'factorbench[postgresql]'") from None
    return engine


def _serialise_sqlite_writers(engine: Engine) -> None:
    """WAL lets readers run beside a writer; a writer's BEGIN IMMEDIATE takes the write lock
    up front, so two writers queue on the busy timeout instead of one failing at once with
    "database is locked" when both try to upgrade a read lock (SQLAlchemy's documented
    recipe). Readers begin deferred and never wait for a writer."""

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN, not the driver
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITES) else "BEGIN")


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write (on SQLite: one that takes the write lock at once)."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITES: True})
        with connection.begin():
            yield connection


def alembic_config(connection: Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def schema_numbers(connection: Connection) -> tuple[str | None, int]:
    """The store's schema revision (None for an empty database) and the newest this code knows."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
    return MigrationContext.configure(connection).get_current_revision(), int(head or 0)


def migrate(engine: Engine, url: str) -> None:
    """Bring the store's schema to this code's newest; refuse a store written by a newer one."""
    from alembic import command

    with writing(engine) as connection:
        current, newest = schema_numbers(connection)
        if current is not None and not current.isdigit():
            raise StoreError(f"store {shown(url)} has schema {current!r}, which no factorbench wrote")
        if current is not None and int(current) > newest:
            raise StoreError(f"store {shown(url)} was written by a newer factorbench (schema {int(current)}, "
                             f"this one knows up to {newest})")
        if current is not None and int(current) == newest:
            return
        if connection.dialect.name == "postgresql":
            # two writers opening a new store at once: one creates the tables, the other waits and finds them
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), "head")


def open_store(url: str | None = None, root: Path | None = None) -> Store:
    """``url`` None: $FACTORBENCH_HISTORY_STORE, else the SQLite file
    <root>/.factorbench/history.sqlite. Raises StoreError (one line) for an unreachable or
    wrong URL or a store of a newer schema."""
    resolved = resolve_url(url, root)
    engine = make_engine(resolved)
    try:
        migrate(engine, resolved)
    except StoreError:
        engine.dispose()
        raise
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"store {shown(resolved)} cannot be opened: {one_line(exc)}") from None
    return Store(engine, resolved)


def _insert(dialect: str):
    """INSERT ... ON CONFLICT DO NOTHING exists in both SQLite and PostgreSQL, under each
    dialect's own construct."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class Store:
    """An open history store. Every method is one transaction."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({shown(self.url)!r})"

    def add(self, points: Iterable[Point]) -> int:
        """Store ``points``; returns how many were new (a point of a (series, run) already
        stored is left as it was). All or nothing: a failure stores none of them. Two
        writers storing the very same points at the same moment may both count them as
        new; the store holds them once."""
        points = list(points)
        for point in points:
            if point.status not in STATUSES:
                raise ValueError(f"point status must be one of {', '.join(STATUSES)}, got {point.status!r}")
        if not points:
            return 0
        insert = _insert(self.engine.dialect.name)
        stored_at = time.time()
        try:
            with writing(self.engine) as connection:
                ids = self._series_ids(connection, insert, points)
                rows = {(ids[point.key], point.run_id): {
                    "series_id": ids[point.key], "stored_at": stored_at,
                    **{column: getattr(point, column) for column in POINT_COLUMNS}} for point in points}
                new = len(rows) - self._stored(connection, rows)
                # ON CONFLICT DO NOTHING, not a RETURNING of the inserted ids: with RETURNING,
                # PostgreSQL took 4x as long (SQLAlchemy batches it less well)
                statement = insert(points_table).on_conflict_do_nothing(index_elements=["series_id", "run_id"])
                batch = list(rows.values())
                for start in range(0, len(batch), 5000):
                    connection.execute(statement, batch[start:start + 5000])
                return new
        except sa.exc.OperationalError as exc:
            raise StoreError(f"store {shown(self.url)}: {one_line(exc)}") from None

    @staticmethod
    def _stored(connection: Connection, keys: Iterable[tuple[int, str]]) -> int:
        """How many of these (series id, run id) are stored already."""
        by_run: dict[str, set[int]] = {}
        for series_id, run_id in keys:
            by_run.setdefault(run_id, set()).add(series_id)
        p = points_table.c
        found = 0
        for run_id, series_ids in by_run.items():  # a run per commit: few runs, many series each
            ordered = sorted(series_ids)
            for start in range(0, len(ordered), 500):
                query = sa.select(sa.func.count()).where(p.run_id == run_id, p.series_id.in_(ordered[start:start + 500]))
                found += connection.execute(query).scalar_one()
        return found

    def _series_ids(self, connection: Connection, insert, points: list[Point]) -> dict[SeriesKey, int]:
        units = {point.key: point.unit for point in points}
        connection.execute(insert(series_table).on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)),
                           [{**dict(zip(KEY_COLUMNS, key)), "unit": unit} for key, unit in units.items()])
        benchmarks = sorted({key[0] for key in units})
        ids: dict[SeriesKey, int] = {}
        for start in range(0, len(benchmarks), 500):
            query = sa.select(series_table).where(series_table.c.benchmark.in_(benchmarks[start:start + 500]))
            for row in connection.execute(query):
                key = tuple(getattr(row, column) for column in KEY_COLUMNS)
                if key in units:
                    ids[key] = row.id
        return ids

    def series(self, benchmark: str, machine: str, mode: str, metric: str, params: str = "") -> list[Point]:
        """The points of one series, in commit order (oldest first)."""
        s, p = series_table.c, points_table.c
        query = (self._points_query()
                 .where(s.benchmark == benchmark, s.machine == machine, s.mode == mode, s.metric == metric,
                        s.params == params)
                 .order_by(p.commit_time, p.id))
        with self.engine.connect() as connection:
            return [Point(*row) for row in connection.execute(query)]

    @staticmethod
    def _points_query() -> sa.Select:
        """Every column of a Point, in the order of its fields (rows become Points positionally:
        reading a million points is then a matter of seconds, not tens of them)."""
        columns = {**series_table.c, **{name: column for name, column in points_table.c.items()
                                        if name not in ("id", "series_id", "stored_at")}}
        return sa.select(*(columns[field] for field in Point.__struct_fields__)).join_from(
            series_table, points_table, points_table.c.series_id == series_table.c.id)

    def keys(self) -> list[SeriesKey]:
        """Every stored series, sorted."""
        s = series_table.c
        query = sa.select(*(getattr(s, column) for column in KEY_COLUMNS)).order_by(
            *(getattr(s, column) for column in KEY_COLUMNS))
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    def all_series(self) -> Iterator[list[Point]]:
        """Every series' points in commit order, series by series (one query, streamed, in the
        order of the points' index)."""
        p = points_table.c
        query = self._points_query().add_columns(p.series_id).order_by(p.series_id, p.commit_time, p.id)
        current: list[Point] = []
        current_id = None
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=10_000).execute(query):
                if current and row[-1] != current_id:
                    yield current
                    current = []
                current_id = row[-1]
                current.append(Point(*row[:-1]))
        if current:
            yield current

    def count(self) -> int:
        """How many points are stored."""
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(points_table)).scalar_one()

    def close(self) -> None:
        self.engine.dispose()
