"""Input files as the driver sees them: their sizes, the schema their header implies, and
local copies of HDFS inputs for the runners that only read local files."""

import bz2
import contextlib
import csv
import gzip
import io
import os
import shutil
import tempfile

from hdfs_io import LocalFileSystem, get_filesystem, join
from hdfs_io.base import part_files
from mr_jobs.job_options import build_schema
from mr_jobs.records import ROLES

__all__ = [
    "describe_inputs",
    "detect_schema",
    "first_line",
    "data_files",
    "expand_parts",
    "local_inputs",
    "LOCAL_ONLY_RUNNERS",
]

#: mrjob runners whose tasks read local files only (no ``hdfs://``).
LOCAL_ONLY_RUNNERS = ("inline", "local")


def describe_inputs(paths):
    """``[{"path": ..., "bytes": ...}]`` for each input file or directory.

    Raises
    ------
    hdfs_io.StorageError
        When an input does not exist (the message names it).
    ValueError
        When an input directory holds a subdirectory (see :func:`data_files`).
    """
    described = []
    for path in paths:
        fs, p = get_filesystem(path)
        if fs.status(p)["type"] == "DIRECTORY":
            data_files(fs, p)  # refuses subdirectories before any job runs
        described.append({"path": fs.uri(p), "bytes": fs.size(p)})
    return described


def data_files(fs, path):
    """The data files of an input directory, as Hadoop reads them.

    Parameters
    ----------
    fs : hdfs_io.FileSystem
    path : str
        A directory on ``fs``.

    Returns
    -------
    list of str
        Sorted paths of the files directly in ``path``, leaving out names starting with
        ``_`` or ``.`` (``_SUCCESS``, ``_manifest.json``, ``.staging``, editor and
        checksum files): not data, and Hadoop leaves them out too.

    Raises
    ------
    ValueError
        When the directory holds a subdirectory (other than ``_*``/``.*`` ones), naming
        it: Hadoop's input format refuses those ("Not a file"), so every runner does.
    """
    files = []
    for rel in fs.walk_files(path):
        parts = rel.split("/")
        if parts[0].startswith(("_", ".")):
            continue
        if len(parts) > 1:
            raise ValueError(
                f"the input directory {fs.uri(path)} holds the subdirectory {parts[0]!r}: "
                "inputs are files or directories of files (give the subdirectory as an "
                "input of its own)"
            )
        files.append(path.rstrip("/") + "/" + rel)
    return files


def expand_parts(paths):
    """Input paths with every directory replaced by its ``part-*`` files: local paths for
    local files (every runner reads those; mrjob's Spark runner checks a ``file://`` URI
    with the ``hadoop`` command), URIs otherwise.

    Raises
    ------
    ValueError
        A directory without part files.
    """
    expanded = []
    for path in paths:
        fs, p = get_filesystem(path)
        if fs.status(p)["type"] == "DIRECTORY":
            names = part_files(fs, p)
            if not names:
                raise ValueError(f"input {fs.uri(p)!r} is a directory without part-* files")
            expanded += [_runner_path(fs, join(p, name)) for name in names]
        else:
            expanded.append(_runner_path(fs, p))
    return expanded


def _runner_path(fs, path):
    return fs.normalize(path) if fs.scheme == "file" else fs.uri(path)


#: Compressed inputs mrjob and Hadoop decompress by their extension.
_DECOMPRESSORS = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File}


def first_line(path):
    """The first line of a file, or of the first data file of a directory
    (:func:`data_files`); ``.gz`` and ``.bz2`` files are decompressed, as the jobs read
    them.

    Returns ``None`` for empty inputs, and for a compressed file that is corrupt.
    """
    fs, p = get_filesystem(path)
    if fs.status(p)["type"] == "DIRECTORY":
        files = data_files(fs, p)
        if not files:
            return None
        p = files[0]
    decompress = _DECOMPRESSORS.get(os.path.splitext(p)[1])
    with fs.open_read(p) as f:
        try:
            raw = (decompress(fileobj=f) if decompress else f).readline(65536)
        except (OSError, EOFError, ValueError):  # not really gzip/bzip2: the job says so
            return None
    return raw.decode("utf-8", errors="replace").rstrip("\r\n") or None


def detect_schema(
    input_paths,
    input_format="canonical",
    columns=None,
    column_map=(),
    delimiter=None,
    timestamp_format=None,
    date_window=None,
):
    """The input schema for a run, reading column names from the header when not given.

    With the canonical dialect and no explicit ``columns``, the first line of the first
    input is read: if it is a header (it names at least the customer and timestamp
    columns, directly or through ``column_map``), its names become the columns, so
    exports with extra, fewer or reordered columns load without listing them.

    Parameters
    ----------
    input_paths : list of str
    input_format, columns, column_map, delimiter, timestamp_format, date_window
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
    return build_schema(
        input_format, columns, column_map, delimiter, timestamp_format, date_window=date_window
    )


def _delimiter(delimiter):
    return {None: ",", "tab": "\t", "comma": ","}.get(delimiter, delimiter)


@contextlib.contextmanager
def local_inputs(paths, runner, progress=None):
    """Yield input paths the runner can read, holding data files only.

    For the ``inline`` and ``local`` runners, which would read every file of a directory,
    local directories are expanded into their :func:`data_files` (so ``_SUCCESS``,
    ``.hidden`` and ``_logs/`` are left out, as Hadoop leaves them out), and ``hdfs://``
    inputs are first copied (streamed) into a private temporary directory (mode 0700),
    deleted afterwards. Other runners get the inputs as they are.

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
        Never empty: inputs without any data file give one empty file, so a runner
        never falls back to reading standard input.
    """
    if runner not in LOCAL_ONLY_RUNNERS:
        yield list(paths)
        return
    tmp_dir = []
    try:
        staged = []
        for index, path in enumerate(paths):
            fs, p = get_filesystem(path)
            if isinstance(fs, LocalFileSystem):
                staged += data_files(fs, p) if fs.status(p)["type"] == "DIRECTORY" else [p]
            else:
                staged += _copy_remote(fs, p, _private_dir(tmp_dir), index, runner, progress)
        if not staged:
            empty = os.path.join(_private_dir(tmp_dir), "empty")
            open(empty, "wb").close()
            staged.append(empty)
        yield staged
    finally:
        for d in tmp_dir:
            shutil.rmtree(d, ignore_errors=True)


def _private_dir(made):
    if not made:
        made.append(tempfile.mkdtemp(prefix="crm-inputs-"))  # mode 0700
    return made[0]


def _copy_remote(fs, p, tmp_dir, index, runner, progress):
    """Copy one remote input's data files into ``tmp_dir``; return the local files (so a
    later :func:`expand_parts` sees files, not a directory without ``part-*`` names)."""
    target = os.path.join(tmp_dir, f"input-{index:03d}")
    files = data_files(fs, p) if fs.status(p)["type"] == "DIRECTORY" else [p]
    os.makedirs(target)
    copied, locals_ = 0, []
    for n, f in enumerate(files):
        local = os.path.join(target, f"{n:05d}-{os.path.basename(f)}")
        with fs.open_read(f) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        copied += os.path.getsize(local)
        locals_.append(local)
    if progress:
        progress(
            f"copied {fs.uri(p)} ({len(files)} file(s), {copied:,} bytes) to a local "
            f"temporary directory: the {runner} runner reads local files only"
        )
    return locals_
