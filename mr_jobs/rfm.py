"""Per-customer RFM aggregates in one MapReduce pass over order lines.

Input: order lines (see :mod:`mr_jobs.records` for the canonical CSV and the options that
read other dialects). Output: one JSON object per line and customer::

    {"customer_id": "C0001", "first_purchase": "2023-01-02T10:00:00",
     "last_purchase": "2023-03-05T18:30:00", "orders": 4, "purchase_days": 3, "lines": 9,
     "total_quantity": 11, "total_value": 182.4, "mean_order_value": 45.6,
     "as_of": "2023-06-30", "recency_days": 117, "tenure_days": 179,
     "period": "D", "frequency": 2, "recency": 62, "T": 179, "monetary_value": 51.3}

``recency_days``/``tenure_days`` are days from the last/first purchase date to ``as_of``.
``frequency``, ``recency``, ``T`` and ``monetary_value`` follow
``lifetimes.utils.summary_data_from_transaction_data`` with ``freq=--period``: purchases
squashed to one per period (their values summed), frequency = periods - 1, recency =
last - first period, T = as-of period - first period, monetary_value = mean value of the
periods after the first (0 when there are none).

The default as-of date is the latest purchase date in the input. The job finds it without
a second pass over the lines and without any customer row in the driver: each mapper also
emits its earliest and latest purchase day under the key ``null`` (no customer id is
JSON ``null``), and the one reducer call that gets that key adds the overall earliest and
latest day ordinals to the counters ``crm.dates`` ``earliest_purchase_day`` and
``latest_purchase_day`` (:func:`purchase_days`). Run without ``--as-of``, the job leaves
``as_of``, ``recency_days``, ``tenure_days`` and ``T`` ``null``; the RFM stage
(:mod:`models.rfm_stage`) then fills them with the map-only :mod:`mr_jobs.rfm_finish`
(:func:`apply_as_of` on each row), a pass over customers rather than lines. With
``--as-of``, lines dated later are rejected as ``after_as_of``. The rows written are
counted in ``crm.output`` ``rows``.

Combining is in-mapper: each mapper keeps one small record per customer and emits them
in ``mapper_final`` (or early, when it holds ``--combine-max`` customers), so the shuffle
grows with the number of customers per mapper, not with the number of lines.
"""

import datetime
import json

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol
from mr_jobs.records import format_micros, format_seconds, parse_as_of

__all__ = [
    "COUNTER_GROUP_DATES",
    "MRCustomerRFM",
    "RFM_COLUMNS",
    "apply_as_of",
    "customer_row",
    "encode_row",
    "period_of_day",
    "purchase_days",
]

#: Counter group of the job's earliest and latest purchase day ordinals.
COUNTER_GROUP_DATES = "crm.dates"

#: The fields of each output row, in order.
RFM_COLUMNS = (
    "customer_id",
    "first_purchase",
    "last_purchase",
    "orders",
    "purchase_days",
    "lines",
    "total_quantity",
    "total_value",
    "mean_order_value",
    "as_of",
    "recency_days",
    "tenure_days",
    "period",
    "frequency",
    "recency",
    "T",
    "monetary_value",
)

_SECONDS_PER_DAY = 86_400
_MICRO = 1_000_000

# Positions in a mapper's per-customer record. It is emitted flat as
# [first, last, lines, quantity, value, orders, day, day_value, day, day_value, ...]
# where orders is a list of order ids, or a count of lines when there is no order column.
_FIRST, _LAST, _LINES, _QUANTITY, _VALUE, _DAYS, _ORDERS = range(7)
_FLAT_DAYS = 6


_encode_str = json.encoder.encode_basestring  # JSON string literal, quotes included
_ROW_TEMPLATE = (
    '{"customer_id":%s,"first_purchase":"%s","last_purchase":"%s","orders":%d,'
    '"purchase_days":%d,"lines":%d,"total_quantity":%r,"total_value":%r,'
    '"mean_order_value":%r,"as_of":%s,"recency_days":%s,"tenure_days":%s,"period":"%s",'
    '"frequency":%d,"recency":%d,"T":%s,"monetary_value":%r}'
)


def _nullable(value):
    if value is None:
        return "null"
    return _encode_str(value) if type(value) is str else repr(value)


def encode_row(row):
    """Compact JSON text of an output row, byte-identical to ``json.dumps(row,
    separators=(",", ":"), ensure_ascii=False)`` and about three times faster.

    The job writes millions of rows; a template with the row's known types avoids the
    generic encoder's per-key work. ``%r`` of an int or a float is exactly the text the
    ``json`` module writes for it.
    """
    return _ROW_TEMPLATE % (
        _encode_str(row["customer_id"]),
        row["first_purchase"],
        row["last_purchase"],
        row["orders"],
        row["purchase_days"],
        row["lines"],
        row["total_quantity"],
        row["total_value"],
        row["mean_order_value"],
        _nullable(row["as_of"]),
        _nullable(row["recency_days"]),
        _nullable(row["tenure_days"]),
        row["period"],
        row["frequency"],
        row["recency"],
        _nullable(row["T"]),
        row["monetary_value"],
    )


class RFMRowProtocol(CompactJSONValueProtocol):
    """The job's output protocol: one JSON object per line, written by :func:`encode_row`."""

    def write(self, key, value):
        return encode_row(value).encode()


def period_of_day(day_ordinal, period):
    """The lifetimes period index of a day: the day itself (``D``) or its Monday-to-Sunday
    week (``W``, pandas' ``W-SUN``; 0001-01-01 is a Monday)."""
    return day_ordinal if period == "D" else (day_ordinal - 1) // 7


def purchase_days(counters):
    """The earliest and latest purchase days of a run, from its counters.

    Parameters
    ----------
    counters : list of dict
        ``runner.counters()`` of an :class:`MRCustomerRFM` run.

    Returns
    -------
    (datetime.date, datetime.date) or None
        None when no line was accepted.
    """
    dates = counters[0].get(COUNTER_GROUP_DATES, {}) if counters else {}
    if "latest_purchase_day" not in dates:
        return None
    return (
        datetime.date.fromordinal(dates["earliest_purchase_day"]),
        datetime.date.fromordinal(dates["latest_purchase_day"]),
    )


def _date_ordinal(iso_timestamp):
    return datetime.date.fromisoformat(iso_timestamp[:10]).toordinal()


def customer_row(customer, first, last, lines, quantity, value, days, n_orders, period):
    """A customer's RFM row (:data:`RFM_COLUMNS`) from its merged figures, without the
    as-of fields (``as_of``, ``recency_days``, ``tenure_days``, ``T``: see
    :func:`apply_as_of`).

    Parameters
    ----------
    customer : str
    first, last : int
        Seconds since the epoch of the first and last purchase.
    lines : int
    quantity, value : int
        Sums in micro-units.
    days : dict
        Day ordinal -> value (micro-units) bought that day; not empty.
    n_orders : int
    period : str
        ``D``, ``W`` or ``M``: the lifetimes columns' period.

    Returns
    -------
    dict
    """
    if period == "D":
        periods = days
    else:
        periods = {}
        for day, day_value in days.items():
            key = period_of_day(day, period)
            periods[key] = periods.get(key, 0) + day_value
    first_period = min(periods)
    frequency = len(periods) - 1
    # the periods' values add up to the customer's total value
    repeat_value = value - periods[first_period]
    return {
        "customer_id": customer,
        "first_purchase": format_seconds(first),
        "last_purchase": format_seconds(last),
        "orders": n_orders,
        "purchase_days": len(days),
        "lines": lines,
        "total_quantity": format_micros(quantity),
        "total_value": value / _MICRO,
        "mean_order_value": value / (n_orders * _MICRO),
        "as_of": None,
        "recency_days": None,
        "tenure_days": None,
        "period": period,
        "frequency": frequency,
        "recency": max(periods) - first_period,
        "T": None,
        "monetary_value": repeat_value / (frequency * _MICRO) if frequency else 0.0,
    }


def apply_as_of(row, as_of_ordinal):
    """Fill the as-of dependent fields of one output row, in place.

    Parameters
    ----------
    row : dict
        A row of the job's output.
    as_of_ordinal : int
        The as-of date as a proleptic Gregorian day ordinal.

    Returns
    -------
    dict
        ``row``, with ``as_of``, ``recency_days``, ``tenure_days`` and ``T`` set.
    """
    first = _date_ordinal(row["first_purchase"])
    last = _date_ordinal(row["last_purchase"])
    row["as_of"] = datetime.date.fromordinal(as_of_ordinal).isoformat()
    row["recency_days"] = as_of_ordinal - last
    row["tenure_days"] = as_of_ordinal - first
    period = row["period"]
    row["T"] = period_of_day(as_of_ordinal, period) - period_of_day(first, period)
    return row


class MRCustomerRFM(OrderLineJob):
    """Per-customer recency, frequency and monetary aggregates (see the module docstring)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = RFMRowProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--period",
            default="D",
            choices=["D", "W"],
            help="lifetimes period: D (day) or W (Monday-Sunday week)",
        )
        self.add_passthru_arg(
            "--combine-max",
            type=int,
            default=100_000,
            help="customers a mapper holds before it emits its partial records early",
        )

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_parser,
                mapper=self.mapper_accumulate_line,
                mapper_final=self.mapper_final_emit_customers,
                reducer_init=self.reducer_init_options,
                reducer=self.reducer_merge_customer,
                reducer_final=self.reducer_final_count_rows,
            )
        ]

    # -- mapper ---------------------------------------------------------------------------

    def mapper_init_parser(self):
        self.init_line_parser()
        self._customers = {}
        self._combine_max = self.options.combine_max
        self._days = None  # [earliest, latest] day of the records emitted so far
        self.pause_gc()

    def mapper_accumulate_line(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        customer, order, seconds, _item, quantity, value = record
        day = seconds // _SECONDS_PER_DAY
        acc = self._customers.get(customer)
        if acc is None:
            self._customers[customer] = [
                seconds,
                seconds,
                1,
                quantity,
                value,
                {day: value},
                None if order is None else {order},
            ]
            if len(self._customers) >= self._combine_max:
                # a plain function (no per-line generator); it returns pairs only to flush
                return self._emit_customers()
            return None
        if seconds < acc[_FIRST]:
            acc[_FIRST] = seconds
        elif seconds > acc[_LAST]:
            acc[_LAST] = seconds
        acc[_LINES] += 1
        acc[_QUANTITY] += quantity
        acc[_VALUE] += value
        days = acc[_DAYS]
        days[day] = days.get(day, 0) + value
        if order is not None:
            acc[_ORDERS].add(order)
        return None

    def mapper_final_emit_customers(self):
        self.report_line_counters()
        yield from self._emit_customers()
        if self._days is not None:
            yield None, self._days  # see purchase_days()
        self.resume_gc()  # after emitting: a collection would walk every held record

    def _emit_customers(self):
        customers, self._customers = self._customers, {}
        if customers:
            first = min(acc[_FIRST] for acc in customers.values()) // _SECONDS_PER_DAY
            last = max(acc[_LAST] for acc in customers.values()) // _SECONDS_PER_DAY
            if self._days is None:
                self._days = [first, last]
            else:
                self._days = [min(first, self._days[0]), max(last, self._days[1])]
        for customer, acc in customers.items():
            yield customer, self._encode_partial(acc)

    def _encode_partial(self, acc):
        orders = acc[_ORDERS]
        record = [
            acc[_FIRST],
            acc[_LAST],
            acc[_LINES],
            acc[_QUANTITY],
            acc[_VALUE],
            acc[_LINES] if orders is None else sorted(orders),
        ]
        for day_value in acc[_DAYS].items():
            record += day_value
        return record

    # -- reducer --------------------------------------------------------------------------

    def reducer_init_options(self):
        self._period = self.options.period
        as_of = self.options.as_of
        self._as_of_ordinal = None if as_of is None else parse_as_of(as_of)
        self._rows = 0
        self.pause_gc()

    def reducer_final_count_rows(self):
        self.count_output(self._rows)
        self.resume_gc()

    def _count_purchase_days(self, partials):
        """The reducer call of the key ``null``: the overall earliest and latest days."""
        days = list(partials)
        self.increment_counter(
            COUNTER_GROUP_DATES, "earliest_purchase_day", min(d[0] for d in days)
        )
        self.increment_counter(COUNTER_GROUP_DATES, "latest_purchase_day", max(d[1] for d in days))

    def reducer_merge_customer(self, customer, partials):
        if customer is None:
            self._count_purchase_days(partials)
            return
        self._rows += 1
        partials = iter(partials)
        p = next(partials)
        first, last, lines, quantity, value, orders = p[:_FLAT_DAYS]
        days = dict(zip(p[_FLAT_DAYS::2], p[_FLAT_DAYS + 1 :: 2], strict=True))
        order_ids = None if type(orders) is int else set(orders)
        for p in partials:  # only customers seen by more than one mapper get here
            if p[_FIRST] < first:
                first = p[_FIRST]
            if p[_LAST] > last:
                last = p[_LAST]
            lines += p[_LINES]
            quantity += p[_QUANTITY]
            value += p[_VALUE]
            flat = p[_FLAT_DAYS:]
            for i in range(0, len(flat), 2):
                days[flat[i]] = days.get(flat[i], 0) + flat[i + 1]
            if order_ids is None:
                orders += p[_FLAT_DAYS - 1]
            else:
                order_ids.update(p[_FLAT_DAYS - 1])
        n_orders = orders if order_ids is None else len(order_ids)
        row = self._customer_row(customer, first, last, lines, quantity, value, days, n_orders)
        yield None, row

    def _customer_row(self, customer, first, last, lines, quantity, value, days, n_orders):
        row = customer_row(
            customer, first, last, lines, quantity, value, days, n_orders, self._period
        )
        if self._as_of_ordinal is not None:
            apply_as_of(row, self._as_of_ordinal)
        return row


if __name__ == "__main__":
    MRCustomerRFM.run()
