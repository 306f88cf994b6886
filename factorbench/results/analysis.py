"""Derived figures from a results document: cases, speed-ups and baselines.

Shared by the CLI tables and the HTML report, so both say the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from factorbench.results import format as fmt

BASELINE_PARADIGMS = ("loop", "vectorized", "library")


@dataclass
class Row:
    result: dict
    per_element_s: float
    speedup: dict[str, float | None] = field(default_factory=dict)
    """Speed-up against the fastest ok row of each baseline paradigm, per element; "library"
    takes the plugins' baseline libraries too."""
    best: bool = False
    vs_one_process: float | None = None
    """Strong scaling: speed-up over the same implementation with processes=1, per element."""

    @property
    def efficiency(self) -> float | None:
        """Strong-scaling efficiency: speed-up vs 1 process divided by the process count."""
        processes = (self.result.get("settings") or {}).get("processes")
        return self.vs_one_process / processes if self.vs_one_process is not None and processes else None


@dataclass
class Case:
    kernel: str
    params: dict
    ranked: list[Row]
    """ok rows, fastest first."""
    unranked: list[dict]
    """wrong / failed / skipped / timeout / crashed rows, with their reasons: never ranked."""

    @property
    def title(self) -> str:
        return f"{self.kernel} {fmt.params(self.params)}"


def case_title(result: dict) -> str:
    """The title of the case a result row belongs to: kernel and requested parameters."""
    return f"{result['kernel']} {fmt.params(result.get('requested_params') or result['params'])}"


def case_key(result: dict) -> str:
    params = result.get("requested_params") or result["params"]
    return json.dumps([result["kernel"], params], sort_keys=True)


def cases(doc: dict) -> list[Case]:
    """Group results by kernel and requested params; rank ok rows by time per element."""
    libraries = baseline_libraries(doc)
    grouped: dict[str, list[dict]] = {}
    for result in doc["results"]:
        grouped.setdefault(case_key(result), []).append(result)
    out = []
    for results in grouped.values():
        first = results[0]
        ranked = [Row(r, r["median"] / r["elements"]) for r in results
                  if r["status"] == "ok" and r.get("median") and r.get("elements")]
        ranked.sort(key=lambda row: row.per_element_s)
        baselines: dict[str, Row | None] = {}
        for paradigm in BASELINE_PARADIGMS:
            candidates = [row for row in ranked if row.result["paradigm"] == paradigm
                          or (paradigm == "library" and (row.result["kernel"], row.result["implementation"]) in libraries)]
            baselines[paradigm] = candidates[0] if candidates else None
        for row in ranked:
            row.speedup = {paradigm: (base.per_element_s / row.per_element_s if base else None)
                           for paradigm, base in baselines.items()}
        for row in ranked:
            twin = _one_process_twin(row, ranked)
            row.vs_one_process = twin.per_element_s / row.per_element_s if twin else None
        if ranked:
            ranked[0].best = True
        out.append(Case(kernel=first["kernel"], params=first.get("requested_params") or first["params"],
                        ranked=ranked, unranked=[r for r in results if r["status"] != "ok"]))
    return out


def baseline_libraries(doc: dict) -> set[tuple[str, str]]:
    """(kernel, implementation) of every baseline library the run checked, the plugins'
    (``Paradigm(baseline_library=True)``) as well as the ``library`` paradigm's: the matrix marks
    them not ours."""
    return {(p["kernel"], p["implementation"]) for p in doc.get("correctness") or [] if not p.get("ours", True)}


def _one_process_twin(row: Row, ranked: list[Row]) -> Row | None:
    """The row of the same implementation and settings but processes=1, if measured."""
    settings = row.result.get("settings") or {}
    if "processes" not in settings:
        return None
    wanted = (row.result["paradigm"], row.result["implementation"], json.dumps({**settings, "processes": 1},
                                                                              sort_keys=True))
    for other in ranked:
        key = (other.result["paradigm"], other.result["implementation"],
               json.dumps(other.result.get("settings") or {}, sort_keys=True))
        if key == wanted:
            return other
    return None


def label(result: dict) -> str:
    """Implementation name with its swept settings, e.g. 'multiprocessing-shm (processes=2)'."""
    settings = result.get("settings") or {}
    if not settings:
        return result["implementation"]
    return f"{result['implementation']} (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")"


def elements_per_s(row: Row) -> float:
    return 1.0 / row.per_element_s
