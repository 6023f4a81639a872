"""Sales series: revenue, quantity, orders and distinct customers per period and series.

Input: order lines (see :mod:`mr_jobs.records` for the canonical CSV and the options that
read other dialects). Only accepted lines count; rejected ones are counted by reason in
the ``crm.rejected`` counters, as in every order-line job.

Output: one JSON object per line, per (series, period) that has at least one line::

    {"series": "total", "period": "2023-01-02", "revenue": 5.55, "quantity": 6,
     "orders": 3, "customers": 2}

``period`` is the day (``--period D``) or the Monday of the week (``--period W``: weeks
run Monday to Sunday, as pandas' ``W-SUN`` and the RFM job's weekly period). Periods are
calendar dates of the timestamps as parsed (UTC when the input has an offset, otherwise
taken as written). Periods without any line are not written: the driver
(:mod:`models.sales_stage`) fills them with zeros so that every series is regular.

Series
------
``total``
    Every accepted line.
an item id
    The lines of that item. Without ``--top-items`` every item is a series of its own;
    with ``--top-items FILE`` (a JSON array of item ids) only the listed items are.
``__other__``
    With ``--top-items``: the lines of every item that is not listed, as one series.
    Its ``customers`` and ``orders`` are distinct counts over those lines, computed by the
    job (they are not sums of the per-item counts, which would count a customer who buys
    two such items twice).

With ``--as-of YYYY-MM-DD`` lines dated after that day are rejected as ``after_as_of``
(as in the RFM job), so the series of a run with an ``as_of`` end where its RFM rows do.

Lines with no item id (no item column, or an empty item field) count in ``total`` only.
The names ``total`` and ``__other__`` are reserved: an item with such an id makes rows
that share a series name with them (the stage refuses that; the job keeps them apart
internally but cannot in its output).

Measures
--------
``revenue``
    Sum of the line values (quantity x unit_price, or amount), summed as exact integer
    millionths (see :mod:`mr_jobs.records`) whatever the split of the input between
    mappers, written as the float nearest to the exact value (``repr`` of it gives the
    exact decimal up to 15 significant digits).
``quantity``
    Sum of quantities (an int when it is whole).
``orders``
    Distinct orders with at least one line of the series in the period. An order is the
    pair (customer, order id), so an order split across mappers or input files counts
    once; an order whose lines fall in two periods counts in both. Without an order
    column each accepted line is its own order (as in the RFM job: the CDNOW log has no
    order id and one line is one purchase occasion), so ``orders`` counts lines.
``customers``
    Distinct customers with at least one line of the series in the period.

How it is computed
------------------
Step 1 is keyed by (series, period, customer): each mapper keeps one small record per key
(revenue, quantity, and the set of order ids or a line count) and emits them at its end,
or early every ``--combine-max`` keys to bound its memory. Its reducer merges the
partials of one key, so a customer or an order seen by several mappers counts once, and
adds (revenue, quantity, orders, 1) into a per-(series, period) record held in the
reducer, emitted at its end (or early every ``--combine-max`` records). Step 2 sums those
per (series, period) and writes the rows. Memory per task is therefore bounded by
``--combine-max`` records, whatever the number of lines.

With ``--rank-items`` the job computes instead one row per item, to choose the top-N
(lines without an item are left out)::

    {"item_id": "I0042", "revenue": 1234.5, "revenue_micros": 1234500000,
     "quantity": 210, "lines": 198}

Counters: besides the line accounting, ``crm.sales`` / ``lines_without_item`` counts the
accepted lines that have no item id.
"""

import datetime
import json

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol
from mr_jobs.records import format_micros

__all__ = [
    "COUNTER_GROUP_SALES",
    "MRSalesSeries",
    "OTHER_SERIES",
    "PERIODS",
    "SALES_COLUMNS",
    "TOTAL_SERIES",
    "period_index",
    "period_start",
    "read_top_items",
    "MAX_PERIODS",
]

#: The most periods a series may span (the sales stage fills every one with zeros where
#: nothing sold): 27 years of days, 190 years of weeks; ``--max-periods`` changes it.
MAX_PERIODS = 10_000

#: The fields of each output row, in order.
SALES_COLUMNS = ("series", "period", "revenue", "quantity", "orders", "customers")

#: The series of every line, and the series of the items outside ``--top-items``.
TOTAL_SERIES = "total"
OTHER_SERIES = "__other__"

#: ``D`` (day) or ``W`` (Monday-to-Sunday week).
PERIODS = ("D", "W")

COUNTER_GROUP_SALES = "crm.sales"

_SECONDS_PER_DAY = 86_400
_MICRO = 1_000_000

# Internal series tags: the shuffle keys keep the kinds apart even if an item id is
# "total" or "__other__"; they also give the rows a stable order.
_TOTAL, _ITEM, _OTHER = 0, 1, 2
_SERIES_NAMES = {_TOTAL: TOTAL_SERIES, _OTHER: OTHER_SERIES}

# Positions in a mapper's record.
_REVENUE, _QUANTITY, _ORDERS = range(3)


def period_index(day_ordinal, period):
    """The period of a day: its ordinal (``D``) or its Monday-to-Sunday week (``W``).

    Parameters
    ----------
    day_ordinal : int
        Proleptic Gregorian ordinal (:meth:`datetime.date.toordinal`).
    period : {"D", "W"}
        Prior validation is assumed.

    Returns
    -------
    int
        For ``W``, weeks counted from the one starting on 0001-01-01 (a Monday).

    Examples
    --------
    >>> import datetime
    >>> sunday = datetime.date(2023, 1, 8).toordinal()
    >>> period_index(sunday, "W") == period_index(sunday - 6, "W")  # Monday 2023-01-02
    True
    """
    return day_ordinal if period == "D" else (day_ordinal - 1) // 7


def period_start(index, period):
    """The first day of a period from :func:`period_index`, as ``YYYY-MM-DD``.

    Examples
    --------
    >>> import datetime
    >>> period_start(period_index(datetime.date(2023, 1, 8).toordinal(), "W"), "W")
    '2023-01-02'
    """
    ordinal = index if period == "D" else index * 7 + 1
    return datetime.date.fromordinal(ordinal).isoformat()


def read_top_items(path):
    """The item ids of a ``--top-items`` file: a JSON array of strings.

    Raises
    ------
    ValueError
        Naming the path, when the file does not hold a JSON array of strings.
    """
    with open(path, encoding="utf-8") as f:
        try:
            items = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a JSON array of item ids ({e})") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{path}: not a JSON array of item ids (strings)")
    return items


class MRSalesSeries(OrderLineJob):
    """Sales series per period, in total and per item (see the module docstring)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--period",
            default="W",
            choices=list(PERIODS),
            help="D (day) or W (Monday-to-Sunday week, named by its Monday); default W",
        )
        self.add_file_arg(
            "--top-items",
            default=None,
            help="JSON array of item ids that keep a series of their own; the other "
            "items make the series __other__ (default: every item is a series)",
        )
        self.add_passthru_arg(
            "--rank-items",
            action="store_true",
            help="output one row per item with its total revenue instead of the series",
        )
        self.add_passthru_arg(
            "--combine-max",
            type=int,
            default=100_000,
            help="records a task holds before it emits its partial records early",
        )

    def steps(self):
        if self.options.rank_items:
            return [
                MRStep(
                    mapper_init=self.mapper_init_items,
                    mapper=self.mapper_accumulate_item,
                    mapper_final=self.mapper_final_emit_items,
                    reducer=self.reducer_item_row,
                )
            ]
        return [
            MRStep(
                mapper_init=self.mapper_init_series,
                mapper=self.mapper_accumulate_line,
                mapper_final=self.mapper_final_emit_keys,
                reducer_init=self.reducer_init_periods,
                reducer=self.reducer_merge_customer,
                reducer_final=self.reducer_final_emit_periods,
            ),
            MRStep(reducer_init=self.reducer_init_rows, reducer=self.reducer_series_row),
        ]

    # -- step 1 mapper: (series, period, customer) records -------------------------------

    def _init_parser(self):
        self.init_line_parser()

    def mapper_init_series(self):
        self._init_parser()
        self._period = self.options.period
        self._combine_max = self.options.combine_max
        top = self.options.top_items
        self._top = None if top is None else frozenset(read_top_items(top))
        self._records = {}
        self._without_item = 0
        self.pause_gc()

    def mapper_accumulate_line(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        customer, order, seconds, item, quantity, value = record
        day = seconds // _SECONDS_PER_DAY
        period = day if self._period == "D" else (day - 1) // 7
        self._add(_TOTAL, "", period, customer, order, quantity, value)
        if item is None:
            self._without_item += 1
        elif self._top is None or item in self._top:
            self._add(_ITEM, item, period, customer, order, quantity, value)
        else:
            self._add(_OTHER, "", period, customer, order, quantity, value)
        if len(self._records) >= self._combine_max:
            # a plain function (no per-line generator); it returns pairs only to flush
            return self._emit_records()
        return None

    def _add(self, tag, name, period, customer, order, quantity, value):
        key = (tag, name, period, customer)
        acc = self._records.get(key)
        if acc is None:
            self._records[key] = [value, quantity, 1 if order is None else {order}]
            return
        acc[_REVENUE] += value
        acc[_QUANTITY] += quantity
        if order is None:
            acc[_ORDERS] += 1
        else:
            acc[_ORDERS].add(order)

    def mapper_final_emit_keys(self):
        self.report_line_counters()
        self.increment_counter(COUNTER_GROUP_SALES, "lines_without_item", self._without_item)
        yield from self._emit_records()
        self.resume_gc()

    def _emit_records(self):
        records, self._records = self._records, {}
        for key, acc in records.items():
            orders = acc[_ORDERS]
            yield (
                list(key),
                [
                    acc[_REVENUE],
                    acc[_QUANTITY],
                    orders if type(orders) is int else sorted(orders),
                ],
            )

    # -- step 1 reducer: one customer counted once per (series, period) ---------------------

    def reducer_init_periods(self):
        self._periods = {}
        self._combine_max = self.options.combine_max
        self.pause_gc()

    def reducer_merge_customer(self, key, partials):
        revenue = quantity = 0
        lines = 0
        order_ids = None
        for value, qty, orders in partials:
            revenue += value
            quantity += qty
            if type(orders) is int:
                lines += orders
            elif order_ids is None:
                order_ids = set(orders)
            else:
                order_ids.update(orders)
        n_orders = lines if order_ids is None else len(order_ids)
        series = (key[0], key[1], key[2])
        acc = self._periods.get(series)
        if acc is None:
            self._periods[series] = [revenue, quantity, n_orders, 1]
        else:
            acc[0] += revenue
            acc[1] += quantity
            acc[2] += n_orders
            acc[3] += 1
        if len(self._periods) >= self._combine_max:
            yield from self._emit_periods()

    def reducer_final_emit_periods(self):
        yield from self._emit_periods()
        self.resume_gc()

    def _emit_periods(self):
        periods, self._periods = self._periods, {}
        for key, acc in periods.items():
            yield list(key), acc

    # -- step 2 reducer: the rows -------------------------------------------------------------

    def reducer_init_rows(self):
        self._period = self.options.period

    def reducer_series_row(self, key, partials):
        revenue = quantity = orders = customers = 0
        for value, qty, n_orders, n_customers in partials:
            revenue += value
            quantity += qty
            orders += n_orders
            customers += n_customers
        tag, name, period = key
        yield (
            None,
            {
                "series": _SERIES_NAMES.get(tag, name),
                "period": period_start(period, self._period),
                "revenue": revenue / _MICRO,
                "quantity": format_micros(quantity),
                "orders": orders,
                "customers": customers,
            },
        )

    # -- --rank-items: total revenue per item -------------------------------------------------

    def mapper_init_items(self):
        self._init_parser()
        self._items = {}
        self._combine_max = self.options.combine_max
        self._without_item = 0

    def mapper_accumulate_item(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        item, quantity, value = record[3], record[4], record[5]
        if item is None:
            self._without_item += 1
            return None
        acc = self._items.get(item)
        if acc is None:
            self._items[item] = [value, quantity, 1]
            if len(self._items) >= self._combine_max:
                return self._emit_items()
            return None
        acc[0] += value
        acc[1] += quantity
        acc[2] += 1
        return None

    def mapper_final_emit_items(self):
        self.report_line_counters()
        self.increment_counter(COUNTER_GROUP_SALES, "lines_without_item", self._without_item)
        yield from self._emit_items()

    def _emit_items(self):
        items, self._items = self._items, {}
        yield from items.items()

    def reducer_item_row(self, item, partials):
        revenue = quantity = lines = 0
        for value, qty, n in partials:
            revenue += value
            quantity += qty
            lines += n
        yield (
            None,
            {
                "item_id": item,
                "revenue": revenue / _MICRO,
                "revenue_micros": revenue,
                "quantity": format_micros(quantity),
                "lines": lines,
            },
        )


if __name__ == "__main__":
    MRSalesSeries.run()
