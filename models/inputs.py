"""Input files as the driver sees them: their sizes, the schema their header implies, and
local copies of HDFS inputs for the runners that only read local files."""

import contextlib
import csv
import io
import os
import shutil
import tempfile

from hdfs_io import LocalFileSystem, get_filesystem
from mr_jobs.job_options import build_schema
from mr_jobs.records import ROLES

__all__ = ["describe_inputs", "detect_schema", "first_line", "local_inputs", "LOCAL_ONLY_RUNNERS"]

#: mrjob runners whose tasks read local files only (no ``hdfs://``).
LOCAL_ONLY_RUNNERS = ("inline", "local")


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


@contextlib.contextmanager
def local_inputs(paths, runner, progress=None):
    """Yield input paths the runner can read: for the ``inline`` and ``local`` runners,
    ``hdfs://`` inputs are first copied (streamed) into a temporary directory, deleted
    afterwards; every other input, and every input of other runners, is passed as is.

    Parameters
    ----------
    paths : list of str
        Input files or directories, local or ``hdfs://``.
    runner : str
        The mrjob runner.
    progress : callable, optional
        Called with a message per copied input.

    Yields
    ------
    list of str
    """
    remote = [p for p in paths if not isinstance(get_filesystem(p)[0], LocalFileSystem)]
    if runner not in LOCAL_ONLY_RUNNERS or not remote:
        yield list(paths)
        return
    tmp_dir = tempfile.mkdtemp(prefix="crm-inputs-")
    try:
        staged = []
        for index, path in enumerate(paths):
            if path not in remote:
                staged.append(path)
                continue
            fs, p = get_filesystem(path)
            target = os.path.join(tmp_dir, f"input-{index:03d}")
            if fs.status(p)["type"] == "DIRECTORY":
                # as Hadoop does: names starting with _ or . are not data
                files = [
                    p.rstrip("/") + "/" + rel
                    for rel in fs.walk_files(p)
                    if not any(part.startswith(("_", ".")) for part in rel.split("/"))
                ]
            else:
                files = [p]
            os.makedirs(target)
            copied = 0
            for n, f in enumerate(sorted(files)):
                local = os.path.join(target, f"{n:05d}-{os.path.basename(f)}")
                with fs.open_read(f) as src, open(local, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                copied += os.path.getsize(local)
            if progress:
                progress(
                    f"copied {fs.uri(p)} ({len(files)} file(s), {copied:,} bytes) to a local "
                    f"temporary directory: the {runner} runner reads local files only"
                )
            staged.append(target)
        yield staged
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
