"""The tick-factor pipeline (the article's section 9.2, made correct): definition, float64 reference, comparison.

Definition (every implementation computes exactly this):

1. Keep ticks with ``volume > min_volume`` (strictly greater; default 1000).
2. Per symbol, order the kept ticks by (timestamp, seq); ``k`` is a tick's 0-based
   position in its symbol's kept ticks.
3. ``momentum = log(vwap_k) - log(vwap_{k-lag})`` (lag 5), NaN for k < lag: the article's
   ``log(vwap).diff(5)`` computed per symbol, not across symbols.
4. ``spread = ask - bid``.
5. ``zscore = (momentum_k - mean) / std`` over the symbol's last ``window`` (20)
   momentum values k-window+1..k, std with ddof=1. NaN unless all ``window`` values
   exist, i.e. k >= lag + window - 1 (pandas ``rolling(window, min_periods=window)``);
   NaN also where std == 0.
6. ``ema_spread``: e_0 = spread_0, e_k = alpha * spread_k + (1 - alpha) * e_{k-1}
   (alpha 0.1; pandas ``ewm(alpha, adjust=False)``), per symbol.
7. ``rank``: cross-sectional percentile rank of momentum among all kept ticks (of all
   symbols) in the same time bucket ``floor(timestamp_ns / bucket_ns)`` (1 s): ties get
   their average rank, ranks are 1-based and divided by the number of non-NaN momenta
   in the bucket (pandas ``rank(method="average", pct=True)``); NaN momentum -> NaN rank
   and does not count.

Timestamps count in nanoseconds whatever unit the files store. Output: one row per kept
tick, columns symbol, timestamp (int64 ns since the epoch), seq and the five
factors, sorted by (symbol, timestamp, seq), so implementations compare row by row.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass

import numpy as np

KEYS = ("symbol", "timestamp", "seq")
FACTORS = ("momentum", "spread", "zscore", "ema_spread", "rank")
INPUT_COLUMNS = ("timestamp", "seq", "symbol", "bid", "ask", "volume", "vwap")

TOLERANCES = {"momentum": (1e-9, 1e-15), "spread": (0.0, 1e-12), "zscore": (1e-7, 1e-9),
              "ema_spread": (1e-10, 1e-15), "rank": (0.0, 1e-12)}
"""(rtol, atol) per factor. z-scores divide by a std of ~1e-4 computed from values that
differ in their last bits between summation orders, hence the looser bound."""


@dataclass(frozen=True)
class FactorSpec:
    min_volume: int = 1000
    lag: int = 5
    window: int = 20
    alpha: float = 0.1
    bucket_ns: int = 1_000_000_000

    def __post_init__(self):
        for name in ("lag", "window", "bucket_ns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.window < 2:
            raise ValueError(f"window must be >= 2 (a std with ddof=1 needs two values), got {self.window}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must satisfy 0 < alpha <= 1, got {self.alpha!r}")

    def to_json(self) -> dict:
        return asdict(self)


DEFAULT_SPEC = FactorSpec()


def reference(ticks, spec: FactorSpec = DEFAULT_SPEC):
    """The definition above, written for clarity: plain loops over each symbol's ticks.

    ``ticks`` is a pandas DataFrame with the data-set columns; returns the output frame.
    """
    kept = ticks.loc[ticks["volume"] > spec.min_volume, list(INPUT_COLUMNS)].copy()
    kept["timestamp"] = kept["timestamp"].astype("datetime64[ns]").astype("int64")
    kept = kept.sort_values(list(KEYS), ignore_index=True)
    momentum, zscore, ema = [], [], []
    for _, ticks_of_symbol in kept.groupby("symbol", sort=True):
        log_vwap = [math.log(v) for v in ticks_of_symbol["vwap"]]
        spread = (ticks_of_symbol["ask"] - ticks_of_symbol["bid"]).tolist()
        m = [log_vwap[k] - log_vwap[k - spec.lag] if k >= spec.lag else math.nan for k in range(len(log_vwap))]
        momentum += m
        for k in range(len(m)):
            if k < spec.lag + spec.window - 1:
                zscore.append(math.nan)
                continue
            values = m[k - spec.window + 1:k + 1]
            mean = math.fsum(values) / spec.window
            std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (spec.window - 1))
            zscore.append((m[k] - mean) / std if std > 0 else math.nan)
        e = spread[0]
        ema.append(e)
        for s in spread[1:]:
            e = spec.alpha * s + (1 - spec.alpha) * e
            ema.append(e)
    out = kept[list(KEYS)].copy()
    out["momentum"] = momentum
    out["spread"] = kept["ask"] - kept["bid"]
    out["zscore"] = zscore
    out["ema_spread"] = ema
    rank = np.full(len(out), math.nan)
    for _, rows in out.groupby(out["timestamp"] // spec.bucket_ns):
        values = sorted(v for v in rows["momentum"] if not math.isnan(v))
        for position, v in rows["momentum"].items():  # positions: kept has a RangeIndex
            if not math.isnan(v):
                below, up_to = bisect.bisect_left(values, v), bisect.bisect_right(values, v)
                rank[position] = (below + (up_to - below + 1) / 2) / len(values)
    out["rank"] = rank
    return out


def bucket_pct_rank(bucket: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Average-tie percentile rank of ``values`` within each bucket; NaN stays NaN, uncounted."""
    out = np.full(len(values), np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) == 0:
        return out
    order = np.lexsort((values[valid], bucket[valid]))
    b, v = bucket[valid][order], values[valid][order]
    n = len(v)
    new_bucket = np.r_[True, b[1:] != b[:-1]]
    new_tie = new_bucket | np.r_[True, v[1:] != v[:-1]]
    bucket_starts = np.flatnonzero(new_bucket)
    bucket_sizes = np.diff(np.r_[bucket_starts, n])
    tie_starts = np.flatnonzero(new_tie)
    tie_ends = np.r_[tie_starts[1:], n]
    bucket_id = np.cumsum(new_bucket) - 1
    tie_id = np.cumsum(new_tie) - 1
    # Sorted positions start..end-1 hold 1-based ranks start+1..end; their mean is (start+end+1)/2.
    rank_in_bucket = (tie_starts[tie_id] + tie_ends[tie_id] + 1) / 2 - bucket_starts[bucket_id]
    out[valid[order]] = rank_in_bucket / bucket_sizes[bucket_id]
    return out


def compare(result, expected) -> tuple[bool, float, str]:
    """(ok, largest absolute difference, message) of two output frames, row by row."""
    if len(result) != len(expected):
        return False, math.inf, f"{len(result):,} rows, expected {len(expected):,}"
    for key in KEYS:
        got, want = np.asarray(result[key]), np.asarray(expected[key])
        if key == "symbol":
            got, want = got.astype(str), want.astype(str)
        mismatch = np.flatnonzero(got != want)
        if len(mismatch):
            row = mismatch[0]
            return False, math.inf, f"{key} differs first at row {row}: {got[row]!r} != {want[row]!r}"
    worst = 0.0
    for factor in FACTORS:
        got = np.asarray(result[factor], dtype=np.float64)
        want = np.asarray(expected[factor], dtype=np.float64)
        nan_mismatch = np.flatnonzero(np.isnan(got) != np.isnan(want))
        if len(nan_mismatch):
            row = nan_mismatch[0]
            return False, math.inf, (f"{factor}: NaN pattern differs first at row {row} "
                                     f"({expected['symbol'].iloc[row]}): {got[row]} vs expected {want[row]}")
        both = ~np.isnan(want)
        error = np.abs(got[both] - want[both])
        rtol, atol = TOLERANCES[factor]
        bad = np.flatnonzero(error > atol + rtol * np.abs(want[both]))
        worst = max(worst, float(error.max(initial=0.0)))
        if len(bad):
            row = np.flatnonzero(both)[bad[0]]
            return False, worst, (f"{factor} differs first at row {row}: {got[row]!r} vs expected {want[row]!r} "
                                  f"(rtol {rtol:g}, atol {atol:g})")
    return True, worst, ""
