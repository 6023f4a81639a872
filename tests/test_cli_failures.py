"""crm-mr on hostile input: exit status, one-line errors, overlapping paths, leftovers.

Most tests run ``crm-mr`` in a subprocess, as a user would, and check the exit status and
that no traceback reaches standard error (see the exit-status table of :mod:`models.cli`).
"""

import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mrjob.job import MRJob

from hdfs_io.paths import OverlappingPathsError, check_disjoint
from models import cli, job_runner
from models.cli import main

CRM_MR = str(Path(sys.executable).parent / "crm-mr")  # the one installed beside this Python
HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
LINES = [
    "O1,C1,2024-01-02 10:00:00,I1,1,10.00\n",
    "O1,C1,2024-01-02 10:00:00,I2,2,5.00\n",
    "O2,C2,2024-01-05 11:00:00,I1,1,10.00\n",
    "O3,C1,2024-02-01 09:30:00,I2,1,5.00\n",
]


def _log(path, lines=LINES):
    path.write_text(HEADER + "".join(lines))
    return path


def _crm_mr(*args, env=None, **kwargs):
    run_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [CRM_MR, *args], capture_output=True, text=True, env=run_env, timeout=300, **kwargs
    )


def _assert_one_line_error(result, code, *fragments):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("crm-mr: error")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


# -- exit status -------------------------------------------------------------------------


def test_a_bad_argument_exits_2_naming_the_value(tmp_path):
    result = _crm_mr(
        "churn", str(_log(tmp_path / "in.csv")), "-o", str(tmp_path / "o"),
        "--horizon-days", "99999999", "--no-mrjob-conf", "-q",
    )  # fmt: skip
    _assert_one_line_error(result, 2, "horizon_days=99999999", "3650")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--churn-horizon-days", "99999999"], "horizon_days=99999999 should be at most 3650"),
        (["--k", "0"], "k='0' should give at least one k"),
        (["--as-of", "2024-02-30"], "as_of='2024-02-30'"),
    ],
)
def test_run_refuses_a_bad_option_of_a_later_stage_before_any_work(
    tmp_path, capsys, option, message
):
    root = tmp_path / "out"
    args = ["run", "-i", str(_log(tmp_path / "in.csv")), "-o", str(root), "-q"]
    assert main([*args, "--no-mrjob-conf", *option]) == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_unreachable_hdfs_exits_1_in_one_line(tmp_path):
    port = _closed_port()
    env = {
        "CRM_WEBHDFS_URL": f"http://127.0.0.1:{port}",
        "CRM_WEBHDFS_RETRIES": "1",
        "CRM_WEBHDFS_BACKOFF": "0",
        "CRM_WEBHDFS_TIMEOUT": "2",
    }
    result = _crm_mr(
        "rfm", f"hdfs://127.0.0.1:{port}/data/orders.csv", "-o", str(tmp_path / "o"),
        "--no-mrjob-conf", "-q", env=env,
    )  # fmt: skip
    _assert_one_line_error(result, 1, "127.0.0.1")


def _no_bigger_files_than(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_at_run_time_exits_1_in_one_line(tmp_path):
    # RLIMIT_FSIZE makes every write past 64 KiB fail as a full disk would (EFBIG rather
    # than ENOSPC: the same OSError path through the code)
    limit = _no_bigger_files_than(64 * 1024)
    data = tmp_path / "data" / "t.csv"
    result = _crm_mr("generate", "-o", str(data), "--customers", "2000", "-q", preexec_fn=limit)
    _assert_one_line_error(result, 1, "file too large")
    assert _crm_mr("generate", "-o", str(data), "--customers", "2000", "-q").returncode == 0
    # the job's own files (mrjob's copy of the input, its output) cannot be written
    out = tmp_path / "rfm"
    result = _crm_mr("rfm", str(data), "-o", str(out), "--no-mrjob-conf", "-q", preexec_fn=limit)
    _assert_one_line_error(result, 1)
    assert not out.exists()


def test_an_unexpected_error_is_one_line_naming_its_type_and_the_traceback_needs_v(
    tmp_path, capsys, monkeypatch
):
    def broken(args, reporter):
        raise KeyError("oops")

    monkeypatch.setitem(cli._COMMANDS, "rfm", broken)
    argv = ["rfm", str(_log(tmp_path / "in.csv")), "-o", str(tmp_path / "o"), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == "crm-mr: error: KeyError: 'oops'"
    assert main([*argv, "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_data_error_found_after_the_first_job_is_a_runtime_failure(tmp_path, capsys):
    # every line is outside the date window: the RFM job runs, then no customer is left
    log = _log(tmp_path / "in.csv", ["O1,C1,0001-02-01 10:00:00,I1,1,10.00\n"])
    code = main(["churn", str(log), "-o", str(tmp_path / "o"), "-q", "--no-mrjob-conf"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert (
        err.splitlines()[-1]
        == "crm-mr: error: no current customer: there is nothing to train on or score"
    )
    assert "Traceback" not in err


# -- overlapping paths ---------------------------------------------------------------------


def _published_input(tmp_path):
    orders = tmp_path / "orders"
    orders.mkdir()
    _log(orders / "part-00000")
    (orders / "_SUCCESS").write_text("")
    return orders


def test_an_output_equal_to_its_input_is_refused_and_the_input_kept(tmp_path):
    orders = _published_input(tmp_path)
    before = sorted(p.name for p in orders.iterdir())
    result = _crm_mr("rfm", str(orders), "-o", str(orders), "--overwrite", "--no-mrjob-conf")
    _assert_one_line_error(result, 2, f"output '{orders}' is the same as input '{orders}'")
    assert sorted(p.name for p in orders.iterdir()) == before


@pytest.mark.parametrize(
    "command, extra",
    [("rfm", "--segments"), ("baskets", "--recommendations")],
)
def test_two_outputs_at_one_path_are_refused(tmp_path, capsys, command, extra):
    out = str(tmp_path / "x")
    args = [command, str(_log(tmp_path / "in.csv")), "-o", out, extra, out, "-q"]
    assert main([*args, "--no-mrjob-conf"]) == 2
    assert f"output '{out}' is the same as output '{out}'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["rfm", "sales", "churn", "segments"])
def test_an_output_inside_an_input_directory_is_refused(tmp_path, capsys, command):
    orders = _published_input(tmp_path)
    inside = str(orders / "out")
    assert main([command, str(orders), "-o", inside, "-q", "--no-mrjob-conf"]) == 2
    assert f"is inside input '{orders}'" in capsys.readouterr().err
    assert not (orders / "out").exists()


def test_forecast_refuses_its_output_inside_the_sales_directory(tmp_path, capsys):
    sales = _published_input(tmp_path)
    assert main(["forecast", str(sales), "-o", str(sales / "f"), "-q"]) == 2
    assert "is inside input" in capsys.readouterr().err


def test_run_refuses_an_output_root_around_its_input_directory(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "rfm").mkdir(parents=True)
    _log(root / "rfm" / "in.csv")
    code = main(["run", "-i", str(root / "rfm"), "-o", str(root), "-q", "--no-mrjob-conf"])
    assert code == 2
    assert "is the same as input" in capsys.readouterr().err
    assert not (root / "_pipeline.json").exists()


def test_check_disjoint_resolves_symbolic_links(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OverlappingPathsError, match="is inside input"):
        check_disjoint([str(real)], [str(tmp_path / "link" / "out")])


def test_check_disjoint_compares_hdfs_paths_whatever_the_authority():
    with pytest.raises(OverlappingPathsError, match="contains input"):
        check_disjoint(["hdfs://nn:8020/data/orders"], ["hdfs:///data/"])
    check_disjoint(["hdfs:///data/orders"], ["/data/orders2", "hdfs:///data/orders2"])


def test_check_disjoint_accepts_siblings_with_a_common_prefix(tmp_path):
    check_disjoint([str(tmp_path / "orders")], [str(tmp_path / "orders2")])


# -- temporary directories and interrupts -------------------------------------------------

_seen = []


class _MRFails(MRJob):
    """Fails in its mapper, after recording what the private temporary root holds."""

    def mapper(self, _, line):
        _seen.append(sorted(os.listdir(os.environ[job_runner.TMP_ROOT_ENV])))
        raise RuntimeError("the job failed on purpose")


def test_a_failed_job_leaves_nothing_in_its_private_temporary_root(tmp_path, monkeypatch):
    root = tmp_path / "tmp-root"
    root.mkdir()
    monkeypatch.setenv(job_runner.TMP_ROOT_ENV, str(root))
    _seen.clear()
    with pytest.raises(RuntimeError, match="on purpose"):
        with job_runner.run_job(_MRFails, [str(_log(tmp_path / "in.csv"))], conf_paths=[]):
            pass
    assert _seen and _seen[0]  # the run had its directory there
    assert list(root.iterdir()) == []


def test_the_private_temporary_root_is_mode_0700(tmp_path, monkeypatch):
    monkeypatch.setenv(job_runner.TMP_ROOT_ENV, str(tmp_path))
    with job_runner._private_tmp_dir() as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "runner, stage",
    [("inline", "rfm"), ("local", "segments")],  # local: mrjob's pool of task workers
)
def test_ctrl_c_during_a_stage_exits_130_without_traceback_or_leftovers(tmp_path, runner, stage):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    root = tmp_path / "out"
    process = subprocess.Popen(
        [CRM_MR, "run", "-o", str(root), "--customers", "300", "-r", runner, "--no-mrjob-conf"],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp)),
        start_new_session=True,  # a process group of its own, as a terminal gives
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith(f"[{stage}]"):
            break
    time.sleep(0.5)  # inside the stage (or the next one)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
    rest = process.stderr.read()
    code = process.wait(timeout=120)
    err = "".join(lines) + rest
    assert code == 130, err
    assert "Traceback" not in err and "ForkPoolWorker" not in err
    assert err.splitlines()[-1] == "crm-mr: interrupted"
    assert list(root.glob(".*.tmp-*")) == [] and list(root.glob("*/.*.tmp-*")) == []
    assert list(tmp.iterdir()) == []
    record = json.loads((root / "_pipeline.json").read_text())
    assert record["status"] == "interrupted"  # at that stage or a later one


def test_an_error_message_never_shows_a_password_given_in_a_uri(tmp_path, capsys):
    # a SchemaError that quotes the bad value, raised before any job
    bad = "hdfs://ann:s3cret@127.0.0.1:1/x?delegation=T0KEN"
    data = tmp_path / "in.csv"
    data.write_text(HEADER + LINES[0])
    code = main(["rfm", str(data), "-o", str(tmp_path / "o"), "--date-window", f"{bad}..x"])
    err = capsys.readouterr().err
    assert code == 2 and "crm-mr: error: date_window=" in err
    assert "s3cret" not in err and "T0KEN" not in err and "ann:***@" in err
