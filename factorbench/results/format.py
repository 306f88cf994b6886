"""How figures are written, in the CLI tables, the HTML report and the gate alike.

One module, so a speed-up reads ``1,234x`` everywhere and bytes are always binary (KiB,
MiB, GiB: what memory sizes are quoted in).
"""

from __future__ import annotations

import json
import math
from typing import TypeGuard

BYTE_UNITS = ("B", "bytes")
"""Units that a workload or metric column can give for byte counts."""


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def time(seconds: float | None) -> str:
    """Seconds with a scaled unit and three significant digits: 1.23 ms."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def ratio(value: float | None) -> str:
    """A speed-up or slow-down factor: 1.23x, 45.6x, 1,234x."""
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def pct(fraction: float | None) -> str:
    """A fraction as a percentage: 0.456 -> 46%, 0.0123 -> 1.2%."""
    if fraction is None:
        return "-"
    value = 100 * fraction
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def ci(result: dict) -> str:
    """A row's 95% CI of the median as ±% of it: ±1.2%."""
    low, high, median = result.get("ci_low"), result.get("ci_high"), result.get("median")
    if not (isinstance(low, float) and isinstance(high, float) and isinstance(median, float)) or median <= 0:
        return "-"
    return f"±{pct((high - low) / 2 / median)}"


def note(result: dict) -> str:
    """A row's reason, with UNSTABLE and why when its samples are too noisy."""
    parts = [result.get("reason") or ""]
    if result.get("unstable"):
        parts.append(f"UNSTABLE ({result['unstable'][0]})")
    return "; ".join(part for part in parts if part)


def size(count) -> str:
    """A byte count in binary units: 1.5 MiB."""
    if not isinstance(count, (int, float)) or isinstance(count, bool):
        return "unknown"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:g} B"


def metric(value, unit: str = "") -> str:
    """A table value whose unit is in the column header, except seconds and bytes, which get
    scaled units."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= 200 else text[:199] + "…"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if unit == "s":
        return time(value)
    if unit in BYTE_UNITS:
        return size(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def params(values: dict) -> str:
    """Kernel parameters as a case title writes them: n=10,000,000 window=20."""
    return " ".join(f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
                    for k, v in values.items())


def scaling(row) -> str:
    """Strong scaling of an analysis row: speed-up vs 1 process and its efficiency."""
    if row.vs_one_process is None:
        return ""
    return f"{row.vs_one_process:.2f}x ({row.efficiency:.0%})"


def _extra(row, key: str, write) -> str:
    value = (row.result.get("extra") or {}).get(key)
    return write(value) if value is not None else ""


PROCESS_COLUMNS = {
    # Shown only in tables where some row has the figure (process-pool paradigms).
    "vs 1 process": scaling,
    "sent/task": lambda row: _extra(row, "bytes_sent_per_task", size),
    "pool start-up": lambda row: _extra(row, "pool_startup_s", time),
}


def code_under_test(code: dict | None) -> str:
    """What a results file, a gate's commit or a history point measured, in one line:
    ``team-factors 0.2.0 at 1a2b3c4d5e (dirty); factorbench 0.1.0``."""
    if not code or not code.get("package"):
        return "not recorded"
    text = " ".join(part for part in (code["package"], code.get("version")) if part)
    if code.get("commit"):
        text += f" at {code['commit'][:10]}" + (" (dirty)" if code.get("dirty") else "")
    if code.get("factorbench_version"):
        text += f"; factorbench {code['factorbench_version']}"
    return text
