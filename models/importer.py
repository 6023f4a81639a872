"""``crm-mr import``: rewrite a known public log format as canonical order lines.

The rewrite uses the jobs' own parser (:mod:`mr_jobs.records`), so a line the importer
accepts is exactly a line the jobs would accept, and every rejected line is counted by
reason in the manifest written beside the output (``<output>.manifest.json``).

Output columns: ``order_id,customer_id,timestamp,item_id,quantity,unit_price,amount``.
``amount`` carries the line's exact value and ``unit_price`` is left empty (a log such as
CDNOW gives a line total, and total / quantity is not always a finite decimal). A source
without order ids gets one per line (``L<line number>``): each line is one purchase.
A source without item ids leaves ``item_id`` empty (fine for RFM, not for baskets).
Timestamps at midnight are written as dates.

The destination is written to a new hidden temporary file of unpredictable name and renamed
into place (:func:`hdfs_io.write_file_atomically`): a failed import leaves nothing behind and
nothing planted beside the destination is followed. A destination that is the source
itself, however spelled (``./x``, ``a//x``, a symbolic link to it), is refused before
anything is written.
"""

import csv
import json

from hdfs_io import PathExists, UnsafePathError, get_filesystem, write_file_atomically
from hdfs_io.paths import check_disjoint
from models.inputs import describe_inputs
from models.manifest import Stopwatch, build_manifest
from mr_jobs.records import (
    CANONICAL_COLUMNS,
    format_seconds,
    make_line_parser,
)

__all__ = ["IMPORT_COLUMNS", "import_log"]

IMPORT_COLUMNS = CANONICAL_COLUMNS + ("amount",)
_PROGRESS_EVERY = 1_000_000


def import_log(source, destination, schema, *, overwrite=False, reporter=None):
    """Convert ``source`` (read with ``schema``) into a canonical CSV at ``destination``.

    Parameters
    ----------
    source : str
        A file, local or ``hdfs://``.
    destination : str
        The canonical CSV to write (atomically); its manifest goes to
        ``<destination>.manifest.json``.
    schema : mr_jobs.records.InputSchema
    overwrite : bool
        Replace an existing destination.
    reporter : models.progress.Reporter, optional

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    hdfs_io.PathExists
        When ``destination`` exists and ``overwrite`` is false.
    hdfs_io.UnsafePathError
        When ``destination`` or its manifest is a directory (checked before reading).
    hdfs_io.paths.OverlappingPathsError
        When ``destination`` or its manifest is ``source`` itself, however spelled
        (checked before anything is written, by :func:`hdfs_io.paths.check_disjoint`).
    """
    say = reporter.progress("import") if reporter else (lambda message: None)
    src_fs, src = get_filesystem(source)
    dst_fs, dst = get_filesystem(destination)
    manifest_path = dst + ".manifest.json"
    check_disjoint([source], [destination, destination + ".manifest.json"])
    for path in (dst, manifest_path):
        if not dst_fs.exists(path):
            continue
        if dst_fs.status(path)["type"] == "DIRECTORY":
            raise UnsafePathError(
                "Cannot import to %s: it is a directory; give a file path", dst_fs.uri(path)
            )
        if not overwrite:
            raise PathExists(f"{dst_fs.uri(path)} exists; pass --overwrite to replace it")
    watch = Stopwatch()
    inputs = describe_inputs([source])
    parse = make_line_parser(schema)
    counts = {"read": 0, "rejected": {}}

    def canonical_lines():
        catcher = _LineCatcher()
        writer = csv.writer(catcher, lineterminator="")
        writer.writerow(IMPORT_COLUMNS)
        yield catcher.line
        rejected = counts["rejected"]
        read = 0
        with src_fs.open_read(src) as f:
            for raw in f:
                read += 1
                record = parse(raw.rstrip(b"\r\n"))
                if type(record) is str:
                    rejected[record] = rejected.get(record, 0) + 1
                    continue
                customer, order, seconds, item, quantity, value = record
                timestamp = format_seconds(seconds)
                if timestamp.endswith("T00:00:00"):
                    timestamp = timestamp[:10]
                writer.writerow(
                    (
                        f"L{read:09d}" if order is None else order,
                        customer,
                        timestamp,
                        item or "",
                        _decimal_text(quantity),
                        "",
                        _decimal_text(value),
                    )
                )
                yield catcher.line
                if read % _PROGRESS_EVERY == 0:
                    say(f"{read:,} lines")
        counts["read"] = read

    say(f"reading {src_fs.uri(src)} ({inputs[0]['bytes']:,} bytes)")
    # a hidden temporary file renamed into place: a failed import leaves nothing behind
    write_file_atomically(
        dst_fs,
        dst,
        lambda tmp: dst_fs.write_lines(tmp, canonical_lines()),
        overwrite=overwrite,
    )
    read = counts["read"]
    rejected = counts["rejected"]
    rows = read - sum(rejected.values())
    lines = {
        "read": read,
        "accepted": rows,
        "rejected": read - rows,
        "rejected_by_reason": dict(sorted(rejected.items())),
    }
    manifest = build_manifest(
        "import",
        inputs=inputs,
        parameters={"schema": schema.to_dict(), "overwrite": overwrite},
        runner=None,
        lines=lines,
        rows_written=rows,
        stopwatch=watch,
        details={"destination": dst_fs.uri(dst), "columns": list(IMPORT_COLUMNS)},
    )
    dst_fs.write(manifest_path, json.dumps(manifest, indent=2, sort_keys=True), overwrite=True)
    if reporter:
        reporter.summary(
            "import",
            rows_in=read,
            rows_out=rows,
            rejected=read - rows,
            seconds=watch.seconds,
            by_reason=rejected,
        )
    return manifest


class _LineCatcher:
    """A file-like object that keeps the last string written: one CSV row at a time."""

    line = ""

    def write(self, text):
        self.line = text


def _decimal_text(micros):
    """Exact decimal text of a micro-unit integer (``11770000 -> "11.77"``)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    frac_text = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"
