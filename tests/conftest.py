"""Shared test helpers: sandboxed job runs and the real datasets.

Jobs run with ``--no-conf`` so a user's own mrjob config never leaks into a test.
The real datasets live in ``../shared/datasets`` beside the checkout (or where
``CRM_DATASETS`` points); without them the golden tests skip, except under ``CI=true``,
where a missing prerequisite is a failure.
"""

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("CRM_DATASETS", REPO.parent / "shared" / "datasets"))
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True, scope="session")
def _isolated_mrjob_conf(tmp_path_factory):
    """Point mrjob at an empty config so a user's ~/.mrjob.conf never reaches a test
    (subprocesses, such as the shell driver's, inherit it)."""
    conf = tmp_path_factory.mktemp("mrjob") / "empty-mrjob.conf"
    conf.write_text("runners: {}\n")
    old = os.environ.get("MRJOB_CONF")
    os.environ["MRJOB_CONF"] = str(conf)
    yield
    if old is None:
        os.environ.pop("MRJOB_CONF", None)
    else:
        os.environ["MRJOB_CONF"] = old


def require(condition, reason):
    """Skip when ``condition`` is false, or fail under CI=true (no silent skips in CI)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}")
    pytest.skip(reason)


def run_job(job_cls, raw_input=b"", args=(), runner="inline", input_paths=None):
    """Run a job on ``raw_input`` (bytes or str) and return (rows, counters).

    ``rows`` are the decoded JSON output values; ``counters`` are the first step's.
    With ``input_paths`` the job reads those files instead of stdin.
    """
    if isinstance(raw_input, str):
        raw_input = raw_input.encode("utf-8")
    argv = ["--no-conf", "-r", runner, *args]
    if input_paths:
        argv += [str(p) for p in input_paths]
    else:
        argv.append("-")
    job = job_cls(args=argv)
    job.sandbox(stdin=io.BytesIO(raw_input))
    with job.make_runner() as runner_:
        runner_.run()
        rows = [json.loads(line) for line in runner_.cat_output() if line.strip()]
        counters = runner_.counters()
    return rows, (counters[0] if counters else {})


CDNOW_MD5 = "37ee2da5127d4a369d6fe0052678624d"


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def cdnow_path():
    """The CDNOW master log: ``../shared/datasets``, else the copy in the Lifetimes wheel
    (the ``test`` extra installs it from PyPI), checked against its published md5."""
    candidates = [DATASETS / "cdnow" / "CDNOW_master.txt"]
    try:
        import lifetimes

        candidates.append(Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt")
    except ImportError:
        pass
    for path in candidates:
        if path.exists() and _md5(path) == CDNOW_MD5:
            return path
    require(False, f"no CDNOW log with md5 {CDNOW_MD5} at {[str(c) for c in candidates]}")
