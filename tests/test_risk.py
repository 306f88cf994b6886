"""The risk workload without Flink: generator, ground truth, rules, Python and Numba detectors."""

import numpy as np
import pytest

from factorbench.cli import main
from factorbench.measure.runner import RunOptions
from factorbench.workloads import run_workload
from factorbench.workloads.risk import cep_rules, detectors, isolated, stream


def out_of_order_within_cards(tx) -> int:
    """How many events arrive after a later event of the same card."""
    late = 0
    for card in np.unique(tx.card):
        ts = tx.ts_ms[tx.card == card]
        late += int((ts < np.maximum.accumulate(ts)).sum())
    return late


@pytest.fixture(scope="module", params=[(0, 5, 2000), (1, 3, 5000), (2, 8, 1)], ids=lambda p: f"seed{p[0]}-n{p[1]}")
def tx(request):
    seed, burst_n, lateness = request.param
    return stream.generate(30_000, 150, seed=seed, burst_n=burst_n, lateness_ms=lateness)


def test_injected_ground_truth_is_what_the_rules_find(tx):
    assert tx.expected == stream.reference_alerts(tx)
    assert {rule for _, rule, _ in tx.expected} == set(cep_rules.RULES)


def test_the_stream_is_out_of_order_within_the_bound(tx):
    # Arrival order never puts an event at or behind max(ts seen) - lateness: nothing is late.
    assert (tx.ts_ms > np.maximum.accumulate(tx.ts_ms) - tx.lateness_ms).all()
    if tx.lateness_ms > 1000:
        assert out_of_order_within_cards(tx) > 0


@pytest.mark.parametrize("engine", sorted(detectors.DETECTORS))
def test_detector_equals_ground_truth(tx, engine):
    alerts, latencies, late = detectors.DETECTORS[engine](tx)
    assert isolated.compare(alerts, tx.expected) is None
    assert late == 0 and len(latencies) == len(alerts)


def test_same_seed_same_stream_other_seed_differs():
    a, b, c = (stream.generate(5000, 50, seed=s) for s in (4, 4, 5))
    assert np.array_equal(a.event_id, b.event_id) and np.array_equal(a.amount_cents, b.amount_cents)
    assert a.expected == b.expected and not np.array_equal(a.ts_ms, c.ts_ms)


def test_rules_by_hand():
    scan = cep_rules.scan_card
    # rising: strictly, within 10 s (10.000 s is out); after a match the next starts after it
    assert scan([0, 1000, 2000], [100, 200, 300]) == [("rising", 2)]
    assert scan([0, 5000, 10_000], [100, 200, 300]) == []
    assert scan([0, 1000, 2000], [100, 200, 200]) == []
    assert scan([0, 1000, 2000, 3000, 4000, 5000], [1, 2, 3, 4, 5, 6], burst_n=10) == [("rising", 2), ("rising", 5)]
    # probe: below 2.00 then above 500.00, consecutive, within 60 s
    assert scan([0, 59_999], [199, 50_001]) == [("probe", 1)]
    assert scan([0, 60_000], [199, 50_001]) == [] and scan([0, 1], [200, 50_001]) == []
    assert scan([0, 1], [199, 50_000]) == [] and scan([0, 6000, 12_000], [199, 400, 50_001]) == []
    # burst: N + 1 events within 60 s
    assert scan([0, 10_000, 20_000, 30_000], [9, 8, 7, 6], burst_n=3) == [("burst", 3)]
    assert scan([0, 20_000, 40_000, 60_000], [9, 8, 7, 6], burst_n=3) == []


def test_matcher_fed_one_by_one_equals_the_scan():
    rng = np.random.default_rng(0)
    for _ in range(200):
        times = np.cumsum(rng.integers(1, 8000, 40)).tolist()
        amounts = rng.choice([150, 300, 400, 60_000], 40).tolist()
        matcher = cep_rules.CardMatcher(4)
        fed = [(rule, i) for i, (t, a) in enumerate(zip(times, amounts)) for rule in matcher.feed(t, a)]
        assert sorted(fed) == sorted(cep_rules.scan_card(times, amounts, 4))


def test_first_events_keeps_whole_cards_and_their_alerts(tx):
    small = tx.first_events(3000)
    assert len(small) <= 3000 and small.expected == stream.reference_alerts(small)
    assert set(np.unique(small.card)) == set(np.unique(tx.card)[:small.cards()])


def test_csv_is_what_flink_reads(tmp_path):
    tx = stream.generate(2000, 20, seed=1)
    line = tx.write_csv(tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert line == [str(tx.event_id[0]), str(tx.card[0]), f"{tx.amount_cents[0] / 100:.2f}", str(tx.merchant[0]),
                    str(tx.ts_ms[0])]


def test_a_wrong_detector_is_reported_with_what_differs(tx):
    alerts, _, _ = detectors.numba_batch(tx)
    reason = isolated.compare([*alerts[1:], alerts[0], alerts[0]], tx.expected)
    assert reason is not None and "repeated" in reason
    assert "missing" in isolated.compare(alerts[1:], tx.expected)


def test_workload_without_the_flink_environment_skips_flink_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("FACTORBENCH_FLINK_ENV", str(tmp_path / "none"))
    section = run_workload("risk", RunOptions(quick=True, repeat=2, time_budget_s=1.0, workloads=["risk"],
                                              params={"risk_events": 5000, "risk_cards": 50, "risk_parallelism": "1,2"}))
    assert section["status"] == "ok", section.get("traceback")
    rows = {row["label"]: row for row in section["rows"]}
    assert [rows[label]["status"] for label in rows if label.startswith(("python", "numba"))] == ["ok", "ok"]
    flink_rows = [row for label, row in rows.items() if label.startswith("flink")]
    assert len(flink_rows) == 4 and all(row["status"] == "skipped" for row in flink_rows)
    assert all("factorbench env flink" in row["reason"] or "Java" in row["reason"] for row in flink_rows)
    assert rows["python (incremental, dict state)"]["alerts"] == section["params"]["expected_alerts"]


@pytest.mark.parametrize("param, message", [
    ("risk_engines=spark", "choose from: python, numba, flink-sql, flink-datastream"),
    ("risk_parallelism=4", "risk_parallelism must be 1, 2 or 1,2"),
    ("risk_flink=yarn", "choose from: local, standalone"),
    ("risk_burst_n=1", "risk_burst_n must be an integer from 3 to 600"),
    ("risk_events=0", "risk_events must be a positive integer"),
])
def test_bad_params_get_one_line_and_exit_2(capsys, param, message):
    assert main(["run", "--workload", "risk", "--param", param, "--json", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
