"""The jobs on a real single-node Hadoop: YARN applications reading and writing HDFS.

The cluster (NameNode, DataNode, ResourceManager, NodeManager, JobHistoryServer) is
started once per session by the ``hadoop_cluster`` fixture. Each Hadoop job costs about
half a minute of YARN start-up on two cores, so the tests share as few runs as they can.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.job_runner import run_job
from mr_jobs.rfm import MRCustomerRFM
from tests.conftest import REPO

MRJOB_CONF = str(REPO / "mrjob.conf")


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
def pipelines(tmp_path_factory, hadoop_cluster):
    """The whole pipeline on the built-in data twice: ``crm-mr run`` inline on local files,
    and the shell driver with the hadoop runner on HDFS (same seed, so the same data)."""
    local_root = tmp_path_factory.mktemp("inline") / "crm"
    inline = subprocess.run(
        [sys.executable, "-m", "models.cli", "run", "-q", "--no-mrjob-conf"]
        + ["-o", str(local_root)],
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
    command += ["-o", HDFS_ROOT, "--mrjob-conf", MRJOB_CONF]
    on_hadoop = subprocess.run(command, capture_output=True, text=True, env=env)
    return local_root, inline, on_hadoop, command, env


HDFS_ROOT = "hdfs:///tests/pipeline/crm"


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
    assert [s["stage"] for s in record["stages"]] == ["data", "rfm", "rfm_segments"]


def test_pipeline_on_hadoop_equals_inline_byte_for_byte(pipelines, hadoop_cluster):
    local_root, _, on_hadoop, _, _ = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    for stage_file in ("data/transactions.csv", "rfm/part-00000", "rfm_segments/part-00000"):
        local = (local_root / stage_file).read_bytes()  # the data has undecodable lines
        remote = hadoop_cluster.hadoop(
            "fs", "-cat", f"/tests/pipeline/crm/{stage_file}", text=False
        )
        assert remote.stdout == local, stage_file


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
    truth = json.loads(_cat(hadoop_cluster, "/tests/pipeline/crm/data/transactions.truth.json"))
    assert lines["read"] == truth["lines_total"]


def test_pipeline_on_hadoop_refuses_to_overwrite_without_flag(pipelines, hadoop_cluster):
    _, _, on_hadoop, command, env = pipelines
    assert on_hadoop.returncode == 0, on_hadoop.stderr[-3000:]
    before = _cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json")
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    assert _cat(hadoop_cluster, "/tests/pipeline/crm/rfm/_manifest.json") == before
