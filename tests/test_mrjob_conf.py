"""The repository's mrjob.conf: every runner section loads and names real options."""

import pytest
import yaml
from mrjob.emr import EMRJobRunner
from mrjob.hadoop import HadoopJobRunner
from mrjob.inline import InlineMRJobRunner
from mrjob.local import LocalMRJobRunner
from mrjob.spark.runner import SparkMRJobRunner

from mr_jobs.rfm import MRCustomerRFM
from tests.conftest import REPO

CONF = REPO / "mrjob.conf"
RUNNERS = {
    "inline": InlineMRJobRunner,
    "local": LocalMRJobRunner,
    "hadoop": HadoopJobRunner,
    "emr": EMRJobRunner,
    "spark": SparkMRJobRunner,
}


def test_mrjob_conf_has_a_section_per_runner_with_known_options_only():
    conf = yaml.safe_load(CONF.read_text())
    assert set(conf["runners"]) == set(RUNNERS)
    for alias, runner_cls in RUNNERS.items():
        unknown = set(conf["runners"][alias]) - set(runner_cls.OPT_NAMES)
        assert not unknown, f"{alias}: options mrjob does not know: {sorted(unknown)}"


def test_mrjob_conf_holds_no_credentials():
    text = CONF.read_text().lower()
    for word in ("aws_access_key_id:", "aws_secret_access_key:", "aws_session_token:"):
        assert word not in text


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_the_rfm_job_runs_with_the_repository_conf(tmp_path, runner):
    data = tmp_path / "in.csv"
    data.write_text(
        "order_id,customer_id,timestamp,item_id,quantity,unit_price\nO1,C1,2024-01-01,I1,2,1.25\n"
    )
    job = MRCustomerRFM(args=["-r", runner, "-c", str(CONF), str(data)])
    with job.make_runner() as r:
        r.run()
        assert r._opts["cmdenv"]["TZ"] == "UTC"  # the section was read
        rows = [line for line in r.cat_output() if line.strip()]
    assert len(rows) == 1 and b'"total_value":2.5' in rows[0]
