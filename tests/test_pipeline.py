"""crm-mr end to end: pipeline on built-in data, import, mappings, refusals, shell driver."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from hdfs_io import LocalFileSystem, list_leftovers, read_manifest
from models.cli import main
from models.synthetic import customers_truth_path, truth_path
from tests.conftest import REPO


def read_jsonl(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line) for line in part.read_text().splitlines() if line]
    return rows


# three top items keep the forecasts stage to five series (each takes seconds to fit)
FIXTURE_ARGS = ["--customers", "300", "--seed", "7", "--sales-top-n", "3", "--no-mrjob-conf"]


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", "-q", "-o", str(root), *FIXTURE_ARGS]) == 0
    return root


PUBLISHED = (
    "rfm",
    "rfm_segments",
    "baskets",
    "recommendations",
    "segments",
    "sales",
    "forecasts",
    "churn",
    "clv",
)


def test_pipeline_publishes_every_stage_with_markers_and_manifests(pipeline_root):
    for stage in PUBLISHED:
        assert (pipeline_root / stage / "_SUCCESS").exists()
        assert (pipeline_root / stage / "part-00000").exists()
        assert read_manifest(LocalFileSystem(), str(pipeline_root / stage))["stage"] == stage
    assert (pipeline_root / "data" / "transactions.csv").exists()
    record = json.loads((pipeline_root / "_pipeline.json").read_text())
    assert record["status"] == "completed" and record["resumed_stages"] == []
    assert [s["stage"] for s in record["stages"]] == ["data", *PUBLISHED]
    assert {s["status"] for s in record["stages"]} == {"completed"}
    rfm_lines = record["stages"][1]["lines"]
    assert record["stages"][6]["lines"] == rfm_lines  # the sales job read every line too
    assert record["stages"][3]["lines"] == record["stages"][4]["lines"] == rfm_lines
    assert record["stages"][4]["rows_written"] > 0
    for name in ("customers.csv", "segment_summary.csv", "segment_summary.json"):
        assert (pipeline_root / "rfm_segments" / name).stat().st_size > 0


def test_pipeline_accounts_for_every_planted_bad_line(pipeline_root):
    data = pipeline_root / "data" / "transactions.csv"
    truth = json.loads(Path(truth_path(str(data))).read_text())
    lines = read_manifest(LocalFileSystem(), str(pipeline_root / "rfm"))["lines"]
    assert lines["read"] == truth["lines_total"] == len(data.read_bytes().splitlines())
    assert lines["accepted"] == truth["lines_accepted"]
    assert lines["rejected_by_reason"] == truth["rejects_by_reason"]
    assert lines["read"] == lines["accepted"] + sum(lines["rejected_by_reason"].values())


def test_pipeline_rfm_recovers_the_planted_customers_orders_and_revenue(pipeline_root):
    data = str(pipeline_root / "data" / "transactions.csv")
    truth = json.loads(Path(truth_path(data)).read_text())
    planted = {}
    for line in Path(customers_truth_path(data)).read_text().splitlines():
        c = json.loads(line)
        planted[c["customer_id"]] = c["orders"]
    rows = read_jsonl(pipeline_root / "rfm")
    assert {r["customer_id"]: r["orders"] for r in rows} == planted
    revenue = sum(Decimal(repr(r["total_value"])) for r in rows)
    assert revenue == Decimal(truth["revenue"])
    assert sorted(r["customer_id"] for r in rows) == sorted(planted)  # each once


def test_pipeline_segments_every_customer_once(pipeline_root):
    scored = read_jsonl(pipeline_root / "rfm_segments")
    summary = json.loads((pipeline_root / "rfm_segments" / "segment_summary.json").read_text())
    assert len(scored) == 300
    assert sum(s["customers"] for s in summary) == 300
    assert all(1 <= r["r_score"] <= 5 and r["segment"] for r in scored)


def test_pipeline_kmeans_segments_cover_every_customer_once(pipeline_root):
    rows = read_jsonl(pipeline_root / "segments")
    ids = [r["customer_id"] for r in rows]
    assert len(set(ids)) == len(ids) == 300
    for part in sorted((pipeline_root / "segments").glob("part-*")):
        in_part = [json.loads(line)["customer_id"] for line in part.read_text().splitlines()]
        assert in_part == sorted(in_part), part.name
    profile = json.loads((pipeline_root / "segments" / "segments.json").read_text())
    assert sum(p["customers"] for p in profile) == 300
    names = [p["name"] for p in profile]
    assert len(set(names)) == len(names)
    assert {r["segment_name"] for r in rows} <= set(names)
    manifest = read_manifest(LocalFileSystem(), str(pipeline_root / "segments"))
    assert manifest["lines"]["read"] == manifest["lines"]["accepted"] == 300
    assert manifest["details"]["chosen_k"] == len(profile)
    overlap = (pipeline_root / "segments" / "overlap.csv").read_text().splitlines()
    customers = [int(line.split(",")[3]) for line in overlap[1:]]
    assert sum(customers) == 300  # every customer in exactly one (segment, RFM segment)


def test_pipeline_forecasts_every_sales_series_over_the_horizon(pipeline_root):
    sales = read_manifest(LocalFileSystem(), str(pipeline_root / "sales"))["details"]
    rows = read_jsonl(pipeline_root / "forecasts")
    manifest = read_manifest(LocalFileSystem(), str(pipeline_root / "forecasts"))
    failed = manifest["details"]["series_failed"]
    forecast = sorted({r["series"] for r in rows})
    assert forecast == sorted(set(sales["series"]) - set(failed))
    assert "total" in forecast
    assert len(rows) == 8 * len(forecast)  # the weekly default horizon
    assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in rows)
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"]
    # the generated log starts on a Sunday (2023-01-01) and ends on a Monday: both edge
    # weeks cover one day and are not fitted
    reasons = sorted(d["reason"] for d in manifest["details"]["dropped_periods"])
    assert reasons == ["partial_first_week", "partial_last_week"]
    assert lines["read"] == len(sales["series"]) * sales["periods"]
    backtest = [
        json.loads(line) for line in (pipeline_root / "forecasts" / "backtest.jsonl").open()
    ]
    assert {b["series"] for b in backtest} <= set(sales["series"])


def test_pipeline_churn_scores_every_current_customer_once(pipeline_root):
    scores = read_jsonl(pipeline_root / "churn")
    rfm = read_jsonl(pipeline_root / "rfm")
    assert sorted(r["customer_id"] for r in scores) == [r["customer_id"] for r in rfm]
    assert all(0.0 <= r["churn_probability"] <= 1.0 for r in scores)
    manifest = read_manifest(LocalFileSystem(), str(pipeline_root / "churn"))
    details = manifest["details"]
    as_of = max(r["last_purchase"][:10] for r in rfm)
    horizon = details["horizon_days"]
    assert horizon == 90
    assert details["cutoff"] == str(date.fromisoformat(as_of) - timedelta(days=horizon))
    metrics = json.loads((pipeline_root / "churn" / "metrics.json").read_text())
    assert 0.5 < metrics["metrics"]["roc_auc"] <= 1.0
    assert (pipeline_root / "churn" / "model.skops").stat().st_size > 0
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"]


def test_pipeline_as_of_ends_the_sales_series_and_the_forecasts_data_there(tmp_path):
    as_of = "2024-10-16"  # a Wednesday, 75 days before the generated log ends
    root = tmp_path / "out"
    assert main(["run", "-q", "-o", str(root), *FIXTURE_ARGS, "--as-of", as_of]) == 0
    fs = LocalFileSystem()
    rfm = read_manifest(fs, str(root / "rfm"))
    sales = read_manifest(fs, str(root / "sales"))
    after = rfm["lines"]["rejected_by_reason"]["after_as_of"]
    assert after > 0
    assert sales["lines"]["rejected_by_reason"]["after_as_of"] == after
    assert sales["lines"]["read"] == rfm["lines"]["read"]
    assert sales["parameters"]["as_of"] == as_of
    assert sales["details"]["last_period"] == "2024-10-14"  # the Monday of as_of's week
    forecasts = read_manifest(fs, str(root / "forecasts"))
    assert forecasts["parameters"]["data_span"][1] == as_of  # not the last purchase before it
    last = [d for d in forecasts["details"]["dropped_periods"] if d["period"] == "2024-10-14"]
    assert [(d["reason"], d["days_covered"]) for d in last] == [("partial_last_week", 3)]
    assert forecasts["details"]["last_period"] == "2024-10-07"  # the last whole week
    churn = read_manifest(fs, str(root / "churn"))
    assert churn["details"]["scored_as_of"] == as_of


def _published_files(root, stages):
    """{(stage, file): content} of the published results, without the times they hold:
    manifests, the model file (a zip with dates; the scores it gives are in the part
    files), and the ``seconds`` and ``timings`` fields and columns."""
    files = {}
    for stage in stages:
        for path in sorted((root / stage).iterdir()):
            if path.name in ("_manifest.json", "_SUCCESS", "model.skops"):
                continue
            content = path.read_bytes()
            if path.suffix == ".jsonl":
                content = [json.loads(line) for line in content.splitlines()]
                for row in content:
                    row.pop("seconds", None)
            elif path.name == "metrics.json":
                content = json.loads(content)
                assert content.pop("timings")
            elif path.name == "k_selection.csv":
                content = pd.read_csv(path).drop(columns="seconds").to_dict("list")
            files[(stage, path.name)] = content
    return files


def test_resume_after_a_failed_stage_keeps_the_completed_stages_and_ends_identical(
    pipeline_root, tmp_path, monkeypatch
):
    import models.forecast_stage

    root = tmp_path / "out"
    args = ["run", "-q", "-o", str(root), *FIXTURE_ARGS]

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash of the forecasts stage")

    with monkeypatch.context() as patch:
        patch.setattr(models.forecast_stage, "run_forecast_stage", crash)
        assert main(args) == 1  # a runtime failure, reported in one line
    record = json.loads((root / "_pipeline.json").read_text())
    assert record["status"] == "failed" and record["failed_stage"] == "forecasts"
    assert "simulated crash" in record["error"]
    assert [s["stage"] for s in record["stages"]][-1] == "sales"
    assert not (root / "forecasts").exists() and not (root / "churn").exists()
    report = (root / "report.html").read_text()  # the failed run's report says why
    assert "the run stopped at the forecasts stage (failed)" in report
    assert "simulated crash of the forecasts stage" in report
    kept = ("rfm", "rfm_segments", "baskets", "recommendations", "segments", "sales")
    stamps = {stage: (root / stage / "_SUCCESS").stat().st_mtime_ns for stage in kept}

    # a rerun without --resume refuses to replace the completed stages
    assert main(args) == 2
    assert main(args + ["--resume"]) == 0
    record = json.loads((root / "_pipeline.json").read_text())
    assert record["status"] == "completed"
    assert "the run stopped" not in (root / "report.html").read_text()
    assert record["resumed_stages"] == ["data", *kept]
    assert [s["stage"] for s in record["stages"]] == ["data", *PUBLISHED]
    assert all(s.get("resumed") for s in record["stages"][:7])
    assert not any(s.get("resumed") for s in record["stages"][7:])
    assert {stage: (root / stage / "_SUCCESS").stat().st_mtime_ns for stage in kept} == stamps
    # the same results as one uninterrupted run with the same parameters
    assert _published_files(root, PUBLISHED) == _published_files(pipeline_root, PUBLISHED)


def test_resume_with_other_parameters_is_refused_naming_them(tmp_path, capsys):
    root = tmp_path / "out"
    args = ["run", "-q", "-o", str(root), "--customers", "40", "--sales-top-n", "0"]
    assert main(args + ["--no-mrjob-conf"]) == 0
    args.append("--no-mrjob-conf")
    record_before = (root / "_pipeline.json").read_bytes()
    assert main(args + ["--resume", "--horizon", "4"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "forecasts" in err and "'horizon': 4" in err
    assert (root / "_pipeline.json").read_bytes() == record_before
    # a resumed run of a completed pipeline keeps everything and runs nothing again
    stamp = (root / "sales" / "_SUCCESS").stat().st_mtime_ns
    assert main(args + ["--resume"]) == 0
    assert (root / "sales" / "_SUCCESS").stat().st_mtime_ns == stamp


HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
TWO_ORDERS = "O1,C1,2024-01-02 10:00:00,I1,1,10.00\nO2,C2,2024-01-05 11:00:00,I2,2,5.00\n"


@pytest.mark.parametrize(
    "content, extra, reason",
    [
        ("", [], "lines read=0"),
        (HEADER, [], "'header': 1"),
        (HEADER + "O1,,2024-01-02,I1,1,10\nnot a line\n", [], "missing_customer"),
        (HEADER + TWO_ORDERS, ["--as-of", "2023-12-31"], "'after_as_of': 2"),
    ],
    ids=["empty", "header-only", "all-bad", "as-of-before-all-data"],
)
def test_a_run_with_no_accepted_customer_records_the_customer_stages_as_skipped(
    tmp_path, capsys, content, extra, reason
):
    data = tmp_path / "in.csv"
    data.write_text(content)
    root = tmp_path / "out"
    args = ["run", "-i", str(data), "-o", str(root), "--no-mrjob-conf", "--sales-top-n", "0"]
    assert main([*args, *extra]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "Traceback" not in err and "[segments] skipped: no accepted customer" in err
    record = json.loads((root / "_pipeline.json").read_text())
    assert record["status"] == "completed"
    status = {s["stage"]: s["status"] for s in record["stages"]}
    assert status["segments"] == status["churn"] == status["clv"] == "skipped"
    assert status["rfm"] == "completed" and read_jsonl(root / "rfm") == []
    skipped = [s for s in record["stages"] if s["status"] == "skipped"]
    assert all(s["skipped"].startswith("no accepted customer") for s in skipped)
    assert reason in skipped[0]["skipped"]


def test_baskets_as_of_leaves_out_the_later_lines(tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text(HEADER + TWO_ORDERS + "O3,C1,2024-03-01 10:00:00,I1,1,10.00\n")
    out, rec = tmp_path / "b", tmp_path / "r"
    args = ["baskets", str(data), "-o", str(out), "--recommendations", str(rec), "-q"]
    assert main([*args, "--as-of", "2024-02-01", "--no-itemsets", "--no-mrjob-conf"]) == 0
    manifest = read_manifest(LocalFileSystem(), str(out))
    assert manifest["lines"]["rejected_by_reason"] == {"after_as_of": 1, "header": 1}
    assert manifest["parameters"]["as_of"] == "2024-02-01"
    assert read_manifest(LocalFileSystem(), str(rec))["lines"] == manifest["lines"]


def test_resume_refuses_an_input_edited_in_place_with_the_same_size(tmp_path):
    from models.pipeline import ResumeError, _check_same_run, _input_sizes

    data = tmp_path / "in.csv"
    data.write_text(HEADER + TWO_ORDERS)
    before = {"parameters": {}, "inputs": _input_sizes([str(data)])}
    _check_same_run(before, {}, _input_sizes([str(data)]))  # unchanged: accepted
    stat = data.stat()
    data.write_text(HEADER + TWO_ORDERS.replace("10.00", "90.00"))
    assert data.stat().st_size == stat.st_size
    with pytest.raises(ResumeError, match=f"input file://{data} changed since the previous"):
        _check_same_run(before, {}, _input_sizes([str(data)]))
    # even with the modification time put back, the first and last 64 KiB differ
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ResumeError, match="same size"):
        _check_same_run(before, {}, _input_sizes([str(data)]))


def test_resume_refuses_a_file_added_to_an_input_directory(tmp_path):
    from models.pipeline import ResumeError, _check_same_run, _input_sizes

    directory = tmp_path / "orders"
    directory.mkdir()
    (directory / "a.csv").write_text(HEADER + TWO_ORDERS)
    before = {"parameters": {}, "inputs": _input_sizes([str(directory)])}
    (directory / "b.csv").write_text("")
    with pytest.raises(ResumeError, match="orders changed since the previous run"):
        _check_same_run(before, {}, _input_sizes([str(directory)]))


def test_forecast_command_on_a_published_sales_output(pipeline_root, tmp_path, capsys):
    out = tmp_path / "f"
    sales = str(pipeline_root / "sales")
    assert main(["forecast", sales, "-o", str(out), "--horizon", "0", "-q"]) == 2
    assert "horizon=0" in capsys.readouterr().err and not out.exists()
    args = ["forecast", sales, "-o", str(out), "--horizon", "3", "--backtest", "0", "-q"]
    assert main(args + ["--value", "orders", "--processes", "1"]) == 0
    rows = read_jsonl(out)
    series = read_manifest(LocalFileSystem(), sales)["details"]["series"]
    assert len(rows) == 3 * len(series)
    manifest = read_manifest(LocalFileSystem(), str(out))
    assert manifest["details"]["value"] == "orders"
    assert manifest["details"]["dropped_periods"] == []  # no --data-span given
    assert not (out / "backtest.csv").read_text().strip().splitlines()[1:]  # --backtest 0


def test_churn_command_scores_the_customers_of_a_log(pipeline_root, tmp_path):
    out = tmp_path / "c"
    data = str(pipeline_root / "data" / "transactions.csv")
    args = ["churn", data, "-o", str(out), "--horizon-days", "60", "--seed", "3"]
    assert main(args + ["-q", "--no-mrjob-conf"]) == 0
    manifest = read_manifest(LocalFileSystem(), str(out))
    assert manifest["details"]["horizon_days"] == 60
    assert manifest["parameters"]["seed"] == 3
    assert len(read_jsonl(out)) == 300


def test_segments_command_refuses_a_bad_k_before_running_a_job(pipeline_root, tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["segments", str(pipeline_root / "rfm"), "-o", str(out), "--k", "0", "-q"])
    assert code == 2
    assert "k='0'" in capsys.readouterr().err
    assert not out.exists()


def test_segments_command_with_one_k_on_plain_rfm_rows(pipeline_root, tmp_path):
    out = tmp_path / "s"
    args = ["segments", str(pipeline_root / "rfm"), "-o", str(out), "--k", "3", "-q"]
    assert main(args + ["--no-mrjob-conf", "--features", "recency,frequency,monetary,tenure"]) == 0
    selection = (out / "k_selection.csv").read_text().splitlines()
    assert len(selection) == 2 and selection[1].startswith("3,")
    assert not (out / "overlap.csv").exists()  # plain RFM rows carry no RFM segment
    model = json.loads((out / "model.json").read_text())
    assert [f["name"] for f in model["features"]] == ["recency", "frequency", "monetary", "tenure"]
    assert len(model["centroids"]) == 3 and len(model["names"]) == 3


def test_pipeline_refuses_to_overwrite_and_changes_nothing(pipeline_root, capsys):
    part = pipeline_root / "rfm" / "part-00000"
    before = (part.stat().st_mtime_ns, part.read_bytes())
    code = main(["run", "-q", "-o", str(pipeline_root), "--customers", "50", "--no-mrjob-conf"])
    assert code == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (part.stat().st_mtime_ns, part.read_bytes()) == before


def test_pipeline_overwrite_replaces_results_without_leftovers(tmp_path):
    root = tmp_path / "out"
    args = ["run", "-q", "-o", str(root), "--no-mrjob-conf", "--sales-top-n", "0"]
    assert main(args + ["--customers", "40"]) == 0
    assert main(args + ["--customers", "60", "--overwrite"]) == 0
    assert len(read_jsonl(root / "rfm")) == 60
    fs = LocalFileSystem()
    for stage in PUBLISHED:
        assert list_leftovers(fs, str(root / stage)) == []
    assert sorted(p.name for p in root.iterdir()) == [
        "_pipeline.json",
        "baskets",
        "churn",
        "clv",
        "data",
        "forecasts",
        "recommendations",
        "report.html",
        "rfm",
        "rfm_segments",
        "sales",
        "segments",
    ]
    assert '<th>customers</th><td class="n">60</td>' in (root / "report.html").read_text()


def test_import_cdnow_gives_the_same_rfm_as_reading_the_raw_log(tmp_path, cdnow_path):
    canonical = tmp_path / "cdnow.csv"
    assert main(["import", "-q", "--format", "cdnow", str(cdnow_path), str(canonical)]) == 0
    manifest = json.loads((tmp_path / "cdnow.csv.manifest.json").read_text())
    assert manifest["lines"] == {
        "read": 69_660,
        "accepted": 69_659,
        "rejected": 1,
        "rejected_by_reason": {"header": 1},
    }
    assert canonical.read_text().splitlines()[1] == "L000000002,00001,1997-01-01,,1,,11.77"
    common = ["-q", "--no-mrjob-conf", "--as-of", "1998-06-30"]
    assert main(["rfm", str(canonical), "-o", str(tmp_path / "a"), *common]) == 0
    raw = ["rfm", str(cdnow_path), "--input-format", "cdnow", "-o", str(tmp_path / "b")]
    assert main(raw + common) == 0
    lines = {
        name: sorted(
            line for p in (tmp_path / name).glob("part-*") for line in p.read_bytes().splitlines()
        )
        for name in ("a", "b")
    }
    assert lines["a"] == lines["b"] and len(lines["a"]) == 23_570  # parts differ by split


def test_a_real_export_with_other_column_names_loads_through_a_mapping(tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(
        "when;client;basket;total\n"
        "2024-03-01 09:30:00;K1;B1;10.00\n"
        "2024-03-01 09:30:00;K1;B1;2.50\n"
        "2024-03-08 17:00:00;K1;B2;7.25\n"
        "2024-03-05 12:00:00;K2;B3;-4.00\n"
    )
    out = tmp_path / "rfm"
    code = main(
        ["rfm", str(export), "-o", str(out), "-q", "--no-mrjob-conf", "--delimiter", ";"]
        + ["--map", "customer_id=client", "--map", "timestamp=when"]
        + ["--map", "order_id=basket", "--map", "amount=total"]
    )
    assert code == 0
    (k1,) = read_jsonl(out)
    assert (k1["customer_id"], k1["orders"], k1["total_value"]) == ("K1", 2, 19.75)
    assert (k1["as_of"], k1["recency_days"], k1["frequency"]) == ("2024-03-08", 0, 1)
    lines = read_manifest(LocalFileSystem(), str(out))["lines"]
    assert lines["rejected_by_reason"] == {"header": 1, "return": 1}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--as-of", "2024-02-30"], "as_of='2024-02-30'"),
        (["--map", "amount=dollars"], "amount='dollars'"),
        (["--input-format", "cdnow", "--columns", "a,b"], "required role"),
    ],
)
def test_bad_arguments_exit_2_with_a_message_naming_the_value(tmp_path, capsys, args, message):
    data = tmp_path / "in.csv"
    data.write_text("order_id,customer_id,timestamp,item_id,quantity,unit_price\n")
    code = main(["rfm", str(data), "-o", str(tmp_path / "o"), "-q", "--no-mrjob-conf", *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_missing_input_and_an_unsafe_output_are_refused(tmp_path, capsys):
    assert main(["rfm", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "nope.csv" in capsys.readouterr().err
    data = tmp_path / "in.csv"
    data.write_text("order_id,customer_id,timestamp,item_id,quantity,unit_price\n")
    assert main(["rfm", str(data), "-o", "/", "--overwrite", "-q", "--no-mrjob-conf"]) == 2
    assert "'/'" in capsys.readouterr().err


def test_empty_input_publishes_an_empty_result_with_a_manifest(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("order_id,customer_id,timestamp,item_id,quantity,unit_price\n")
    out = tmp_path / "o"
    assert main(["rfm", str(data), "-o", str(out), "--segments", str(tmp_path / "s"), "-q"]) == 0
    assert read_jsonl(out) == []
    manifest = read_manifest(LocalFileSystem(), str(out))
    assert manifest["lines"]["read"] == 1 and manifest["rows_written"] == 0
    assert (tmp_path / "s" / "_SUCCESS").exists()


SCRIPT = REPO / "scripts" / "run_pipeline.sh"


def _script_env(tmp_path):
    crm_mr = Path(sys.executable).parent / "crm-mr"  # the one installed beside this Python
    env = dict(os.environ, CRM_LOCK_DIR=str(tmp_path))
    if crm_mr.exists():
        env["CRM_MR"] = str(crm_mr)
    return env


def test_shell_driver_help_and_bad_runner(tmp_path):
    done = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: run_pipeline.sh" in done.stdout
    done = subprocess.run([SCRIPT, "-r", "mainframe"], capture_output=True, text=True)
    assert done.returncode == 2 and "mainframe" in done.stderr


def test_shell_driver_runs_the_pipeline_and_fails_when_a_stage_fails(tmp_path):
    env = _script_env(tmp_path)
    data = tmp_path / "in.csv"
    data.write_text(
        "order_id,customer_id,timestamp,item_id,quantity,unit_price\nO1,C1,2024-01-01,I1,1,2.50\n"
    )
    out = tmp_path / "out"
    ok = [SCRIPT, "-r", "inline", "-i", str(data), "-o", str(out)]
    done = subprocess.run(ok, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "rfm_segments" / "_SUCCESS").exists()
    done = subprocess.run(ok, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2 and "FAILED" in done.stderr  # refuses to overwrite
    missing = [SCRIPT, "-r", "inline", "-i", str(tmp_path / "none.csv"), "-o", str(out / "x")]
    done = subprocess.run(missing, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stderr


def test_pipeline_clv_scores_every_rfm_customer_once_from_the_rfm_rows(pipeline_root):
    scores = read_jsonl(pipeline_root / "clv")
    rfm = {r["customer_id"]: r for r in read_jsonl(pipeline_root / "rfm")}
    assert sorted(r["customer_id"] for r in scores) == sorted(rfm)
    for r in scores:
        assert 0.0 <= r["p_alive"] <= 1.0 and r["clv"] >= 0.0
        assert (r["frequency"], r["T"]) == (
            rfm[r["customer_id"]]["frequency"],
            rfm[r["customer_id"]]["T"],
        )
    manifest = read_manifest(LocalFileSystem(), str(pipeline_root / "clv"))
    rfm_manifest = read_manifest(LocalFileSystem(), str(pipeline_root / "rfm"))
    assert manifest["lines"] == rfm_manifest["lines"]  # the RFM rows were read, not the lines
    assert sum(manifest["details"]["tiers"].values()) == len(scores)
    assert manifest["details"]["clv_total"] == pytest.approx(
        sum(r["clv"] for r in scores), abs=1e-3
    )
    model = json.loads((pipeline_root / "clv" / "model.json").read_text())
    assert model["bgnbd"]["converged"] and model["bgnbd"]["data"]["customers"] == len(scores)
