"""Exceptions raised by the storage layer.

Every error raised by :mod:`hdfs_io` is a :class:`StorageError`, so callers can catch one type.
Messages name the path and the cause and never contain credentials.
"""

__all__ = ["StorageError", "PathNotFound", "PathExists", "UnsafePathError"]


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
    """

    def __init__(self, message, *args, path=None):
        self.message = message % args if args else message
        self.path = path
        super().__init__(self.message)


class PathNotFound(StorageError):
    """The path does not exist."""


class PathExists(StorageError):
    """The path exists and the operation refuses to replace it."""


class UnsafePathError(StorageError):
    """Refusing to replace or delete a path that may not belong to us."""
