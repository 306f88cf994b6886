"""The article's headline figures beside the same measurements from one results document.

Each claim becomes one row: the article's figure, this run's, a verdict ("reproduced",
"not reproduced", "not comparable") and why. Times differ between machines, so ratios are
compared, not absolute times: a ratio is reproduced when it is within RATIO_FACTOR of
the article's and in the same direction.
"""

from __future__ import annotations

from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not reproduced", "not comparable"
RATIO_FACTOR = 2.0
"""How far (either way) a run's ratio may be from the article's and still reproduce it."""


@dataclass(frozen=True)
class Claim:
    claim: str
    article: str
    measured: str
    verdict: str
    why: str


def _ok(doc: dict, kernel: str, implementation: str, **params) -> list[dict]:
    return [r for r in doc.get("results", []) if r["kernel"] == kernel and r["implementation"] == implementation
            and r["status"] == "ok" and r.get("median") and all(r["params"].get(k) == v for k, v in params.items())]


def _per_element(row: dict) -> float:
    return row["median"] / row["elements"] if row.get("elements") else row["median"]


def _ratio_verdict(ratio: float, article: float) -> tuple[str, str]:
    if article / RATIO_FACTOR <= ratio <= article * RATIO_FACTOR:
        return REPRODUCED, f"ratio {ratio:.3g}x within {RATIO_FACTOR:g}x of the article's {article:.3g}x"
    return NOT_REPRODUCED, f"ratio {ratio:.3g}x, the article's {article:.3g}x"


def moving_average(doc: dict) -> Claim:
    article = 12.7 / 0.023
    base = Claim("moving average, 10M points: loop vs vectorized", "12.7 s vs 23 ms (552x)", "-", NOT_COMPARABLE, "")
    loops, vectorized = _ok(doc, "sma", "loop"), [r for name in ("vectorized-cumsum", "vectorized-convolve")
                                                   for r in _ok(doc, "sma", name)]
    if not loops or not vectorized:
        return _replace(base, why="the run has no sma loop and vectorized rows")
    loop, fast = max(loops, key=_per_element), min(vectorized, key=_per_element)
    ratio = _per_element(loop) / _per_element(fast)
    verdict, why = _ratio_verdict(ratio, article)
    sizes = f"loop at n={loop['params'].get('n')}, {fast['implementation']} at n={fast['params'].get('n')}"
    return _replace(base, measured=f"{loop['median']:.3g} s vs {fast['median'] * 1e3:.3g} ms ({ratio:.0f}x per element)",
                    verdict=verdict, why=f"{why}; {sizes}")


def row_sums_order(doc: dict) -> Claim:
    article = 189 / 58
    base = Claim("row sums: C vs F order", "58 ms vs 189 ms (F 3.26x slower)", "-", NOT_COMPARABLE, "")
    c_rows, f_rows = _ok(doc, "row_sums", "vectorized", order="C"), _ok(doc, "row_sums", "vectorized", order="F")
    pairs = [(c, f) for c in c_rows for f in f_rows if c["params"].get("n") == f["params"].get("n")]
    if not pairs:
        return _replace(base, why="the run has no vectorized row_sums rows in both orders at one size")
    c, f = max(pairs, key=lambda pair: pair[0]["params"].get("n", 0))
    ratio = f["median"] / c["median"]
    verdict, why = _ratio_verdict(ratio, article)
    return _replace(base, measured=f"{c['median'] * 1e3:.3g} ms vs {f['median'] * 1e3:.3g} ms (F {ratio:.2f}x)",
                    verdict=verdict, why=f"{why}; n={c['params'].get('n')}")


def shared_memory_copies(doc: dict) -> Claim:
    base = Claim("shared memory: 80% fewer copies", "80% fewer", "-", NOT_COMPARABLE, "")
    reductions = []
    for shm in [r for r in doc.get("results", []) if r["implementation"] == "multiprocessing-shm"
                and r["status"] == "ok" and "bytes_copied_per_call" in r.get("extra", {})]:
        for naive in doc.get("results", []):
            if (naive["implementation"] == "multiprocessing-naive" and naive["status"] == "ok"
                    and naive["kernel"] == shm["kernel"] and naive["params"] == shm["params"]
                    and naive.get("settings") == shm.get("settings") and "bytes_sent_per_call" in naive["extra"]):
                naive_bytes = naive["extra"]["bytes_sent_per_call"] + naive["extra"].get(
                    "array_bytes_returned_per_call", 0)
                if naive_bytes:
                    reductions.append((1 - shm["extra"]["bytes_copied_per_call"] / naive_bytes, shm["kernel"]))
    if not reductions:
        return _replace(base, why="the run has no multiprocessing-shm and -naive rows of one case")
    worst, kernel = min(reductions)
    verdict = REPRODUCED if worst >= 0.8 else NOT_REPRODUCED
    return _replace(base, measured=f"{worst:.0%} fewer bytes copied per call (least, {kernel})", verdict=verdict,
                    why="bytes copied per call (pickled, staged into shared memory, copied out) vs naive pickling, "
                        f"over {len(reductions)} case(s); the article measures memory use")


def tick_throughput(doc: dict) -> Claim:
    base = Claim("single-node throughput", "47M ops/s", "-", NOT_COMPARABLE, "")
    rows = [row for section in doc.get("workloads", []) if section["name"] == "ticks"
            for row in section["rows"] if row.get("status") == "ok" and row.get("ticks_per_s")
            and not row["label"].startswith(("read only", "stream"))]
    if not rows:
        return _replace(base, why="the run has no ticks workload engine rows")
    best = max(rows, key=lambda row: row["ticks_per_s"])
    in_memory = best.get("in_memory_ticks_per_s")
    measured = f"{best['ticks_per_s'] / 1e6:.3g}M ticks/s end to end ({best['label']})"
    if in_memory:
        measured += f", {in_memory / 1e6:.3g}M in memory"
    return _replace(base, measured=measured, why="the article does not say what an op is, nor its machine; here "
                                                 "one op is one input tick through every factor")


def latency_p99(doc: dict) -> Claim:
    article = 230 / 8
    base = Claim("P99 latency: recompute vs incremental", "230 ms -> 8 ms (28.8x)", "-", NOT_COMPARABLE, "")
    rows = {row["label"].split(" ")[1]: row for section in doc.get("workloads", []) if section["name"] == "ticks"
            for row in section["rows"] if row["label"].startswith("stream") and row.get("status") == "ok"}
    if "recompute" not in rows or "incremental" not in rows:
        return _replace(base, why="the run has no ticks stream rows")
    slow, fast = rows["recompute"]["p99_s"], rows["incremental"]["p99_s"]
    verdict, why = _ratio_verdict(slow / fast, article)
    return _replace(base, measured=f"{slow * 1e3:.3g} ms -> {fast * 1e3:.3g} ms", verdict=verdict,
                    why=f"{why}; recompute looks back a bounded window (see the ticks notes)")


def _replace(claim: Claim, **changes) -> Claim:
    from dataclasses import replace

    return replace(claim, **changes)


def claims(doc: dict) -> list[Claim]:
    """Every headline figure of the article, held against this run."""
    return [moving_average(doc), row_sums_order(doc), shared_memory_copies(doc), tick_throughput(doc),
            latency_p99(doc)]


def comparable(claims_: list[Claim]) -> bool:
    """Whether the run holds any of the article's figures: a run of other kernels only (a
    plugin's) has nothing to say about them, and its report leaves the table out."""
    return any(claim.verdict != NOT_COMPARABLE for claim in claims_)
