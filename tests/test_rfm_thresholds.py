"""Exact RFM quintile thresholds: the derivation, the keys, the radix selection by MapReduce."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from models.cli import main as cli_main
from models.rfm_scores import quintile_scores, score_customers
from models.rfm_thresholds import exact_thresholds, scores_from_thresholds, wanted_ranks
from mr_jobs.rfm_thresholds import MRValueHistogram, key_value, value_key
from tests.conftest import run_job

DOCSTRING_EXAMPLES = [
    ([10, 20, 30, 40, 50], True),
    ([1, 1, 1, 1, 1, 2, 3, 4, 5, 6], True),
    ([0, 7, 30, 90, 365], False),
    ([42.0], True),
]


def _sorted_thresholds(values, higher_is_better):
    """The four order statistics of :func:`wanted_ranks`, from numpy.sort."""
    a = np.sort(np.asarray(values))
    return [None if r is None else a[r] for r in wanted_ranks(len(a), higher_is_better)]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(recency, orders, total):
    return [
        {"customer_id": f"C{i:05d}", "recency_days": r, "orders": o, "total_value": t}
        for i, (r, o, t) in enumerate(zip(recency, orders, total, strict=True))
    ]


# -- the derivation ------------------------------------------------------------------------


@pytest.mark.parametrize("values, higher_is_better", DOCSTRING_EXAMPLES)
def test_thresholds_reproduce_the_docstring_examples_of_quintile_scores(values, higher_is_better):
    thresholds = _sorted_thresholds(values, higher_is_better)
    got = scores_from_thresholds(values, thresholds, higher_is_better)
    assert got.tolist() == quintile_scores(values, higher_is_better).tolist()


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_thresholds_equal_quintile_scores_on_random_heavy_ties_for_every_small_n(
    n, higher_is_better
):
    rng = np.random.default_rng(n)
    for distinct in (1, 2, 3, n):
        for _ in range(30):
            values = rng.integers(0, distinct, size=n) * 7 - 5
            thresholds = _sorted_thresholds(values, higher_is_better)
            got = scores_from_thresholds(values, thresholds, higher_is_better)
            assert got.tolist() == quintile_scores(values, higher_is_better).tolist(), values


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_thresholds_equal_quintile_scores_on_large_random_tied_floats(higher_is_better):
    rng = np.random.default_rng(7)
    values = np.round(rng.exponential(50.0, size=5000), 0) / 4 - 1.0
    thresholds = _sorted_thresholds(values, higher_is_better)
    got = scores_from_thresholds(values, thresholds, higher_is_better)
    np.testing.assert_array_equal(got, quintile_scores(values, higher_is_better))


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_constant_column_scores_1_from_its_thresholds(higher_is_better):
    values = [3.5] * 9
    got = scores_from_thresholds(values, _sorted_thresholds(values, higher_is_better), True)
    assert got.tolist() == [1] * 9 == quintile_scores(values).tolist()


def test_wanted_ranks_are_ceil_of_the_quintile_boundaries():
    for n in range(0, 40):
        for higher in (True, False):
            ranks = wanted_ranks(n, higher)
            for s, r in zip(range(2, 6), ranks, strict=True):
                m = math.ceil((s - 1) * n / 5)
                assert r == (None if m == 0 else (m - 1 if higher else n - m))


def test_scores_from_thresholds_refuses_a_wrong_number_of_thresholds():
    with pytest.raises(ValueError, match=r"thresholds=\[1, 2\] should hold 4"):
        scores_from_thresholds([1, 2], [1, 2], True)


# -- the keys ------------------------------------------------------------------------------


def test_int_keys_preserve_order_and_equality_including_negatives_and_the_64_bit_ends():
    values = [-(2**63), -(2**40), -7, -1, 0, 1, 2, 545, 2**40, 2**63 - 1]
    keys = [value_key(v, "int") for v in values]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(0 <= k < 2**64 for k in keys)
    assert [key_value(k, "int") for k in keys] == values
    assert value_key(3, "int") == value_key(3.0, "int")


def test_float_keys_preserve_order_and_one_key_for_minus_zero():
    values = [
        -math.inf,
        -1.7976931348623157e308,
        -1e100,
        -1.5,
        -1e-300,
        -5e-324,
        0.0,
        5e-324,
        2.2250738585072014e-308,
        1e-300,
        0.1,
        1.0,
        12.34,
        1e100,
        1.7976931348623157e308,
        math.inf,
    ]
    keys = [value_key(v, "float") for v in values]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(0 <= k < 2**64 for k in keys)
    assert [key_value(k, "float") for k in keys] == values
    assert value_key(-0.0, "float") == value_key(0.0, "float") == value_key(0, "float")
    assert math.copysign(1.0, key_value(value_key(-0.0, "float"), "float")) == 1.0


def test_float_keys_sort_like_random_floats_and_tie_exactly():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1e6, 2000), rng.normal(0, 1e-6, 2000), [0.1] * 5])
    keys = np.array([value_key(float(v), "float") for v in values], dtype=np.uint64)
    np.testing.assert_array_equal(
        np.argsort(values, kind="stable"), np.argsort(keys, kind="stable")
    )
    assert len(np.unique(keys)) == len(np.unique(values))
    assert value_key(0.1 + 0.2, "float") != value_key(0.3, "float")


@pytest.mark.parametrize(
    "value, kind, reason",
    [
        (None, "int", "missing"),
        (math.nan, "float", "missing"),
        ("3", "int", "not_a_number"),
        (True, "float", "not_a_number"),
        (2.5, "int", "not_integer"),
        (2**63, "int", "out_of_range"),
        (10**400, "float", "out_of_range"),
    ],
)
def test_values_without_a_key_are_named_by_reason(value, kind, reason):
    with pytest.raises(ValueError) as info:
        value_key(value, kind)
    assert info.value.reason == reason


# -- the job and the driver ----------------------------------------------------------------


def test_empty_input_counts_nothing(tmp_path):
    prefixes = tmp_path / "prefixes.json"
    prefixes.write_text(json.dumps({"orders": [[0, 0, 16]]}))
    rows, _ = run_job(MRValueHistogram, b"", ["--prefixes", str(prefixes)])
    assert rows == []


def test_one_pass_counts_buckets_with_their_min_and_max_keys(tmp_path):
    prefixes = tmp_path / "prefixes.json"
    prefixes.write_text(json.dumps({"orders": [[0, 0, 8]]}))
    lines = "".join(json.dumps(r) + "\n" for r in _rows([1, 2, 3], [1, 1, 300], [1.0, 2.0, 3.0]))
    rows, counters = run_job(MRValueHistogram, lines, ["--prefixes", str(prefixes)])
    top = 2**63 >> 56  # the top 8 bits of small non-negative ints' keys
    assert sorted(rows) == sorted(
        [
            ["n", "recency_days", 3],
            ["n", "orders", 3],
            ["n", "total_value", 3],
            ["bucket", "orders", 0, 0, top, 3, 2**63 + 1, 2**63 + 300],
        ]
    )
    assert counters["crm.lines"]["read"] == 3


def test_a_later_pass_counts_only_the_keys_under_an_open_prefix(tmp_path):
    prefix = (2**63 + 8) >> 2  # the top 62 bits of the keys of 8, 9, 10 and 11
    prefixes = tmp_path / "prefixes.json"
    prefixes.write_text(json.dumps({"orders": [[prefix, 62, 2]]}))
    orders = [8, 9, 10, 11, 12, 7, 9]
    lines = "".join(json.dumps(r) + "\n" for r in _rows([1] * 7, orders, [1.0] * 7))
    rows, _ = run_job(MRValueHistogram, lines, ["--prefixes", str(prefixes)])
    buckets = sorted(r for r in rows if r[0] == "bucket")
    assert buckets == [
        ["bucket", "orders", 62, prefix, b, 2 if v == 9 else 1, 2**63 + v, 2**63 + v]
        for b, v in enumerate([8, 9, 10, 11])
    ]
    assert ["n", "orders", 7] in rows


def test_exact_thresholds_equal_the_order_statistics_of_numpy_sort(tmp_path):
    rng = np.random.default_rng(11)
    n = 37
    recency = rng.integers(-3, 600, n).tolist()
    orders = rng.choice([1, 1, 1, 2, 3, 40], n).tolist()
    total = np.round(rng.normal(100, 300, n), 2).tolist()
    total[:4] = [-0.0, 0.0, 1e-300, -1e300]
    path = _write_rows(tmp_path / "rfm.jsonl", _rows(recency, orders, total))
    for bits in (16, 3):
        found = exact_thresholds([str(path)], conf_paths=[], bits_per_pass=bits)
        for dim, values in (("recency_days", recency), ("orders", orders), ("total_value", total)):
            entry = found[dim]
            assert entry["n"] == n
            assert entry["thresholds"] == _sorted_thresholds(values, entry["higher_is_better"])
            assert entry["passes"] <= math.ceil(64 / bits)
            got = scores_from_thresholds(values, entry, entry["higher_is_better"])
            assert got.tolist() == quintile_scores(values, entry["higher_is_better"]).tolist()
    assert isinstance(found["orders"]["thresholds"][0], int)
    assert isinstance(found["total_value"]["thresholds"][0], float)


def test_minus_zero_and_zero_are_one_value_of_the_thresholds(tmp_path):
    total = [-0.0, 0.0, -0.0, 5.0, -1e300]
    path = _write_rows(tmp_path / "rfm.jsonl", _rows([1] * 5, [1] * 5, total))
    found = exact_thresholds([str(path)], conf_paths=[])["total_value"]
    assert found["thresholds"] == [-1e300, 0.0, 0.0, 0.0]
    assert scores_from_thresholds(total, found, True).tolist() == [2, 2, 2, 5, 1]
    assert quintile_scores(total).tolist() == [2, 2, 2, 5, 1]


@pytest.mark.parametrize("n", [1, 2, 4])
def test_exact_thresholds_with_fewer_than_five_customers(tmp_path, n):
    path = _write_rows(tmp_path / "rfm.jsonl", _rows([5, 9, 9, 1][:n], [2] * n, [7.5] * n))
    found = exact_thresholds([str(path)], conf_paths=[])
    assert found["recency_days"]["thresholds"] == _sorted_thresholds([5, 9, 9, 1][:n], False)
    assert found["orders"]["thresholds"] == [2, 2, 2, 2]  # constant: everyone scores 1
    assert found["total_value"]["passes"] == 1  # one bucket, one key


def test_exact_thresholds_of_an_empty_input_have_no_order_statistics(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    found = exact_thresholds([str(path)], conf_paths=[])
    assert found["orders"] == {
        "n": 0,
        "higher_is_better": True,
        "ranks": [None] * 4,
        "thresholds": [None] * 4,
        "passes": 1,
    }


def test_a_missing_value_raises_naming_the_column_and_the_count(tmp_path):
    rows = _rows([1, 2, 3], [1, 2, 3], [1.0, 2.0, 3.0])
    rows[1]["total_value"] = None
    del rows[2]["total_value"]
    path = _write_rows(tmp_path / "rfm.jsonl", rows)
    with pytest.raises(ValueError, match=r"total_value has 2 missing \(NaN\) values"):
        exact_thresholds([str(path)], conf_paths=[])


def test_a_line_that_is_not_json_raises_naming_the_reason(tmp_path):
    path = tmp_path / "rfm.jsonl"
    path.write_text('{"recency_days": 1, "orders": 1, "total_value": 1.0}\nnot json\n')
    with pytest.raises(ValueError, match=r"1 RFM line rejected \(by reason: \{'not_json': 1\}"):
        exact_thresholds([str(path)], conf_paths=[])


def test_bits_per_pass_out_of_range_is_refused():
    with pytest.raises(ValueError, match="bits_per_pass=0 should be in 1..32"):
        exact_thresholds(["unused"], bits_per_pass=0)


def test_inline_and_local_runners_find_the_same_thresholds_over_two_files(tmp_path):
    rng = np.random.default_rng(5)
    rows = _rows(
        rng.integers(0, 400, 300).tolist(),
        rng.integers(1, 6, 300).tolist(),
        np.round(rng.exponential(80, 300), 2).tolist(),
    )
    first = _write_rows(tmp_path / "part-00000", rows[:170])
    second = _write_rows(tmp_path / "part-00001", rows[170:])
    paths = [str(first), str(second)]
    inline = exact_thresholds(paths, conf_paths=[])
    local = exact_thresholds(paths, runner="local", conf_paths=[])
    assert inline == local
    df = pd.DataFrame(rows)
    for dim, entry in inline.items():
        assert entry["thresholds"] == _sorted_thresholds(df[dim], entry["higher_is_better"])


def test_thresholds_score_every_cdnow_customer_as_score_customers_does(tmp_path, cdnow_path):
    out = tmp_path / "rfm"
    assert cli_main(["rfm", str(cdnow_path), "-o", str(out), "--input-format", "cdnow"]) == 0
    parts = sorted(str(p) for p in out.glob("part-*"))
    found = exact_thresholds([str(out)], conf_paths=[])  # the directory: its part-* files
    df = pd.DataFrame([json.loads(line) for p in parts for line in open(p)])
    assert len(df) == 23570
    scored = score_customers(df)
    for dim, column in (
        ("recency_days", "r_score"),
        ("orders", "f_score"),
        ("total_value", "m_score"),
    ):
        entry = found[dim]
        assert entry["n"] == 23570
        assert entry["thresholds"] == _sorted_thresholds(df[dim], entry["higher_is_better"])
        got = scores_from_thresholds(df[dim].to_numpy(), entry, entry["higher_is_better"])
        np.testing.assert_array_equal(got, scored[column].to_numpy())
