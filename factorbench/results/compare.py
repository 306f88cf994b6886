"""Run-vs-run comparison of two results documents (``factorbench report BEFORE AFTER``)."""

from __future__ import annotations

import json
import math

from factorbench.results import analysis
from factorbench.results import format as fmt

COMPARE_FACTOR = 1.1
"""Ratio beyond which a change counts, as asv's default."""
COMPARE_ALPHA = 0.05
"""Significance level of the Mann-Whitney U test on the raw samples."""


def _compare_key(result: dict) -> str:
    return json.dumps([analysis.case_key(result), result["implementation"], result.get("settings") or {}],
                      sort_keys=True)


def compare_rows(before: dict, after: dict, factor: float = COMPARE_FACTOR,
                 alpha: float = COMPARE_ALPHA) -> list[dict]:
    """asv-compare-style rows: time-per-element ratio after/before, and a mark.

    '+' slower and '-' faster beyond ``factor`` with a Mann-Whitney U p-value below ``alpha``
    on the raw per-call times; '~' beyond the factor but not significant; '!' ran in one
    run only, or its status changed; '' no change (including the same skip in both).
    ``detectable``: the smallest change the comparison could have flagged (see
    smallest_detectable), None when it is not known.
    """
    from scipy.stats import mannwhitneyu

    old = {_compare_key(r): r for r in before["results"]}
    new = {_compare_key(r): r for r in after["results"]}
    rows = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        first = a or new[key]  # every key is in one of the two
        row = {"case": analysis.case_title(first),
               "label": analysis.label(first), "paradigm": first["paradigm"],
               "before": _status_or_time(a), "after": _status_or_time(b), "ratio": None, "p": None,
               "detectable": None,
               "mark": "" if a and b and a["status"] == b["status"] != "ok" else "!"}
        if a and b and a["status"] == b["status"] == "ok" and a.get("elements") and b.get("elements"):
            per_a = [t / a["elements"] for t in a["times"]]
            per_b = [t / b["elements"] for t in b["times"]]
            ratio = (b["median"] / b["elements"]) / (a["median"] / a["elements"])
            p = mannwhitneyu(per_a, per_b, alternative="two-sided").pvalue if per_a and per_b else 1.0
            changed = ratio > factor or ratio < 1 / factor
            mark = ("+" if ratio > 1 else "-") if changed and p < alpha else ("~" if changed else "")
            row.update(ratio=ratio, p=float(p), mark=mark, detectable=smallest_detectable(per_a, per_b, factor, alpha))
        rows.append(row)
    return rows


def smallest_detectable(before: list[float], after: list[float], factor: float, alpha: float) -> float:
    """The smallest relative change these samples could show as significant: at least
    ``factor - 1``, and at least the spread (max/min - 1) of the noisier run, since a
    shift within the spread leaves the samples overlapping. ``math.inf`` when there are
    too few samples for the Mann-Whitney test ever to reach ``alpha``: its smallest
    two-sided p-value, with every sample of one run beyond the other's, is 2 / C(m+n, m).
    """
    if not before or not after or 2 / math.comb(len(before) + len(after), len(before)) >= alpha:
        return math.inf
    spread = max((max(samples) / min(samples) - 1 for samples in (before, after) if min(samples) > 0), default=0.0)
    return max(factor - 1, spread)


def _status_or_time(result: dict | None) -> str:
    if result is None:
        return "absent"
    if result["status"] != "ok":
        return result["status"].upper()
    return fmt.time(result["median"]) + (f" ±{fmt.time(result['iqr'])}" if fmt.is_number(result.get("iqr")) else "")


