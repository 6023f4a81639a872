"""Tests for models.rfm_scores: quintile scores, tie handling, segments and the summary."""

import re

import numpy as np
import pandas as pd
import pytest

import models.rfm_scores as rfm_scores
from models.rfm_scores import (
    OUTPUT_COLUMNS,
    SEGMENT_RULES,
    SEGMENTS,
    quintile_scores,
    score_customers,
    segment_summary,
)


def make_frame(recency, orders, values, ids=None):
    n = len(recency)
    return pd.DataFrame(
        {
            "customer_id": ids if ids is not None else [f"C{i:05d}" for i in range(n)],
            "recency_days": recency,
            "orders": orders,
            "total_value": values,
        }
    )


def random_frame(n, seed=20240601, distinct=False):
    rng = np.random.default_rng(seed)
    if distinct:
        recency = rng.permutation(n)
        orders = rng.permutation(n) + 1
        values = rng.permutation(n) * 1.25
    else:
        recency = rng.integers(0, 730, n)
        orders = rng.geometric(0.45, n)
        values = np.round(rng.gamma(2.0, 60.0, n) * orders, 2)
    return make_frame(recency, orders, values)


def scores_of(df, customer_id):
    row = df.loc[df["customer_id"] == customer_id].iloc[0]
    return int(row["r_score"]), int(row["f_score"]), int(row["m_score"])


# -- quintile_scores ---------------------------------------------------------------------


def test_five_distinct_values_score_one_to_five():
    assert quintile_scores([10, 20, 30, 40, 50]).tolist() == [1, 2, 3, 4, 5]


def test_scores_follow_values_not_positions():
    assert quintile_scores([30, 10, 50, 20, 40]).tolist() == [3, 1, 5, 2, 4]


def test_ten_distinct_values_score_in_pairs():
    assert quintile_scores(np.arange(10.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_heavy_ties_share_the_lowest_score_and_skip_the_next():
    # five 1s: 0 strictly smaller -> 1; the 2 has 5 of 10 strictly smaller -> 1 + 25 // 10 = 3
    values = [1, 1, 1, 1, 1, 2, 3, 4, 5, 6]
    assert quintile_scores(values).tolist() == [1, 1, 1, 1, 1, 3, 4, 4, 5, 5]


def test_sixty_percent_single_orders_put_two_orders_at_f4():
    values = [1] * 6 + [2] * 2 + [3, 4]
    assert quintile_scores(values).tolist() == [1] * 6 + [4, 4, 5, 5]


def test_tied_values_always_get_the_same_score():
    values = [5, 3, 3, 3, 9, 9, 1, 7, 3, 9, 2, 2]
    scores = quintile_scores(values)
    for v in set(values):
        assert len(set(scores[np.array(values) == v].tolist())) == 1


def test_lower_is_better_reverses_the_scores():
    assert quintile_scores([0, 7, 30, 90, 365], higher_is_better=False).tolist() == [5, 4, 3, 2, 1]


def test_lower_is_better_ties_count_strictly_larger_values():
    # the four 100s have 0 strictly larger -> 1; the 10 has 4 of 5 strictly larger -> 5
    assert quintile_scores([100, 100, 10, 100, 100], higher_is_better=False).tolist() == [
        1,
        1,
        5,
        1,
        1,
    ]


def test_constant_values_all_score_one():
    assert quintile_scores([4.5] * 7).tolist() == [1] * 7


def test_single_value_scores_one():
    assert quintile_scores([42]).tolist() == [1]
    assert quintile_scores([42], higher_is_better=False).tolist() == [1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([7, 3], [3, 1]), ([1, 2, 3], [1, 2, 4]), ([4, 3, 2, 1], [4, 3, 2, 1])],
)
def test_fewer_than_five_values_cannot_reach_the_top_scores(values, expected):
    assert quintile_scores(values).tolist() == expected


def test_empty_values_give_an_empty_int_array():
    scores = quintile_scores([])
    assert scores.shape == (0,)
    assert scores.dtype == np.int64


def test_scores_are_int64_in_one_to_five():
    scores = quintile_scores(np.random.default_rng(1).normal(size=1000))
    assert scores.dtype == np.int64
    assert scores.min() == 1 and scores.max() == 5


def test_nan_values_raise_naming_the_series_and_the_count():
    with pytest.raises(ValueError, match=r"total_value has 2 missing \(NaN\) values"):
        quintile_scores(pd.Series([1.0, np.nan, 3.0, np.nan], name="total_value"))


def test_non_numeric_values_raise_type_error():
    with pytest.raises(TypeError, match="numeric"):
        quintile_scores(np.array(["a", "b"], dtype=object))


# -- score_customers ---------------------------------------------------------------------


def test_score_customers_adds_the_documented_columns_to_a_copy():
    df = make_frame([3, 10, 40, 200, 400], [9, 1, 4, 6, 1], [900.0, 20.0, 150.0, 600.0, 10.0])
    df["lines"] = [20, 1, 5, 7, 2]
    original = df.copy()
    scored = score_customers(df)
    pd.testing.assert_frame_equal(df, original)  # input untouched
    assert list(scored.columns) == list(df.columns) + list(OUTPUT_COLUMNS)
    assert scored["r_score"].tolist() == [5, 4, 3, 2, 1]
    assert scored["f_score"].tolist() == [5, 1, 3, 4, 1]
    assert scored["m_score"].tolist() == [5, 2, 3, 4, 1]
    assert scored["rfm_cell"].tolist() == ["555", "412", "333", "244", "111"]
    assert scored["rfm_sum"].tolist() == [15, 7, 9, 10, 3]
    assert scored["single_purchase"].tolist() == [False, True, False, False, True]
    assert scored["segment"].tolist() == ["champions", "new", "need_attention", "cant_lose", "lost"]
    assert scored["lines"].tolist() == [20, 1, 5, 7, 2]


def test_score_customers_keeps_index_and_row_order():
    df = make_frame([5, 1, 3], [1, 2, 3], [1.0, 2.0, 3.0])
    df.index = [30, 10, 20]
    scored = score_customers(df)
    assert scored.index.tolist() == [30, 10, 20]
    assert scored["customer_id"].tolist() == df["customer_id"].tolist()


def test_rescoring_a_scored_frame_replaces_the_columns():
    scored = score_customers(random_frame(200))
    again = score_customers(scored)
    assert list(again.columns) == list(scored.columns)
    pd.testing.assert_frame_equal(again, scored)


def test_result_does_not_depend_on_row_order():
    df = random_frame(2000)
    scored = score_customers(df).set_index("customer_id").sort_index()
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    rescored = score_customers(shuffled).set_index("customer_id").sort_index()
    pd.testing.assert_frame_equal(rescored[scored.columns], scored)


def test_one_customer_table_scores_one_one_one_and_is_lost():
    scored = score_customers(make_frame([0], [12], [5000.0]))
    assert scores_of(scored, "C00000") == (1, 1, 1)
    assert scored["rfm_cell"].tolist() == ["111"]
    assert scored["rfm_sum"].tolist() == [3]
    assert scored["value_tier"].tolist() == ["low"]
    assert scored["segment"].tolist() == ["lost"]


def test_empty_frame_gives_all_output_columns_with_the_dtypes_of_a_full_result():
    full = score_customers(make_frame([1, 2], [1, 2], [1.0, 2.0]))
    empty = score_customers(make_frame([], [], []).astype(full.dtypes[:4].to_dict()))
    assert empty.shape == (0, len(full.columns))
    assert list(empty.columns) == list(full.columns)
    pd.testing.assert_series_equal(empty.dtypes, full.dtypes)


def test_empty_object_columns_from_no_json_rows_are_accepted():
    df = pd.DataFrame([], columns=["customer_id", "recency_days", "orders", "total_value"])
    scored = score_customers(df)
    assert len(scored) == 0
    assert set(OUTPUT_COLUMNS) <= set(scored.columns)
    for column in ("r_score", "f_score", "m_score", "rfm_sum"):
        assert scored[column].dtype == np.int64
    assert scored["single_purchase"].dtype == bool


def test_missing_columns_raise_listing_all_of_them():
    df = make_frame([1], [1], [1.0]).drop(columns=["orders", "total_value"])
    with pytest.raises(ValueError, match="missing required column.*orders, total_value"):
        score_customers(df)


def test_nan_recency_raises_naming_the_column_and_count():
    df = make_frame([1.0, np.nan, 3.0], [1, 2, 3], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"recency_days has 1 missing \(NaN\) value\b"):
        score_customers(df)


def test_null_recency_from_a_job_without_as_of_raises():
    df = make_frame([None, None], [1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="recency_days has 2 missing"):
        score_customers(df)


def test_nan_total_value_raises_naming_the_column():
    df = make_frame([1, 2, 3], [1, 2, 3], [np.nan, np.nan, np.nan])
    with pytest.raises(ValueError, match="total_value has 3 missing"):
        score_customers(df)


def test_negative_recency_raises_naming_the_row_count():
    df = make_frame([-1, 5, -3, 0], [1, 1, 1, 1], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="recency_days is negative in 2 rows"):
        score_customers(df)


def test_orders_below_one_raise_naming_the_row_count():
    df = make_frame([1, 2], [0, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="orders is below 1 in 1 row\\b"):
        score_customers(df)


def test_non_dataframe_input_raises_type_error():
    with pytest.raises(TypeError, match="DataFrame"):
        score_customers({"recency_days": [1], "orders": [1], "total_value": [1.0]})


@pytest.mark.parametrize(
    ("m_score", "tier"), [(1, "low"), (2, "mid"), (3, "mid"), (4, "high"), (5, "high")]
)
def test_value_tier_follows_m_score(m_score, tier):
    scored = score_customers(make_frame([1] * 5, [1] * 5, [10.0, 20.0, 30.0, 40.0, 50.0]))
    row = scored.loc[scored["m_score"] == m_score]
    assert row["value_tier"].tolist() == [tier]


def test_single_purchase_customers_always_have_f_one():
    scored = score_customers(random_frame(5000))
    single = scored[scored["single_purchase"]]
    assert len(single) > 0
    assert (single["f_score"] == 1).all()
    assert not single["segment"].isin(["champions", "loyal", "cant_lose", "at_risk"]).any()


# -- segments ----------------------------------------------------------------------------

# Ten customers with distinct values in every column, so each column scores 1,1,2,2,...,5,5
# by rank: recency days 0..9 give R 5,5,4,4,3,3,2,2,1,1 (lower is better); orders 1..10 and
# values 10..100 give 1 + rank // 2.
SEGMENT_CASES = {
    # id: ((recency_days, orders, total_value), (R, F, M), segment)
    "champion": ((0, 10, 100.0), (5, 5, 5), "champions"),
    "loyal": ((4, 9, 10.0), (3, 5, 1), "loyal"),
    "cant_lose": ((8, 8, 90.0), (1, 4, 5), "cant_lose"),
    "at_risk": ((6, 7, 20.0), (2, 4, 1), "at_risk"),
    "new": ((1, 1, 30.0), (5, 1, 2), "new"),
    "promising": ((2, 5, 80.0), (4, 3, 4), "promising"),
    "need_attention": ((5, 2, 40.0), (3, 1, 2), "need_attention"),
    "hibernating": ((7, 4, 70.0), (2, 2, 4), "hibernating"),
    "lost": ((9, 3, 60.0), (1, 2, 3), "lost"),
    "promising_too": ((3, 6, 50.0), (4, 3, 3), "promising"),
}


def test_every_named_segment_is_reached_by_a_hand_made_customer():
    ids = list(SEGMENT_CASES)
    recency, orders, values = zip(*(SEGMENT_CASES[i][0] for i in ids), strict=True)
    scored = score_customers(make_frame(list(recency), list(orders), list(values), ids=ids))
    for cid, (_inputs, scores, segment) in SEGMENT_CASES.items():
        assert scores_of(scored, cid) == scores, cid
        assert scored.loc[scored["customer_id"] == cid, "segment"].item() == segment, cid
    assert set(scored["segment"]) == set(SEGMENTS)


def _segments_for_scores(r, f, m, single):
    """Segment of a customer with the given scores, through the vectorised rule engine."""
    columns = {
        "r_score": np.array([r]),
        "f_score": np.array([f]),
        "m_score": np.array([m]),
        "single_purchase": np.array([single]),
    }
    return rfm_scores._assign_segments(columns)[0]


def test_customer_matching_champions_and_loyal_is_champions():
    assert _segments_for_scores(5, 5, 5, False) == "champions"
    assert _segments_for_scores(4, 4, 3, False) == "loyal"  # M too low for champions


def test_rule_precedence_for_overlapping_rules():
    assert _segments_for_scores(2, 5, 5, False) == "cant_lose"  # also matches at_risk
    assert _segments_for_scores(2, 5, 3, False) == "at_risk"
    assert _segments_for_scores(5, 1, 5, True) == "new"  # also matches promising
    assert _segments_for_scores(5, 1, 5, False) == "promising"
    assert _segments_for_scores(3, 3, 5, False) == "need_attention"
    assert _segments_for_scores(3, 1, 1, True) == "need_attention"
    assert _segments_for_scores(2, 2, 5, True) == "hibernating"
    assert _segments_for_scores(1, 1, 5, True) == "lost"


def test_every_score_combination_gets_exactly_the_first_matching_rule():
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                for single in (False, True):
                    values = {"r_score": r, "f_score": f, "m_score": m, "single_purchase": single}
                    matching = [
                        name
                        for name, _description, predicate in SEGMENT_RULES
                        if all(
                            {">=": values[c] >= v, "<=": values[c] <= v, "==": values[c] == v}[op]
                            for c, op, v in predicate
                        )
                    ]
                    assert matching, (r, f, m, single)
                    assert _segments_for_scores(r, f, m, single) == matching[0]


def test_segment_rules_are_well_formed():
    names = [name for name, _description, _predicate in SEGMENT_RULES]
    assert names == [
        "champions",
        "loyal",
        "cant_lose",
        "at_risk",
        "new",
        "promising",
        "need_attention",
        "hibernating",
        "lost",
    ]
    assert tuple(names) == SEGMENTS
    for _name, description, predicate in SEGMENT_RULES:
        assert description.strip()
        for column, op, _value in predicate:
            assert column in {"r_score", "f_score", "m_score", "single_purchase"}
            assert op in {">=", "<=", "=="}


def test_module_docstring_table_describes_segment_rules():
    doc = rfm_scores.__doc__
    for position, (name, _description, predicate) in enumerate(SEGMENT_RULES, start=1):
        rule = rfm_scores._format_predicate(predicate)
        pattern = rf"^{position}\s+``{name}``\s+{re.escape(rule)}\s{{2,}}"
        assert re.search(pattern, doc, flags=re.MULTILINE), (name, rule)


# -- segment_summary ---------------------------------------------------------------------


def test_segment_summary_lists_all_segments_in_order_including_empty_ones():
    scored = score_customers(
        make_frame([3, 10, 40, 200, 400], [9, 1, 4, 6, 1], [900.0, 20.0, 150.0, 600.0, 10.0])
    )
    summary = segment_summary(scored)
    assert summary["segment"].tolist() == list(SEGMENTS)
    assert list(summary.columns) == [
        "segment",
        "customers",
        "share_customers",
        "revenue",
        "share_revenue",
        "mean_recency_days",
        "mean_orders",
        "mean_total_value",
        "description",
    ]
    by_segment = summary.set_index("segment")
    assert by_segment["customers"].to_dict() == {
        "champions": 1,
        "loyal": 0,
        "cant_lose": 1,
        "at_risk": 0,
        "new": 1,
        "promising": 0,
        "need_attention": 1,
        "hibernating": 0,
        "lost": 1,
    }
    assert by_segment.loc["loyal", "revenue"] == 0.0
    assert np.isnan(by_segment.loc["loyal", "mean_orders"])
    assert by_segment.loc["cant_lose", "mean_recency_days"] == 200.0
    assert by_segment.loc["champions", "share_revenue"] == pytest.approx(900.0 / 1680.0)
    assert summary["description"].tolist() == [d for _n, d, _p in SEGMENT_RULES]


def test_segment_summary_shares_sum_to_one_and_revenue_matches():
    scored = score_customers(random_frame(10_000))
    summary = segment_summary(scored)
    assert summary["customers"].sum() == len(scored)
    assert summary["share_customers"].sum() == pytest.approx(1.0)
    assert summary["share_revenue"].sum() == pytest.approx(1.0)
    assert summary["revenue"].sum() == pytest.approx(scored["total_value"].sum())
    expected = scored.groupby("segment")["total_value"].sum()
    for segment, revenue in expected.items():
        got = summary.loc[summary["segment"] == segment, "revenue"].item()
        assert got == pytest.approx(revenue)
    means = scored.groupby("segment")[["recency_days", "orders", "total_value"]].mean()
    for segment, row in means.iterrows():
        got = summary.loc[summary["segment"] == segment].iloc[0]
        assert got["mean_recency_days"] == pytest.approx(row["recency_days"])
        assert got["mean_orders"] == pytest.approx(row["orders"])
        assert got["mean_total_value"] == pytest.approx(row["total_value"])


def test_segment_summary_of_no_customers_has_zero_counts_and_undefined_shares():
    summary = segment_summary(score_customers(make_frame([], [], [])))
    assert summary["segment"].tolist() == list(SEGMENTS)
    assert summary["customers"].tolist() == [0] * len(SEGMENTS)
    assert summary["revenue"].tolist() == [0.0] * len(SEGMENTS)
    assert summary["share_customers"].isna().all()
    assert summary["share_revenue"].isna().all()


def test_segment_summary_rejects_unknown_segments_and_missing_columns():
    scored = score_customers(make_frame([1, 2], [1, 2], [1.0, 2.0]))
    bad = scored.copy()
    bad["segment"] = ["champions", "vip"]
    with pytest.raises(ValueError, match="unknown segment.*vip"):
        segment_summary(bad)
    with pytest.raises(ValueError, match="missing required column.*segment"):
        segment_summary(scored.drop(columns=["segment"]))


# -- properties on a large random table --------------------------------------------------


def test_random_table_scores_cells_and_segments_are_consistent():
    scored = score_customers(random_frame(10_000))
    for column in ("r_score", "f_score", "m_score"):
        assert scored[column].between(1, 5).all()
    assert scored["rfm_sum"].between(3, 15).all()
    assert (scored["rfm_sum"] == scored["r_score"] + scored["f_score"] + scored["m_score"]).all()
    expected_cell = (
        scored["r_score"].astype(str)
        + scored["f_score"].astype(str)
        + scored["m_score"].astype(str)
    )
    assert (scored["rfm_cell"] == expected_cell).all()
    assert scored["segment"].isin(SEGMENTS).all()
    assert scored["segment"].notna().all()
    assert (scored["single_purchase"] == (scored["orders"] == 1)).all()
    assert set(scored["value_tier"]) <= {"high", "mid", "low"}
    # ties: every group of equal values shares one score
    for value_column, score_column in (
        ("recency_days", "r_score"),
        ("orders", "f_score"),
        ("total_value", "m_score"),
    ):
        assert (scored.groupby(value_column)[score_column].nunique() == 1).all()
    # recency: a strictly more recent customer never scores lower
    ordered = scored.sort_values("recency_days")
    assert (np.diff(ordered["r_score"].to_numpy()) <= 0).all()


def test_distinct_values_give_a_fifth_of_customers_per_score():
    n = 10_000
    scored = score_customers(random_frame(n, distinct=True))
    for column in ("r_score", "f_score", "m_score"):
        counts = scored[column].value_counts().sort_index()
        assert counts.index.tolist() == [1, 2, 3, 4, 5]
        assert (counts == n // 5).all(), counts


def test_distinct_values_of_awkward_size_differ_by_at_most_one_per_score():
    n = 10_003
    scored = score_customers(random_frame(n, distinct=True))
    for column in ("r_score", "f_score", "m_score"):
        counts = scored[column].value_counts()
        assert counts.max() - counts.min() <= 1
        assert counts.sum() == n
