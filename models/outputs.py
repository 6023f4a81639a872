"""Writing a publication's files from the parts its jobs' tasks wrote, in constant memory.

The per-customer ``part-*`` files of a stage are written by its tasks
(:func:`models.job_runner.run_job_into`); some stages also publish the same rows as one
CSV for BI tools. :func:`csv_from_parts` streams the published parts line by line into
that CSV: the driver holds one row at a time, whatever the number of customers.
"""

import csv
import io
import json
import posixpath

from mr_jobs.protocols import loads

__all__ = ["csv_from_parts", "csv_text", "staged_parts", "write_json_parts", "ROWS_PER_PART"]

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


def _rows(fs, paths):
    for path in paths:
        with fs.open_read(path) as f:
            for raw in io.TextIOWrapper(f, encoding="utf-8", newline="\n"):
                raw = raw.strip()
                if raw:
                    yield loads(raw)


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
    fs = publication.fs
    columns = list(columns)
    count = [0]

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        yield buffer.getvalue()
        for row in _rows(fs, staged_parts(publication)):
            if convert is not None:
                row = convert(row)
            buffer.seek(0)
            buffer.truncate()
            for out in explode(row) if explode is not None else (row,):
                writer.writerow([csv_text(out.get(c)) for c in columns])
                count[0] += 1
            if buffer.tell():
                yield buffer.getvalue()

    path = posixpath.join(publication.staging_path, name)
    fs.write_lines(path, (line for chunk in lines() for line in chunk[:-1].split("\n")))
    return count[0]
