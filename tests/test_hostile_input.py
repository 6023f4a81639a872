"""Hostile input through every job command: no line stops a job, every line is accounted.

A corpus of small files, each a header, good lines of its own customers and one kind of bad
content, is run through ``crm-mr rfm``, ``baskets``, ``sales``, ``churn`` and ``run``. Each
run must exit 0 without a traceback, account for every line (read = accepted + rejected,
read = the lines in the files) and give every good customer its exact totals, computed
here independently from the good lines. Each kind is also reproduced on its own (a header,
one good line, the bad content) through ``rfm``, ``baskets`` and ``sales``. The resource
tests run in a subprocess under an address-space limit and a timeout.
"""

import gzip
import json
import os
import resource
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from models.cli import main
from mr_jobs.records import REJECT_REASONS

HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price"
CRM_MR = Path(sys.executable).parent / "crm-mr"

#: kind -> (bad content appended after the good lines, the reasons its lines may get).
#: An empty reason set means the content has no line of its own.
BAD = {
    "bare_cr": (b"O9,C9,2024-01-01\r,I1,1,1\n", {"control_character"}),
    "quoted_cr": (b'O9,"C\r9",2024-01-01,I1,1,1\n', {"control_character"}),
    "nul_byte": (b"O9,C9\x00,2024-01-01,I1,1,1\n", {"control_character"}),
    "quoted_nul": (b'O9,"C\x009",2024-01-01,I1,1,1\n', {"control_character"}),
    "long_quoted_field": (
        b'O9,"' + b"x" * 140_000 + b'",2024-01-01,I1,1,1\n',
        {"line_too_long"},
    ),
    "huge_exponent": (b"O9,C9,2024-01-01,I1,1e999999999,1\n", {"bad_quantity"}),
    "float_overflow_quantity": (b"O9,C9,2024-01-01,I1,1e309,1\n", {"bad_quantity"}),
    "float_overflow_price": (b"O9,C9,2024-01-01,I1,1,1e309\n", {"bad_price"}),
    "many_digits": (b"O9,C9,2024-01-01,I1,1e5000,1\n", {"bad_quantity"}),
    "underscore_number": (b"O9,C9,2024-01-01,I1,1_000,1\n", {"bad_quantity"}),
    "year_1_offset": (b"O9,C9,0001-01-01T00:30:00+01:00,I1,1,1\n", {"date_out_of_range"}),
    "year_9999_offset": (b"O9,C9,9999-12-31T23:30:00-01:00,I1,1,1\n", {"date_out_of_range"}),
    "far_future": (b"O9,C9,9999-01-01,I1,1,1\n", {"date_out_of_range"}),
    "before_year_1000": (b"O9,C9,0999-01-01,I1,1,1\n", {"date_out_of_range"}),
    "loose_timestamps": (
        b"O9,C9,2024-01-01T10,I1,1,1\nO9,C9,2024-01-01T1030,I1,1,1\n"
        b"O9,C9,2024-01-01T10:30+0200,I1,1,1\nO9,C9,2024-01-01T10:30:00.1234567,I1,1,1\n",
        {"bad_timestamp"},
    ),
    "ten_mb_item": (b"O9,C9,2024-01-01,I" + b"x" * 10_000_000 + b",1,1\n", {"line_too_long"}),
    "long_id": (b"O9,C" + b"x" * 300 + b",2024-01-01,I1,1,1\n", {"id_too_long"}),
    "embedded_newline": (b'O9,"C\n9",2024-01-01,I1,1,1\n', {"column_count"}),
    "unterminated_quote": (b'O9,"C9,2024-01-01,I1,1,1\n', {"column_count"}),
    "repeated_header": (HEADER.encode() + b"\n", {"header"}),
    "undecodable": (b"O9,C\xff9,2024-01-01,I1,1,1\n", {"undecodable"}),
    "blank_lines": (b"\n   \n\t\n", {"blank"}),
    "gzip_renamed": (
        gzip.compress(b"O9,C9,2024-01-01,I1,1,1\n" * 500, mtime=0),
        {"undecodable", "control_character", "column_count", "blank"},
    ),
    "png_renamed": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
        + bytes(range(256)) * 8,
        {"undecodable", "control_character", "column_count", "blank"},
    ),
    "return_line": (b"O9,C9,2024-01-01,I1,-1,1\n", {"return"}),
    "crlf_endings": (b"", set()),
    "bom_header": (b"", set()),
    "emoji_and_rtl_ids": (b"", set()),
}


def _good_lines(kind_index, n=12):
    """Good lines of this file's own customers: (csv line, customer, value as Decimal)."""
    lines = []
    for i in range(n):
        customer = f"C{kind_index:02d}-{i % 4}"
        if i % 4 == 3:
            customer = f"\u05d0{kind_index:02d}\u200f\U0001f600"  # RTL letters and an emoji
        day = 1 + (i * 37 + kind_index * 11) % 360
        stamp = f"2023-{1 + day // 31:02d}-{1 + day % 28:02d}"
        quantity, price = 1 + i % 3, Decimal("2.25") + i
        order = f"O{kind_index:02d}-{i // 2}"
        line = f"{order},{customer},{stamp},I{i % 5},{quantity},{price}"
        lines.append((line, customer, quantity * price))
    return lines


def _write_kind(directory, kind_index, kind):
    bad, _ = BAD[kind]
    good = _good_lines(kind_index)
    eol = "\r\n" if kind == "crlf_endings" else "\n"
    text = eol.join([HEADER] + [line for line, _, _ in good]) + eol
    data = (("\ufeff" if kind == "bom_header" else "") + text).encode() + bad
    path = directory / f"{kind_index:02d}-{kind}.csv"
    path.write_bytes(data)
    return path, good, data


def _read_count(data):
    """Lines as mrjob's inline runner reads them: split on newlines, the last one closing."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Every kind in a file of its own, plus an empty, a header-only and a gzip file."""
    directory = tmp_path_factory.mktemp("hostile")
    files, expected, read = [], {}, 0
    for index, kind in enumerate(BAD):
        path, good, data = _write_kind(directory, index, kind)
        files.append(path)
        read += _read_count(data)
        for _, customer, value in good:
            expected[customer] = expected.get(customer, 0) + value
    (directory / "empty.csv").write_bytes(b"")
    (directory / "header-only.csv").write_bytes(HEADER.encode() + b"\n")
    gz_good = _good_lines(99)
    gz_text = "\n".join([HEADER] + [line for line, _, _ in gz_good]) + "\n"
    (directory / "zipped.csv.gz").write_bytes(gzip.compress(gz_text.encode(), mtime=0))
    for _, customer, value in gz_good:
        expected[customer] = expected.get(customer, 0) + value
    read += 1 + 1 + len(gz_good)
    # the gzip file goes first: its header names the columns of every file
    files = [directory / "zipped.csv.gz", directory / "empty.csv", directory / "header-only.csv"]
    files += sorted(p for p in directory.glob("[0-9]*.csv"))
    accepted = sum(len(_good_lines(i)) for i in range(len(BAD))) + len(gz_good)
    return {
        "files": [str(p) for p in files],
        "expected": expected,
        "read": read,
        "accepted": accepted,
    }


def _crm_mr(*args, timeout=600):
    result = subprocess.run(
        [str(CRM_MR), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def _lines(manifest_path):
    lines = json.loads(Path(manifest_path).read_text())["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"]
    assert lines["rejected"] == sum(lines["rejected_by_reason"].values())
    assert set(lines["rejected_by_reason"]) <= set(REJECT_REASONS)
    return lines


def _rows(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return rows


def test_rfm_accounts_for_every_hostile_line_and_keeps_every_good_customer(corpus, tmp_path):
    result = _crm_mr("rfm", *corpus["files"], "-o", tmp_path / "rfm")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(tmp_path / "rfm" / "_manifest.json")
    assert lines["read"] == corpus["read"]
    assert lines["accepted"] == corpus["accepted"]
    totals = {r["customer_id"]: r["total_value"] for r in _rows(tmp_path / "rfm")}
    assert totals == {c: float(v) for c, v in corpus["expected"].items()}


def test_baskets_account_for_every_hostile_line(corpus, tmp_path):
    result = _crm_mr("baskets", *corpus["files"], "-o", tmp_path / "b", "--min-support", "0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(tmp_path / "b" / "_manifest.json")
    assert lines["read"] == corpus["read"]
    assert lines["accepted"] == corpus["accepted"]


def test_sales_account_for_every_hostile_line_and_sum_to_the_good_revenue(corpus, tmp_path):
    result = _crm_mr("sales", *corpus["files"], "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(tmp_path / "s" / "_manifest.json")
    assert lines["read"] == corpus["read"]
    assert lines["accepted"] == corpus["accepted"]
    total = sum(
        Decimal(repr(r["revenue"])) for r in _rows(tmp_path / "s") if r["series"] == "total"
    )
    assert abs(total - sum(corpus["expected"].values())) < Decimal("1e-6")


def test_churn_accounts_for_every_hostile_line_and_scores_every_good_customer(corpus, tmp_path):
    result = _crm_mr("churn", *corpus["files"], "-o", tmp_path / "c", "--horizon-days", "60")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "c" / "_manifest.json").read_text())
    current = manifest["details"]["current_lines"]
    assert current["read"] == corpus["read"]
    assert current["accepted"] == corpus["accepted"]
    assert current["read"] == current["accepted"] + current["rejected"]
    scored = {r["customer_id"] for r in _rows(tmp_path / "c")}
    assert scored == set(corpus["expected"])


def test_run_on_hostile_input_completes_and_accounts_for_every_line(corpus, tmp_path):
    args = ["run", "-o", tmp_path / "root", "--forecast-processes", "1", "--k", "2"]
    for path in corpus["files"]:
        args += ["-i", path]
    result = _crm_mr(*args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "root" / "_pipeline.json").read_text())
    assert record["status"] == "completed"
    lines = _lines(tmp_path / "root" / "rfm" / "_manifest.json")
    assert lines["read"] == corpus["read"]
    assert lines["accepted"] == corpus["accepted"]


@pytest.mark.parametrize("kind", [k for k, (_, reasons) in BAD.items() if reasons])
@pytest.mark.parametrize("command", ["rfm", "baskets", "sales"])
def test_each_hostile_kind_alone_publishes_the_good_customer_and_counts_the_bad(
    kind, command, tmp_path, capsys
):
    bad, reasons = BAD[kind]
    data = (HEADER + "\nO1,C1,2024-03-04T10:00:00,I1,2,3.5\n").encode() + bad
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    out = tmp_path / "out"
    extra = ["--min-support", "0.5"] if command == "baskets" else []
    assert main([command, str(path), "-o", str(out), "-q", *extra]) == 0
    lines = _lines(out / "_manifest.json")
    assert lines["read"] == _read_count(data)
    assert lines["accepted"] == 1
    rejected = dict(lines["rejected_by_reason"])
    assert rejected.pop("header") == 1 + (kind == "repeated_header")
    assert set(rejected) <= reasons, rejected
    assert rejected or kind == "repeated_header"
    if command == "rfm":
        (row,) = _rows(out)
        assert (row["customer_id"], row["total_value"]) == ("C1", 7.0)
    if command == "sales":
        total = [r for r in _rows(out) if r["series"] == "total"]
        assert [r["revenue"] for r in total] == [7.0]
    assert "Traceback" not in capsys.readouterr().err


def _limited(limit_bytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def _run_limited(args, tmp_path, seconds=30, limit=1 << 30):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [str(CRM_MR), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=_limited(limit),
        env=env,
        cwd=tmp_path,
    )


def test_a_far_future_date_is_rejected_within_1_gb_and_30_s(tmp_path):
    lines = [HEADER] + [f"O{i},C{i % 50},2024-01-{1 + i % 28:02d},I{i % 9},1,2" for i in range(500)]
    lines.append("O9,C9,9999-01-01,I1,1,1")
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _run_limited(["sales", path, "-o", tmp_path / "s", "--period", "D"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "s" / "_manifest.json").read_text())
    assert manifest["lines"]["rejected_by_reason"]["date_out_of_range"] == 1
    assert manifest["details"]["periods"] == 28


def test_a_series_longer_than_max_periods_is_refused_within_1_gb_and_30_s(tmp_path):
    lines = [HEADER, "O1,C1,1700-01-04,I1,1,2", "O2,C1,2250-12-30,I1,1,2"]
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _run_limited(
        ["sales", path, "-o", tmp_path / "s", "--date-window", "1700-01-01..2250-12-31"],
        tmp_path,
    )
    assert result.returncode == 1
    assert "max_periods=10,000" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()
