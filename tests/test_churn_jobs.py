"""The churn jobs on tiny hand-computed inputs: training rows, sample, order statistics, top-N."""

import json

import numpy as np
import pytest

from mr_jobs.churn_features import COUNTER_GROUP_CHURN, MRChurnFeatures, label_lines
from mr_jobs.churn_rules import quantile_from_order_statistics, quantile_ranks
from mr_jobs.churn_sample import KEY_SPACE, MRChurnSample, sample_key
from mr_jobs.order_statistics import MROrderStatistics
from mr_jobs.top_n import MRTopAtRisk
from tests.conftest import run_job

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
CUTOFF = ["--cutoff", "2023-03-31", "--as-of", "2023-04-30"]


def _lines(*lines):
    return HEADER + "".join(line + "\n" for line in lines)


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_empty_inputs_give_no_rows():
    for job, args in [
        (MRChurnFeatures, CUTOFF),
        (MRChurnSample, ["--seed", "0", "--threshold", str(KEY_SPACE)]),
        (MROrderStatistics, ["--column", "value", "--n", "0", "--ranks", "0"]),
        (MRTopAtRisk, ["--threshold", "0"]),
    ]:
        rows, _counters = run_job(job, b"", args)
        assert rows == [], job.__name__


def test_an_order_spanning_the_cutoff_counts_once_and_labels_the_customer():
    data = _lines(
        "O1,A,2023-03-31T10:00:00,I1,1,10.00",
        "O1,A,2023-04-01T10:00:00,I2,1,5.00",  # the same order, the next day: a horizon line
        "O2,A,2023-04-10T10:00:00,I2,1,1.00",
        "O3,B,2023-04-02T10:00:00,I1,1,3.00",  # B starts in the horizon: no row
        "O4,C,2023-02-01T10:00:00,I1,2,2.50",
        "O5,C,2023-05-01T10:00:00,I1,1,2.50",  # after the horizon's end
    )
    rows, counters = run_job(MRChurnFeatures, data, CUTOFF)
    by_id = {r["customer_id"]: r for r in rows}
    assert sorted(by_id) == ["A", "C"]
    assert (by_id["A"]["churned"], by_id["A"]["orders_in_horizon"]) == (0, 1)  # O2 only
    assert by_id["A"]["value_in_horizon"] == pytest.approx(6.0)
    # A bought on 2023-04-01 and 2023-04-10 in the horizon: two purchase days
    assert by_id["A"]["purchase_days_in_horizon"] == 2
    assert by_id["C"]["purchase_days_in_horizon"] == 0
    assert (by_id["C"]["churned"], by_id["C"]["orders_in_horizon"]) == (1, 0)
    assert by_id["C"]["total_value"] == 5.0 and by_id["C"]["recency_days"] == 58
    assert counters["crm.rejected"] == {"header": 1, "after_as_of": 4}  # 3 horizon + 1 later
    assert counters[COUNTER_GROUP_CHURN]["horizon_lines"] == 3
    assert counters[COUNTER_GROUP_CHURN]["horizon_only_customers"] == 1
    features = {"read": 7, "accepted": 2, "rejected": 5, "rejected_by_reason": {}}
    features["rejected_by_reason"] = {"after_as_of": 4, "header": 1}
    assert label_lines(features, [counters]) == {
        "read": 7,
        "accepted": 5,
        "rejected": 2,
        "rejected_by_reason": {"after_as_of": 1, "header": 1},
    }


def test_the_sample_keeps_the_keys_under_the_threshold_whatever_the_runner():
    rows = [{"customer_id": f"C{i}", "churned": i % 2} for i in range(200)]
    threshold = KEY_SPACE // 4
    kept = {}
    for runner in ("inline", "local"):
        out, counters = run_job(
            MRChurnSample, _jsonl(rows), ["--seed", "7", "--threshold", str(threshold)], runner
        )
        kept[runner] = sorted(r["customer_id"] for r in out)
        assert counters["crm.output"]["rows"] == len(out)
    expected = sorted(r["customer_id"] for r in rows if sample_key(r["customer_id"], 7) < threshold)
    assert kept["inline"] == kept["local"] == expected
    assert 25 < len(expected) < 75


@pytest.mark.parametrize("n, q", [(1, 0.8), (2, 0.5), (10, 0.8), (101, 0.8), (997, 0.37)])
def test_two_order_statistics_give_numpy_quantile_bit_for_bit(n, q):
    rng = np.random.default_rng(n)
    values = np.round(rng.lognormal(4, 1, n), 2)
    low, high, gamma = quantile_ranks(n, q)
    ordered = np.sort(values)
    got = quantile_from_order_statistics(float(ordered[low]), float(ordered[high]), gamma)
    assert got == float(np.quantile(values, q))
    rows = [{"customer_id": f"C{i}", "value": float(v)} for i, v in enumerate(values)]
    args = ["--column", "value", "--n", str(n), "--ranks", f"{low},{high}"]
    out, _ = run_job(MROrderStatistics, _jsonl(rows), args)
    assert dict((r, v) for r, v in out) == {low: ordered[low], high: ordered[high]}


def test_top_n_ranks_by_value_at_risk_then_id_and_keeps_the_limit():
    rows = [
        {"customer_id": "B", "risk_tier": "high", "value": 10.0, "value_at_risk": 8.0},
        {"customer_id": "A", "risk_tier": "high", "value": 10.0, "value_at_risk": 8.0},
        {"customer_id": "C", "risk_tier": "high", "value": 50.0, "value_at_risk": 40.0},
        {"customer_id": "D", "risk_tier": "low", "value": 90.0, "value_at_risk": 9.0},
        {"customer_id": "E", "risk_tier": "high", "value": 9.99, "value_at_risk": 9.0},
        {"customer_id": "AB", "risk_tier": "high", "value": 10.0, "value_at_risk": 8.0},
    ]
    out, _ = run_job(MRTopAtRisk, _jsonl(rows), ["--threshold", "10.0"])
    assert [(r["rank"], r["customer_id"]) for r in out] == [(1, "C"), (2, "A"), (3, "AB"), (4, "B")]
    assert all(r["value_threshold"] == 10.0 for r in out)
    limited, counters = run_job(MRTopAtRisk, _jsonl(rows), ["--threshold", "10.0", "--limit", "2"])
    assert [r["customer_id"] for r in limited] == ["C", "A"]
    assert counters["crm.output"]["rows"] == 2
