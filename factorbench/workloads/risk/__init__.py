"""The streaming risk workload (the article's real-time risk section): CEP fraud patterns
over a card-transaction stream, on Apache Flink (PyFlink) and in Python.

- stream.py: the seeded stream with injected fraud groups, the exact expected alerts.
- cep_rules.py: the three rules, as a reference scan and as an incremental matcher.
- detectors.py: the pure-Python incremental detector and the NumPy/Numba batch detector.
- isolated.py: one of those two per fresh process: check, timed calls, peak memory.
- flink_job.py: the Flink job (MATCH_RECOGNIZE, or a Python KeyedProcessFunction).
- flink_run.py: runs it on the mini-cluster or the standalone cluster, and measures it.

Every engine's alerts must equal the injected ground truth (the exact set of (card, rule,
event id)) or its row is ``wrong`` and gets no figures. A Flink run is expensive, so one
run is both the check and the measurement; its figures are kept only when it passed.

Parameters (``factorbench run --workload risk --param KEY=VALUE``):
  risk_events, risk_cards    stream size (default 1M events / 2,000 cards; --quick 20k / 200)
  risk_datastream_events     at most this many events for the PyFlink DataStream engine
                             (its Python operator runs at about 10^3 events/s: default
                             20,000, --quick 5,000); it gets the events of the first cards
  risk_lateness_ms=2000      bounded out-of-orderness, and the watermark's delay
  risk_burst_n=5             the burst rule: more than N events within 60 s
  risk_fraud_rate=0.002      injected groups per event
  risk_engines=python,numba,flink-sql,flink-datastream
  risk_parallelism=1,2       Flink parallelism, one row each (--quick: 1)
  risk_flink=local           local (PyFlink's mini-cluster), standalone (the cluster of
                             `factorbench cluster start --engine flink`), or local,standalone
  risk_cluster_state=PATH    the standalone cluster's state file (default ~/.cache/factorbench/flink-cluster.json)
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from factorbench.workloads import Workload

ENGINES = ("python", "numba", "flink-sql", "flink-datastream")
TARGETS = ("local", "standalone")
DEFAULTS = {"risk_events": 1_000_000, "risk_cards": 2_000, "risk_datastream_events": 20_000, "risk_lateness_ms": 2000,
            "risk_burst_n": 5, "risk_fraud_rate": 0.002, "risk_engines": ",".join(ENGINES), "risk_parallelism": "1,2",
            "risk_flink": "local", "risk_cluster_state": None}
QUICK = {"risk_events": 20_000, "risk_cards": 200, "risk_datastream_events": 5_000, "risk_parallelism": "1"}
UNITS = {"events": "events", "events_per_s": "events/s", "run_s": "s", "startup_s": "s", "jvm_s": "s",
         "first_call_s": "s", "p50_s": "s", "p95_s": "s", "p99_s": "s", "peak_rss": "bytes"}


def _names(value) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def validate(chosen: dict) -> None:
    for key in ("risk_events", "risk_cards", "risk_datastream_events", "risk_lateness_ms"):
        if not isinstance(chosen[key], int) or chosen[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {chosen[key]!r}")
    if not isinstance(chosen["risk_burst_n"], int) or not 3 <= chosen["risk_burst_n"] <= 600:
        raise ValueError(f"risk_burst_n must be an integer from 3 to 600, got {chosen['risk_burst_n']!r}")
    if not isinstance(chosen["risk_fraud_rate"], (int, float)) or not 0 < chosen["risk_fraud_rate"] <= 0.05:
        raise ValueError(f"risk_fraud_rate must satisfy 0 < rate <= 0.05, got {chosen['risk_fraud_rate']!r}")
    for key, allowed in (("risk_engines", ENGINES), ("risk_flink", TARGETS)):
        names = _names(chosen[key])
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise ValueError(f"{key}: unknown {', '.join(unknown) or '(none given)'}; choose from: {', '.join(allowed)}")
    levels = _names(chosen["risk_parallelism"])
    if not levels or not all(level.isdigit() and 1 <= int(level) <= 2 for level in levels):
        raise ValueError(f"risk_parallelism must be 1, 2 or 1,2 (the standalone cluster has 2 slots), "
                         f"got {chosen['risk_parallelism']!r}")


def _latency(seconds: list[float]) -> dict:
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]) if seconds else (np.nan,) * 3
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "samples": [float(s) for s in seconds]}


def python_rows(tx, engines, options, work: Path) -> tuple[list[dict], dict]:
    from factorbench.workloads.risk import isolated

    rows, latency = [], {}
    path = work / "stream.npz"
    isolated.save(tx, path)
    labels = {"python": "python (incremental, dict state)", "numba": "numba (batch, sorted by card and time)"}
    for engine in [e for e in ("python", "numba") if e in engines]:
        row = {"label": labels[engine], "status": "ok", "events": len(tx), "expected": len(tx.expected)}
        result = isolated.measure({"engine": engine, "stream": str(path), "repeat": options.repeat,
                                   "budget_s": options.time_budget_s}, timeout_s=max(300.0, 30 * options.time_budget_s))
        if result["status"] != "ok":
            rows.append({**row, "status": result["status"], "reason": result["reason"]})
            continue
        wall = statistics.median(result["times"])
        summary = latency[row["label"]] = _latency(result["latencies"])
        rows.append({**row, "alerts": result["alerts"], "events_per_s": len(tx) / wall, "run_s": wall,
                     "first_call_s": result["cold_s"], "p50_s": summary["p50"], "p95_s": summary["p95"],
                     "p99_s": summary["p99"], "peak_rss": result["peak_rss"],
                     "reason": "" if result["peak_reset"] else "memory: process-lifetime peak"})
    return rows, latency


def flink_rows(tx, chosen, engines, work: Path) -> tuple[list[dict], dict]:
    from factorbench.parallel import flink
    from factorbench.workloads.risk import isolated
    from factorbench.workloads.risk.flink_run import run_job

    rows, latency = [], {}
    reason = flink.missing()
    inputs = {"flink-sql": tx, "flink-datastream": tx.first_events(chosen["risk_datastream_events"])}
    files = {}
    for engine in [e for e in ("flink-sql", "flink-datastream") if e in engines]:
        stream = inputs[engine]
        if not reason:
            files[engine] = stream.write_csv(work / f"{engine}.csv")
        for target in _names(chosen["risk_flink"]):
            for parallelism in [int(p) for p in _names(chosen["risk_parallelism"])]:
                label = f"{engine} ({target}, p={parallelism})"
                row = {"label": label, "status": "ok", "events": len(stream), "expected": len(stream.expected)}
                if reason:
                    rows.append({**row, "status": "skipped", "reason": reason})
                    continue
                result = run_job(stream, files[engine], work / label.replace(" ", "_"), engine.removeprefix("flink-"),
                                 parallelism, target, cluster_state=chosen["risk_cluster_state"] and
                                 Path(str(chosen["risk_cluster_state"])),
                                 timeout_s=600.0 if engine == "flink-sql" else 300.0 + len(stream) / 50)
                if result["status"] != "ok":
                    rows.append({**row, "status": result["status"], "reason": result["reason"]})
                    continue
                if (wrong := isolated.compare(result["alerts"], stream.expected)) is not None:
                    rows.append({**row, "status": "wrong", "reason": wrong})
                    continue
                summary = latency[label] = _latency(result["latencies"])
                caveats = []
                if stream is not tx:
                    caveats.append(f"input: the first {stream.cards():,} cards' events (a Python operator's speed)")
                open_ports = sorted({port for ip, port, _ in result["listening"]
                                     if ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")})
                if open_ports:
                    caveats.append(f"{len(open_ports)} port(s) listened on all addresses (see notes)")
                rows.append({**row, "alerts": len(result["alerts"]), "events_per_s": len(stream) / result["run_s"],
                             "run_s": result["run_s"], "startup_s": result["startup_s"], "jvm_s": result["jvm_s"],
                             "p50_s": summary["p50"], "p95_s": summary["p95"], "p99_s": summary["p99"],
                             "peak_rss": result["peak_rss"], "reason": "; ".join(caveats)})
    return rows, latency


EVENT_BYTES = 200
"""Memory per generated event in the largest engine (an estimate: columns, sort, state)."""


def data_bytes(options) -> int:
    return EVENT_BYTES * WORKLOAD.parameters(options)["risk_events"]


def run(options) -> dict:
    from factorbench.workloads.risk.stream import generate

    chosen = WORKLOAD.parameters(options)
    engines = _names(chosen["risk_engines"])
    try:
        tx = generate(chosen["risk_events"], chosen["risk_cards"], seed=options.seed,
                      lateness_ms=chosen["risk_lateness_ms"], burst_n=chosen["risk_burst_n"],
                      fraud_rate=float(chosen["risk_fraud_rate"]))
    except ValueError as exc:
        raise ValueError(f"workload risk: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="factorbench-risk-") as work:
        rows, latency = python_rows(tx, engines, options, Path(work))
        more_rows, more_latency = flink_rows(tx, chosen, engines, Path(work))
    return {
        "params": {"events": len(tx), "cards": tx.cards(), "expected_alerts": len(tx.expected),
                   "lateness_ms": tx.lateness_ms, "burst_n": tx.burst_n, "seed": options.seed,
                   "flink": chosen["risk_flink"]},
        "rows": rows + more_rows,
        "units": UNITS,
        "latency": {**latency, **more_latency},
        "notes": [
            "rules, per card in event time, runs of consecutive events, next match after the alerting event: "
            "rising = 3 strictly rising amounts within 10 s; probe = an amount below 2.00 then one above 500.00 "
            f"within 60 s; burst = more than {tx.burst_n} events within 60 s ('within' is strict, as Flink's WITHIN). "
            "Events arrive out of order by less than the lateness; watermark = max event time - lateness.",
            "check: every engine's alerts equal the injected ground truth exactly (card, rule, event id), else the "
            "row is wrong and has no figures. A Flink run is both the check and the measurement.",
            "events/s = events / run_s; Flink: run_s = from the source reading the first event to the client seeing "
            "the job finish; startup_s = launch of the job process to the first event read (JVM, planning, "
            "deployment, Python workers); jvm_s = launch until the gateway JVM answered. Python engines: median "
            "of the timed calls, first_call_s is the check call (Numba compile).",
            "latency: Flink = NOW() at the sink minus NOW() when the source read the alerting event (the replay "
            "runs flat out, so it includes queueing and the watermark's periodic emission); python = from taking "
            "the event off the stream to emitting the alert; numba = the whole batch (alerts exist only at its end).",
            "peak_rss: Python engines, the VmHWM of a fresh process during the timed calls; Flink, the largest "
            "sampled (0.2 s) sum of resident sets of the job's processes (client, JVMs, Python workers; on the "
            "standalone cluster its JobManager and TaskManager too).",
            "sockets: the standalone cluster's JVMs listen on 127.0.0.1 only. Seen listening on all addresses: a "
            "local mini-cluster's BlobServer (Flink 2.3 binds it to the wildcard there whatever "
            "jobmanager.bind-host says), and, with the DataStream engine on either target, the gRPC servers "
            "(Apache Beam's) that connect the JVM to its Python workers; such rows say so.",
        ],
    }


WORKLOAD = Workload(
    name="risk",
    summary="streaming risk: CEP fraud patterns on Flink (MATCH_RECOGNIZE, PyFlink DataStream), Python and Numba",
    run=run,
    requires=("pandas",),
    params=DEFAULTS,
    quick=QUICK,
    validate=validate,
    data_bytes=data_bytes,
)
