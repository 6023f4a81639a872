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


# -- the real single-node Hadoop ---------------------------------------------------------------

CLUSTER_SCRIPT = REPO / "scripts" / "hadoop-cluster.sh"


class HadoopCluster:
    """A running cluster started by ``scripts/hadoop-cluster.sh`` (see :func:`hadoop_cluster`).

    ``env`` holds what clients need (``HADOOP_HOME``, ``HADOOP_CONF_DIR``, ``PATH`` with
    the cluster's ``hadoop`` first, ``CRM_WEBHDFS_URL``); ``fs_url`` is ``fs.defaultFS``
    and ``webhdfs_url`` the NameNode's HTTP address.
    """

    def __init__(self, directory, state):
        self.directory = Path(directory)
        self.state = state
        self.fs_url = state["urls"]["fs.defaultFS"]
        self.webhdfs_url = state["urls"]["webhdfs"]
        self.hadoop_bin = state["hadoop_bin"]
        self.env = {
            "HADOOP_HOME": state["home"],
            "HADOOP_CONF_DIR": state["conf_dir"],
            "CRM_WEBHDFS_URL": self.webhdfs_url,
            "PATH": f"{Path(self.hadoop_bin).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def hadoop(self, *args, check=True, text=True):
        """Run ``hadoop ARGS`` against the cluster; return the completed process."""
        import subprocess

        env = {**os.environ, **self.env}
        return subprocess.run(
            [self.hadoop_bin, *args], env=env, capture_output=True, text=text, check=check
        )

    def pids(self):
        """PIDs of the cluster's daemons, from its pid files."""
        return {
            p.stem: int(p.read_text())
            for p in (self.directory / "pids").glob("*.pid")
            if p.read_text().strip()
        }


@pytest.fixture(scope="session")
def hadoop_cluster(tmp_path_factory):
    """Start a real NameNode, DataNode, ResourceManager, NodeManager and JobHistoryServer
    on 127.0.0.1 once per test session (jars fetched from Maven Central and cached) and
    stop them, by PID, at the end. Without Java the tests that use it skip, except under
    CI=true, where they fail."""
    import shutil
    import subprocess
    import sys

    java_home = os.environ.get("JAVA_HOME")
    has_java = bool(java_home and Path(java_home, "bin", "java").exists()) or bool(
        shutil.which("java")
    )
    require(has_java, "Java is not installed (the Hadoop tests need a JDK, 17 works)")
    directory = tmp_path_factory.mktemp("hadoop-cluster")
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = [str(CLUSTER_SCRIPT), "--dir", str(directory), "--python", sys.executable]
    started = subprocess.run([*cmd[:1], "start", *cmd[1:]], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        subprocess.run([*cmd[:1], "stop", *cmd[1:]], env=env, capture_output=True)
        message = f"the Hadoop cluster did not start:\n{started.stderr[-3000:]}"
        if IN_CI:
            pytest.fail(message)
        # a user's machine may lack Maven or the network: say why, do not break the suite
        pytest.skip(message)
    state = json.loads((directory / "cluster.json").read_text())
    try:
        yield HadoopCluster(directory, state)
    finally:
        subprocess.run([*cmd[:1], "stop", *cmd[1:]], env=env, capture_output=True)


@pytest.fixture
def hadoop_env(hadoop_cluster, monkeypatch):
    """The cluster's client environment, set for one test (mrjob reads ``os.environ``)."""
    for name, value in hadoop_cluster.env.items():
        monkeypatch.setenv(name, value)
    return hadoop_cluster


SUPERMARKET_MD5 = "1c77786d87476b22a692bb985161a8e1"


@pytest.fixture(scope="session")
def supermarket_path():
    """The supermarket baskets (``basket_id,item``, see ``../shared/datasets/README.md``),
    checked against the md5 of the copy the README's figures were measured on."""
    path = DATASETS / "supermarket" / "supermarket_baskets.csv"
    require(path.exists(), f"no supermarket baskets at {path}")
    require(_md5(path) == SUPERMARKET_MD5, f"{path} does not have md5 {SUPERMARKET_MD5}")
    return path
