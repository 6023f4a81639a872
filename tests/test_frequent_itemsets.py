"""MRFrequentItemsets and the itemsets stage: SON's two passes, rules, the supermarket golden."""

import math
from itertools import combinations

import pytest

from models.itemsets_stage import derive_rules, find_frequent_itemsets
from mr_jobs.frequent_itemsets import (
    min_count,
    mine_frequent_itemsets,
    parse_min_support,
)
from mr_jobs.records import PRESETS, InputSchema
from tests.conftest import require

BASKETS = PRESETS["baskets"]
# T1 = abc, T2 = ab, T3 = ac, T4 = bc, T5 = abcd
HAND = "basket_id,item\nT1,a\nT1,b\nT1,c\nT2,a\nT2,b\nT3,a\nT3,c\nT4,b\nT4,c\n"
HAND += "T5,a\nT5,b\nT5,c\nT5,d\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def son(paths, min_support, **kwargs):
    return find_frequent_itemsets(
        paths,
        schema=kwargs.pop("schema", BASKETS),
        min_support=min_support,
        conf_paths=[],
        **kwargs,
    )


def counts(itemsets):
    return {tuple(r["items"]): r["count"] for r in itemsets}


def exact_itemsets(baskets, support):
    """Brute force: every itemset of every basket, counted."""
    found = {}
    for basket in baskets:
        items = sorted(set(basket))
        for size in range(1, len(items) + 1):
            for itemset in combinations(items, size):
                found[itemset] = found.get(itemset, 0) + 1
    threshold = min_count(parse_min_support(support), len(baskets))
    return {k: v for k, v in found.items() if v >= threshold}


def test_empty_input_gives_no_itemsets_no_rules_and_zero_lines(tmp_path):
    itemsets, details = son([write(tmp_path, "empty.csv", "")], "0.5")
    assert itemsets == []
    assert (details["baskets"], details["candidates"]) == (0, 0)
    assert details["lines"]["read"] == 0
    assert derive_rules(itemsets, details["baskets"], "0.5") == []


def test_hand_computed_itemsets_and_rules(tmp_path):
    itemsets, details = son([write(tmp_path, "hand.csv", HAND)], "0.4")
    assert details["baskets"] == 5
    assert details["lines"] == {
        "read": 14,
        "accepted": 13,
        "rejected": 1,
        "rejected_by_reason": {"header": 1},
    }
    assert counts(itemsets) == {
        ("a",): 4,
        ("b",): 4,
        ("c",): 4,
        ("a", "b"): 3,
        ("a", "c"): 3,
        ("b", "c"): 3,
        ("a", "b", "c"): 2,
    }
    assert [r["items"] for r in itemsets][:4] == [["a"], ["b"], ["c"], ["a", "b"]]
    assert itemsets[-1] == {"items": ["a", "b", "c"], "count": 2, "support": 0.4}

    rules = derive_rules(itemsets, 5, "0.6")
    assert len(rules) == 9  # 6 pair rules at 3/4, 3 triple rules at 2/3
    a_b = rules[0]
    assert a_b == {
        "antecedent": ["a"],
        "consequent": ["b"],
        "count": 3,
        "support": 0.6,
        "confidence": 0.75,
        "lift": pytest.approx(0.9375),
        "leverage": pytest.approx(0.6 - 0.8 * 0.8),
        "conviction": pytest.approx(0.8),
        "antecedent_support": 0.8,
        "consequent_support": 0.8,
    }
    ab_c = [r for r in rules if r["antecedent"] == ["a", "b"]]
    assert [(r["consequent"], r["count"]) for r in ab_c] == [(["c"], 2)]
    assert ab_c[0]["confidence"] == pytest.approx(2 / 3)
    # minimum confidence is exact and never changes which itemsets are frequent
    assert len(derive_rules(itemsets, 5, "0.75")) == 6
    assert len(derive_rules(itemsets, 5, "0.76")) == 0


def test_max_size_and_max_basket_items_limit_itemsets_and_count_capped_baskets(tmp_path):
    path = write(tmp_path, "hand.csv", HAND)
    itemsets, _ = son([path], "0.4", max_size=2)
    assert max(len(r["items"]) for r in itemsets) == 2
    assert len(itemsets) == 6
    # a cap of 2 leaves T1 = abc and T5 = abcd out, as the co-occurrence job does
    itemsets, details = son([path], "0.4", max_basket_items=2)
    assert (details["capped_baskets"], details["baskets"]) == (2, 3)
    assert counts(itemsets) == {("a",): 2, ("b",): 2, ("c",): 2}


def test_confidence_one_gives_null_conviction():
    itemsets = [
        {"items": ["a"], "count": 2},
        {"items": ["b"], "count": 4},
        {"items": ["a", "b"], "count": 2},
    ]
    a_b, b_a = derive_rules(itemsets, 4, 0)
    assert (a_b["confidence"], a_b["conviction"], a_b["lift"]) == (1.0, None, 1.0)
    assert b_a["conviction"] == pytest.approx((1 - 0.5) / (1 - 0.5))


def test_bad_lines_are_counted_by_reason_and_the_rest_is_mined(tmp_path):
    raw = HAND.encode() + (
        b"\n"  # blank
        b"T6,\n"  # missing item
        b",a\n"  # missing basket
        b"T7,a,b\n"  # column count
        b"T8,\xff\n"  # undecodable
        b"basket_id,item\n"  # a repeated header
    )
    itemsets, details = son([write(tmp_path, "bad.csv", raw)], "0.4")
    assert details["lines"] == {
        "read": 20,
        "accepted": 13,
        "rejected": 7,
        "rejected_by_reason": {
            "blank": 1,
            "column_count": 1,
            "header": 2,
            "missing_item": 1,
            "missing_order": 1,
            "undecodable": 1,
        },
    }
    assert details["baskets"] == 5
    assert len(itemsets) == 7


def test_full_order_lines_are_read_as_baskets_by_order_id(tmp_path):
    raw = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
    raw += "O1,A,2024-01-01,x,1,2\nO1,A,2024-01-01,y,1,2\nO2,B,2024-01-02,x,1,2\n"
    raw += "O2,B,2024-01-02,y,2,1\nO3,B,2024-01-03,x,-1,2\n"  # a return is not bought
    itemsets, details = son([write(tmp_path, "orders.csv", raw)], "1", schema=PRESETS["canonical"])
    assert counts(itemsets) == {("x",): 2, ("y",): 2, ("x", "y"): 2}
    assert details["lines"]["rejected_by_reason"] == {"header": 1, "return": 1}


def test_a_schema_without_a_basket_column_is_refused_naming_its_columns(tmp_path):
    schema = InputSchema(("customer_id", "timestamp", "item_id", "amount"))
    with pytest.raises(ValueError, match="need a basket"):
        son([write(tmp_path, "x.csv", "")], "0.5", schema=schema)


def test_son_finds_itemsets_that_are_locally_infrequent_in_some_chunks(tmp_path):
    # 20 baskets b00..b19; {x, y, z} is in b00-b04 and b10-b14: 10 of 20, frequent at 0.5.
    # Chunks of at most 5 baskets (sorted ids run contiguously through a mapper) hold it
    # 5 times or never: b05-b09 has none of it. A local threshold that is not scaled to
    # the chunk (10) would lose it in every chunk.
    baskets = {}
    for i in range(20):
        items = {"x", "y", "z"} if i < 5 or 10 <= i < 15 else {"x", "w"}
        if i % 3 == 0:
            items.add("v")
        baskets[f"b{i:02d}"] = items
    lines = [(b, item) for b, items in sorted(baskets.items()) for item in sorted(items)]
    # two files, and b00's z is in the second: a basket split across files stays whole
    first = [line for line in lines if line != ("b00", "z")]
    files = [
        write(tmp_path, "part-1.csv", "".join(f"{b},{i}\n" for b, i in first[::-1])),
        write(tmp_path, "part-2.csv", "basket_id,item\nb00,z\n"),
    ]
    itemsets, details = son(
        files, "0.5", chunk_baskets=5, runner="local", extra_args=["--num-cores", "2"]
    )
    expected = exact_itemsets(list(baskets.values()), "0.5")
    assert counts(itemsets) == expected
    assert expected[("x", "y", "z")] == 10
    assert details["chunks"] >= 4
    assert details["baskets"] == 20
    assert details["lines"]["accepted"] == len(lines)
    # the chunk b05-b09 alone: {x, y, z} is not locally frequent there
    chunk = [sorted(baskets[f"b{i:02d}"]) for i in range(5, 10)]
    local = mine_frequent_itemsets(chunk, min_count(parse_min_support("0.5"), 5))
    assert ("x", "y", "z") not in local


def test_apriori_matches_brute_force_on_a_dense_case():
    baskets = [sorted({f"i{(b * k) % 7}" for k in range(1, 6)}) for b in range(1, 40)]
    for support in ("0.1", "0.3", "0.6"):
        threshold = min_count(parse_min_support(support), len(baskets))
        assert mine_frequent_itemsets(baskets, threshold) == exact_itemsets(baskets, support)


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.1", "abc", ""])
def test_min_support_outside_zero_to_one_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=f"min_support={bad!r}"):
        parse_min_support(bad)


def test_bad_limits_and_confidence_are_refused_naming_them(tmp_path):
    path = write(tmp_path, "hand.csv", HAND)
    with pytest.raises(ValueError, match="max_size=0"):
        son([path], "0.4", max_size=0)
    with pytest.raises(ValueError, match="min_confidence='2'"):
        derive_rules([], 1, "2")


# -- golden: the supermarket baskets against mlxtend ------------------------------------------


def test_supermarket_itemsets_and_rules_match_mlxtend(supermarket_path):
    try:
        import pandas as pd
        from mlxtend.frequent_patterns import apriori, association_rules
    except ImportError:
        require(False, "mlxtend is not installed (pip install 'crm-mapreduce[test]')")

    itemsets, details = son([str(supermarket_path)], "0.22")
    assert details["lines"]["rejected_by_reason"] == {"header": 1}
    assert len(itemsets) == 404
    assert max(len(r["items"]) for r in itemsets) == 4
    rules = derive_rules(itemsets, details["baskets"], "0.5")
    assert len(rules) == 857

    lines = pd.read_csv(supermarket_path, dtype=str)
    onehot = pd.crosstab(lines["basket_id"], lines["item"]).astype(bool)
    assert len(onehot) == details["baskets"] == 4627
    ref = apriori(onehot, min_support=0.22, use_colnames=True)
    ref_support = dict(zip(ref["itemsets"], ref["support"], strict=True))
    assert len(ref_support) == 404
    ours = {frozenset(r["items"]): r for r in itemsets}
    assert set(ours) == set(ref_support)
    for itemset, support in ref_support.items():
        assert ours[itemset]["support"] == pytest.approx(support, abs=1e-9)

    ref_rules = association_rules(ref, len(onehot), metric="confidence", min_threshold=0.5)
    ref_rules = ref_rules[ref_rules["consequents"].map(len) == 1]
    assert len(ref_rules) == 857
    by_rule = {(frozenset(r["antecedent"]), r["consequent"][0]): r for r in rules}
    for row in ref_rules.itertuples(index=False):
        (consequent,) = row.consequents
        ours = by_rule[(row.antecedents, consequent)]
        for name in ("support", "confidence", "lift", "leverage"):
            assert ours[name] == pytest.approx(getattr(row, name), abs=1e-9), name
        if math.isinf(row.conviction):
            assert ours["conviction"] is None
        else:
            assert ours["conviction"] == pytest.approx(row.conviction, abs=1e-9)
