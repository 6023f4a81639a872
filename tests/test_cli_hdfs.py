"""``crm-mr`` with ``hdfs://`` paths everywhere a path is accepted (real NameNode).

The commands run in-process against the session's cluster; the inline runner reads HDFS
inputs through a local copy, so these tests need no YARN job.
"""

import json
import uuid

import pytest

from models.cli import main


@pytest.fixture
def hdfs_dir(hadoop_env):
    """A fresh HDFS directory (as an hdfs:/// URI), deleted afterwards."""
    path = f"/tests/cli-{uuid.uuid4().hex[:10]}"
    hadoop_env.hadoop("fs", "-mkdir", "-p", path)
    yield f"hdfs://{path}"
    hadoop_env.hadoop("fs", "-rm", "-r", "-f", "-skipTrash", path, check=False)


def _cat(cluster, uri):
    return cluster.hadoop("fs", "-cat", uri, text=False).stdout


def _ls(cluster, uri):
    out = cluster.hadoop("fs", "-ls", "-R", uri).stdout
    return sorted(
        line.split()[-1].split(uri.removeprefix("hdfs://"), 1)[1] for line in out.splitlines()
    )


def test_generate_to_hdfs_writes_the_same_bytes_as_locally_and_refuses_to_overwrite(
    hadoop_env, hdfs_dir, tmp_path, capsys
):
    options = ["--customers", "150", "--seed", "7", "-q"]
    assert main(["generate", "-o", f"{hdfs_dir}/data/tx.csv", *options]) == 0
    assert main(["generate", "-o", str(tmp_path / "tx.csv"), *options]) == 0
    for name in ("tx.csv", "tx.truth.json", "tx.customers.jsonl"):
        assert _cat(hadoop_env, f"{hdfs_dir}/data/{name}") == (tmp_path / name).read_bytes()
    assert _ls(hadoop_env, f"{hdfs_dir}/data") == [
        "/tx.csv",
        "/tx.customers.jsonl",
        "/tx.truth.json",
    ]  # no temporary files left
    capsys.readouterr()
    assert main(["generate", "-o", f"{hdfs_dir}/data/tx.csv", *options]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_import_from_hdfs_to_hdfs_equals_a_local_import(hadoop_env, hdfs_dir, cdnow_path, tmp_path):
    hadoop_env.hadoop("fs", "-put", str(cdnow_path), f"{hdfs_dir}/cdnow.txt")
    assert (
        main(["import", "-q", "--format", "cdnow", f"{hdfs_dir}/cdnow.txt", f"{hdfs_dir}/c.csv"])
        == 0
    )
    assert (
        main(["import", "-q", "--format", "cdnow", str(cdnow_path), str(tmp_path / "c.csv")]) == 0
    )
    assert _cat(hadoop_env, f"{hdfs_dir}/c.csv") == (tmp_path / "c.csv").read_bytes()
    manifest = json.loads(_cat(hadoop_env, f"{hdfs_dir}/c.csv.manifest.json"))
    assert manifest["lines"]["read"] == 69_660
    assert manifest["lines"]["rejected_by_reason"] == {"header": 1}


def test_rfm_inline_reads_hdfs_input_and_publishes_rfm_and_segments_to_hdfs(
    hadoop_env, hdfs_dir, tmp_path
):
    local_data = tmp_path / "tx.csv"
    assert main(["generate", "-q", "-o", str(local_data), "--customers", "120"]) == 0
    hadoop_env.hadoop("fs", "-mkdir", f"{hdfs_dir}/in")
    hadoop_env.hadoop("fs", "-put", str(local_data), f"{hdfs_dir}/in/tx.csv")
    common = ["rfm", "-q", "--no-mrjob-conf", "-r", "inline"]
    rc = main(
        [*common, f"{hdfs_dir}/in/", "-o", f"{hdfs_dir}/rfm", "--segments", f"{hdfs_dir}/seg"]
    )
    assert rc == 0
    assert main([*common, str(local_data), "-o", str(tmp_path / "rfm")]) == 0
    assert (
        _cat(hadoop_env, f"{hdfs_dir}/rfm/part-00000")
        == (tmp_path / "rfm" / "part-00000").read_bytes()
    )
    listing = _ls(hadoop_env, hdfs_dir)
    assert "/rfm/_SUCCESS" in listing and "/seg/_SUCCESS" in listing
    manifest = json.loads(_cat(hadoop_env, f"{hdfs_dir}/rfm/_manifest.json"))
    assert manifest["inputs"][0]["path"].startswith("hdfs://")
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"] > 0
