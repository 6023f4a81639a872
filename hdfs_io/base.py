"""Abstract filesystem interface shared by the local and WebHDFS implementations."""

import abc
import codecs
import posixpath
import re

from .errors import StorageError, UnsafePathError

__all__ = ["FileSystem", "read_parts", "part_files", "iter_lines", "encode_lines"]

#: Hadoop part-file names: ``part-00000``, ``part-m-00000``, ``part-r-00000`` (plus any suffix).
_PART_RE = re.compile(r"^part-(?:[mr]-)?(\d+)[^/]*$")

_CHUNK_SIZE = 1 << 16


class FileSystem(abc.ABC):
    """A filesystem holding job inputs and outputs.

    Paths are the filesystem's own absolute paths (``/user/x/out`` or ``/home/x/out``); the
    implementations also accept full URIs of their scheme (``file://``, ``hdfs://``).
    Every failure is raised as :class:`~hdfs_io.errors.StorageError` (or a subclass).
    """

    #: URI scheme of the paths this filesystem holds.
    scheme = ""

    @abc.abstractmethod
    def normalize(self, path):
        """Return the canonical absolute path for `path`.

        Parameters
        ----------
        path : str
            Path or URI of this filesystem's scheme.

        Returns
        -------
        str
            Absolute, normalised path without scheme or authority.
        """

    @abc.abstractmethod
    def uri(self, path):
        """Return the full URI of `path` (``file:///abs`` or ``hdfs://host:port/abs``).

        Parameters
        ----------
        path : str
            Path or URI of this filesystem.

        Returns
        -------
        str
            The URI.
        """

    @abc.abstractmethod
    def exists(self, path):
        """Tell whether `path` exists.

        Parameters
        ----------
        path : str
            Path to check.

        Returns
        -------
        bool
            True if a file or directory exists at `path`.
        """

    @abc.abstractmethod
    def status(self, path):
        """Return the status of a file or directory.

        Parameters
        ----------
        path : str
            Path to inspect.

        Returns
        -------
        dict
            At least ``type`` (``'FILE'`` or ``'DIRECTORY'``), ``length`` (bytes; 0 for
            directories) and ``modificationTime`` (milliseconds since the epoch).

        Raises
        ------
        PathNotFound
            If `path` does not exist.
        """

    @abc.abstractmethod
    def list(self, path):
        """List the entries of a directory.

        Parameters
        ----------
        path : str
            Directory path.

        Returns
        -------
        list of str
            Sorted entry names (not paths), hidden entries included.

        Raises
        ------
        PathNotFound
            If `path` does not exist.
        StorageError
            If `path` is not a directory.
        """

    @abc.abstractmethod
    def read(self, path):
        """Read a whole file.

        Parameters
        ----------
        path : str
            File path.

        Returns
        -------
        bytes
            The file content.
        """

    @abc.abstractmethod
    def open_read(self, path):
        """Open a file for streaming reads.

        Parameters
        ----------
        path : str
            File path.

        Returns
        -------
        contextlib.AbstractContextManager
            Context manager yielding a binary file-like object with ``read(size)``.
        """

    @abc.abstractmethod
    def write(self, path, data, overwrite=False):
        """Write a file, creating missing parent directories.

        Parameters
        ----------
        path : str
            File path.
        data : bytes or str
            Content; a ``str`` is encoded as UTF-8.
        overwrite : bool, optional
            Replace an existing file. Default False.

        Raises
        ------
        PathExists
            If `path` exists and `overwrite` is False.
        """

    def write_lines(self, path, lines, overwrite=False):
        """Write an iterable of text lines as a UTF-8 file, one ``'\\n'`` after each line.

        Parameters
        ----------
        path : str
            File path.
        lines : iterable of str
            Lines without their newline (a single trailing ``'\\n'`` is tolerated).
        overwrite : bool, optional
            Replace an existing file. Default False.

        Raises
        ------
        ValueError
            If a line contains a newline other than at its end.
        """
        self.write(path, b"".join(encode_lines(lines)), overwrite=overwrite)

    def upload(self, local_file, path, overwrite=False):
        """Copy a local file to `path`, streaming it (never all in memory).

        Parameters
        ----------
        local_file : str or os.PathLike
            The local file to copy; its bytes are copied unchanged.
        path : str
            Destination file.
        overwrite : bool, optional
            Replace an existing file. Default False.

        Raises
        ------
        PathExists
            If `path` exists and `overwrite` is False.
        StorageError
            If `local_file` cannot be read (the message names it).
        """
        self.write(path, _read_local(local_file), overwrite=overwrite)

    @abc.abstractmethod
    def mkdir(self, path):
        """Create a directory and its parents; do nothing if it already exists.

        Parameters
        ----------
        path : str
            Directory path.
        """

    @abc.abstractmethod
    def rename(self, src, dst):
        """Move `src` to `dst`. The parent of `dst` must exist.

        Parameters
        ----------
        src : str
            Existing file or directory.
        dst : str
            New path; must not exist.

        Raises
        ------
        PathNotFound
            If `src` does not exist.
        PathExists
            If `dst` exists.
        """

    @abc.abstractmethod
    def delete(self, path, recursive=False):
        """Delete a file or directory.

        Parameters
        ----------
        path : str
            Path to delete. Symbolic links are removed, never followed.
        recursive : bool, optional
            Delete a non-empty directory with its content. Default False.

        Returns
        -------
        bool
            True if something was deleted, False if `path` did not exist.
        """

    @abc.abstractmethod
    def walk_files(self, path):
        """List all files below a directory, recursively.

        Parameters
        ----------
        path : str
            Directory path.

        Returns
        -------
        list of str
            Sorted paths relative to `path`, ``/``-separated.
        """

    @abc.abstractmethod
    def size(self, path):
        """Return the size of a file or the total size of the files of a directory tree.

        Parameters
        ----------
        path : str
            File or directory path.

        Returns
        -------
        int
            Size in bytes.
        """

    def home_directory(self):
        """Return the home directory of the current user on this filesystem, if known.

        Returns
        -------
        str or None
            Absolute path, or None when unknown.
        """
        return None

    def working_directory(self):
        """Return the current working directory on this filesystem, if it has one.

        Returns
        -------
        str or None
            Absolute path, or None.
        """
        return None

    def _check_not_root(self, path):
        """Refuse to delete the filesystem root whatever the caller asked."""
        if posixpath.normpath(path) == "/":
            raise UnsafePathError(
                "Refusing to delete %r: it is the filesystem root", path, path=path
            )


def encode_lines(lines):
    """Encode text lines as UTF-8 byte strings, each ending with ``b'\\n'``.

    Parameters
    ----------
    lines : iterable of str
        Lines without their newline (a single trailing ``'\\n'`` is tolerated).

    Yields
    ------
    bytes
        One encoded line per input line.

    Raises
    ------
    ValueError
        If a line contains a newline other than at its end.
    """
    for number, line in enumerate(lines, 1):
        if line.endswith("\n"):
            line = line[:-1]
        if "\n" in line:
            raise ValueError(f"line {number} contains an embedded newline: {line[:80]!r}")
        yield (line + "\n").encode("utf-8")


def iter_lines(fileobj, encoding="utf-8"):
    """Iterate over the text lines of a binary file-like object, in constant memory.

    Parameters
    ----------
    fileobj : binary file-like
        Object with a ``read(size)`` method.
    encoding : str, optional
        Text encoding. Default UTF-8.

    Yields
    ------
    str
        Lines without their trailing ``'\\n'``; a last line without newline is yielded too.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    pending = ""
    while True:
        chunk = fileobj.read(_CHUNK_SIZE)
        text = decoder.decode(chunk or b"", final=not chunk)
        if text:
            pieces = (pending + text).split("\n")
            pending = pieces.pop()
            yield from pieces
        if not chunk:
            break
    if pending:
        yield pending


def part_files(fs, path):
    """Return the Hadoop part-file names of a directory, in part order.

    Parameters
    ----------
    fs : FileSystem
        Filesystem holding the directory.
    path : str
        Directory path.

    Returns
    -------
    list of str
        Names matching ``part-[m-|r-]NNNNN*``, sorted by part number then name (the same
        as name order for Hadoop's zero-padded names). ``_SUCCESS``, ``_manifest.json`` and
        hidden files (``.`` or ``_`` prefix) are never included.

    Raises
    ------
    StorageError
        If the directory holds no part file.
    """
    found = []
    for name in fs.list(path):
        match = _PART_RE.match(name)
        if match:
            found.append((int(match.group(1)), name))
    if not found:
        raise StorageError("No part-* files in %r", path, path=path)
    return [name for _, name in sorted(found)]


def read_parts(fs, path):
    """Read the lines of the part files of a Hadoop-style output directory, in part order.

    Works like HdfsCLI's ``Client.parts()`` followed by reading each part; files are streamed,
    so large outputs are not loaded in memory.

    Parameters
    ----------
    fs : FileSystem
        Filesystem holding the directory.
    path : str
        Directory containing ``part-*`` files.

    Yields
    ------
    str
        Lines without their trailing newline, part after part.
    """
    base = fs.normalize(path)
    for name in part_files(fs, base):
        with fs.open_read(posixpath.join(base, name)) as fileobj:
            yield from iter_lines(fileobj)


UPLOAD_CHUNK = 1 << 20


def _read_local(local_file):
    try:
        with open(local_file, "rb") as f:
            return f.read()
    except OSError as exc:
        raise StorageError("Cannot read local file %r: %s", str(local_file), exc) from exc


def local_file_chunks(local_file, size=UPLOAD_CHUNK):
    """Open `local_file` at once (so a missing one fails early) and yield its bytes in chunks.

    Raises
    ------
    StorageError
        If `local_file` cannot be opened or read (the message names it).
    """
    try:
        f = open(local_file, "rb")
    except OSError as exc:
        raise StorageError("Cannot read local file %r: %s", str(local_file), exc) from exc

    def chunks():
        with f:
            while True:
                try:
                    chunk = f.read(size)
                except OSError as exc:
                    raise StorageError(
                        "Cannot read local file %r: %s", str(local_file), exc
                    ) from exc
                if not chunk:
                    return
                yield chunk

    return chunks()
