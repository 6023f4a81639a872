"""Per-customer tables written by the jobs' tasks: the RFM and RFM segments stages.

The driver reads counters and small side outputs only; these tests check what that
changes and what it must not: the rows (as sorted sets) equal the driver-side
computation's (:func:`models.rfm_scores.score_customers`, the RFM job's own rows) on the
inline and local runners, each part is sorted by customer id, the counts in the manifest
are the tasks' counts, and the default as-of date is the latest purchase date.
"""

import json

import pandas as pd
import pytest

from hdfs_io import LocalFileSystem, Publication
from models.job_runner import TASK_OUTPUT_NAME, run_job, run_job_into
from models.rfm_scores import score_customers, segment_summary
from models.rfm_stage import run_rfm_stage
from models.segments_stage import run_segments_stage
from mr_jobs.records import PRESETS
from mr_jobs.rfm import MRCustomerRFM

CANONICAL = PRESETS["canonical"]
HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"


def _parts(directory):
    return sorted(directory.glob("part-*"))


def _rows(directory):
    return [json.loads(line) for p in _parts(directory) for line in p.read_text().splitlines()]


def _by_id(rows):
    return sorted(rows, key=lambda r: r["customer_id"])


@pytest.fixture(scope="module")
def cdnow_stages(tmp_path_factory, cdnow_path):
    """The RFM and RFM segments stages on CDNOW (23,570 customers), inline and local."""
    root = tmp_path_factory.mktemp("cdnow-stages")
    found = {}
    for runner in ("inline", "local"):
        rfm, segments = root / f"rfm-{runner}", root / f"segments-{runner}"
        rfm_manifest = run_rfm_stage(
            [str(cdnow_path)], str(rfm), schema=PRESETS["cdnow"], runner=runner, conf_paths=[]
        )
        summary, seg_manifest = run_segments_stage(
            str(rfm), str(segments), runner=runner, conf_paths=[]
        )
        found[runner] = (rfm, rfm_manifest, segments, summary, seg_manifest)
    return found


def test_rfm_rows_of_the_stage_equal_the_job_run_with_the_latest_purchase_date(
    cdnow_stages, cdnow_path
):
    rfm, manifest, *_ = cdnow_stages["inline"]
    assert manifest["details"]["as_of"] == "1998-06-30"
    assert manifest["details"]["first_purchase_date"] == "1997-01-01"
    assert manifest["details"]["last_purchase_date"] == "1998-06-30"
    args = ["--input-format", "cdnow", "--as-of", "1998-06-30"]
    with run_job(MRCustomerRFM, [str(cdnow_path)], args, conf_paths=[]) as run:
        direct = _by_id(run.rows())
    assert _by_id(_rows(rfm)) == direct
    assert manifest["rows_written"] == manifest["details"]["customers"] == len(direct) == 23_570


def test_inline_and_local_runners_publish_the_same_set_of_rows(cdnow_stages):
    inline, local = cdnow_stages["inline"], cdnow_stages["local"]
    for i in (0, 2):
        lines = {
            r: sorted(line for p in _parts(s[i]) for line in p.read_text().splitlines())
            for r, s in (("inline", inline), ("local", local))
        }
        assert lines["inline"] == lines["local"] and len(lines["inline"]) == 23_570
    assert inline[3].equals(local[3])
    assert inline[1]["lines"] == local[1]["lines"]


def test_each_published_part_is_sorted_by_customer_id(cdnow_stages):
    for _runner, (rfm, _m, segments, _s, _sm) in cdnow_stages.items():
        for directory in (rfm, segments):
            assert len(_parts(directory)) >= 1
            for part in _parts(directory):
                ids = [json.loads(line)["customer_id"] for line in part.read_text().splitlines()]
                assert ids == sorted(ids), part


def test_task_scores_and_summary_equal_scoring_every_customer_in_the_driver(cdnow_stages):
    rfm, _m, segments, summary, manifest = cdnow_stages["local"]
    expected = score_customers(pd.DataFrame(_by_id(_rows(rfm))))
    got = pd.DataFrame(_by_id(_rows(segments)))
    assert list(got.columns) == list(expected.columns)
    for column in ("r_score", "f_score", "m_score", "rfm_cell", "segment", "value_tier"):
        assert got[column].tolist() == expected[column].tolist(), column
    assert got["single_purchase"].tolist() == expected["single_purchase"].tolist()
    pd.testing.assert_frame_equal(summary, segment_summary(expected))
    assert manifest["rows_written"] == 23_570
    assert sum(manifest["details"]["customers_by_segment"].values()) == 23_570
    thresholds = json.loads((segments / "thresholds.json").read_text())
    assert thresholds["orders"]["thresholds"] == [1, 1, 2, 4]


def test_customers_csv_holds_every_published_row_with_the_parts_columns(cdnow_stages):
    _rfm, _m, segments, _s, _sm = cdnow_stages["inline"]
    table = pd.read_csv(segments / "customers.csv", dtype={"customer_id": str})
    rows = pd.DataFrame(_by_id(_rows(segments)))
    assert list(table.columns) == list(rows.columns)
    table = table.sort_values("customer_id").reset_index(drop=True)
    assert table["customer_id"].tolist() == rows["customer_id"].tolist()
    assert table["segment"].tolist() == rows["segment"].tolist()
    assert table["total_value"].tolist() == rows["total_value"].tolist()


def test_a_given_as_of_date_is_applied_by_the_reducers_in_one_job(tmp_path):
    log = tmp_path / "in.csv"
    log.write_text(
        HEADER
        + "O1,A,2024-01-02T10:00:00,I1,1,2.50\n"
        + "O2,B,2024-01-05T10:00:00,I1,2,2.50\n"
        + "O3,A,2024-03-01T10:00:00,I1,1,1.00\n"
    )
    manifest = run_rfm_stage(
        [str(log)], str(tmp_path / "rfm"), schema=CANONICAL, as_of="2024-02-01", conf_paths=[]
    )
    rows = _by_id(_rows(tmp_path / "rfm"))
    assert [(r["customer_id"], r["recency_days"], r["as_of"]) for r in rows] == [
        ("A", 30, "2024-02-01"),
        ("B", 27, "2024-02-01"),
    ]
    assert manifest["details"]["as_of_source"] == "given"
    assert manifest["lines"]["rejected_by_reason"] == {"after_as_of": 1, "header": 1}
    assert manifest["rows_written"] == 2


def test_no_accepted_line_publishes_one_empty_part_and_no_dates(tmp_path):
    log = tmp_path / "in.csv"
    log.write_text(HEADER + "O1,,2024-01-02T10:00:00,I1,1,2.50\n")
    manifest = run_rfm_stage([str(log)], str(tmp_path / "rfm"), schema=CANONICAL, conf_paths=[])
    assert [p.name for p in _parts(tmp_path / "rfm")] == ["part-00000"]
    assert (tmp_path / "rfm" / "part-00000").read_text() == ""
    assert manifest["details"]["customers"] == 0
    assert manifest["details"]["as_of"] is None
    assert manifest["details"]["last_purchase_date"] is None
    summary, seg = run_segments_stage(str(tmp_path / "rfm"), str(tmp_path / "seg"), conf_paths=[])
    assert summary["customers"].sum() == 0 and seg["rows_written"] == 0


def test_rows_that_cannot_be_scored_fail_the_stage_naming_the_column(tmp_path):
    rfm = tmp_path / "rfm"
    rfm.mkdir()
    rows = [
        {"customer_id": f"C{i}", "recency_days": i, "orders": 1, "total_value": 1.0}
        for i in range(5)
    ]
    rows[3]["orders"] = 0
    (rfm / "part-00000").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError, match=r"^orders is missing, not a number or out of range in 1 row;"
    ):
        run_segments_stage(str(rfm), str(tmp_path / "seg"), conf_paths=[])
    assert not (tmp_path / "seg").exists()


def test_run_job_into_moves_the_task_parts_and_leaves_no_task_directory(tmp_path):
    log = tmp_path / "in.csv"
    log.write_text(HEADER + "O1,A,2024-01-02T10:00:00,I1,1,2.50\n")
    fs, out = LocalFileSystem(), str(tmp_path / "out")
    with Publication(fs, out) as publication:
        args = ["--as-of", "2024-02-01"]
        with run_job_into(publication, MRCustomerRFM, [str(log)], args, conf_paths=[]) as run:
            assert run.output_rows == 1
            staged = sorted(fs.list(publication.staging_path))
        publication.commit({})
    assert TASK_OUTPUT_NAME not in staged
    assert [n for n in staged if n.startswith("part-")] == run.published_parts
    assert len(_rows(tmp_path / "out")) == 1
