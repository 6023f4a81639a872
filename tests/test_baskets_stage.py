"""crm-mr baskets and the baskets stage of crm-mr run: files, formulas, planted bundles."""

import csv
import json
from pathlib import Path

import pytest

from hdfs_io import LocalFileSystem, read_manifest
from models.cli import main
from models.data_stage import generate_data
from models.synthetic import truth_path

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"


def read_jsonl(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line) for line in part.read_text().splitlines() if line]
    return rows


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def manifest(path):
    return read_manifest(LocalFileSystem(), str(path))


@pytest.fixture(scope="module")
def built_in(tmp_path_factory):
    """The default built-in log (4,000 customers, seed 42) mined at confidence 0."""
    root = tmp_path_factory.mktemp("baskets")
    data = root / "data" / "transactions.csv"
    generate_data(str(data), {"seed": 42}, overwrite=False)
    code = main(
        [
            "baskets",
            str(data),
            "-o",
            str(root / "baskets"),
            "--recommendations",
            str(root / "rec"),
            "--min-confidence",
            "0",
            "-q",
            "--no-mrjob-conf",
        ]
    )
    assert code == 0
    return root


def _planted_rules(data):
    truth = json.loads(Path(truth_path(str(data))).read_text())
    planted = set()
    for bundle in truth["bundles"]:
        planted |= {(a, b) for a in bundle for b in bundle if a != b}
    return truth, planted


def test_planted_bundles_are_exactly_the_strongest_rules_by_lift(built_in):
    truth, planted = _planted_rules(built_in / "data" / "transactions.csv")
    rules = read_jsonl(built_in / "baskets")  # strongest first
    assert len(truth["bundles"]) == 8 and len(planted) == 28
    top = rules[: len(planted)]
    assert {(r["antecedent"], r["consequent"]) for r in top} == planted
    # a clear gap: the weakest planted rule is far stronger than the strongest other one
    assert min(r["lift"] for r in top) > 3 * rules[len(planted)]["lift"]
    assert [r["lift"] for r in rules] == sorted((r["lift"] for r in rules), reverse=True)


def test_planted_three_item_bundles_are_frequent_itemsets(built_in):
    truth, _ = _planted_rules(built_in / "data" / "transactions.csv")
    itemsets = [json.loads(x) for x in (built_in / "baskets" / "itemsets.jsonl").open()]
    triples = {tuple(s["items"]) for s in itemsets if len(s["items"]) == 3}
    for bundle in truth["bundles"]:
        if len(bundle) == 3:
            assert tuple(sorted(bundle)) in triples


def test_every_job_accounts_for_every_planted_bad_line(built_in):
    truth = json.loads(Path(truth_path(str(built_in / "data" / "transactions.csv"))).read_text())
    for directory in ("baskets", "rec"):
        lines = manifest(built_in / directory)["lines"]
        assert lines["read"] == truth["lines_total"]
        assert lines["rejected_by_reason"] == truth["rejects_by_reason"]
        assert lines["read"] == lines["accepted"] + lines["rejected"]


def test_rule_files_agree_with_each_other_and_the_formulas(built_in):
    out = built_in / "baskets"
    rules = read_jsonl(out)
    details = manifest(out)["details"]
    n = details["baskets"]
    items = {r["item"]: int(r["count"]) for r in read_csv(out / "items.csv")}
    pairs = {(r["item_a"], r["item_b"]): int(r["count"]) for r in read_csv(out / "pairs.csv")}
    assert len(items) == details["items_frequent"] and len(pairs) == details["pairs_frequent"]
    assert len(rules) == 2 * len(pairs) == details["rules"]  # confidence 0: both directions
    flat = read_csv(out / "rules.csv")
    assert [(r["antecedent"], r["consequent"]) for r in flat] == [
        (r["antecedent"], r["consequent"]) for r in rules
    ]
    for row, rule in zip(flat, rules, strict=True):
        a, b = rule["antecedent"], rule["consequent"]
        n_ab = pairs[tuple(sorted((a, b)))]
        assert int(row["count"]) == rule["count"] == n_ab
        assert (rule["antecedent_count"], rule["consequent_count"]) == (items[a], items[b])
        assert rule["support"] == pytest.approx(n_ab / n, rel=1e-15)
        assert rule["confidence"] == pytest.approx(n_ab / items[a], rel=1e-15)
        assert rule["lift"] == pytest.approx(n_ab * n / (items[a] * items[b]), rel=1e-15)
        assert float(row["lift"]) == rule["lift"] and float(row["conviction"]) == rule["conviction"]
    # the itemset rules with one item on the left are the pairwise rules again
    set_rules = [json.loads(x) for x in (out / "itemset_rules.jsonl").open()]
    single = {
        (r["antecedent"][0], r["consequent"][0]): r for r in set_rules if len(r["antecedent"]) == 1
    }
    assert set(single) == {(r["antecedent"], r["consequent"]) for r in rules}
    for rule in rules:
        other = single[(rule["antecedent"], rule["consequent"])]
        for name in ("count", "support", "confidence", "lift", "leverage", "conviction"):
            assert other[name] == pytest.approx(rule[name], rel=1e-12), name
    assert details["itemsets"]["by_size"]["2"] == len(pairs)


def test_customers_are_offered_the_missing_half_of_a_planted_pair(built_in):
    data = built_in / "data" / "transactions.csv"
    truth, _ = _planted_rules(data)
    a, b = next(bundle for bundle in truth["bundles"] if len(bundle) == 2)
    bought = {}
    for row in csv.reader(data.open(encoding="utf-8", errors="replace")):
        if len(row) == 6 and row[1]:
            bought.setdefault(row[1], set()).add(row[3])
    recs = {r["customer_id"]: r for r in read_jsonl(built_in / "rec")}
    to_item = {
        (r["item"], r["recommended"]): float(r["confidence"])
        for r in read_csv(built_in / "rec" / "item_to_item.csv")
    }
    confidence = to_item[(a, b)]
    assert confidence > 0.3
    checked = 0
    for customer, items in bought.items():
        if a in items and b not in items:
            offered = recs[customer]["recommendations"]
            assert all(r["item"] not in items for r in offered)
            scores = {r["item"]: r for r in offered}
            if b in scores:
                assert scores[b]["score"] >= confidence - 1e-12
                assert a in scores[b]["because"]
            else:  # pushed out of the top N by stronger ones only
                assert len(offered) == 10 and offered[-1]["score"] >= confidence
            checked += 1
    assert checked > 50
    flat = read_csv(built_in / "rec" / "customers.csv")
    assert len(flat) == sum(len(r["recommendations"]) for r in recs.values())
    assert manifest(built_in / "rec")["rows_written"] == len(recs)


def test_supermarket_through_the_cli_gives_the_reference_counts(tmp_path, supermarket_path):
    out, rec = tmp_path / "b", tmp_path / "r"
    args = ["baskets", str(supermarket_path), "-o", str(out), "--recommendations", str(rec)]
    code = main([*args, "--input-format", "baskets", "--min-support", "0.22", "-q"])
    assert code == 0
    details = manifest(out)["details"]
    assert details["baskets"] == 4627
    assert sum(details["itemsets"]["by_size"].values()) == 404
    assert details["itemsets"]["rules"] == 857
    assert len(read_csv(out / "itemset_rules.csv")) == 857
    # no customer column: item-to-item only, and the manifest says why
    rec_manifest = manifest(rec)
    assert rec_manifest["rows_written"] == 0 and "customer" in rec_manifest["details"]["skipped"]
    by_item = read_csv(rec / "item_to_item.csv")
    assert by_item and all(float(r["lift"]) > 1 for r in by_item)
    assert all(int(r["rank"]) <= 10 for r in by_item)


def test_local_runner_publishes_the_same_files_as_inline(tmp_path):
    data = tmp_path / "t.csv"
    generate_data(str(data), {"seed": 3, "customers": 300}, overwrite=False)
    outputs = {}
    for runner in ("inline", "local"):
        out, rec = tmp_path / runner / "b", tmp_path / runner / "r"
        args = ["baskets", str(data), "-o", str(out), "--recommendations", str(rec), "-r", runner]
        assert main([*args, "--min-support", "0.005", "-q", "--no-mrjob-conf"]) == 0
        outputs[runner] = {
            f"{d.name}/{f.name}": f.read_bytes()
            for d in (out, rec)
            for f in sorted(d.iterdir())
            if f.name != "_manifest.json"
        }
    assert outputs["inline"] == outputs["local"]
    assert len(outputs["inline"]["b/part-00000"]) > 0


def test_bad_inputs_and_thresholds_exit_2_naming_them(tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text(HEADER + "O1,C1,2024-01-01,A,1,1.0\n")
    out = str(tmp_path / "o")
    for extra, message in (
        (["--min-support", "1.5"], "min_support='1.5'"),
        (["--min-confidence", "x"], "min_confidence='x'"),
        (["--top-n", "0"], "top_n=0"),
        (["--max-basket-items", "1"], "max_basket_items=1"),
        (["--max-itemset-size", "-1"], "max_itemset_size=-1"),
    ):
        assert main(["baskets", str(data), "-o", out, "-q", *extra]) == 2
        assert message in capsys.readouterr().err
        assert not Path(out).exists()
    no_items = tmp_path / "no_items.csv"
    no_items.write_text("order_id,customer_id,timestamp,amount\nO1,C1,2024-01-01,3\n")
    assert main(["baskets", str(no_items), "-o", out, "-q"]) == 2
    assert "item_id" in capsys.readouterr().err


def test_an_existing_result_is_refused_and_kept(tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text(HEADER + "O1,C1,2024-01-01,A,1,1.0\nO1,C1,2024-01-01,B,1,1.0\n")
    out, rec = tmp_path / "b", tmp_path / "r"
    args = ["baskets", str(data), "-o", str(out), "--recommendations", str(rec), "-q"]
    assert main(args) == 0
    before = (out / "rules.csv").read_bytes(), (rec / "item_to_item.csv").read_bytes()
    capsys.readouterr()
    assert main([*args, "--min-support", "0.5"]) == 2
    assert f"{str(out)!r}: it exists; pass --overwrite" in capsys.readouterr().err
    assert ((out / "rules.csv").read_bytes(), (rec / "item_to_item.csv").read_bytes()) == before
    rec.joinpath("_SUCCESS").unlink()  # a result without its marker is still a result
    assert main([*args, "--overwrite"]) == 0
    assert (rec / "_SUCCESS").exists()


def test_empty_and_one_item_baskets_publish_empty_tables(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(HEADER + "O1,C1,2024-01-01,A,1,1.0\nO2,C2,2024-01-01,B,2,1.0\n")
    out, rec = tmp_path / "b", tmp_path / "r"
    assert main(["baskets", str(data), "-o", str(out), "--recommendations", str(rec), "-q"]) == 0
    assert read_jsonl(out) == [] and read_jsonl(rec) == []
    details = manifest(out)["details"]
    assert (details["baskets"], details["one_item_baskets"], details["pairs_frequent"]) == (2, 2, 0)
    assert read_csv(out / "rules.csv") == []
    assert (out / "rules.csv").read_text().startswith("antecedent,consequent,count,")


def test_pipeline_records_the_basket_stages_as_skipped_without_an_item_column(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text("order_id,customer_id,timestamp,amount\nO1,C1,2024-01-01,3\n")
    root = tmp_path / "out"
    assert main(["run", "-i", str(data), "-o", str(root), "-q", "--no-mrjob-conf"]) == 0
    record = json.loads((root / "_pipeline.json").read_text())
    skipped = {s["stage"]: s.get("skipped") for s in record["stages"]}
    assert "item_id" in skipped["baskets"] and "item_id" in skipped["recommendations"]
    assert (root / "rfm" / "_SUCCESS").exists() and not (root / "baskets").exists()


def test_lines_without_items_are_counted_and_nothing_is_mined(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text(HEADER + "O1,C1,2024-01-01,,1,1.0\nO1,C1,2024-01-01,,2,1.0\n")
    out, rec = tmp_path / "b", tmp_path / "r"
    assert main(["baskets", str(data), "-o", str(out), "--recommendations", str(rec), "-q"]) == 0
    lines = manifest(out)["lines"]
    assert lines["rejected_by_reason"] == {"header": 1, "missing_item": 2}
    assert manifest(out)["details"]["itemsets"]["by_size"] == {}
    assert "no rule" in manifest(rec)["details"]["skipped"]


def test_a_basket_over_the_cap_is_left_out_by_every_job_and_counted(tmp_path):
    rows = ["O1,C1,2024-01-01,A,1,1.0", "O1,C1,2024-01-01,B,1,1.0"]
    rows += ["O2,C2,2024-01-01,A,1,1.0", "O2,C2,2024-01-01,B,1,1.0"]
    rows += [f"O3,C3,2024-01-01,{item},1,1.0" for item in "ABCD"]
    data = tmp_path / "in.csv"
    data.write_text(HEADER + "\n".join(rows) + "\n")
    out = tmp_path / "b"
    args = ["baskets", str(data), "-o", str(out), "--max-basket-items", "3", "-q"]
    assert main([*args, "--min-support", "0.5"]) == 0  # the stage checks both jobs agree
    details = manifest(out)["details"]
    assert (details["baskets"], details["capped_baskets"]) == (2, 1)
    assert details["itemsets"]["by_size"] == {"1": 2, "2": 1}
    assert {r["item"]: int(r["count"]) for r in read_csv(out / "items.csv")} == {"A": 2, "B": 2}
