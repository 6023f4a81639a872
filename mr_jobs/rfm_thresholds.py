"""Counts of RFM values per radix bucket: one pass of an exact radix selection.

Input: one JSON object per line and customer, as the RFM stage publishes them
(:mod:`mr_jobs.rfm`); only ``recency_days`` (int), ``orders`` (int) and ``total_value``
(float) are read (:data:`DIMENSIONS`). Output: JSON lists, one per line::

    ["n", "orders", 23570]                                   rows with a valid value
    ["invalid", "total_value", "missing", 3]                 values that cannot be scored
    ["bucket", "orders", 54, 2147483647, 9, 120, 9223..., 9223...]

A ``bucket`` row is ``[_, dimension, prefix_bits, prefix, bucket, count, min_key,
max_key]``: ``count`` values of the dimension have a key (:func:`value_key`) whose top
``prefix_bits`` bits are ``prefix`` and whose next bits are ``bucket``; ``min_key`` and
``max_key`` are the smallest and largest of those keys, so that the driver
(:mod:`models.rfm_thresholds`) knows when a bucket holds a single value and which common
prefix all its keys share.

Keys
----
Every value maps to an unsigned 64-bit key that sorts like the value and is equal exactly
when the values are equal: an int ``v`` (``-2**63 <= v < 2**63``) to ``v + 2**63``; a
float to its IEEE-754 bits with all bits flipped when negative and the sign bit set when
positive, ``-0.0`` first made ``0.0`` (they are equal, so they get one key). NaN has no key.

Which buckets
-------------
``--prefixes FILE`` (JSON, shipped to the tasks with the job) says, per dimension, the
prefixes still open and how many further bits to bucket each by::

    {"orders": [[prefix, prefix_bits, bits], ...], "total_value": [...]}

A dimension absent from the file (or with an empty list) is only counted (``n``). The
first pass uses ``[[0, 0, 16]]``: every key, bucketed by its top 16 bits.

Invalid values
--------------
:func:`models.rfm_scores.quintile_scores` raises a ValueError naming the column when a
value is missing or NaN. A task cannot tell the driver why it failed, so the job counts
such values instead, per dimension and reason (``missing``: absent, null or NaN;
``not_a_number``: a string, a bool, ...; ``not_integer``: a non-integral number for an
int dimension; ``out_of_range``: an int outside 64 bits or a number beyond float range),
and the driver raises the ValueError. Lines that are not JSON objects are rejected and
counted under ``crm.rejected`` (``blank``, ``undecodable``, ``not_json``,
``not_an_object``); ``crm.lines`` counts read = accepted + rejected.

In-mapper combining keeps one ``[count, min, max]`` per bucket (at most ``2**bits`` per
open prefix) and emits them in ``mapper_final``; a combiner and the reducer merge them.
The shuffle keys are the compact JSON text of ``[kind, dimension, ...]`` (strings: mrjob's
Spark harness uses keys as Python dict keys, so a list key fails there).
Standard library only.
"""

import json
import struct

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, dumps, loads

__all__ = [
    "DIMENSIONS",
    "KEY_BITS",
    "InvalidValue",
    "MRValueHistogram",
    "key_value",
    "value_key",
]

#: The dimensions read, with their kind: ``"int"`` or ``"float"``.
DIMENSIONS = {"recency_days": "int", "orders": "int", "total_value": "float"}

#: Bits of a key.
KEY_BITS = 64

_SIGN = 1 << 63
_MASK = (1 << 64) - 1
_INT_OFFSET = 1 << 63
_pack = struct.Struct(">d").pack
_unpack_bits = struct.Struct(">Q").unpack
_pack_bits = struct.Struct(">Q").pack
_unpack = struct.Struct(">d").unpack
_decode = json.JSONDecoder().decode


class InvalidValue(ValueError):
    """A value that has no key; ``reason`` names why (see the module docstring)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def value_key(value, kind):
    """The order-preserving unsigned 64-bit key of ``value`` (see the module docstring).

    Parameters
    ----------
    value : int or float
    kind : {"int", "float"}

    Returns
    -------
    int
        In ``0 .. 2**64 - 1``.

    Raises
    ------
    InvalidValue
        With ``reason`` ``missing`` (None, NaN), ``not_a_number``, ``not_integer`` or
        ``out_of_range``.
    """
    if value is None:
        raise InvalidValue("missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue("not_a_number")
    if value != value:
        raise InvalidValue("missing")
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidValue("not_integer" if abs(value) != float("inf") else "out_of_range")
            value = int(value)
        if not -_INT_OFFSET <= value < _INT_OFFSET:
            raise InvalidValue("out_of_range")
        return value + _INT_OFFSET
    try:
        value = float(value)
    except OverflowError:
        raise InvalidValue("out_of_range") from None
    if value == 0.0:
        value = 0.0  # -0.0 == 0.0: one key
    (bits,) = _unpack_bits(_pack(value))
    return (~bits & _MASK) if bits & _SIGN else (bits | _SIGN)


def key_value(key, kind):
    """The value of a key made by :func:`value_key` (``-0.0`` comes back as ``0.0``)."""
    if kind == "int":
        return key - _INT_OFFSET
    bits = (key ^ _SIGN) if key & _SIGN else (~key & _MASK)
    return _unpack(_pack_bits(bits))[0]


class MRValueHistogram(CrmJob):
    """RFM rows -> value counts per (dimension, radix bucket), ``n`` and invalid values."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg(
            "--prefixes",
            required=True,
            help="JSON file: per dimension, the open [prefix, prefix_bits, bits] to bucket by",
        )

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_prefixes,
                mapper=self.mapper_count_values,
                mapper_final=self.mapper_final_emit_counts,
                combiner=self.combiner_merge_counts,
                reducer=self.reducer_merge_counts,
            )
        ]

    def mapper_init_prefixes(self):
        with open(self.options.prefixes, encoding="utf-8") as f:
            wanted = json.load(f)
        # per dimension: (kind, [(prefix, shift of the prefix, shift of the bucket, mask)])
        self.plan = []
        for dim, kind in DIMENSIONS.items():
            opened = []
            for prefix, prefix_bits, bits in wanted.get(dim) or ():
                shift = KEY_BITS - prefix_bits - bits
                opened.append((prefix, prefix_bits, KEY_BITS - prefix_bits, shift, (1 << bits) - 1))
            self.plan.append((dim, kind, opened))
        self.counts = {}
        self.n = dict.fromkeys(DIMENSIONS, 0)
        self.invalid = {}
        self.lines_read = 0
        self.lines_rejected = {}
        self.pause_gc()

    def mapper_count_values(self, _, raw):
        self.lines_read += 1
        if not raw.strip():
            self.reject_line("blank")
            return
        try:
            row = _decode(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self.reject_line("undecodable")
            return
        except ValueError:
            self.reject_line("not_json")
            return
        if not isinstance(row, dict):
            self.reject_line("not_an_object")
            return
        counts = self.counts
        for dim, kind, opened in self.plan:
            try:
                key = value_key(row.get(dim), kind)
            except InvalidValue as e:
                where = (dim, e.reason)
                self.invalid[where] = self.invalid.get(where, 0) + 1
                continue
            self.n[dim] += 1
            for prefix, prefix_bits, prefix_shift, shift, mask in opened:
                if prefix_bits and key >> prefix_shift != prefix:
                    continue
                where = (dim, prefix_bits, prefix, (key >> shift) & mask)
                found = counts.get(where)
                if found is None:
                    counts[where] = [1, key, key]
                else:
                    found[0] += 1
                    if key < found[1]:
                        found[1] = key
                    elif key > found[2]:
                        found[2] = key
        return
        yield

    def mapper_final_emit_counts(self):
        self.resume_gc()
        self.report_line_counters()
        for dim, count in self.n.items():
            if count:
                yield dumps(["n", dim]), [count]
        for (dim, reason), count in self.invalid.items():
            yield dumps(["invalid", dim, reason]), [count]
        for (dim, prefix_bits, prefix, bucket), merged in self.counts.items():
            yield dumps(["bucket", dim, prefix_bits, prefix, bucket]), merged
        self.counts = {}

    def combiner_merge_counts(self, key, values):
        yield key, _merge(values)

    def reducer_merge_counts(self, key, values):
        yield None, loads(key) + _merge(values)


def _merge(values):
    """Sum the counts of ``[count]`` or ``[count, min, max]`` values; min and max too."""
    merged = None
    for value in values:
        if merged is None:
            merged = list(value)
        else:
            merged[0] += value[0]
            if len(value) == 3:
                merged[1] = min(merged[1], value[1])
                merged[2] = max(merged[2], value[2])
    return merged


if __name__ == "__main__":
    MRValueHistogram.run()
