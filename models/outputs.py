"""Writing a publication's files from the parts its jobs' tasks wrote, in constant memory.

The per-customer ``part-*`` files of a stage are written by its tasks
(:func:`models.job_runner.run_job_into`); some stages also publish the same rows as one
CSV for BI tools. :func:`csv_from_parts` streams the published parts line by line into
that CSV: the driver holds one row at a time, whatever the number of customers.
"""

import csv
import datetime
import io
import json
import math
import posixpath

import numpy as np

from mr_jobs.protocols import loads

__all__ = [
    "first_part_row",
    "read_part_rows",
    "ROWS_PER_PART",
    "csv_from_parts",
    "csv_lines",
    "csv_string",
    "csv_text",
    "json_plain",
    "jsonl_text",
    "staged_parts",
    "write_json_parts",
]

#: Rows per part file when the driver writes a small side output as JSON lines.
ROWS_PER_PART = 1_000_000


def write_json_parts(publication, rows):
    """Write ``rows`` (dicts: a small side output, such as rules or series) as JSON lines
    into ``part-00000``, ``part-00001``, ... of ``publication``.

    Parameters
    ----------
    publication : hdfs_io.Publication
    rows : list of dict

    Returns
    -------
    int
        The number of rows written.
    """
    written = 0
    for index, start in enumerate(range(0, max(len(rows), 1), ROWS_PER_PART)):
        chunk = rows[start : start + ROWS_PER_PART]
        publication.write_part(index, (json.dumps(r, ensure_ascii=False) for r in chunk))
        written += len(chunk)
    return written


def staged_parts(publication):
    """The ``part-*`` files already in ``publication``'s staging directory, sorted."""
    fs = publication.fs
    names = sorted(n for n in fs.list(publication.staging_path) if n.startswith("part-"))
    return [posixpath.join(publication.staging_path, n) for n in names]


def csv_text(value):
    """A JSON value as a CSV cell, as pandas' ``to_csv`` writes it: ``None`` empty, bools
    ``True`` and ``False``, numbers by ``repr``; lists and objects as JSON
    (``json.dumps``' default separators, UTF-8 characters kept)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    return str(value)


def json_plain(value):
    """A JSON-able copy of ``value``: numpy scalars and arrays to Python, tuples to lists,
    dates to ``YYYY-MM-DD``, NaN, infinities and pandas' missing values to None."""
    if isinstance(value, dict):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_plain(v) for v in value]
    if _is_missing(value):
        return None
    if isinstance(value, datetime.date):  # pandas.Timestamp is a datetime.date too
        return value.strftime("%Y-%m-%d")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _is_missing(value):
    # pandas' NA and NaT without importing pandas here
    return type(value).__name__ in ("NAType", "NaTType")


def jsonl_text(rows):
    """``rows`` as JSON lines (UTF-8 characters kept; NaN refused), for a small side file."""
    return "".join(json.dumps(r, allow_nan=False, ensure_ascii=False) + "\n" for r in rows)


def csv_lines(columns, rows):
    """The lines of a CSV with the header ``columns`` and a row per dict of ``rows``,
    without their newlines, as :meth:`hdfs_io.FileSystem.write_lines` takes them.

    Each cell is :func:`csv_text` of the row's value (a key a row lacks is written
    empty). ``rows`` is read lazily: the lines can be streamed to a file in constant
    memory. A quoted cell with a newline spans two lines, which the writer joins again.
    """
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_text(row.get(c)) for c in columns])
        if buffer.tell() >= _CSV_CHUNK:
            yield from buffer.getvalue()[:-1].split("\n")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield from buffer.getvalue()[:-1].split("\n")


#: Characters of CSV buffered by :func:`csv_lines` before they are handed on.
_CSV_CHUNK = 1 << 16


def csv_string(columns, rows):
    """The whole CSV of :func:`csv_lines`, for a small side file."""
    return "".join(line + "\n" for line in csv_lines(columns, rows))


def _rows(fs, paths):
    for path in paths:
        with fs.open_read(path) as f:
            for raw in io.TextIOWrapper(f, encoding="utf-8", newline="\n"):
                raw = raw.strip()
                if raw:
                    yield loads(raw)


def read_part_rows(paths):
    """The JSON rows of part files (local paths or URIs), one at a time, in order."""
    from hdfs_io import get_filesystem

    for path in paths:
        fs, p = get_filesystem(path)
        yield from _rows(fs, [p])


def first_part_row(paths):
    """The first JSON row of part files (a bounded read), or None when all are empty."""
    rows = read_part_rows(paths)
    try:
        return next(rows, None)
    finally:
        rows.close()


def csv_from_parts(publication, name, columns, *, convert=None, explode=None):
    """Write ``name`` (a CSV with a header) from the JSON rows of the staged parts.

    Parameters
    ----------
    publication : hdfs_io.Publication
        An open publication whose ``part-*`` files are written.
    name : str
        The CSV's name in the publication, e.g. ``"customers.csv"``.
    columns : sequence of str
        The header, and the keys written from each row, in this order (a key a row lacks
        is written empty).
    convert : callable, optional
        ``row -> row`` applied to each decoded row before it is written (e.g. to render a
        list column as text).
    explode : callable, optional
        ``row -> iterable of rows``: each part row becomes these CSV rows (e.g. one per
        recommendation), after ``convert``.

    Returns
    -------
    int
        The rows written.
    """
    count = [0]

    def rows():
        for row in _rows(publication.fs, staged_parts(publication)):
            if convert is not None:
                row = convert(row)
            for out in explode(row) if explode is not None else (row,):
                count[0] += 1
                yield out

    path = posixpath.join(publication.staging_path, name)
    publication.fs.write_lines(path, csv_lines(columns, rows()))
    return count[0]
