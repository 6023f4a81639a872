"""MRItemCooccurrence: hand-computed metrics, basket grouping, caps, runners, mlxtend golden."""

import io
import json
import math
import random
from fractions import Fraction

import pytest

from mr_jobs.cooccurrence import MRItemCooccurrence, rule_metrics
from tests.conftest import require

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
# N = 4 baskets; n(a) = 3, n(b) = 2, n(c) = 2; n(a,b) = 2, n(a,c) = 1, n(b,c) = 1
HAND = HEADER + (
    "O1,A,2023-01-02,a,1,1.00\n"
    "O1,A,2023-01-02,b,1,1.00\n"
    "O2,A,2023-01-03,a,1,1.00\n"
    "O2,A,2023-01-03,b,3,1.00\n"
    "O2,A,2023-01-03,c,1,1.00\n"
    "O3,B,2023-01-04,a,1,1.00\n"
    "O4,B,2023-01-05,c,1,1.00\n"
)
ALL = ["--min-support", "0", "--min-confidence", "0"]


def run(raw_input=b"", args=(), runner="inline", input_paths=None):
    """Run the job; return (items, pairs, rules, counters of all steps summed).

    ``items`` maps item -> row, ``pairs`` (a, b) -> row, ``rules`` (antecedent,
    consequent) -> row; every row is also checked for a unique key.
    """
    if isinstance(raw_input, str):
        raw_input = raw_input.encode("utf-8")
    argv = ["--no-conf", "-r", runner, *args]
    argv += [str(p) for p in input_paths] if input_paths else ["-"]
    job = MRItemCooccurrence(args=argv)
    job.sandbox(stdin=io.BytesIO(raw_input))
    with job.make_runner() as runner_:
        runner_.run()
        rows = [json.loads(line) for line in runner_.cat_output() if line.strip()]
        counters = {}
        for step in runner_.counters():
            for group, names in step.items():
                for name, value in names.items():
                    counters.setdefault(group, {})
                    counters[group][name] = counters[group].get(name, 0) + value
    items, pairs, rules = {}, {}, {}
    for row in rows:
        if row["kind"] == "item":
            table, key = items, row["item"]
        elif row["kind"] == "pair":
            table, key = pairs, tuple(row["items"])
        else:
            assert row["kind"] == "rule"
            table, key = rules, (row["antecedent"], row["consequent"])
        assert key not in table
        table[key] = row
    return items, pairs, rules, counters


def basket_lines(baskets, header="basket_id,item"):
    """Long-format lines for ``{basket: [items]}``."""
    out = [header] if header else []
    for basket, items in baskets.items():
        out += [f"{basket},{item}" for item in items]
    return "\n".join(out) + "\n"


def test_empty_input_gives_no_rows_and_zero_lines():
    items, pairs, rules, counters = run(b"", ALL)
    assert (items, pairs, rules) == ({}, {}, {})
    assert counters.get("crm.lines", {}).get("read", 0) == 0


def test_hand_computed_items_pairs_and_every_rule_metric():
    items, pairs, rules, counters = run(HAND, ALL)
    assert items == {
        "a": {"kind": "item", "item": "a", "count": 3, "support": 0.75, "baskets": 4},
        "b": {"kind": "item", "item": "b", "count": 2, "support": 0.5, "baskets": 4},
        "c": {"kind": "item", "item": "c", "count": 2, "support": 0.5, "baskets": 4},
    }
    assert pairs == {
        ("a", "b"): {"kind": "pair", "items": ["a", "b"], "count": 2, "support": 0.5, "baskets": 4},
        ("a", "c"): {
            "kind": "pair",
            "items": ["a", "c"],
            "count": 1,
            "support": 0.25,
            "baskets": 4,
        },
        ("b", "c"): {
            "kind": "pair",
            "items": ["b", "c"],
            "count": 1,
            "support": 0.25,
            "baskets": 4,
        },
    }
    assert set(rules) == {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")}
    # a -> b: confidence 2/3, lift (2/3)/(2/4) = 4/3, leverage 2/4 - 3/4*2/4 = 1/8,
    # conviction (1 - 2/4)/(1 - 2/3) = 3/2
    assert rules["a", "b"] == {
        "kind": "rule",
        "antecedent": "a",
        "consequent": "b",
        "count": 2,
        "antecedent_count": 3,
        "consequent_count": 2,
        "support": 0.5,
        "antecedent_support": 0.75,
        "consequent_support": 0.5,
        "confidence": float(Fraction(2, 3)),
        "lift": float(Fraction(4, 3)),
        "leverage": 0.125,
        "conviction": 1.5,
        "baskets": 4,
    }
    # b -> a: every basket with b has a: confidence 1, conviction infinite (null)
    b_a = rules["b", "a"]
    assert (b_a["confidence"], b_a["lift"], b_a["leverage"]) == (1.0, float(Fraction(4, 3)), 0.125)
    assert b_a["conviction"] is None
    # a -> c: confidence 1/3, lift (1/3)/(2/4) = 2/3, leverage 1/4 - 3/8 = -1/8,
    # conviction (1/2)/(2/3) = 3/4
    a_c = rules["a", "c"]
    assert (a_c["confidence"], a_c["lift"]) == (float(Fraction(1, 3)), float(Fraction(2, 3)))
    assert (a_c["leverage"], a_c["conviction"]) == (-0.125, 0.75)
    # c -> a: confidence 1/2, conviction (1/4)/(1/2) = 1/2
    assert (rules["c", "a"]["confidence"], rules["c", "a"]["conviction"]) == (0.5, 0.5)
    # b and c are independent: lift 1, leverage 0, conviction 1
    b_c = rules["b", "c"]
    assert (b_c["confidence"], b_c["lift"], b_c["leverage"], b_c["conviction"]) == (0.5, 1, 0, 1)
    assert counters["crm.lines"] == {"read": 8, "accepted": 7, "rejected": 1}
    assert counters["crm.rejected"] == {"header": 1}
    assert counters["crm.baskets"] == {"baskets": 4, "one_item": 2}
    assert counters["crm.items"] == {"distinct": 3, "frequent": 3}
    assert counters["crm.pairs"] == {"distinct": 3, "frequent": 3}
    assert counters["crm.rules"] == {"rules": 6}


def test_min_support_prunes_items_and_pairs_and_min_confidence_only_rules():
    items, pairs, rules, counters = run(HAND, ["--min-support", "0.5", "--min-confidence", "0.7"])
    assert set(items) == {"a", "b", "c"}  # support 3/4, 2/4, 2/4
    assert set(pairs) == {("a", "b")}  # the other pairs have support 1/4
    assert set(rules) == {("b", "a")}  # a -> b has confidence 2/3 < 0.7
    assert counters["crm.pairs"] == {"distinct": 3, "frequent": 1}
    # a higher minimum confidence never changes the frequent pairs
    _, pairs_all_rules, _, _ = run(HAND, ["--min-support", "0.5", "--min-confidence", "0"])
    assert pairs_all_rules == pairs
    items, pairs, rules, _ = run(HAND, ["--min-support", "0.6"])
    assert (set(items), pairs, rules) == ({"a"}, {}, {})


def test_min_count_prunes_like_an_absolute_support():
    items, pairs, _, counters = run(HAND, ["--min-support", "0", "--min-count", "2"])
    assert set(items) == {"a", "b", "c"}
    assert set(pairs) == {("a", "b")}
    assert counters["crm.pairs"] == {"distinct": 3, "frequent": 1}
    items, pairs, _, _ = run(HAND, ["--min-support", "0", "--min-count", "3"])
    assert (set(items), pairs) == ({"a"}, {})


def test_a_threshold_exactly_at_a_support_keeps_it():
    # support of (a, b) is exactly 0.5, compared as the float count / N
    _, pairs, _, _ = run(HAND, ["--min-support", "0.5"])
    assert ("a", "b") in pairs


def test_bad_lines_are_counted_by_reason_and_good_lines_still_count_right():
    bad = (
        b"\n"
        b"O9,A,2023-01-03,,1,1.00\n"
        b",A,2023-01-03,a,1,1.00\n"
        b"O9,A,2023-02-30,a,1,1.00\n"
        b"O9,A,2023-01-03,a,-1,1.00\n"
        b"O9,A,2023-01-03,a,1\n"
        b"O9,A,2023-01-03,\xff,1,1.00\n" + HEADER.encode()
    )
    good = HAND.encode()
    mixed = good[: len(HEADER)] + bad + good[len(HEADER) :]
    clean = run(good, ALL)[:3]
    *tables, counters = run(mixed, ALL)
    assert tuple(tables) == clean
    assert counters["crm.rejected"] == {
        "header": 2,
        "blank": 1,
        "missing_item": 1,
        "missing_order": 1,
        "bad_timestamp": 1,
        "return": 1,
        "column_count": 1,
        "undecodable": 1,
    }
    lines = counters["crm.lines"]
    assert lines == {"read": 16, "accepted": 7, "rejected": 9}
    assert lines["read"] == lines["accepted"] + lines["rejected"]


def test_duplicate_lines_and_quantities_do_not_multiply_a_pair():
    body = HAND[len(HEADER) :]
    doubled = HEADER + body + body.replace(",1,1.00", ",5,1.00")
    assert run(doubled, ALL)[:3] == run(HAND, ALL)[:3]


def test_one_item_baskets_count_as_baskets_and_items_but_make_no_pairs():
    raw = basket_lines({1: ["x"], 2: ["x"], 3: ["x", "y"]})
    items, pairs, _, counters = run(raw, ["--input-format", "baskets", *ALL])
    assert {i: r["count"] for i, r in items.items()} == {"x": 3, "y": 1}
    assert items["x"]["baskets"] == 3
    assert {p: r["count"] for p, r in pairs.items()} == {("x", "y"): 1}
    assert counters["crm.baskets"] == {"baskets": 3, "one_item": 2}


def test_order_lines_without_an_order_column_are_one_item_baskets_each():
    raw = (
        "customer_id,timestamp,item_id,amount\n"
        "A,2023-01-02,x,1\nA,2023-01-02,y,1\nB,2023-01-03,x,2\n"
    )
    args = ["--columns", "customer_id,timestamp,item_id,amount", *ALL]
    items, pairs, rules, counters = run(raw, args)
    assert {i: (r["count"], r["baskets"]) for i, r in items.items()} == {"x": (2, 3), "y": (1, 3)}
    assert (pairs, rules) == ({}, {})
    assert counters["crm.baskets"] == {"baskets": 3, "one_item": 3}


def test_item_ids_with_quoted_commas_and_unicode_are_kept_as_written():
    raw = (
        'basket_id,item\nk1,"bread, cake"\nk1,crème brûlée\nk1,"say ""hi"""\n'
        'k2,"bread, cake"\nk2,crème brûlée\n"k,3",漢字\n'
    )
    items, pairs, rules, _ = run(raw, ["--input-format", "baskets", *ALL])
    assert {i: r["count"] for i, r in items.items()} == {
        "bread, cake": 2,
        "crème brûlée": 2,
        'say "hi"': 1,
        "漢字": 1,
    }
    assert pairs[("bread, cake", "crème brûlée")]["count"] == 2
    assert rules[("crème brûlée", "bread, cake")]["confidence"] == 1.0
    assert ('say "hi"', "漢字") not in pairs


def test_the_supermarket_preset_layout_reads_with_input_format_baskets():
    raw = basket_lines({0: ["milk", "bread"], 1: ["milk"]})
    items, pairs, _, counters = run(raw, ["--input-format", "baskets", *ALL])
    assert {i: r["count"] for i, r in items.items()} == {"milk": 2, "bread": 1}
    assert counters["crm.rejected"] == {"header": 1}


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_a_basket_split_across_two_input_files_is_one_basket(tmp_path, runner):
    first = tmp_path / "part-1.csv"
    second = tmp_path / "part-2.csv"
    first.write_text(basket_lines({"k": ["x", "y"], "m": ["x"]}))
    second.write_text(basket_lines({"k": ["z", "x"], "m": ["y"]}))
    items, pairs, _, counters = run(
        args=["--input-format", "baskets", *ALL], runner=runner, input_paths=[first, second]
    )
    assert {i: (r["count"], r["baskets"]) for i, r in items.items()} == {
        "x": (2, 2),
        "y": (2, 2),
        "z": (1, 2),
    }
    assert {p: r["count"] for p, r in pairs.items()} == {
        ("x", "y"): 2,
        ("x", "z"): 1,
        ("y", "z"): 1,
    }
    assert counters["crm.baskets"] == {"baskets": 2}
    assert counters["crm.rejected"] == {"header": 2}


def test_baskets_over_the_item_cap_are_left_out_and_counted(tmp_path):
    big = basket_lines({"big": ["p", "q", "r", "s"], "k": ["p", "q"], "m": ["p"]})
    items, pairs, rules, counters = run(
        big, ["--input-format", "baskets", "--max-basket-items", "3"]
    )
    assert {i: (r["count"], r["baskets"]) for i, r in items.items()} == {"p": (2, 2), "q": (1, 2)}
    assert set(pairs) == {("p", "q")}
    assert counters["crm.baskets"] == {"baskets": 2, "capped": 1, "one_item": 1}
    # split so that no mapper sees more than the cap: the reducer's union still is over it
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(basket_lines({"big": ["p", "q"], "k": ["p", "q"]}))
    second.write_text(basket_lines({"big": ["r", "s"], "m": ["p"]}))
    split = run(
        args=["--input-format", "baskets", "--max-basket-items", "3"],
        runner="local",
        input_paths=[first, second],
    )
    assert split[:3] == (items, pairs, rules)
    assert split[3]["crm.baskets"] == counters["crm.baskets"]


def random_baskets(seed, n_baskets=300, n_items=25):
    rng = random.Random(seed)
    lines = ["basket_id,item"]
    for b in range(n_baskets):
        k = rng.choice([1, 2, 3, 4, 6, 9])
        # skewed popularity, so some items and pairs are frequent and some are not
        for item in rng.choices(range(n_items), weights=[1 / (i + 1) for i in range(n_items)], k=k):
            lines.append(f"b{b},item {item}")
    body = lines[1:]
    rng.shuffle(body)  # a basket's lines need not be together
    return "\n".join([lines[0], *body]) + "\n"


def test_early_emission_at_a_tiny_combine_max_changes_nothing():
    raw = random_baskets(1)
    args = ["--input-format", "baskets", "--min-support", "0.02", "--min-confidence", "0.2"]
    assert run(raw, [*args, "--combine-max", "1"])[:3] == run(raw, args)[:3]


def test_inline_and_local_runners_give_the_same_rows_and_counters(tmp_path):
    paths = []
    for seed in (2, 3):
        path = tmp_path / f"baskets-{seed}.csv"
        path.write_text(random_baskets(seed))  # same basket ids in both: they merge
        paths.append(path)
    args = ["--input-format", "baskets", "--min-support", "0.03", "--min-confidence", "0.3"]
    inline = run(args=args, input_paths=paths)
    local = run(args=args, runner="local", input_paths=paths)
    assert inline == local
    assert inline[1] and inline[2]  # the case has frequent pairs and rules


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--min-support", "1.5", "--min-support=1.5"),
        ("--min-confidence", "-0.1", "--min-confidence=-0.1"),
        ("--min-count", "0", "--min-count=0"),
        ("--max-basket-items", "1", "--max-basket-items=1"),
    ],
)
def test_bad_options_name_the_bad_value(option, value, message):
    with pytest.raises(ValueError, match=message):
        MRItemCooccurrence(args=[option, value])


def test_a_schema_without_items_is_refused_before_the_run():
    from mr_jobs.records import SchemaError

    with pytest.raises(SchemaError, match="no item_id column"):
        MRItemCooccurrence(args=["--input-format", "cdnow"])


def test_a_basket_export_with_other_column_names_reads_through_the_mapping():
    raw = "ticket;sku;store\nt1;x;s\nt1;y;s\nt2;x;s\n"
    args = ["--input-format", "baskets", "--columns", "ticket,sku,store", "--delimiter", ";"]
    args += ["--map", "order_id=ticket", "--map", "item_id=sku", *ALL]
    items, pairs, _, _ = run(raw, args)
    assert {i: r["count"] for i, r in items.items()} == {"x": 2, "y": 1}
    assert set(pairs) == {("x", "y")}


def test_rule_metrics_give_null_conviction_at_confidence_one():
    m = rule_metrics(2, 2, 3, 4)
    assert (m["confidence"], m["conviction"]) == (1.0, None)
    assert m["lift"] == float(Fraction(4, 3))


# -- golden: the supermarket baskets against mlxtend ------------------------------------------


def test_supermarket_pairs_and_single_item_rules_match_mlxtend(supermarket_path):
    try:
        import pandas as pd
        from mlxtend.frequent_patterns import apriori, association_rules
    except ImportError:
        require(False, "mlxtend is not installed (pip install 'crm-mapreduce[test]')")
    items, pairs, rules, counters = run(
        args=["--input-format", "baskets", "--min-support", "0.22", "--min-confidence", "0.5"],
        input_paths=[supermarket_path],
    )
    assert counters["crm.lines"] == {"read": 85_763, "accepted": 85_762, "rejected": 1}
    assert counters["crm.baskets"]["baskets"] == 4_627
    assert counters["crm.items"]["distinct"] == 122
    assert counters["crm.pairs"] == {"distinct": 6_592, "frequent": 162}

    df = pd.read_csv(supermarket_path, dtype=str, keep_default_na=False)
    onehot = pd.crosstab(df["basket_id"], df["item"]).astype(bool)
    n = len(onehot)
    itemsets = apriori(onehot, min_support=0.22, use_colnames=True, max_len=2)
    expected_items = {
        next(iter(s)): round(sup * n)
        for s, sup in zip(itemsets.itemsets, itemsets.support, strict=True)
        if len(s) == 1
    }
    expected_pairs = {
        tuple(sorted(s)): round(sup * n)
        for s, sup in zip(itemsets.itemsets, itemsets.support, strict=True)
        if len(s) == 2
    }
    assert len(expected_pairs) == 162
    assert {i: r["count"] for i, r in items.items()} == expected_items
    assert {p: r["count"] for p, r in pairs.items()} == expected_pairs
    for p, row in pairs.items():
        assert row["support"] == pytest.approx(expected_pairs[p] / n, abs=1e-12)

    reference = association_rules(itemsets, metric="confidence", min_threshold=0.5)
    assert set(rules) == {
        (next(iter(a)), next(iter(c)))
        for a, c in zip(reference.antecedents, reference.consequents, strict=True)
    }
    for ref in reference.to_dict("records"):
        row = rules[next(iter(ref["antecedents"])), next(iter(ref["consequents"]))]
        assert row["count"] == round(ref["support"] * n)
        for field in ("support", "confidence", "lift", "leverage"):
            assert row[field] == pytest.approx(ref[field], rel=0, abs=1e-9), field
        for field in ("antecedent_support", "consequent_support"):
            assert row[field] == pytest.approx(ref[field.replace("_", " ")], rel=0, abs=1e-9)
        if math.isinf(ref["conviction"]):
            assert row["conviction"] is None
        else:
            assert row["conviction"] == pytest.approx(ref["conviction"], rel=1e-9, abs=1e-9)
