"""The jobs on mrjob's Spark runner (``-r spark``, pyspark's own spark-submit, master local[2]).

Each Spark run costs 7-9 s of JVM start on two cores (far more when the machine is busy),
so the tests share as few runs as they can: seven Spark sessions in all (four for the RFM
job, one for the co-occurrence job, two for SON's frequent itemsets). The option logic
of :func:`models.job_runner.run_job` and the refusals that happen before Spark starts are
tested without starting Spark.

Every test that runs Spark moves the system temp directory (``tempfile.tempdir``, which
mrjob uses for ``<job key>-spark``) into its own ``tmp_path`` and checks that it is empty
afterwards: nothing of a run stays behind, succeeded or failed.
"""

import gzip
import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

from models import job_runner
from models.itemsets_stage import find_frequent_itemsets
from models.job_runner import SPARK_HDFS_TMP_DIR, JobFailedError, run_job
from mr_jobs.base import package_zip
from mr_jobs.forecast_series import MRForecastSeries
from mr_jobs.records import PRESETS, make_line_parser
from mr_jobs.rfm import MRCustomerRFM
from tests.conftest import REPO, require
from tests.test_hadoop_runner import (
    BASKET_LINES,
    COOCCURRENCE_ARGS,
    HAND_MADE_ITEMS,
    SON_MIN_SUPPORT,
    cooccurrence_run,
    write_basket_files,
)

SPARK = ["--spark-master", "local[2]"]
MRJOB_CONF = str(REPO / "mrjob.conf")

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
GOOD = (
    "O1,A,2023-01-02T10:00:00,I1,2,1.50\n"
    "O1,A,2023-01-02T10:00:00,I2,1,4.00\n"
    "O2,A,2023-01-02T18:00:00,I1,1,1.50\n"
    "O3,A,2023-01-10T09:00:00,I3,3,0.10\n"
    "O4,B,2023-01-05T12:00:00,I1,1,2.00\n"
)
BAD = (
    b"\n"
    b"O9,,2023-01-03,I1,1,1.00\n"
    b"O9,A,2023-02-30,I1,1,1.00\n"
    b"O9,A,2023-01-03,I1,-1,1.50\n"
    b"O9,A,2023-01-03,I1,1,n/a\n"
    b"O9,A,2023-01-03,I1,1\n"
    b"O9,A,2023-01-03,I1,x,1\n"
    b"O9,A,2023-01-03,I\xff,1,1\n"
    b"O9,C,2023-01-11,I1,1,1.00\n"  # after --as-of
) + HEADER.encode()
#: the hand-made file: header, good lines with every kind of bad line in between
HAND_MADE = HEADER.encode() + GOOD.encode()[:70] + BAD + GOOD.encode()[70:]
HAND_MADE_REJECTED = {
    "header": 2,
    "blank": 1,
    "missing_customer": 1,
    "bad_timestamp": 1,
    "return": 1,
    "bad_price": 1,
    "column_count": 1,
    "bad_quantity": 1,
    "undecodable": 1,
    "after_as_of": 1,
}
HAND_MADE_ARGS = ["--as-of", "2023-01-10"]


def _has_java():
    java_home = os.environ.get("JAVA_HOME")
    return bool(java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) or bool(
        shutil.which("java")
    )


@pytest.fixture
def system_tmp(tmp_path, monkeypatch):
    """Spark prerequisites, a private system temp directory, and no SPARK_LOCAL_IP (the
    driver must set it itself). Yields the temp directory, to check it is left empty."""
    require(
        importlib.util.find_spec("pyspark") is not None,
        "pyspark is not installed (pip install -e '.[test]' installs it)",
    )
    require(_has_java(), "Java is not installed (Spark 4 needs a JDK 17 or later)")
    package_zip()  # made once per process, in the real temp directory
    package_zip(MRForecastSeries.SHIP_PACKAGES)
    moved = tmp_path / "system-tmp"
    moved.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(moved))
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    return moved


def _left_in(directory):
    return sorted(p.name for p in directory.iterdir())


def _rows_and_lines(input_paths, args, runner, **kwargs):
    with run_job(MRCustomerRFM, input_paths, args, runner=runner, **kwargs) as run:
        rows = sorted(run.rows(), key=lambda r: r["customer_id"])
        return rows, run.lines, run.counters


def _hdfs_paths(cluster):
    """Every path on the cluster's HDFS (one ``hadoop fs`` call)."""
    listing = cluster.hadoop("fs", "-ls", "-R", "/").stdout.splitlines()
    return {line.split()[-1] for line in listing if line.startswith(("d", "-"))}


# -- Spark runs ----------------------------------------------------------------------------


def test_spark_on_local_cdnow_gives_the_inline_rows_and_counters(system_tmp, cdnow_path):
    args = ["--input-format", "cdnow", "--as-of", "1998-06-30", "--period", "W"]
    inline, inline_lines, inline_counters = _rows_and_lines(
        [cdnow_path], args, "inline", conf_paths=[]
    )
    spark, lines, counters = _rows_and_lines([cdnow_path], SPARK + args, "spark", conf_paths=[])
    assert len(spark) == 23_570
    assert spark == inline
    # the harness returns counters through a Spark accumulator: they balance and match
    assert counters == inline_counters
    assert (
        lines
        == inline_lines
        == {
            "read": 69_660,
            "accepted": 69_659,
            "rejected": 1,
            "rejected_by_reason": {"header": 1},
        }
    )
    assert _left_in(system_tmp) == []  # no <job key>-spark folder


#: hostile lines that every line reader (mrjob's, Hadoop's, Spark's) splits the same way
HOSTILE = (
    b"O9,A\x00,2023-01-03,I1,1,1\n"
    b"O9,A,2023-01-03,I1,1e309,1\n"
    b"O9,A,2023-01-03,I1,1,1e999999999\n"
    b"O9,A,9999-12-31T23:30:00-01:00,I1,1,1\n"
    b"O9,A,2023-01-03T10,I1,1,1\n"
    b"O9,A" + b"x" * 300 + b",2023-01-03,I1,1,1\n"
    b'O9,"' + b"y" * 140_000 + b'",2023-01-03,I1,1,1\n'
    b"\xef\xbb\xbfO3,B,2023-01-04,I1,1,2.00\n"
    b"\x1f\x8b\x08\x00binary\xff\xfe\n"
)
HOSTILE_REJECTED = {
    "header": 1,
    "control_character": 1,
    "bad_quantity": 1,
    "bad_price": 1,
    "date_out_of_range": 1,
    "bad_timestamp": 1,
    "id_too_long": 1,
    "line_too_long": 1,
    "undecodable": 1,
}


def test_spark_rejects_hostile_lines_like_inline(system_tmp, tmp_path):
    local = tmp_path / "hostile.csv"
    local.write_bytes(HEADER.encode() + GOOD.encode() + HOSTILE)
    inline, inline_lines, _ = _rows_and_lines([local], [], "inline", conf_paths=[])
    spark, lines, _ = _rows_and_lines([local], SPARK, "spark", conf_paths=[])
    assert spark == inline
    assert [(r["customer_id"], r["lines"]) for r in spark] == [("A", 4), ("B", 2)]
    assert lines == inline_lines
    assert lines["rejected_by_reason"] == HOSTILE_REJECTED
    assert _left_in(system_tmp) == []


def test_spark_reads_hdfs_counts_rejections_like_inline_and_leaves_nothing(
    system_tmp, hadoop_env, tmp_path
):
    local = tmp_path / "orders.csv"
    local.write_bytes(HAND_MADE)
    hadoop_env.hadoop("fs", "-mkdir", "-p", "/tests/spark/in")
    hadoop_env.hadoop("fs", "-put", "-f", str(local), "/tests/spark/in/orders.csv")
    source = f"{hadoop_env.fs_url}/tests/spark/in/orders.csv"

    inline, inline_lines, _ = _rows_and_lines([local], HAND_MADE_ARGS, "inline", conf_paths=[])
    # the project's mrjob.conf picks the master (local[2]); output to mrjob's default place
    spark, lines, _ = _rows_and_lines([source], HAND_MADE_ARGS, "spark", conf_paths=[MRJOB_CONF])
    assert [r["customer_id"] for r in spark] == ["A", "B"]
    assert spark == inline
    assert lines["rejected_by_reason"] == HAND_MADE_REJECTED
    assert lines == inline_lines
    assert (lines["read"], lines["accepted"]) == (16, 5)
    # the temp dir (and the output in it) went to HDFS and is gone; nothing stayed locally
    assert _left_in(system_tmp) == []
    left = _hdfs_paths(hadoop_env)
    assert not [p for p in left if p.startswith(SPARK_HDFS_TMP_DIR + "/")], left
    assert not [p for p in left if p.startswith("/tests/spark/") and "/in" not in p], left


def test_failed_spark_run_says_why_removes_its_output_and_a_rerun_works(
    system_tmp, hadoop_env, tmp_path
):
    corrupt = tmp_path / "orders.csv.gz"
    corrupt.write_bytes(b"not gzip at all\n")
    good = tmp_path / "good.csv.gz"
    good.write_bytes(gzip.compress(HEADER.encode() + GOOD.encode()))
    hadoop_env.hadoop("fs", "-mkdir", "-p", "/tests/spark-fail/in")
    hadoop_env.hadoop("fs", "-put", "-f", str(corrupt), str(good), "/tests/spark-fail/in/")
    output = f"{hadoop_env.fs_url}/tests/spark-fail/out"
    args = SPARK + ["--output-dir", output]

    # Spark creates the output directory before the tasks fail on the corrupt file
    with pytest.raises(JobFailedError) as failed:
        with run_job(
            MRCustomerRFM,
            [f"{hadoop_env.fs_url}/tests/spark-fail/in/orders.csv.gz"],
            args,
            runner="spark",
            conf_paths=[],
        ):
            pass
    message = str(failed.value)
    assert "MRCustomerRFM on the spark runner" in message
    assert "not a gzip file" in message, message
    assert "spark-submit" not in message  # not the whole command line
    assert "/tests/spark-fail/out" not in _hdfs_paths(hadoop_env)
    # mrjob keeps its local scratch dir of a failed run (its cleanup_on_failure option,
    # NONE by default), but not the <job key>-spark one
    kept = _left_in(system_tmp)
    assert len(kept) <= 1 and not [name for name in kept if name.endswith("-spark")], kept

    # the same output directory again: no FileAlreadyExistsException
    rows, lines, _ = _rows_and_lines(
        [f"{hadoop_env.fs_url}/tests/spark-fail/in/good.csv.gz"],
        args,
        "spark",
        conf_paths=[],
    )
    assert [r["customer_id"] for r in rows] == ["A", "B"]
    assert lines["read"] == 6 and lines["rejected_by_reason"] == {"header": 1}
    left = _hdfs_paths(hadoop_env)
    assert {"/tests/spark-fail/out/_SUCCESS"} <= left  # an explicit output stays, whole
    assert not [p for p in left if p.startswith(SPARK_HDFS_TMP_DIR + "/")], left
    assert _left_in(system_tmp) == kept


def test_spark_cooccurrence_sorts_values_like_inline_and_gives_its_rows(
    system_tmp, supermarket_path, tmp_path
):
    # the harness sorts each key's lines (SORT_VALUES): N and an item's totals come first
    local = write_basket_files(tmp_path / "in", supermarket_path)
    inline_rows, inline_lines, inline_counters, _ = cooccurrence_run(
        local, COOCCURRENCE_ARGS, "inline", []
    )
    rows, lines, counters, _ = cooccurrence_run(local, SPARK + COOCCURRENCE_ARGS, "spark", [])
    assert rows == inline_rows
    assert lines == inline_lines == BASKET_LINES
    assert counters == inline_counters
    assert counters["crm.pairs"] == {"distinct": 6_959, "frequent": 215}
    assert counters["crm.rules"] == {"rules": 282}
    items = {r["item"]: r["count"] for r in rows if r["kind"] == "item"}
    assert {item: items.get(item) for item in HAND_MADE_ITEMS} == HAND_MADE_ITEMS
    assert _left_in(system_tmp) == []


def test_spark_son_ships_the_candidates_to_the_tasks_and_equals_inline(
    system_tmp, supermarket_path, tmp_path
):
    local = [str(p) for p in write_basket_files(tmp_path / "in", supermarket_path)]
    schema = PRESETS["baskets"]
    inline, inline_details = find_frequent_itemsets(
        local, schema=schema, min_support=SON_MIN_SUPPORT, conf_paths=[]
    )
    itemsets, details = find_frequent_itemsets(
        local,
        schema=schema,
        min_support=SON_MIN_SUPPORT,
        runner="spark",
        conf_paths=[],
        extra_args=SPARK,
    )
    assert len(itemsets) == 237
    assert itemsets == inline
    assert details["lines"] == inline_details["lines"] == BASKET_LINES
    assert details["baskets"] == 4_628
    # several partitions mined locally; pass 2 (the candidates file in every task)
    # dropped the candidates that are not frequent over all baskets
    assert details["chunks"] >= 2
    assert details["candidates"] > len(itemsets)
    # the candidates file's directory (made in the system temp dir) and Spark's are gone
    assert _left_in(system_tmp) == []


# -- before Spark starts -------------------------------------------------------------------


def test_kmeans_on_spark_reads_lines_and_equals_inline_on_cdnow(system_tmp, cdnow_path, tmp_path):
    """mrjob's Spark runner has no mapper_raw: the feature jobs read lines there
    (``--line-input``) and still give bit-identical statistics, centres and labels."""
    import numpy as np

    from models.kmeans import fit_kmeans, label_customers, prepared_features
    from models.rfm_stage import run_rfm_stage

    rfm = tmp_path / "rfm"
    run_rfm_stage(
        [str(cdnow_path)], str(rfm), schema=PRESETS["cdnow"], runner="inline", conf_paths=[]
    )
    results = {}
    for runner, conf in (("spark", [MRJOB_CONF]), ("inline", [])):
        parts = sorted(map(str, rfm.glob("part-*")))
        with prepared_features(parts, runner=runner, conf_paths=conf, distinct_limit=4) as data:
            fit = fit_kmeans(data, 4, seed=1)
            labels, _ = label_customers(data, fit)
            results[runner] = (data, fit, sorted(labels, key=lambda r: r["customer_id"]))
    (s_data, s_fit, s_labels), (i_data, i_fit, i_labels) = results["spark"], results["inline"]
    assert s_data.lines == i_data.lines and s_data.lines["accepted"] == 23_570
    assert np.array_equal(s_data.mean, i_data.mean) and np.array_equal(s_data.scale, i_data.scale)
    assert np.array_equal(s_fit.centroids, i_fit.centroids) and s_fit.inertia == i_fit.inertia
    assert s_labels == i_labels and len(s_labels) == 23_570
    assert _left_in(system_tmp) == []


def test_rfm_segments_and_clv_stages_on_spark_publish_the_inline_rows(system_tmp, tmp_path):
    """Seven Spark jobs (the RFM job and its as-of pass, two threshold passes, the scoring
    pass, the CLV statistics and scores) write the published parts themselves: the same
    set of rows as inline, the same summary and CLV model, and the counts from the tasks'
    counters."""
    from models.clv_stage import run_clv_stage
    from models.rfm_stage import run_rfm_stage
    from models.segments_stage import run_segments_stage
    from models.synthetic import generate

    log = tmp_path / "tx.csv"
    generate(str(log), customers=150, seed=3)
    found = {}
    for runner, conf in (("spark", [MRJOB_CONF]), ("inline", [])):
        rfm, seg, clv = (tmp_path / f"{name}-{runner}" for name in ("rfm", "seg", "clv"))
        jobs = {"runner": runner, "conf_paths": conf}
        manifest = run_rfm_stage([str(log)], str(rfm), schema=PRESETS["canonical"], **jobs)
        summary, seg_manifest = run_segments_stage(str(rfm), str(seg), **jobs)
        clv_manifest = run_clv_stage(
            [str(log)], str(clv), schema=PRESETS["canonical"], current_path=str(rfm), **jobs
        )
        lines = {
            name: sorted(x for p in d.glob("part-*") for x in p.read_text().splitlines())
            for name, d in (("rfm", rfm), ("seg", seg), ("clv", clv))
        }
        lines["clv_model"] = (clv / "model.json").read_text()
        found[runner] = (manifest, summary, seg_manifest, lines)
        assert clv_manifest["rows_written"] == manifest["details"]["customers"]
    (s_m, s_sum, s_seg, s_lines), (i_m, i_sum, i_seg, i_lines) = found["spark"], found["inline"]
    assert s_lines == i_lines and len(s_lines["rfm"]) == s_m["details"]["customers"] > 100
    assert len(s_lines["clv"]) == len(s_lines["rfm"])
    assert s_m["lines"] == i_m["lines"] and s_m["details"]["as_of"] == i_m["details"]["as_of"]
    assert s_sum.equals(i_sum) and s_seg["rows_written"] == i_seg["rows_written"]
    assert _left_in(system_tmp) == []


def test_forecasts_job_on_spark_publishes_the_rows_of_the_driver_process_pool(system_tmp, tmp_path):
    """The forecasts job on Spark (the models package shipped to its Python workers):
    the same forecast, backtest and fit rows as the driver's process pool, a record per
    series."""
    from models.forecast_stage import read_sales_series, run_forecast_stage
    from models.sales_stage import run_sales_stage
    from models.synthetic import generate

    log = tmp_path / "tx.csv"
    generate(str(log), customers=150, seed=3, days=300)
    sales = tmp_path / "sales"
    run_sales_stage([str(log)], str(sales), schema=PRESETS["canonical"], period="W", top_n=2)
    frame, period = read_sales_series(str(sales))
    _, on_spark = run_forecast_stage(
        str(sales), str(tmp_path / "spark"), horizon=3, runner="spark", conf_paths=[MRJOB_CONF]
    )
    run_forecast_stage(frame, str(tmp_path / "pool"), period=period, horizon=3, processes=1)
    for name in ("part-00000", "forecasts.csv", "backtest.jsonl", "backtest.csv"):
        spark, pool = ((tmp_path / d / name).read_text().splitlines() for d in ("spark", "pool"))
        assert sorted(spark) == sorted(pool) and len(pool) > 1, name
    assert (
        on_spark["runner"] == "spark" and on_spark["rows_written"] == 3 * frame["series"].nunique()
    )
    assert on_spark["lines"]["read"] == len(frame)
    assert _left_in(system_tmp) == []


def test_missing_input_fails_before_spark_starts_naming_it(system_tmp, tmp_path):
    missing = tmp_path / "nope.csv"
    output = tmp_path / "out"
    with pytest.raises(OSError, match="nope.csv"):
        with run_job(
            MRCustomerRFM,
            [missing],
            SPARK + ["--output-dir", str(output)],
            runner="spark",
            conf_paths=[],
        ):
            pass
    assert not output.exists()
    assert _left_in(system_tmp) == []


def test_existing_output_dir_is_refused_before_spark_starts(system_tmp, tmp_path):
    source = tmp_path / "orders.csv"
    source.write_text(HEADER + GOOD)
    output = tmp_path / "out"
    (output / "keep").mkdir(parents=True)
    with pytest.raises(ValueError, match="already exists"):
        with run_job(
            MRCustomerRFM,
            [source],
            SPARK + ["--output-dir", str(output)],
            runner="spark",
            conf_paths=[],
        ):
            pass
    assert (output / "keep").is_dir()  # someone's data: left alone
    assert _left_in(system_tmp) == []


# -- the options run_job adds (no Spark) ---------------------------------------------------


@pytest.fixture
def fake_spark(tmp_path, monkeypatch):
    """A spark-submit and a java that exist, so the option logic runs anywhere."""
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    (java_home / "bin" / "java").touch()
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setattr(job_runner, "_find_spark_submit", lambda: "/opt/spark/bin/spark-submit")
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)


def _added(args, inputs=("in.csv",)):
    job = MRCustomerRFM(args=["-r", "spark", "--no-conf", *args, *inputs])
    return job_runner._spark_args(job, list(inputs))


def test_local_master_gets_loopback_and_the_drivers_python(fake_spark):
    added = _added(SPARK)
    assert added == ["--cmdenv", "SPARK_LOCAL_IP=127.0.0.1", "--python-bin", sys.executable]


def test_settings_given_by_the_user_are_kept(fake_spark, monkeypatch):
    given = SPARK + ["--cmdenv", "SPARK_LOCAL_IP=10.0.0.5", "--python-bin", "python3.11"]
    assert _added(given) == []
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.2")
    assert _added(SPARK) == ["--python-bin", sys.executable]


def test_hdfs_output_moves_the_temp_dir_to_that_hdfs_but_hdfs_inputs_alone_do_not(fake_spark):
    out = ["--output-dir", "hdfs://nn:8020/out"]
    added = _added(SPARK + out, inputs=("hdfs://other:9000/in",))
    assert added[-2:] == ["--spark-tmp-dir", f"hdfs://nn:8020{SPARK_HDFS_TMP_DIR}"]
    assert "--spark-tmp-dir" not in _added(SPARK, inputs=("local.csv", "hdfs:///in"))
    given = ["--spark-tmp-dir", "hdfs://nn:8020/mine"]
    assert "--spark-tmp-dir" not in _added(SPARK + out + given)


def test_cluster_master_keeps_mrjobs_defaults(fake_spark):
    assert _added(["--spark-master", "yarn", "--output-dir", "hdfs:///out"]) == []


def test_missing_spark_submit_is_named(monkeypatch):
    monkeypatch.setattr(job_runner, "_find_spark_submit", lambda: None)
    with pytest.raises(ValueError, match=r"pip install 'crm-mapreduce\[spark\]'"):
        with run_job(MRCustomerRFM, ["in.csv"], SPARK, runner="spark", conf_paths=[]):
            pass


def test_a_line_as_spark_hands_it_over_is_still_undecodable():
    # Spark reads text through Hadoop Text -> Java String: invalid UTF-8 arrives as U+FFFD
    parse = make_line_parser(PRESETS["canonical"])
    raw = b"O9,A,2023-01-03,I\xff,1,1"
    as_spark_gives_it = raw.decode("utf-8", errors="replace").encode("utf-8")
    assert parse(raw) == parse(as_spark_gives_it) == "undecodable"
