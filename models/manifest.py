"""The manifest every published result carries: what went in, what came out, how.

A manifest is a JSON object written as ``_manifest.json`` beside the ``part-*`` files.
Keys: ``stage``, ``tool``, ``created``, ``runner``, ``inputs`` (path and bytes of each),
``parameters``, ``versions``, ``lines`` (read, accepted, rejected, rejected_by_reason; read
always equals accepted + rejected), ``rows_written``, ``outputs`` (files beside the parts),
``timings`` (started, finished, seconds) and stage-specific ``details``.

No credential is written: parameters whose names suggest one are replaced (:func:`redact`),
and every string of the manifest passes through :func:`hdfs_io.redact_secrets` (URI
passwords, ``delegation=`` and token parameters).
"""

import datetime
import platform
import time
from importlib import metadata

from hdfs_io import redact_secrets

__all__ = ["build_manifest", "redact", "versions", "Stopwatch"]

_SECRET_WORDS = ("token", "password", "secret", "credential", "key_id", "access_key")


def redact(parameters):
    """A copy of ``parameters`` without values whose names suggest a credential.

    Parameters
    ----------
    parameters : dict

    Returns
    -------
    dict
        The same keys; secret values replaced by ``"<redacted>"``.
    """
    out = {}
    for key, value in parameters.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            out[key] = "<redacted>" if value is not None else None
        elif isinstance(value, dict):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


def versions():
    """Versions of Python and of the packages that shape the results."""
    found = {"python": platform.python_version()}
    for name in ("crm-mapreduce", "mrjob", "pandas", "numpy", "scikit-learn", "statsmodels"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


class Stopwatch:
    """Wall-clock start, finish and seconds of a stage, for its manifest."""

    def __init__(self):
        self.started = _now()
        self._t0 = time.perf_counter()
        self.seconds = None
        self.finished = None

    def stop(self):
        """Stop the watch and return the elapsed seconds."""
        self.seconds = round(time.perf_counter() - self._t0, 3)
        self.finished = _now()
        return self.seconds

    def as_dict(self):
        """``{"started", "finished", "seconds"}`` (stops the watch if still running)."""
        if self.seconds is None:
            self.stop()
        return {"started": self.started, "finished": self.finished, "seconds": self.seconds}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def build_manifest(
    stage,
    *,
    inputs,
    parameters,
    runner,
    lines,
    rows_written,
    stopwatch,
    outputs=(),
    details=None,
):
    """Assemble a stage's manifest.

    Parameters
    ----------
    stage : str
        ``"rfm"``, ``"rfm_segments"``, ...
    inputs : list of dict
        ``{"path": ..., "bytes": ...}`` per input.
    parameters : dict
        The stage's options; credentials are redacted (:func:`redact`).
    runner : str or None
        The mrjob runner, or ``None`` for driver-only stages.
    lines : dict or None
        :func:`models.job_runner.line_accounting` output, for stages that read raw lines.
    rows_written : int
    stopwatch : Stopwatch
    outputs : sequence of str
        Names of the files published besides ``part-*``.
    details : dict, optional
        Stage-specific figures.

    Returns
    -------
    dict
        Every string redacted by :func:`hdfs_io.redact_secrets`.
    """
    manifest = {
        "stage": stage,
        "tool": "crm-mapreduce",
        "created": _now(),
        "runner": runner,
        "inputs": list(inputs),
        "parameters": redact(parameters),
        "versions": versions(),
        "lines": lines,
        "rows_written": rows_written,
        "outputs": sorted(outputs),
        "timings": stopwatch.as_dict(),
        "details": details or {},
    }
    return redact_secrets(manifest)
