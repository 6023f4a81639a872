"""Choosing a filesystem from a path or URI, joining paths, and refusing overlapping ones.

Overlapping paths
-----------------
:func:`check_disjoint` refuses, before any work, an output that is equal to, inside or
around an input (``-o orders --overwrite`` would delete the input; an output inside an
input directory is read back as input by the next run), and two outputs equal or nested
(one would replace the other). Local paths are compared resolved
(:func:`os.path.realpath`: symbolic links followed); ``hdfs://`` URIs by their normalised
path, whatever the authority (every ``hdfs://`` path goes to the one configured WebHDFS
URL, see :func:`get_filesystem`). A local path and an HDFS path never overlap.
"""

import os
import posixpath
from urllib.parse import unquote, urlsplit

from .errors import StorageError, UnsafePathError
from .local import LocalFileSystem, local_path
from .webhdfs import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, WebHDFSFileSystem

__all__ = [
    "get_filesystem",
    "webhdfs_settings",
    "join",
    "is_hdfs",
    "check_disjoint",
    "OverlappingPathsError",
    "ENV_VARS",
]

#: Configuration key -> environment variable read when the key is not in ``config``.
ENV_VARS = {
    "url": "CRM_WEBHDFS_URL",
    "user": "CRM_WEBHDFS_USER",
    "token": "CRM_WEBHDFS_TOKEN",
    "kerberos": "CRM_WEBHDFS_KERBEROS",
    "timeout": "CRM_WEBHDFS_TIMEOUT",
    "retries": "CRM_WEBHDFS_RETRIES",
    "backoff": "CRM_WEBHDFS_BACKOFF",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def is_hdfs(uri):
    """Tell whether `uri` is an ``hdfs://`` URI.

    Parameters
    ----------
    uri : str or os.PathLike
        Path or URI.

    Returns
    -------
    bool
        True for the ``hdfs`` scheme (case-insensitive).
    """
    return isinstance(uri, str) and uri[:5].lower() == "hdfs:"


def _parse_bool(value, source):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StorageError("Invalid %s %r: use 1 or 0", source, value)


def _parse_timeout(value, source):
    try:
        if isinstance(value, int | float):
            parts = [float(value)]
        elif isinstance(value, tuple | list):
            parts = [float(v) for v in value]
        else:
            parts = [float(v) for v in str(value).split(",")]
        if len(parts) not in (1, 2) or any(p <= 0 for p in parts):
            raise ValueError(value)
    except (TypeError, ValueError):
        raise StorageError(
            "Invalid %s %r: expected seconds, or 'connect,read' seconds (e.g. 10,60)",
            source,
            value,
        ) from None
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _parse_number(value, source, kind):
    try:
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError):
        raise StorageError("Invalid %s %r: expected a number", source, value) from None
    if number < 0:
        raise StorageError("Invalid %s %r: must not be negative", source, value)
    return number


def webhdfs_settings(config=None, environ=None):
    """Resolve the WebHDFS settings from `config`, then the environment, then defaults.

    Parameters
    ----------
    config : dict, optional
        Keys ``url``, ``user``, ``token``, ``kerberos``, ``timeout``, ``retries``, ``backoff``.
        A key absent or None falls back to its ``CRM_WEBHDFS_*`` variable (see `ENV_VARS`).
    environ : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    dict
        Keyword arguments for :class:`~hdfs_io.webhdfs.WebHDFSFileSystem`; ``url`` is None
        when not configured.

    Raises
    ------
    StorageError
        On an unknown configuration key or an invalid value.
    """
    config = dict(config or {})
    environ = os.environ if environ is None else environ
    unknown = sorted(set(config) - set(ENV_VARS))
    if unknown:
        raise StorageError(
            "Unknown WebHDFS setting(s) %s; known: %s", ", ".join(unknown), ", ".join(ENV_VARS)
        )
    raw, source = {}, {}
    for key, var in ENV_VARS.items():
        if config.get(key) is not None:
            raw[key], source[key] = config[key], f"WebHDFS setting {key!r}"
        elif environ.get(var, "") != "":
            raw[key], source[key] = environ[var], var
    settings = {
        "url": raw.get("url"),
        "user": raw.get("user"),
        "token": raw.get("token"),
        "kerberos": False,
        "timeout": DEFAULT_TIMEOUT,
        "retries": DEFAULT_RETRIES,
        "backoff": DEFAULT_BACKOFF,
    }
    if "kerberos" in raw:
        settings["kerberos"] = _parse_bool(raw["kerberos"], source["kerberos"])
    if "timeout" in raw:
        settings["timeout"] = _parse_timeout(raw["timeout"], source["timeout"])
    if "retries" in raw:
        settings["retries"] = _parse_number(raw["retries"], source["retries"], int)
    if "backoff" in raw:
        settings["backoff"] = _parse_number(raw["backoff"], source["backoff"], float)
    return settings


def get_filesystem(uri_or_path, config=None):
    """Return the filesystem holding `uri_or_path` and the path on it.

    Parameters
    ----------
    uri_or_path : str or os.PathLike
        Plain local path, ``file://`` URI or ``hdfs://host:port/path`` URI.
    config : dict, optional
        WebHDFS settings taking precedence over the environment (see `webhdfs_settings`).

    Returns
    -------
    tuple of (FileSystem, str)
        The filesystem and the absolute path on it.

    Raises
    ------
    StorageError
        For an ``hdfs://`` URI when no WebHDFS URL is configured (set ``CRM_WEBHDFS_URL``),
        or for an unsupported scheme.

    Notes
    -----
    For ``hdfs://host:port/path`` the requests go to the configured WebHDFS URL, whatever
    ``host:port`` says (the RPC address cannot be mapped to the HTTP one); ``host:port`` is
    kept so that :meth:`~hdfs_io.webhdfs.WebHDFSFileSystem.uri` gives back the same form.
    ``hdfs:///path`` means the cluster's ``fs.defaultFS``.
    """
    if is_hdfs(uri_or_path):
        settings = webhdfs_settings(config)
        if not settings["url"]:
            raise StorageError(
                "Cannot access %r: no WebHDFS URL configured; set %s to the NameNode HTTP "
                "address (e.g. http://namenode:9870) or pass config={'url': ...}",
                uri_or_path,
                ENV_VARS["url"],
                path=uri_or_path,
            )
        authority = urlsplit(uri_or_path).netloc
        fs = WebHDFSFileSystem(fs_uri="hdfs://" + authority, **settings)
        return fs, fs.normalize(uri_or_path)
    return LocalFileSystem(), local_path(uri_or_path)


def join(base, *parts):
    """Join path components onto a local path or a ``file://``/``hdfs://`` URI.

    Parameters
    ----------
    base : str or os.PathLike
        Base path or URI.
    *parts : str
        Components; leading slashes are ignored, so they never replace `base`.

    Returns
    -------
    str
        Joined path, of the same form as `base` (URI stays URI).
    """
    base = os.fspath(base)
    parts = [p.strip("/") for p in (os.fspath(p) for p in parts) if p.strip("/")]
    if "://" in base:
        head, _, tail = base.partition("://")
        authority, slash, path = tail.partition("/")
        joined = posixpath.join(slash + path if slash else "/", *parts)
        return f"{head}://{authority}{joined}"
    return posixpath.join(base, *parts)


class OverlappingPathsError(UnsafePathError):
    """An output is, contains or lies inside an input or another output."""


def _comparable(path):
    """``(scheme, parts)`` of `path`, normalised for :func:`check_disjoint`."""
    if is_hdfs(path):
        hdfs_path = posixpath.normpath("/" + unquote(urlsplit(path).path).lstrip("/"))
        return "hdfs", tuple(p for p in hdfs_path.split("/") if p)
    resolved = os.path.realpath(local_path(path))
    return "file", tuple(p for p in resolved.split(os.sep) if p)


def _relation(a, b):
    """How path `a` relates to `b`: "is the same as", "is inside", "contains" or None."""
    (scheme_a, parts_a), (scheme_b, parts_b) = _comparable(a), _comparable(b)
    if scheme_a != scheme_b:
        return None
    if parts_a == parts_b:
        return "is the same as"
    if parts_a[: len(parts_b)] == parts_b:
        return "is inside"
    if parts_b[: len(parts_a)] == parts_a:
        return "contains"
    return None


def check_disjoint(inputs, outputs):
    """Refuse outputs that overlap an input or each other.

    Parameters
    ----------
    inputs : iterable of str
        Input files or directories (local paths, ``file://`` or ``hdfs://`` URIs).
    outputs : iterable of str
        Output directories, same forms. None entries are ignored in both.

    Raises
    ------
    OverlappingPathsError
        Naming both paths, when an output is the same as, inside or containing an input,
        or when two outputs are the same or nested.

    Examples
    --------
    >>> check_disjoint(["/data/orders.csv"], ["/out/rfm", "/out/rfm_segments"])
    >>> try:
    ...     check_disjoint(["/data"], ["/data/rfm"])
    ... except OverlappingPathsError as e:
    ...     print(e)
    output '/data/rfm' is inside input '/data': choose an output outside every input
    """
    inputs = [os.fspath(p) for p in inputs if p is not None]
    outputs = [os.fspath(p) for p in outputs if p is not None]
    for i, output in enumerate(outputs):
        for kind, other in [("input", p) for p in inputs] + [
            ("output", p) for p in outputs[i + 1 :]
        ]:
            relation = _relation(output, other)
            if relation:
                raise OverlappingPathsError(
                    "output %r %s %s %r: choose %s",
                    output,
                    relation,
                    kind,
                    other,
                    "an output outside every input" if kind == "input" else "distinct outputs",
                    path=output,
                )
