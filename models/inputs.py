"""Input files as the driver sees them: their sizes and the schema their header implies."""

import csv
import io

from hdfs_io import get_filesystem
from mr_jobs.job_options import build_schema
from mr_jobs.records import ROLES

__all__ = ["describe_inputs", "detect_schema", "first_line"]


def describe_inputs(paths):
    """``[{"path": ..., "bytes": ...}]`` for each input file or directory.

    Raises
    ------
    hdfs_io.StorageError
        When an input does not exist (the message names it).
    """
    described = []
    for path in paths:
        fs, p = get_filesystem(path)
        described.append({"path": fs.uri(p), "bytes": fs.size(p)})
    return described


def first_line(path):
    """The first line of a file, or of the first ``part-*``/data file of a directory.

    Returns ``None`` for empty or compressed inputs.
    """
    fs, p = get_filesystem(path)
    if fs.status(p)["type"] == "DIRECTORY":
        names = [n for n in fs.list(p) if not n.startswith(("_", "."))]
        if not names:
            return None
        p = p.rstrip("/") + "/" + names[0]
    if p.endswith((".gz", ".bz2")):
        return None
    with fs.open_read(p) as f:
        raw = f.readline(65536)
    return raw.decode("utf-8", errors="replace").rstrip("\r\n") or None


def detect_schema(
    input_paths,
    input_format="canonical",
    columns=None,
    column_map=(),
    delimiter=None,
    timestamp_format=None,
):
    """The input schema for a run, reading column names from the header when not given.

    With the canonical dialect and no explicit ``columns``, the first line of the first
    input is read: if it is a header (it names at least the customer and timestamp
    columns, directly or through ``column_map``), its names become the columns, so
    exports with extra, fewer or reordered columns load without listing them.

    Parameters
    ----------
    input_paths : list of str
    input_format, columns, column_map, delimiter, timestamp_format
        As for :func:`mr_jobs.job_options.build_schema`.

    Returns
    -------
    mr_jobs.records.InputSchema
    """
    if columns is None and input_format == "canonical" and input_paths:
        header = first_line(input_paths[0])
        if header:
            names = next(csv.reader(io.StringIO(header), delimiter=_delimiter(delimiter)))
            names = [n.strip().lstrip("\ufeff") for n in names]
            mapped = {c.partition("=")[2].strip() for c in column_map}
            roles_named = {n for n in names if n in ROLES} | (mapped & set(names))
            has_customer = "customer_id" in names or any(
                c.startswith("customer_id=") for c in column_map
            )
            if has_customer and len(roles_named) >= 2:
                columns = names
    return build_schema(input_format, columns, column_map, delimiter, timestamp_format)


def _delimiter(delimiter):
    return {None: ",", "tab": "\t", "comma": ","}.get(delimiter, delimiter)
