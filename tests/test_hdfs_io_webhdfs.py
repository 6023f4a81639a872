"""hdfs_io's WebHDFS filesystem against a real NameNode and DataNode (Hadoop 3.5.0).

The session fixture ``hadoop_cluster`` (tests/conftest.py) starts the cluster on 127.0.0.1;
without Java these tests skip, except under CI=true where they fail. Every test works in its
own ``/tmp/hdfs-io-<uuid>`` directory on HDFS, deleted afterwards.
"""

import logging
import socket
import time
import traceback
import uuid

import pytest

from hdfs_io import (
    PathExists,
    PathNotFound,
    Publication,
    StorageError,
    UnsafePathError,
    WebHDFSFileSystem,
    get_filesystem,
    is_published,
    list_leftovers,
    read_manifest,
    read_parts,
)

TOKEN = "SeCrEtDeLeGaTiOnToKeN-9f8e7d6c5b4a"
JAVA_STACK = "\tat org.apache"


@pytest.fixture
def fs(hadoop_cluster):
    return WebHDFSFileSystem(
        hadoop_cluster.webhdfs_url,
        timeout=(5, 30),
        retries=2,
        backoff=0.05,
        fs_uri=hadoop_cluster.fs_url,
    )


@pytest.fixture
def base(fs):
    path = f"/tmp/hdfs-io-{uuid.uuid4().hex[:12]}"
    fs.mkdir(path)
    yield path
    fs.delete(path, recursive=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_names_path_and_namenode(err, path, url):
    message = str(err)
    assert repr(path) in message, message
    assert url in message, message
    assert JAVA_STACK not in message, message


# Basic operations ---------------------------------------------------------------------------


def test_write_read_stream_list_status_and_size_round_trip_on_the_namenode(fs, base):
    fs.write(f"{base}/data/a.txt", "héllo\nwörld\n")  # parents are created
    fs.write(f"{base}/data/.hidden", b"\x00\x01")
    fs.write(f"{base}/data/sub/empty", b"")
    assert fs.read(f"{base}/data/a.txt") == "héllo\nwörld\n".encode()
    assert fs.read(f"{base}/data/sub/empty") == b""
    with fs.open_read(f"{base}/data/a.txt") as stream:
        assert stream.read(3) == "hé".encode()
        assert stream.readline() == b"llo\n"
        assert stream.read() == "wörld\n".encode()
    assert fs.list(f"{base}/data") == [".hidden", "a.txt", "sub"]
    assert fs.exists(f"{base}/data/a.txt") and fs.exists(f"{base}/data")
    assert not fs.exists(f"{base}/data/b.txt")
    status = fs.status(f"{base}/data/a.txt")
    assert (status["type"], status["length"]) == ("FILE", 14)
    assert fs.status(f"{base}/data")["type"] == "DIRECTORY"
    assert fs.size(f"{base}/data/a.txt") == 14
    assert fs.size(f"{base}/data") == 16
    assert fs.walk_files(f"{base}/data") == [".hidden", "a.txt", "sub/empty"]


def test_names_with_spaces_percent_hash_question_mark_and_unicode_round_trip(fs, base):
    name = "a b%20c#d?e=f&g+ü #LATEST"
    fs.mkdir(f"{base}/#LATEST")
    fs.write(f"{base}/#LATEST/{name}", b"odd")
    assert fs.list(f"{base}/#LATEST") == [name]
    assert fs.read(f"{base}/#LATEST/{name}") == b"odd"
    assert fs.walk_files(base) == [f"#LATEST/{name}"]


def test_write_refuses_an_existing_file_unless_overwrite(fs, base):
    path = f"{base}/f.txt"
    fs.write(path, b"first")
    with pytest.raises(PathExists) as info:
        fs.write(path, b"second")
    assert_names_path_and_namenode(info.value, path, fs.url)
    assert "already exists" in str(info.value)
    assert fs.read(path) == b"first"
    fs.write(path, b"second", overwrite=True)
    assert fs.read(path) == b"second"


def test_write_lines_streams_several_chunks_and_rejects_embedded_newlines(fs, base):
    lines = [f"{i:07d}\t" + "x" * 90 for i in range(30_000)]  # about 3 MB, 3 chunks
    fs.write_lines(f"{base}/lines.tsv", iter(lines))
    assert fs.read(f"{base}/lines.tsv") == "".join(f"{line}\n" for line in lines).encode()
    with pytest.raises(PathExists):
        fs.write_lines(f"{base}/lines.tsv", ["again"])
    fs.write_lines(f"{base}/lines.tsv", ["again\n"], overwrite=True)
    assert fs.read(f"{base}/lines.tsv") == b"again\n"
    with pytest.raises(ValueError, match="line 2"):
        fs.write_lines(f"{base}/bad.tsv", ["ok", "not\nok"])
    assert fs.list(base) == ["lines.tsv"]  # a bad line in the first chunk sends nothing


def test_missing_paths_raise_path_not_found_naming_the_path_and_the_namenode(fs, base):
    missing = f"{base}/no/such/file"
    calls = {
        "status": lambda: fs.status(missing),
        "read": lambda: fs.read(missing),
        "open_read": lambda: fs.open_read(missing).__enter__(),
        "list": lambda: fs.list(missing),
        "size": lambda: fs.size(missing),
        "walk_files": lambda: fs.walk_files(missing),
    }
    for name, call in calls.items():
        with pytest.raises(PathNotFound) as info:
            call()
        assert_names_path_and_namenode(info.value, missing, fs.url)
        assert info.value.path == missing, name
    assert fs.exists(missing) is False
    assert fs.delete(missing) is False


def test_wrong_type_errors_are_storage_errors_not_path_not_found(fs, base):
    fs.write(f"{base}/file", b"x")
    fs.mkdir(f"{base}/dir")
    cases = [
        (lambda: fs.read(f"{base}/dir"), f"{base}/dir", "not a file"),
        (lambda: fs.list(f"{base}/file"), f"{base}/file", "not a directory"),
        (lambda: fs.mkdir(f"{base}/file"), f"{base}/file", "not a directory"),
        (lambda: fs.write(f"{base}/file/child", b"y"), f"{base}/file/child", "not a directory"),
    ]
    for call, path, words in cases:
        with pytest.raises(StorageError) as info:
            call()
        assert type(info.value) is StorageError, info.value
        assert_names_path_and_namenode(info.value, path, fs.url)
        assert words in str(info.value)


# Rename and delete --------------------------------------------------------------------------


def test_rename_moves_files_and_directories(fs, base):
    fs.write(f"{base}/d1/f", b"1")
    fs.rename(f"{base}/d1/f", f"{base}/d1/g")
    fs.rename(f"{base}/d1", f"{base}/d2")
    assert fs.walk_files(base) == ["d2/g"]
    assert fs.read(f"{base}/d2/g") == b"1"


def test_rename_refusals_name_the_path_at_fault(fs, base):
    fs.write(f"{base}/src/f", b"1")
    fs.mkdir(f"{base}/dst")
    with pytest.raises(PathNotFound, match="source does not exist") as info:
        fs.rename(f"{base}/nothing", f"{base}/x")
    assert info.value.path == f"{base}/nothing"
    with pytest.raises(PathExists, match="destination exists") as info:
        fs.rename(f"{base}/src", f"{base}/dst")
    assert info.value.path == f"{base}/dst"
    with pytest.raises(PathNotFound, match="parent directory") as info:
        fs.rename(f"{base}/src", f"{base}/no/parent/dst")
    assert info.value.path == f"{base}/no/parent"
    assert fs.walk_files(base) == ["src/f"]


def test_rename_is_refused_by_the_namenode_when_the_destination_appears_after_the_check(
    fs, base, monkeypatch
):
    # Plain WebHDFS RENAME would move src *into* an existing directory dst: simulate a
    # destination created between the check and the rename, and see the NameNode refuse it.
    fs.write(f"{base}/staging/part-00000", b"new")
    fs.write(f"{base}/final/part-00000", b"old")
    real_exists = fs.exists
    monkeypatch.setattr(fs, "exists", lambda p: False if p == f"{base}/final" else real_exists(p))
    with pytest.raises(PathExists) as info:
        fs.rename(f"{base}/staging", f"{base}/final")
    assert info.value.path == f"{base}/final"
    assert fs.walk_files(base) == ["final/part-00000", "staging/part-00000"]
    assert fs.read(f"{base}/final/part-00000") == b"old"


def test_delete_files_and_directories_and_refuse_the_root(fs, base):
    fs.write(f"{base}/full/f", b"1")
    fs.mkdir(f"{base}/empty")
    with pytest.raises(StorageError, match="not empty") as info:
        fs.delete(f"{base}/full")
    assert_names_path_and_namenode(info.value, f"{base}/full", fs.url)
    assert fs.exists(f"{base}/full/f")
    assert fs.delete(f"{base}/empty") is True
    assert fs.delete(f"{base}/full", recursive=True) is True
    assert fs.list(base) == []
    with pytest.raises(UnsafePathError):
        fs.delete("hdfs:///", recursive=True)


# Atomic publishing --------------------------------------------------------------------------


def publish(fs, path, parts, overwrite=False, job="segments"):
    """Publish `parts` (lists of lines) with a manifest; each file costs the DataNode ~0.4 s."""
    with Publication(fs, path, overwrite=overwrite) as pub:
        for index, lines in enumerate(parts):
            pub.write_part(index, lines)
        return pub.commit({"job": job, "rows": sum(map(len, parts))})


def test_published_result_has_hadoop_layout_and_reads_back_through_an_hdfs_uri(
    hadoop_env, fs, base
):
    out = f"{base}/results/segments"
    with Publication(fs, out) as pub:
        pub.write_part(1, ["c3\tA"])
        pub.write_part(0, ["c1\tA", "c2\tB"])
        pub.write_file("summary/counts.csv", "rows,3\n")
        assert pub.commit({"job": "segments", "rows": 3}) == out
    assert fs.list(out) == ["_SUCCESS", "_manifest.json", "part-00000", "part-00001", "summary"]
    assert fs.read(f"{out}/_SUCCESS") == b""
    assert list_leftovers(fs, out) == []
    assert fs.list(f"{base}/results") == ["segments"]  # no staging directory left
    # A new filesystem resolved from the hdfs:// URI (CRM_WEBHDFS_URL) reads the result back.
    reader, path = get_filesystem(f"{hadoop_env.fs_url}{out}")
    assert isinstance(reader, WebHDFSFileSystem) and path == out
    assert is_published(reader, path)
    assert list(read_parts(reader, path)) == ["c1\tA", "c2\tB", "c3\tA"]
    assert read_manifest(reader, path) == {"job": "segments", "rows": 3}
    assert reader.read(f"{path}/summary/counts.csv") == b"rows,3\n"
    # Hadoop's own client (RPC, not WebHDFS) sees the same bytes at the same URI.
    shown = hadoop_env.hadoop("fs", "-cat", reader.uri(f"{path}/part-00001"))
    assert shown.stdout == "c3\tA\n"


def test_publish_refuses_an_existing_destination_unless_overwrite(fs, base):
    out = f"{base}/out"
    publish(fs, out, [["a", "b"]], job="first")
    with pytest.raises(PathExists, match="pass --overwrite") as info:
        Publication(fs, out)
    assert repr(out) in str(info.value)
    # A destination appearing while the job ran is refused at commit, and left untouched.
    pub = Publication(fs, f"{base}/late")
    with pytest.raises(PathExists), pub:
        pub.write_part(0, ["mine"])
        publish(fs, f"{base}/late", [["x"]], job="other")
        pub.commit({"job": "mine"})
    assert read_manifest(fs, f"{base}/late")["job"] == "other"
    assert not fs.exists(pub.staging_path)
    # With overwrite the previous result is replaced, without leftovers.
    publish(fs, out, [["d", "e"], ["f"]], overwrite=True, job="second")
    assert list(read_parts(fs, out)) == ["d", "e", "f"]
    assert read_manifest(fs, out)["job"] == "second"
    assert list_leftovers(fs, out) == []
    assert sorted(fs.list(base)) == ["late", "out"]


def test_publish_overwrite_refuses_a_directory_that_is_not_a_previous_result(fs, base):
    fs.write(f"{base}/precious/data.csv", b"keep me")
    with pytest.raises(UnsafePathError, match="not a previous result"):
        Publication(fs, f"{base}/precious", overwrite=True)
    assert fs.read(f"{base}/precious/data.csv") == b"keep me"


def test_failed_publication_leaves_neither_result_nor_staging(fs, base):
    pub = Publication(fs, f"{base}/out")
    with pytest.raises(RuntimeError), pub:
        pub.write_part(0, ["half"])
        assert fs.exists(pub.staging_path)
        raise RuntimeError("job failed")
    assert fs.list(base) == []


# Resolution, connection failures and credentials --------------------------------------------


def test_get_filesystem_resolves_hdfs_uris_with_crm_webhdfs_url(hadoop_env, fs, base):
    path = f"{base}/resolved.txt"
    default_fs, default_path = get_filesystem(f"hdfs://{path}")  # hdfs:///tmp/...
    assert default_path == path and default_fs.url == hadoop_env.webhdfs_url
    assert default_fs.uri(path) == f"hdfs://{path}"
    default_fs.write(path, b"via hdfs:///")
    full_fs, full_path = get_filesystem(f"{hadoop_env.fs_url}{path}")
    assert full_path == path
    assert full_fs.uri(path) == f"{hadoop_env.fs_url}{path}"
    assert full_fs.read(full_path) == b"via hdfs:///"
    assert fs.read(path) == b"via hdfs:///"


def test_refused_connection_gives_up_after_bounded_retries_naming_url_and_cause(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    fs, path = get_filesystem(
        "hdfs:///user/analyst/out", config={"url": url, "retries": 3, "backoff": 0.1}
    )
    caplog.set_level(logging.WARNING, logger="hdfs_io.webhdfs")
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        fs.read(path)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert url in message and "'/user/analyst/out'" in message
    assert "Connection refused" in message and "gave up after 3 attempts" in message
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2
    assert 0.3 <= elapsed < 5  # backoff 0.1 + 0.2, then gave up


def test_delegation_token_never_appears_in_errors_logs_or_repr(hadoop_cluster, base, caplog):
    caplog.set_level(logging.DEBUG)
    fs, _ = get_filesystem(
        f"{hadoop_cluster.fs_url}{base}",
        config={"url": hadoop_cluster.webhdfs_url, "token": TOKEN, "retries": 1},
    )
    assert fs.auth == "token"
    # Security is off, so the NameNode ignores the token, but the DataNode tries to decode it.
    assert fs.list(base) == []
    with pytest.raises(StorageError) as info:
        fs.write(f"{base}/with-token", b"x")
    err = info.value
    assert_names_path_and_namenode(err, f"{base}/with-token", hadoop_cluster.webhdfs_url)
    assert "delegation token" in str(err)
    with pytest.raises(PathNotFound) as missing:
        fs.read(f"{base}/absent")
    shown = [repr(fs), str(fs.__dict__.get("url"))]
    for error in (err, missing.value):
        shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
    shown += [record.getMessage() for record in caplog.records]
    assert any("delegation=***" in text for text in shown)  # urllib3's request lines
    assert all(TOKEN not in text for text in shown)


# mrjob's filesystem interface over WebHDFS (models.mrjob_fs) -----------------------------------


def test_mrjob_filesystem_over_webhdfs_lists_globs_cats_and_removes_as_hadoop_fs_does(
    hadoop_env, fs, base, tmp_path
):
    """What mrjob's hadoop runner asks of HDFS, answered by WebHDFS: the same files,
    bytes and sizes as ``hadoop fs -ls -R`` / ``-cat`` / ``-du``, wildcards expanded."""
    import gzip

    from mrjob.fs.hadoop import HadoopFilesystem

    from models.mrjob_fs import WebHDFSMrjobFilesystem

    web = WebHDFSMrjobFilesystem(fs)
    hadoop = HadoopFilesystem([hadoop_env.hadoop_bin])
    out = fs.uri(f"{base}/out")
    web.mkdir(f"{out}/sub")
    local = tmp_path / "part"
    local.write_bytes(b"a\tb\nc\n")
    web.put(str(local), f"{out}/part-00000")
    web.put(str(local), f"{out}/sub/part-00001")
    zipped = tmp_path / "part.gz"
    zipped.write_bytes(gzip.compress(b"zipped\n"))
    web.put(str(zipped), f"{out}/part-00002.gz")
    web.touchz(f"{out}/_SUCCESS")

    assert sorted(web.ls(out)) == sorted(hadoop.ls(out))
    assert len(list(web.ls(out))) == 4
    assert sorted(web.ls(f"{out}/part-*")) == sorted(hadoop.ls(f"{out}/part-*"))
    assert [p.rsplit("/", 1)[-1] for p in sorted(web.ls(f"{out}/*/part-*"))] == ["part-00001"]
    assert b"".join(web.cat(f"{out}/part-00000")) == b"a\tb\nc\n"
    assert b"".join(web.cat(f"{out}/part-00002.gz")) == b"zipped\n"
    assert web.du(out) == hadoop.du(out)
    assert web.exists(f"{out}/part-*") and not web.exists(f"{out}/nothing-*")
    with pytest.raises(OSError, match="already exists"):
        web.touchz(f"{out}/part-00000")

    web.rm(f"{out}/sub")
    assert not web.exists(f"{out}/sub") and web.exists(out)
    web.rm(out)
    assert not hadoop.exists(out)
