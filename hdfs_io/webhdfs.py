"""Filesystem implementation on HDFS through the WebHDFS REST API (HdfsCLI clients)."""

import contextlib
import getpass
import io
import itertools
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

from .base import FileSystem, encode_lines, local_file_chunks
from .errors import (
    PathExists,
    PathNotFound,
    StorageError,
    install_log_redaction,
    redact_uri,
    shorten,
)

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

#: Lines of a data stream are sent in chunks of about this size (streamed, never all in memory).
_WRITE_CHUNK = 1 << 20

_CONN_PREFIX_RE = re.compile(r"^<?[\w.]*HTTPS?Connection[^:]*>?:\s*")
#: Start of the Java stack trace that Hadoop 3 appends to some RemoteException messages.
_JAVA_STACK_RE = re.compile(r"\s*\n\s*at [\w$.<>/-]+\(")
#: Server messages saying the path exists but has the wrong type (not "not found"/"exists").
_WRONG_TYPE_RE = re.compile(r"(?i)not a (?:file|directory)|must both be directories")


install_log_redaction()


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


def _without_password(fs_uri):
    """Return the ``hdfs://[user@]host:port`` prefix `fs_uri` without any password."""
    scheme, _, rest = fs_uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return fs_uri
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"


def _looks_like_html(text, content_type):
    """Tell whether an error body is an HTML page rather than WebHDFS's JSON."""
    if "html" in (content_type or "").lower():
        return True
    head = text.lstrip()[:200].lower()
    return head.startswith(("<!doctype html", "<html")) or "<html" in head


def _origin(url):
    """Return ``scheme://host:port`` of `url`, lower-cased, or '' when it has none."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower() if parts.netloc else ""


def _check_timeout(timeout):
    """Return `timeout` if it is a positive number or a (connect, read) pair of them."""
    values = timeout if isinstance(timeout, tuple | list) else (timeout,)
    valid = len(values) in (1, 2) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values
    )
    if not valid:
        raise StorageError(
            "Invalid WebHDFS timeout %r: expected positive seconds or a (connect, read) pair",
            timeout,
        )
    return tuple(values) if len(values) == 2 else values[0]


class _OneShotStream:
    """Iterable over the byte chunks of a data stream that remembers whether it was started.

    A stream cannot be sent twice, so a failed write is only retried while nothing was read.
    """

    def __init__(self, chunks):
        self._chunks = chunks
        self.started = False

    def __iter__(self):
        self.started = True
        yield from self._chunks


def _chunked(pieces, size):
    """Join consecutive byte strings into chunks of at least `size` bytes (the last may be
    shorter)."""
    buffer, length = [], 0
    for piece in pieces:
        buffer.append(piece)
        length += len(piece)
        if length >= size:
            yield b"".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield b"".join(buffer)


def _literal_path(path):
    """Stand-in for HdfsCLI's ``Client.resolve``: the path as given (already absolute)."""
    return path


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
        Authenticate with Kerberos (``hdfs.ext.kerberos.KerberosClient``). Default False.
        This needs the optional ``requests-kerberos`` package (``pip install 'hdfs[kerberos]'``
        installs it) and a Kerberos ticket (``kinit``); without the package the constructor
        raises :class:`~hdfs_io.errors.StorageError` saying what to install. Kerberos is not
        exercised by this project's tests (its test cluster runs without security): only that
        error is.
    timeout : float or tuple of float, optional
        Seconds to wait for a connection and then for each response, as one number or a
        ``(connect, read)`` pair. Default ``(10, 60)``.
    retries : int, optional
        Total number of attempts for an operation failing with a connection error or a
        timeout. Errors answered by the NameNode are never retried. Default 3.
    backoff : float, optional
        Delay before the 2nd attempt, doubled for each further one (at most 30 s). Default 0.5.
    fs_uri : str, optional
        ``hdfs://host:port`` prefix that :meth:`uri` puts before paths. Default ``hdfs://``
        (i.e. ``hdfs:///abs``, meaning the cluster's ``fs.defaultFS``).

    Raises
    ------
    StorageError
        For an invalid URL, timeout, retries or backoff, a token together with Kerberos, or
        Kerberos without ``requests-kerberos``. Messages never contain the token.

    Notes
    -----
    Operations that change the namespace (write without overwrite, rename, delete) are only
    retried when the request surely did not reach the server (connection refused or connect
    timeout); after a read timeout their outcome is unknown and the error says so. A write
    whose data is a stream (:meth:`write_lines`) is not retried once part of it was sent.

    Paths are taken literally: HdfsCLI's ``#LATEST`` markers are not expanded.
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
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise StorageError("Invalid WebHDFS retries %r: must be an int of at least 1", retries)
        if (
            isinstance(backoff, bool)
            or not isinstance(backoff, int | float)
            or not 0 <= backoff < float("inf")
        ):
            raise StorageError(
                "Invalid WebHDFS backoff %r: must be a non-negative number of seconds", backoff
            )
        self.url = _display_url(url)
        self._origins = {_origin(one) for one in urls}
        self.timeout = _check_timeout(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.fs_uri = _without_password((fs_uri or "hdfs://").rstrip("/"))
        if not self.fs_uri.lower().startswith("hdfs://"):
            self.fs_uri = "hdfs://"
        self._secrets = tuple(s for s in {token, quote(token, safe="")} if s) if token else ()
        if token:
            self.auth = "token"
            self.user = None
            client = hdfs.TokenClient(url, token, timeout=self.timeout)
        elif kerberos:
            self.auth = "kerberos"
            self.user = None
            client = self._kerberos_client(url, self.timeout)
        else:
            self.auth = "simple"
            self.user = user or getpass.getuser()
            client = hdfs.InsecureClient(url, user=self.user, timeout=self.timeout)
        # HdfsCLI expands '#LATEST' path components into the newest entry: take paths literally
        # (they reach the client already absolute and normalised).
        client.resolve = _literal_path
        self._failed_response = None
        client._session.hooks["response"].append(self._remember_failure)
        self._client = client
        install_log_redaction()  # again: logging may have been configured since the import

    def _remember_failure(self, response, *args, **kwargs):
        """Requests hook keeping the status and type of the last non-2xx answer."""
        if response.status_code >= 300 and not response.is_redirect:
            content_type = response.headers.get("Content-Type", "")
            self._failed_response = (response.status_code, content_type)
        return response

    def _kerberos_client(self, url, timeout):
        """Return an HdfsCLI KerberosClient, or raise a StorageError saying what is missing.

        Kerberos cannot be tested here (no KDC): only the missing-package error is tested.
        """
        try:
            from hdfs.ext.kerberos import KerberosClient
        except ImportError as exc:
            raise StorageError(
                "Kerberos authentication was requested for WebHDFS %s but it is unavailable "
                "(%s); install it with 'pip install requests-kerberos' "
                "(or 'pip install hdfs[kerberos]'), or unset CRM_WEBHDFS_KERBEROS",
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
        return redact_uri(text)

    def _cause(self, exc):
        """Short, credential-free description of a connection-level error.

        When the failing request went elsewhere than the NameNode (a DataNode the NameNode
        redirected to), that address is named, since it is what the user must fix.
        """
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        text = str(reason) if reason is not None else str(exc)
        text = _CONN_PREFIX_RE.sub("", text.strip("'\" ")) or type(exc).__name__
        cause = f"{type(exc).__name__}: {self._scrub(text)}"
        request = getattr(exc, "request", None)
        origin = _origin(getattr(request, "url", None))
        if origin and origin not in self._origins:
            cause += f" (at {origin}, where the NameNode redirected the request)"
        return cause

    def _error(self, cls, action, path, cause):
        return cls("Cannot %s %r on WebHDFS %s: %s", action, path, self.url, cause, path=path)

    def _server_message(self, exc):
        """The NameNode's message of an HdfsError: scrubbed, without Java stack trace, short."""
        raw = exc.message
        message = "" if raw is None else self._scrub(raw)
        message = _JAVA_STACK_RE.split(message, maxsplit=1)[0].strip()
        return shorten(message)

    def _html_answer(self, exc):
        """Say so briefly when the server answered with an HTML page (not WebHDFS), else None."""
        status, content_type = self._failed_response or (None, "")
        raw = exc.message
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        if getattr(exc, "exception", None) or not _looks_like_html(text, content_type):
            return None
        answered = f"HTTP {status}" if status else "an error"
        return (
            f"the server answered {answered} with an HTML page, not WebHDFS JSON: "
            f"is {self.url} a WebHDFS endpoint (the NameNode HTTP address)?"
        )

    def _hdfs_error(self, action, path, exc):
        html = self._html_answer(exc)
        if html:
            return self._error(StorageError, action, path, html)
        message = self._server_message(exc)
        name = getattr(exc, "exception", None) or ""
        lowered = message.lower()
        if _WRONG_TYPE_RE.search(message):
            cls = StorageError  # exists, but is a file where a directory is needed or vice versa
        elif name == "FileNotFoundException" or any(
            words in lowered for words in ("does not exist", "not found")
        ):
            cls = PathNotFound
        elif name == "FileAlreadyExistsException" or "already exists" in lowered:
            cls = PathExists
        else:
            cls = StorageError
        if not message:
            message = f"{name} (no message from the server)" if name else "request failed"
            if self.auth == "token":
                message += "; is the delegation token valid?"
        return self._error(cls, action, path, message)

    def _call(self, action, path, func, idempotent=True, stream=None, translate=None):
        """Run `func` with bounded retries on connection errors, translating failures.

        Parameters
        ----------
        action, path : str
            What is done, for messages ("read", "/user/x").
        func : callable
            The request(s); called once per attempt.
        idempotent : bool, optional
            Whether repeating a request that may have reached the server is harmless.
        stream : _OneShotStream, optional
            Data sent by `func`; once started, the operation is not retried.
        translate : callable, optional
            Maps an HdfsError (an answer of the server) to the StorageError to raise.
        """
        attempt = 0
        while True:
            attempt += 1
            self._failed_response = None
            try:
                return func()
            except HdfsError as exc:
                if translate is not None:
                    raise translate(exc) from None
                raise self._hdfs_error(action, path, exc) from None
            except _CONNECTION_ERRORS as exc:
                cause = self._cause(exc)
                if stream is not None and stream.started:
                    raise self._error(
                        StorageError,
                        action,
                        path,
                        f"{cause} (not retried: part of the data was already sent; "
                        "the file may exist incomplete)",
                    ) from None
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
                    f"unexpected response ({type(exc).__name__}: {shorten(self._scrub(exc))}); "
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

    def write_lines(self, path, lines, overwrite=False):
        """Write text lines as a UTF-8 file, streaming them (never all in memory).

        Parameters
        ----------
        path : str
            HDFS file.
        lines : iterable of str
            Lines without their newline (a single trailing ``'\\n'`` is tolerated).
        overwrite : bool, optional
            Replace an existing file. Default False.

        Raises
        ------
        ValueError
            If a line contains a newline other than at its end.
        PathExists
            If `path` exists and `overwrite` is False.

        Notes
        -----
        The data goes in chunks of about 1 MiB with HTTP chunked transfer encoding. The first
        chunk is encoded before any request, so a bad line in it creates no file. Once data
        was sent the write is not retried, and a failure (or a ValueError from a later bad
        line) may leave an incomplete file at `path`, possibly created by the DataNode shortly
        after the error: write into a :class:`hdfs_io.publish.Publication` when readers must
        never see one.
        """
        path = self.normalize(path)
        chunks = _chunked(encode_lines(lines), _WRITE_CHUNK)
        # A bad line in the first chunk fails before any request: no file is created.
        first = next(chunks, b"")
        stream = _OneShotStream(itertools.chain([first], chunks))
        self._call(
            "write",
            path,
            lambda: self._client.write(path, data=stream, overwrite=overwrite),
            idempotent=bool(overwrite),
            stream=stream,
        )

    def upload(self, local_file, path, overwrite=False):
        """Copy a local file to `path`, streaming it in 1 MiB chunks.

        Not atomic, and not retried once data was sent (as :meth:`write_lines`): use
        :func:`hdfs_io.publish.write_file_atomically` when readers must never see a
        partial file.
        """
        path = self.normalize(path)
        stream = _OneShotStream(local_file_chunks(local_file))
        self._call(
            "write",
            path,
            lambda: self._client.write(path, data=stream, overwrite=overwrite),
            idempotent=bool(overwrite),
            stream=stream,
        )

    def mkdir(self, path):
        """Create a directory and its parents; do nothing if it exists.

        Parameters
        ----------
        path : str
            HDFS directory.

        Raises
        ------
        StorageError
            If `path` or one of its parents is a file.
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

        Raises
        ------
        PathNotFound
            If `src` or the parent directory of `dst` does not exist.
        PathExists
            If `dst` exists.

        Notes
        -----
        The rename is sent with ``renameoptions=NONE`` (HDFS ``rename2``), which the NameNode
        refuses atomically when `dst` exists. Plain WebHDFS ``RENAME`` would instead move `src`
        *into* an existing directory `dst`, so a publication racing another could nest one
        result inside the other.
        """
        src, dst = self.normalize(src), self.normalize(dst)
        if not self.exists(src):
            raise self._rename_error(PathNotFound, src, dst, "source does not exist", src)
        if self.exists(dst):
            raise self._rename_error(PathExists, src, dst, "destination exists", dst)

        def rename():
            res = self._client._rename(src, destination=dst, renameoptions="NONE")
            # rename2 answers with an empty body; a server ignoring renameoptions answers
            # {"boolean": false} when it could not rename.
            if res.content and res.json().get("boolean") is False:
                raise HdfsError("the server refused the rename")

        self._call(
            f"rename {src!r} to",
            dst,
            rename,
            idempotent=False,
            translate=lambda exc: self._diagnose_rename(src, dst, exc),
        )

    def _rename_error(self, cls, src, dst, cause, path):
        return cls("Cannot rename %r to %r on WebHDFS %s: %s", src, dst, self.url, cause, path=path)

    def _diagnose_rename(self, src, dst, exc):
        """Explain a rename the server refused, by looking at `src`, `dst` and its parent."""
        message = self._server_message(exc)
        if (
            getattr(exc, "exception", None) == "FileAlreadyExistsException"
            or "already exists" in message
            or "must both be directories" in message  # rename2: dst exists, other type
        ):
            return self._rename_error(PathExists, src, dst, "destination exists", dst)
        if not self.exists(src):
            return self._rename_error(PathNotFound, src, dst, "source does not exist", src)
        if self.exists(dst):
            return self._rename_error(PathExists, src, dst, "destination exists", dst)
        parent = posixpath.dirname(dst)
        if not self.exists(parent):
            cause = f"the destination's parent directory {parent!r} does not exist"
            return self._rename_error(PathNotFound, src, dst, cause, parent)
        if self.status(parent)["type"] != "DIRECTORY":
            cause = f"the destination's parent {parent!r} is a file"
            return self._rename_error(StorageError, src, dst, cause, parent)
        cause = message or "the server refused the rename"
        return self._rename_error(StorageError, src, dst, cause, src)

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
