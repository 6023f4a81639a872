"""The jobs on a real single-node Hadoop: YARN applications reading and writing HDFS.

The cluster (NameNode, DataNode, ResourceManager, NodeManager, JobHistoryServer) is
started once per session by the ``hadoop_cluster`` fixture. Each Hadoop job costs about
half a minute of YARN start-up on two cores, so the tests share as few runs as they can.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hdfs_io import get_filesystem
from models.itemsets_stage import find_frequent_itemsets
from models.job_runner import run_job
from mr_jobs.cooccurrence import MRItemCooccurrence
from mr_jobs.protocols import CompactJSONProtocol
from mr_jobs.records import PRESETS
from mr_jobs.rfm import MRCustomerRFM
from tests.conftest import REPO

MRJOB_CONF = str(REPO / "mrjob.conf")


@pytest.fixture(scope="module")
def numpy_nodes_conf(tmp_path_factory):
    """An mrjob config, read after the project's, that runs the tasks under this Python:
    the K-Means jobs need numpy and pandas on the nodes, which the system python3 of this
    machine lacks (a real cluster installs them; see mrjob.conf)."""
    path = tmp_path_factory.mktemp("conf") / "nodes-python.conf"
    path.write_text(json.dumps({"runners": {"hadoop": {"python_bin": [sys.executable]}}}))
    return str(path)


def _listening_addresses(pid):
    """``(address, port)`` of every TCP socket ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            assert len(hex_addr) == width
            found.append((hex_addr, int(hex_port, 16)))
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1


def test_every_daemon_listens_on_loopback_only(hadoop_cluster):
    pids = hadoop_cluster.pids()
    assert set(pids) == {"namenode", "datanode", "resourcemanager", "nodemanager", "historyserver"}
    for name, pid in pids.items():
        addresses = _listening_addresses(pid)
        assert addresses, f"{name} listens on nothing"
        outside = [(a, port) for a, port in addresses if a not in LOOPBACK]
        assert not outside, f"{name} (pid {pid}) listens beyond 127.0.0.1: {outside}"
    # the shuffle service has no bind-address setting: the loopback shim must cover it
    shuffle = hadoop_cluster.state["ports"]["shuffle"]
    assert ("0100007F", shuffle) in _listening_addresses(pids["nodemanager"])


def test_hadoop_launcher_keeps_logs_off_stdout(hadoop_cluster, tmp_path):
    version = hadoop_cluster.hadoop("version")
    assert version.stdout.splitlines()[0] == "Hadoop 3.5.0"
    local = tmp_path / "hello.txt"
    local.write_text("one\ntwo\n")
    hadoop_cluster.hadoop("fs", "-mkdir", "-p", "/tests/launcher")
    hadoop_cluster.hadoop("fs", "-put", "-f", str(local), "/tests/launcher/hello.txt")
    cat = hadoop_cluster.hadoop("fs", "-cat", "/tests/launcher/hello.txt")
    assert cat.stdout == "one\ntwo\n"  # nothing from log4j mixed in
    listing = hadoop_cluster.hadoop("fs", "-ls", "/tests/launcher")
    assert listing.stdout.splitlines()[-1].endswith("/tests/launcher/hello.txt")


def test_cluster_script_reports_status_and_env(hadoop_cluster):
    script = [str(REPO / "scripts" / "hadoop-cluster.sh")]
    where = ["--dir", str(hadoop_cluster.directory)]
    env = {**os.environ, "PYTHON": sys.executable}
    status = subprocess.run([*script, "status", *where], env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("running (pid") == 5
    exports = subprocess.run([*script, "env", *where], env=env, capture_output=True, text=True)
    assert f"export CRM_WEBHDFS_URL='{hadoop_cluster.webhdfs_url}'" in exports.stdout
    assert f"export HADOOP_CONF_DIR='{hadoop_cluster.state['conf_dir']}'" in exports.stdout


def test_rfm_on_yarn_from_hdfs_equals_inline_with_the_project_mrjob_conf(hadoop_env, cdnow_path):
    hadoop_env.hadoop("fs", "-mkdir", "-p", "/tests/cdnow")
    hadoop_env.hadoop("fs", "-put", "-f", str(cdnow_path), "/tests/cdnow/CDNOW_master.txt")
    args = ["--input-format", "cdnow", "--period", "W"]
    with run_job(
        MRCustomerRFM,
        ["hdfs:///tests/cdnow/CDNOW_master.txt"],
        args,
        runner="hadoop",
        conf_paths=[MRJOB_CONF],
    ) as run:
        on_yarn = sorted(run.rows(), key=lambda r: r["customer_id"])
        lines = run.lines
        # Hadoop names some groups with a trailing space ("Job Counters ")
        counters = {group.strip(): names for group, names in run.counters[0].items()}
    with run_job(MRCustomerRFM, [str(cdnow_path)], args, runner="inline", conf_paths=[]) as run:
        inline = sorted(run.rows(), key=lambda r: r["customer_id"])
    assert len(on_yarn) == 23_570
    assert on_yarn == inline
    assert lines == {
        "read": 69_660,
        "accepted": 69_659,
        "rejected": 1,
        "rejected_by_reason": {"header": 1},
    }
    # a real YARN job: Hadoop's own counters came back with ours
    assert counters["Job Counters"]["Launched reduce tasks"] == 2  # mrjob.conf's jobconf
    assert counters["Map-Reduce Framework"]["Reduce output records"] == 23_570


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory, hadoop_cluster, numpy_nodes_conf):
    """The whole pipeline on the built-in data twice: ``crm-mr run`` inline on local files,
    and the shell driver with the hadoop runner on HDFS (same seed, so the same data)."""
    local_root = tmp_path_factory.mktemp("inline") / "crm"
    inline = subprocess.run(
        [sys.executable, "-m", "models.cli", "run", "-q", "--no-mrjob-conf"]
        + ["-o", str(local_root), "--k", PIPELINE_K, "--sales-top-n", PIPELINE_TOP_N],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert inline.returncode == 0, inline.stderr
    env = {
        **os.environ,
        **hadoop_cluster.env,
        "CRM_MR": str(Path(sys.executable).parent / "crm-mr"),
        "CRM_LOCK_DIR": str(tmp_path_factory.mktemp("locks")),
    }
    command = [str(REPO / "scripts" / "run_pipeline.sh"), "-r", "hadoop"]
    command += ["-o", HDFS_ROOT, "--mrjob-conf", MRJOB_CONF, "--mrjob-conf", numpy_nodes_conf]
    command += ["--k", PIPELINE_K, "--sales-top-n", PIPELINE_TOP_N]
    on_hadoop = subprocess.run(command, capture_output=True, text=True, env=env)
    return local_root, inline, on_hadoop, command, env


HDFS_ROOT = "hdfs:///tests/pipeline/crm"
PIPELINE_K = "5"  # one k: each Lloyd iteration on YARN is a job of about half a minute
PIPELINE_TOP_N = "3"  # five sales series to forecast (each takes seconds to fit)


def _cat(cluster, path):
    return cluster.hadoop("fs", "-cat", path).stdout


def test_pipeline_on_hadoop_publishes_to_hdfs(pipelines, hadoop_cluster):
    _, _, on_hadoop, _, _ = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    listing = hadoop_cluster.hadoop("fs", "-ls", "-R", "/tests/pipeline/crm").stdout
    for name in ("data/transactions.csv", "rfm/_SUCCESS", "rfm/part-00000", "rfm/_manifest.json"):
        assert f"/tests/pipeline/crm/{name}" in listing
    assert "rfm_segments/_SUCCESS" in listing
    record = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/_pipeline.json"))
    assert record["runner"] == "hadoop"
    stages = ["data", "rfm", "rfm_segments", "baskets", "recommendations", "segments", "sales"]
    stages += ["forecasts", "churn", "clv"]
    assert [s["stage"] for s in record["stages"]] == stages
    assert record["status"] == "completed"
    for stage in ("forecasts", "churn", "clv"):
        assert f"/tests/pipeline/crm/{stage}/_SUCCESS" in listing
    assert "/tests/pipeline/crm/churn/model.skops" in listing


#: Per-customer tables: written by the tasks, as many parts as reducers (or input splits),
#: so compared as the sorted set of their lines. Their CSVs too (header first).
PER_CUSTOMER_PARTS = ("rfm", "rfm_segments", "recommendations", "segments", "clv")
PER_CUSTOMER_CSVS = ("rfm_segments/customers.csv", "segments/customers.csv", "clv/customers.csv")
#: Fitted by the forecasts job's reduce tasks on Hadoop (by the driver's process pool
#: inline): a record per series, in the reducers' order (CSV headers first).
FORECAST_FILES = ("part-*", "forecasts.csv", "backtest.csv", "backtest.jsonl")
#: Churn probabilities are computed by each map task in batches of its rows (BLAS sums in
#: another order for another split): equal to 1e-12, not bit for bit, across runners.
CHURN_FILES = ("churn/part-*", "churn/scores.csv", "churn/early_warning.csv")


def _sorted_lines(data):
    return sorted(line for line in data.split(b"\n") if line)


def test_pipeline_on_hadoop_equals_inline_byte_for_byte(pipelines, hadoop_cluster):
    local_root, _, on_hadoop, _, _ = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    for stage_file in (
        "data/transactions.csv",
        "baskets/part-00000",
        "baskets/itemsets.jsonl",
        "recommendations/item_to_item.csv",
        "segments/segments.csv",
        "segments/overlap.csv",
        "segments/model.json",
        "sales/part-00000",
        "sales/series.csv",
        "clv/model.json",
    ):
        local = (local_root / stage_file).read_bytes()  # the data has undecodable lines
        remote = hadoop_cluster.hadoop(
            "fs", "-cat", f"/tests/pipeline/crm/{stage_file}", text=False
        )
        assert remote.stdout == local, stage_file
    for stage in PER_CUSTOMER_PARTS:
        local = b"".join(p.read_bytes() for p in sorted((local_root / stage).glob("part-*")))
        remote = hadoop_cluster.hadoop(
            "fs", "-cat", f"/tests/pipeline/crm/{stage}/part-*", text=False
        )
        assert _sorted_lines(remote.stdout) == _sorted_lines(local), stage
    for name in PER_CUSTOMER_CSVS:
        local = (local_root / name).read_bytes()
        remote = hadoop_cluster.hadoop("fs", "-cat", f"/tests/pipeline/crm/{name}", text=False)
        assert remote.stdout.split(b"\n", 1)[0] == local.split(b"\n", 1)[0], name
        assert _sorted_lines(remote.stdout) == _sorted_lines(local), name
    for name in FORECAST_FILES:
        local = b"".join(p.read_bytes() for p in sorted((local_root / "forecasts").glob(name)))
        remote = hadoop_cluster.hadoop("fs", "-cat", f"{HDFS_ROOT}/forecasts/{name}", text=False)
        if name.endswith(".csv"):
            assert remote.stdout.split(b"\n", 1)[0] == local.split(b"\n", 1)[0], name
        assert _sorted_lines(remote.stdout) == _sorted_lines(local), name
    on_yarn = json.loads(_cat(hadoop_cluster, f"{HDFS_ROOT}/forecasts/_manifest.json"))
    inline = json.loads((local_root / "forecasts" / "_manifest.json").read_text())
    assert on_yarn["runner"] == "hadoop" and inline["runner"] is None
    assert on_yarn["lines"] == inline["lines"]
    for details in (on_yarn["details"], inline["details"]):
        details.pop("fit_seconds")
    assert on_yarn["details"] == inline["details"]
    for pattern in CHURN_FILES:
        local = b"".join(p.read_bytes() for p in sorted(local_root.glob(pattern)))
        remote = hadoop_cluster.hadoop("fs", "-cat", f"/tests/pipeline/crm/{pattern}", text=False)
        assert _numbers_close(_sorted_lines(remote.stdout), _sorted_lines(local)), pattern


def _numbers_close(lines_a, lines_b):
    """Lines equal once every number in them is rounded to 12 significant digits."""
    import re

    def rounded(line):
        return re.sub(rb"-?\d+\.\d+(e-?\d+)?", lambda m: b"%.12g" % float(m.group()), line)

    return len(lines_a) == len(lines_b) and sorted(map(rounded, lines_a)) == sorted(
        map(rounded, lines_b)
    )


def test_per_customer_parts_on_hadoop_are_written_by_the_reduce_tasks(pipelines, hadoop_cluster):
    """The RFM rows on HDFS come from YARN's two reducers (mrjob.conf), each part sorted by
    customer id, and the manifest's customers are the tasks' count, not the driver's."""
    _, _, on_hadoop, _, _ = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    listing = hadoop_cluster.hadoop("fs", "-ls", "/tests/pipeline/crm/rfm").stdout
    parts = sorted(line.rsplit("/", 1)[-1] for line in listing.splitlines() if "/part-" in line)
    assert parts == ["part-00000", "part-00001"]
    total = 0
    for part in parts:
        rows = [
            json.loads(line)
            for line in _cat(hadoop_cluster, f"/tests/pipeline/crm/rfm/{part}").splitlines()
        ]
        ids = [r["customer_id"] for r in rows]
        assert ids == sorted(ids) and ids, part
        total += len(rows)
    manifest = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json"))
    assert manifest["rows_written"] == manifest["details"]["customers"] == total
    assert manifest["details"]["as_of_source"] == "latest purchase date in the input"
    assert "_task-output" not in hadoop_cluster.hadoop("fs", "-ls", "-R", "/tests/pipeline").stdout


def test_pipeline_on_hadoop_accounts_for_every_line(pipelines, hadoop_cluster):
    local_root, _, on_hadoop, _, _ = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    manifest = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json"))
    inline_manifest = json.loads((local_root / "rfm" / "_manifest.json").read_text())
    lines = manifest["lines"]
    assert manifest["runner"] == "hadoop"
    assert lines["read"] == lines["accepted"] + sum(lines["rejected_by_reason"].values())
    assert lines["rejected_by_reason"]["undecodable"] > 0  # the planted dirty lines
    assert lines == inline_manifest["lines"]
    for stage in ("baskets", "recommendations"):
        other = json.loads(_cat(hadoop_cluster, f"/tests/pipeline/crm/{stage}/_manifest.json"))
        assert other["lines"] == lines, stage
    segments = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/segments/_manifest.json"))
    inline_segments = json.loads((local_root / "segments" / "_manifest.json").read_text())
    assert segments["lines"] == inline_segments["lines"]  # RFM rows: read = accepted
    assert segments["lines"]["read"] == segments["lines"]["accepted"] > 0
    history = segments["details"]["fits"][PIPELINE_K]["history"]
    inline_history = inline_segments["details"]["fits"][PIPELINE_K]["history"]
    assert [(h["inertia"], h["shift"]) for h in history] == [
        (h["inertia"], h["shift"]) for h in inline_history
    ]
    truth = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/data/transactions.truth.json"))
    assert lines["read"] == truth["lines_total"]
    churn = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/churn/_manifest.json"))
    inline_churn = json.loads((local_root / "churn" / "_manifest.json").read_text())
    assert churn["runner"] == "hadoop"
    assert churn["lines"] == inline_churn["lines"]  # the feature run on YARN
    assert churn["lines"]["read"] == lines["read"]
    assert churn["lines"]["rejected_by_reason"]["after_as_of"] > 0  # after the cutoff
    assert churn["details"]["label_lines"] == inline_churn["details"]["label_lines"]


def test_pipeline_on_hadoop_writes_its_report_to_hdfs_and_rebuilds_it(
    pipelines, hadoop_cluster, tmp_path
):
    _, _, on_hadoop, _, env = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    report = hadoop_cluster.hadoop("fs", "-cat", f"{HDFS_ROOT}/report.html", text=False).stdout
    text = report.decode("utf-8")
    from models.report import SECTIONS

    for anchor, *_ in SECTIONS:
        assert f'<section id="{anchor}">' in text
    assert "Not shown" not in text and "could not be drawn" not in text
    assert "hdfs://" in text and '<th>runner</th><td class="n">hadoop</td>' in text
    rebuilt = tmp_path / "report.html"
    done = subprocess.run(
        [env["CRM_MR"], "report", HDFS_ROOT, "-o", str(rebuilt)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert rebuilt.read_bytes() == report


def test_pipeline_on_hadoop_refuses_to_overwrite_without_flag(pipelines, hadoop_cluster):
    _, _, on_hadoop, command, env = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    before = _cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json")
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    assert _cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json") == before


# -- the basket jobs: co-occurrence (SORT_VALUES) and SON frequent itemsets ---------------------

#: Items added to the supermarket baskets by :func:`write_basket_files`, and their counts.
HAND_MADE_ITEMS = {"crème brûlée": 2_314, "bread, cake": 1_543, "漢字": 927}
#: Line accounting of the two basket files: 85,763 supermarket lines and 4,790 added ones.
BASKET_LINES = {
    "read": 90_553,
    "accepted": 90_548,
    "rejected": 5,
    "rejected_by_reason": {"blank": 1, "header": 2, "missing_item": 1, "undecodable": 1},
}
COOCCURRENCE_ARGS = ["--input-format", "baskets", "--min-support", "0.2", "--min-confidence", "0.5"]
SON_MIN_SUPPORT = "0.25"


def write_basket_files(directory, supermarket_path):
    """The supermarket baskets and a second, hand-made file of lines for the same baskets.

    Every 2nd, 3rd and 5th supermarket basket gets one more item in the second file (with
    accents, a quoted comma, CJK characters), so 3,085 baskets are split across the two
    files; 漢字 lands just above a support of 0.2 (927 of 4,628 baskets). The file also
    holds a new basket ``"k,3"``, a line repeating an item basket 0 already has, and a
    blank, an item-less and an undecodable line. Lines are shuffled.
    Returns the two paths.
    """
    lines = []
    for basket in range(4_627):
        if basket % 2 == 0:
            lines.append(f"{basket},crème brûlée")
        if basket % 3 == 0:
            lines.append(f'{basket},"bread, cake"')
        if basket % 5 == 0:
            lines.append(f"{basket},漢字")
    lines += ['"k,3",漢字', '"k,3","say ""hi"""', "0,fruit", "", "7,"]
    random.Random(4).shuffle(lines)
    directory.mkdir(parents=True, exist_ok=True)
    added = directory / "added_baskets.csv"
    text = "basket_id,item\n" + "\n".join(lines) + "\n"
    added.write_bytes(text.encode("utf-8") + b"9,\xff\n")
    return [Path(supermarket_path), added]


def _row_key(row):
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def cooccurrence_run(input_paths, args, runner, conf_paths):
    """Run MRItemCooccurrence; return its rows (sorted), line accounting, the ``crm.*``
    counters summed over the four steps, and the reduce tasks each step launched."""
    with run_job(
        MRItemCooccurrence, input_paths, args, runner=runner, conf_paths=conf_paths
    ) as run:
        rows = sorted(run.rows(), key=_row_key)
        counters = {}
        reducers = []
        for step in run.counters:
            # Hadoop names some groups with a trailing space ("Job Counters ")
            step = {group.strip(): names for group, names in step.items()}
            reducers.append(step.get("Job Counters", {}).get("Launched reduce tasks"))
            for group, names in step.items():
                if group.startswith("crm."):
                    summed = counters.setdefault(group, {})
                    for name, value in names.items():
                        summed[name] = summed.get(name, 0) + value
        return rows, run.lines, counters, reducers


def _protocol_reads_sort_values_lines():
    """Whether the jobs' internal protocol reads what Hadoop Streaming gives the reducers
    of a SORT_VALUES job. mrjob makes the whole line Hadoop's key there
    (``stream.num.map.output.key.fields=2``), so each line reaches the reducer as
    ``key<TAB>value<TAB>`` (the key, a tab, then an empty value); mrjob's own protocols
    accept the trailing tab because ``json.loads`` skips whitespace (mrjob PR #670)."""
    try:
        return CompactJSONProtocol().read(b'"a"\t[0,4628]\t') == ("a", [0, 4628])
    except ValueError:
        return False


def test_internal_protocol_reads_reducer_lines_of_a_sort_values_job_on_hadoop():
    line = 'null\t[1,"crème brûlée",2314]\t'.encode()  # as Hadoop Streaming hands it over
    assert CompactJSONProtocol().read(line) == (None, [1, "crème brûlée", 2314])
    # a trailing tab is the only difference from a line of a job without SORT_VALUES
    assert CompactJSONProtocol().read(line[:-1]) == (None, [1, "crème brûlée", 2314])
    assert _protocol_reads_sort_values_lines()


@pytest.fixture(scope="module")
def baskets_on_hdfs(hadoop_cluster, supermarket_path, tmp_path_factory):
    """The two basket files, locally and in one HDFS directory."""
    local = write_basket_files(tmp_path_factory.mktemp("baskets"), supermarket_path)
    hadoop_cluster.hadoop("fs", "-mkdir", "-p", "/tests/baskets/in")
    hadoop_cluster.hadoop("fs", "-put", "-f", *map(str, local), "/tests/baskets/in/")
    return local, f"{hadoop_cluster.fs_url}/tests/baskets/in"


def test_cooccurrence_on_yarn_sorts_totals_first_on_two_reducers_and_equals_inline(
    hadoop_env, baskets_on_hdfs
):
    if not _protocol_reads_sort_values_lines():
        # the reducers would fail on their first line (after ~2 minutes of task retries)
        pytest.fail(
            "CompactJSONProtocol rejects the trailing tab Hadoop Streaming adds to every "
            "reducer line of a SORT_VALUES job: see "
            "test_internal_protocol_reads_reducer_lines_of_a_sort_values_job_on_hadoop"
        )
    local, hdfs_dir = baskets_on_hdfs
    inline_rows, inline_lines, inline_counters, _ = cooccurrence_run(
        local, COOCCURRENCE_ARGS, "inline", []
    )
    output = f"{hadoop_env.fs_url}/tests/baskets/cooccurrence"
    rows, lines, counters, reducers = cooccurrence_run(
        [hdfs_dir], [*COOCCURRENCE_ARGS, "--output-dir", output], "hadoop", [MRJOB_CONF]
    )
    # every step ran two reducers (mrjob.conf), so the totals key and the item keys were
    # spread over two partitions and reached each reducer from several map tasks: only
    # Hadoop's value sort puts N first at the totals key and an item's totals before its
    # stripes and pairs. Out of order, step 3 drops items and step 4 fails or miscounts.
    assert reducers == [2, 2, 2, 2]
    assert rows == inline_rows
    assert lines == inline_lines == BASKET_LINES
    assert counters == inline_counters
    assert counters["crm.baskets"] == {"baskets": 4_628, "one_item": 10}
    assert counters["crm.items"] == {"distinct": 126, "frequent": 39}
    assert counters["crm.pairs"] == {"distinct": 6_959, "frequent": 215}
    assert counters["crm.rules"] == {"rules": 282}
    # the hand-made items went through the shuffle as written, split baskets united
    items = {r["item"]: r["count"] for r in rows if r["kind"] == "item"}
    assert {item: items.get(item) for item in HAND_MADE_ITEMS} == HAND_MADE_ITEMS
    assert items["fruit"] == 2_962  # basket 0's repeated fruit line counts once
    paired = {i for r in rows if r["kind"] == "pair" for i in r["items"]}
    assert {"crème brûlée", "bread, cake"} <= paired
    # both reducers of the last step wrote item, pair and rule rows
    fs, path = get_filesystem(output)
    parts = [name for name in fs.list(path) if name.startswith("part-")]
    assert parts == ["part-00000", "part-00001"]
    for part in parts:
        kinds = {json.loads(line)["kind"] for line in fs.read(f"{path}/{part}").splitlines()}
        assert kinds == {"item", "pair", "rule"}, part


def test_son_on_yarn_ships_the_candidates_to_the_tasks_and_equals_inline(
    hadoop_env, baskets_on_hdfs
):
    local, hdfs_dir = baskets_on_hdfs
    schema = PRESETS["baskets"]
    inline, inline_details = find_frequent_itemsets(
        [str(p) for p in local], schema=schema, min_support=SON_MIN_SUPPORT, conf_paths=[]
    )
    itemsets, details = find_frequent_itemsets(
        [hdfs_dir],
        schema=schema,
        min_support=SON_MIN_SUPPORT,
        runner="hadoop",
        conf_paths=[MRJOB_CONF],
    )
    assert len(itemsets) == 237
    assert max(len(r["items"]) for r in itemsets) == 4
    assert itemsets == inline
    assert details["lines"] == inline_details["lines"] == BASKET_LINES
    assert details["baskets"] == inline_details["baskets"] == 4_628
    # pass 1 mined the baskets of two map tasks (one per reducer of its first step); the
    # union of their local itemsets held candidates that pass 2, counting them over all
    # baskets with the candidates file in every task, found infrequent
    assert details["chunks"] == 2
    assert details["candidates"] > len(itemsets)
    counts = {tuple(r["items"]): r["count"] for r in itemsets}
    assert counts[("crème brûlée",)] == HAND_MADE_ITEMS["crème brûlée"]
    assert counts[("bread and cake", "crème brûlée", "milk-cream")] == 1_218


def test_kmeans_on_yarn_from_hdfs_equals_inline_on_cdnow(
    hadoop_env, cdnow_path, tmp_path, numpy_nodes_conf
):
    """Features, statistics, every Lloyd iteration and the labels as YARN jobs reading
    HDFS give bit-identical centres, inertia and labels to the inline runner (the sums
    are exact, so the split into map tasks cannot change them)."""
    import numpy as np

    from models.kmeans import fit_kmeans, label_customers, prepared_features
    from models.rfm_stage import run_rfm_stage

    rfm = tmp_path / "rfm"
    run_rfm_stage(
        [str(cdnow_path)], str(rfm), schema=PRESETS["cdnow"], runner="inline", conf_paths=[]
    )
    hadoop_env.hadoop("fs", "-mkdir", "-p", "/tests/kmeans")
    parts = sorted(rfm.glob("part-*"))
    hadoop_env.hadoop("fs", "-put", "-f", *map(str, parts), "/tests/kmeans/")
    on_hdfs = [f"hdfs:///tests/kmeans/{p.name}" for p in parts]
    results = {}
    for runner, inputs, conf in (
        ("hadoop", on_hdfs, [MRJOB_CONF, numpy_nodes_conf]),
        ("inline", list(map(str, parts)), []),
    ):
        with prepared_features(inputs, runner=runner, conf_paths=conf, distinct_limit=5) as data:
            fit = fit_kmeans(data, 5, seed=0)
            labels, _ = label_customers(data, fit)
            results[runner] = (data, fit, sorted(labels, key=lambda r: r["customer_id"]))
    (h_data, h_fit, h_labels), (i_data, i_fit, i_labels) = results["hadoop"], results["inline"]
    assert h_data.lines == i_data.lines
    assert h_data.lines["read"] == h_data.lines["accepted"] == 23_570
    assert np.array_equal(h_data.mean, i_data.mean) and np.array_equal(h_data.scale, i_data.scale)
    assert np.array_equal(h_fit.centroids, i_fit.centroids)
    assert h_fit.inertia == i_fit.inertia and h_fit.counts == i_fit.counts
    assert [(h["inertia"], h["shift"]) for h in h_fit.history] == [
        (h["inertia"], h["shift"]) for h in i_fit.history
    ]
    assert h_labels == i_labels and len(h_labels) == 23_570
