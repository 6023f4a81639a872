"""Progress messages and one-line stage summaries, on standard error.

Every line written passes through :func:`hdfs_io.redact_uri`: a URI given with a password
(``hdfs://ann:pw@nn/...``) or a ``delegation=`` token is never printed. Creating a
:class:`Reporter` also puts the redacting log filter on the handlers logging has by then
(:func:`hdfs_io.install_log_redaction`), so ``-v`` logs are redacted too.
"""

import sys

from hdfs_io import install_log_redaction, redact_uri

__all__ = ["Reporter", "format_summary", "summarize_manifest"]


def format_summary(stage, *, rows_in, rows_out, rejected=0, seconds=0.0, by_reason=None):
    """``"rfm: 69,660 lines in, 23,570 rows out, 1 rejected (header=1), 1.3 s"``."""
    text = f"{stage}: {rows_in:,} rows in, {rows_out:,} rows out, {rejected:,} rejected"
    if by_reason:
        text += " (" + ", ".join(f"{k}={v:,}" for k, v in sorted(by_reason.items())) + ")"
    return f"{text}, {seconds:.1f} s"


class Reporter:
    """Writes ``[stage] message`` progress lines and summaries.

    Parameters
    ----------
    stream : file-like, optional
        Default: ``sys.stderr`` (standard output stays free for data).
    quiet : bool
        Only summaries, no progress lines.
    """

    def __init__(self, stream=None, quiet=False):
        self.stream = stream
        self.quiet = quiet
        install_log_redaction()

    def _write(self, text):
        stream = self.stream or sys.stderr
        stream.write(redact_uri(text) + "\n")
        stream.flush()

    def progress(self, stage):
        """A ``progress(message)`` callable that prefixes ``[stage]``."""

        def say(message):
            if not self.quiet:
                self._write(f"[{stage}] {message}")

        return say

    def summary(self, stage, **figures):
        """Write the stage's one-line summary (see :func:`format_summary`)."""
        self._write(format_summary(stage, **figures))


def summarize_manifest(reporter, stage, manifest):
    """Write ``stage``'s summary from its manifest's line accounting, rows and seconds.

    Parameters
    ----------
    reporter : Reporter or None
        Nothing is written without one.
    stage : str
    manifest : dict
        As :func:`models.manifest.build_manifest` returns it.
    """
    if reporter is None:
        return
    lines = manifest["lines"]
    reporter.summary(
        stage,
        rows_in=lines["read"],
        rows_out=manifest["rows_written"],
        rejected=lines["rejected"],
        seconds=manifest["timings"]["seconds"],
        by_reason=lines["rejected_by_reason"],
    )
