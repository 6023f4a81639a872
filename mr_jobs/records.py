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
timestamp     ISO 8601: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` (space
              instead of ``T`` allowed), optional ``Z`` or ``+HH:MM`` offset; times with
              an offset are converted to UTC, naive times are taken as they are.
              Fractions of a second are dropped.
item_id       text; optional (RFM does not need it, baskets do).
quantity      decimal > 0. Optional when ``amount`` is given (then 1).
unit_price    decimal >= 0. Optional when ``amount`` is given.
amount        optional decimal >= 0: the line's value. When the column exists and the
              field is not empty it replaces quantity x unit_price.
============  ========================================================================

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
from decimal import Decimal, InvalidOperation

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
    "parse_as_of",
    "format_seconds",
    "format_micros",
    "COUNTER_GROUP_LINES",
    "COUNTER_GROUP_REJECTED",
]

CANONICAL_COLUMNS = ("order_id", "customer_id", "timestamp", "item_id", "quantity", "unit_price")

#: Every role a source column can play.
ROLES = ("order_id", "customer_id", "timestamp", "item_id", "quantity", "unit_price", "amount")

#: Reasons a line is rejected, with what each one means.
REJECT_REASONS = {
    "header": "a header line (the first line of a file, or a repeated one)",
    "blank": "an empty or whitespace-only line",
    "undecodable": "bytes that are not valid UTF-8, or U+FFFD (a decoder's replacement for them)",
    "column_count": "a different number of fields than the schema's columns",
    "missing_customer": "an empty customer id",
    "missing_order": "an empty order id although the order column exists",
    "missing_item": "an empty item id where the job needs items",
    "bad_timestamp": "a timestamp that does not parse or is not a real date",
    "bad_quantity": "a quantity that is empty or not a finite number",
    "zero_quantity": "a quantity of zero",
    "bad_price": "a unit price that is empty, not a finite number, or negative",
    "bad_amount": "an amount that is not a finite number",
    "return": "a negative quantity or amount (returns and cancellations are not purchases)",
    "after_as_of": "dated after the --as-of date given for the run",
}

COUNTER_GROUP_LINES = "crm.lines"
COUNTER_GROUP_REJECTED = "crm.rejected"

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

    Raises
    ------
    SchemaError
        When a required role has no column, a mapping names a column that does not exist,
        or the delimiter, timestamp format or purpose is unknown.
    """

    def __init__(
        self, columns, mapping=None, delimiter=",", timestamp_format="iso", purpose="orders"
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
        )

    def __eq__(self, other):
        return isinstance(other, InputSchema) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"InputSchema({self.to_dict()!r})"


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


def parse_decimal_micros(text):
    """Exact value of a decimal string in integer millionths.

    Parameters
    ----------
    text : str
        ``"12"``, ``"-3.5"``, ``"0.125"``, ``"1e3"``; surrounding blanks are ignored.

    Returns
    -------
    int or None
        The value x 10**6, rounded half-to-even beyond six decimals; ``None`` when the
        text is empty, not a number, infinite or NaN.

    Examples
    --------
    >>> parse_decimal_micros("11.77")
    11770000
    >>> parse_decimal_micros("n/a") is None
    True
    """
    if text.isdigit() and text.isascii():
        return int(text) * _MICRO
    whole, dot, frac = text.partition(".")
    if dot and len(frac) <= 6 and (frac.isdigit() or not frac) and frac.isascii():
        sign = 1
        if whole[:1] in ("-", "+"):
            sign = -1 if whole[0] == "-" else 1
            whole = whole[1:]
        if (whole.isdigit() and whole.isascii()) or (not whole and frac):
            return sign * (int(whole or "0") * _MICRO + int(frac.ljust(6, "0")))
    return _parse_decimal_slow(text)


def _parse_decimal_slow(text):
    text = text.strip()
    if not text or not text.isascii():
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return int((value * _MICRO).to_integral_value())  # ROUND_HALF_EVEN by default


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
            ):
                h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
                if h < 24 and mi < 60 and s < 60:
                    return ordinal * _SECONDS_PER_DAY + h * 3600 + mi * 60 + s
                return None
            return _parse_iso_slow(text)

        return parse_iso

    if fmt == "epoch":

        def parse_epoch(text):
            micros = parse_decimal_micros(text)
            if micros is None:
                return None
            seconds = micros // _MICRO + _EPOCH_ORDINAL * _SECONDS_PER_DAY
            if not _SECONDS_PER_DAY <= seconds < 3_652_060 * _SECONDS_PER_DAY:
                return None
            return seconds

        return parse_epoch

    def parse_pattern(text):
        try:
            return _datetime_seconds(datetime.datetime.strptime(text, fmt))
        except ValueError:
            return None

    return parse_pattern


def _datetime_seconds(dt):
    if dt.tzinfo is not None:
        dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt.toordinal() * _SECONDS_PER_DAY + dt.hour * 3600 + dt.minute * 60 + dt.second


def _parse_iso_slow(text):
    text = text.strip()
    if len(text) < 11 or text[10] not in "T ":
        return None
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return _datetime_seconds(dt)


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
    delimiter = schema.delimiter
    whitespace = delimiter == _WHITESPACE
    i_customer = roles["customer_id"]
    i_timestamp = roles["timestamp"]
    i_order = roles.get("order_id")
    i_item = roles.get("item_id")
    i_quantity = roles.get("quantity")
    i_price = roles.get("unit_price")
    i_amount = roles.get("amount")
    header = tuple(c.lower() for c in schema.columns)
    parse_timestamp = _make_timestamp_parser(schema.timestamp_format)
    until = None if until_ordinal is None else (until_ordinal + 1) * _SECONDS_PER_DAY
    parse_decimal = parse_decimal_micros
    # Quantities and prices repeat a lot: parsed texts are memoised (bounded).
    quantity_cache = {}
    money_cache = {}
    timestamp_cache = {}

    def is_header(fields):
        names = tuple(f.strip().lstrip("\ufeff").lower() for f in fields)
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
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "undecodable"
        if "\ufffd" in line:
            # what a decoder puts in place of bytes it could not decode: Spark's text
            # input (Hadoop Text -> Java String) hands such lines over already replaced
            return "undecodable"
        if whitespace:
            fields = line.split()
        elif '"' in line:
            fields = next(csv.reader([line], delimiter=delimiter))
        else:
            fields = line.split(delimiter)
        if len(fields) != n_columns:
            if not line.strip():
                return "blank"
            return reject(fields, "column_count")
        customer = fields[i_customer]
        if not whitespace:  # a whitespace split leaves nothing to strip
            customer = customer.strip()
        if not customer:
            return reject(fields, "missing_customer")
        text = fields[i_timestamp]
        seconds = timestamp_cache.get(text)
        if seconds is None:
            seconds = parse_timestamp(text.strip())
            if seconds is None:
                return reject(fields, "bad_timestamp")
            if len(timestamp_cache) < _CACHE_SIZE:
                timestamp_cache[text] = seconds
        if i_order is None:
            order = None
        else:
            order = fields[i_order].strip()
            if not order:
                return "missing_order"
        if i_item is None:
            item = None
        else:
            item = fields[i_item].strip() or None
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
            if value is None and text and not text.isspace():
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


def make_basket_parser(schema):
    """Build the function that reads one raw line as an item in a basket.

    Parameters
    ----------
    schema : InputSchema
        Either full order lines (any purpose; see :attr:`InputSchema.is_order_lines`) or a
        schema made with ``purpose="baskets"``. It must have an ``item_id`` column.

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
        parse_line = make_line_parser(schema, require_item=True)

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
    delimiter = schema.delimiter
    whitespace = delimiter == _WHITESPACE
    i_order = roles["order_id"]
    i_item = roles["item_id"]
    i_customer = roles.get("customer_id")
    i_quantity = roles.get("quantity")
    header = tuple(c.lower() for c in schema.columns)
    h_order = header[i_order]
    h_item = header[i_item]
    quantity_cache = {}

    def parse(raw):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "undecodable"
        if "\ufffd" in line:
            return "undecodable"
        if whitespace:
            fields = line.split()
        elif '"' in line:
            fields = next(csv.reader([line], delimiter=delimiter))
        else:
            fields = line.split(delimiter)
        if len(fields) != n_columns:
            if not line.strip():
                return "blank"
            if tuple(f.strip().lstrip("\ufeff").lower() for f in fields) == header:
                return "header"
            return "column_count"
        order = fields[i_order].strip()
        item = fields[i_item].strip()
        if order.lstrip("\ufeff").lower() == h_order and item.lower() == h_item:
            return "header"
        if not order:
            return "missing_order"
        if not item:
            return "missing_item"
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
        customer = None if i_customer is None else (fields[i_customer].strip() or None)
        return (order, item, customer)

    return parse
