"""The data stage: write the built-in synthetic log to a local path or to HDFS.

The generator (:mod:`models.synthetic`) writes local files. For an ``hdfs://`` destination
it writes them into a local temporary directory first, then streams each file to HDFS
through :mod:`hdfs_io`, each renamed into place only when complete. A destination that is
a directory is refused before anything is generated or written.
"""

import os
import shutil
import tempfile

from hdfs_io import (
    LocalFileSystem,
    PathExists,
    UnsafePathError,
    get_filesystem,
    write_file_atomically,
)
from models.manifest import Stopwatch
from models.synthetic import customers_truth_path, generate, truth_path

__all__ = ["generate_data", "data_files"]


def data_files(destination):
    """The files a generation writes: the log, its truth JSON, the per-customer truth."""
    return [destination, truth_path(destination), customers_truth_path(destination)]


def _check_targets(fs, path, overwrite):
    """Refuse directories among the targets, and existing files unless ``overwrite``."""
    for target in data_files(path):
        if not fs.exists(target):
            continue
        if fs.status(target)["type"] == "DIRECTORY":
            raise UnsafePathError(
                "Cannot write generated data to %s: it is a directory; give a file path (e.g. %s)",
                fs.uri(target),
                fs.uri(target.rstrip("/") + "/orders.csv"),
                path=target,
            )
        if not overwrite:
            raise PathExists(f"{fs.uri(target)} exists; pass --overwrite to replace it")


def generate_data(destination, options=None, *, overwrite=False, reporter=None):
    """Generate the built-in order-line log at ``destination`` (local or ``hdfs://``).

    Parameters
    ----------
    destination : str
        The CSV to write; the truth files go beside it.
    options : dict, optional
        Keyword arguments for :func:`models.synthetic.generate` (customers, lines, seed,
        start, days, dirty_rate).
    overwrite : bool
        Replace existing files.
    reporter : models.progress.Reporter, optional

    Returns
    -------
    dict
        The truth the generator planted (see :func:`models.synthetic.generate`), with
        ``"seconds"`` added.

    Raises
    ------
    hdfs_io.PathExists
        When a file exists and ``overwrite`` is false (checked before generating).
    hdfs_io.UnsafePathError
        When a destination is a directory (checked before generating).
    """
    say = reporter.progress("data") if reporter else None
    fs, path = get_filesystem(destination)
    _check_targets(fs, path, overwrite)
    watch = Stopwatch()
    if isinstance(fs, LocalFileSystem):
        local_file = fs.normalize(path)
        truth = generate(local_file, progress=say, **(options or {}))
    else:
        tmp_dir = tempfile.mkdtemp(prefix="crm-data-")
        try:
            local_file = os.path.join(tmp_dir, os.path.basename(path))
            truth = generate(local_file, progress=say, **(options or {}))
            for local, remote in zip(data_files(local_file), data_files(path), strict=True):
                if say:
                    say(f"uploading {os.path.getsize(local):,} bytes to {fs.uri(remote)}")
                write_file_atomically(
                    fs, remote, lambda tmp, src=local: fs.upload(src, tmp), overwrite=overwrite
                )
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    seconds = watch.stop()
    if reporter:
        reporter.summary("data", rows_in=0, rows_out=truth["lines_total"], seconds=seconds)
    return {**truth, "seconds": seconds}
