"""Tests of the storage package hdfs_io (local filesystem, WebHDFS error handling, publishing)."""

import contextlib
import getpass
import http.server
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from hdfs_io import (
    LocalFileSystem,
    PathExists,
    PathNotFound,
    Publication,
    StorageError,
    UnsafePathError,
    WebHDFSFileSystem,
    check_can_publish,
    get_filesystem,
    is_hdfs,
    is_published,
    join,
    list_leftovers,
    read_manifest,
    read_parts,
    validate_deletable,
    webhdfs_settings,
)
from hdfs_io.base import encode_lines

ENV_VARS = [
    "CRM_WEBHDFS_URL",
    "CRM_WEBHDFS_USER",
    "CRM_WEBHDFS_TOKEN",
    "CRM_WEBHDFS_KERBEROS",
    "CRM_WEBHDFS_TIMEOUT",
    "CRM_WEBHDFS_RETRIES",
    "CRM_WEBHDFS_BACKOFF",
]
TOKEN = "SeCrEtDeLeGaTiOnToKeN0123456789"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fs():
    return LocalFileSystem()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def entries(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# LocalFileSystem ------------------------------------------------------------------------------


def test_local_write_creates_parent_directories_and_encodes_str_as_utf8(fs, tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    fs.write(str(target), "héllo")
    assert target.read_bytes() == "héllo".encode()
    assert fs.read(str(target)) == "héllo".encode()


def test_local_write_refuses_existing_file_unless_overwrite(fs, tmp_path):
    target = tmp_path / "f"
    fs.write(str(target), b"one")
    with pytest.raises(PathExists, match="file exists"):
        fs.write(str(target), b"two")
    assert target.read_bytes() == b"one"
    fs.write(str(target), b"two", overwrite=True)
    assert target.read_bytes() == b"two"


def test_local_write_leaves_no_temporary_file(fs, tmp_path):
    fs.write(str(tmp_path / "f"), b"x")
    fs.write(str(tmp_path / "f"), b"y", overwrite=True)
    assert entries(tmp_path) == ["f"]


def test_local_write_is_atomic_when_the_data_fails_midway(fs, tmp_path):
    target = tmp_path / "f"
    fs.write(str(target), b"old\n")

    def lines():
        yield "new"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        fs.write_lines(str(target), lines(), overwrite=True)
    assert target.read_bytes() == b"old\n"
    assert entries(tmp_path) == ["f"]


def test_local_write_onto_a_directory_fails(fs, tmp_path):
    with pytest.raises(StorageError, match="directory"):
        fs.write(str(tmp_path), b"x", overwrite=True)


def test_local_write_lines_adds_newlines_and_rejects_embedded_ones(fs, tmp_path):
    fs.write_lines(str(tmp_path / "f"), ["a\tb", "c\n", ""])
    assert (tmp_path / "f").read_bytes() == b"a\tb\nc\n\n"
    with pytest.raises(ValueError, match="embedded newline"):
        list(encode_lines(["ok", "bad\nline"]))


def test_local_status_reports_type_and_length(fs, tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    status = fs.status(str(tmp_path / "f"))
    assert status["type"] == "FILE"
    assert status["length"] == 5
    assert status["modificationTime"] > 0
    assert fs.status(str(tmp_path))["type"] == "DIRECTORY"


def test_local_status_of_missing_path_raises_path_not_found_naming_it(fs, tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(PathNotFound) as info:
        fs.status(missing)
    assert repr(missing) in str(info.value)
    assert info.value.path == missing
    assert isinstance(info.value, StorageError)


def test_local_exists(fs, tmp_path):
    assert fs.exists(str(tmp_path))
    assert not fs.exists(str(tmp_path / "missing"))


def test_local_list_returns_sorted_names(fs, tmp_path):
    for name in ["b", "a", ".hidden", "_SUCCESS"]:
        (tmp_path / name).write_text("")
    (tmp_path / "dir").mkdir()
    assert fs.list(str(tmp_path)) == [".hidden", "_SUCCESS", "a", "b", "dir"]


def test_local_list_of_missing_or_file_fails(fs, tmp_path):
    with pytest.raises(PathNotFound):
        fs.list(str(tmp_path / "missing"))
    (tmp_path / "f").write_text("")
    with pytest.raises(StorageError, match="not a directory"):
        fs.list(str(tmp_path / "f"))


def test_local_open_read_streams_binary_content(fs, tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789")
    with fs.open_read(str(tmp_path / "f")) as stream:
        assert stream.read(4) == b"0123"
        assert stream.read() == b"456789"
    assert stream.closed
    with pytest.raises(PathNotFound), fs.open_read(str(tmp_path / "missing")):
        pass


def test_local_mkdir_creates_parents_and_accepts_existing_directory(fs, tmp_path):
    target = tmp_path / "x" / "y"
    fs.mkdir(str(target))
    fs.mkdir(str(target))
    assert target.is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="file exists"):
        fs.mkdir(str(tmp_path / "file"))


def test_local_rename_moves_file_and_directory(fs, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    fs.rename(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst" / "f").read_text() == "x"
    assert not (tmp_path / "src").exists()


def test_local_rename_onto_existing_path_fails(fs, tmp_path):
    src, dst, empty_dir = tmp_path / "a", tmp_path / "b", tmp_path / "empty"
    src.write_text("a")
    dst.write_text("b")
    empty_dir.mkdir()
    with pytest.raises(PathExists) as info:
        fs.rename(str(src), str(dst))
    assert str(info.value) == f"Cannot rename {str(src)!r} to {str(dst)!r}: destination exists"
    assert dst.read_text() == "b"
    # os.rename would silently replace an empty directory: ours refuses
    (tmp_path / "srcdir").mkdir()
    with pytest.raises(PathExists):
        fs.rename(str(tmp_path / "srcdir"), str(empty_dir))
    assert (tmp_path / "srcdir").is_dir()


def test_local_rename_of_missing_source_raises_path_not_found(fs, tmp_path):
    with pytest.raises(PathNotFound, match="source does not exist"):
        fs.rename(str(tmp_path / "missing"), str(tmp_path / "dst"))


def test_local_delete_of_missing_path_returns_false(fs, tmp_path):
    assert fs.delete(str(tmp_path / "missing")) is False
    assert fs.delete(str(tmp_path / "missing"), recursive=True) is False


def test_local_delete_file_and_directories(fs, tmp_path):
    (tmp_path / "f").write_text("x")
    assert fs.delete(str(tmp_path / "f")) is True
    (tmp_path / "empty").mkdir()
    assert fs.delete(str(tmp_path / "empty")) is True
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("x")
    with pytest.raises(StorageError, match="Cannot delete"):
        fs.delete(str(tmp_path / "tree"))
    assert fs.delete(str(tmp_path / "tree"), recursive=True) is True
    assert entries(tmp_path) == []


def test_local_delete_removes_a_link_without_following_it(fs, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "precious")
    assert fs.delete(str(tmp_path / "link"), recursive=True) is True
    assert (tmp_path / "precious" / "data").read_text() == "keep"


def test_local_delete_refuses_the_root(fs):
    with pytest.raises(UnsafePathError, match="filesystem root"):
        fs.delete("/")  # non-recursive: harmless even if the guard were missing


def test_local_walk_files_lists_relative_paths_recursively(fs, tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "top").write_bytes(b"12")
    (tmp_path / "d" / "mid").write_bytes(b"345")
    (tmp_path / "d" / "e" / "deep").write_bytes(b"6789")
    assert fs.walk_files(str(tmp_path)) == ["d/e/deep", "d/mid", "top"]
    assert fs.size(str(tmp_path)) == 9
    assert fs.size(str(tmp_path / "d" / "mid")) == 3
    with pytest.raises(StorageError, match="not a directory"):
        fs.walk_files(str(tmp_path / "top"))
    with pytest.raises(PathNotFound):
        fs.walk_files(str(tmp_path / "missing"))


def test_local_accepts_file_uris_and_builds_them(fs, tmp_path):
    target = tmp_path / "with space"
    uri = fs.uri(str(target))
    assert uri == target.as_uri()
    assert uri.startswith("file:///") and "%20" in uri
    fs.write(uri, b"x")
    assert target.read_bytes() == b"x"
    assert fs.exists("file://localhost" + str(target))
    with pytest.raises(StorageError, match="host"):
        fs.exists("file://otherhost/tmp/x")


# read_parts -----------------------------------------------------------------------------------


def test_read_parts_reads_parts_in_order_and_ignores_markers_and_hidden_files(fs, tmp_path):
    (tmp_path / "part-00001").write_text("c\nd\n")
    (tmp_path / "part-00000").write_text("a\nb\n")
    (tmp_path / "part-00002").write_text("e")  # no final newline
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "_manifest.json").write_text("{}")
    (tmp_path / ".part-00003.crc").write_text("junk")
    (tmp_path / "_logs").mkdir()
    assert list(read_parts(fs, str(tmp_path))) == ["a", "b", "c", "d", "e"]


def test_read_parts_orders_by_part_number_and_handles_multibyte_text(fs, tmp_path):
    big = "é" * 40_000  # 80 kB of 2-byte characters: crosses read chunk boundaries
    (tmp_path / "part-100000").write_text("last\n")
    (tmp_path / "part-r-99999").write_text(big + "\n\nafter\n", encoding="utf-8")
    assert list(read_parts(fs, str(tmp_path))) == [big, "", "after", "last"]


def test_read_parts_without_part_files_fails(fs, tmp_path):
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(StorageError, match="No part-"):
        list(read_parts(fs, str(tmp_path)))


# get_filesystem, join, is_hdfs -------------------------------------------------------------------


def test_get_filesystem_routes_plain_paths_and_file_uris_to_local(tmp_path, monkeypatch):
    fs, path = get_filesystem(str(tmp_path / "out"))
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "out")
    fs, path = get_filesystem((tmp_path / "out").as_uri())
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    assert get_filesystem("rel/out")[1] == str(tmp_path / "rel" / "out")


def test_get_filesystem_for_hdfs_without_webhdfs_url_names_the_variable():
    with pytest.raises(StorageError) as info:
        get_filesystem("hdfs://namenode:8020/user/me/out")
    message = str(info.value)
    assert "CRM_WEBHDFS_URL" in message
    assert "hdfs://namenode:8020/user/me/out" in message


def test_get_filesystem_routes_hdfs_uris_to_webhdfs_with_environment(monkeypatch):
    monkeypatch.setenv("CRM_WEBHDFS_URL", "http://127.0.0.1:9870")
    monkeypatch.setenv("CRM_WEBHDFS_USER", "analyst")
    monkeypatch.setenv("CRM_WEBHDFS_TIMEOUT", "3,30")
    monkeypatch.setenv("CRM_WEBHDFS_RETRIES", "5")
    fs, path = get_filesystem("hdfs://namenode:8020/user/analyst/./out/")
    assert isinstance(fs, WebHDFSFileSystem)
    assert path == "/user/analyst/out"
    assert (fs.url, fs.user, fs.timeout, fs.retries) == (
        "http://127.0.0.1:9870",
        "analyst",
        (3.0, 30.0),
        5,
    )
    assert fs.uri(path) == "hdfs://namenode:8020/user/analyst/out"


def test_explicit_config_takes_precedence_over_environment(monkeypatch):
    monkeypatch.setenv("CRM_WEBHDFS_URL", "http://env-host:9870")
    monkeypatch.setenv("CRM_WEBHDFS_RETRIES", "7")
    settings = webhdfs_settings({"url": "http://cfg-host:9870", "timeout": 5})
    assert settings["url"] == "http://cfg-host:9870"
    assert settings["retries"] == 7
    assert settings["timeout"] == 5.0
    fs, _ = get_filesystem("hdfs:///user/x", config={"url": "http://cfg-host:9870"})
    assert fs.url == "http://cfg-host:9870"
    assert fs.uri("/user/x") == "hdfs:///user/x"


def test_invalid_settings_are_reported_with_their_source(monkeypatch):
    monkeypatch.setenv("CRM_WEBHDFS_TIMEOUT", "soon")
    with pytest.raises(StorageError, match="CRM_WEBHDFS_TIMEOUT"):
        webhdfs_settings()
    with pytest.raises(StorageError, match="Unknown WebHDFS setting"):
        webhdfs_settings({"uri": "http://x:9870"})


def test_webhdfs_rejects_the_hdfs_rpc_address_as_url():
    with pytest.raises(StorageError, match="NameNode HTTP address"):
        get_filesystem("hdfs://nn:8020/x", config={"url": "hdfs://nn:8020"})


def test_webhdfs_paths_must_be_absolute():
    fs = WebHDFSFileSystem("http://127.0.0.1:9870")
    assert fs.normalize("//user//x/../y") == "/user/y"
    with pytest.raises(StorageError, match="absolute"):
        fs.normalize("user/x")


def test_is_hdfs_and_join():
    assert is_hdfs("hdfs://nn:8020/x") and is_hdfs("HDFS:///x")
    assert not is_hdfs("/tmp/x") and not is_hdfs("file:///tmp/x")
    assert (
        join("hdfs://nn:8020/user/x", "out", "part-00000") == "hdfs://nn:8020/user/x/out/part-00000"
    )
    assert join("hdfs://nn:8020", "user") == "hdfs://nn:8020/user"
    assert join("file:///tmp/a/", "/b") == "file:///tmp/a/b"
    assert join("/tmp/a", "b", "c") == "/tmp/a/b/c"
    assert join("rel", "b") == "rel/b"


# WebHDFS without a cluster ---------------------------------------------------------------------


def test_webhdfs_refused_connection_fails_after_exactly_retries_attempts_with_backoff(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    fs = WebHDFSFileSystem(url, user="analyst", retries=3, backoff=0.05, timeout=(2, 2))
    caplog.set_level(logging.WARNING, logger="hdfs_io.webhdfs")
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        fs.status("/user/analyst/out")
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert "'/user/analyst/out'" in message
    assert url in message
    assert "refused" in message.lower()
    assert "after 3 attempts" in message
    retries_logged = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries_logged) == 2  # attempts 1 and 2 were retried, attempt 3 raised
    assert elapsed >= 0.05 + 0.1  # exponential backoff: 0.05 then 0.10


def test_webhdfs_namespace_changes_are_retried_when_the_request_was_never_sent(caplog):
    fs = WebHDFSFileSystem(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.001)
    caplog.set_level(logging.WARNING, logger="hdfs_io.webhdfs")
    with pytest.raises(StorageError, match="after 2 attempts"):
        fs.delete("/user/x/out", recursive=True)


def test_webhdfs_token_never_appears_in_errors_logs_or_repr(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG)
    fs, path = get_filesystem(
        "hdfs://nn:8020/user/x/out",
        config={"url": url, "token": TOKEN, "retries": 2, "backoff": 0.001},
    )
    assert TOKEN not in repr(fs)
    assert TOKEN not in str(vars(fs).get("auth"))
    with pytest.raises(StorageError) as info:
        fs.read(path)
    err = info.value
    assert url in str(err) and "/user/x/out" in str(err)
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)
    assert TOKEN not in "".join(traceback.format_exception(err))
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_webhdfs_token_given_by_environment_is_not_shown_either(monkeypatch):
    monkeypatch.setenv("CRM_WEBHDFS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CRM_WEBHDFS_TOKEN", TOKEN)
    monkeypatch.setenv("CRM_WEBHDFS_RETRIES", "1")
    fs, path = get_filesystem("hdfs:///user/x")
    with pytest.raises(StorageError) as info:
        fs.list(path)
    assert "after 1 attempt)" in str(info.value)
    assert TOKEN not in "".join(traceback.format_exception(info.value)) + repr(fs)


FAKE_FILES = {
    "/out/part-00001": b"c\nd\n",
    "/out/part-00000": b"a\nb\n",
    "/out/_SUCCESS": b"",
}


class _FakeNameNode(http.server.BaseHTTPRequestHandler):
    """Minimal WebHDFS server: missing paths ("not-found"), an HTML page ("html"), or the
    read-only tree FAKE_FILES ("files") with OPEN redirected like a NameNode does."""

    requests = []
    mode = "not-found"

    def _send(self, status, body, ctype="application/json", headers=()):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).requests.append(self.path)
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/webhdfs/v1")
        op = parse_qs(parts.query).get("op", [""])[0]
        if self.mode == "html":
            return self._send(200, b"<html>Not WebHDFS</html>", "text/html")
        if self.mode == "dead-datanode" and op == "OPEN":
            location = f"http://127.0.0.1:{self.dead_port}/webhdfs/v1{path}?op=OPEN"
            return self._send(307, b"", headers=[("Location", location)])
        if parts.path.startswith("/datanode"):
            return self._send(200, FAKE_FILES[parts.path.removeprefix("/datanode")], "x/y")
        children = sorted(p.rsplit("/", 1)[1] for p in FAKE_FILES if p.startswith(path + "/"))
        if self.mode == "files" and path in FAKE_FILES:
            if op == "OPEN":
                return self._send(307, b"", headers=[("Location", "/datanode" + path)])
            status = {"type": "FILE", "length": len(FAKE_FILES[path]), "pathSuffix": ""}
            if op == "GETFILESTATUS":
                return self._send(200, {"FileStatus": status})
            if op == "LISTSTATUS":
                return self._send(200, {"FileStatuses": {"FileStatus": [status]}})
        if self.mode == "files" and children:
            if op == "GETFILESTATUS":
                return self._send(200, {"FileStatus": {"type": "DIRECTORY", "length": 0}})
            if op == "LISTSTATUS":
                statuses = [
                    {"type": "FILE", "length": len(FAKE_FILES[path + "/" + n]), "pathSuffix": n}
                    for n in children
                ]
                return self._send(200, {"FileStatuses": {"FileStatus": statuses}})
        exception = {
            "exception": "FileNotFoundException",
            "javaClassName": "java.io.FileNotFoundException",
            "message": f"File does not exist: {path}",
        }
        return self._send(404, {"RemoteException": exception})

    def do_PUT(self):  # noqa: N802 - http.server API
        """CREATE is redirected to "/datanode", which reads a little of the data and hangs up."""
        type(self).requests.append(self.path)
        parts = urlsplit(self.path)
        if not parts.path.startswith("/datanode"):
            host = self.headers["Host"]
            location = f"http://{host}/datanode" + parts.path.removeprefix("/webhdfs/v1")
            return self._send(307, b"", headers=[("Location", location)])
        self.rfile.read(1000)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def fake_namenode(mode, dead_port=None):
    attributes = {"requests": [], "mode": mode, "dead_port": dead_port}
    handler = type("Handler", (_FakeNameNode,), attributes)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def test_webhdfs_file_not_found_maps_to_path_not_found_without_retry():
    with fake_namenode("not-found") as (url, seen):
        fs = WebHDFSFileSystem(url, user="analyst", retries=3, backoff=0.001)
        with pytest.raises(PathNotFound) as info:
            fs.status("/user/analyst/missing")
        assert len(seen) == 1
        assert "'/user/analyst/missing'" in str(info.value) and url in str(info.value)
        assert parse_qs(urlsplit(seen[0]).query)["user.name"] == ["analyst"]
        assert fs.exists("hdfs://nn:8020/user/analyst/missing") is False


def test_webhdfs_reads_and_streams_part_files():
    with fake_namenode("files") as (url, seen):
        fs, path = get_filesystem("hdfs://nn:8020/out", config={"url": url, "user": "analyst"})
        assert fs.list(path) == ["_SUCCESS", "part-00000", "part-00001"]
        assert fs.status("/out/part-00000")["type"] == "FILE"
        assert fs.read("/out/part-00001") == b"c\nd\n"
        with fs.open_read("/out/part-00000") as stream:
            assert stream.read(2) == b"a\n"
            assert stream.read() == b"b\n"
        assert list(read_parts(fs, path)) == ["a", "b", "c", "d"]
        assert is_published(fs, path)
        with pytest.raises(PathNotFound):
            fs.read("/out/missing")
        assert any("/datanode/" in request for request in seen)


def test_webhdfs_url_of_a_non_webhdfs_server_gives_a_hint():
    with fake_namenode("html") as (url, _seen):
        fs = WebHDFSFileSystem(url, retries=3, backoff=0.001)
        with pytest.raises(StorageError, match="NameNode HTTP address"):
            fs.status("/user/x")


def test_webhdfs_unreachable_datanode_is_named_in_the_error():
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}"
    with fake_namenode("dead-datanode", dead_port=dead_port) as (url, _seen):
        fs = WebHDFSFileSystem(url, retries=2, backoff=0.001)
        with pytest.raises(StorageError) as info:
            fs.read("/out/part-00000")
    message = str(info.value)
    assert url in message and "'/out/part-00000'" in message
    assert "refused" in message.lower() and "after 2 attempts" in message
    assert f"at {dead}, where the NameNode redirected" in message


def test_webhdfs_streamed_write_is_not_retried_once_data_was_sent():
    with fake_namenode("files") as (url, seen):
        fs = WebHDFSFileSystem(url, retries=3, backoff=0.001)
        lines = (f"{i:06d}" + "x" * 200 for i in range(20_000))  # about 4 MB, several chunks
        with pytest.raises(StorageError) as info:
            fs.write_lines("/out/big", lines, overwrite=True)
    assert "not retried: part of the data was already sent" in str(info.value)
    assert "'/out/big'" in str(info.value)
    assert sum(path.startswith("/datanode") for path in seen) == 1


@contextlib.contextmanager
def silent_server():
    """A TCP server that accepts connections but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_webhdfs_read_timeout_is_retried_for_reads_then_reported(caplog):
    caplog.set_level(logging.WARNING, logger="hdfs_io.webhdfs")
    with silent_server() as url:
        fs = WebHDFSFileSystem(url, timeout=(1, 0.2), retries=2, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(StorageError) as info:
            fs.status("/user/x")
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert url in message and "'/user/x'" in message
    assert "timed out" in message and "after 2 attempts" in message
    assert 0.4 <= elapsed < 3
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 1


def test_webhdfs_read_timeout_is_not_retried_for_namespace_changes(caplog):
    caplog.set_level(logging.WARNING, logger="hdfs_io.webhdfs")
    with silent_server() as url:
        fs = WebHDFSFileSystem(url, timeout=(1, 0.2), retries=3, backoff=0.01)
        with pytest.raises(StorageError) as info:
            fs.delete("/user/x/out", recursive=True)
    assert "may or may not have been applied" in str(info.value)
    assert not any("retrying" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("timeout", 0, "timeout 0"),
        ("timeout", (1, 2, 3), "timeout (1, 2, 3)"),
        ("timeout", "10", "timeout '10'"),
        ("retries", 0, "retries 0"),
        ("retries", 2.5, "retries 2.5"),
        ("backoff", -1, "backoff -1"),
    ],
)
def test_webhdfs_invalid_settings_name_the_value(setting, value, words):
    with pytest.raises(StorageError, match=re.escape(f"Invalid WebHDFS {words}:")):
        WebHDFSFileSystem("http://127.0.0.1:9870", **{setting: value})


def test_webhdfs_kerberos_without_the_package_names_what_to_install(monkeypatch):
    # Whether or not requests-kerberos is installed here, make its import fail.
    monkeypatch.setitem(sys.modules, "requests_kerberos", None)
    monkeypatch.delitem(sys.modules, "hdfs.ext.kerberos", raising=False)
    with pytest.raises(StorageError) as info:
        WebHDFSFileSystem("http://127.0.0.1:9870", kerberos=True)
    message = str(info.value)
    assert "http://127.0.0.1:9870" in message
    assert "pip install requests-kerberos" in message and "hdfs[kerberos]" in message
    monkeypatch.setenv("CRM_WEBHDFS_URL", "http://127.0.0.1:9870")
    monkeypatch.setenv("CRM_WEBHDFS_KERBEROS", "1")
    with pytest.raises(StorageError, match="requests-kerberos"):
        get_filesystem("hdfs:///user/x")


def test_webhdfs_user_defaults_to_the_local_user():
    fs = WebHDFSFileSystem("http://127.0.0.1:9870")
    assert fs.user == getpass.getuser()
    assert fs.home_directory() == f"/user/{getpass.getuser()}"
    assert f"user={getpass.getuser()!r}" in repr(fs)


# Publication ----------------------------------------------------------------------------------


def test_publish_creates_part_files_success_marker_and_manifest(fs, tmp_path):
    final = tmp_path / "results" / "segments"
    with Publication(fs, str(final)) as pub:
        staging = Path(pub.staging_path)
        assert staging.parent == final.parent and staging.is_dir()
        assert staging.name.startswith(".segments.tmp-") and len(staging.name) == 14 + 32
        pub.write_part(1, ["c\t3"])
        pub.write_part(0, iter(["a\t1", "b\t2"]))
        pub.write_file("segments.csv", "id,segment\n1,vip\n")
        assert not final.exists()
        assert pub.commit({"rows": 3, "job": "segments"}) == str(final)
    assert entries(final) == [
        "_SUCCESS",
        "_manifest.json",
        "part-00000",
        "part-00001",
        "segments.csv",
    ]
    assert (final / "_SUCCESS").read_bytes() == b""
    assert (final / "_manifest.json").read_text() == '{\n  "job": "segments",\n  "rows": 3\n}\n'
    assert (final / "part-00000").read_text() == "a\t1\nb\t2\n"
    assert is_published(fs, str(final)) and read_manifest(fs, str(final))["rows"] == 3
    assert list(read_parts(fs, str(final))) == ["a\t1", "b\t2", "c\t3"]
    assert entries(final.parent) == ["segments"]


def test_publish_exception_inside_with_leaves_neither_final_nor_staging(fs, tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError, match="job failed"), Publication(fs, str(final)) as pub:
        pub.write_part(0, ["a"])
        raise RuntimeError("job failed")
    assert entries(tmp_path) == []


def test_publish_without_commit_discards_the_staging_directory(fs, tmp_path):
    with Publication(fs, str(tmp_path / "out")) as pub:
        pub.write_part(0, ["a"])
    assert entries(tmp_path) == []
    assert not is_published(fs, str(tmp_path / "out"))


def test_publish_refuses_existing_result_without_overwrite(fs, tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "_SUCCESS").write_text("")
    with pytest.raises(PathExists, match="exists; pass --overwrite to replace it"):
        Publication(fs, str(final))  # fails before any job runs
    with pytest.raises(PathExists):
        check_can_publish(fs, str(final), overwrite=False)
    assert entries(tmp_path) == ["out"]


def test_publish_refuses_result_that_appeared_while_the_job_ran(fs, tmp_path):
    final = tmp_path / "out"
    with pytest.raises(PathExists), Publication(fs, str(final)) as pub:
        pub.write_part(0, ["new"])
        final.mkdir()
        (final / "theirs").write_text("keep")
        pub.commit({})
    assert entries(tmp_path) == ["out"]
    assert (final / "theirs").read_text() == "keep"


def test_publish_overwrite_replaces_previous_publication_without_leftovers(fs, tmp_path):
    final = tmp_path / "out"
    with Publication(fs, str(final)) as pub:
        pub.write_part(0, ["old"])
        pub.write_file("stale.csv", "x")
        pub.commit({"version": 1})
    with Publication(fs, str(final), overwrite=True) as pub:
        pub.write_part(0, ["new"])
        pub.commit({"version": 2})
    assert entries(tmp_path) == ["out"]
    assert entries(final) == ["_SUCCESS", "_manifest.json", "part-00000"]
    assert list(read_parts(fs, str(final))) == ["new"]
    assert read_manifest(fs, str(final)) == {"version": 2}
    assert list_leftovers(fs, str(final)) == []


def test_publish_overwrite_accepts_an_empty_directory(fs, tmp_path):
    (tmp_path / "out").mkdir()
    with Publication(fs, str(tmp_path / "out"), overwrite=True) as pub:
        pub.commit({})
    assert is_published(fs, str(tmp_path / "out"))


def test_publish_overwrite_refuses_non_empty_directory_without_markers(fs, tmp_path):
    final = tmp_path / "data"
    final.mkdir()
    (final / "customers.csv").write_text("precious")
    with pytest.raises(UnsafePathError) as info:
        Publication(fs, str(final), overwrite=True)
    assert repr(str(final)) in str(info.value)
    assert "without _SUCCESS or _manifest.json" in str(info.value)
    assert (final / "customers.csv").read_text() == "precious"


def test_publish_overwrite_refuses_a_file(fs, tmp_path):
    (tmp_path / "out").write_text("precious")
    with pytest.raises(UnsafePathError, match="is a file"):
        Publication(fs, str(tmp_path / "out"), overwrite=True)


def test_publish_overwrite_restores_previous_result_when_moving_new_one_fails(tmp_path):
    class FailingRename(LocalFileSystem):
        def rename(self, src, dst):
            if ".tmp-" in src:
                raise StorageError("Cannot rename %r to %r: simulated failure", src, dst)
            super().rename(src, dst)

    final = tmp_path / "out"
    with Publication(LocalFileSystem(), str(final)) as pub:
        pub.write_part(0, ["old"])
        pub.commit({})
    fs = FailingRename()
    with (
        pytest.raises(StorageError, match="simulated"),
        Publication(fs, str(final), overwrite=True) as pub,
    ):
        pub.write_part(0, ["new"])
        pub.commit({})
    assert entries(tmp_path) == ["out"]
    assert list(read_parts(fs, str(final))) == ["old"]


def test_overwrite_refuses_root_top_level_and_home_directories(fs, tmp_path, monkeypatch):
    with pytest.raises(UnsafePathError, match="filesystem root"):
        validate_deletable(fs, "/")
    with pytest.raises(UnsafePathError, match="filesystem root"):
        Publication(fs, "/", overwrite=True)
    for top in ["/home", "/user", "/tmp"]:
        with pytest.raises(UnsafePathError, match="top-level"):
            validate_deletable(fs, top)
    with pytest.raises(UnsafePathError, match="home directory"):
        validate_deletable(fs, "/home/someone")
    with pytest.raises(UnsafePathError):
        validate_deletable(fs, str(Path.home()))
    home = tmp_path / "homes" / "me"
    home.mkdir(parents=True)
    (home / "_SUCCESS").write_text("")  # even looking like a result, a home is refused
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UnsafePathError, match="home directory") as info:
        Publication(fs, str(home), overwrite=True)
    assert repr(str(home)) in str(info.value)
    with pytest.raises(UnsafePathError, match="home directory"):
        validate_deletable(fs, str(home.parent))


def test_overwrite_refuses_current_directory_and_its_parents(fs, tmp_path, monkeypatch):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    for directory in (tmp_path / "a", cwd):
        (directory / "_SUCCESS").write_text("")
    monkeypatch.chdir(cwd)
    for path in (str(cwd), str(tmp_path / "a"), str(tmp_path), ".", ".."):
        with pytest.raises(UnsafePathError, match="current working directory"):
            validate_deletable(fs, path)
    assert (tmp_path / "a" / "b" / "_SUCCESS").exists()


def test_overwrite_refuses_a_link_to_a_protected_directory(fs, tmp_path, monkeypatch):
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (tmp_path / "out").symlink_to(cwd)
    with pytest.raises(UnsafePathError, match="current working directory"):
        validate_deletable(fs, str(tmp_path / "out"))


def test_publication_rejects_bad_names_and_use_after_commit(fs, tmp_path):
    with Publication(fs, str(tmp_path / "out")) as pub:
        for bad in ["../escape", "/abs", "_SUCCESS", "_manifest.json", "a/../b", ""]:
            with pytest.raises(ValueError):
                pub.write_file(bad, "x")
        with pytest.raises(ValueError):
            pub.write_part(-1, [])
        pub.write_part(0, [])
        with pytest.raises(PathExists):
            pub.write_part(0, ["again"])
        pub.write_file("sub/extra.txt", "x")
        pub.commit({})
        with pytest.raises(StorageError, match="committed"):
            pub.write_part(1, ["late"])
    assert (tmp_path / "out" / "sub" / "extra.txt").read_text() == "x"
    pub2 = Publication(fs, str(tmp_path / "other"))
    with pytest.raises(StorageError, match="not started"):
        pub2.write_part(0, ["x"])


def test_list_leftovers_finds_staging_and_old_directories(fs, tmp_path):
    (tmp_path / ".out.tmp-abc").mkdir()
    (tmp_path / ".out.old-def").mkdir()
    (tmp_path / ".other.tmp-abc").mkdir()
    assert sorted(list_leftovers(fs, str(tmp_path / "out"))) == [
        str(tmp_path / ".out.old-def"),
        str(tmp_path / ".out.tmp-abc"),
    ]
    assert list_leftovers(fs, str(tmp_path / "missing" / "out")) == []


def test_uncommitted_publication_never_touches_the_existing_result(fs, tmp_path):
    final = tmp_path / "out"
    with Publication(fs, str(final)) as pub:
        pub.write_part(0, ["v1"])
        pub.commit({})
    with pytest.raises(KeyError), Publication(fs, str(final), overwrite=True) as pub:
        pub.write_part(0, ["v2"])
        raise KeyError("boom")
    assert list(read_parts(fs, str(final))) == ["v1"]
    assert entries(tmp_path) == ["out"]
    assert os.listdir(final)  # still complete
