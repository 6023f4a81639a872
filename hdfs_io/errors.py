"""Exceptions raised by the storage layer, and the one place where credentials are redacted.

Every error raised by :mod:`hdfs_io` is a :class:`StorageError`, so callers can catch one type.
Messages name the path and the cause and never contain credentials: they pass through
:func:`redact_uri`, which is also what progress lines, manifests, run records and log records
(:func:`install_log_redaction`) go through.

What is redacted: the password of a URI's user info (``hdfs://ann:secret@nn`` becomes
``hdfs://ann:***@nn``; the user name stays, it is not a secret and says whose identity is
used) and the value of any ``name=value`` whose name ends in ``delegation``, ``token``,
``password``, ``passwd`` or ``secret`` (``?delegation=XYZ`` becomes ``?delegation=***``).
"""

import logging
import re

__all__ = [
    "StorageError",
    "PathNotFound",
    "PathExists",
    "UnsafePathError",
    "redact_uri",
    "redact_secrets",
    "RedactSecretsFilter",
    "install_log_redaction",
    "MAX_QUOTED",
    "shorten",
]

#: ``scheme://user:password@``: the password is replaced, the user name kept. The password
#: runs to the last ``@`` before the path, so an unencoded ``@`` in it is masked too.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:'\"]*):[^/\s'\"]*@")
#: ``name=value`` pairs of a query string (or of any text) that carry a credential.
_SECRET_PARAM_RE = re.compile(
    r"(?i)\b([\w.-]*(?:delegation|token|password|passwd|secret))=[^&\s'\"#,;)]+"
)

#: Longest piece of a server's answer quoted in an error message.
MAX_QUOTED = 200

#: Loggers that may log URLs with credentials: the hdfs library logs its client's URL, urllib3
#: every request line (``delegation=`` included) at DEBUG level.
_LOGGERS = (
    "",
    "hdfs",
    "hdfs.client",
    "hdfs.util",
    "hdfs.ext.kerberos",
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "requests_kerberos",
    "hdfs_io",
    "hdfs_io.webhdfs",
    "hdfs_io.publish",
)


def redact_uri(text):
    """Return `text` with URI passwords and credential parameters replaced by ``***``.

    Parameters
    ----------
    text : str
        Any text: a URI, a message, a log line. Other values are returned unchanged.

    Returns
    -------
    str
        The redacted text.

    Examples
    --------
    >>> redact_uri("hdfs://ann:pw@nn:8020/x?delegation=XYZ&op=OPEN")
    'hdfs://ann:***@nn:8020/x?delegation=***&op=OPEN'
    """
    if not isinstance(text, str):
        return text
    text = _USERINFO_RE.sub(r"\1\2:***@", text)
    return _SECRET_PARAM_RE.sub(r"\1=***", text)


def redact_secrets(value):
    """Apply :func:`redact_uri` to every string of a JSON-able object, recursively.

    Parameters
    ----------
    value : object
        A string, a dict, a list or tuple of them, or any other value (kept as is).

    Returns
    -------
    object
        A copy with every string (dict keys included) redacted; tuples become lists.
    """
    if isinstance(value, str):
        return redact_uri(value)
    if isinstance(value, dict):
        return {redact_uri(k): redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_secrets(v) for v in value]
    return value


def shorten(text, limit=MAX_QUOTED):
    """Return `text` cut to `limit` characters (with ``...``), for quoting in a message."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


class RedactSecretsFilter(logging.Filter):
    """Logging filter passing each record's message through :func:`redact_uri`.

    Installed on loggers it redacts the records they create; installed on handlers it
    redacts every record they emit, whatever logger made it.
    """

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's business (handleError)
            return True
        redacted = redact_uri(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactSecretsFilter()


def install_log_redaction():
    """Redact the records of the root, ``hdfs``, ``urllib3`` and ``requests`` loggers.

    The filter goes on those loggers and on the root logger's current handlers (so records
    of child loggers, which skip their ancestors' filters, are redacted too). Calling it
    again adds nothing twice; call it after configuring logging to cover new handlers.
    """
    targets = [logging.getLogger(name) for name in _LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


class StorageError(Exception):
    """A storage operation failed.

    Parameters
    ----------
    message : str
        Message, optionally with ``%``-style placeholders.
    *args
        Values substituted into `message`.
    path : str, optional
        The path the operation was about, kept as the ``path`` attribute.

    Notes
    -----
    The message and the path pass through :func:`redact_uri`: no password or delegation
    token of a URI reaches ``str(error)``.
    """

    def __init__(self, message, *args, path=None):
        self.message = redact_uri(message % args if args else message)
        self.path = redact_uri(path)
        super().__init__(self.message)


class PathNotFound(StorageError):
    """The path does not exist."""


class PathExists(StorageError):
    """The path exists and the operation refuses to replace it."""


class UnsafePathError(StorageError):
    """Refusing to replace or delete a path that may not belong to us."""
