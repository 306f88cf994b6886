"""Run-vs-run comparison of two results documents (``factorbench report BEFORE AFTER``)."""

from __future__ import annotations

import json
import math

import numpy as np

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

    - where both rows were timed in two or more rounds: the change Welch's t-test on their
      log round medians would just find significant at ``alpha`` (see rounds_test);
    - ``math.inf`` when there are too few samples for the Mann-Whitney test ever to reach
      ``alpha``: its smallest two-sided p-value, with every sample of one run beyond the
      other's, is 2 / C(m+n, m);
    - else the two 95% CIs' relative half-widths added in quadrature, where both rows have
      a CI (6 samples or more);
    - else the spread (max/min - 1) of the noisier run: a shift within it leaves the
      samples overlapping.
    """
    between_rounds = rounds_test(before, after, alpha)
    if between_rounds is not None:
        return max(factor - 1, between_rounds[1])
    samples = before.get("times") or [], after.get("times") or []
    if not samples[0] or not samples[1] or 2 / math.comb(len(samples[0]) + len(samples[1]), len(samples[0])) >= alpha:
        return math.inf
    widths = relative_half_width(before), relative_half_width(after)
    if widths[0] is not None and widths[1] is not None:
        return max(factor - 1, math.hypot(widths[0], widths[1]))
    spread = max((max(times) / min(times) - 1 for times in samples if min(times) > 0), default=0.0)
    return max(factor - 1, spread)


def rounds_test(before: dict, after: dict, alpha: float = COMPARE_ALPHA) -> tuple[float, float] | None:
    """(p-value, minimum detectable effect) of Welch's t-test on the two rows' log round
    medians, or None unless both were timed in 2 rounds or more.

    The rounds ran in separate worker processes, so they are the independent values (the
    samples of one process shift together); the test is pyperf's, on logs because timing
    noise is multiplicative. The effect is the relative change whose t statistic would
    just reach ``alpha``: exp(t_crit x standard error) - 1.
    """
    medians = before.get("round_medians") or [], after.get("round_medians") or []
    if min(map(len, medians)) < 2 or min(min(medians[0]), min(medians[1])) <= 0:
        return None
    from scipy.stats import t, ttest_ind

    logs = np.log(medians[0]), np.log(medians[1])
    variances = [float(np.var(values, ddof=1)) / len(values) for values in logs]
    error = math.sqrt(sum(variances))
    if error == 0:  # identical rounds on both sides: any difference is certain
        return (0.0 if logs[0][0] != logs[1][0] else 1.0), 0.0
    freedom = sum(variances) ** 2 / sum(v**2 / (len(values) - 1) for v, values in zip(variances, logs))
    p = float(ttest_ind(logs[1], logs[0], equal_var=False).pvalue)
    return p, math.expm1(float(t.ppf(1 - alpha / 2, freedom)) * error)


def _compare_key(result: dict) -> str:
    return json.dumps([analysis.case_key(result), result["implementation"], result.get("settings") or {}],
                      sort_keys=True)


def compare_rows(before: dict, after: dict, factor: float = COMPARE_FACTOR,
                 alpha: float = COMPARE_ALPHA) -> list[dict]:
    """asv-compare-style rows: time-per-element ratio after/before, and a mark.

    ``mde``: the minimum detectable effect of the pair (see min_detectable_effect).
    '+' slower and '-' faster beyond ``factor`` with a p-value below ``alpha``: Welch's t-test
    between rounds where both rows have 2 or more (rounds_test), else Mann-Whitney U on the
    raw per-call times; '~' beyond the factor but not significant; '!' ran in one
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
            between_rounds = rounds_test(a, b, alpha)
            if between_rounds is not None:
                p = between_rounds[0]
            else:
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


