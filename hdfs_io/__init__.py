"""Storage for job inputs and results: local disk or HDFS (WebHDFS), with atomic publishing.

Typical use::

    from hdfs_io import Publication, get_filesystem

    fs, out = get_filesystem("hdfs://namenode:8020/user/me/segments")  # CRM_WEBHDFS_URL set
    with Publication(fs, out, overwrite=True) as pub:
        pub.write_part(0, lines)
        pub.commit({"job": "segments"})

Credentials never leave through this package: :func:`redact_uri` (one home, in
:mod:`hdfs_io.errors`) masks URI passwords and ``delegation=``/token parameters in error
messages, in :meth:`FileSystem.uri` results and, once :func:`install_log_redaction` ran (at
import), in the log records of ``hdfs``, ``urllib3`` and ``requests``.
"""

from .base import FileSystem, read_parts
from .errors import (
    PathExists,
    PathNotFound,
    RedactSecretsFilter,
    StorageError,
    UnsafePathError,
    install_log_redaction,
    redact_secrets,
    redact_uri,
)
from .local import LocalFileSystem
from .paths import get_filesystem, is_hdfs, join, webhdfs_settings
from .publish import (
    MANIFEST_NAME,
    SUCCESS_MARKER,
    Publication,
    check_can_publish,
    clean_leftovers,
    is_published,
    list_leftovers,
    read_manifest,
    validate_deletable,
    write_file_atomically,
)
from .webhdfs import WebHDFSFileSystem

__all__ = [
    "FileSystem",
    "LocalFileSystem",
    "WebHDFSFileSystem",
    "read_parts",
    "get_filesystem",
    "webhdfs_settings",
    "join",
    "is_hdfs",
    "Publication",
    "check_can_publish",
    "validate_deletable",
    "write_file_atomically",
    "is_published",
    "read_manifest",
    "list_leftovers",
    "clean_leftovers",
    "SUCCESS_MARKER",
    "MANIFEST_NAME",
    "StorageError",
    "PathNotFound",
    "PathExists",
    "UnsafePathError",
    "redact_uri",
    "redact_secrets",
    "RedactSecretsFilter",
    "install_log_redaction",
]
