"""Recommendations: item to item from rules, and per customer with MRCustomerRecommendations."""

import json
import math
import random

import pytest

from models.job_runner import run_job as run_stage_job
from models.recommend import item_recommendations, recommend_for_customers, write_neighbors
from models.synthetic import generate
from mr_jobs.cooccurrence import MRItemCooccurrence
from mr_jobs.job_options import build_schema
from mr_jobs.recommendations import MRCustomerRecommendations, read_neighbors
from mr_jobs.records import PRESETS, SchemaError, make_basket_parser
from tests.conftest import run_job

CANONICAL = PRESETS["canonical"]
HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"

# Confidences are sums of powers of two, so every score below is exact.
TABLE = {
    "w": [("p", 0.0625)],
    "x": [("p", 0.5), ("q", 0.25)],
    "y": [("p", 0.25), ("r", 0.75), ("x", 0.5)],
    "z": [("p", 0.125), ("q", 0.25)],
}


def rule(a, b, confidence, lift, **metrics):
    """A rule record as MRItemCooccurrence writes it (only the fields used here)."""
    record = {"kind": "rule", "antecedent": a, "consequent": b, "count": 1, "support": 0.1}
    record.update(confidence=confidence, lift=lift, leverage=metrics.pop("leverage", 0.01))
    record.update(metrics)
    return record


def rules_for(table, lift=2.0):
    """Rule records that make exactly ``table`` (all with the same lift > 1)."""
    return [rule(a, b, c, lift) for a, neighbors in table.items() for b, c in neighbors]


def write_table(path, table):
    with open(path, "w", encoding="utf-8") as f:
        for item, neighbors in table.items():
            f.write(json.dumps({"item": item, "neighbors": [list(n) for n in neighbors]}) + "\n")
    return path


def order_lines(history, header=True):
    """Canonical order lines for ``{customer: [items]}``, one order per customer."""
    out = [HEADER.rstrip("\n")] if header else []
    for n, (customer, items) in enumerate(history.items()):
        out += [f"O{n},{customer},2023-01-02,{item},1,1.00" for item in items]
    return "\n".join(out) + "\n"


def run(tmp_path, raw=b"", table=TABLE, args=(), runner="inline", input_paths=None):
    """Run the job directly; return ({customer: row}, counters of the step)."""
    neighbors = write_table(tmp_path / "neighbors.jsonl", table)
    rows, counters = run_job(
        MRCustomerRecommendations,
        raw,
        ["--neighbors", str(neighbors), *args],
        runner=runner,
        input_paths=input_paths,
    )
    by_customer = {}
    for row in rows:
        assert row["customer_id"] not in by_customer
        by_customer[row["customer_id"]] = row
    return by_customer, counters


def recommend(tmp_path, text, rules, **kwargs):
    path = tmp_path / "orders.csv"
    path.write_text(text, encoding="utf-8")
    kwargs.setdefault("schema", CANONICAL)
    return recommend_for_customers([str(path)], rules, conf_paths=[], **kwargs)


# -- the customer job: hand-computed cases ------------------------------------------------------


def test_empty_input_gives_no_rows_and_zero_lines(tmp_path):
    rows, counters = run(tmp_path, b"")
    assert rows == {}
    assert counters.get("crm.lines", {}).get("read", 0) == 0
    assert counters.get("crm.customers", {}).get("customers", 0) == 0


def test_empty_input_through_the_driver_gives_no_rows_and_zero_counts(tmp_path):
    rows, details = recommend(tmp_path, "", rules_for(TABLE))
    assert rows == []
    assert details["customers"] == details["with_recommendations"] == 0
    assert details["lines"] == {"read": 0, "accepted": 0, "rejected": 0, "rejected_by_reason": {}}
    assert details["neighbors_items"] == 4


def test_hand_computed_scores_because_lists_and_ranks(tmp_path):
    raw = order_lines({"C1": ["x", "y", "z"], "C2": ["w", "x", "y", "z"], "C3": ["y"]})
    rows, counters = run(tmp_path, raw)
    # C1: p = 0.5 (x) + 0.25 (y) + 0.125 (z); r = 0.75 (y); q = 0.25 (x) + 0.25 (z), a tie
    # of contributions broken by item; x is bought, so y's rule to x is left out
    assert rows["C1"] == {
        "customer_id": "C1",
        "history_items": 3,
        "recommendations": [
            {"item": "p", "score": 0.875, "because": ["x", "y", "z"]},
            {"item": "r", "score": 0.75, "because": ["y"]},
            {"item": "q", "score": 0.5, "because": ["x", "z"]},
        ],
    }
    # C2 adds w: four items contribute to p, the three largest are named
    assert rows["C2"]["recommendations"][0] == {
        "item": "p",
        "score": 0.9375,
        "because": ["x", "y", "z"],
    }
    assert rows["C2"]["history_items"] == 4
    # C3: r 0.75, then x 0.5, then p 0.25
    assert [(r["item"], r["score"]) for r in rows["C3"]["recommendations"]] == [
        ("r", 0.75),
        ("x", 0.5),
        ("p", 0.25),
    ]
    assert counters["crm.customers"] == {"customers": 3, "with_recommendations": 3}
    assert counters["crm.lines"] == {"read": 9, "accepted": 8, "rejected": 1}


def test_equal_scores_rank_by_item_id_and_top_n_cuts_after_the_tie_break(tmp_path):
    table = {"a": [("m", 0.5), ("k", 0.5), ("z", 0.25)], "b": [("k", 0.25), ("m", 0.25)]}
    raw = order_lines({"C": ["a", "b"]})
    rows, _ = run(tmp_path, raw, table)
    assert [(r["item"], r["score"]) for r in rows["C"]["recommendations"]] == [
        ("k", 0.75),
        ("m", 0.75),
        ("z", 0.25),
    ]
    rows, _ = run(tmp_path, raw, table, ["--top-n", "1"])
    assert rows["C"]["recommendations"] == [{"item": "k", "score": 0.75, "because": ["a", "b"]}]


def test_the_score_is_the_exactly_rounded_sum_of_the_confidences(tmp_path):
    table = {"a": [("t", 0.1)], "b": [("t", 0.2)], "c": [("t", 0.3)]}
    rows, _ = run(tmp_path, order_lines({"C": ["c", "a", "b"]}), table)
    assert rows["C"]["recommendations"] == [
        {"item": "t", "score": math.fsum([0.1, 0.2, 0.3]), "because": ["c", "b", "a"]}
    ]
    assert math.fsum([0.1, 0.2, 0.3]) == 0.6 != 0.1 + 0.2 + 0.3


def test_items_already_bought_are_never_recommended(tmp_path):
    raw = order_lines({"C1": ["x", "p", "q"], "C2": ["y", "r", "x", "p"]})
    rows, counters = run(tmp_path, raw)
    assert rows == {
        "C2": {
            "customer_id": "C2",
            "history_items": 4,
            "recommendations": [{"item": "q", "score": 0.25, "because": ["x"]}],
        }
    }
    # C1 bought everything x recommends: a customer, but no row
    assert counters["crm.customers"] == {"customers": 2, "with_recommendations": 1}


def test_a_customer_without_any_rule_gets_no_row_but_is_counted(tmp_path):
    rows, counters = run(tmp_path, order_lines({"C": ["nothing"], "D": ["x"]}))
    assert set(rows) == {"D"}
    assert counters["crm.customers"] == {"customers": 2, "with_recommendations": 1}


def test_duplicate_lines_and_quantities_change_nothing(tmp_path):
    raw = order_lines({"C1": ["x", "y", "z"], "C3": ["y"]})
    body = raw[len(HEADER) :]
    doubled = HEADER + body + body.replace(",1,1.00", ",4,2.50")
    assert run(tmp_path, doubled)[0] == run(tmp_path, raw)[0]


def test_bad_lines_are_counted_by_reason_and_read_is_accepted_plus_rejected(tmp_path):
    good = order_lines({"C1": ["x", "y", "z"]})
    bad = (
        "\n"
        "O9,,2023-01-03,x,1,1.00\n"  # no customer
        "O9,C1,2023-01-03,,1,1.00\n"  # no item
        "O9,C1,2023-02-30,r,1,1.00\n"
        "O9,C1,2023-01-03,r,-1,1.00\n"
        "O9,C1,2023-01-03,r,1\n" + HEADER
    )
    raw = good.encode() + bad.encode() + b"O9,C1,2023-01-03,\xff,1,1.00\n"
    rows, counters = run(tmp_path, raw)
    assert rows == run(tmp_path, good)[0]
    assert counters["crm.rejected"] == {
        "header": 2,
        "blank": 1,
        "missing_customer": 1,
        "missing_item": 1,
        "bad_timestamp": 1,
        "return": 1,
        "column_count": 1,
        "undecodable": 1,
    }
    lines = counters["crm.lines"]
    assert lines == {"read": 12, "accepted": 3, "rejected": 9}
    assert lines["read"] == lines["accepted"] + lines["rejected"]


def test_a_basket_export_with_an_empty_customer_is_rejected_as_missing_customer(tmp_path):
    raw = "basket,customer,item\nk1,C1,x\nk1,,y\nk2,C1,z\n"
    args = ["--input-format", "baskets", "--columns", "basket,customer,item"]
    args += ["--map", "order_id=basket", "--map", "customer_id=customer", "--map", "item_id=item"]
    rows, counters = run(tmp_path, raw, args=args)
    assert rows["C1"]["history_items"] == 2
    assert [r["item"] for r in rows["C1"]["recommendations"]] == ["p", "q"]
    assert counters["crm.rejected"] == {"header": 1, "missing_customer": 1}
    assert counters["crm.lines"] == {"read": 4, "accepted": 2, "rejected": 2}


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_a_customer_split_across_two_input_files_is_one_customer(tmp_path, runner):
    first, second = tmp_path / "part-1.csv", tmp_path / "part-2.csv"
    first.write_text(order_lines({"C1": ["x"], "C3": ["y"]}))
    second.write_text(order_lines({"C1": ["y", "z"]}))
    rows, counters = run(tmp_path, runner=runner, input_paths=[first, second])
    whole = run(tmp_path, order_lines({"C1": ["x", "y", "z"], "C3": ["y"]}))[0]
    assert rows == whole
    assert rows["C1"]["history_items"] == 3
    assert counters["crm.customers"] == {"customers": 2, "with_recommendations": 2}
    assert counters["crm.rejected"] == {"header": 2}


def test_unicode_and_comma_item_and_customer_ids_are_kept_as_written(tmp_path):
    table = {
        "bread, cake": [("crème brûlée", 0.5), ('say "hi"', 0.25)],
        "漢字": [("crème brûlée", 0.25)],
    }
    raw = HEADER + (
        '1,"Müller, Anna",2023-01-02,"bread, cake",1,1.00\n'
        '1,"Müller, Anna",2023-01-02,漢字,1,1.00\n'
        "2,José,2023-01-03,漢字,1,1.00\n"
    )
    rows, _ = run(tmp_path, raw, table)
    assert rows == {
        "Müller, Anna": {
            "customer_id": "Müller, Anna",
            "history_items": 2,
            "recommendations": [
                {"item": "crème brûlée", "score": 0.75, "because": ["bread, cake", "漢字"]},
                {"item": 'say "hi"', "score": 0.25, "because": ["bread, cake"]},
            ],
        },
        "José": {
            "customer_id": "José",
            "history_items": 1,
            "recommendations": [{"item": "crème brûlée", "score": 0.25, "because": ["漢字"]}],
        },
    }


def test_customers_over_the_history_cap_keep_their_first_items_and_are_counted(tmp_path):
    table = {"a": [("t", 0.5)], "b": [("t", 0.25)], "c": [("u", 0.5)], "d": [("u", 0.5)]}
    raw = order_lines({"C": ["d", "c", "b", "a"], "D": ["c"]})
    rows, counters = run(tmp_path, raw, table, ["--max-history-items", "2"])
    # C keeps a and b (code point order), so c and d do not count and u is not scored
    assert rows["C"] == {
        "customer_id": "C",
        "history_items": 2,
        "recommendations": [{"item": "t", "score": 0.75, "because": ["a", "b"]}],
    }
    assert counters["crm.customers"] == {"customers": 2, "with_recommendations": 2, "capped": 1}
    # split so that no mapper sees more than the cap: the reducer's union still is over it
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(order_lines({"C": ["d", "b"], "D": ["c"]}))
    second.write_text(order_lines({"C": ["c", "a"]}))
    split = run(
        tmp_path, table=table, args=["--max-history-items", "2"], input_paths=[first, second]
    )
    assert split[0] == rows
    assert split[1]["crm.customers"] == counters["crm.customers"]
    tiny = run(tmp_path, raw, table, ["--max-history-items", "1"])[0]
    assert tiny["C"]["recommendations"] == [{"item": "t", "score": 0.5, "because": ["a"]}]


def test_a_cap_reached_only_by_trimming_inside_one_mapper_is_still_counted(tmp_path):
    # 5 items > 2 * cap: the mapper trims to 2 on the way and says so; the reducer, which
    # sees exactly 2 items, still counts the customer as capped
    neighbors = write_table(tmp_path / "neighbors.jsonl", {"a": [("t", 0.5)]})
    job = MRCustomerRecommendations(
        args=["--neighbors", str(neighbors), "--max-history-items", "2"]
    )
    job.sandbox()
    job.mapper_init_parser()
    for item in ["e", "d", "c", "b", "a"]:
        assert job.mapper_gather_history(None, f"O1,C,2023-01-02,{item},1,1".encode()) is None
    assert list(job.mapper_final_emit_histories()) == [("C", [["a", "b"], True])]
    job.reducer_init_neighbors()
    rows = list(job.reducer_recommend_items("C", [[["a", "b"], True]]))
    assert rows == [
        (
            None,
            {
                "customer_id": "C",
                "history_items": 2,
                "recommendations": [{"item": "t", "score": 0.5, "because": ["a"]}],
            },
        )
    ]
    job.reducer_final_count_customers()
    assert b"reporter:counter:crm.customers,capped,1\n" in job.stderr.getvalue()


def test_early_emission_at_a_tiny_combine_max_changes_nothing(tmp_path):
    rng = random.Random(5)
    items = [f"i{k}" for k in range(12)]
    table = {
        a: [(b, 0.125 * rng.randint(1, 8)) for b in rng.sample(items, 4) if b != a] for a in items
    }
    history = {f"C{c}": rng.sample(items, rng.randint(1, 6)) for c in range(40)}
    raw = order_lines(history)
    assert run(tmp_path, raw, table, ["--combine-max", "1"]) == run(tmp_path, raw, table)


# -- the job refuses bad tables and options before any task --------------------------------------


def test_a_missing_neighbors_file_is_a_clear_error_before_the_run(tmp_path):
    job = MRCustomerRecommendations(args=["--no-conf", "--neighbors", str(tmp_path / "no.jsonl")])
    with pytest.raises(ValueError, match=r"neighbors file .*no\.jsonl.* cannot be read"):
        job.make_runner()


def test_no_neighbors_option_is_a_clear_error_before_the_run():
    job = MRCustomerRecommendations(args=["--no-conf"])
    with pytest.raises(ValueError, match="--neighbors FILE is required"):
        job.make_runner()


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ['{"item":"a","neighbors":[["b",0.5]]}', '{"item":"a","neighbors":[["b",0.5]]}'],
            "line 2: item 'a' already has a neighbor list",
        ),
        (['{"item":"a","neighbors":[["b",0.5],["b",0.25]]}'], "item 'a' lists 'b' twice"),
        (['{"item":"a","neighbors":[["a",0.5]]}'], "lists itself"),
        (['{"item":"a","neighbors":[["b",1.5]]}'], r"confidence=1.5 .* should be in \(0, 1\]"),
        (['{"item":"a","neighbors":[["b",0]]}'], r"confidence=0 "),
        (['{"item":"a","neighbors":[["b"]]}'], r"should be \[item, confidence\]"),
        (['{"item":"a"}'], "line 1 should be"),
        (["not json"], "line 1 is not JSON"),
    ],
)
def test_a_bad_neighbors_table_names_the_file_line_and_problem(tmp_path, lines, message):
    path = tmp_path / "neighbors.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        read_neighbors(str(path))
    job = MRCustomerRecommendations(args=["--no-conf", "--neighbors", str(path)])
    with pytest.raises(ValueError, match=message):
        job.make_runner()


@pytest.mark.parametrize(
    "option, value",
    [("--top-n", "0"), ("--max-history-items", "0"), ("--combine-max", "0")],
)
def test_bad_options_name_the_bad_value(option, value):
    with pytest.raises(ValueError, match=f"{option}={value} should be >= 1"):
        MRCustomerRecommendations(args=[option, value])


def test_a_schema_without_customers_or_items_is_refused_by_the_job():
    with pytest.raises(SchemaError, match="no customer_id column"):
        MRCustomerRecommendations(args=["--input-format", "baskets"])
    with pytest.raises(SchemaError, match="no item_id column"):
        MRCustomerRecommendations(args=["--input-format", "cdnow"])


# -- the driver --------------------------------------------------------------------------------


def test_the_driver_gives_the_job_rows_sorted_by_customer_with_details(tmp_path):
    raw = order_lines({"C3": ["y"], "C1": ["x", "y", "z"], "C9": ["nothing"]})
    rows, details = recommend(tmp_path, raw, rules_for(TABLE), top_n=2)
    assert [r["customer_id"] for r in rows] == ["C1", "C3"]
    assert rows[0]["recommendations"] == [
        {"item": "p", "score": 0.875, "because": ["x", "y", "z"]},
        {"item": "r", "score": 0.75, "because": ["y"]},
    ]
    assert details["customers"] == 3
    assert details["with_recommendations"] == 2
    assert details["capped"] == 0
    assert details["neighbors_items"] == 4
    assert details["lines"] == {
        "read": 6,
        "accepted": 5,
        "rejected": 1,
        "rejected_by_reason": {"header": 1},
    }
    assert details["seconds"] >= 0


def test_rules_with_lift_at_or_below_one_do_not_recommend(tmp_path):
    rules = [
        rule("x", "p", 0.5, 1.5),
        rule("x", "q", 0.9, 1.0),  # independent
        rule("x", "r", 0.9, 0.8),  # negative association
        {"kind": "item", "item": "x", "count": 3, "support": 0.5, "baskets": 6},
        {"kind": "pair", "items": ["p", "x"], "count": 2, "support": 0.3, "baskets": 6},
    ]
    rows, details = recommend(tmp_path, order_lines({"C": ["x"]}), rules)
    assert rows[0]["recommendations"] == [{"item": "p", "score": 0.5, "because": ["x"]}]
    assert details["neighbors_items"] == 1
    assert [(r["item"], r["recommended"]) for r in item_recommendations(rules)] == [("x", "p")]


def test_the_driver_reads_a_basket_export_with_a_customer_column(tmp_path):
    schema = build_schema(
        "baskets",
        columns="basket,customer,item",
        column_map=["order_id=basket", "customer_id=customer", "item_id=item"],
    )
    raw = "basket,customer,item\nk1,C1,x\nk2,C1,y\n"
    rows, details = recommend(tmp_path, raw, rules_for(TABLE), schema=schema)
    # p = 0.5 + 0.25 ties with r = 0.75: p first by item id
    assert [r["item"] for r in rows[0]["recommendations"]] == ["p", "r", "q"]
    assert details["lines"]["rejected_by_reason"] == {"header": 1}


@pytest.mark.parametrize("preset, missing", [("baskets", "customer_id"), ("cdnow", "item_id")])
def test_the_driver_refuses_a_schema_without_customers_or_items(tmp_path, preset, missing):
    columns = repr(list(PRESETS[preset].columns))
    with pytest.raises(ValueError, match=f"columns={columns}".replace("[", r"\[")) as error:
        recommend(tmp_path, "", [], schema=PRESETS[preset])
    assert "need a customer_id and an item_id column" in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_n": 0}, "top_n=0 should be an integer >= 1"),
        ({"top_n": True}, "top_n=True should be an integer >= 1"),
        ({"max_history_items": 0}, "max_history_items=0 should be an integer >= 1"),
    ],
)
def test_the_driver_names_a_bad_parameter(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        recommend(tmp_path, "", [], **kwargs)


def test_the_local_runner_gives_the_same_rows_as_inline(tmp_path):
    rng = random.Random(11)
    items = [f"item {k}" for k in range(15)]
    rules = []
    for a in items:
        for b in rng.sample(items, 5):
            if b != a:
                rules.append(rule(a, b, rng.choice([0.1, 0.2, 0.3, 0.7]), rng.uniform(0.5, 3)))
    history = {f"C{c:03d}": rng.sample(items, rng.randint(1, 5)) for c in range(60)}
    first, second = tmp_path / "one.csv", tmp_path / "two.csv"
    names = list(history)
    first.write_text(order_lines({c: history[c] for c in names[::2]}))
    second.write_text(order_lines({c: history[c] for c in names[1::2]}))
    paths = [str(first), str(second)]
    inline = recommend_for_customers(paths, rules, schema=CANONICAL, conf_paths=[], top_n=3)
    local = recommend_for_customers(
        paths, rules, schema=CANONICAL, conf_paths=[], top_n=3, runner="local"
    )
    assert inline[0] == local[0]
    assert len(inline[0]) > 30
    assert {k: v for k, v in inline[1].items() if k != "seconds"} == {
        k: v for k, v in local[1].items() if k != "seconds"
    }


# -- item to item ---------------------------------------------------------------------------


def test_item_recommendations_rank_by_score_then_confidence_then_item():
    rules = [
        rule("a", "z", 0.25, 2.0),
        rule("a", "y", 0.5, 2.0),  # same lift as z, higher confidence
        rule("a", "m", 0.5, 2.0),  # same lift and confidence as y: m before y
        rule("a", "b", 0.9, 3.0),
        rule("b", "a", 0.4, 3.0),
    ]
    got = item_recommendations(rules)
    assert [(r["item"], r["rank"], r["recommended"]) for r in got] == [
        ("a", 1, "b"),
        ("a", 2, "m"),
        ("a", 3, "y"),
        ("a", 4, "z"),
        ("b", 1, "a"),
    ]
    assert got[0] == {
        "item": "a",
        "rank": 1,
        "recommended": "b",
        "score": 3.0,
        "confidence": 0.9,
        "lift": 3.0,
        "support": 0.1,
        "count": 1,
    }


def test_item_recommendations_keep_top_n_per_item_whatever_the_rule_order():
    rules = [rule("a", f"b{k}", 0.1 * (k % 5 + 1), 1 + k / 10) for k in range(20)]
    expected = [f"b{k}" for k in (19, 18, 17)]
    for seed in range(5):
        random.Random(seed).shuffle(rules)
        got = item_recommendations(rules, top_n=3)
        assert [r["recommended"] for r in got] == expected
        assert [r["rank"] for r in got] == [1, 2, 3]


@pytest.mark.parametrize("rank_by", ["confidence", "leverage"])
def test_item_recommendations_rank_by_another_metric(rank_by):
    rules = [
        rule("a", "b", 0.9, 1.1, leverage=0.01),
        rule("a", "c", 0.3, 4.0, leverage=0.2),
    ]
    got = item_recommendations(rules, rank_by=rank_by)
    first = "b" if rank_by == "confidence" else "c"
    assert got[0]["recommended"] == first
    assert got[0]["score"] == rules[0 if first == "b" else 1][rank_by]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank_by": "x"}, r"rank_by='x' should be one of \('lift', 'confidence', 'leverage'\)"),
        ({"top_n": 0}, "top_n=0 should be an integer >= 1"),
        ({"top_n": 2.5}, "top_n=2.5 should be an integer >= 1"),
    ],
)
def test_item_recommendations_name_a_bad_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        item_recommendations([], **kwargs)


def test_item_recommendations_refuse_rules_that_are_not_pairwise_or_seen_twice():
    itemset_rule = {"antecedent": ["a", "b"], "consequent": ["c"], "confidence": 1, "lift": 2}
    with pytest.raises(ValueError, match="only pairwise rules"):
        item_recommendations([itemset_rule])
    with pytest.raises(ValueError, match="the rule 'a' -> 'b' appears twice"):
        item_recommendations([rule("a", "b", 0.5, 2.0), rule("a", "b", 0.5, 2.0)])
    with pytest.raises(ValueError, match="has lift=None, not a number"):
        item_recommendations([rule("a", "b", 0.5, None)])


def test_item_recommendations_of_no_rules_are_empty():
    assert item_recommendations([]) == []
    assert item_recommendations(iter([rule("a", "b", 0.5, 1.0)])) == []


def test_write_neighbors_writes_one_line_per_item_with_positive_rules(tmp_path):
    rules = [
        rule("x", "q", 0.25, 2.0),
        rule("x", "p", 0.5, 2.0),
        rule("x", "n", 0.25, 1.2),
        rule("y", "p", 0.9, 1.0),  # lift 1: not written
        rule("漢字", "x", 0.125, 1.5),
    ]
    path = tmp_path / "n.jsonl"
    assert write_neighbors(rules, path) == 2
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"item": "x", "neighbors": [["p", 0.5], ["n", 0.25], ["q", 0.25]]},
        {"item": "漢字", "neighbors": [["x", 0.125]]},
    ]
    assert read_neighbors(str(path))["x"] == [("p", 0.5), ("n", 0.25), ("q", 0.25)]
    assert write_neighbors(rules, path, min_lift=1.5) == 1
    with pytest.raises(ValueError, match="min_lift=-1 should be a finite number >= 0"):
        write_neighbors(rules, path, min_lift=-1)
    with pytest.raises(ValueError, match="the rule 'x' -> 'p' appears twice"):
        write_neighbors([*rules, rule("x", "p", 0.5, 2.0)], path)


# -- end to end: co-occurrence rules on a synthetic log ------------------------------------------


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "transactions.csv"
    truth = generate(str(path), customers=300, seed=7)
    with run_stage_job(
        MRItemCooccurrence,
        [str(path)],
        ["--min-support", "0.002", "--min-confidence", "0.05"],
        conf_paths=[],
    ) as run_:
        rows = list(run_.rows())
    return path, truth, rows


def reference_recommendations(path, rules, top_n):
    """Recompute the customer job's rows in plain Python from the log and the rules."""
    parse = make_basket_parser(CANONICAL)
    history = {}
    with open(path, "rb") as f:
        for raw in f:
            record = parse(raw.rstrip(b"\n"))
            if type(record) is not str:
                history.setdefault(record[2], set()).add(record[1])
    table = {}
    for r in rules:
        if r["kind"] == "rule" and r["lift"] > 1:
            table.setdefault(r["antecedent"], {})[r["consequent"]] = r["confidence"]
    rows = []
    for customer in sorted(history):
        h = history[customer]
        terms = {}
        for i in h:
            for j, c in table.get(i, {}).items():
                if j not in h:
                    terms.setdefault(j, []).append((c, i))
        ranked = sorted(
            ((math.fsum(c for c, _ in t), j) for j, t in terms.items()), key=lambda s: (-s[0], s[1])
        )[:top_n]
        if ranked:
            rows.append(
                {
                    "customer_id": customer,
                    "history_items": len(h),
                    "recommendations": [
                        {
                            "item": j,
                            "score": s,
                            "because": [
                                i for _, i in sorted(terms[j], key=lambda t: (-t[0], t[1]))[:3]
                            ],
                        }
                        for s, j in ranked
                    ],
                }
            )
    return rows, len(history)


def test_end_to_end_customer_recommendations_match_a_plain_python_reference(synthetic_log):
    path, truth, rules = synthetic_log
    rows, details = recommend_for_customers(
        [str(path)], rules, schema=CANONICAL, conf_paths=[], top_n=5
    )
    expected, customers = reference_recommendations(path, rules, 5)
    assert rows == expected
    assert details["customers"] == customers == truth["n_customers"]
    assert details["with_recommendations"] == len(rows) > 0.9 * customers
    lines = details["lines"]
    assert lines["read"] == truth["lines_total"]
    assert lines["accepted"] == truth["lines_accepted"]
    assert lines["rejected_by_reason"] == truth["rejects_by_reason"]
    for row in rows:
        assert 1 <= len(row["recommendations"]) <= 5


def test_end_to_end_each_planted_bundle_item_recommends_its_bundle_first(synthetic_log):
    _path, truth, rules = synthetic_log
    top = {r["item"]: r["recommended"] for r in item_recommendations(rules, top_n=1)}
    for bundle in truth["bundles"]:
        for item in bundle:
            assert top[item] in bundle, (item, bundle)
