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
a second pass over the lines: every customer's last purchase is in the reduced output, so
the driver (:mod:`models.rfm_stage`) takes the maximum over those rows, a pass over
customers rather than lines, and fills ``as_of``, ``recency_days``, ``tenure_days`` and
``T`` with :func:`apply_as_of`. Run on its own without ``--as-of``, the job leaves those
four fields ``null``. With ``--as-of``, lines dated later are rejected as ``after_as_of``.

Combining is in-mapper: each mapper keeps one small record per customer and emits them
in ``mapper_final`` (or early, when it holds ``--combine-max`` customers), so the shuffle
grows with the number of customers per mapper, not with the number of lines.
"""

import datetime

from mrjob.protocol import JSONValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.records import format_micros, format_seconds, parse_as_of

__all__ = ["MRCustomerRFM", "RFM_COLUMNS", "apply_as_of", "period_of_day"]

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

# Positions in the per-customer partial record that mappers emit and reducers merge.
_FIRST, _LAST, _LINES, _QUANTITY, _VALUE, _DAYS, _ORDERS = range(7)


def period_of_day(day_ordinal, period):
    """The lifetimes period index of a day: the day itself (``D``) or its Monday-to-Sunday
    week (``W``, pandas' ``W-SUN``; 0001-01-01 is a Monday)."""
    return day_ordinal if period == "D" else (day_ordinal - 1) // 7


def _date_ordinal(iso_timestamp):
    return datetime.date.fromisoformat(iso_timestamp[:10]).toordinal()


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

    OUTPUT_PROTOCOL = JSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--as-of",
            default=None,
            help="YYYY-MM-DD to measure recency and T against (default: latest purchase date)",
        )
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
                reducer=self.reducer_merge_customer,
            )
        ]

    # -- mapper ---------------------------------------------------------------------------

    def mapper_init_parser(self):
        as_of = self.options.as_of
        self.init_line_parser(until_ordinal=None if as_of is None else parse_as_of(as_of))
        self._customers = {}

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
            if len(self._customers) >= self.options.combine_max:
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
        return self._emit_customers()

    def _emit_customers(self):
        customers, self._customers = self._customers, {}
        for customer, acc in customers.items():
            yield customer, self._encode_partial(acc)

    def _encode_partial(self, acc):
        orders = acc[_ORDERS]
        return [
            acc[_FIRST],
            acc[_LAST],
            acc[_LINES],
            acc[_QUANTITY],
            acc[_VALUE],
            sorted(acc[_DAYS].items()),
            acc[_LINES] if orders is None else sorted(orders),
        ]

    # -- reducer --------------------------------------------------------------------------

    def reducer_merge_customer(self, customer, partials):
        first = last = None
        lines = quantity = value = 0
        days = {}
        orders = set()
        order_count = 0
        for p in partials:
            if first is None or p[_FIRST] < first:
                first = p[_FIRST]
            if last is None or p[_LAST] > last:
                last = p[_LAST]
            lines += p[_LINES]
            quantity += p[_QUANTITY]
            value += p[_VALUE]
            for day, day_value in p[_DAYS]:
                days[day] = days.get(day, 0) + day_value
            if isinstance(p[_ORDERS], list):
                orders.update(p[_ORDERS])
            else:
                order_count += p[_ORDERS]
        n_orders = len(orders) + order_count
        row = self._customer_row(customer, first, last, lines, quantity, value, days, n_orders)
        yield None, row

    def _customer_row(self, customer, first, last, lines, quantity, value, days, n_orders):
        period = self.options.period
        periods = {}
        for day, day_value in days.items():
            key = period_of_day(day, period)
            periods[key] = periods.get(key, 0) + day_value
        ordered = sorted(periods)
        frequency = len(ordered) - 1
        repeat_value = sum(periods[p] for p in ordered[1:])
        row = {
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
            "recency": ordered[-1] - ordered[0],
            "T": None,
            "monetary_value": repeat_value / (frequency * _MICRO) if frequency else 0.0,
        }
        if self.options.as_of is not None:
            apply_as_of(row, parse_as_of(self.options.as_of))
        return row


if __name__ == "__main__":
    MRCustomerRFM.run()
