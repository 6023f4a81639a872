"""Filesystem implementation on the local disk."""

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import FileSystem, encode_lines, local_file_chunks
from .errors import PathExists, PathNotFound, StorageError

__all__ = ["LocalFileSystem", "local_path", "atomic_file"]


def local_path(path):
    """Convert a plain path or ``file://`` URI to an absolute, normalised local path.

    Parameters
    ----------
    path : str or os.PathLike
        Plain path (relative paths are taken from the current directory) or ``file:`` URI.

    Returns
    -------
    str
        Absolute path.

    Raises
    ------
    StorageError
        If the URI names a remote host or has another scheme.
    """
    path = os.fspath(path)
    if path.lower().startswith("file:"):
        parts = urlsplit(path)
        if parts.netloc not in ("", "localhost"):
            raise StorageError(
                "Cannot use %r: file URIs must name no host or 'localhost'", path, path=path
            )
        path = unquote(parts.path)
        if not path:
            raise StorageError("Cannot use %r: the URI has no path", path, path=path)
    elif "://" in path:
        raise StorageError(
            "Cannot use %r on the local filesystem: unsupported scheme", path, path=path
        )
    return os.path.abspath(path)


@contextlib.contextmanager
def atomic_file(path, overwrite=False):
    """Open a new temporary file beside `path` for binary writes; move it to `path` when done.

    The temporary file has an unpredictable name (``.<name>.tmp-<uuid4 hex>``) in the
    destination's directory and is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, like
    :func:`tempfile.mkstemp` does, so a file or symbolic link planted there is never
    followed or reused; its mode is ``0o666`` filtered by the umask, like any new file
    (``mkstemp`` would make it ``0o600``). Readers see the old file, no file, or the
    complete new one. On any error the temporary file is removed.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; missing parent directories are created.
    overwrite : bool, optional
        Replace an existing file (a symbolic link at `path` is replaced, never followed).
        Default False.

    Yields
    ------
    io.BufferedWriter
        The temporary file, open for binary writes.

    Raises
    ------
    StorageError
        If `path` is a directory (checked before anything is created), or writing fails.
    PathExists
        If `path` exists and `overwrite` is False.
    """
    path = local_path(path)
    if os.path.isdir(path):
        raise StorageError("Cannot write %r: it is a directory", path, path=path)
    if not overwrite and os.path.lexists(path):
        raise PathExists("Cannot write %r: file exists", path, path=path)
    parent = os.path.dirname(path)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        os.makedirs(parent, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise _error("write", path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fileobj:
            yield fileobj
            fileobj.flush()
            os.fsync(fileobj.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except OSError as exc:
        raise _error("write", path, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _link_no_clobber(tmp, path):
    """Move `tmp` to `path` atomically, failing if `path` appeared in the meantime."""
    try:
        os.link(tmp, path)  # atomic and fails with EEXIST, unlike os.replace
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Filesystem without hard links: best effort.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", path) from exc
        os.replace(tmp, path)


def _error(action, path, exc):
    """Translate an OSError into the matching StorageError subclass."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        cls = PathNotFound
    elif isinstance(exc, FileExistsError):
        cls = PathExists
    else:
        cls = StorageError
    return cls("Cannot %s %r: %s", action, path, reason.lower(), path=path)


class LocalFileSystem(FileSystem):
    """Filesystem on the local disk.

    Paths may be plain paths or ``file://`` URIs. :meth:`write` is atomic per file: content
    goes to a temporary file in the same directory, which is then moved into place.
    """

    scheme = "file"

    def __repr__(self):
        return "LocalFileSystem()"

    def normalize(self, path):
        """Return the absolute, normalised local path of `path`.

        Parameters
        ----------
        path : str
            Plain path or ``file://`` URI.

        Returns
        -------
        str
            Absolute path.
        """
        return local_path(path)

    def uri(self, path):
        """Return the ``file:///abs`` URI of `path`.

        Parameters
        ----------
        path : str
            Plain path or ``file://`` URI.

        Returns
        -------
        str
            The URI, percent-encoded where needed.
        """
        return Path(local_path(path)).as_uri()

    def exists(self, path):
        """Tell whether `path` exists (symbolic links are followed).

        Parameters
        ----------
        path : str
            Path to check.

        Returns
        -------
        bool
            True if a file or directory exists.
        """
        return os.path.exists(local_path(path))

    def status(self, path):
        """Return ``type``, ``length`` and ``modificationTime`` (ms) of `path`.

        Parameters
        ----------
        path : str
            Path to inspect.

        Returns
        -------
        dict
            Status in the WebHDFS FileStatus vocabulary.
        """
        path = local_path(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _error("get status of", path, exc) from exc
        is_dir = os.path.isdir(path)
        return {
            "type": "DIRECTORY" if is_dir else "FILE",
            "length": 0 if is_dir else st.st_size,
            "modificationTime": int(st.st_mtime * 1000),
        }

    def list(self, path):
        """List the sorted entry names of a directory.

        Parameters
        ----------
        path : str
            Directory path.

        Returns
        -------
        list of str
            Sorted names.
        """
        path = local_path(path)
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            raise _error("list", path, exc) from exc

    def read(self, path):
        """Read a whole file.

        Parameters
        ----------
        path : str
            File path.

        Returns
        -------
        bytes
            Content.
        """
        path = local_path(path)
        try:
            with open(path, "rb") as fileobj:
                return fileobj.read()
        except OSError as exc:
            raise _error("read", path, exc) from exc

    @contextlib.contextmanager
    def open_read(self, path):
        """Open a file for streaming binary reads.

        Parameters
        ----------
        path : str
            File path.

        Yields
        ------
        io.BufferedReader
            The open file, closed on exit.
        """
        path = local_path(path)
        try:
            fileobj = open(path, "rb")  # closed by the with block below
        except OSError as exc:
            raise _error("open", path, exc) from exc
        with fileobj:
            yield fileobj

    def _write_chunks(self, path, chunks, overwrite):
        """Write `chunks` to a temporary sibling file, then move it to `path` atomically."""
        with atomic_file(path, overwrite=overwrite) as fileobj:
            for chunk in chunks:
                fileobj.write(chunk)

    def write(self, path, data, overwrite=False):
        """Write a file atomically, creating missing parent directories.

        Parameters
        ----------
        path : str
            File path.
        data : bytes or str
            Content; ``str`` is encoded as UTF-8.
        overwrite : bool, optional
            Replace an existing file. Default False.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        self._write_chunks(path, [data], overwrite)

    def write_lines(self, path, lines, overwrite=False):
        """Write text lines atomically as a UTF-8 file, streaming them to disk.

        Parameters
        ----------
        path : str
            File path.
        lines : iterable of str
            Lines without their newline.
        overwrite : bool, optional
            Replace an existing file. Default False.
        """
        self._write_chunks(path, encode_lines(lines), overwrite)

    def upload(self, local_file, path, overwrite=False):
        """Copy a local file to `path` atomically, in chunks (see :meth:`FileSystem.upload`)."""
        self._write_chunks(path, local_file_chunks(local_file), overwrite)

    def mkdir(self, path):
        """Create a directory and its parents; do nothing if it exists.

        Parameters
        ----------
        path : str
            Directory path.
        """
        path = local_path(path)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            if os.path.exists(path) and not os.path.isdir(path):
                raise StorageError(
                    "Cannot create directory %r: a file exists there", path, path=path
                ) from exc
            raise _error("create directory", path, exc) from exc

    def rename(self, src, dst):
        """Move `src` to `dst`, refusing to replace an existing `dst`.

        Parameters
        ----------
        src : str
            Existing path.
        dst : str
            New path; its parent must exist.
        """
        src, dst = local_path(src), local_path(dst)
        if not os.path.lexists(src):
            raise PathNotFound("Cannot rename %r to %r: source does not exist", src, dst, path=src)
        if os.path.lexists(dst):
            raise PathExists("Cannot rename %r to %r: destination exists", src, dst, path=dst)
        try:
            os.rename(src, dst)
        except OSError as exc:
            raise StorageError(
                "Cannot rename %r to %r: %s", src, dst, (exc.strerror or str(exc)).lower(), path=src
            ) from exc

    def delete(self, path, recursive=False):
        """Delete a file, link or directory.

        Parameters
        ----------
        path : str
            Path to delete; links are removed, never followed.
        recursive : bool, optional
            Delete a non-empty directory and its content. Default False.

        Returns
        -------
        bool
            False if nothing existed at `path`.
        """
        path = local_path(path)
        self._check_not_root(path)
        try:
            if not os.path.lexists(path):
                return False
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            elif recursive:
                shutil.rmtree(path)
            else:
                os.rmdir(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _error("delete", path, exc) from exc
        return True

    def walk_files(self, path):
        """List all files below a directory (links to directories are not followed).

        Parameters
        ----------
        path : str
            Directory path.

        Returns
        -------
        list of str
            Sorted ``/``-separated paths relative to `path`.
        """
        path = local_path(path)
        if not os.path.isdir(path):
            if os.path.exists(path):
                raise StorageError("Cannot walk %r: not a directory", path, path=path)
            raise PathNotFound("Cannot walk %r: no such file or directory", path, path=path)
        found = []

        def fail(exc):
            raise _error("walk", path, exc) from exc

        for dirpath, _dirs, files in os.walk(path, onerror=fail):
            rel = os.path.relpath(dirpath, path)
            for name in files:
                found.append(name if rel == "." else rel.replace(os.sep, "/") + "/" + name)
        return sorted(found)

    def size(self, path):
        """Return the size of a file, or the total size of the files below a directory.

        Parameters
        ----------
        path : str
            File or directory path.

        Returns
        -------
        int
            Bytes.
        """
        path = local_path(path)
        if not os.path.isdir(path):
            return self.status(path)["length"]
        total = 0
        for rel in self.walk_files(path):
            with contextlib.suppress(FileNotFoundError):  # vanished or dangling link
                total += os.path.getsize(os.path.join(path, rel))
        return total

    def home_directory(self):
        """Return the user's home directory (``~``).

        Returns
        -------
        str or None
            Absolute path.
        """
        home = os.path.expanduser("~")
        return os.path.abspath(home) if home != "~" else None

    def working_directory(self):
        """Return the current working directory.

        Returns
        -------
        str
            Absolute path.
        """
        return os.getcwd()
