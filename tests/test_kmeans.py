"""The K-Means driver and the segments stage: toy blobs with exact centres and inertia,
empty clusters, refusals, rejected rows, the CDNOW golden test against scikit-learn,
runner parity, the planted synthetic segments, and what the stage publishes."""

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from hdfs_io import LocalFileSystem, PathExists, read_manifest
from models.inputs import expand_parts
from models.kmeans import (
    EmptyClusterWarning,
    fit_kmeans,
    label_customers,
    parse_k,
    prepared_features,
)
from models.kmeans_stage import run_kmeans_stage
from models.rfm_stage import run_rfm_stage
from models.synthetic import customers_truth_path, generate
from mr_jobs.features import feature_values, parse_features
from mr_jobs.points import assign, read_points, standardise
from mr_jobs.records import PRESETS

# -- toy data --------------------------------------------------------------------------------


def blob_rows():
    """Thirty customers in three well-separated blobs of ten: recent big spenders
    (``A``), lapsed one-timers (``B``) and a middle group (``C``)."""
    rng = np.random.default_rng(3)
    specs = {"A": (10, 20, 2000.0), "B": (400, 1, 25.0), "C": (150, 5, 300.0)}
    rows = []
    for blob, (recency, orders, value) in specs.items():
        for i in range(10):
            rows.append(
                {
                    "customer_id": f"{blob}{i:02d}",
                    "recency_days": int(recency + rng.integers(-5, 6)),
                    "orders": int(orders + (i % 2)),
                    "total_value": round(value * (1 + 0.1 * rng.standard_normal()), 2),
                }
            )
    return rows


def write_rows(path, rows, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines))
    return str(path)


def features_of(rows):
    """Independently computed default features: recency, log1p(orders), log1p(value)."""
    return np.array(
        [[r["recency_days"], math.log1p(r["orders"]), math.log1p(r["total_value"])] for r in rows]
    )


def exact_mean(points):
    """The exact mean of each coordinate, correctly rounded."""
    n = points.shape[0]
    return [float(sum(Fraction(v) for v in points[:, f].tolist()) / n) for f in range(3)]


def test_three_blobs_give_their_exact_means_as_centres_and_the_exact_inertia(tmp_path):
    rows = blob_rows()
    path = write_rows(tmp_path / "rfm.jsonl", rows)
    with prepared_features([path], conf_paths=[]) as data:
        x = features_of(rows)
        assert data.count == 30 and data.lines["accepted"] == 30
        assert data.mean == pytest.approx(x.mean(axis=0), rel=1e-13)
        assert data.scale == pytest.approx(x.std(axis=0), rel=1e-13)
        result = fit_kmeans(data, 3, seed=0)
        labelled, _ = label_customers(data, result)
    assert result.converged and sorted(result.counts) == [10, 10, 10]
    z = data.standardise(x)
    blob_of = np.array([r["customer_id"][0] for r in rows])
    segment = {r["customer_id"]: r["segment"] for r in labelled}
    expected = {}
    for blob in "ABC":
        members = z[blob_of == blob]
        (j,) = {segment[r["customer_id"]] for r in rows if r["customer_id"][0] == blob}
        expected[j] = exact_mean(members)
    assert sorted(expected) == [0, 1, 2]  # one segment per blob
    assert result.centroids.tolist() == [expected[j] for j in range(3)]
    labels, d2 = assign(z, result.centroids)
    assert labels.tolist() == [segment[r["customer_id"]] for r in rows]
    assert result.inertia == math.fsum(d2.tolist())
    distance = {r["customer_id"]: r["distance"] for r in labelled}
    assert [distance[r["customer_id"]] for r in rows] == np.sqrt(d2).tolist()
    assert len(labelled) == len(distance) == 30


def test_an_empty_cluster_is_reseeded_with_a_warning_and_recorded(tmp_path):
    rows = blob_rows()
    path = write_rows(tmp_path / "rfm.jsonl", rows)
    with prepared_features([path], conf_paths=[]) as data:
        z = data.standardise(features_of(rows))
        a, b = z[:10].mean(axis=0), z[10:20].mean(axis=0)
        init = [a, b, [50.0, 50.0, 50.0]]  # nothing is near the third centre
        with pytest.warns(EmptyClusterWarning, match="cluster 2 was empty"):
            result = fit_kmeans(data, 3, init=init)
    first = result.history[0]
    assert [r["cluster"] for r in first["reseeded"]] == [2]
    assert first["reseeded"][0]["from_cluster"] in (0, 1)
    assert result.init == {"method": "given"}
    assert all(not h["reseeded"] for h in result.history[1:])
    assert sorted(result.counts) == [10, 10, 10] and sum(result.counts) == 30
    assert min(result.counts) > 0 and result.converged


def test_k_above_the_distinct_points_is_refused_naming_both_numbers(tmp_path):
    rows = [
        {"customer_id": f"C{i}", "recency_days": 5 * j, "orders": 1 + j, "total_value": 9.0 + j}
        for i, j in enumerate([0, 1] * 3)
    ]
    path = write_rows(tmp_path / "rfm.jsonl", rows)
    with prepared_features([path], conf_paths=[]) as data:
        assert data.distinct == 2
        with pytest.raises(ValueError, match=r"k=3 .*distinct points \(2\)"):
            fit_kmeans(data, 3)
        assert sorted(fit_kmeans(data, 2).counts) == [3, 3]


def test_k_above_the_number_of_customers_is_refused(tmp_path):
    rows = blob_rows()[:2]
    path = write_rows(tmp_path / "rfm.jsonl", rows)
    with prepared_features([path], conf_paths=[]) as data:
        with pytest.raises(ValueError, match=r"n_samples=2 should be >= k=3"):
            fit_kmeans(data, 3)
        with pytest.raises(ValueError, match=r"k=0"):
            fit_kmeans(data, 0)


def test_k_above_the_distinct_limit_asks_for_a_larger_limit(tmp_path):
    path = write_rows(tmp_path / "rfm.jsonl", blob_rows())
    with prepared_features([path], conf_paths=[], distinct_limit=2) as data:
        with pytest.raises(ValueError, match=r"k=3 is above distinct_limit=2"):
            fit_kmeans(data, 3)


@pytest.mark.parametrize(
    ("spec", "ks"),
    [("3-8", [3, 4, 5, 6, 7, 8]), ("4,6", [4, 6]), ("6, 4,4", [4, 6]), (5, [5]), ("5", [5])],
)
def test_parse_k_reads_a_k_a_range_or_a_list(spec, ks):
    assert parse_k(spec) == ks


@pytest.mark.parametrize("spec", ["", "x", "3-x", "8-3", "0", "0-2", "-1", "2,,a", 0])
def test_parse_k_refuses_bad_specs_naming_them(spec):
    with pytest.raises(ValueError, match=re.escape(f"k={spec!r}")):
        parse_k(spec)


def test_rows_with_nan_or_missing_features_are_rejected_counted_and_the_rest_clustered(tmp_path):
    rows = blob_rows()
    bad = [
        '{"customer_id": "X1", "recency_days": NaN, "orders": 1, "total_value": 3.0}\n',
        '{"customer_id": "X2", "recency_days": 4, "orders": null, "total_value": 3.0}\n',
        '{"customer_id": "X3", "recency_days": 4, "orders": 2}\n',
        '{"customer_id": "X4", "recency_days": 4, "orders": "2", "total_value": 3.0}\n',
        '{"customer_id": "X5", "recency_days": 4, "orders": 2, "total_value": -1.0}\n',
        "\n",
        "not json\n",
    ]
    path = write_rows(tmp_path / "rfm.jsonl", rows, bad)
    with prepared_features([path], conf_paths=[]) as data:
        result = fit_kmeans(data, 3, seed=0)
        labelled, _ = label_customers(data, result)
    assert data.lines == {
        "read": 37,
        "accepted": 30,
        "rejected": 7,
        "rejected_by_reason": {
            "blank": 1,
            "missing_feature": 2,
            "negative_value": 1,
            "not_a_number": 1,
            "not_finite": 1,
            "not_json": 1,
        },
    }
    assert data.count == 30 and sum(result.counts) == 30
    assert sorted(r["customer_id"] for r in labelled) == sorted(r["customer_id"] for r in rows)
    x = features_of(rows)
    assert data.mean == pytest.approx(x.mean(axis=0), rel=1e-13)  # bad rows left out


def test_input_without_a_usable_row_is_refused_with_the_reasons(tmp_path):
    path = write_rows(tmp_path / "rfm.jsonl", [], ['{"customer_id": "X", "orders": 1}\n', "\n"])
    with pytest.raises(ValueError, match=r"no row .* gave features .*missing_feature"):
        with prepared_features([path], conf_paths=[]):
            pass


# -- CDNOW -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_rfm(tmp_path_factory, cdnow_path):
    """The CDNOW customers' RFM rows (the RFM stage, inline): its part files, as many as
    the runner's reducers."""
    out = tmp_path_factory.mktemp("cdnow") / "rfm"
    run_rfm_stage(
        [str(cdnow_path)], str(out), schema=PRESETS["cdnow"], runner="inline", conf_paths=[]
    )
    return expand_parts([str(out)])


def test_cdnow_inertia_is_within_one_percent_of_scikit_learn_for_k_4_to_8(cdnow_rfm):
    from sklearn.cluster import KMeans

    differences = {}
    with prepared_features(cdnow_rfm, conf_paths=[], distinct_limit=8) as data:
        assert data.count == 23_570
        z = data.standardise(np.vstack([read_points(p, 3)[1] for p in data.parts]))
        assert z.shape == (23_570, 3)
        for k in range(4, 9):
            ours = fit_kmeans(data, k, seed=0)
            assert sum(ours.counts) == 23_570
            with threadpool_limits(1):  # the suite may share the cores with other work
                theirs = KMeans(n_clusters=k, n_init=10, random_state=0).fit(z)
            differences[k] = (ours.inertia - theirs.inertia_) / theirs.inertia_
    report = ", ".join(f"k={k}: {d:+.4%}" for k, d in differences.items())
    assert all(abs(d) <= 0.01 for d in differences.values()), report


def test_cdnow_inline_and_local_runners_give_identical_centres_inertia_and_labels(cdnow_rfm):
    fits = {}
    for runner in ("inline", "local"):
        with prepared_features(cdnow_rfm, runner=runner, conf_paths=[], distinct_limit=5) as d:
            result = fit_kmeans(d, 5, seed=0)
            labels, _ = label_customers(d, result)
        fits[runner] = (result, sorted(labels, key=lambda r: r["customer_id"]))
    (inline, inline_labels), (local, local_labels) = fits["inline"], fits["local"]
    assert np.array_equal(inline.centroids, local.centroids)
    assert inline.inertia == local.inertia and inline.counts == local.counts
    assert inline_labels == local_labels and len(inline_labels) == 23_570


# -- the built-in synthetic data: planted segments -------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """4,000 generated customers (seed 42), their RFM rows and the segments stage, k=5."""
    root = tmp_path_factory.mktemp("synthetic")
    log = root / "transactions.csv"
    generate(log)
    run_rfm_stage(
        [str(log)], str(root / "rfm"), schema=PRESETS["canonical"], runner="inline", conf_paths=[]
    )
    manifest = run_kmeans_stage(
        [str(root / "rfm")], str(root / "segments"), k=5, runner="inline", conf_paths=[]
    )
    truth = pd.read_json(customers_truth_path(log), lines=True, dtype={"customer_id": str})
    return {"root": root, "log": log, "manifest": manifest, "truth": truth}


def read_parts_of(part):
    return [json.loads(line) for line in part.read_text().splitlines() if line]


def read_parts(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += read_parts_of(part)
    return rows


def test_kmeans_recovers_the_planted_segments_as_far_as_the_features_allow(synthetic):
    """The generator's segments overlap heavily by design: order rates are individual
    (segment rate x Gamma(2.5)), join dates are random and customers churn, so R, F and M
    alone cannot tell most customers' segment. What is recoverable, measured here:

    - K-Means k=5 (this stage): ARI 0.093; scikit-learn KMeans k=5 on the same
      standardised features: 0.093 (k=3: 0.10).
    - Supervised ceiling, a HistGradientBoostingClassifier with 5-fold shuffled
      stratified cross_val_predict on the same features: ARI 0.177 (accuracy 0.57). The
      estimate moves with the classifier: 0.21 with a smaller learning rate and 15
      leaves, and 0.144 with unshuffled folds, which are blocks of join dates (ids follow
      the join order) and so underestimate it. K-Means reaches 0.44-0.52 of it; the bound
      is 0.4 x the ceiling, as 0.5 would sit inside that spread.
    - Chance: 200 random permutations of the labels give at most 0.004.

    ARI alone does not separate good clusterings from poor ones here (K-Means on the
    monetary feature alone: 0.115; five random centres without Lloyd: 0.088); it does
    catch gross failures such as clustering unstandardised features (0.015). The concrete
    recoveries carry the weight: 76.9% of the ``vip`` customers are in segment 0, the
    most valuable (bound 70%), where they are 4.7 times as frequent as overall (bound 3),
    and 96.1% of the ``one_off`` customers (at most two orders) are in segments named for
    low frequency (bound 85%), none in segment 0.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rows = pd.DataFrame(read_parts(synthetic["root"] / "segments"))
    truth = synthetic["truth"][["customer_id", "segment"]].rename(columns={"segment": "planted"})
    joined = rows.merge(truth, on="customer_id", how="inner", validate="one_to_one")
    assert len(joined) == len(rows) == len(truth) == 4000

    ari = adjusted_rand_score(joined["planted"], joined["segment"])
    rng = np.random.default_rng(0)
    shuffled = joined["segment"].to_numpy()
    chance = max(
        adjusted_rand_score(joined["planted"], rng.permutation(shuffled)) for _ in range(200)
    )
    model = json.loads((synthetic["root"] / "segments" / "model.json").read_text())
    z = standardise(features_of(joined.to_dict("records")), model["mean"], model["scale"])
    classifier = HistGradientBoostingClassifier(random_state=0)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    with threadpool_limits(1):  # oversubscribed OpenMP threads made this 20x slower
        predicted = cross_val_predict(classifier, z, joined["planted"], cv=folds)
    ceiling = adjusted_rand_score(joined["planted"], predicted)
    measured = f"ARI {ari:.4f}, chance max {chance:.4f}, supervised ceiling {ceiling:.4f}"
    assert ari > 10 * chance, measured
    assert ari >= 0.4 * ceiling, measured

    vip = joined[joined["planted"] == "vip"]
    vip_in_top = float((vip["segment"] == 0).mean())
    top = joined[joined["segment"] == 0]
    lift = float((top["planted"] == "vip").mean()) / (len(vip) / len(joined))
    assert vip_in_top >= 0.70, f"{vip_in_top:.1%} of vip in segment 0; {measured}"
    assert lift >= 3, f"vip {lift:.1f}x as frequent in segment 0 as overall"

    one_off = joined[joined["planted"] == "one_off"]
    low = {"lost", "hibernating", "need_attention", "promising", "new"}
    base_names = one_off["segment_name"].str.replace(r"_\d+$", "", regex=True)
    in_low = float(base_names.isin(low).mean())
    assert in_low >= 0.85, f"{in_low:.1%} of one_off in low-frequency segments"
    assert (one_off["segment"] == 0).sum() == 0


# -- what the segments stage publishes ---------------------------------------------------


def test_stage_publishes_parts_sorted_by_customer_with_names_and_profiles(synthetic):
    out = synthetic["root"] / "segments"
    for part in sorted(out.glob("part-*")):
        ids = [r["customer_id"] for r in read_parts_of(part)]
        assert ids == sorted(ids), f"{part.name} is not sorted by customer_id"
    rows = read_parts(out)
    ids = [r["customer_id"] for r in rows]
    assert len(set(ids)) == len(ids) == 4000
    profile = pd.read_csv(out / "segments.csv")
    assert profile["segment"].tolist() == [0, 1, 2, 3, 4]
    assert profile["customers"].sum() == 4000
    assert profile["share_of_revenue"].sum() == pytest.approx(1.0, abs=1e-9)
    assert profile["name"].is_unique
    counted = pd.Series([r["segment"] for r in rows]).value_counts().sort_index()
    assert profile["customers"].tolist() == counted.tolist()
    names = dict(zip(profile["segment"], profile["name"], strict=True))
    assert all(r["segment_name"] == names[r["segment"]] for r in rows)
    revenue = pd.DataFrame(rows).groupby("segment")["total_value"].sum()
    assert profile["revenue"].to_numpy() == pytest.approx(revenue.to_numpy(), rel=1e-12)
    # segment 0 is the most valuable by -r + f + m of the standardised centre
    model = json.loads((out / "model.json").read_text())
    c = np.array(model["centroids"])
    value = -c[:, 0] + c[:, 1] + c[:, 2]
    assert value.tolist() == sorted(value.tolist(), reverse=True)


def test_stage_model_json_reproduces_the_published_segments(synthetic):
    out = synthetic["root"] / "segments"
    rows = read_parts(out)
    model = json.loads((out / "model.json").read_text())
    names = [f["name"] for f in model["features"]]
    assert names == ["recency", "frequency", "monetary"]
    chosen = parse_features(names)
    x = np.array([feature_values(r, chosen) for r in rows])
    z = standardise(x, model["mean"], model["scale"])
    labels, d2 = assign(z, np.array(model["centroids"]))
    assert labels.tolist() == [r["segment"] for r in rows]
    assert [r["distance"] for r in rows] == np.sqrt(d2).tolist()
    assert model["inertia"] == math.fsum(d2.tolist())
    assert len(model["names"]) == model["k"] == 5
    # the centres in raw units invert the transforms
    raw = np.array(model["centroids_original_units"])
    back = np.array(model["centroids"]) * model["scale"] + model["mean"]
    assert raw[:, 0] == pytest.approx(back[:, 0]) and raw[:, 1] == pytest.approx(
        np.expm1(back[:, 1])
    )


def test_stage_manifest_accounts_for_lines_and_records_each_iteration(synthetic):
    out = synthetic["root"] / "segments"
    manifest = read_manifest(LocalFileSystem(), str(out))
    assert manifest == synthetic["manifest"]
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"] == 4000
    details = manifest["details"]
    assert details["chosen_k"] == 5 and details["selection"] == "single k"
    fit = details["fits"]["5"]
    assert fit["history"], "no iteration recorded"
    for step in fit["history"]:
        assert isinstance(step["inertia"], float) and step["inertia"] > 0
        assert "shift" in step and "reseeded" in step
    assert fit["history"][-1]["inertia"] == fit["inertia"]
    assert sum(details["segments"].values()) == 4000


def test_stage_counts_rejected_rows_and_labels_the_rest(tmp_path):
    rows = blob_rows()
    bad = ['{"customer_id": "X", "recency_days": NaN, "orders": 1, "total_value": 1}\n', "[]\n"]
    source = tmp_path / "rfm"
    source.mkdir()
    write_rows(source / "part-00000", rows[:15])
    write_rows(source / "part-00001", rows[15:], bad)
    manifest = run_kmeans_stage([str(source)], str(tmp_path / "out"), k=3, conf_paths=[])
    assert manifest["lines"] == {
        "read": 32,
        "accepted": 30,
        "rejected": 2,
        "rejected_by_reason": {"not_an_object": 1, "not_finite": 1},
    }
    published = read_parts(tmp_path / "out")
    assert sorted(r["customer_id"] for r in published) == sorted(r["customer_id"] for r in rows)
    by_blob = {}
    for r in published:
        by_blob.setdefault(r["customer_id"][0], set()).add(r["segment"])
    assert sorted(len(s) for s in by_blob.values()) == [1, 1, 1]  # each blob one segment
    assert set().union(*by_blob.values()) == {0, 1, 2}
    (a,) = by_blob["A"]
    assert a == 0  # the recent big spenders are the most valuable segment


def test_stage_k_range_picks_the_k_with_the_best_silhouette(synthetic, tmp_path):
    out = tmp_path / "range"
    manifest = run_kmeans_stage(
        [str(synthetic["root"] / "rfm")], str(out), k="4-6", runner="inline", conf_paths=[]
    )
    table = pd.read_csv(out / "k_selection.csv")
    assert table["k"].tolist() == [4, 5, 6]
    assert table["silhouette"].notna().all()
    best = int(table.loc[table["silhouette"].idxmax(), "k"])
    assert manifest["details"]["chosen_k"] == best
    assert manifest["details"]["selection"] == "highest silhouette on the sample"
    assert json.loads((out / "model.json").read_text())["k"] == best
    assert len(pd.read_csv(out / "segments.csv")) == best
    assert sorted(manifest["details"]["fits"]) == ["4", "5", "6"]


def test_stage_refuses_an_existing_output_without_overwrite(synthetic):
    out = synthetic["root"] / "segments"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(PathExists):
        run_kmeans_stage([str(synthetic["root"] / "rfm")], str(out), k=5, conf_paths=[])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": "0"}, r"k='0'"),
        ({"k": "4-x"}, r"k='4-x'"),
        ({"features": "recency,loyalty"}, r"unknown \['loyalty'\]"),
        ({"k": "4-8", "sample_size": 5}, r"sample_size=5 should be an int >= the largest k"),
        ({"n_init": 0}, r"n_init=0"),
        ({"tol": -1.0}, r"tol=-1.0"),
    ],
)
def test_stage_refuses_bad_options_before_any_job_runs(
    synthetic, tmp_path, monkeypatch, options, message
):
    def no_job(*args, **kwargs):
        raise AssertionError("a job ran")

    monkeypatch.setattr("models.kmeans_stage.prepared_features", no_job)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        run_kmeans_stage([str(synthetic["root"] / "rfm")], str(out), conf_paths=[], **options)
    assert not out.exists()
