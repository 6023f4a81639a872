"""Hostile input to the storage layer: planted symlinks and directories, credentials in URIs,
leftovers of killed runs, servers that are not WebHDFS (issue 15).

Every test uses real files, real processes and, for servers, a real ``http.server`` on
127.0.0.1 stopped at the end of the test.
"""

import contextlib
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from hdfs_io import (
    LocalFileSystem,
    Publication,
    StorageError,
    WebHDFSFileSystem,
    clean_leftovers,
    get_filesystem,
    list_leftovers,
    redact_secrets,
    redact_uri,
)
from hdfs_io.publish import OWNER_NAME

PASSWORD = "s3cr3t-pw"
TOKEN = "HAAFdGVzdAR0ZXN0AIoBk2tkn2aKAZN3cSNmAQIUx"
SECRET_URI = f"hdfs://ann:{PASSWORD}@nn.example:8020/user/ann/out?delegation={TOKEN}&op=OPEN"


@pytest.fixture
def fs():
    return LocalFileSystem()


def _staging(tmp_path, name="out", kind="tmp"):
    path = tmp_path / f".{name}.{kind}-{uuid.uuid4().hex}"
    path.mkdir()
    (path / "part-00000").write_text("partial\n")
    return path


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- redaction -------------------------------------------------------------------------------


def test_redact_uri_masks_the_password_and_delegation_token_but_keeps_user_and_host():
    shown = redact_uri(SECRET_URI)
    assert PASSWORD not in shown and TOKEN not in shown
    assert shown == "hdfs://ann:***@nn.example:8020/user/ann/out?delegation=***&op=OPEN"
    assert redact_uri("see http://x/?access_token=abc&p=1") == "see http://x/?access_token=***&p=1"
    assert redact_uri("/plain/path/out") == "/plain/path/out"
    assert redact_uri("hdfs://ann:p@ss@nn/x") == "hdfs://ann:***@nn/x"  # '@' left unencoded


def test_redact_secrets_walks_nested_json_values():
    record = {"inputs": [{"path": SECRET_URI, "bytes": 3}], "n": 1, "k": (SECRET_URI,)}
    text = json.dumps(redact_secrets(record))
    assert PASSWORD not in text and TOKEN not in text and '"bytes": 3' in text


def test_storage_error_messages_never_carry_the_password_or_token():
    err = StorageError("Cannot read %r: boom", SECRET_URI, path=SECRET_URI)
    for text in (str(err), repr(err), err.path):
        assert PASSWORD not in text and TOKEN not in text


def test_webhdfs_uri_of_an_hdfs_uri_with_userinfo_has_no_password():
    fs, path = get_filesystem(SECRET_URI, config={"url": "http://127.0.0.1:9"})
    assert fs.uri(path) == "hdfs://ann@nn.example:8020/user/ann/out"
    assert PASSWORD not in repr(fs)


def test_webhdfs_client_logs_at_debug_level_never_show_password_or_token(caplog):
    caplog.set_level(logging.DEBUG)
    fs = WebHDFSFileSystem(f"http://ann:{PASSWORD}@127.0.0.1:9", token=TOKEN, retries=1)
    with pytest.raises(StorageError):
        fs.list("/user/ann")
    shown = [record.getMessage() for record in caplog.records]
    assert any("Instantiated" in text for text in shown)  # the hdfs library logged its URL
    assert all(PASSWORD not in text and TOKEN not in text for text in shown)


def test_root_handlers_redact_records_of_any_logger(tmp_path):
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "import hdfs_io\n"
        "hdfs_io.install_log_redaction()\n"
        f"logging.getLogger('some.library').info('GET %s', {SECRET_URI!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "delegation=***" in done.stderr
    assert PASSWORD not in done.stderr and TOKEN not in done.stderr


def test_reporter_progress_and_summary_lines_are_redacted(capsys):
    from models.progress import Reporter

    reporter = Reporter()
    reporter.progress("data")(f"uploading to {SECRET_URI}")
    reporter.summary(f"import {SECRET_URI}", rows_in=1, rows_out=1)
    err = capsys.readouterr().err
    assert "ann:***@nn.example" in err
    assert PASSWORD not in err and TOKEN not in err


def test_manifest_inputs_parameters_outputs_and_details_are_redacted():
    from models.manifest import Stopwatch, build_manifest

    manifest = build_manifest(
        "rfm",
        inputs=[{"path": SECRET_URI, "bytes": 1}],
        parameters={"output": SECRET_URI, "nested": {"source": SECRET_URI}},
        runner="inline",
        lines=None,
        rows_written=0,
        stopwatch=Stopwatch(),
        outputs=[SECRET_URI],
        details={"error": f"Cannot read {SECRET_URI}"},
    )
    text = json.dumps(manifest)
    assert PASSWORD not in text and TOKEN not in text
    assert manifest["inputs"][0]["path"].startswith("hdfs://ann:***@nn.example:8020/")


def test_pipeline_run_record_is_written_redacted(fs, tmp_path):
    from models.pipeline import _write_record

    path = tmp_path / "_pipeline.json"
    _write_record(fs, str(path), {"inputs": [SECRET_URI], "root": SECRET_URI})
    text = path.read_text()
    assert PASSWORD not in text and TOKEN not in text and "ann:***@" in text


# -- leftovers of failed and killed runs -----------------------------------------------------


def test_failed_publication_removes_its_staging_directory(fs, tmp_path):
    with pytest.raises(RuntimeError), Publication(fs, str(tmp_path / "out")) as pub:
        pub.write_part(0, ["half"])
        assert os.path.isdir(pub.staging_path)
        raise RuntimeError("the job failed")
    assert os.listdir(tmp_path) == []


def test_committed_result_carries_no_owner_file(fs, tmp_path):
    with Publication(fs, str(tmp_path / "out")) as pub:
        assert os.path.exists(os.path.join(pub.staging_path, OWNER_NAME))
        pub.commit({})
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "_manifest.json"]


def test_publication_removes_staging_of_a_killed_run_of_this_host(fs, tmp_path):
    # A real process that wrote a staging directory, then was killed before cleaning up.
    code = (
        "import os, sys\n"
        "from hdfs_io import LocalFileSystem, Publication\n"
        "pub = Publication(LocalFileSystem(), sys.argv[1]).__enter__()\n"
        "pub.write_part(0, ['half'])\n"
        "os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")])
    assert done.returncode == 9
    (killed,) = list_leftovers(fs, str(tmp_path / "out"))
    with Publication(fs, str(tmp_path / "out")) as pub:
        assert not os.path.exists(killed)
        pub.commit({})
    assert os.listdir(tmp_path) == ["out"]


def test_old_staging_of_unknown_writer_is_removed_a_fresh_one_is_kept(fs, tmp_path, caplog):
    old, fresh = _staging(tmp_path), _staging(tmp_path)
    _age(old, 2 * 24 * 3600)
    with caplog.at_level(logging.WARNING, logger="hdfs_io.publish"):
        removed = clean_leftovers(fs, str(tmp_path / "out"))
    assert removed == [str(old)]
    assert fresh.exists() and not old.exists()
    assert any(str(fresh) in r.getMessage() and "Keeping" in r.getMessage() for r in caplog.records)


def test_staging_of_a_live_process_is_kept_whatever_its_age(fs, tmp_path):
    with Publication(fs, str(tmp_path / "out")) as pub:
        _age(pub.staging_path, 2 * 24 * 3600)
        assert clean_leftovers(fs, str(tmp_path / "out"), stale_after=10**9) == []
        assert os.path.isdir(pub.staging_path)
        pub.commit({})


def test_cleaning_touches_only_our_own_staging_names(fs, tmp_path):
    lookalikes = [
        tmp_path / ".out.tmp-mine",  # not 32 hex digits
        tmp_path / f".out.tmp-{uuid.uuid4().hex}-x",
        tmp_path / f".other.tmp-{uuid.uuid4().hex}",
        tmp_path / "out.tmp-0123",
    ]
    for path in lookalikes:
        path.mkdir()
        _age(path, 10 * 24 * 3600)
    planted_file = tmp_path / f".out.tmp-{uuid.uuid4().hex}"
    planted_file.write_text("a file, not a staging directory")
    _age(planted_file, 10 * 24 * 3600)
    assert clean_leftovers(fs, str(tmp_path / "out")) == []
    assert all(path.exists() for path in [*lookalikes, planted_file])


def test_replaced_result_is_kept_until_the_result_is_published_again(fs, tmp_path):
    old = _staging(tmp_path, kind="old")
    _age(old, 10 * 24 * 3600)
    assert clean_leftovers(fs, str(tmp_path / "out")) == []  # maybe the only copy
    assert old.exists()
    with Publication(fs, str(tmp_path / "out")) as pub:
        pub.commit({})
    assert clean_leftovers(fs, str(tmp_path / "out")) == [str(old)]


# -- a server that is not WebHDFS ------------------------------------------------------------

_PAGE = (
    "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
    + "<p>The requested URL was not found on this server.</p>" * 100
    + "</body></html>"
)


class _HtmlServer(http.server.BaseHTTPRequestHandler):
    status = 404
    body = _PAGE.encode()
    content_type = "text/html; charset=utf-8"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_PUT = do_DELETE = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_html_404_of_a_non_webhdfs_server_is_said_briefly_not_as_not_found():
    with _serving(_HtmlServer) as url:
        fs = WebHDFSFileSystem(url, retries=1)
        with pytest.raises(StorageError) as info:
            fs.read("/user/ann/in.csv")
    message = str(info.value)
    assert type(info.value) is StorageError  # not PathNotFound: nothing says the file is absent
    assert "answered HTTP 404 with an HTML page, not WebHDFS JSON" in message
    assert f"is {url} a WebHDFS endpoint" in message and "'/user/ann/in.csv'" in message
    assert "<html" not in message.lower() and len(message) < 400


class _LongTextServer(_HtmlServer):
    status = 500
    body = ("x" * 5000).encode()
    content_type = "text/plain"


def test_a_long_non_json_error_body_is_cut_to_about_200_characters():
    with _serving(_LongTextServer) as url:
        fs = WebHDFSFileSystem(url, retries=1)
        with pytest.raises(StorageError) as info:
            fs.status("/user/ann")
    message = str(info.value)
    assert "x" * 200 in message and "x" * 201 not in message and message.endswith("...")


# -- generate and import: directories, planted symlinks, the source as destination ------------

CDNOW_LINES = "00001 19970101 1 11.77\n00002 19970112 2 89.00\n00001 19970115 1 5.00\n"


def _crm_mr(*args):
    from models.cli import main

    return main(list(args))


def _tree(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_generate_onto_an_existing_directory_is_a_clear_error_leaving_nothing(
    tmp_path, capsys, overwrite
):
    target = tmp_path / "data"
    target.mkdir()
    assert _crm_mr("generate", "-o", str(target), "--customers", "20", "-q", *overwrite) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and str(target) in err and "Traceback" not in err
    assert _tree(tmp_path) == ["data"]


def test_generate_never_follows_a_symlink_planted_at_a_predictable_temporary_name(tmp_path):
    from models.synthetic import generate

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "orders.csv"
    planted = [tmp_path / f"{out.name}.tmp", tmp_path / f".{out.name}.tmp"]
    planted += [tmp_path / "orders.truth.json.tmp", tmp_path / "orders.customers.jsonl.tmp"]
    for link in planted:
        link.symlink_to(victim)
    generate(out, customers=20, seed=1)
    assert victim.read_text() == "precious\n"
    assert all(link.is_symlink() for link in planted)
    assert out.read_bytes().startswith(b"order_id,")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_generate_replaces_a_symlink_at_the_destination_instead_of_writing_through_it(tmp_path):
    from models.synthetic import generate

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "orders.csv"
    out.symlink_to(victim)
    generate(out, customers=20, seed=1)
    assert victim.read_text() == "precious\n" and not out.is_symlink()


def test_import_of_a_file_onto_itself_is_refused_before_anything_is_written(tmp_path, capsys):
    source = tmp_path / "cdnow.txt"
    source.write_text(CDNOW_LINES)
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias.txt").symlink_to(source)
    spellings = [
        str(source),
        f"{tmp_path}/./cdnow.txt",
        f"{tmp_path}//cdnow.txt",
        f"{tmp_path}/sub/../cdnow.txt",
        str(tmp_path / "alias.txt"),
        source.as_uri(),
    ]
    for destination in spellings:
        code = _crm_mr("import", "--format", "cdnow", str(source), destination, "--overwrite")
        err = capsys.readouterr().err
        assert code == 2, destination
        assert "is the same as input" in err and "Traceback" not in err
    assert source.read_text() == CDNOW_LINES
    assert _tree(tmp_path) == ["alias.txt", "cdnow.txt", "sub"]


def test_import_never_follows_a_symlink_planted_beside_the_destination(tmp_path):
    source = tmp_path / "cdnow.txt"
    source.write_text(CDNOW_LINES)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "orders.csv"
    for name in (f"{out.name}.tmp", f".{out.name}.tmp", f"{out.name}.manifest.json.tmp"):
        (tmp_path / name).symlink_to(victim)
    assert _crm_mr("import", "--format", "cdnow", str(source), str(out), "-q") == 0
    assert victim.read_text() == "precious\n"
    assert out.read_text().splitlines()[0].startswith("order_id,customer_id")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_import_log_itself_refuses_its_source_as_destination(tmp_path):
    from hdfs_io.paths import OverlappingPathsError
    from models.importer import import_log
    from mr_jobs.records import PRESETS

    source = tmp_path / "cdnow.txt"
    source.write_text(CDNOW_LINES)
    (tmp_path / "alias.txt").symlink_to(source)
    with pytest.raises(OverlappingPathsError, match="is the same as input"):
        import_log(str(source), str(tmp_path / "alias.txt"), PRESETS["cdnow"], overwrite=True)
    assert source.read_text() == CDNOW_LINES
    assert _tree(tmp_path) == ["alias.txt", "cdnow.txt"]


def test_crm_mr_verbose_against_a_non_webhdfs_server_prints_no_password_or_token(tmp_path):
    with _serving(_HtmlServer) as url:
        host = url.removeprefix("http://")
        env = dict(
            os.environ,
            CRM_WEBHDFS_URL=f"http://ann:{PASSWORD}@{host}",
            CRM_WEBHDFS_TOKEN=TOKEN,
            CRM_WEBHDFS_RETRIES="1",
        )
        command = [sys.executable, "-m", "models.cli", "generate", "-v", "-o"]
        command.append(f"hdfs://ann:{PASSWORD}@{host}/user/ann/orders.csv")
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0, done.stderr  # a storage failure (1 since the exit codes of #15)
    assert "Instantiated" in done.stderr  # the hdfs library logged its client's URL (-v)
    assert "with an HTML page, not WebHDFS JSON" in done.stderr
    assert PASSWORD not in done.stderr and TOKEN not in done.stderr
    assert PASSWORD not in done.stdout and TOKEN not in done.stdout


def test_import_onto_a_directory_or_beside_a_manifest_directory_is_refused_first(tmp_path):
    source = tmp_path / "cdnow.txt"
    source.write_text(CDNOW_LINES)
    (tmp_path / "out").mkdir()
    assert _crm_mr("import", "--format", "cdnow", str(source), str(tmp_path / "out"), "-q") == 2
    (tmp_path / "orders.csv.manifest.json").mkdir()
    code = _crm_mr("import", "--format", "cdnow", str(source), str(tmp_path / "orders.csv"), "-q")
    assert code == 2
    assert _tree(tmp_path) == ["cdnow.txt", "orders.csv.manifest.json", "out"]
