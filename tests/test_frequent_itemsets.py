"""MRFrequentItemsets and the itemsets stage: SON's two passes, rules, the supermarket golden."""

import json
import math
import random
import subprocess
import sys
import zlib
from itertools import combinations
from pathlib import Path

import pytest

from models.itemsets_stage import derive_rules, find_frequent_itemsets, son_chunks
from mr_jobs.frequent_itemsets import (
    CandidateLimitError,
    chunk_of,
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


def random_baskets(n, n_items, per_basket, seed):
    """``{basket id: sorted items}``: ``n`` baskets of ``per_basket`` items of ``n_items``."""
    rng = random.Random(seed)
    items = [f"i{k:02d}" for k in range(n_items)]
    return {f"b{b:04d}": sorted(rng.sample(items, per_basket)) for b in range(n)}


def basket_lines(baskets):
    return [f"{b},{item}\n" for b, items in baskets.items() for item in items]


def test_son_finds_itemsets_that_are_locally_infrequent_in_some_chunks(tmp_path):
    # 2,000 baskets at support 0.5 in chunks of about 200 (the least at 0.5: 100 / 0.5):
    # some frequent pair is below the scaled threshold in some chunk, and is found anyway
    baskets = random_baskets(2000, 8, 6, seed=3)
    lines = basket_lines(baskets)
    # two files, and b0000's last item is in the second: a basket split across files
    # stays whole
    files = [
        write(tmp_path, "part-1.csv", "".join(lines[1:][::-1])),
        write(tmp_path, "part-2.csv", "basket_id,item\n" + lines[0]),
    ]
    itemsets, details = son(files, "0.5", chunk_baskets=10)
    expected = exact_itemsets(list(baskets.values()), "0.5")
    assert counts(itemsets) == expected
    assert (details["chunks"], details["chunk_baskets"], details["baskets"]) == (10, 200, 2000)
    assert details["lines"]["accepted"] == len(lines)
    assert details["candidates"] >= len(itemsets)
    chunks = {}
    for basket_id, items in baskets.items():
        chunks.setdefault(chunk_of(basket_id, 10), []).append(items)
    locally_missed = [
        itemset
        for itemset in expected
        if any(
            itemset
            not in mine_frequent_itemsets(chunk, min_count(parse_min_support("0.5"), len(chunk)))
            for chunk in chunks.values()
        )
    ]
    assert locally_missed


def frequent_of(expected, n_baskets):
    """``frequent`` for :func:`find_frequent_itemsets`, from exact itemset counts."""
    return {
        "baskets": n_baskets,
        "items": [{"item": k[0]} for k in expected if len(k) == 1],
        "pairs": [{"items": list(k)} for k in expected if len(k) == 2],
    }


def test_the_result_and_the_candidates_do_not_depend_on_how_the_input_is_split(tmp_path):
    baskets = random_baskets(2400, 30, 10, seed=11)
    lines = basket_lines(baskets)
    one = [write(tmp_path, "all.csv", "".join(lines))]
    many_dir = tmp_path / "many"
    many_dir.mkdir()
    random.Random(5).shuffle(lines)  # a basket's lines scattered over many files
    many = [write(many_dir, f"part-{k:02d}.csv", "".join(lines[k::17])) for k in range(17)]
    expected = exact_itemsets(list(baskets.values()), "0.1")
    one_file, one_details = son(one, "0.1")
    many_files, many_details = son(many, "0.1")
    assert counts(one_file) == counts(many_files) == expected
    assert one_details["candidates"] == many_details["candidates"]
    assert one_details["chunks"] == 1
    # chunk_baskets=1 is raised to the floor, 100 / 0.1 = 1,000 baskets: 2 chunks, chosen by
    # basket id, so the local runner's tasks find the same candidates as inline's
    small, small_details = son(one, "0.1", chunk_baskets=1)
    assert counts(small) == expected
    assert small_details["candidates"] >= len(expected)
    assert (small_details["chunks"], small_details["chunk_baskets"]) == (2, 1_000)
    few = [write(tmp_path, f"few-{k}.csv", "".join(lines[k::3])) for k in range(3)]
    local, local_details = son(
        few,
        "0.1",
        chunk_baskets=1,
        frequent=frequent_of(expected, len(baskets)),  # spares the local co-occurrence run
        runner="local",
        extra_args=["--num-cores", "2"],
    )
    assert counts(local) == expected
    assert local_details["candidates"] == small_details["candidates"]
    assert local_details["chunks"] == 2


def test_chunks_are_never_smaller_than_the_floor_for_the_support():
    assert son_chunks(15_183, parse_min_support("0.002")) == (1, 50_000)
    assert son_chunks(15_183, parse_min_support("0.01")) == (1, 10_000)
    assert son_chunks(15_183, parse_min_support("0.05")) == (7, 2_000)
    assert son_chunks(4_627, parse_min_support("0.5"), chunk_baskets=10) == (23, 200)
    assert son_chunks(10, parse_min_support("0.5")) == (1, 2_000)
    assert son_chunks(100_000, parse_min_support("0.5"), chunk_baskets=50_000) == (2, 50_000)


def test_chunk_of_depends_on_the_basket_id_only():
    assert [chunk_of("T1", 7) for _ in range(3)] == [chunk_of("T1", 7)] * 3
    assert chunk_of("T1", 7) == zlib.crc32(b"T1") % 7
    assert {chunk_of(f"b{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_the_frequent_pairs_prune_every_itemset_with_an_infrequent_pair():
    baskets = [["a", "b", "c"]] * 3 + [["a", "b"]]
    assert set(mine_frequent_itemsets(baskets, 1)) == {
        ("a",),
        ("b",),
        ("c",),
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("a", "b", "c"),
    }
    pruned = mine_frequent_itemsets(baskets, 1, pairs={("a", "b"), ("b", "c")})
    assert set(pruned) == {("a",), ("b",), ("c",), ("a", "b"), ("b", "c")}


def test_a_chunk_with_too_many_itemsets_fails_naming_the_limit():
    baskets = [[f"i{k:02d}" for k in range(12)]] * 2  # 4095 itemsets at a count of 1
    assert len(mine_frequent_itemsets(baskets, 1)) == 2**12 - 1
    with pytest.raises(CandidateLimitError, match="max_candidates=1000"):
        mine_frequent_itemsets(baskets, 1, limit=1000)


def test_the_candidate_limit_stops_the_job_and_names_the_limit(tmp_path):
    baskets = {f"b{b:03d}": [f"i{k:02d}" for k in range(14)] for b in range(50)}
    path = write(tmp_path, "full.csv", "".join(basket_lines(baskets)))
    with pytest.raises(CandidateLimitError, match="max_candidates=500"):
        son([path], "0.5", max_candidates=500)


def test_given_frequent_items_and_pairs_are_used_and_the_baskets_must_match(tmp_path):
    path = write(tmp_path, "hand.csv", HAND)
    frequent = {
        "baskets": 5,
        "items": [{"item": "a"}, {"item": "b"}, {"item": "c"}],
        "pairs": [{"items": ["a", "b"]}, {"items": ["a", "c"]}, {"items": ["b", "c"]}],
    }
    itemsets, details = son([path], "0.4", frequent=frequent)
    assert len(itemsets) == 7
    assert (details["frequent_items"], details["frequent_pairs"]) == (3, 3)
    assert "frequent" not in details["seconds"]  # not computed again
    with pytest.raises(RuntimeError, match="of 6 baskets"):
        son([path], "0.4", frequent={**frequent, "baskets": 6})


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


# -- resources: the hostile cases stay under 1 GiB and 30 s -----------------------------------

_BOUNDED_RUN = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
from models.itemsets_stage import find_frequent_itemsets
from mr_jobs.records import PRESETS
path, support, chunk_baskets = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None
itemsets, details = find_frequent_itemsets(
    [path], schema=PRESETS["baskets"], min_support=support, chunk_baskets=chunk_baskets,
    conf_paths=[],
)
json.dump({"itemsets": itemsets, "candidates": details["candidates"]}, sys.stdout)
"""


def hostile_dense(tmp_path):
    """200 baskets of 22 items of 30 (support 0.5: a chunk at min count 1 is 200 x 2^22)."""
    baskets = random_baskets(200, 30, 22, seed=7)
    return write(tmp_path, "dense.csv", "".join(basket_lines(baskets))), baskets


def hostile_remainder(tmp_path):
    """2,000 baskets of 5 items of 100, then 25 of 25 items at the end of the file."""
    baskets = random_baskets(2000, 100, 5, seed=7)
    last = random_baskets(25, 100, 25, seed=8)
    baskets.update({f"z{b}": items for b, items in last.items()})
    return write(tmp_path, "remainder.csv", "".join(basket_lines(baskets))), baskets


def fpgrowth_counts(baskets, support):
    try:
        import pandas as pd
        from mlxtend.frequent_patterns import fpgrowth
    except ImportError:
        require(False, "mlxtend is not installed (pip install 'crm-mapreduce[test]')")
    rows = [(b, item) for b, items in baskets.items() for item in items]
    lines = pd.DataFrame(rows, columns=["basket_id", "item"])
    onehot = pd.crosstab(lines["basket_id"], lines["item"]).astype(bool)
    ref = fpgrowth(onehot, min_support=float(support), use_colnames=True)
    n = len(onehot)
    return {
        tuple(sorted(s)): round(v * n) for s, v in zip(ref["itemsets"], ref["support"], strict=True)
    }


@pytest.mark.parametrize(
    ("case", "support", "chunk_baskets"),
    [(hostile_dense, "0.5", 0), (hostile_dense, "0.5", 10), (hostile_remainder, "0.01", 100)],
)
def test_hostile_son_cases_finish_under_1_gib_and_30_s_and_are_exact(
    tmp_path, case, support, chunk_baskets
):
    path, baskets = case(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_RUN, path, support, str(chunk_baskets)],
        cwd=str(Path(__file__).resolve().parent.parent),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert counts(result["itemsets"]) == fpgrowth_counts(baskets, support)
    # at most a few false candidates (with chunks of 40 dense baskets, before the floor of
    # 100 / min_support, 1,459 for 379 itemsets), never 2^22 per basket
    assert len(result["itemsets"]) <= result["candidates"] <= 5_000
