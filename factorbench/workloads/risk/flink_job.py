"""The Flink job: run with PyFlink's own interpreter, ``python flink_job.py JOB.json``
(local mini-cluster), or by ``flink run -py flink_job.py JOB.json`` (standalone cluster).

It imports only PyFlink and the standard library (plus cep_rules.py beside it, also sent
to the Python workers): factorbench is not installed in PyFlink's environment.

Source: the stream's CSV file through Flink's filesystem connector, event time ``ts``
with ``WATERMARK FOR ts AS ts - lateness``, and ``arrived`` = NOW() per row as the source
reads it. Engines:
- sql: the three rules as MATCH_RECOGNIZE queries in one statement set (one job, the
  source read once); they run in the JVM.
- datastream: ``to_data_stream`` of the source, keyed by card, a Python
  KeyedProcessFunction buffering each event in MapState until its event-time timer
  fires (the watermark passed it), then feeding the card's matcher kept in ValueState.
Sinks (CSV files): alerts (card, rule, event_id, arrived, alerted = NOW() at the sink)
and marks: when the source read the stream's first and last events.

Progress goes to stdout as JSON lines: {"event": "environment" | "submitted" |
"finished", "t": epoch seconds, ...}.
"""

import json
import sys
import time
from pathlib import Path

BIND_OPTIONS = ("jobmanager.bind-host", "jobmanager.rpc.address", "taskmanager.bind-host", "taskmanager.host",
                "rest.address", "rest.bind-address")
"""Set to 127.0.0.1 for local runs too: the mini-cluster otherwise listens on every address."""


def say(event, **fields):
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def source_ddl(job):
    return f"""CREATE TABLE tx (
        event_id BIGINT, card BIGINT, amount DECIMAL(12, 2), merchant INT, ts_ms BIGINT,
        ts AS TO_TIMESTAMP_LTZ(ts_ms, 3), arrived AS NOW(),
        WATERMARK FOR ts AS ts - INTERVAL '{job["lateness_ms"] / 1000:.3f}' SECOND
    ) WITH ('connector' = 'filesystem', 'path' = '{job["input"]}', 'format' = 'csv')"""


def sink_ddls(job, arrived_type):
    out = Path(job["output"])
    return [f"""CREATE TABLE alerts (card BIGINT, rule STRING, event_id BIGINT, arrived {arrived_type},
                                     alerted TIMESTAMP_LTZ(3))
                WITH ('connector' = 'filesystem', 'path' = '{out / "alerts"}', 'format' = 'csv')""",
            f"""CREATE TABLE marks (event_id BIGINT, arrived {arrived_type})
                WITH ('connector' = 'filesystem', 'path' = '{out / "marks"}', 'format' = 'csv')"""]


def marks_sql(job, source="tx"):
    """The marks must come from the very reader the engine consumes (the planner reuses
    one source across the statement set), else they time a second, unthrottled reader."""
    return (f"INSERT INTO marks SELECT event_id, arrived FROM {source} "
            f"WHERE event_id IN ({job['first_event_id']}, {job['last_event_id']})")


def match_sql(rule, job):
    """One rule as MATCH_RECOGNIZE; the same definitions as cep_rules.py."""
    patterns = {
        "rising": ("C", "PATTERN (A B C) WITHIN INTERVAL '10' SECOND",
                   "DEFINE B AS B.amount > A.amount, C AS C.amount > B.amount"),
        "probe": ("L", "PATTERN (S L) WITHIN INTERVAL '60' SECOND",
                  "DEFINE S AS S.amount < 2.00, L AS L.amount > 500.00"),
        "burst": ("E", f"PATTERN (E{{{job['burst_n'] + 1}}}) WITHIN INTERVAL '60' SECOND", "DEFINE E AS TRUE"),
    }
    last, pattern, define = patterns[rule]
    return f"""INSERT INTO alerts SELECT card, '{rule}', event_id, arrived, NOW() FROM tx MATCH_RECOGNIZE (
        PARTITION BY card ORDER BY ts
        MEASURES LAST({last}.event_id) AS event_id, LAST({last}.arrived) AS arrived
        AFTER MATCH SKIP PAST LAST ROW {pattern} {define})"""


def configuration(job):
    from pyflink.common import Configuration

    conf = Configuration()
    conf.set_string("parallelism.default", str(job["parallelism"]))
    conf.set_string("table.local-time-zone", "UTC")
    if job["local"]:
        for key in BIND_OPTIONS:
            conf.set_string(key, "127.0.0.1")
        conf.set_string("rest.bind-port", "0")  # any free port: several local jobs may run at once
    return conf


def run_sql(job):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(configuration(job)).build()
    t_env = TableEnvironment.create(settings)
    say("environment")
    for ddl in [source_ddl(job), *sink_ddls(job, "TIMESTAMP_LTZ(3)")]:
        t_env.execute_sql(ddl)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(marks_sql(job))
    for rule in job["rules"]:
        statements.add_insert_sql(match_sql(rule, job))
    return statements.execute()


def run_datastream(job):
    import cep_rules
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, StreamExecutionEnvironment
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
    from pyflink.table import StreamTableEnvironment

    burst_n = job["burst_n"]

    class Detect(KeyedProcessFunction):
        """Buffer each event until the watermark passes it, then match it in event time."""

        def open(self, runtime_context):
            self.pending = runtime_context.get_map_state(
                MapStateDescriptor("pending", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
            self.tails = runtime_context.get_state(ValueStateDescriptor("tails", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, row, ctx):
            # Timestamps are unique per card, so one timer and one pending entry per event.
            self.pending.put(row.ts_ms, (row.event_id, row.cents, row.arrived))
            ctx.timer_service().register_event_time_timer(row.ts_ms)

        def on_timer(self, timestamp, ctx):
            event_id, amount, arrived = self.pending.get(timestamp)
            self.pending.remove(timestamp)
            tails = self.tails.value()
            matcher = cep_rules.CardMatcher.from_state(burst_n, tails) if tails else cep_rules.CardMatcher(burst_n)
            matched = matcher.feed(timestamp, amount)
            self.tails.update(matcher.state())
            for rule in matched:
                yield Row(ctx.get_current_key(), rule, event_id, arrived)

    env = StreamExecutionEnvironment.get_execution_environment(configuration(job))
    env.set_parallelism(job["parallelism"])
    env.set_python_executable(sys.executable)
    env.add_python_file(str(Path(__file__).with_name("cep_rules.py")))
    t_env = StreamTableEnvironment.create(env)
    say("environment")
    for ddl in [source_ddl(job), *sink_ddls(job, "STRING")]:
        t_env.execute_sql(ddl)
    events = t_env.to_data_stream(t_env.sql_query(
        "SELECT event_id, card, CAST(amount * 100 AS BIGINT) AS cents, ts_ms, CAST(arrived AS STRING) AS arrived, ts "
        "FROM tx"))
    alerts = (events.key_by(lambda row: row.card, key_type=Types.LONG())
              .process(Detect(), output_type=Types.ROW_NAMED(["card", "rule", "event_id", "arrived"],
                                                             [Types.LONG(), Types.STRING(), Types.LONG(),
                                                              Types.STRING()])))
    t_env.create_temporary_view("found", t_env.from_data_stream(alerts))
    t_env.create_temporary_view("read", t_env.from_data_stream(events))  # the same reader as the engine's
    statements = t_env.create_statement_set()
    statements.add_insert_sql(marks_sql(job, "read"))
    statements.add_insert_sql("INSERT INTO alerts SELECT card, rule, event_id, arrived, NOW() FROM found")
    return statements.execute()


def main(argv):
    job = json.loads(Path(argv[1]).read_text())
    sys.path.insert(0, str(Path(__file__).parent))  # cep_rules, for the client side
    result = {"sql": run_sql, "datastream": run_datastream}[job["engine"]](job)
    client = result.get_job_client()
    say("submitted", job_id=str(client.get_job_id()) if client is not None else None)
    result.wait()
    say("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
