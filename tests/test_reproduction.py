"""The article's headline figures held against a real small run (tests/data, a --quick run)."""

import copy
from pathlib import Path

from factorbench.report.html import render
from factorbench.results import reproduction, schema

RUN = Path(__file__).with_name("data") / "reproduction-run.json"


def claims_by_name(doc):
    return {claim.claim.split(":")[0]: claim for claim in reproduction.claims(doc)}


def test_every_claim_is_judged_from_the_run():
    found = claims_by_name(schema.load(RUN))
    assert len(found) == 5
    assert all(c.verdict in (reproduction.REPRODUCED, reproduction.NOT_REPRODUCED, reproduction.NOT_COMPARABLE)
               and c.why for c in found.values())
    assert found["moving average, 10M points"].verdict == reproduction.NOT_REPRODUCED  # 270x per element, not 552x
    assert "270x per element" in found["moving average, 10M points"].measured
    assert found["row sums"].verdict == reproduction.NOT_REPRODUCED  # C and F equally fast on NumPy 2
    assert found["shared memory"].measured.startswith("50% fewer")
    assert found["single-node throughput"].verdict == reproduction.NOT_COMPARABLE
    assert "M ticks/s end to end (numba)" in found["single-node throughput"].measured
    assert found["P99 latency"].measured == "25.6 ms -> 5.1 ms"


def test_a_ratio_close_to_the_article_reproduces():
    doc = copy.deepcopy(schema.load(RUN))
    for row in doc["results"]:
        if row["kernel"] == "row_sums" and row["params"].get("order") == "F":
            row["median"] *= 3.0
    assert claims_by_name(doc)["row sums"].verdict == reproduction.REPRODUCED


def test_missing_measurements_are_not_comparable_and_say_why():
    doc = {"results": [], "workloads": []}
    for claim in reproduction.claims(doc):
        assert claim.verdict == reproduction.NOT_COMPARABLE and claim.why.startswith("the run has no")


def test_report_shows_the_reproduction_table():
    html = render(schema.load(RUN))
    assert "The article&#39;s figures, reproduced?" in html or "The article's figures, reproduced?" in html
    assert html.count('class="verdict"') == 5 and "47M ops/s" in html


def test_a_run_holding_none_of_the_figures_leaves_the_table_out():
    doc = copy.deepcopy(schema.load(RUN))
    doc["results"] = [{**row, "kernel": "team_" + row["kernel"], "implementation": "team-" + row["implementation"]}
                      for row in doc["results"]]
    doc["workloads"] = []
    assert not reproduction.comparable(reproduction.claims(doc))
    html = render(doc)
    assert 'id="reproduction"' not in html and "reproduced?" not in html
    assert 'id="reproduction"' in render(schema.load(RUN))
