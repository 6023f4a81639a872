"""MRSalesSeries and the sales stage: hand-computed weeks, exact revenue, planted
seasonality, CDNOW, rejected lines, runner parity, empty input, refusals."""

import json
from decimal import Decimal

import pandas as pd
import pytest

from models import synthetic
from models.inputs import detect_schema
from models.sales_stage import SERIES_CSV, fill_periods, run_sales_stage, select_top_items
from mr_jobs.records import PRESETS
from mr_jobs.sales import SALES_COLUMNS, MRSalesSeries
from tests.conftest import run_job

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
# 2023-01-02 and 2023-01-16 are Mondays, 2023-01-08 and 2023-01-22 Sundays; no line falls
# in the week of Monday 2023-01-09. Customer A and order O1 are split across the files.
FILE_A = HEADER + ("O1,A,2023-01-02T09:00:00,I1,2,1.10\nO2,B,2023-01-08T23:59:59,I2,1,0.10\n")
FILE_B = HEADER + (
    "O3,A,2023-01-08T10:00:00,I1,1,0.20\n"
    "O1,A,2023-01-02T09:00:00,I2,1,3.00\n"
    "O3,A,2023-01-08T10:00:00,I3,1,0.05\n"
    "O4,C,2023-01-16T00:00:00,I2,3,0.10\n"
    "O5,A,2023-01-22T12:00:00,I1,1,5.00\n"
)
W1, W2, W3 = "2023-01-02", "2023-01-09", "2023-01-16"


def row(series, period, revenue, quantity, orders, customers):
    return dict(
        zip(SALES_COLUMNS, (series, period, revenue, quantity, orders, customers), strict=True)
    )


def empty_row(series, period):
    return row(series, period, 0.0, 0, 0, 0)


def keyed(rows):
    return {(r["series"], r["period"]): r for r in rows}


def published_rows(path):
    rows = []
    for part in sorted(path.glob("part-*")):
        rows += [json.loads(line) for line in part.read_text().splitlines() if line]
    return rows


@pytest.fixture
def toy_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(FILE_A)
    b.write_text(FILE_B)
    return [a, b]


# -- the job ----------------------------------------------------------------------------------


def test_empty_input_gives_no_rows_and_zero_lines():
    rows, counters = run_job(MRSalesSeries, b"")
    assert rows == []
    assert counters.get("crm.lines", {}).get("read", 0) == 0


def test_job_counts_a_customer_and_an_order_split_across_files_once(toy_files):
    rows, counters = run_job(MRSalesSeries, input_paths=toy_files)
    assert keyed(rows) == keyed(
        [
            row("total", W1, 5.55, 6, 3, 2),  # O1 has lines in both files; A is in both
            row("total", W3, 5.3, 4, 2, 2),
            row("I1", W1, 2.4, 3, 2, 1),
            row("I1", W3, 5.0, 1, 1, 1),
            row("I2", W1, 3.1, 2, 2, 2),
            row("I2", W3, 0.3, 3, 1, 1),
            row("I3", W1, 0.05, 1, 1, 1),
        ]
    )
    assert len(rows) == 7
    assert counters["crm.lines"] == {"read": 9, "accepted": 7, "rejected": 2}
    assert counters["crm.rejected"] == {"header": 2}


def test_weeks_run_monday_to_sunday_and_are_named_by_their_monday():
    log = HEADER + (
        "O1,A,2023-01-01T23:59:59,I1,1,1\n"  # Sunday: the week of Monday 2022-12-26
        "O2,A,2023-01-02T00:00:00,I1,1,2\n"  # Monday: a new week
        "O3,A,2023-01-08T23:59:59,I1,1,4\n"  # Sunday: same week as the Monday
    )
    rows, _ = run_job(MRSalesSeries, log, ["--period", "W"])
    totals = {r["period"]: r["revenue"] for r in rows if r["series"] == "total"}
    assert totals == {"2022-12-26": 1.0, "2023-01-02": 6.0}
    daily, _ = run_job(MRSalesSeries, log, ["--period", "D"])
    assert sorted(r["period"] for r in daily if r["series"] == "total") == [
        "2023-01-01",
        "2023-01-02",
        "2023-01-08",
    ]


def test_top_items_file_groups_the_other_items_with_exact_distinct_counts(toy_files, tmp_path):
    top = tmp_path / "top.json"
    top.write_text('["I1"]')
    rows, _ = run_job(MRSalesSeries, args=["--top-items", str(top)], input_paths=toy_files)
    got = keyed(rows)
    assert set(r["series"] for r in rows) == {"total", "I1", "__other__"}
    # I2 and I3 in week 1: A buys both (orders O1 and O3), B buys I2: 2 customers, not
    # the 3 that summing the per-item distinct counts would give
    assert got[("__other__", W1)] == row("__other__", W1, 3.15, 3, 3, 2)
    assert got[("__other__", W3)] == row("__other__", W3, 0.3, 3, 1, 1)


def test_early_flushes_and_split_inputs_give_the_same_rows(toy_files):
    whole, _ = run_job(MRSalesSeries, FILE_A + FILE_B)
    split, _ = run_job(MRSalesSeries, args=["--combine-max", "1"], input_paths=toy_files)
    assert keyed(split) == keyed(whole)
    assert len(split) == len(whole) == 7


def test_rank_items_gives_total_revenue_per_item(toy_files):
    rows, _ = run_job(MRSalesSeries, args=["--rank-items"], input_paths=toy_files)
    assert sorted((r["item_id"], r["revenue_micros"], r["lines"]) for r in rows) == [
        ("I1", 7_400_000, 3),
        ("I2", 3_400_000, 3),
        ("I3", 50_000, 1),
    ]


def test_revenue_is_exact_whatever_the_order_of_summation():
    # 0.1 + 0.2 in floats is 0.30000000000000004; the job sums exact micros.
    log = HEADER + "".join(f"O{i},C{i % 7},2023-01-0{1 + i % 3},I1,1,0.1\n" for i in range(30))
    rows, _ = run_job(MRSalesSeries, log, ["--combine-max", "1", "--period", "W"])
    total = sum(r["revenue"] for r in rows if r["series"] == "total")
    assert sorted(r["revenue"] for r in rows if r["series"] == "total") == [1.0, 2.0]
    assert total == 3.0


def test_log_without_order_ids_counts_each_line_as_an_order():
    log = "customer_id,timestamp,amount\nA,2023-01-02,5\nA,2023-01-02,7\nB,2023-01-03,1.25\n"
    rows, _ = run_job(MRSalesSeries, log, ["--columns", "customer_id,timestamp,amount"])
    assert rows == [row("total", W1, 13.25, 3, 3, 2)]


def test_bad_lines_are_counted_by_reason_and_good_lines_still_count_right():
    bad = (
        b"\n"
        b"O9,,2023-01-03,I1,1,1.00\n"
        b"O9,A,2023-02-30,I1,1,1.00\n"
        b"O9,A,2023-01-03,I1,-1,1.50\n"
        b"O9,A,2023-01-03,I1,1,n/a\n"
        b"O9,A,2023-01-03,I1,1\n"
        b"O9,A,2023-01-03,I1,x,1\n"
        b"O9,A,2023-01-03,I\xff,1,1\n"
        b",A,2023-01-03,I1,1,1\n"
    ) + HEADER.encode()
    good = (FILE_A + FILE_B[len(HEADER) :]).encode()
    mixed = good[: len(HEADER)] + bad + good[len(HEADER) :]
    clean, _ = run_job(MRSalesSeries, good)
    rows, counters = run_job(MRSalesSeries, mixed)
    assert keyed(rows) == keyed(clean)
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
        "missing_order": 1,
    }
    assert counters["crm.lines"] == {"read": 18, "accepted": 7, "rejected": 11}


def test_bad_period_is_refused_by_the_job():
    with pytest.raises(ValueError, match="invalid choice: 'M'"):
        MRSalesSeries(args=["--period", "M"])


# -- the driver's helpers -------------------------------------------------------------------


def test_top_items_are_ranked_by_revenue_with_ties_by_item_id():
    rows = [
        {"item_id": "b", "revenue_micros": 5},
        {"item_id": "c", "revenue_micros": 9},
        {"item_id": "a", "revenue_micros": 5},
        {"item_id": "d", "revenue_micros": 1},
    ]
    assert [r["item_id"] for r in select_top_items(rows, 3)] == ["c", "a", "b"]
    assert select_top_items(rows, 0) == []


def test_fill_periods_gives_every_series_the_same_regular_index():
    rows = [row("total", "2023-01-01", 1.0, 1, 1, 1), row("x", "2023-01-03", 2.0, 1, 1, 1)]
    filled, periods = fill_periods(rows, ["total", "x"], "D")
    assert periods == ["2023-01-01", "2023-01-02", "2023-01-03"]
    assert filled == [
        rows[0],
        empty_row("total", "2023-01-02"),
        empty_row("total", "2023-01-03"),
        empty_row("x", "2023-01-01"),
        empty_row("x", "2023-01-02"),
        rows[1],
    ]


# -- the stage ----------------------------------------------------------------------------------


def test_stage_publishes_top_items_other_and_a_filled_missing_week(toy_files, tmp_path):
    out = tmp_path / "sales"
    frame, manifest = run_sales_stage(
        [str(p) for p in toy_files], str(out), schema=PRESETS["canonical"], top_n=1
    )
    expected = [
        row("total", W1, 5.55, 6, 3, 2),
        empty_row("total", W2),
        row("total", W3, 5.3, 4, 2, 2),
        row("I1", W1, 2.4, 3, 2, 1),
        empty_row("I1", W2),
        row("I1", W3, 5.0, 1, 1, 1),
        row("__other__", W1, 3.15, 3, 3, 2),
        empty_row("__other__", W2),
        row("__other__", W3, 0.3, 3, 1, 1),
    ]
    assert published_rows(out) == expected
    csv_frame = pd.read_csv(out / SERIES_CSV, dtype={"period": str})
    assert csv_frame.to_dict("records") == expected
    assert list(frame.columns) == list(SALES_COLUMNS)
    assert frame["period"].dtype.kind == "M"
    assert (
        frame.assign(period=frame["period"].dt.strftime("%Y-%m-%d")).to_dict("records") == expected
    )
    assert (out / "_SUCCESS").exists()
    details = manifest["details"]
    assert manifest["lines"] == {
        "read": 9,
        "accepted": 7,
        "rejected": 2,
        "rejected_by_reason": {"header": 2},
    }
    assert manifest["rows_written"] == 9
    assert manifest["outputs"] == [SERIES_CSV]
    assert (details["periods"], details["first_period"], details["last_period"]) == (3, W1, W3)
    assert details["series"] == ["total", "I1", "__other__"]
    assert details["top_items"] == [{"item_id": "I1", "revenue": 7.4}]
    assert (details["top_n"], details["items"], details["other_items"]) == (1, 3, 2)
    assert (details["filled_rows"], details["lines_without_item"]) == (3, 0)
    assert json.loads((out / "_manifest.json").read_text())["details"] == details


def test_stage_without_items_outside_the_top_n_has_no_other_series(toy_files, tmp_path):
    frame, manifest = run_sales_stage(
        [str(p) for p in toy_files], str(tmp_path / "s"), schema=PRESETS["canonical"], top_n=5
    )
    assert manifest["details"]["series"] == ["total", "I1", "I2", "I3"]
    i3 = frame[frame["series"] == "I3"]
    assert i3["revenue"].tolist() == [0.05, 0.0, 0.0]  # zeros after its only week
    assert len(frame) == 4 * 3


def test_lines_without_an_item_count_in_total_only(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "O1,A,2023-01-02,I1,1,2\nO2,B,2023-01-03,,1,3\n")
    frame, manifest = run_sales_stage(
        [str(path)], str(tmp_path / "s"), schema=PRESETS["canonical"], top_n=0
    )
    by_series = frame.set_index("series")
    assert by_series.loc["total", "revenue"] == 5.0
    assert by_series.loc["total", "customers"] == 2
    assert by_series.loc["__other__", "revenue"] == 2.0  # I1; the item-less line is not here
    assert manifest["details"]["lines_without_item"] == 1


def test_a_top_item_named_like_a_reserved_series_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "O1,A,2023-01-02,total,1,2\n")
    with pytest.raises(ValueError, match="item_id='total'"):
        run_sales_stage([str(path)], str(tmp_path / "s"), schema=PRESETS["canonical"])
    assert not (tmp_path / "s").exists()


def test_empty_input_publishes_no_series_and_zero_lines(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    frame, manifest = run_sales_stage([str(path)], str(tmp_path / "s"), schema=PRESETS["canonical"])
    assert frame.empty and list(frame.columns) == list(SALES_COLUMNS)
    assert manifest["lines"]["read"] == 0
    assert (manifest["rows_written"], manifest["details"]["periods"]) == (0, 0)
    assert manifest["details"]["series"] == []
    assert (tmp_path / "s" / SERIES_CSV).read_text() == ",".join(SALES_COLUMNS) + "\n"


def test_as_of_leaves_out_later_lines_as_if_the_log_ended_there(toy_files, tmp_path):
    # I1 has the most revenue over the whole log (7.40, of which 5.00 on 2023-01-22) but
    # only 2.40 up to 2023-01-16, when I2 (3.40) leads: the ranking pass is cut too.
    schema = PRESETS["canonical"]
    frame, manifest = run_sales_stage(
        [str(p) for p in toy_files], str(tmp_path / "cut"), schema=schema, top_n=1, as_of=W3
    )
    truncated = tmp_path / "truncated.csv"
    truncated.write_text(
        FILE_A
        + "".join(line + "\n" for line in FILE_B.splitlines()[1:] if "2023-01-22" not in line)
    )
    _frame, expected = run_sales_stage(
        [str(truncated)], str(tmp_path / "expected"), schema=schema, top_n=1
    )
    assert manifest["details"]["top_items"] == [{"item_id": "I2", "revenue": 3.4}]
    assert (tmp_path / "cut" / SERIES_CSV).read_bytes() == (
        tmp_path / "expected" / SERIES_CSV
    ).read_bytes()
    assert frame["period"].max() == pd.Timestamp(W3)
    lines = manifest["lines"]
    assert lines["rejected_by_reason"] == {"after_as_of": 1, "header": 2}
    assert lines["read"] == lines["accepted"] + lines["rejected"] == 9
    assert lines["accepted"] == expected["lines"]["accepted"]
    assert manifest["parameters"]["as_of"] == manifest["details"]["as_of"] == W3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "M"}, "period='M'"),
        ({"top_n": -1}, "top_n=-1"),
        ({"top_n": 2.5}, "top_n=2.5"),
        ({"as_of": "2023-02-30"}, "as_of='2023-02-30'"),
    ],
)
def test_bad_arguments_are_refused_before_running(tmp_path, kwargs, message):
    missing_input = str(tmp_path / "does-not-exist.csv")  # never read: refused first
    with pytest.raises(ValueError, match=message):
        run_sales_stage([missing_input], str(tmp_path / "s"), schema=PRESETS["canonical"], **kwargs)
    assert not (tmp_path / "s").exists()


# -- the built-in synthetic data ------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "transactions.csv"
    truth = synthetic.generate(path, seed=42)
    return path, truth


@pytest.fixture(scope="module")
def synthetic_daily(synthetic_log, tmp_path_factory):
    path, _ = synthetic_log
    out = tmp_path_factory.mktemp("sales") / "daily"
    return run_sales_stage([str(path)], str(out), schema=detect_schema([str(path)]), period="D")


def test_synthetic_total_revenue_and_orders_equal_the_truth_exactly(synthetic_log, synthetic_daily):
    _, truth = synthetic_log
    frame, manifest = synthetic_daily
    total = frame[frame["series"] == "total"]
    # each float is the nearest double to an exact decimal of <= 15 digits: repr gives it back
    assert sum(Decimal(repr(v)) for v in total["revenue"]) == Decimal(truth["revenue"])
    assert total["orders"].sum() == truth["orders"]  # each order has one timestamp
    assert manifest["lines"]["read"] == truth["lines_total"]
    assert manifest["lines"]["accepted"] == truth["lines_accepted"]
    assert manifest["lines"]["rejected_by_reason"] == truth["rejects_by_reason"]
    series = manifest["details"]["series"]
    assert series[0] == "total" and series[-1] == "__other__" and len(series) == 22
    parts = frame[frame["series"] != "total"]
    assert sum(Decimal(repr(v)) for v in parts["revenue"]) == Decimal(truth["revenue"])
    counts = frame.groupby("series").size()
    assert (counts == manifest["details"]["periods"]).all()
    assert manifest["details"]["periods"] == 730
    assert (manifest["details"]["first_period"], manifest["details"]["last_period"]) == (
        truth["start"],
        truth["end"],
    )


def test_synthetic_daily_totals_show_the_planted_weekend_and_december_peaks(synthetic_daily):
    frame, _ = synthetic_daily
    total = frame[frame["series"] == "total"].set_index("period")["revenue"]
    by_weekday = total.groupby(total.index.day_of_week).mean()  # Monday = 0
    # planted multipliers: Mon-Thu 0.85-0.95, Sat 1.25, Sun 1.10
    assert by_weekday.idxmax() == 5
    assert by_weekday[[5, 6]].mean() > 1.2 * by_weekday[[0, 1, 2, 3]].mean()
    by_month = total.groupby([total.index.year, total.index.month]).mean()
    for year in (2023, 2024):
        months = by_month[year]
        assert months.idxmax() == 12  # yearly peak on day 350, on top of growth
        assert months[12] > 1.5 * months[6]


def test_synthetic_inline_and_local_runners_publish_identical_files(tmp_path):
    path = tmp_path / "small.csv"
    synthetic.generate(path, customers=150, seed=7, days=120)
    schema = detect_schema([str(path)])
    published = {}
    for runner in ("inline", "local"):
        out = tmp_path / runner
        run_sales_stage([str(path)], str(out), schema=schema, top_n=5, runner=runner)
        published[runner] = {
            p.name: p.read_bytes()
            for p in out.iterdir()
            if p.name.startswith("part-") or p.name == SERIES_CSV
        }
    assert published["inline"] == published["local"]
    assert len(published["inline"][SERIES_CSV].splitlines()) > 1


# -- CDNOW -----------------------------------------------------------------------------------


def test_cdnow_has_only_the_total_series_and_its_exact_revenue(cdnow_path, tmp_path):
    frame, manifest = run_sales_stage(
        [str(cdnow_path)], str(tmp_path / "s"), schema=PRESETS["cdnow"], period="W"
    )
    lines = cdnow_path.read_text().splitlines()[1:]  # the header line is rejected
    expected = sum(Decimal(line.split()[3]) for line in lines)
    assert set(frame["series"]) == {"total"}
    assert sum(Decimal(repr(v)) for v in frame["revenue"]) == expected
    assert frame["orders"].sum() == len(lines) == manifest["lines"]["accepted"]
    assert manifest["lines"]["rejected_by_reason"] == {"header": 1}
    details = manifest["details"]
    assert (details["first_period"], details["last_period"]) == ("1996-12-30", "1998-06-29")
    assert details["periods"] == len(frame) == 79
    assert details["items"] == 0 and details["rank_job_seconds"] is None
