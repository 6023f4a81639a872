"""Atomic publishing of job results in Hadoop's output layout.

A result directory is built in a hidden sibling staging directory
(``<parent>/.<name>.tmp-<uuid>``) and moved into place only once complete, with a
``_manifest.json`` and an empty ``_SUCCESS`` marker. Readers therefore see either no result,
the previous result or the complete new one.

A failed publication deletes its staging directory. What a killed run leaves (a staging
directory, or the previous result renamed ``.<name>.old-<uuid>`` while being replaced) is
removed by the next publication of the same result when that is safe: see
:func:`clean_leftovers`.
"""

import json
import logging
import os
import posixpath
import re
import socket
import time
import uuid

from .errors import PathExists, StorageError, UnsafePathError

__all__ = [
    "SUCCESS_MARKER",
    "MANIFEST_NAME",
    "Publication",
    "check_can_publish",
    "validate_deletable",
    "is_published",
    "read_manifest",
    "list_leftovers",
    "clean_leftovers",
    "write_file_atomically",
]

_logger = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"
MANIFEST_NAME = "_manifest.json"
_MARKERS = (SUCCESS_MARKER, MANIFEST_NAME)
#: Hidden file in a staging directory naming the process that writes it (removed at commit).
OWNER_NAME = ".crm-owner.json"
#: A leftover whose writer cannot be shown dead is removed only after this many seconds.
STALE_AFTER = 24 * 3600
#: Staging directories of the publications open in this process.
_OPEN_STAGING = set()


def _contains(ancestor, path):
    """Tell whether `path` is `ancestor` or lies below it (both normalised, absolute)."""
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _refuse(path, rule):
    raise UnsafePathError("Refusing to delete or replace %r: %s", path, rule, path=path)


def _check_location(fs, path, shown):
    """Refuse paths whose location alone makes them unsafe to delete."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        _refuse(shown, "it is the filesystem root")
    if len(parts) == 1:
        _refuse(shown, "it is a top-level directory")
    if len(parts) == 2 and parts[0] in ("home", "user"):
        _refuse(shown, "it is a user's home directory")
    home = fs.home_directory()
    if home and _contains(path, home):
        _refuse(shown, f"it is or contains the home directory {home!r}")
    cwd = fs.working_directory()
    if cwd:
        for where in {cwd, os.path.realpath(cwd)}:
            if _contains(path, where):
                _refuse(shown, f"it is or contains the current working directory {cwd!r}")


def validate_deletable(fs, path):
    """Check that `path` may be replaced or deleted by a publication.

    Refused: the filesystem root, top-level directories (``/home``, ``/user``, ``/tmp``...),
    home directories (``/home/<x>``, ``/user/<x>``, the user's home) and anything containing
    them, the current working directory and its parents, a file, and a non-empty directory
    holding neither ``_SUCCESS`` nor ``_manifest.json`` (i.e. not a previous result).
    A missing path or an empty directory is accepted.

    Parameters
    ----------
    fs : FileSystem
        Filesystem holding `path`.
    path : str
        Path or URI.

    Returns
    -------
    str
        The normalised path.

    Raises
    ------
    UnsafePathError
        Naming the path and the rule that refused it.
    """
    norm = fs.normalize(path)
    candidates = [norm]
    if fs.scheme == "file":
        candidates.append(os.path.realpath(norm))  # a link pointing somewhere precious
    for candidate in candidates:
        _check_location(fs, candidate, norm)
    if not fs.exists(norm):
        return norm
    if fs.status(norm)["type"] != "DIRECTORY":
        _refuse(norm, "it is a file, not a result directory")
    names = fs.list(norm)
    if names and not any(marker in names for marker in _MARKERS):
        _refuse(
            norm,
            f"it is a non-empty directory without {SUCCESS_MARKER} or {MANIFEST_NAME}, "
            "so not a previous result",
        )
    return norm


def check_can_publish(fs, final_path, overwrite=False):
    """Check, before running a job, that its result can be published at `final_path`.

    Parameters
    ----------
    fs : FileSystem
        Target filesystem.
    final_path : str
        Result directory.
    overwrite : bool, optional
        Whether an existing result may be replaced. Default False.

    Returns
    -------
    str
        The normalised final path.

    Raises
    ------
    PathExists
        If `final_path` exists and `overwrite` is False.
    UnsafePathError
        If `final_path` is the root, or exists and fails `validate_deletable`.
    """
    norm = fs.normalize(final_path)
    if posixpath.basename(norm) == "":
        _refuse(norm, "it is the filesystem root")
    if fs.exists(norm):
        if not overwrite:
            raise PathExists(
                "Cannot publish to %r: it exists; pass --overwrite to replace it",
                str(final_path),
                path=norm,
            )
        validate_deletable(fs, norm)
    return norm


def is_published(fs, path):
    """Tell whether `path` holds a complete result (has ``_SUCCESS``).

    Parameters
    ----------
    fs : FileSystem
        Filesystem.
    path : str
        Result directory.

    Returns
    -------
    bool
        True if ``<path>/_SUCCESS`` exists.
    """
    return fs.exists(posixpath.join(fs.normalize(path), SUCCESS_MARKER))


def read_manifest(fs, path):
    """Read the ``_manifest.json`` of a published result.

    Parameters
    ----------
    fs : FileSystem
        Filesystem.
    path : str
        Result directory.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    PathNotFound
        If there is no manifest.
    StorageError
        If it is not valid JSON.
    """
    manifest_path = posixpath.join(fs.normalize(path), MANIFEST_NAME)
    data = fs.read(manifest_path)
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise StorageError(
            "Cannot read manifest %r: invalid JSON (%s)", manifest_path, exc, path=manifest_path
        ) from exc


def list_leftovers(fs, final_path):
    """List staging and replaced-result directories left next to `final_path` by crashes.

    Parameters
    ----------
    fs : FileSystem
        Filesystem.
    final_path : str
        Result directory.

    Returns
    -------
    list of str
        Paths of ``.<name>.tmp-*`` and ``.<name>.old-*`` siblings, sorted.
    """
    parent, name = posixpath.split(fs.normalize(final_path))
    if not fs.exists(parent):
        return []
    prefixes = (f".{name}.tmp-", f".{name}.old-")
    return [posixpath.join(parent, n) for n in fs.list(parent) if n.startswith(prefixes)]


def _owner_is_gone(fs, staging):
    """Tell whether the process that wrote `staging` (its owner file) surely ended."""
    try:
        owner = json.loads(fs.read(posixpath.join(staging, OWNER_NAME)).decode("utf-8"))
        host, pid = owner["host"], int(owner["pid"])
    except (StorageError, ValueError, KeyError, TypeError):
        return False  # no owner file (or an unreadable one): only its age can tell
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return staging not in _OPEN_STAGING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. EPERM: it runs, as someone else
        return False
    return False


def _leftover_verdict(fs, path, kind, final, stale_after):
    """Why the leftover `path` may be removed, or None to keep it."""
    status = fs.status(path)
    if status["type"] != "DIRECTORY":
        return None
    age = time.time() - status["modificationTime"] / 1000
    if kind == "old":
        if is_published(fs, final):
            return f"previous result left while replacing {final!r}, which is now published"
        _logger.warning(
            "Keeping %r: it may be the only copy of the previous result of %r (a run "
            "stopped while replacing it); rename it back or delete it",
            path,
            final,
        )
        return None
    if _owner_is_gone(fs, path):
        return "staging directory of a run that ended without cleaning up"
    if age > stale_after:
        return f"staging directory untouched for {age / 3600:.1f} h"
    _logger.warning("Keeping %r: another run may still be publishing %r", path, final)
    return None


def clean_leftovers(fs, final_path, stale_after=STALE_AFTER):
    """Remove what crashed runs left next to `final_path`, when that is safe.

    Only directories named exactly like this module's own (``.<name>.tmp-<32 hex>`` and
    ``.<name>.old-<32 hex>``) are considered, never anything else. A staging directory
    (``.tmp-``) is removed when the run that wrote it is known to have ended (its owner file
    names a process of this host that no longer runs) or when it is older than
    `stale_after`; a replaced result (``.old-``) only once `final_path` holds a published
    result. What is kept is reported as a warning.

    Parameters
    ----------
    fs : FileSystem
        Filesystem.
    final_path : str
        Result directory.
    stale_after : float, optional
        Age in seconds after which a staging directory of unknown writer is removed.
        Default 24 h.

    Returns
    -------
    list of str
        The removed paths, sorted.
    """
    final = fs.normalize(final_path)
    name = re.escape(posixpath.basename(final))
    pattern = re.compile(rf"^\.{name}\.(tmp|old)-[0-9a-f]{{32}}$")
    removed = []
    for path in list_leftovers(fs, final):
        match = pattern.match(posixpath.basename(path))
        if not match:
            continue
        try:
            reason = _leftover_verdict(fs, path, match.group(1), final, stale_after)
            if reason:
                fs.delete(path, recursive=True)
                _logger.warning("Removed %r: %s", path, reason)
                removed.append(path)
        except StorageError as err:  # cleaning never stops a publication
            _logger.warning("Could not clean up leftover %r: %s", path, err)
    return sorted(removed)


class Publication:
    """Context manager publishing a result directory atomically.

    Parameters
    ----------
    fs : FileSystem
        Target filesystem.
    final_path : str
        Result directory to create or replace.
    overwrite : bool, optional
        Replace an existing previous result. Default False.

    Attributes
    ----------
    final_path : str
        Normalised result directory.
    staging_path : str
        ``<parent>/.<name>.tmp-<uuid4 hex>``, created on ``__enter__``.

    Raises
    ------
    PathExists, UnsafePathError
        From `check_can_publish`, already in the constructor so that callers fail before
        running a long job.

    Examples
    --------
    >>> with Publication(fs, "/user/me/segments", overwrite=True) as pub:  # doctest: +SKIP
    ...     pub.write_part(0, ["a\\t1", "b\\t2"])
    ...     pub.commit({"job": "segments"})
    """

    def __init__(self, fs, final_path, overwrite=False):
        self.fs = fs
        self.overwrite = bool(overwrite)
        self.final_path = check_can_publish(fs, final_path, self.overwrite)
        parent, name = posixpath.split(self.final_path)
        self._parent, self._name = parent, name
        self.staging_path = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
        self._state = "new"

    def __repr__(self):
        return (
            f"Publication({self.fs!r}, {self.final_path!r}, "
            f"overwrite={self.overwrite!r}, state={self._state!r})"
        )

    def __enter__(self):
        if self._state != "new":
            raise StorageError("Publication of %r cannot be reused", self.final_path)
        clean_leftovers(self.fs, self.final_path)
        self.fs.mkdir(self.staging_path)
        _OPEN_STAGING.add(self.staging_path)
        self._state = "open"
        try:
            owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
            self.fs.write(posixpath.join(self.staging_path, OWNER_NAME), json.dumps(owner))
        except BaseException:
            self.abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._state != "open":
            return False
        if exc_type is None:
            _logger.warning("Publication of %r left without commit: discarded", self.final_path)
            self.abort()
            return False
        try:
            self.abort()
        except StorageError as err:  # do not hide the original error
            _logger.warning("Could not remove staging directory %r: %s", self.staging_path, err)
        return False

    def _require_open(self):
        if self._state != "open":
            raise StorageError(
                "Cannot write to publication of %r: it is %s (use it in a 'with' block)",
                self.final_path,
                {"new": "not started", "committed": "committed", "aborted": "aborted"}[self._state],
            )

    def write_part(self, index, lines):
        """Write ``part-%05d`` from text lines, adding ``'\\n'`` after each.

        Parameters
        ----------
        index : int
            Part number (>= 0).
        lines : iterable of str
            Lines without their newline (a single trailing ``'\\n'`` is tolerated).

        Returns
        -------
        str
            Path of the staged part file.
        """
        self._require_open()
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"part index must be a non-negative int, not {index!r}")
        path = posixpath.join(self.staging_path, f"part-{index:05d}")
        self.fs.write_lines(path, lines)
        return path

    def write_file(self, name, data):
        """Write an extra file (e.g. ``segments.csv``) into the result.

        Parameters
        ----------
        name : str
            Relative name, possibly with ``/`` subdirectories; not ``_SUCCESS``,
            ``_manifest.json`` or ``.crm-owner.json``.
        data : bytes or str
            Content; ``str`` is encoded as UTF-8.

        Returns
        -------
        str
            Path of the staged file.
        """
        self._require_open()
        parts = name.split("/") if isinstance(name, str) else []
        if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"file name must be a relative path without '..', not {name!r}")
        if name in _MARKERS or name == OWNER_NAME:
            raise ValueError(f"{name!r} is reserved for the publication itself")
        path = posixpath.join(self.staging_path, name)
        self.fs.write(path, data)
        return path

    def commit(self, manifest):
        """Write ``_manifest.json`` and ``_SUCCESS``, then move the result into place.

        With ``overwrite``, an existing result is first renamed to
        ``<parent>/.<name>.old-<uuid>``, the new one is moved in, then the old one is
        deleted; if moving the new one fails the old one is put back.

        Parameters
        ----------
        manifest : dict
            JSON-serialisable description of the result (written with sorted keys, indent 2).

        Returns
        -------
        str
            The final path.
        """
        self._require_open()
        if not isinstance(manifest, dict):
            raise TypeError(f"manifest must be a dict, not {type(manifest).__name__}")
        text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
        self.fs.delete(posixpath.join(self.staging_path, OWNER_NAME))
        self.fs.write(posixpath.join(self.staging_path, MANIFEST_NAME), text)
        self.fs.write(posixpath.join(self.staging_path, SUCCESS_MARKER), b"")
        self._move_into_place()
        self._state = "committed"
        _OPEN_STAGING.discard(self.staging_path)
        return self.final_path

    def _move_into_place(self):
        fs, final = self.fs, self.final_path
        if not fs.exists(final):
            fs.rename(self.staging_path, final)  # PathExists if someone published meanwhile
            return
        if not self.overwrite:
            raise PathExists(
                "Cannot publish to %r: it exists; pass --overwrite to replace it", final, path=final
            )
        validate_deletable(fs, final)
        old = posixpath.join(self._parent, f".{self._name}.old-{uuid.uuid4().hex}")
        fs.rename(final, old)
        try:
            fs.rename(self.staging_path, final)
        except BaseException:
            try:
                fs.rename(old, final)
            except StorageError as err:
                _logger.error("Could not restore previous result %r from %r: %s", final, old, err)
            raise
        try:
            fs.delete(old, recursive=True)
        except StorageError as err:
            _logger.warning(
                "Published %r but could not delete previous result %r: %s", final, old, err
            )

    def abort(self):
        """Discard the staged result (delete the staging directory).

        Raises
        ------
        StorageError
            If the publication was already committed.
        """
        if self._state == "committed":
            raise StorageError("Cannot abort publication of %r: already committed", self.final_path)
        _OPEN_STAGING.discard(self.staging_path)
        self.fs.delete(self.staging_path, recursive=True)
        self._state = "aborted"


def write_file_atomically(fs, path, write, overwrite=False):
    """Write one file so that readers see the old file, no file, or the complete new one.

    ``write(tmp_path)`` writes the content to a hidden sibling (``.<name>.tmp-<uuid>``),
    which is then renamed to `path`. With `overwrite`, an existing *file* at `path` is
    deleted just before the rename (on HDFS there is no atomic replace, so a reader may
    see no file for that instant, never a partial one). On any failure the temporary
    file is deleted.

    Parameters
    ----------
    fs : FileSystem
        Filesystem holding `path`.
    path : str
        Destination file.
    write : callable
        Called with the temporary path; writes the whole content there.
    overwrite : bool, optional
        Replace an existing file. Default False.

    Raises
    ------
    PathExists
        If `path` exists and `overwrite` is False (checked before and after writing).
    UnsafePathError
        If `path` is a directory.
    """
    path = fs.normalize(path)

    def check_destination():
        if fs.exists(path):
            if fs.status(path)["type"] == "DIRECTORY":
                _refuse(path, "it is a directory, not a file")
            if not overwrite:
                raise PathExists(
                    "%s exists; pass --overwrite to replace it", fs.uri(path), path=path
                )

    check_destination()
    parent, name = posixpath.split(path)
    tmp = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        write(tmp)
        check_destination()
        if overwrite and fs.exists(path):
            fs.delete(path)
        fs.rename(tmp, path)
    except BaseException:
        try:
            if fs.exists(tmp):
                fs.delete(tmp)
        except StorageError as exc:  # keep the original error; say what is left
            _logger.warning("could not remove the temporary file %s: %s", tmp, exc)
        raise
