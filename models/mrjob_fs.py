"""mrjob's filesystem interface for ``hdfs://`` paths over WebHDFS, for the hadoop runner.

mrjob's hadoop runner does its HDFS work (checking the output directory, uploading the
job's files, listing and reading the output, removing its temporary directory) by
running ``hadoop fs`` commands: a Java start of a few seconds each, about ten per job.
Measured on the project's two-core test cluster, that was as long as the YARN
application itself (55 s a job, 27 s of it in YARN). When a WebHDFS URL is configured
(``CRM_WEBHDFS_URL``, see :mod:`hdfs_io.paths`) :func:`use_webhdfs` puts
:class:`WebHDFSMrjobFilesystem` in front of mrjob's own, so the same operations are HTTP
requests to the NameNode through :mod:`hdfs_io`; ``hadoop jar`` still submits the job.
Without a WebHDFS URL nothing changes.
"""

import fnmatch
import glob
import posixpath

from mrjob.cat import decompress
from mrjob.fs.base import Filesystem
from mrjob.fs.composite import CompositeFilesystem
from mrjob.fs.hadoop import HadoopFilesystem
from mrjob.fs.local import LocalFilesystem

from hdfs_io import PathNotFound, StorageError

__all__ = ["WebHDFSMrjobFilesystem", "use_webhdfs"]

#: One HadoopFilesystem per ``hadoop`` binary, shared by the runners of this process,
#: so that ``hadoop version`` (a Java start) runs once, not once a job.
_HADOOP_FS = {}


class WebHDFSMrjobFilesystem(Filesystem):
    """mrjob's :class:`~mrjob.fs.base.Filesystem` for ``hdfs://`` URIs, over WebHDFS.

    Parameters
    ----------
    hdfs : hdfs_io.webhdfs.WebHDFSFileSystem
        The project's WebHDFS filesystem (:func:`hdfs_io.get_filesystem`).
    """

    def __init__(self, hdfs):
        super().__init__()
        self._hdfs = hdfs

    def can_handle_path(self, path):
        return path.lower().startswith("hdfs://")

    def _matches(self, path_glob):
        """The absolute HDFS paths that ``path_glob`` names (shell wildcards allowed)."""
        path = self._hdfs.normalize(path_glob)
        if not glob.has_magic(path):
            return [path] if self._hdfs.exists(path) else []
        found = ["/"]
        for part in path.strip("/").split("/"):
            if not glob.has_magic(part):
                found = [posixpath.join(base, part) for base in found]
                continue
            found = [
                posixpath.join(base, name)
                for base in found
                if self._is_dir(base)
                for name in self._hdfs.list(base)
                if fnmatch.fnmatchcase(name, part)
            ]
        return [p for p in found if self._hdfs.exists(p)]

    def _is_dir(self, path):
        try:
            return self._hdfs.status(path)["type"] == "DIRECTORY"
        except PathNotFound:
            return False

    def ls(self, path_glob):
        """Yield the URI of every file ``path_glob`` names or holds (recursively)."""
        for path in self._matches(path_glob):
            if self._is_dir(path):
                for relative in self._hdfs.walk_files(path):
                    yield self._hdfs.uri(posixpath.join(path, relative))
            else:
                yield self._hdfs.uri(path)

    def du(self, path_glob):
        return sum(self._hdfs.size(path) for path in self._matches(path_glob))

    def _cat_file(self, path):
        # lines, as mrjob's own HadoopFilesystem yields them (a file object's iteration)
        with self._hdfs.open_read(path) as stream:
            yield from decompress(stream, path)

    def exists(self, path_glob):
        return bool(self._matches(path_glob))

    def mkdir(self, path):
        try:
            self._hdfs.mkdir(path)
        except StorageError as e:
            raise OSError(f"Could not mkdir {path}: {e}") from None

    def put(self, src, path):
        if path.endswith("/"):
            raise ValueError("put() destination may not be a directory")
        self._hdfs.upload(src, path)

    def rm(self, path_glob):
        for path in self._matches(path_glob):
            self._hdfs.delete(path, recursive=True)

    def touchz(self, path):
        if self._hdfs.exists(path) and self._hdfs.status(path)["length"] > 0:
            raise OSError(f"Non-empty file {path!r} already exists!")
        self._hdfs.write(path, b"", overwrite=True)


def use_webhdfs(mr_runner):
    """Give ``mr_runner`` (mrjob's hadoop runner, not yet run) the WebHDFS filesystem
    for ``hdfs://`` paths when a WebHDFS URL is configured; return whether it did.

    Also shares one :class:`~mrjob.fs.hadoop.HadoopFilesystem` per ``hadoop`` binary
    between the runners of this process (``hadoop version`` runs once).
    """
    from hdfs_io import get_filesystem

    try:
        hdfs, _root = get_filesystem("hdfs:///")
    except (StorageError, ValueError):
        hdfs = None
    hadoop_bin = mr_runner._opts["hadoop_bin"] or None
    key = tuple(hadoop_bin) if isinstance(hadoop_bin, list) else hadoop_bin
    hadoop = _HADOOP_FS.setdefault(key, HadoopFilesystem(hadoop_bin))
    fs = CompositeFilesystem()
    if hdfs is not None:
        fs.add_fs("webhdfs", WebHDFSMrjobFilesystem(hdfs))
    fs.add_fs("hadoop", hadoop)
    fs.add_fs("local", LocalFilesystem())
    mr_runner._fs = fs
    return hdfs is not None
