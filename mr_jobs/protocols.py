"""JSON protocols for the jobs: the standard library's JSON, compact, and fast on tiny records.

mrjob's ``JSONProtocol`` silently switches to ujson or rapidjson when one is installed, so
two nodes may write different text for the same float. These protocols always use the
standard library (C-accelerated), reuse one encoder and call the decoder's scanner
directly, which matters when a job shuffles millions of small records. Still JSON: never
pickle.
"""

import json

__all__ = ["CompactJSONProtocol", "CompactJSONValueProtocol", "dumps", "loads"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_scan = json.JSONDecoder().scan_once


def dumps(value):
    """Compact JSON text of ``value`` (no spaces, UTF-8 characters kept)."""
    return _encode(value)


def loads(text):
    """Decode one JSON document from ``text`` (str), rejecting trailing characters.

    Raises
    ------
    ValueError
        When ``text`` is not exactly one JSON document.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError(f"not JSON: {text[:80]!r}") from None
    if end != len(text):
        raise ValueError(f"extra data after JSON at {end}: {text[:80]!r}")
    return value


class CompactJSONProtocol:
    """``key<TAB>value``, both compact JSON (the jobs' internal protocol).

    Hadoop Streaming hands the reducers of a ``SORT_VALUES`` job ``key<TAB>value<TAB>``
    (the whole line is its key, so it appends the empty value's separator), as mrjob's own
    protocols also tolerate; compact JSON never ends in a raw tab, so one is dropped.
    """

    def read(self, line):
        key, _, value = line.decode("utf-8").partition("\t")
        if value.endswith("\t"):
            value = value[:-1]
        return loads(key), loads(value)

    def write(self, key, value):
        return f"{_encode(key)}\t{_encode(value)}".encode()


class CompactJSONValueProtocol:
    """One compact JSON value per line, no key (the jobs' output protocol)."""

    def read(self, line):
        return None, loads(line.decode("utf-8"))

    def write(self, key, value):
        return _encode(value).encode()
