"""MRCustomerRFM: hand-computed cases, rejected lines, runner parity, the CDNOW golden test."""

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from mr_jobs.records import parse_as_of
from mr_jobs.rfm import RFM_COLUMNS, MRCustomerRFM, apply_as_of
from tests.conftest import require, run_job

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
HAND = HEADER + (
    "O1,A,2023-01-02T10:00:00,I1,2,1.50\n"
    "O1,A,2023-01-02T10:00:00,I2,1,4.00\n"
    "O2,A,2023-01-02T18:00:00,I1,1,1.50\n"
    "O3,A,2023-01-10T09:00:00,I3,3,0.10\n"
    "O4,B,2023-01-05T12:00:00,I1,1,2.00\n"
)


def by_customer(rows):
    return {r["customer_id"]: r for r in rows}


def lines(counters):
    return counters.get("crm.lines", {})


def test_empty_input_gives_no_rows_and_zero_lines():
    rows, counters = run_job(MRCustomerRFM, b"")
    assert rows == []
    assert lines(counters).get("read", 0) == 0
    assert lines(counters).get("accepted", 0) == 0


def test_hand_computed_customers():
    rows, counters = run_job(MRCustomerRFM, HAND, ["--as-of", "2023-01-10"])
    got = by_customer(rows)
    assert list(got["A"]) == list(RFM_COLUMNS)
    assert got["A"] == {
        "customer_id": "A",
        "first_purchase": "2023-01-02T10:00:00",
        "last_purchase": "2023-01-10T09:00:00",
        "orders": 3,
        "purchase_days": 2,
        "lines": 4,
        "total_quantity": 7,
        "total_value": 8.8,
        "mean_order_value": float(Fraction(88, 30)),  # exact 8.80 / 3, correctly rounded
        "as_of": "2023-01-10",
        "recency_days": 0,
        "tenure_days": 8,
        "period": "D",
        "frequency": 1,
        "recency": 8,
        "T": 8,
        "monetary_value": 0.3,
    }
    b = got["B"]
    assert (b["orders"], b["total_value"], b["recency_days"], b["tenure_days"]) == (1, 2.0, 5, 5)
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0, 5, 0.0)
    assert lines(counters) == {"read": 6, "accepted": 5, "rejected": 1}
    assert counters["crm.rejected"] == {"header": 1}


def test_weekly_period_squashes_purchases_to_monday_to_sunday_weeks():
    # 2023-01-02 is a Monday: A buys in weeks 0 and 1, B in week 0.
    rows, _ = run_job(MRCustomerRFM, HAND, ["--as-of", "2023-01-15", "--period", "W"])
    got = by_customer(rows)
    assert (got["A"]["frequency"], got["A"]["recency"], got["A"]["T"]) == (1, 1, 1)
    assert (got["B"]["frequency"], got["B"]["recency"], got["B"]["T"]) == (0, 0, 1)


def test_without_as_of_the_job_leaves_as_of_fields_null_and_apply_as_of_fills_them():
    rows, _ = run_job(MRCustomerRFM, HAND)
    a = by_customer(rows)["A"]
    assert (a["as_of"], a["recency_days"], a["tenure_days"], a["T"]) == (None, None, None, None)
    apply_as_of(a, parse_as_of("2023-01-10"))
    assert (a["as_of"], a["recency_days"], a["tenure_days"], a["T"]) == ("2023-01-10", 0, 8, 8)


def test_lines_after_the_as_of_date_are_excluded_and_counted():
    rows, counters = run_job(MRCustomerRFM, HAND, ["--as-of", "2023-01-05"])
    a = by_customer(rows)["A"]
    assert (a["orders"], a["last_purchase"], a["total_value"]) == (2, "2023-01-02T18:00:00", 8.5)
    assert counters["crm.rejected"] == {"header": 1, "after_as_of": 1}


def test_bad_lines_are_counted_by_reason_and_good_lines_still_count_right():
    bad = (
        (
            b"\n"
            b"O9,,2023-01-03,I1,1,1.00\n"
            b"O9,A,2023-02-30,I1,1,1.00\n"
            b"O9,A,2023-01-03,I1,-1,1.50\n"
            b"O9,A,2023-01-03,I1,1,n/a\n"
            b"O9,A,2023-01-03,I1,1\n"
            b"O9,A,2023-01-03,I1,x,1\n"
        )
        + b"O9,A,2023-01-03,I\xff,1,1\n"
        + HEADER.encode()
    )
    good = HAND.encode()
    mixed = good[: len(HEADER)] + bad + good[len(HEADER) :]
    clean_rows, _ = run_job(MRCustomerRFM, good, ["--as-of", "2023-01-10"])
    rows, counters = run_job(MRCustomerRFM, mixed, ["--as-of", "2023-01-10"])
    assert by_customer(rows) == by_customer(clean_rows)
    assert counters["crm.rejected"] == {
        "header": 2,
        "blank": 1,
        "missing_customer": 1,
        "bad_timestamp": 1,
        "return": 1,
        "bad_price": 1,
        "column_count": 1,
        "bad_quantity": 1,
        "undecodable": 1,
    }
    assert lines(counters) == {"read": 15, "accepted": 5, "rejected": 10}


def test_log_without_order_ids_counts_each_line_as_a_purchase():
    log = "customer_id,timestamp,amount\nA,2023-01-01,5\nA,2023-01-01,7\nA,2023-01-03,1.25\n"
    rows, _ = run_job(MRCustomerRFM, log, ["--columns", "customer_id,timestamp,amount"])
    (a,) = rows
    assert (a["orders"], a["purchase_days"], a["total_value"]) == (3, 2, 13.25)
    assert (a["frequency"], a["monetary_value"], a["total_quantity"]) == (1, 1.25, 3)


def test_early_flush_and_split_inputs_give_the_same_rows(tmp_path):
    lines_ = HAND.splitlines(keepends=True)
    part1, part2 = tmp_path / "a.csv", tmp_path / "b.csv"
    part1.write_text("".join(lines_[:3]))  # order O1 is split across two files
    part2.write_text(HEADER + "".join(lines_[3:]))
    whole, _ = run_job(MRCustomerRFM, HAND, ["--as-of", "2023-01-10"])
    split, counters = run_job(
        MRCustomerRFM,
        args=["--as-of", "2023-01-10", "--combine-max", "1"],
        input_paths=[part1, part2],
    )
    assert by_customer(split) == by_customer(whole)
    assert counters["crm.rejected"] == {"header": 2}


def test_values_are_exact_whatever_the_order_of_summation():
    # 0.1 + 0.2 in floats is 0.30000000000000004; the job sums exact micros.
    log = HEADER + "".join(f"O{i},A,2023-01-0{1 + i % 3},I1,1,0.1\n" for i in range(30))
    rows, _ = run_job(MRCustomerRFM, log, ["--combine-max", "1"])
    assert rows[0]["total_value"] == 3.0


@pytest.mark.parametrize("period", ["D", "W"])
def test_inline_and_local_runners_give_identical_output(tmp_path, cdnow_path, period):
    args = ["--input-format", "cdnow", "--period", period, "--as-of", "1998-06-30"]
    inline, c_inline = run_job(MRCustomerRFM, args=args, input_paths=[cdnow_path])
    local, c_local = run_job(MRCustomerRFM, args=args, input_paths=[cdnow_path], runner="local")
    key = lambda r: r["customer_id"]  # noqa: E731
    assert sorted(inline, key=key) == sorted(local, key=key)
    assert len(inline) == 23_570
    assert lines(c_inline) == lines(c_local) == {"read": 69_660, "accepted": 69_659, "rejected": 1}


def _independent_lifetimes_summary(cdnow_path, freq):
    """The lifetimes definitions computed directly with pandas (no lifetimes import)."""
    df = pd.read_csv(cdnow_path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    df["period"] = pd.to_datetime(df["date"], format="%Y%m%d").dt.to_period(freq)
    per = df.groupby(["customer_id", "period"])["dollar_value"].sum().reset_index()
    end = per["period"].max()
    g = per.groupby("customer_id")
    first, last = g["period"].min(), g["period"].max()
    n = g.size()
    out = pd.DataFrame(index=n.index)
    out["frequency"] = n - 1
    out["recency"] = [(b - a).n for a, b in zip(first, last, strict=True)]
    out["T"] = [(end - a).n for a in first]
    first_value = per.sort_values("period").groupby("customer_id")["dollar_value"].first()
    total = g["dollar_value"].sum()
    repeat = total - first_value
    out["monetary_value"] = np.where(out["frequency"] > 0, repeat / out["frequency"].clip(1), 0.0)
    return out


def _job_summary(cdnow_path, period):
    rows, _ = run_job(
        MRCustomerRFM,
        args=["--input-format", "cdnow", "--period", period],
        input_paths=[cdnow_path],
    )
    as_of = parse_as_of(max(r["last_purchase"][:10] for r in rows))
    rows = [apply_as_of(r, as_of) for r in rows]
    return pd.DataFrame(rows).set_index("customer_id").sort_index()


@pytest.mark.parametrize("period", ["D", "W"])
def test_lifetimes_mode_equals_an_independent_pandas_computation_on_cdnow(cdnow_path, period):
    ours = _job_summary(cdnow_path, period)
    ref = _independent_lifetimes_summary(cdnow_path, period).loc[ours.index]
    assert len(ours) == 23_570
    for column in ("frequency", "recency", "T"):
        assert (ours[column].to_numpy() == ref[column].to_numpy()).all(), column
    np.testing.assert_allclose(ours["monetary_value"], ref["monetary_value"], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("period", ["D", "W"])
def test_lifetimes_mode_equals_lifetimes_summary_data_on_cdnow(cdnow_path, period):
    try:
        from lifetimes import utils
    except ImportError:
        utils = None
    require(utils is not None, "Lifetimes is not installed (the 'test' extra installs it)")
    df = pd.read_csv(cdnow_path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    ref = utils.summary_data_from_transaction_data(
        df, "customer_id", "date", monetary_value_col="dollar_value", freq=period
    )
    ours = _job_summary(cdnow_path, period).loc[ref.index]
    for column in ("frequency", "recency", "T"):
        assert (ours[column].to_numpy() == ref[column].to_numpy()).all(), column
    np.testing.assert_allclose(ours["monetary_value"], ref["monetary_value"], rtol=1e-12, atol=1e-9)


def test_cdnow_totals_match_the_raw_file(cdnow_path):
    ours = _job_summary(cdnow_path, "D")
    df = pd.read_csv(cdnow_path, sep=r"\s+", dtype={"customer_id": str})
    assert ours["lines"].sum() == len(df)
    assert ours["total_quantity"].sum() == df["number_of_cds"].sum()
    # exact cents: the job's per-customer totals are exact decimals
    cents = (ours["total_value"] * 100).round().astype("int64").sum()
    raw_cents = sum(int(v.replace(".", "")) for v in _dollar_texts(cdnow_path))
    assert cents == raw_cents


def _dollar_texts(path):
    with open(path) as f:
        next(f)
        return [line.split()[3] for line in f]


def test_output_lines_are_json_objects():
    job = MRCustomerRFM(args=["--no-conf", "-"])
    job.sandbox(stdin=__import__("io").BytesIO(HAND.encode()))
    with job.make_runner() as runner:
        runner.run()
        raw = [line for line in runner.cat_output() if line.strip()]
    assert all(isinstance(json.loads(line), dict) for line in raw)


def test_encode_row_is_byte_identical_to_the_json_module(cdnow_path):
    from mr_jobs.protocols import dumps
    from mr_jobs.rfm import encode_row

    rows, _ = run_job(MRCustomerRFM, HAND.replace(",A,", ',"Zoë ""A"", \\\\",'))
    rows += _job_summary(cdnow_path, "W").reset_index().to_dict("records")[:2000]
    rows.append({**rows[0], "total_quantity": 2.5, "as_of": "2023-01-10", "T": 3})
    assert 'Zoë "A", \\\\' in {r["customer_id"] for r in rows}
    for row in rows:
        row = {k: row[k] for k in RFM_COLUMNS}
        assert encode_row(row) == dumps(row)
