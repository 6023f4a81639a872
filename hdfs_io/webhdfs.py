"""Filesystem implementation on HDFS through the WebHDFS REST API (HdfsCLI clients)."""

import contextlib
import getpass
import io
import json
import logging
import os
import posixpath
import re
import time
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import hdfs
import requests
import urllib3
from hdfs.util import HdfsError

from .base import FileSystem
from .errors import PathExists, PathNotFound, StorageError

__all__ = ["WebHDFSFileSystem", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES", "DEFAULT_BACKOFF"]

_logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10, 60)
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
_MAX_DELAY = 30.0

#: Errors of the connection itself: worth retrying, unlike HdfsError (an answer of the NameNode).
_CONNECTION_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
)

_SECRET_PARAM_RE = re.compile(r"(?i)\b(delegation|token|password|passwd|secret)=[^&\s'\"]+")
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]*@")
_CONN_PREFIX_RE = re.compile(r"^<?[\w.]*HTTPS?Connection[^:]*>?:\s*")


def _display_url(url):
    """Return `url` without user info, query or fragment, safe to show in messages."""
    shown = []
    for one in url.split(";"):
        if not one:
            continue
        parts = urlsplit(one)
        netloc = parts.netloc.rpartition("@")[2]
        shown.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/"))
    return ";".join(shown)


def _request_not_sent(exc):
    """Tell whether a connection error happened before the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(
            reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        )
    return False


class _StreamReader(io.RawIOBase):
    """Raw binary stream over a WebHDFS response that reports failures as StorageError."""

    def __init__(self, raw, describe_failure):
        super().__init__()
        self._raw = raw
        self._describe_failure = describe_failure

    def readable(self):
        return True

    def readinto(self, buffer):
        try:
            data = self._raw.read(len(buffer))
        except (*_CONNECTION_ERRORS, requests.exceptions.RequestException) as exc:
            raise self._describe_failure(exc) from None
        size = len(data)
        buffer[:size] = data
        return size


class WebHDFSFileSystem(FileSystem):
    """Filesystem on HDFS through WebHDFS.

    Parameters
    ----------
    url : str
        NameNode HTTP address, e.g. ``http://namenode:9870`` (several separated by ``;`` for
        high availability). This is not the ``hdfs://host:8020`` RPC address.
    user : str, optional
        User name for clusters without security (default: the local user). Ignored with a
        token or Kerberos, which carry the identity.
    token : str, optional
        Hadoop delegation token (``hdfs.TokenClient``). Never shown in messages or ``repr``.
    kerberos : bool, optional
        Authenticate with Kerberos (``hdfs.ext.kerberos.KerberosClient``, needs
        ``requests-kerberos``). Default False.
    timeout : float or tuple of float, optional
        ``(connect, read)`` timeouts in seconds. Default ``(10, 60)``.
    retries : int, optional
        Total number of attempts for an operation failing with a connection error or a
        timeout. Errors answered by the NameNode are never retried. Default 3.
    backoff : float, optional
        Delay before the 2nd attempt, doubled for each further one. Default 0.5 s.
    fs_uri : str, optional
        ``hdfs://host:port`` prefix that :meth:`uri` puts before paths. Default ``hdfs://``
        (i.e. ``hdfs:///abs``, meaning the cluster's ``fs.defaultFS``).

    Notes
    -----
    Operations that change the namespace (write without overwrite, rename, delete) are only
    retried when the request surely did not reach the server (connection refused or connect
    timeout); after a read timeout their outcome is unknown and the error says so.
    """

    scheme = "hdfs"

    def __init__(
        self,
        url,
        user=None,
        token=None,
        kerberos=False,
        timeout=DEFAULT_TIMEOUT,
        retries=DEFAULT_RETRIES,
        backoff=DEFAULT_BACKOFF,
        fs_uri=None,
    ):
        urls = [one for one in (url or "").split(";") if one]
        if not urls or any(urlsplit(one).scheme.lower() not in ("http", "https") for one in urls):
            raise StorageError(
                "Invalid WebHDFS URL %r: expected the NameNode HTTP address "
                "(e.g. http://namenode:9870), not the hdfs:// RPC address",
                _display_url(url or ""),
            )
        if token and kerberos:
            raise StorageError(
                "Cannot use both a delegation token and Kerberos for WebHDFS %s", _display_url(url)
            )
        retries = int(retries)
        if retries < 1:
            raise StorageError("Invalid WebHDFS retries %r: must be at least 1", retries)
        if float(backoff) < 0:
            raise StorageError("Invalid WebHDFS backoff %r: must not be negative", backoff)
        self.url = _display_url(url)
        self.user = user
        self.timeout = timeout
        self.retries = retries
        self.backoff = float(backoff)
        self.fs_uri = (fs_uri or "hdfs://").rstrip("/")
        if not self.fs_uri.lower().startswith("hdfs://"):
            self.fs_uri = "hdfs://"
        self._secrets = tuple(s for s in {token, quote(token, safe="")} if s) if token else ()
        if token:
            self.auth = "token"
            client = hdfs.TokenClient(url, token, timeout=timeout)
        elif kerberos:
            self.auth = "kerberos"
            client = self._kerberos_client(url, timeout)
        else:
            self.auth = "simple"
            client = hdfs.InsecureClient(url, user=user, timeout=timeout)
        self._client = client

    def _kerberos_client(self, url, timeout):
        try:
            from hdfs.ext.kerberos import KerberosClient
        except ImportError as exc:
            raise StorageError(
                "Kerberos authentication was requested for WebHDFS %s but it is unavailable (%s); "
                "install it with 'pip install requests-kerberos'",
                self.url,
                exc,
            ) from None
        return KerberosClient(url, timeout=timeout)

    def __repr__(self):
        return f"WebHDFSFileSystem(url={self.url!r}, user={self.user!r}, auth={self.auth!r})"

    # Error handling ------------------------------------------------------------------------

    def _scrub(self, text):
        """Remove credentials from `text`."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _SECRET_PARAM_RE.sub(r"\1=***", text)
        return _USERINFO_RE.sub(r"\1", text)

    def _cause(self, exc):
        """Short, credential-free description of a connection-level error."""
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        text = str(reason) if reason is not None else str(exc)
        text = _CONN_PREFIX_RE.sub("", text.strip("'\" ")) or type(exc).__name__
        return f"{type(exc).__name__}: {self._scrub(text)}"

    def _error(self, cls, action, path, cause):
        return cls("Cannot %s %r on WebHDFS %s: %s", action, path, self.url, cause, path=path)

    def _hdfs_error(self, action, path, exc):
        message = self._scrub(exc.message).strip()
        if len(message) > 1000:
            message = message[:1000] + "..."
        name = getattr(exc, "exception", None) or ""
        lowered = message.lower()
        if name == "FileNotFoundException" or "does not exist" in lowered or "not found" in lowered:
            cls = PathNotFound
        elif name == "FileAlreadyExistsException" or "already exists" in lowered:
            cls = PathExists
        else:
            cls = StorageError
        return self._error(cls, action, path, message or name or "request failed")

    def _call(self, action, path, func, idempotent=True):
        """Run `func` with bounded retries on connection errors, translating failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return func()
            except HdfsError as exc:
                raise self._hdfs_error(action, path, exc) from None
            except _CONNECTION_ERRORS as exc:
                cause = self._cause(exc)
                if not idempotent and not _request_not_sent(exc):
                    raise self._error(
                        StorageError,
                        action,
                        path,
                        f"{cause} (not retried: the operation may or may not have been applied)",
                    ) from None
                if attempt >= self.retries:
                    raise self._error(
                        StorageError,
                        action,
                        path,
                        f"{cause} (gave up after {attempt} attempt{'' if attempt == 1 else 's'})",
                    ) from None
                delay = min(self.backoff * 2 ** (attempt - 1), _MAX_DELAY)
                _logger.warning(
                    "WebHDFS %s %r on %s failed (attempt %d of %d): %s; retrying in %.2fs",
                    action,
                    path,
                    self.url,
                    attempt,
                    self.retries,
                    cause,
                    delay,
                )
                time.sleep(delay)
            except (json.JSONDecodeError, KeyError) as exc:
                raise self._error(
                    StorageError,
                    action,
                    path,
                    f"unexpected response ({type(exc).__name__}: {self._scrub(exc)}); "
                    f"is {self.url} the NameNode HTTP address?",
                ) from None
            except requests.exceptions.RequestException as exc:
                raise self._error(StorageError, action, path, self._cause(exc)) from None

    # Paths ---------------------------------------------------------------------------------

    def normalize(self, path):
        """Return the absolute HDFS path of `path`.

        Parameters
        ----------
        path : str
            Absolute HDFS path (``/user/x/out``) or ``hdfs://host:port/...`` URI.

        Returns
        -------
        str
            Normalised absolute path without scheme or authority.
        """
        path = os.fspath(path)
        if "://" in path or path.lower().startswith("hdfs:"):
            parts = urlsplit(path)
            if parts.scheme.lower() != "hdfs":
                raise StorageError("Cannot use %r on HDFS: unsupported scheme", path, path=path)
            path = unquote(parts.path) or "/"
        if not path.startswith("/"):
            raise StorageError(
                "Cannot use %r on HDFS: paths must be absolute (/user/...)", path, path=path
            )
        return "/" + posixpath.normpath(path).lstrip("/")

    def uri(self, path):
        """Return the ``hdfs://host:port/abs`` URI of `path`.

        Parameters
        ----------
        path : str
            HDFS path or URI.

        Returns
        -------
        str
            URI built from ``fs_uri``.
        """
        return self.fs_uri + quote(self.normalize(path))

    def home_directory(self):
        """Return ``/user/<name>`` for the configured or local user (None with Kerberos/token).

        Returns
        -------
        str or None
            HDFS home directory.
        """
        if self.auth != "simple":
            return None
        return "/user/%s" % (self.user or getpass.getuser())

    # Operations ----------------------------------------------------------------------------

    def exists(self, path):
        """Tell whether `path` exists.

        Parameters
        ----------
        path : str
            HDFS path.

        Returns
        -------
        bool
            True if a file or directory exists (permission errors are raised, not hidden).
        """
        try:
            self.status(path)
        except PathNotFound:
            return False
        return True

    def status(self, path):
        """Return the WebHDFS FileStatus of `path` (``type``, ``length``, ...).

        Parameters
        ----------
        path : str
            HDFS path.

        Returns
        -------
        dict
            FileStatus.
        """
        path = self.normalize(path)
        return self._call("get status of", path, lambda: self._client.status(path))

    def list(self, path):
        """List the sorted entry names of a directory.

        Parameters
        ----------
        path : str
            HDFS directory.

        Returns
        -------
        list of str
            Sorted names.
        """
        path = self.normalize(path)
        return sorted(self._call("list", path, lambda: self._client.list(path)))

    def read(self, path):
        """Read a whole file.

        Parameters
        ----------
        path : str
            HDFS file.

        Returns
        -------
        bytes
            Content.
        """
        path = self.normalize(path)

        def read_all():
            with self._client.read(path) as reader:
                return reader.read()

        return self._call("read", path, read_all)

    @contextlib.contextmanager
    def open_read(self, path):
        """Open a file for streaming binary reads.

        Parameters
        ----------
        path : str
            HDFS file.

        Yields
        ------
        io.BufferedReader
            Buffered stream; failures while reading raise StorageError (not retried).
        """
        path = self.normalize(path)
        opened = []

        def open_stream():
            context = self._client.read(path)
            reader = context.__enter__()
            opened.append(context)
            return reader

        raw = self._call("open", path, open_stream)
        try:
            yield io.BufferedReader(
                _StreamReader(
                    raw,
                    lambda exc: self._error(StorageError, "read", path, self._cause(exc)),
                ),
                buffer_size=1 << 16,
            )
        finally:
            opened[0].__exit__(None, None, None)

    def write(self, path, data, overwrite=False):
        """Write a file (WebHDFS creates missing parent directories).

        Parameters
        ----------
        path : str
            HDFS file.
        data : bytes or str
            Content; ``str`` is encoded as UTF-8.
        overwrite : bool, optional
            Replace an existing file. Default False.

        Notes
        -----
        Unlike the local implementation this is not atomic: HDFS shows a file while it is
        written. Use :class:`hdfs_io.publish.Publication` for atomic results.
        """
        path = self.normalize(path)
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        data = bytes(data)
        self._call(
            "write",
            path,
            lambda: self._client.write(path, data=data, overwrite=overwrite),
            idempotent=bool(overwrite),
        )

    def mkdir(self, path):
        """Create a directory and its parents; do nothing if it exists.

        Parameters
        ----------
        path : str
            HDFS directory.
        """
        path = self.normalize(path)
        self._call("create directory", path, lambda: self._client.makedirs(path))

    def rename(self, src, dst):
        """Move `src` to `dst`, refusing to replace an existing `dst`.

        Parameters
        ----------
        src : str
            Existing HDFS path.
        dst : str
            New HDFS path; its parent must exist.
        """
        src, dst = self.normalize(src), self.normalize(dst)
        if not self.exists(src):
            raise PathNotFound(
                "Cannot rename %r to %r on WebHDFS %s: source does not exist",
                src,
                dst,
                self.url,
                path=src,
            )
        if self.exists(dst):
            # WebHDFS would move src *into* an existing directory: refuse instead.
            raise PathExists(
                "Cannot rename %r to %r on WebHDFS %s: destination exists",
                src,
                dst,
                self.url,
                path=dst,
            )
        self._call(
            f"rename {src!r} to", dst, lambda: self._client.rename(src, dst), idempotent=False
        )

    def delete(self, path, recursive=False):
        """Delete a file or directory.

        Parameters
        ----------
        path : str
            HDFS path.
        recursive : bool, optional
            Delete a non-empty directory with its content. Default False.

        Returns
        -------
        bool
            False if nothing existed at `path`.
        """
        path = self.normalize(path)
        self._check_not_root(path)
        return bool(
            self._call(
                "delete",
                path,
                lambda: self._client.delete(path, recursive=recursive),
                idempotent=False,
            )
        )

    def walk_files(self, path):
        """List all files below a directory.

        Parameters
        ----------
        path : str
            HDFS directory.

        Returns
        -------
        list of str
            Sorted ``/``-separated paths relative to `path`.
        """
        path = self.normalize(path)
        if self.status(path)["type"] != "DIRECTORY":
            raise StorageError("Cannot walk %r on WebHDFS %s: not a directory", path, self.url)

        def walk():
            found = []
            for dirpath, _dirs, files in self._client.walk(path):
                rel = posixpath.relpath(dirpath, path)
                found.extend(name if rel == "." else f"{rel}/{name}" for name in files)
            return sorted(found)

        return self._call("walk", path, walk)

    def size(self, path):
        """Return the size of a file or the total size of a directory tree (ContentSummary).

        Parameters
        ----------
        path : str
            HDFS path.

        Returns
        -------
        int
            Bytes.
        """
        path = self.normalize(path)
        return int(self._call("get size of", path, lambda: self._client.content(path)["length"]))
