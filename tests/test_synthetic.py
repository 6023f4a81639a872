"""Tests of the synthetic order-line generator: format, truth, and what it plants."""

import csv
import datetime as dt
import io
import itertools
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from models.synthetic import (
    HEADER,
    REJECT_REASONS,
    customers_truth_path,
    generate,
    truth_path,
)

SMALL = {"customers": 500, "seed": 7}
ORDER_RE = re.compile(r"O\d{8}")
CUSTOMER_RE = re.compile(r"C\d{6}")
ITEM_RE = re.compile(r"I\d{4}")
PRICE_RE = re.compile(r"\d+\.\d\d")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def classify(raw):
    """Independent classification of one raw line: a reject reason or ``"clean"``."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "undecodable"
    if line == "":
        return "blank"
    if line == HEADER:
        return "header"
    fields = next(csv.reader([line]))
    if len(fields) != 6:
        return "column_count"
    if fields[1] == "":
        return "missing_customer"
    try:
        dt.datetime.strptime(fields[2], TIMESTAMP_FORMAT)
    except ValueError:
        return "bad_timestamp"
    if not PRICE_RE.fullmatch(fields[5]):
        return "bad_price"
    if int(fields[4]) < 0:
        return "return"
    return "clean"


def read_log(path):
    """(raw lines without the final newline, reasons, clean rows as field lists)."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    raw_lines = data[:-1].split(b"\n")
    reasons = [classify(raw) for raw in raw_lines]
    clean = [
        raw.decode("utf-8").split(",")
        for raw, reason in zip(raw_lines, reasons, strict=True)
        if reason == "clean"
    ]
    return raw_lines, reasons, clean


def read_customers(path):
    with open(customers_truth_path(path), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def day_of(row):
    return dt.date.fromisoformat(row[2][:10])


def revenue_by_day(clean):
    totals = defaultdict(Decimal)
    for row in clean:
        totals[day_of(row)] += int(row[4]) * Decimal(row[5])
    return totals


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "log.csv"
    truth = generate(path, dirty_rate=0.01, **SMALL)
    raw_lines, reasons, clean = read_log(path)
    return {
        "path": path,
        "truth": truth,
        "raw": raw_lines,
        "reasons": reasons,
        "clean": clean,
        "customers": read_customers(path),
    }


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    paths = [tmp_path / name / "log.csv" for name in ("a", "b", "c")]
    generate(paths[0], customers=300, seed=3)
    generate(paths[1], customers=300, seed=3)
    generate(paths[2], customers=300, seed=4)
    for make in (lambda p: p, truth_path, customers_truth_path):
        assert make(paths[0]).read_bytes() == make(paths[1]).read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_returned_truth_is_the_truth_json_and_names_its_customer_file(small):
    path, truth = small["path"], small["truth"]
    assert json.loads(truth_path(path).read_text(encoding="utf-8")) == truth
    assert truth["customers_truth_file"] == "log.customers.jsonl"
    assert truth["generator"] == "crm-mapreduce synthetic v1"
    assert truth["parameters"]["customers"] == 500 and truth["parameters"]["lines"] is None
    assert truth["start"] == "2023-01-01" and truth["end"] == "2024-12-30"
    assert len(truth["weekly_multipliers"]) == 7
    assert len(truth["items"]) == truth["n_items"] == 200
    assert 6 <= len(truth["bundles"]) <= 10


def test_truth_paths_replace_the_csv_suffix_and_keep_the_path_type(tmp_path):
    assert truth_path("data/t.csv") == "data/t.truth.json"
    assert customers_truth_path("data/t.csv") == "data/t.customers.jsonl"
    assert truth_path("data/t") == "data/t.truth.json"
    assert truth_path(tmp_path / "x.csv") == tmp_path / "x.truth.json"


def test_file_starts_with_the_header_and_clean_lines_are_well_formed(small):
    assert small["raw"][0].decode() == HEADER
    assert small["reasons"][0] == "header"
    assert len(small["clean"]) == small["truth"]["lines_accepted"]
    for row in small["clean"]:
        order_id, customer_id, timestamp, item_id, quantity, price = row
        assert ORDER_RE.fullmatch(order_id)
        assert CUSTOMER_RE.fullmatch(customer_id)
        assert ITEM_RE.fullmatch(item_id)
        when = dt.datetime.strptime(timestamp, TIMESTAMP_FORMAT)
        assert 8 <= when.hour < 22
        assert quantity.isdigit() and int(quantity) >= 1
        assert PRICE_RE.fullmatch(price) and Decimal(price) >= Decimal("0.01")


def test_clean_csv_parses_with_the_csv_module_into_six_fields(small):
    text = b"\n".join(
        raw for raw, reason in zip(small["raw"], small["reasons"], strict=True) if reason == "clean"
    ).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows and all(len(row) == 6 for row in rows)


def test_orders_are_baskets_of_distinct_items_sorted_by_time_with_ids_in_time_order(small):
    by_order = defaultdict(list)
    for row in small["clean"]:
        by_order[row[0]].append(row)
    for rows in by_order.values():
        assert len({(r[1], r[2]) for r in rows}) == 1
        assert len({r[3] for r in rows}) == len(rows)
    purchases = [
        raw.decode().split(",")
        for raw, reason in zip(small["raw"], small["reasons"], strict=True)
        if reason in ("clean", "return")
    ]
    keys = [(row[2], row[0]) for row in purchases]
    assert keys == sorted(keys)
    order_ids = [row[0] for row in purchases]
    assert order_ids == sorted(order_ids)
    assert sum(len(rows) > 1 for rows in by_order.values()) > len(by_order) / 3


def test_truth_counts_match_the_file(small):
    path, truth = small["path"], small["truth"]
    data = path.read_bytes()
    assert truth["lines_total"] == data.count(b"\n") == len(small["raw"])
    assert truth["lines_total"] == truth["lines_accepted"] + sum(
        truth["rejects_by_reason"].values()
    )
    assert truth["orders"] == len({row[0] for row in small["clean"]})
    revenue = sum(int(row[4]) * Decimal(row[5]) for row in small["clean"])
    assert Decimal(truth["revenue"]) == revenue
    assert re.fullmatch(r"\d+\.\d\d", truth["revenue"])


def test_customer_truth_matches_the_clean_orders_of_each_customer(small):
    truth, customers = small["truth"], small["customers"]
    assert len(customers) == truth["n_customers"] == 500
    assert [c["customer_id"] for c in customers] == sorted(c["customer_id"] for c in customers)
    orders = defaultdict(set)
    first_day = {}
    for row in small["clean"]:
        orders[row[1]].add(row[0])
        first_day[row[1]] = min(first_day.get(row[1], day_of(row)), day_of(row))
    assert set(orders) == {c["customer_id"] for c in customers}
    for c in customers:
        assert c["orders"] == len(orders[c["customer_id"]]) >= 1
        assert c["join_date"] == first_day[c["customer_id"]].isoformat()
        assert c["order_rate_per_day"] > 0
    assert sum(c["orders"] for c in customers) == truth["orders"]
    assert truth["churned_customers"] == sum(c["churn_date"] is not None for c in customers)
    counts = Counter(c["segment"] for c in customers)
    assert counts == {name: s["customers"] for name, s in truth["segments"].items()}


def test_each_dirty_kind_is_in_the_file_as_often_as_the_truth_says(small):
    truth = small["truth"]
    found = Counter(reason for reason in small["reasons"] if reason != "clean")
    assert set(truth["rejects_by_reason"]) == set(REJECT_REASONS)
    assert dict(found) == {k: v for k, v in truth["rejects_by_reason"].items() if v}
    assert all(truth["rejects_by_reason"][reason] >= 1 for reason in REJECT_REASONS)
    dirty_positions = [i for i, r in enumerate(small["reasons"]) if r not in ("clean", "header")]
    assert dirty_positions[0] < len(small["raw"]) / 3
    assert dirty_positions[-1] > 2 * len(small["raw"]) / 3


def test_default_dirty_rate_still_plants_every_kind(tmp_path):
    path = tmp_path / "d.csv"
    truth = generate(path, customers=300, seed=11)
    _, reasons, _ = read_log(path)
    found = Counter(r for r in reasons if r != "clean")
    assert dict(found) == truth["rejects_by_reason"]
    assert set(found) == set(REJECT_REASONS)
    assert sum(found.values()) - 1 <= 0.002 * truth["lines_accepted"] + 8


def test_dirty_rate_zero_leaves_only_the_first_header_rejected(tmp_path):
    path = tmp_path / "z.csv"
    truth = generate(path, customers=300, seed=11, dirty_rate=0)
    _, reasons, clean = read_log(path)
    assert reasons.count("clean") == len(reasons) - 1 == truth["lines_accepted"]
    assert truth["rejects_by_reason"] == {r: int(r == "header") for r in REJECT_REASONS}


def test_returns_copy_an_earlier_purchase_with_a_negative_quantity_and_a_new_order_id(small):
    seen = {}
    order_ids = Counter()
    returns = 0
    for raw, reason in zip(small["raw"], small["reasons"], strict=True):
        if reason not in ("clean", "return"):
            continue
        row = raw.decode().split(",")
        order_ids[row[0]] += 1
        key = (row[1], row[3], row[5])
        if reason == "clean":
            seen.setdefault(key, row[2])
        else:
            returns += 1
            assert int(row[4]) < 0
            assert key in seen and seen[key] < row[2]
    assert returns == small["truth"]["rejects_by_reason"]["return"]
    clean_ids = {row[0] for row in small["clean"]}
    return_ids = set(order_ids) - clean_ids
    assert len(return_ids) == returns


def test_planted_bundles_co_occur_far_more_than_chance(small):
    baskets = defaultdict(set)
    for row in small["clean"]:
        baskets[row[0]].add(row[3])
    n = len(baskets)
    item_count = Counter(item for items in baskets.values() for item in items)
    for bundle in small["truth"]["bundles"]:
        for a, b in itertools.combinations(bundle, 2):
            both = sum(1 for items in baskets.values() if a in items and b in items)
            lift = both * n / (item_count[a] * item_count[b])
            assert lift > 3, (bundle, a, b, lift)


def test_weekend_days_have_higher_mean_daily_revenue_than_midweek(small):
    totals = revenue_by_day(small["clean"])
    start = dt.date.fromisoformat(small["truth"]["start"])
    days = [start + dt.timedelta(days=k) for k in range(730)]

    def mean(weekdays):
        chosen = [d for d in days if d.weekday() in weekdays]
        return sum(totals.get(d, Decimal(0)) for d in chosen) / len(chosen)

    assert mean({5, 6}) > Decimal("1.05") * mean({1, 2, 3})


def test_second_year_has_more_revenue_than_the_first(small):
    totals = revenue_by_day(small["clean"])
    split = dt.date(2024, 1, 1)
    first = sum(v for d, v in totals.items() if d < split)
    second = sum(v for d, v in totals.items() if d >= split)
    assert second > Decimal("1.2") * first


def test_december_is_busier_than_the_average_month(small):
    orders_by_month = Counter()
    seen = set()
    for row in small["clean"]:
        if row[0] not in seen:
            seen.add(row[0])
            orders_by_month[day_of(row).month] += 1
    assert orders_by_month[12] > sum(orders_by_month.values()) / 12


def test_churned_customers_never_buy_after_their_churn_date(small):
    last_day = {}
    for row in small["clean"]:
        last_day[row[1]] = max(last_day.get(row[1], day_of(row)), day_of(row))
    churned = [c for c in small["customers"] if c["churn_date"] is not None]
    assert len(churned) > 50
    for c in churned:
        assert last_day[c["customer_id"]] <= dt.date.fromisoformat(c["churn_date"])
        assert c["churn_date"] >= c["join_date"]


def test_segments_differ_in_mean_orders_per_customer_in_the_planted_order(small):
    orders = defaultdict(list)
    for c in small["customers"]:
        orders[c["segment"]].append(c["orders"])
    mean = {name: sum(v) / len(v) for name, v in orders.items()}
    ranking = ["vip", "bargain_hunter", "regular", "occasional", "one_off"]
    assert sorted(mean, key=mean.get, reverse=True) == ranking
    assert max(orders["one_off"]) <= 2


def test_vips_pay_higher_unit_prices_than_bargain_hunters(small):
    segment = {c["customer_id"]: c["segment"] for c in small["customers"]}
    prices = defaultdict(list)
    for row in small["clean"]:
        prices[segment[row[1]]].append(Decimal(row[5]))
    vip = sum(prices["vip"]) / len(prices["vip"])
    bargain = sum(prices["bargain_hunter"]) / len(prices["bargain_hunter"])
    assert vip > 2 * bargain


def test_lines_argument_hits_the_target_within_ten_percent(tmp_path):
    for target in (3_000, 40_000):
        path = tmp_path / f"l{target}.csv"
        truth = generate(path, lines=target, seed=5)
        assert truth["parameters"]["lines"] == target
        assert abs(truth["lines_total"] - target) <= 0.1 * target
        assert path.read_bytes().count(b"\n") == truth["lines_total"]


def test_customers_and_lines_together_raise_value_error_naming_both(tmp_path):
    with pytest.raises(ValueError, match=r"customers=10.*lines=1000"):
        generate(tmp_path / "x.csv", customers=10, lines=1000)
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"customers": 0}, r"customers=0 should be an integer >= 1"),
        ({"lines": 50}, r"lines=50 should be an integer >= 100"),
        ({"seed": -1}, r"seed=-1 should be an integer >= 0"),
        ({"days": 3}, r"days=3 should be an integer >= 7"),
        ({"n_items": 10}, r"n_items=10 should be an integer in \[30, 999999\]"),
        ({"dirty_rate": 0.9}, r"dirty_rate=0.9"),
        ({"start": "2023-13-01"}, r"start='2023-13-01'"),
        ({"customers": 2.5}, r"customers=2.5 should be an integer"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_the_value(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x.csv", **kwargs)


def test_progress_is_told_what_is_happening(tmp_path):
    messages = []
    generate(tmp_path / "p.csv", customers=50, progress=messages.append)
    assert 2 <= len(messages) <= 10
    assert any(m.startswith("writing") for m in messages)


def test_other_start_days_and_catalogue_size_are_honoured(tmp_path):
    path = tmp_path / "nested" / "dir" / "o.csv"
    truth = generate(path, customers=100, start="2021-03-15", days=60, n_items=30, seed=2)
    _, _, clean = read_log(path)
    days = {day_of(row) for row in clean}
    assert min(days) >= dt.date(2021, 3, 15) and max(days) <= dt.date(2021, 5, 13)
    assert truth["end"] == "2021-05-13"
    assert {row[3] for row in clean} <= {item["item_id"] for item in truth["items"]}
    assert len(truth["items"]) == 30


def test_the_projects_parser_counts_the_same_rejections(small):
    from mr_jobs import records

    parse = records.make_line_parser(records.PRESETS["canonical"], require_item=True)
    results = [parse(raw) for raw in small["raw"]]
    rejected = Counter(r for r in results if isinstance(r, str))
    accepted = sum(1 for r in results if not isinstance(r, str))
    truth = small["truth"]
    assert accepted == truth["lines_accepted"]
    assert dict(rejected) == {k: v for k, v in truth["rejects_by_reason"].items() if v}


def test_default_size_is_about_a_hundred_thousand_lines(tmp_path):
    path = tmp_path / "default.csv"
    truth = generate(path)
    assert truth["n_customers"] == 4000
    assert 70_000 <= truth["lines_total"] <= 150_000
    assert path.read_bytes().count(b"\n") == truth["lines_total"]
