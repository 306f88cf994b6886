"""Versioned results JSON: what a run measured, written atomically, validated on load."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "wrong", "failed", "skipped", "timeout")
REQUIRED_MEASUREMENT_FIELDS = ("kernel", "implementation", "paradigm", "params", "status", "reason",
                               "times", "median")

REQUIRED_WORKLOAD_FIELDS = ("name", "status", "rows")
MEMORY_PEAK_KEY = "peak_rss_increase_mib"
"""Key in a row's ``extra`` of the peak RSS increase (MiB) that ``--profile`` measured."""


class ResultsError(ValueError):
    """A results file that cannot be used, with the reason."""


@dataclass
class Measurement:
    kernel: str
    implementation: str
    paradigm: str
    params: dict[str, Any]
    status: str
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """Swept implementation settings of this row (processes, scheduler, threads...)."""
    times: list[float] = field(default_factory=list)
    median: float | None = None
    iqr: float | None = None
    calls_per_sample: int | None = None
    warmup_s: float | None = None
    cold_call_s: float | None = None
    """First call ever (in the gate): includes JIT compilation or device start-up."""
    elements: int | None = None
    bytes_moved: int | None = None
    output_bytes: int | None = None
    """Size of the new array one call returns; its case is held against the fresh-output floor."""
    max_error: float | None = None
    requested_params: dict[str, Any] | None = None
    """Set when the time budget forced a smaller size than asked for."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Paradigm-specific figures (thread counts, bytes sent to workers, ...)."""


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def document(machine: dict, options: dict, measurements: list[Measurement], **sections) -> dict:
    doc = {"schema_version": SCHEMA_VERSION, "machine": machine, "options": options,
           "results": [asdict(m) for m in measurements]}
    doc.update(sections)
    return _json_safe(doc)


def write(path: str | os.PathLike, doc: dict) -> None:
    """Replace ``path`` atomically: readers see the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> dict:
    """Read and validate a results file; ResultsError says what is wrong with it."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ResultsError(f"{path}: not a factorbench results file (no schema_version)")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {doc['schema_version']!r} is not supported "
                           f"(this factorbench reads version {SCHEMA_VERSION})")
    for key in ("machine", "options", "results"):
        if key not in doc:
            raise ResultsError(f"{path}: missing top-level field {key!r}")
    if not isinstance(doc["machine"], dict) or not isinstance(doc["options"], dict):
        raise ResultsError(f"{path}: 'machine' and 'options' must be objects")
    if not isinstance(doc["results"], list):
        raise ResultsError(f"{path}: 'results' must be a list")
    for index, entry in enumerate(doc["results"]):
        if not isinstance(entry, dict):
            raise ResultsError(f"{path}: result #{index} is not an object")
        missing = [f for f in REQUIRED_MEASUREMENT_FIELDS if f not in entry]
        if missing:
            raise ResultsError(f"{path}: result #{index} lacks field(s) {', '.join(missing)}")
        if entry["status"] not in STATUSES:
            raise ResultsError(f"{path}: result #{index} has unknown status {entry['status']!r} "
                               f"(allowed: {', '.join(STATUSES)})")
        if not isinstance(entry["params"], dict) or not isinstance(entry["times"], list) \
                or not all(isinstance(t, (int, float)) for t in entry["times"]) \
                or not isinstance(entry["median"], (int, float, type(None))):
            raise ResultsError(f"{path}: result #{index} has a malformed params, times or median field")
    for index, section in enumerate(doc.get("workloads") or []):
        if not isinstance(section, dict) or not all(key in section for key in REQUIRED_WORKLOAD_FIELDS):
            raise ResultsError(f"{path}: workload section #{index} lacks field(s) "
                               f"{', '.join(REQUIRED_WORKLOAD_FIELDS)}")
    return doc
