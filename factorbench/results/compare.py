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


def relative_half_width(result: dict) -> float | None:
    """Half the 95% CI of a row's median, relative to it (0.02 = ±2%); None without a CI."""
    low, high, median = result.get("ci_low"), result.get("ci_high"), result.get("median")
    if not (fmt.is_number(low) and fmt.is_number(high) and fmt.is_number(median)) or median <= 0:
        return None
    return (high - low) / 2 / median


def min_detectable_effect(before: dict, after: dict, factor: float = COMPARE_FACTOR,
                          alpha: float = COMPARE_ALPHA) -> float:
    """The smallest relative change in time these two rows could have shown (the minimum
    detectable effect), at least the factor's threshold:

    - ``math.inf`` when there are too few samples for the Mann-Whitney test ever to reach
      ``alpha``: its smallest two-sided p-value, with every sample of one run beyond the
      other's, is 2 / C(m+n, m);
    - else the two 95% CIs' relative half-widths added in quadrature, where both rows have
      a CI (6 samples or more);
    - else the spread (max/min - 1) of the noisier run: a shift within it leaves the
      samples overlapping.
    """
    samples = before.get("times") or [], after.get("times") or []
    if not samples[0] or not samples[1] or 2 / math.comb(len(samples[0]) + len(samples[1]), len(samples[0])) >= alpha:
        return math.inf
    widths = relative_half_width(before), relative_half_width(after)
    if widths[0] is not None and widths[1] is not None:
        return max(factor - 1, math.hypot(widths[0], widths[1]))
    spread = max((max(times) / min(times) - 1 for times in samples if min(times) > 0), default=0.0)
    return max(factor - 1, spread)


def _compare_key(result: dict) -> str:
    return json.dumps([analysis.case_key(result), result["implementation"], result.get("settings") or {}],
                      sort_keys=True)


def compare_rows(before: dict, after: dict, factor: float = COMPARE_FACTOR,
                 alpha: float = COMPARE_ALPHA) -> list[dict]:
    """asv-compare-style rows: time-per-element ratio after/before, and a mark.

    ``mde``: the minimum detectable effect of the pair (see min_detectable_effect).
    '+' slower and '-' faster beyond ``factor`` with a Mann-Whitney U p-value below ``alpha``
    on the raw per-call times; '~' beyond the factor but not significant; '!' ran in one
    run only, or its status changed; '' no change (including the same skip in both).
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
               "before": _status_or_time(a), "after": _status_or_time(b), "ratio": None, "p": None, "mde": None,
               "mark": "" if a and b and a["status"] == b["status"] != "ok" else "!"}
        if a and b and a["status"] == b["status"] == "ok" and a.get("elements") and b.get("elements"):
            per_a = [t / a["elements"] for t in a["times"]]
            per_b = [t / b["elements"] for t in b["times"]]
            ratio = (b["median"] / b["elements"]) / (a["median"] / a["elements"])
            p = mannwhitneyu(per_a, per_b, alternative="two-sided").pvalue if per_a and per_b else 1.0
            changed = ratio > factor or ratio < 1 / factor
            mark = ("+" if ratio > 1 else "-") if changed and p < alpha else ("~" if changed else "")
            row.update(ratio=ratio, p=float(p), mark=mark, mde=min_detectable_effect(a, b, factor, alpha))
        rows.append(row)
    return rows


def _status_or_time(result: dict | None) -> str:
    if result is None:
        return "absent"
    if result["status"] != "ok":
        return result["status"].upper()
    width = relative_half_width(result)
    return fmt.time(result["median"]) + (f" ±{fmt.pct(width)}" if width is not None else "")


