"""The segments stage's rows written by tasks: the labelling job (:mod:`mr_jobs.kmeans_rows`),
the per-segment totals job (:mod:`mr_jobs.segment_profile`), and the stage's outputs against
the driver-side computation they replace, on the inline and local runners."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import job_runner
from models.job_runner import JobRun
from models.kmeans_stage import run_kmeans_stage
from models.rfm_stage import run_rfm_stage
from models.segment_profiles import overlap_table, profile_segments
from models.segments_stage import run_segments_stage
from models.synthetic import generate
from mr_jobs.exact_sums import exact_to_fraction
from mr_jobs.features import FeatureError, feature_values, parse_features
from mr_jobs.kmeans_features import MRKMeansFeatures
from mr_jobs.kmeans_rows import MRKMeansSegmentRows, _key, duplicates, write_model
from mr_jobs.points import assign, standardise
from mr_jobs.records import PRESETS
from mr_jobs.segment_profile import MRSegmentProfile
from tests.conftest import run_job
from tests.test_kmeans import blob_rows, write_rows

# -- the labelling job -----------------------------------------------------------------------


@pytest.fixture
def recency_model(tmp_path):
    """Recency alone, unscaled, centres at 0 and 100 days."""
    path = tmp_path / "model.json"
    write_model(path, ["recency"], [0.0], [1.0], [[0.0], [100.0]], ["near", "far"])
    return str(path)


def rfm_line(customer, recency, **extra):
    row = {"customer_id": customer, "recency_days": recency, "orders": 2, "total_value": 9.5}
    return json.dumps({**row, **extra}) + "\n"


def test_empty(recency_model):
    rows, counters = run_job(MRKMeansSegmentRows, b"", ["--model", recency_model])
    assert rows == [] and duplicates([counters]) == (0, None)


def test_labelled_rows_carry_segment_name_distance_and_the_rfm_columns(recency_model):
    raw = rfm_line("b", 10, segment="lost") + rfm_line("a", 90) + rfm_line("c", 50)
    rows, counters = run_job(MRKMeansSegmentRows, raw, ["--model", recency_model])
    assert sorted(rows, key=lambda r: r["customer_id"]) == [
        {
            "customer_id": "a",
            "segment": 1,
            "segment_name": "far",
            "distance": 10.0,
            "recency_days": 90,
            "orders": 2,
            "total_value": 9.5,
        },
        {
            "customer_id": "b",
            "segment": 0,
            "segment_name": "near",
            "distance": 10.0,
            "recency_days": 10,
            "orders": 2,
            "total_value": 9.5,
            "rfm_segment": "lost",
        },
        {  # a tie goes to the lowest index
            "customer_id": "c",
            "segment": 0,
            "segment_name": "near",
            "distance": 50.0,
            "recency_days": 50,
            "orders": 2,
            "total_value": 9.5,
        },
    ]
    assert list(rows[0]) == [  # today's key order
        "customer_id",
        "segment",
        "segment_name",
        "distance",
        "recency_days",
        "orders",
        "total_value",
        *(["rfm_segment"] if "rfm_segment" in rows[0] else []),
    ]
    assert counters["crm.output"] == {"rows": 3, "with_rfm_segment": 1}


def test_rows_the_features_job_rejects_are_skipped_not_labelled(recency_model):
    raw = (
        rfm_line("a", 5)
        + "\n"
        + "[]\n"
        + "not json\n"
        + '{"customer_id": "", "recency_days": 1}\n'
        + '{"customer_id": "n", "recency_days": NaN}\n'
        + '{"customer_id": "m"}\n'
        + rfm_line("z", -1)
    )
    rows, counters = run_job(MRKMeansSegmentRows, raw, ["--model", recency_model])
    assert [r["customer_id"] for r in rows] == ["a"]
    assert counters["crm.output"]["rows"] == 1


def test_the_labelling_job_keeps_exactly_the_rows_the_features_job_accepts(recency_model, tmp_path):
    lines = [
        rfm_line("ok", 3),
        rfm_line("formfeed", 3).replace("\n", "\x0c\n"),
        rfm_line("spaces", 3).replace("\n", "  \t\n"),
        '{"customer_id": "inf", "recency_days": Infinity}\n',
        '{"customer_id": "bool", "recency_days": true}\n',
        '{"customer_id": "huge", "recency_days": 1' + "0" * 400 + "}\n",
        '{"customer_id": 7, "recency_days": 1}\n',
        '{"customer_id": "   ", "recency_days": 1}\n',
        "   \n",
        '\ufeff{"customer_id": "bom", "recency_days": 1}\n',
    ]
    raw = "".join(lines).encode("utf-8") + b'{"customer_id": "\xff", "recency_days": 1}\n'
    rows, _ = run_job(MRKMeansSegmentRows, raw, ["--model", recency_model])
    source = tmp_path / "rows.jsonl"
    source.write_bytes(raw)
    args = ["--features", "recency"]
    with job_runner.run_job(MRKMeansFeatures, [str(source)], args, conf_paths=[]) as run:
        accepted = run.lines["accepted"]
    assert len(rows) == accepted
    assert sorted(r["customer_id"] for r in rows) == ["ok", "spaces"]


def test_a_long_duplicate_id_is_named_by_its_first_40_characters(recency_model):
    long_id = "L" * 100
    rows, counters = run_job(
        MRKMeansSegmentRows, rfm_line(long_id, 1) * 2, ["--model", recency_model]
    )
    assert rows == [] and duplicates([counters]) == (1, "L" * 40)


def test_a_customer_in_two_rows_is_counted_as_a_duplicate_and_named(recency_model):
    raw = rfm_line("a", 5) + rfm_line("dup", 7) + rfm_line("dup", 8)
    rows, counters = run_job(MRKMeansSegmentRows, raw, ["--model", recency_model])
    assert [r["customer_id"] for r in rows] == ["a"]
    assert duplicates([counters]) == (1, "dup")


def test_the_shuffle_key_sorts_customer_ids_as_python_compares_them():
    ids = ["C1", "C1 ", "C10", 'C1"', "C1\\", "C1\t", "é", "Z", "a", "😀", "\u00a0x", "C", ""]
    assert sorted(ids, key=_key) == sorted(ids)
    # and as the shuffle compares them: the keys' bytes, JSON-encoded (a hex string)
    assert sorted(ids, key=lambda c: json.dumps(_key(c)).encode()) == sorted(ids)


# -- the per-segment totals job ----------------------------------------------------------------


def labelled_line(customer, segment, recency, orders, value, distance, rfm=None):
    row = {
        "customer_id": customer,
        "segment": segment,
        "segment_name": f"s{segment}",
        "distance": distance,
        "recency_days": recency,
        "orders": orders,
        "total_value": value,
    }
    if rfm is not None:
        row["rfm_segment"] = rfm
    return json.dumps(row) + "\n"


TOY_LABELLED = (
    labelled_line("a", 0, 10, 1, 0.1, 0.5, "lost")
    + labelled_line("b", 0, 20, 3, 0.2, 0.25, "loyal")
    + labelled_line("c", 1, 7, 2, 1234.567891, 0.1, "lost")
    + labelled_line("d", 0, 30, 2, 0.3, 0.125, "lost")
)


def test_empty_profile():
    assert run_job(MRSegmentProfile, b"")[0] == []


def test_profile_totals_are_exact_counts_sums_and_micros():
    rows, _ = run_job(MRSegmentProfile, TOY_LABELLED)
    totals = {r["segment"]: r for r in rows if "rfm_segment" not in r}
    overlap = [r for r in rows if "rfm_segment" in r]
    zero = totals[0]
    assert zero["customers"] == 3
    assert zero["total_value"] == [3, 600_000]  # 0.1 + 0.2 + 0.3 exactly, in millionths
    assert [zero["recency_days"][0], exact_to_fraction(zero["recency_days"][1])] == [3, 60]
    assert exact_to_fraction(zero["orders"][1]) == 6
    assert exact_to_fraction(zero["distance"][1]) == Fraction(7, 8)
    assert totals[1]["total_value"] == [1, 1_234_567_891]
    assert exact_to_fraction(totals[1]["distance"][1]) == Fraction(0.1)
    assert overlap == [
        {"segment": 0, "rfm_segment": "lost", "customers": 2},
        {"segment": 0, "rfm_segment": "loyal", "customers": 1},
        {"segment": 1, "rfm_segment": "lost", "customers": 1},
    ]


def test_profile_totals_do_not_depend_on_how_the_rows_are_split(tmp_path):
    lines = TOY_LABELLED.splitlines(keepends=True)
    paths = []
    for i, chunk in enumerate((lines[:1], lines[1:3], lines[3:])):
        paths.append(tmp_path / f"part-{i:05d}")
        paths[-1].write_text("".join(chunk))
    one, _ = run_job(MRSegmentProfile, TOY_LABELLED)
    three, _ = run_job(MRSegmentProfile, input_paths=paths)
    assert three == one


# -- the stage: parity with the driver-side computation, on two runners ------------------------


@pytest.fixture(scope="module")
def rfm_segments(tmp_path_factory):
    """600 generated customers, their RFM rows and RFM segments (several parts each)."""
    root = tmp_path_factory.mktemp("kmeans-rows")
    log = root / "transactions.csv"
    generate(log, customers=600, seed=5)
    jobs = {"runner": "inline", "conf_paths": []}
    run_rfm_stage([str(log)], str(root / "rfm"), schema=PRESETS["canonical"], **jobs)
    run_segments_stage([str(root / "rfm")], str(root / "rfm_segments"), **jobs)
    return root / "rfm_segments"


@pytest.fixture(scope="module")
def one_part(rfm_segments, tmp_path_factory):
    """The RFM segments rows in one part (the local runner starts a task per part and
    step, each a new Python process)."""
    source = tmp_path_factory.mktemp("kmeans-rows-one-part")
    rows = [row for part in parts_of(rfm_segments).values() for row in part]
    (source / "part-00000").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return source


@pytest.fixture(scope="module")
def stage_runs(one_part, tmp_path_factory):
    """The stage with k=4 on the inline and on the local runner."""
    out = tmp_path_factory.mktemp("kmeans-rows-out")
    runs = {}
    for runner in ("inline", "local"):
        target = out / runner
        manifest = run_kmeans_stage(
            [str(one_part)], str(target), k=4, tol=1e-2, runner=runner, conf_paths=[]
        )
        runs[runner] = (target, manifest)
    return runs


def parts_of(directory):
    return {
        part.name: [json.loads(line) for line in part.read_text().splitlines() if line]
        for part in sorted(Path(directory).glob("part-*"))
    }


def reference(input_dir, out):
    """What the driver computed before the rows were written by tasks: every input row
    labelled with model.json's centres, joined with its RFM columns in pandas, sorted, and
    profiled with :func:`profile_segments` and :func:`overlap_table`."""
    model = json.loads((out / "model.json").read_text())
    features = parse_features([f["name"] for f in model["features"]])
    rows = []
    for part in parts_of(input_dir).values():
        for row in part:
            try:
                rows.append((row, feature_values(row, features)))
            except FeatureError:
                pass
    x = np.array([values for _, values in rows])
    labels, d2 = assign(standardise(x, model["mean"], model["scale"]), np.array(model["centroids"]))
    frame = pd.DataFrame(
        {
            "customer_id": [r["customer_id"] for r, _ in rows],
            "segment": labels,
            "segment_name": [model["names"][j] for j in labels],
            "distance": np.sqrt(d2),
            **{c: [r[c] for r, _ in rows] for c in ("recency_days", "orders", "total_value")},
            "rfm_segment": [r["segment"] for r, _ in rows],
        }
    )
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    centres = np.array(model["centroids_original_units"])
    names = [f.name for f in features]
    profile = profile_segments(frame, centres, names, model["names"])
    return frame, profile, overlap_table(frame, model["names"])


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_stage_rows_and_tables_equal_the_driver_side_computation(one_part, stage_runs, runner):
    out, manifest = stage_runs[runner]
    frame, profile, overlap = reference(one_part, out)
    parts = parts_of(out)
    for name, rows in parts.items():
        ids = [r["customer_id"] for r in rows]
        assert ids == sorted(ids), f"{name} is not sorted by customer_id"
    published = sorted((r for rows in parts.values() for r in rows), key=lambda r: r["customer_id"])
    assert published == frame.to_dict("records")
    assert [list(r) for r in published[:1]] == [list(frame.columns)]
    lines = (out / "customers.csv").read_text().splitlines()
    expected = frame.to_csv(index=False).splitlines()
    assert lines[0] == expected[0] and sorted(lines[1:]) == expected[1:]
    assert (out / "overlap.csv").read_text() == overlap.to_csv(index=False)
    table = pd.read_csv(out / "segments.csv")
    theirs = pd.read_csv(pd.io.common.StringIO(profile.to_csv(index=False)))
    assert list(table.columns) == list(theirs.columns)
    for column in table.columns:
        if table[column].dtype == float:  # exact sums now, pandas float sums then
            assert table[column].to_numpy() == pytest.approx(theirs[column].to_numpy(), rel=1e-12)
        else:
            assert table[column].tolist() == theirs[column].tolist(), column
    assert manifest["rows_written"] == len(frame)


def test_stage_inline_and_local_runners_publish_the_same_outputs(stage_runs):
    (inline, _), (local, _) = stage_runs["inline"], stage_runs["local"]

    def rows(out):
        return sorted((r for rs in parts_of(out).values() for r in rs), key=json.dumps)

    assert rows(inline) == rows(local)
    for name in ("segments.csv", "segments.json", "overlap.csv", "model.json"):
        assert (inline / name).read_text() == (local / name).read_text(), name
    for name in ("customers.csv",):
        assert sorted((inline / name).read_text().splitlines()) == sorted(
            (local / name).read_text().splitlines()
        )
    columns = ["k", "inertia", "silhouette", "iterations", "converged"]
    assert pd.read_csv(inline / "k_selection.csv")[columns].equals(
        pd.read_csv(local / "k_selection.csv")[columns]
    )


def test_rows_written_is_the_tasks_count_and_the_driver_reads_no_customer_row(
    rfm_segments, tmp_path, monkeypatch
):
    read = []
    original = JobRun.rows

    def counted(self):
        for row in original(self):
            read.append(row)
            yield row

    monkeypatch.setattr(JobRun, "rows", counted)
    customers = sum(len(rows) for rows in parts_of(rfm_segments).values())
    manifest = run_kmeans_stage(
        [str(rfm_segments)], str(tmp_path / "out"), k=3, sample_size=50, conf_paths=[]
    )
    assert manifest["rows_written"] == customers == 600
    assert manifest["lines"]["accepted"] == customers
    # rows the driver decoded from job outputs: iteration and profile records, the
    # statistics (the sample is one bounded record), never one per customer
    assert len(read) < 100, len(read)
    assert not any("customer_id" in row for row in read)


def test_a_customer_id_in_two_input_rows_is_refused_naming_it(tmp_path):
    rows = blob_rows()
    source = tmp_path / "rfm"
    source.mkdir()
    write_rows(source / "part-00000", rows[:20])
    write_rows(source / "part-00001", rows[19:])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"customer_id='B09' appears in more than one input row"):
        run_kmeans_stage([str(source)], str(out), k=3, conf_paths=[])
    assert not out.exists()
