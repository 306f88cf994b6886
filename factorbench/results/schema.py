"""Versioned results JSON: what a run measured, written atomically, decoded with its types.

The schema is a set of msgspec structs: msgspec decodes and type-checks the whole file in
one pass and names the path of the first bad field (``results[3].elements``), and it
derives the JSON Schema published beside this module (results.schema.json) from the same
structs, so the two cannot drift. ``load`` accepts every version in READABLE_VERSIONS, as
pyperf reads its older files: later versions only add fields with defaults.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import msgspec

SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
Status = Literal["ok", "wrong", "failed", "skipped", "timeout", "crashed"]
"""wrong: output differs from the trusted answer (or the input was modified); failed: it
raised; timeout: too slow for the budget, or killed at the deadline; crashed: its worker
process died (signal or exit code in the reason)."""
PROBLEM_STATUSES = ("wrong", "failed", "timeout", "crashed")
"""Statuses that make ``factorbench run --strict`` exit 1."""
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
MEMORY_PEAK_KEY = "peak_rss_increase_mib"
"""Key in a row's ``extra`` of the peak RSS increase (MiB) that ``--profile`` measured."""
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


class ResultsError(ValueError):
    """A results file that cannot be used, with the reason (one line)."""


class Measurement(msgspec.Struct, kw_only=True):
    """One row: an implementation (with its settings) timed, or not, on one case.

    Fields without a default must be in every file (a row without ``median`` is a broken
    file, not an unmeasured row); keyword-only, so they need no particular order."""

    kernel: str
    implementation: str
    paradigm: str
    params: dict[str, Any]
    status: Status
    reason: str
    settings: dict[str, Any] = {}
    """Swept implementation settings of this row (processes, scheduler, threads...)."""
    times: list[float]
    """Raw samples: seconds per call, one per sample, of every round in turn."""
    median: float | None
    """The median of the round medians (of the samples, with one round)."""
    round_medians: list[float] = []
    """The median of each round's samples, each round in its own worker process; with two
    or more, the CI and the run-vs-run test are between rounds."""
    iqr: float | None = None
    calls_per_sample: int | None = None
    warmup_s: float | None = None
    cold_call_s: float | None = None
    """First call ever (in the check): includes JIT compilation or device start-up."""
    elements: int | None = None
    bytes_moved: int | None = None
    output_bytes: int | None = None
    """Size of the new array one call returns; its case is held against the fresh-output floor."""
    max_error: float | Literal["inf"] | None = None
    """Largest relative error against the reference; "inf" when shapes or NaN patterns differ."""
    requested_params: dict[str, Any] | None = None
    """Set when the time budget forced a smaller size than asked for."""
    extra: dict[str, Any] = {}
    """Paradigm-specific figures (thread counts, bytes sent to workers, ...)."""
    cv: float | None = None
    """Coefficient of variation of ``times`` (standard deviation / mean)."""
    ci_low: float | None = None
    ci_high: float | None = None
    """95% confidence interval of the median (method in the machine's ``ci_method``);
    None with one round of fewer than 6 samples."""
    unstable: list[str] = []
    """Why the samples are too noisy to trust (pyperf's rules); empty when they are not."""
    stopped_by: str | None = None
    """What ended sampling: precision, budget, max samples or repeat; comma-separated when
    rounds ended differently."""
    checked_at_size: bool = False
    """One timed call's output was compared with the trusted answer at the measured size
    (``max_error`` is then the larger of that and the check's)."""
    elapsed_s: float | None = None
    """Wall time of the row in its worker, or until it was killed (timeout) or died."""
    peak_rss_bytes: int | None = None
    """The worker's resident-set high-water mark while on this row (its interpreter and
    libraries included; processes it started not), the largest of its rounds; for a worker
    that died, the last mark the runner saw. None where unreadable."""


class WorkloadSection(msgspec.Struct):
    """A workload's table: rows of figures with their units, or why it did not run."""

    name: str
    status: Status
    rows: list[dict[str, Any]]
    summary: str = ""
    reason: str = ""
    params: dict[str, Any] = {}
    units: dict[str, str] = {}
    notes: list[str] = []


class MatrixCell(msgspec.Struct, kw_only=True):
    """One implementation on one input class of the correctness matrix."""

    input_class: str
    outcome: Literal["pass", "wrong", "raises", "unavailable"]
    case: str = ""
    reason: str = ""
    max_error: float | Literal["inf"] | None = None
    first_bad_index: int | None = None
    exception: str | None = None
    message: str | None = None


class MatrixProfile(msgspec.Struct, kw_only=True):
    """An implementation (with its settings) profiled on every input class of its kernel."""

    kernel: str
    implementation: str
    paradigm: str
    settings: dict[str, Any] = {}
    ours: bool = True
    """False for the library baselines, whose deviations are findings rather than failures."""
    reason: str = ""
    cells: list[MatrixCell] = []


class CodeUnderTest(msgspec.Struct, kw_only=True):
    """What code a run, a gate's commit or a history point measured (absent before version 4)."""

    package: str = ""
    """The measured distribution: the project of the repository measured (factorbench itself
    in its own checkout, or with no project around)."""
    version: str = ""
    commit: str = ""
    """Full git sha of the measured code; "" outside a git repository."""
    dirty: bool = False
    """The work tree had uncommitted changes to tracked files (a gate's builds never do)."""
    factorbench_version: str = ""
    """The factorbench that measured it."""


class ResultsFile(msgspec.Struct):
    schema_version: int
    machine: dict[str, Any]
    options: dict[str, Any]
    results: list[Measurement]
    workloads: list[WorkloadSection] = []
    correctness: list[MatrixProfile] = []
    """The correctness matrix of every implementation the run checked (absent in older files)."""
    code: CodeUnderTest | None = None
    """The code under test (absent in files before version 4)."""


def json_schema() -> dict:
    """The JSON Schema of a results file, from the structs above."""
    schema = msgspec.json.schema(ResultsFile)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "factorbench results file", **schema}


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
           "results": msgspec.to_builtins(measurements)}
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


def _one_line(error: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.results[3].elements`" as
    "results[3].elements: expected int, got str"."""
    message, _, where = str(error).partition(" - at ")
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    where = where.strip("`").removeprefix("$").removeprefix(".")
    if where.endswith(".status") and message.startswith("invalid enum value"):
        message += f" (allowed: {', '.join(STATUSES)})"
    return f"{where}: {message}" if where else message


def load(path: str | os.PathLike) -> dict:
    """Read a results file, checking every field's type; ResultsError says what is wrong
    (the file, the field's path, what was expected)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ResultsError(f"{path}: not a factorbench results file (no schema_version)")
    if doc["schema_version"] not in READABLE_VERSIONS:
        raise ResultsError(f"{path}: schema_version {doc['schema_version']!r} is not supported "
                           f"(this factorbench reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        msgspec.json.decode(raw, type=ResultsFile)
    except msgspec.ValidationError as exc:
        raise ResultsError(f"{path}: {_one_line(exc)}") from None
    # The validated document is returned as plain JSON data: fields a newer writer or a
    # workload adds beyond the schema are kept, not dropped.
    doc.setdefault("workloads", [])
    doc.setdefault("correctness", [])
    return doc
