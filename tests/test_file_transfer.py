"""Uploading local files and writing single files atomically, on local disk and on HDFS.

The HDFS cases use the real NameNode of the ``hadoop_cluster`` session fixture.
"""

import uuid

import pytest

from hdfs_io import (
    LocalFileSystem,
    PathExists,
    StorageError,
    UnsafePathError,
    WebHDFSFileSystem,
    write_file_atomically,
)

# bytes that are not UTF-8, a NUL, CRLF: an upload copies them unchanged
PAYLOAD = b"id,name\r\n1,\xff\xfe caf\xc3\xa9\x00\n" + bytes(range(256)) * 5000


@pytest.fixture(params=["local", "hdfs"])
def fs_and_dir(request, tmp_path):
    if request.param == "local":
        yield LocalFileSystem(), str(tmp_path / "out")
        return
    cluster = request.getfixturevalue("hadoop_cluster")
    fs = WebHDFSFileSystem(cluster.webhdfs_url, user="root")
    base = f"/tmp/transfer-{uuid.uuid4().hex[:12]}"
    fs.mkdir(base)
    yield fs, base
    fs.delete(base, recursive=True)


def _names(fs, directory):
    return sorted(fs.list(directory)) if fs.exists(directory) else []


def test_upload_copies_bytes_unchanged_in_chunks(fs_and_dir, tmp_path):
    fs, base = fs_and_dir
    local = tmp_path / "payload.bin"
    local.write_bytes(PAYLOAD)  # > 1 MiB: several chunks
    fs.upload(local, f"{base}/sub/payload.bin")
    assert fs.read(f"{base}/sub/payload.bin") == PAYLOAD


def test_upload_refuses_an_existing_file_unless_overwrite(fs_and_dir, tmp_path):
    fs, base = fs_and_dir
    local = tmp_path / "a.txt"
    local.write_bytes(b"new")
    fs.write(f"{base}/a.txt", b"old")
    with pytest.raises(PathExists):
        fs.upload(local, f"{base}/a.txt")
    assert fs.read(f"{base}/a.txt") == b"old"
    fs.upload(local, f"{base}/a.txt", overwrite=True)
    assert fs.read(f"{base}/a.txt") == b"new"


def test_upload_of_a_missing_local_file_names_it_and_creates_nothing(fs_and_dir, tmp_path):
    fs, base = fs_and_dir
    fs.mkdir(base)
    missing = tmp_path / "no-such-file.csv"
    with pytest.raises(StorageError, match="no-such-file.csv"):
        fs.upload(missing, f"{base}/x.csv")
    assert _names(fs, base) == []


def test_atomic_write_leaves_nothing_when_the_writer_fails(fs_and_dir):
    fs, base = fs_and_dir
    fs.mkdir(base)

    def half_then_fail(tmp):
        fs.write(tmp, b"half of it")
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_file_atomically(fs, f"{base}/result.csv", half_then_fail)
    assert _names(fs, base) == []  # neither the result nor the temporary file


def test_atomic_write_refuses_existing_unless_overwrite_and_never_writes_into_dirs(fs_and_dir):
    fs, base = fs_and_dir
    target = f"{base}/result.csv"
    write_file_atomically(fs, target, lambda tmp: fs.write(tmp, b"v1"))
    assert fs.read(target) == b"v1"
    calls = []
    with pytest.raises(PathExists, match="--overwrite"):
        write_file_atomically(fs, target, calls.append)
    assert calls == []  # refused before any work
    write_file_atomically(fs, target, lambda tmp: fs.write(tmp, b"v2"), overwrite=True)
    assert fs.read(target) == b"v2"
    assert _names(fs, base) == ["result.csv"]
    fs.mkdir(f"{base}/a-dir")
    with pytest.raises(UnsafePathError, match="directory"):
        write_file_atomically(fs, f"{base}/a-dir", calls.append, overwrite=True)
    assert calls == []
