"""Order-line parsing shared by every job: standard library only.

Jobs run on cluster nodes that have nothing but Python and mrjob, so this module imports
nothing outside the standard library. It turns one raw input line (bytes) into either a
parsed record or the name of the reason it was rejected; the jobs count both in mrjob
counters so that every run accounts for its input::

    lines read = lines accepted + sum(lines rejected by reason)

The canonical input
-------------------
CSV with a header line, UTF-8, comma-separated, fields optionally quoted::

    order_id,customer_id,timestamp,item_id,quantity,unit_price[,amount]

============  ========================================================================
column        meaning
============  ========================================================================
order_id      text; one order (basket) is all lines sharing it. Optional column: when
              absent every line is its own purchase.
customer_id   text, required, kept exactly as written (leading zeros stay).
timestamp     ISO 8601, exactly this grammar: ``YYYY-MM-DD`` or
              ``YYYY-MM-DD[T ]HH:MM[:SS[.f]]`` with 1 to 6 fraction digits, then
              optionally ``Z`` or ``+HH:MM`` / ``-HH:MM``; times with an offset are
              converted to UTC, naive times are taken as they are. Fractions of a second
              are dropped. Nothing else is read (no ``T10``, ``T1030``, ``+0200``, 7-digit
              fractions, week dates), on every Python version.
item_id       text; optional (RFM does not need it, baskets do).
quantity      decimal > 0. Optional when ``amount`` is given (then 1).
unit_price    decimal >= 0. Optional when ``amount`` is given.
amount        optional decimal >= 0: the line's value. When the column exists and the
              field is not empty it replaces quantity x unit_price.
============  ========================================================================

Decimals follow one grammar: an optional sign, ASCII digits with an optional ``.``
fraction, an optional exponent (``e``/``E``, sign, at most 6 digits): ``12``, ``-3.5``,
``.5``, ``7.``, ``1e3``. No ``_`` separators, no other digits, no ``nan``/``inf``, at
most 40 characters, and a magnitude below 10**15 (:data:`MAX_DECIMAL`); anything else is
rejected as ``bad_quantity``, ``bad_price`` or ``bad_amount``.

Limits
------
Every resource a line can claim is bounded (see :data:`LIMITS`): a line of more than
65,536 bytes is rejected (``line_too_long``) before it is decoded; customer, order and
item ids of more than 256 characters are rejected (``id_too_long``); a line holding a
control character (NUL, a bare carriage return, ...; a tab is not one) is rejected
(``control_character``); a timestamp outside the schema's date window (default
1900-01-01 .. 2100-12-31, see :class:`InputSchema`) is rejected (``date_out_of_range``).
A UTF-8 byte-order mark at the start of a line and the carriage returns and newlines at its end
(CRLF files) are removed; ids, numbers and timestamps lose surrounding spaces and tabs only,
every other character is kept as written.

Money and quantities are parsed exactly into integer millionths (micros) and summed as
integers, so totals do not depend on how the input was split between mappers. A value
with more than six decimals is rounded half-to-even to six; quantity x unit_price is
computed exactly and rounded the same way. Each job converts back to a float only when
it writes its output.

Baskets
-------
Basket jobs (co-occurrence, association rules) need only ``order_id`` (the basket) and
``item_id``; :func:`make_basket_parser` reads them from either a full order-line schema or
a schema made with ``purpose="baskets"`` such as the ``baskets`` preset
(``basket_id,item``, one line per item in a basket).

Rejections
----------
See :data:`REJECT_REASONS`. Returns and cancellations (negative quantity or amount) are
not purchases: they are rejected under ``return`` and counted, so a customer's value is
their gross spend. Lines dated after an explicit ``--as-of`` date are counted under
``after_as_of``.
"""

import csv
import datetime
import re

__all__ = [
    "CANONICAL_COLUMNS",
    "ROLES",
    "REJECT_REASONS",
    "PRESETS",
    "PURPOSES",
    "InputSchema",
    "SchemaError",
    "make_line_parser",
    "make_basket_parser",
    "parse_decimal_micros",
    "parse_iso_timestamp",
    "parse_date_window",
    "DEFAULT_DATE_WINDOW",
    "DATE_WINDOW_BOUNDS",
    "LIMITS",
    "MAX_DECIMAL",
    "parse_as_of",
    "format_seconds",
    "format_micros",
    "COUNTER_GROUP_LINES",
    "COUNTER_GROUP_REJECTED",
    "COUNTER_GROUP_OUTPUT",
]

CANONICAL_COLUMNS = ("order_id", "customer_id", "timestamp", "item_id", "quantity", "unit_price")

#: Every role a source column can play.
ROLES = ("order_id", "customer_id", "timestamp", "item_id", "quantity", "unit_price", "amount")

#: Reasons a line is rejected, with what each one means.
REJECT_REASONS = {
    "header": "a header line (the first line of a file, or a repeated one)",
    "blank": "an empty or whitespace-only line",
    "line_too_long": "a line of more than 65,536 bytes",
    "undecodable": "bytes that are not valid UTF-8, or U+FFFD (a decoder's replacement for them)",
    "control_character": (
        "a control character in the line (NUL, a carriage return other than a CRLF ending, "
        "other C0/C1 controls, DEL, U+2028/U+2029; a tab is not one)"
    ),
    "column_count": "a different number of fields than the schema's columns",
    "missing_customer": "an empty customer id",
    "missing_order": "an empty order id although the order column exists",
    "missing_item": "an empty item id where the job needs items",
    "id_too_long": "a customer, order or item id of more than 256 characters",
    "bad_timestamp": "a timestamp outside the grammar, or not a real date or time",
    "date_out_of_range": "a timestamp outside the date window (default 1900-01-01..2100-12-31)",
    "bad_quantity": "a quantity that is empty, outside the decimal grammar or >= 10**15",
    "zero_quantity": "a quantity of zero",
    "bad_price": "a unit price that is empty, outside the decimal grammar, >= 10**15, or negative",
    "bad_amount": "an amount outside the decimal grammar or >= 10**15",
    "return": "a negative quantity or amount (returns and cancellations are not purchases)",
    "after_as_of": "dated after the --as-of date given for the run",
}

COUNTER_GROUP_LINES = "crm.lines"
COUNTER_GROUP_REJECTED = "crm.rejected"
#: Counter group of what a job's tasks wrote: ``rows`` of its final output, and others a
#: job documents (see :meth:`mr_jobs.base.CrmJob.count_output`).
COUNTER_GROUP_OUTPUT = "crm.output"

#: The bounds every line is held to (see the module docstring, "Limits").
LIMITS = {
    "line_bytes": 65_536,
    "id_chars": 256,
    "number_chars": 40,
    "exponent_digits": 6,
}

#: Decimals (quantities, prices, amounts) must be smaller than this in magnitude.
MAX_DECIMAL = 10**15

#: The default window of plausible dates, inclusive (``InputSchema(date_window=...)``).
DEFAULT_DATE_WINDOW = ("1900-01-01", "2100-12-31")

#: How far a date window may reach: the span every stage's date arithmetic handles
#: (pandas' nanosecond timestamps end in 1677 and 2262).
DATE_WINDOW_BOUNDS = ("1700-01-01", "2250-12-31")

_MICRO = 1_000_000
_SECONDS_PER_DAY = 86_400
_CACHE_SIZE = 100_000
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_TIMESTAMP_FORMATS = ("iso", "epoch")
_DELIMITERS = {",": ",", "comma": ",", "\t": "\t", "tab": "\t", ";": ";", "|": "|"}
_WHITESPACE = "whitespace"

#: What a schema is read for: ``orders`` (customer, timestamp and a value are required) or
#: ``baskets`` (basket id and item id are required; everything else is optional).
PURPOSES = ("orders", "baskets")


class SchemaError(ValueError):
    """An input schema (columns, role mapping, delimiter, timestamp format) is invalid."""


def _has_value(roles):
    return "amount" in roles or ("quantity" in roles and "unit_price" in roles)


class InputSchema:
    """How to read one input dialect: its columns, which role each plays, how to split.

    Parameters
    ----------
    columns : sequence of str
        The source file's column names, in order.
    mapping : dict, optional
        ``{role: source column name}``. Roles not given map to a column of the same name,
        if there is one.
    delimiter : str
        ``","`` (default), ``"\\t"``, ``";"``, ``"|"`` or ``"whitespace"`` (runs of blanks,
        leading blanks ignored, as in the CDNOW log).
    timestamp_format : str
        ``"iso"`` (default), ``"epoch"`` (seconds since 1970-01-01 UTC) or a
        :func:`datetime.datetime.strptime` pattern such as ``"%Y%m%d"``.
    purpose : {"orders", "baskets"}
        Which roles are required. ``"orders"`` (default): ``customer_id``, ``timestamp``
        and either ``amount`` or ``quantity`` and ``unit_price``. ``"baskets"``:
        ``order_id`` (the basket) and ``item_id``; other roles are optional.
    date_window : str or (str, str), optional
        The plausible dates, inclusive: ``"FIRST..LAST"`` or ``(FIRST, LAST)``, ISO dates
        within :data:`DATE_WINDOW_BOUNDS`; default :data:`DEFAULT_DATE_WINDOW`. Lines
        dated outside it (after conversion to UTC) are rejected as ``date_out_of_range``,
        so one line dated 9999 cannot stretch a series over eight thousand years.

    Raises
    ------
    SchemaError
        When a required role has no column, a mapping names a column that does not exist,
        or the delimiter, timestamp format, purpose or date window is unknown or invalid.
    """

    def __init__(
        self,
        columns,
        mapping=None,
        delimiter=",",
        timestamp_format="iso",
        purpose="orders",
        date_window=None,
    ):
        columns = tuple(str(c).strip() for c in columns)
        if len(set(columns)) != len(columns) or not all(columns):
            raise SchemaError(f"columns={list(columns)!r} must be distinct and non-empty")
        mapping = dict(mapping or {})
        for role in mapping:
            if role not in ROLES:
                raise SchemaError(f"unknown role {role!r} in the column mapping; roles: {ROLES}")
        roles = {}
        for role in ROLES:
            name = mapping.get(role, role)
            if name in columns:
                roles[role] = columns.index(name)
            elif role in mapping:
                raise SchemaError(
                    f"the mapping {role}={name!r} names a column that is not in "
                    f"columns={list(columns)!r}"
                )
        if purpose not in PURPOSES:
            raise SchemaError(f"purpose={purpose!r} is not one of {PURPOSES}")
        required = ("customer_id", "timestamp") if purpose == "orders" else ("order_id", "item_id")
        for role in required:
            if role not in roles:
                raise SchemaError(
                    f"no column for the required role {role!r} ({purpose}) in {list(columns)!r}"
                )
        if purpose == "orders" and not _has_value(roles):
            raise SchemaError(
                f"columns={list(columns)!r} need either an 'amount' column or both "
                "'quantity' and 'unit_price'"
            )
        if delimiter != _WHITESPACE and delimiter not in _DELIMITERS:
            raise SchemaError(
                f"delimiter={delimiter!r} is not one of {sorted(_DELIMITERS) + [_WHITESPACE]}"
            )
        if timestamp_format not in _TIMESTAMP_FORMATS and "%" not in timestamp_format:
            raise SchemaError(
                f"timestamp_format={timestamp_format!r} should be 'iso', 'epoch' or a "
                "strptime pattern such as '%Y%m%d'"
            )
        self.columns = columns
        self.roles = roles
        self.delimiter = delimiter if delimiter == _WHITESPACE else _DELIMITERS[delimiter]
        self.timestamp_format = timestamp_format
        self.purpose = purpose
        first, last = parse_date_window(date_window)
        self.date_window = (
            datetime.date.fromordinal(first).isoformat(),
            datetime.date.fromordinal(last).isoformat(),
        )

    @property
    def is_order_lines(self):
        """Whether the columns hold full order lines (customer, timestamp and a value),
        whatever the purpose the schema was made for."""
        roles = self.roles
        return "customer_id" in roles and "timestamp" in roles and _has_value(roles)

    @property
    def mapping(self):
        """``{role: column name}`` for every role that has a column."""
        return {role: self.columns[i] for role, i in self.roles.items()}

    def has(self, role):
        """Whether some column plays ``role``."""
        return role in self.roles

    def to_dict(self):
        """A JSON-able description, the inverse of :meth:`from_dict`."""
        return {
            "columns": list(self.columns),
            "mapping": self.mapping,
            "delimiter": self.delimiter,
            "timestamp_format": self.timestamp_format,
            "purpose": self.purpose,
            "date_window": list(self.date_window),
        }

    @classmethod
    def from_dict(cls, d):
        """Build a schema from :meth:`to_dict`'s output."""
        return cls(
            d["columns"],
            d.get("mapping"),
            d.get("delimiter", ","),
            d["timestamp_format"],
            d.get("purpose", "orders"),
            d.get("date_window"),
        )

    def __eq__(self, other):
        return isinstance(other, InputSchema) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"InputSchema({self.to_dict()!r})"


def parse_decimal_micros(text):
    """Exact value of a decimal string in integer millionths.

    Parameters
    ----------
    text : str
        ``"12"``, ``"-3.5"``, ``"0.125"``, ``"1e3"``; surrounding spaces and tabs are
        ignored. The grammar is the module's (see its docstring): ASCII digits, an
        optional sign, fraction and exponent, at most 40 characters.

    Returns
    -------
    int or None
        The value x 10**6, rounded half-to-even beyond six decimals; ``None`` when the
        text is empty, outside the grammar, or its magnitude is :data:`MAX_DECIMAL` or
        more. Computed with integers only, so no value (``1e999999999``, 5,000 digits)
        can overflow or take long.

    Examples
    --------
    >>> parse_decimal_micros("11.77")
    11770000
    >>> parse_decimal_micros("n/a") is None
    True
    >>> parse_decimal_micros("1e309") is None
    True
    """
    if len(text) <= 15 and text.isdigit() and text.isascii():
        return int(text) * _MICRO
    whole, dot, frac = text.partition(".")
    if dot and len(frac) <= 6 and (frac.isdigit() or not frac) and frac.isascii():
        sign = 1
        if whole[:1] in ("-", "+"):
            sign = -1 if whole[0] == "-" else 1
            whole = whole[1:]
        if len(whole) <= 15 and ((whole.isdigit() and whole.isascii()) or (not whole and frac)):
            return sign * (int(whole or "0") * _MICRO + int(frac.ljust(6, "0")))
    return _parse_decimal_slow(text)


_DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,6}))?")
_MAX_MICROS = MAX_DECIMAL * _MICRO


def _parse_decimal_slow(text):
    text = text.strip(" \t")
    if len(text) > LIMITS["number_chars"]:
        return None
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        return None
    sign, whole, frac, exponent = match.groups()
    frac = frac or ""
    if not whole and not frac:
        return None
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0
    # value x 10**6 = int(digits) x 10**shift
    shift = (int(exponent) if exponent else 0) - len(frac) + 6
    if len(digits) + shift > 22:  # >= 10**21 micros = 10**15: out of range
        return None
    if shift >= 0:
        micros = int(digits) * 10**shift
    elif -shift > len(digits):  # below half a micro: rounds to 0
        micros = 0
    else:
        micros, rest = divmod(int(digits), 10**-shift)
        half = 10**-shift
        if rest * 2 > half or (rest * 2 == half and micros & 1):
            micros += 1
    if micros >= _MAX_MICROS:
        return None
    return -micros if sign == "-" else micros


def _mul_micros(a, b):
    """a x b for two micro-unit integers, in micro units, rounded half-to-even."""
    q, r = divmod(a * b, _MICRO)
    if r * 2 > _MICRO or (r * 2 == _MICRO and q & 1):
        q += 1
    return q


def format_micros(micros):
    """A micro-unit integer as the float nearest to its exact decimal value.

    Integers become ints (``3000000 -> 3``), so quantities print without ``.0``.
    """
    if micros % _MICRO == 0:
        return micros // _MICRO
    return micros / _MICRO  # int / int is correctly rounded


def format_seconds(seconds):
    """Seconds since 0001-01-01T00:00 (as used in records) as ``YYYY-MM-DDTHH:MM:SS``."""
    days, secs = divmod(seconds, _SECONDS_PER_DAY)
    text = _DAY_TEXT.get(days)
    if text is None:
        text = datetime.date.fromordinal(days).isoformat()
        if len(_DAY_TEXT) < _CACHE_SIZE:
            _DAY_TEXT[days] = text
    if not secs:
        return text + "T00:00:00"
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{text}T{hours:02d}:{minutes:02d}:{secs:02d}"


_DAY_TEXT = {}


def parse_as_of(text):
    """An ``--as-of`` date (``YYYY-MM-DD``) as a proleptic Gregorian day ordinal.

    Raises
    ------
    ValueError
        Naming the value, when it is not a real ISO date.
    """
    try:
        return datetime.date.fromisoformat(text.strip()[:10]).toordinal()
    except (ValueError, AttributeError):
        raise ValueError(f"as_of={text!r} is not an ISO date (YYYY-MM-DD)") from None


def parse_date_window(window):
    """A date window as a pair of inclusive day ordinals.

    Parameters
    ----------
    window : str or (str, str) or None
        ``"FIRST..LAST"`` or ``(FIRST, LAST)``, ISO dates (``YYYY-MM-DD``) with FIRST <=
        LAST, both within :data:`DATE_WINDOW_BOUNDS`; ``None`` for
        :data:`DEFAULT_DATE_WINDOW`.

    Returns
    -------
    (int, int)

    Raises
    ------
    SchemaError
        Naming the value, when it is not such a window.

    Examples
    --------
    >>> first, last = parse_date_window("2000-01-01..2000-12-31")
    >>> last - first
    365
    """
    if window is None:
        window = DEFAULT_DATE_WINDOW
    parts = window.split("..") if isinstance(window, str) else list(window)
    bounds = [_iso_date_ordinal(b, {}) for b in DATE_WINDOW_BOUNDS]
    if len(parts) == 2 and all(isinstance(p, str) for p in parts):
        first, last = (_iso_date_ordinal(p.strip(), {}) for p in parts)
        if first is not None and last is not None and bounds[0] <= first <= last <= bounds[1]:
            return first, last
    raise SchemaError(
        f"date_window={window!r} should be FIRST..LAST, ISO dates (YYYY-MM-DD) with "
        f"{DATE_WINDOW_BOUNDS[0]} <= FIRST <= LAST <= {DATE_WINDOW_BOUNDS[1]}"
    )


def _iso_date_ordinal(text, cache):
    ordinal = cache.get(text)
    if ordinal is None:
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            return None
        y, m, d = text[0:4], text[5:7], text[8:10]
        if not (y.isdigit() and m.isdigit() and d.isdigit() and text.isascii()):
            return None
        try:
            ordinal = datetime.date(int(y), int(m), int(d)).toordinal()
        except ValueError:
            return None
        if len(cache) > 200_000:
            cache.clear()
        cache[text] = ordinal
    return ordinal


def _make_timestamp_parser(fmt):
    """A function ``text -> seconds since 0001-01-01T00:00`` or ``None`` if invalid."""
    date_cache = {}

    if fmt == "iso":

        def parse_iso(text):
            if len(text) == 10:
                ordinal = _iso_date_ordinal(text, date_cache)
                return None if ordinal is None else ordinal * _SECONDS_PER_DAY
            ordinal = _iso_date_ordinal(text[:10], date_cache)
            if ordinal is None:
                return None
            if (
                len(text) == 19
                and text[10] in "T "
                and text[13] == ":"
                and text[16] == ":"
                and text[11:13].isdigit()
                and text[14:16].isdigit()
                and text[17:19].isdigit()
                and text.isascii()
            ):
                h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
                if h < 24 and mi < 60 and s < 60:
                    return ordinal * _SECONDS_PER_DAY + h * 3600 + mi * 60 + s
                return None
            return parse_iso_timestamp(text)

        return parse_iso

    if fmt == "epoch":

        def parse_epoch(text):
            micros = parse_decimal_micros(text)
            if micros is None:
                return None
            return micros // _MICRO + _EPOCH_ORDINAL * _SECONDS_PER_DAY

        return parse_epoch

    def parse_pattern(text):
        try:
            return _datetime_seconds(datetime.datetime.strptime(text, fmt))
        except ValueError:
            return None

    return parse_pattern


def _datetime_seconds(dt):
    """Seconds of a datetime, in UTC when it has an offset; integers only, so an offset
    that would carry a date past year 1 or 9999 cannot overflow."""
    seconds = dt.toordinal() * _SECONDS_PER_DAY + dt.hour * 3600 + dt.minute * 60 + dt.second
    offset = dt.utcoffset()
    if offset is not None:
        seconds -= offset.days * _SECONDS_PER_DAY + offset.seconds
    return seconds


_ISO_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,6})?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?)?"
)


def parse_iso_timestamp(text):
    """Seconds since 0001-01-01T00:00 of an ISO 8601 timestamp in the module's grammar.

    Parameters
    ----------
    text : str
        ``YYYY-MM-DD`` or ``YYYY-MM-DD[T ]HH:MM[:SS[.f]]`` (1 to 6 fraction digits,
        dropped), optionally ending in ``Z`` or ``+HH:MM``/``-HH:MM``; surrounding spaces
        and tabs are ignored.

    Returns
    -------
    int or None
        UTC seconds when an offset is given (naive times as they are); ``None`` outside
        the grammar or for a date or time that does not exist. The grammar is checked by
        a regular expression and the arithmetic is on integers, so the result does not
        depend on the Python version's ``fromisoformat``.

    Examples
    --------
    >>> parse_iso_timestamp("0001-01-01T00:30:00+01:00")
    -1800
    >>> parse_iso_timestamp("2023-01-01T10") is None
    True
    """
    match = _ISO_RE.fullmatch(text.strip(" \t"))
    if match is None:
        return None
    y, mo, d, h, mi, sec, _z, sign, oh, om = match.groups()
    try:
        ordinal = datetime.date(int(y), int(mo), int(d)).toordinal()
    except ValueError:
        return None
    seconds = ordinal * _SECONDS_PER_DAY
    if h is not None:
        h, mi, sec = int(h), int(mi), int(sec or 0)
        if h > 23 or mi > 59 or sec > 59:
            return None
        seconds += h * 3600 + mi * 60 + sec
    if sign is not None:
        oh, om = int(oh), int(om)
        if oh > 23 or om > 59:
            return None
        offset = oh * 3600 + om * 60
        seconds += -offset if sign == "+" else offset
    return seconds


def make_line_parser(schema, require_item=False, until_ordinal=None):
    """Build the function that parses one raw line under ``schema``.

    Parameters
    ----------
    schema : InputSchema
    require_item : bool
        Reject lines with an empty item id (``missing_item``), for jobs that need items.
    until_ordinal : int, optional
        Day ordinal of an explicit as-of date: later lines are rejected (``after_as_of``).

    Returns
    -------
    callable
        ``parse(raw: bytes) -> tuple | str``. A tuple is an accepted record
        ``(customer_id, order_id or None, seconds, item_id or None, quantity_micros,
        value_micros)`` where ``seconds`` counts from 0001-01-01T00:00; a str is the
        rejection reason, a key of :data:`REJECT_REASONS`.

    Notes
    -----
    The common path (no quotes, plain numbers, cached dates) does no regular-expression
    work and allocates one tuple per line; the checks that only matter for rejected lines
    (is it a header?) run only after a line has failed.

    Raises
    ------
    SchemaError
        When ``schema`` does not hold full order lines (e.g. the ``baskets`` preset).
    """
    if not schema.is_order_lines:
        raise SchemaError(
            f"columns={list(schema.columns)!r} are not order lines (customer_id, timestamp "
            "and amount or quantity and unit_price); only basket jobs read them"
        )
    roles = schema.roles
    n_columns = len(schema.columns)
    split = _make_splitter(schema.delimiter)
    i_customer = roles["customer_id"]
    i_timestamp = roles["timestamp"]
    i_order = roles.get("order_id")
    i_item = roles.get("item_id")
    i_quantity = roles.get("quantity")
    i_price = roles.get("unit_price")
    i_amount = roles.get("amount")
    header = tuple(c.lower() for c in schema.columns)
    parse_timestamp = _make_timestamp_parser(schema.timestamp_format)
    first_day, last_day = parse_date_window(schema.date_window)
    earliest = first_day * _SECONDS_PER_DAY
    latest = (last_day + 1) * _SECONDS_PER_DAY  # exclusive
    until = None if until_ordinal is None else (until_ordinal + 1) * _SECONDS_PER_DAY
    max_id = LIMITS["id_chars"]
    blanks = _BLANKS
    parse_decimal = parse_decimal_micros
    # Quantities and prices repeat a lot: parsed texts are memoised (bounded).
    quantity_cache = {}
    money_cache = {}
    timestamp_cache = {}

    def is_header(fields):
        names = tuple(f.strip(blanks).lower() for f in fields)
        if names == header:
            return True
        return (
            len(names) == n_columns
            and names[i_customer] == header[i_customer]
            and names[i_timestamp] == header[i_timestamp]
        )

    def reject(fields, reason):
        return "header" if is_header(fields) else reason

    def parse(raw):
        fields = split(raw)
        if type(fields) is str:
            return fields
        if len(fields) != n_columns:
            if not fields or (len(fields) == 1 and not fields[0].strip(blanks)):
                return "blank"
            return reject(fields, "column_count")
        customer = fields[i_customer].strip(blanks)
        if not customer:
            return reject(fields, "missing_customer")
        if len(customer) > max_id:
            return "id_too_long"
        text = fields[i_timestamp]
        seconds = timestamp_cache.get(text)
        if seconds is None:
            if len(text) > _MAX_TIMESTAMP_CHARS:
                return reject(fields, "bad_timestamp")
            seconds = parse_timestamp(text.strip(blanks))
            if seconds is None:
                return reject(fields, "bad_timestamp")
            if len(timestamp_cache) < _CACHE_SIZE:
                timestamp_cache[text] = seconds
        if not earliest <= seconds < latest:
            return "date_out_of_range"
        if i_order is None:
            order = None
        else:
            order = fields[i_order].strip(blanks)
            if not order:
                return "missing_order"
            if len(order) > max_id:
                return "id_too_long"
        if i_item is None:
            item = None
        else:
            item = fields[i_item].strip(blanks) or None
            if item is not None and len(item) > max_id:
                return "id_too_long"
        if item is None and require_item:
            return "missing_item"

        if i_quantity is None:
            quantity = _MICRO
        else:
            text = fields[i_quantity]
            quantity = quantity_cache.get(text)
            if quantity is None:
                quantity = parse_decimal(text)
                if quantity is None:
                    return reject(fields, "bad_quantity")
                if len(quantity_cache) < _CACHE_SIZE:
                    quantity_cache[text] = quantity
            if quantity <= 0:
                return "zero_quantity" if quantity == 0 else "return"

        value = None
        if i_amount is not None:
            text = fields[i_amount]
            value = money_cache.get(text)
            if value is None and text and not text.isspace() and text.strip(blanks):
                value = parse_decimal(text)
                if value is None:
                    return reject(fields, "bad_amount")
                if len(money_cache) < _CACHE_SIZE:
                    money_cache[text] = value
            if value is not None and value < 0:
                return "return"
        if value is None:
            if i_price is None:
                return "bad_amount"
            text = fields[i_price]
            price = money_cache.get(text)
            if price is None:
                price = parse_decimal(text)
                if price is not None and len(money_cache) < _CACHE_SIZE:
                    money_cache[text] = price
            if price is None or price < 0:
                return reject(fields, "bad_price")
            value = quantity * price // _MICRO if quantity % _MICRO == 0 else None
            if value is None:
                value = _mul_micros(quantity, price)

        if until is not None and seconds >= until:
            return "after_as_of"
        return (customer, order, seconds, item, quantity, value)

    return parse


#: Characters stripped around ids, numbers and timestamps: spaces and tabs only.
_BLANKS = " \t"
_MAX_TIMESTAMP_CHARS = 64
#: C0 controls but tab, DEL, C1 controls, and the two Unicode line separators (which
#: ``str.splitlines`` and JavaScript treat as line ends).
_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_BLANK_RE = re.compile("[^ \t]+")


def _make_splitter(delimiter):
    """A function ``raw bytes -> list of fields | rejection reason``.

    It applies the checks every line goes through before its fields mean anything: the
    length limit, UTF-8, control characters; it removes a leading byte-order mark and a
    trailing carriage return (CRLF), then splits on the delimiter (CSV quoting) or on
    runs of spaces and tabs (``whitespace``).
    """
    max_bytes = LIMITS["line_bytes"]
    control = _CONTROL_RE.search
    whitespace = delimiter == _WHITESPACE

    def split(raw):
        if len(raw) > max_bytes:
            return "line_too_long"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "undecodable"
        if "\ufffd" in line:
            # what a decoder puts in place of bytes it could not decode: Spark's text
            # input (Hadoop Text -> Java String) hands such lines over already replaced
            return "undecodable"
        if not line.isprintable():  # a tab, a BOM, a no-break space, a control: look closer
            line = line.rstrip("\r\n")  # as mrjob strips them: a CRLF file's lines
            if line.startswith("\ufeff"):
                line = line[1:]
            if control(line):
                return "control_character"
        if whitespace:
            # str.split() would also split on NBSP and other Unicode spaces
            return line.split() if line.isascii() else _NOT_BLANK_RE.findall(line) or [""]
        if '"' not in line:
            return line.split(delimiter)
        try:
            return next(csv.reader([line], delimiter=delimiter))
        except csv.Error:  # not expected once controls are out; counted, never raised
            return "column_count"

    return split


def make_basket_parser(schema, until_ordinal=None):
    """Build the function that reads one raw line as an item in a basket.

    Parameters
    ----------
    schema : InputSchema
        Either full order lines (any purpose; see :attr:`InputSchema.is_order_lines`) or a
        schema made with ``purpose="baskets"``. It must have an ``item_id`` column.
    until_ordinal : int, optional
        Day ordinal of an explicit as-of date: later order lines are rejected
        (``after_as_of``). Basket-only lines have no date and are all kept.

    Returns
    -------
    callable
        ``parse(raw: bytes) -> tuple | str``. A tuple is an accepted line
        ``(basket_id or None, item_id, customer_id or None)``; a str is the rejection
        reason, a key of :data:`REJECT_REASONS`.

    Raises
    ------
    SchemaError
        When the schema has no ``item_id`` column.

    Notes
    -----
    The basket is the order id, kept exactly as written after stripping surrounding
    blanks; so is the item id (quoted CSV fields may hold the delimiter; any Unicode).

    Full order lines go through :func:`make_line_parser` with ``require_item=True``, so
    every check of the order-line jobs applies and returns (negative quantities or
    amounts) are rejected as ``return``. A log with no order column has no baskets: each
    line is a basket of its own, returned with ``basket_id`` ``None`` (it holds one item,
    so it counts as a basket and an item but never makes a pair).

    Basket-only schemas check what they have: an empty basket id is ``missing_order``, an
    empty item ``missing_item``; a ``quantity`` column, if any, must hold a number > 0
    (``bad_quantity``, ``zero_quantity``, ``return``), but how many of an item a basket
    holds never matters to a basket job. A line whose basket and item fields equal the
    column names (any case) is a ``header``.

    Examples
    --------
    >>> parse = make_basket_parser(PRESETS["baskets"])
    >>> parse(b'0,"bread, cake"')
    ('0', 'bread, cake', None)
    >>> parse(b"basket_id,item")
    'header'
    """
    if not schema.has("item_id"):
        raise SchemaError(
            f"columns={list(schema.columns)!r} have no item_id column: baskets need items"
        )
    if schema.is_order_lines:
        parse_line = make_line_parser(schema, require_item=True, until_ordinal=until_ordinal)

        def parse_order_line(raw):
            record = parse_line(raw)
            if type(record) is str:
                return record
            return (record[1], record[3], record[0])

        return parse_order_line
    return _make_basket_only_parser(schema)


def _make_basket_only_parser(schema):
    roles = schema.roles
    n_columns = len(schema.columns)
    split = _make_splitter(schema.delimiter)
    i_order = roles["order_id"]
    i_item = roles["item_id"]
    i_customer = roles.get("customer_id")
    i_quantity = roles.get("quantity")
    header = tuple(c.lower() for c in schema.columns)
    h_order = header[i_order]
    h_item = header[i_item]
    max_id = LIMITS["id_chars"]
    quantity_cache = {}

    def parse(raw):
        fields = split(raw)
        if type(fields) is str:
            return fields
        if len(fields) != n_columns:
            if not fields or (len(fields) == 1 and not fields[0].strip(_BLANKS)):
                return "blank"
            if tuple(f.strip(_BLANKS).lower() for f in fields) == header:
                return "header"
            return "column_count"
        order = fields[i_order].strip(_BLANKS)
        item = fields[i_item].strip(_BLANKS)
        if order.lower() == h_order and item.lower() == h_item:
            return "header"
        if not order:
            return "missing_order"
        if not item:
            return "missing_item"
        customer = None if i_customer is None else (fields[i_customer].strip(_BLANKS) or None)
        if len(order) > max_id or len(item) > max_id or len(customer or "") > max_id:
            return "id_too_long"
        if i_quantity is not None:
            text = fields[i_quantity]
            quantity = quantity_cache.get(text)
            if quantity is None:
                quantity = parse_decimal_micros(text)
                if quantity is None:
                    return "bad_quantity"
                if len(quantity_cache) < _CACHE_SIZE:
                    quantity_cache[text] = quantity
            if quantity <= 0:
                return "zero_quantity" if quantity == 0 else "return"
        return (order, item, customer)

    return parse


#: Known dialects. ``cdnow`` is the CDNOW master log shipped with lifetimes; ``baskets`` is
#: the long basket format ``basket_id,item`` (one line per item in a basket, as in the
#: supermarket data set), read only by basket jobs.
PRESETS = {
    "canonical": InputSchema(CANONICAL_COLUMNS),
    "cdnow": InputSchema(
        ("customer_id", "date", "number_of_cds", "dollar_value"),
        {"timestamp": "date", "quantity": "number_of_cds", "amount": "dollar_value"},
        delimiter=_WHITESPACE,
        timestamp_format="%Y%m%d",
    ),
    "baskets": InputSchema(
        ("basket_id", "item"), {"order_id": "basket_id", "item_id": "item"}, purpose="baskets"
    ),
}
