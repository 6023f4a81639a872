"""The K-Means jobs and their numerics: exact sums, nearest-centroid assignment, the
features pass with its line accounting, one Lloyd iteration, the labelling pass, and
split and runner invariance of the exact sums."""

import io
import json
import math
import struct
from fractions import Fraction

import numpy as np
import pytest

import mr_jobs.exact_sums as exact_sums
from mr_jobs.exact_sums import (
    ZERO,
    add_exact,
    exact_group_sums,
    exact_to_float,
    exact_to_fraction,
)
from mr_jobs.kmeans import MRKMeansIteration, write_centroids
from mr_jobs.kmeans_features import MRKMeansFeatures
from mr_jobs.kmeans_labels import MRKMeansLabels
from mr_jobs.points import assign, format_point, read_points
from tests.conftest import run_job

# -- exact sums ----------------------------------------------------------------------------


def wide_values(seed, n=3000):
    """Signed values over about 600 binary orders of magnitude, with zeros, subnormals and
    pairs that cancel exactly."""
    rng = np.random.default_rng(seed)
    values = np.ldexp(rng.standard_normal(n), rng.integers(-300, 300, n))
    values[rng.random(n) < 0.05] = 0.0
    values[:4] = [5e-324, -1e-310, 1e300, -1e300]  # subnormals and a cancelling pair
    return values


def fraction_sums(values, groups, n_groups):
    totals = [Fraction(0)] * n_groups
    for v, g in zip(values.tolist(), groups.tolist(), strict=True):
        totals[g] += Fraction(v)
    return totals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_group_sums_equal_the_fraction_sums_of_wide_signed_values(seed):
    values = wide_values(seed)
    groups = np.random.default_rng(seed + 100).integers(0, 6, values.size)
    groups[groups == 5] = 4  # group 5 stays empty
    sums = exact_group_sums(values, groups, 6)
    assert len(sums) == 6
    assert [exact_to_fraction(s) for s in sums] == fraction_sums(values, groups, 6)
    assert sums[5] == ZERO


def test_exact_sum_of_terms_that_cancel_is_exact_where_floats_lose_it():
    values = np.array([1e300, 1.0, -1e300, 2.0**-60, 0.0, -0.0])
    (total,) = exact_group_sums(values, np.zeros(6, dtype=np.int64), 1)
    assert exact_to_fraction(total) == 1 + Fraction(1, 2**60)
    assert float(np.sum(values)) == 2.0**-60  # the float sum lost the 1.0
    assert exact_group_sums(np.zeros(3), np.zeros(3, dtype=np.int64), 2) == [ZERO, ZERO]
    assert exact_group_sums(np.empty(0), np.empty(0, dtype=np.int64), 2) == [ZERO, ZERO]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_any_split_of_the_values_added_with_add_exact_gives_the_same_sums(seed):
    rng = np.random.default_rng(seed)
    values = wide_values(seed)
    groups = rng.integers(0, 4, values.size)
    whole = exact_group_sums(values, groups, 4)
    cuts = np.sort(rng.choice(np.arange(1, values.size), size=rng.integers(1, 8), replace=False))
    pieces = [
        exact_group_sums(v, g, 4)
        for v, g in zip(np.split(values, cuts), np.split(groups, cuts), strict=True)
    ]
    rng.shuffle(pieces)  # the reducer sees the pieces in any order
    combined = [ZERO] * 4
    for piece in pieces:
        combined = [add_exact(a, b) for a, b in zip(combined, piece, strict=True)]
    assert [exact_to_fraction(s) for s in combined] == [exact_to_fraction(s) for s in whole]
    # pairs travel as JSON lists
    as_lists = [add_exact(list(a), list(ZERO)) for a in json.loads(json.dumps(whole))]
    assert [exact_to_fraction(s) for s in as_lists] == [exact_to_fraction(s) for s in whole]


def test_exact_sums_over_several_internal_chunks_equal_one_chunk(monkeypatch):
    values = wide_values(7, n=500)
    groups = np.random.default_rng(7).integers(0, 3, values.size)
    expected = fraction_sums(values, groups, 3)
    monkeypatch.setattr(exact_sums, "_CHUNK", 7)  # the path taken above 2**25 terms
    assert [exact_to_fraction(s) for s in exact_group_sums(values, groups, 3)] == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_to_float_is_the_correctly_rounded_sum_like_math_fsum(seed):
    values = wide_values(seed)
    groups = np.random.default_rng(seed).integers(0, 3, values.size)
    sums = exact_group_sums(values, groups, 3)
    for g in range(3):
        assert exact_to_float(sums[g]) == math.fsum(values[groups == g].tolist())
    tiny = np.array([0.1] * 10)  # fsum gives 1.0, a float loop 0.9999999999999999
    assert exact_to_float(exact_group_sums(tiny, np.zeros(10, dtype=np.int64), 1)[0]) == 1.0


def test_add_exact_adds_pairs_with_different_exponents_and_zero():
    assert exact_to_fraction(add_exact((3, -2), (5, 1))) == Fraction(3, 4) + 10
    assert add_exact(ZERO, (7, -3)) == (7, -3)
    assert add_exact((7, -3), ZERO) == (7, -3)
    assert add_exact((1, 0), (-1, 0)) == ZERO


# -- nearest centroid ------------------------------------------------------------------------


def test_assign_gives_nearest_centroid_and_squared_distance_ties_to_lowest_index():
    z = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [4.0, 3.0], [2.0, 5.0]])
    centroids = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 0.0]])  # 1 and 2 coincide
    labels, d2 = assign(z, centroids)
    # (2, 0) is at 4 from both 0 and 1; (2, 5) at 29 from 0 and 29 from 1
    assert labels.tolist() == [0, 0, 1, 0, 1, 0]
    assert d2.tolist() == [0.0, 1.0, 1.0, 4.0, 9.0, 29.0]
    assert labels.dtype == np.int64


def test_assign_sums_squares_over_every_coordinate():
    z = np.array([[1.0, 2.0, 2.0], [-1.0, 0.0, 0.5]])
    labels, d2 = assign(z, np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    assert labels.tolist() == [1, 0]
    assert d2.tolist() == [1.0, 1.25]


# -- MRKMeansFeatures ------------------------------------------------------------------------


def run_lines(job_cls, raw_input=b"", args=()):
    """Like ``tests.conftest.run_job`` for jobs whose output lines are not JSON (feature
    lines are tab-separated): returns (lines, first-step counters)."""
    job = job_cls(args=["--no-conf", "-r", "inline", *args, "-"])
    job.sandbox(stdin=io.BytesIO(raw_input))
    with job.make_runner() as runner:
        runner.run()
        lines = [line.decode("utf-8").rstrip("\n") for line in runner.cat_output()]
        counters = runner.counters()
    return [line for line in lines if line], (counters[0] if counters else {})


def parse_feature_lines(lines):
    out = {}
    for line in lines:
        hexes, customer = line.split("\t")
        raw = bytes.fromhex(hexes)
        out[json.loads(customer)] = list(struct.unpack(f">{len(raw) // 8}d", raw))
    return out


def rfm_row(customer, recency_days=10, orders=3, total_value=120.5, **more):
    row = {"customer_id": customer, "recency_days": recency_days, "orders": orders}
    row.update(total_value=total_value, **more)
    return json.dumps(row)


GOOD_ROWS = [
    rfm_row("A", recency_days=10, orders=3, total_value=120.5),
    rfm_row("B", recency_days=0, orders=1, total_value=0.0),
    rfm_row("C\u00e9", recency_days=365, orders=12, total_value=9999.99),
]

# every rejection reason of the features pass, with how many lines plant it
BAD_ROWS = {
    "blank": [b"", b"   "],
    "undecodable": [b'{"customer_id": "\xff\xfe", "recency_days": 1}'],
    "not_json": [b"customer_id=A", b'{"customer_id": "A",'],
    "not_an_object": [b"[1, 2, 3]", b'"A"'],
    "missing_customer": [
        rfm_row("").encode(),
        b'{"recency_days": 1, "orders": 1, "total_value": 1}',
        rfm_row(17).encode(),
    ],
    "missing_feature": [rfm_row("N", recency_days=None).encode()],
    "not_a_number": [rfm_row("S", orders="3").encode(), rfm_row("T", total_value=True).encode()],
    "not_finite": [b'{"customer_id": "F", "recency_days": NaN, "orders": 1, "total_value": 1}'],
    "negative_value": [rfm_row("M", total_value=-5.0).encode()],
}


def test_features_of_hand_written_rows_are_recency_log1p_orders_log1p_value():
    lines, counters = run_lines(MRKMeansFeatures, "\n".join(GOOD_ROWS).encode() + b"\n")
    got = parse_feature_lines(lines)
    assert got == {
        "A": [10.0, math.log1p(3), math.log1p(120.5)],
        "B": [0.0, math.log1p(1), 0.0],
        "C\u00e9": [365.0, math.log1p(12), math.log1p(9999.99)],
    }
    assert counters["crm.lines"] == {"read": 3, "accepted": 3, "rejected": 0}


def test_feature_lines_are_hex_bit_patterns_then_the_json_id():
    lines, _ = run_lines(MRKMeansFeatures, (rfm_row("A") + "\n").encode())
    values = (10.0, math.log1p(3), math.log1p(120.5))
    assert lines == [struct.pack(">3d", *values).hex() + '\t"A"']
    assert lines[0].startswith("4024000000000000")  # 10.0, big-endian IEEE 754


def test_read_points_gives_the_exact_bits_back_and_names_a_bad_line(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 2)) * 10.0 ** rng.integers(-300, 300, (500, 2))
    x[0] = [-0.0, 5e-324]  # signed zero and the smallest subnormal
    path = tmp_path / "f"
    path.write_text("".join(format_point(f'"c{i}"', row) + "\n" for i, row in enumerate(x)))
    ids, back = read_points(str(path), 2, with_ids=True)
    assert np.array_equal(back.view(np.uint64), x.view(np.uint64))
    assert ids.tolist() == [f'"c{i}"' for i in range(500)]
    with open(path, "a") as f:
        f.write('3ff0000000000000zz00000000000000\t"bad"\n')
    with pytest.raises(ValueError, match="line 501 is not 2 hex float64"):
        read_points(str(path), 2)


def test_a_ratio_feature_is_computed_from_two_columns():
    rows = [
        rfm_row("A", orders=3, tenure_days=99, lines=7),
        rfm_row("B", orders=1, tenure_days=0, lines=1),
    ]
    lines, _ = run_lines(
        MRKMeansFeatures,
        "\n".join(rows).encode(),
        ["--features", "order_rate,basket_size"],
    )
    assert parse_feature_lines(lines) == {
        "A": [math.log1p(365.0 * 3 / 100), 7 / 3],
        "B": [math.log1p(365.0), 1.0],
    }


def test_every_rejection_reason_is_counted_and_read_is_accepted_plus_rejected():
    bad = [line for group in BAD_ROWS.values() for line in group]
    raw = b"\n".join([GOOD_ROWS[0].encode(), *bad, GOOD_ROWS[1].encode()]) + b"\n"
    lines, counters = run_lines(MRKMeansFeatures, raw)
    assert sorted(parse_feature_lines(lines)) == ["A", "B"]
    assert counters["crm.rejected"] == {reason: len(v) for reason, v in BAD_ROWS.items()}
    read = 2 + len(bad)
    assert counters["crm.lines"] == {"read": read, "accepted": 2, "rejected": len(bad)}
    assert read == counters["crm.lines"]["accepted"] + sum(counters["crm.rejected"].values())


def test_infinity_is_not_finite_and_a_boolean_is_not_a_number():
    raw = b'{"customer_id": "I", "recency_days": 1, "orders": Infinity, "total_value": 1}\n'
    raw += rfm_row("T", recency_days=False).encode() + b"\n"
    lines, counters = run_lines(MRKMeansFeatures, raw)
    assert lines == []
    assert counters["crm.rejected"] == {"not_finite": 1, "not_a_number": 1}


def test_an_integer_too_large_for_a_float_is_rejected_not_finite():
    raw = b'{"customer_id": "H", "recency_days": 1' + b"0" * 400 + b', "orders": 1, '
    raw += b'"total_value": 1}\n' + rfm_row("A").encode() + b"\n"
    lines, counters = run_lines(MRKMeansFeatures, raw)
    assert sorted(parse_feature_lines(lines)) == ["A"]
    assert counters["crm.rejected"] == {"not_finite": 1}


def test_a_feature_that_overflows_to_infinity_is_rejected_not_finite():
    raw = rfm_row("R", orders=1e307, tenure_days=0).encode() + b"\n"
    lines, counters = run_lines(MRKMeansFeatures, raw, ["--features", "order_rate"])
    assert lines == []
    assert counters["crm.rejected"] == {"not_finite": 1}


def test_empty():
    lines, counters = run_lines(MRKMeansFeatures, b"")
    assert lines == []
    assert counters.get("crm.lines", {}).get("read", 0) == 0
    assert counters.get("crm.rejected", {}) == {}


def test_unknown_features_are_refused_naming_them():
    # mrjob raises ValueError for a job built with args= (SystemExit on a command line)
    with pytest.raises(ValueError, match=r"unknown \['loyalty'\]; choose from \['basket_size'"):
        MRKMeansFeatures(args=["--no-conf", "--features", "recency,loyalty"])
    with pytest.raises(ValueError, match="more than once"):
        MRKMeansFeatures(args=["--no-conf", "--features", "recency,recency"])


# -- MRKMeansIteration on a toy ------------------------------------------------------------

# cluster 0 around (0, 0) and cluster 1 around (10, 10); mean 0 and scale 1, so z = x
TOY = {
    "a1": (0.0, 0.0),
    "a2": (2.0, 0.0),
    "a3": (0.0, 1.0),
    "b1": (10.0, 10.0),
    "b2": (12.0, 10.0),
    "b3": (10.0, 13.0),
}
TOY_CENTROIDS = [[0.0, 0.0], [10.0, 10.0], [100.0, -100.0]]  # cluster 2 gets no point


def write_points(path, points):
    path.write_text("".join(format_point(json.dumps(c), x) + "\n" for c, x in points))
    return path


def write_toy(tmp_path, files=1):
    items = list(TOY.items())
    chunks = [items[i::files] for i in range(files)]
    return [write_points(tmp_path / f"points-{i}.tsv", c) for i, c in enumerate(chunks)]


def iteration_rows(tmp_path, inputs, centroids=TOY_CENTROIDS, mean=(0, 0), scale=(1, 1), far=2):
    write_centroids(tmp_path / "centroids.json", mean, scale, centroids, far)
    rows, counters = run_job(
        MRKMeansIteration,
        args=["--centroids", str(tmp_path / "centroids.json")],
        input_paths=inputs,
    )
    return rows, counters


def by_cluster(rows):
    clusters = {r["cluster"]: r for r in rows if "cluster" in r}
    (far,) = [r["far"] for r in rows if "far" in r]
    return clusters, far


def test_iteration_on_the_toy_gives_hand_computed_counts_sums_and_sse(tmp_path):
    rows, _ = iteration_rows(tmp_path, write_toy(tmp_path))
    clusters, _ = by_cluster(rows)
    assert sorted(clusters) == [0, 1]  # cluster 2 received no point: no line
    assert [clusters[j]["count"] for j in (0, 1)] == [3, 3]
    assert [exact_to_fraction(s) for s in clusters[0]["sum"]] == [2, 1]
    assert [exact_to_fraction(s) for s in clusters[1]["sum"]] == [32, 33]
    # squared distances to the old centres: 0 + 4 + 1 and 0 + 4 + 9
    assert exact_to_fraction(clusters[0]["sse"]) == 5
    assert exact_to_fraction(clusters[1]["sse"]) == 13
    centres = [
        [exact_to_fraction(s) / clusters[j]["count"] for s in clusters[j]["sum"]] for j in (0, 1)
    ]
    assert centres == [[Fraction(2, 3), Fraction(1, 3)], [Fraction(32, 3), 11]]


def test_iteration_far_list_is_farthest_first_ties_by_coordinates(tmp_path):
    rows, _ = iteration_rows(tmp_path, write_toy(tmp_path), far=3)
    _, far = by_cluster(rows)
    # b3 at 9; a2 and b2 both at 4: a2's coordinates (2, 0) sort before (12, 10)
    assert far == [[9.0, 1, 10.0, 13.0], [4.0, 0, 2.0, 0.0], [4.0, 1, 12.0, 10.0]]


def test_iteration_without_far_points_emits_only_clusters(tmp_path):
    rows, _ = iteration_rows(tmp_path, write_toy(tmp_path), far=0)
    assert all("cluster" in r for r in rows) and len(rows) == 2


def test_iteration_standardises_with_mean_and_scale_before_assigning(tmp_path):
    # z = (x - (10, 10)) / (2, 4): a1 -> (-5, -2.5), b2 -> (1, 0), ...
    centroids = [[-5.0, -2.5], [0.0, 0.0]]
    rows, _ = iteration_rows(
        tmp_path, write_toy(tmp_path), centroids=centroids, mean=(10, 10), scale=(2, 4), far=0
    )
    clusters = {r["cluster"]: r for r in rows}
    assert clusters[0]["count"] == clusters[1]["count"] == 3
    # a: z = (-5, -2.5), (-4, -2.5), (-5, -2.25); b: (0, 0), (1, 0), (0, 0.75)
    assert [exact_to_fraction(s) for s in clusters[0]["sum"]] == [-14, Fraction(-29, 4)]
    assert [exact_to_fraction(s) for s in clusters[1]["sum"]] == [1, Fraction(3, 4)]
    assert exact_to_fraction(clusters[0]["sse"]) == 1 + Fraction(1, 16)
    assert exact_to_fraction(clusters[1]["sse"]) == 1 + Fraction(9, 16)


def test_iteration_on_an_empty_feature_file_gives_no_output(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    rows, _ = iteration_rows(tmp_path, [empty])
    assert rows == []


# -- split and runner invariance -------------------------------------------------------------


def spread_points(n=3000, seed=5):
    """Points whose float sums depend on the order of the terms (wide magnitudes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)) * np.array([1.0, 1e-3, 1e4])
    x[: n // 3] += [3.0, 0.0, 0.0]
    x[:, 1] += rng.choice([0.0, 1e8], size=n)  # some large offsets to make rounding bite
    return [(f"C{i:05d}", row.tolist()) for i, row in enumerate(x)]


def normalised(rows):
    """Output rows with every exact pair replaced by its value (a pair's mantissa and
    exponent depend on the split; its value does not)."""
    out = []
    for r in rows:
        if "far" in r:
            out.append(("far", r["far"]))
        else:
            sums = [exact_to_fraction(s) for s in r["sum"]]
            out.append((r["cluster"], r["count"], sums, exact_to_fraction(r["sse"])))
    return sorted(out, key=lambda t: str(t[0]))


def split_outputs(tmp_path, runner):
    """Iteration rows and labels of the same points as one file and as three files."""
    directory = tmp_path / runner
    directory.mkdir()
    points = spread_points()
    centroids = [[3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1e8, 0.0]]
    write_centroids(directory / "c.json", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], centroids, 5)
    one = [write_points(directory / "one.tsv", points)]
    three = [
        write_points(directory / "three-0.tsv", points[:700]),
        write_points(directory / "three-1.tsv", points[700:2200]),
        write_points(directory / "three-2.tsv", points[2200:]),
    ]
    args = ["--centroids", str(directory / "c.json")]
    results = []
    for inputs in (one, three):
        rows, _ = run_job(MRKMeansIteration, args=args, runner=runner, input_paths=inputs)
        labels, _ = run_job(MRKMeansLabels, args=args, runner=runner, input_paths=inputs)
        results.append((rows, sorted(labels, key=lambda r: r["customer_id"])))
    return points, results


def check_split_invariance(points, results):
    (rows_one, labels_one), (rows_three, labels_three) = results
    assert normalised(rows_one) == normalised(rows_three)
    assert labels_one == labels_three and len(labels_one) == len(points)
    # and the sums are the exact ones, which a float sum in another order would miss
    clusters = {r["cluster"]: r for r in rows_one if "cluster" in r}
    labels = {r["customer_id"]: r["segment"] for r in labels_one}
    for j, row in clusters.items():
        members = [x for c, x in points if labels[c] == j]
        assert row["count"] == len(members)
        for f in range(3):
            assert exact_to_fraction(row["sum"][f]) == sum(Fraction(x[f]) for x in members)


def test_one_file_and_three_files_give_the_same_exact_output_inline(tmp_path):
    check_split_invariance(*split_outputs(tmp_path, "inline"))


def test_one_file_and_three_files_give_the_same_exact_output_local_runner(tmp_path):
    """The local runner (subprocess tasks, its own sort) gives the same values as inline,
    for one file and for three."""
    points, local = split_outputs(tmp_path, "local")
    check_split_invariance(points, local)
    _, inline = split_outputs(tmp_path, "inline")
    for (local_rows, local_labels), (inline_rows, inline_labels) in zip(local, inline, strict=True):
        assert normalised(local_rows) == normalised(inline_rows)
        assert local_labels == inline_labels


# -- MRKMeansLabels ------------------------------------------------------------------------


def test_labels_of_the_toy_name_each_customer_segment_and_distance(tmp_path):
    write_centroids(tmp_path / "c.json", [0, 0], [1, 1], [[0.0, 0.0], [10.0, 10.0]], 0)
    rows, _ = run_job(
        MRKMeansLabels,
        args=["--centroids", str(tmp_path / "c.json")],
        input_paths=write_toy(tmp_path, files=2),
    )
    assert sorted(rows, key=lambda r: r["customer_id"]) == [
        {"customer_id": "a1", "segment": 0, "distance": 0.0},
        {"customer_id": "a2", "segment": 0, "distance": 2.0},
        {"customer_id": "a3", "segment": 0, "distance": 1.0},
        {"customer_id": "b1", "segment": 1, "distance": 0.0},
        {"customer_id": "b2", "segment": 1, "distance": 2.0},
        {"customer_id": "b3", "segment": 1, "distance": 3.0},
    ]


def test_labels_keep_the_feature_file_order_within_a_file(tmp_path):
    (path,) = write_toy(tmp_path)
    write_centroids(tmp_path / "c.json", [0, 0], [1, 1], [[0.0, 0.0], [10.0, 10.0]], 0)
    rows, _ = run_job(
        MRKMeansLabels, args=["--centroids", str(tmp_path / "c.json")], input_paths=[path]
    )
    assert [r["customer_id"] for r in rows] == list(TOY)
