"""Churn training rows in one pass over the order lines: features as of a cutoff, labels.

Input: order lines (:mod:`mr_jobs.records`). Options: ``--cutoff YYYY-MM-DD`` (the last day
of the features) and ``--as-of YYYY-MM-DD``, the horizon's last day (``cutoff +
horizon_days``; lines dated later are rejected as ``after_as_of`` by the parser, as every
order-line job does). Output: one JSON object per customer with a purchase on or before
the cutoff: the RFM row of :class:`mr_jobs.rfm.MRCustomerRFM` run with ``--as-of cutoff``
(period ``D``), the same values, then ``churned`` (1 when the customer bought nothing in
``(cutoff, horizon end]``), ``orders_in_horizon`` and ``value_in_horizon`` (what a second
RFM run to the horizon's end adds to the first: ``|orders to the end| - |orders to the
cutoff|``, ``total_value to the end - total_value to the cutoff``) and
``purchase_days_in_horizon`` (the distinct days with a purchase in the horizon: the
holdout's repeat purchases of :mod:`models.clv_stage`)::

    {"customer_id": "A", ..., "monetary_value": 5.0, "churned": 0,
     "orders_in_horizon": 1, "value_in_horizon": 10.0, "purchase_days_in_horizon": 1}

Line accounting
---------------
``crm.lines`` / ``crm.rejected`` are those of the RFM run to the cutoff: every line the
parser accepts but dates after the cutoff is counted as rejected ``after_as_of`` (it never
reaches a feature), with the lines after the horizon's end. The parser checks the date
last, so a bad line after the cutoff is rejected for its own reason, as it was in the
feature run. ``crm.churn`` ``horizon_lines`` counts the lines inside the horizon: the label
run's accounting is the same with those lines accepted (:func:`label_lines`).

Counters (``crm.churn``): ``churned`` and ``bought_again`` (training rows of each class),
``horizon_only_customers`` (customers whose first purchase is inside the horizon: no row),
``latest_day`` (the ordinal of the latest accepted day up to the horizon's end, from the one
reducer call of the key ``null``, as :mod:`mr_jobs.rfm` counts its purchase days). Rows
written: ``crm.output`` ``rows``. In-mapper combining as in :mod:`mr_jobs.rfm`.
"""

import datetime

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol
from mr_jobs.records import parse_as_of
from mr_jobs.rfm import apply_as_of, customer_row

__all__ = ["COUNTER_GROUP_CHURN", "MRChurnFeatures", "label_lines", "latest_day"]

#: Counter group of the job's label facts.
COUNTER_GROUP_CHURN = "crm.churn"

_SECONDS_PER_DAY = 86_400
_MICRO = 1_000_000
# a mapper's record: feature window, then horizon
_FIRST, _LAST, _LINES, _QUANTITY, _VALUE, _DAYS, _ORDERS, _H_LINES, _H_VALUE, _H_ORDERS, _H_DAYS = (
    range(11)
)
# a partial record as emitted: the first five fields, then these, then day, value, ...
_P_ORDERS, _P_H_LINES, _P_H_VALUE, _P_H_ORDERS, _P_H_DAYS, _FLAT_DAYS = range(5, 11)


def label_lines(lines, counters):
    """The label run's line accounting from the feature accounting and the counters.

    Parameters
    ----------
    lines : dict
        :func:`models.job_runner.line_accounting` of the job's run.
    counters : list of dict
        The run's counters.

    Returns
    -------
    dict
        ``lines`` with the horizon's lines accepted instead of rejected ``after_as_of``.
    """
    horizon = counters[0].get(COUNTER_GROUP_CHURN, {}).get("horizon_lines", 0) if counters else 0
    by_reason = dict(lines["rejected_by_reason"])
    after = by_reason.get("after_as_of", 0) - horizon
    if after:
        by_reason["after_as_of"] = after
    else:
        by_reason.pop("after_as_of", None)
    return {
        "read": lines["read"],
        "accepted": lines["accepted"] + horizon,
        "rejected": lines["rejected"] - horizon,
        "rejected_by_reason": by_reason,
    }


def latest_day(counters):
    """The latest accepted purchase day up to the horizon's end (a date), or None."""
    day = counters[0].get(COUNTER_GROUP_CHURN, {}).get("latest_day") if counters else None
    return None if day is None else datetime.date.fromordinal(day)


class MRChurnFeatures(OrderLineJob):
    """Features as of ``--cutoff`` and labels to ``--as-of`` (see the module docstring)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--cutoff", required=True, help="YYYY-MM-DD: last feature day")
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
                reducer_init=self.reducer_init_cutoff,
                reducer=self.reducer_label_customer,
                reducer_final=self.reducer_final_count_rows,
            )
        ]

    # -- mapper ---------------------------------------------------------------------------

    def mapper_init_parser(self):
        self.init_line_parser()
        self._until = (parse_as_of(self.options.cutoff) + 1) * _SECONDS_PER_DAY
        self._customers = {}
        self._horizon_lines = 0
        self._latest = None
        self.pause_gc()

    def mapper_accumulate_line(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.reject_line(record)
            return None
        customer, order, seconds, _item, quantity, value = record
        if self._latest is None or seconds > self._latest:
            self._latest = seconds
        acc = self._customers.get(customer)
        if acc is None:
            acc = self._customers[customer] = [None, None, 0, 0, 0, {}, set(), 0, 0, set(), set()]
        if seconds >= self._until:
            self.reject_line("after_as_of")  # for the features; a label line
            self._horizon_lines += 1
            acc[_H_LINES] += 1
            acc[_H_VALUE] += value
            acc[_H_DAYS].add(seconds // _SECONDS_PER_DAY)
            if order is not None:
                acc[_H_ORDERS].add(order)
        else:
            self._add_feature_line(acc, order, seconds, quantity, value)
        if len(self._customers) >= self.options.combine_max:
            return self._emit_customers()
        return None

    @staticmethod
    def _add_feature_line(acc, order, seconds, quantity, value):
        if acc[_FIRST] is None or seconds < acc[_FIRST]:
            acc[_FIRST] = seconds
        if acc[_LAST] is None or seconds > acc[_LAST]:
            acc[_LAST] = seconds
        acc[_LINES] += 1
        acc[_QUANTITY] += quantity
        acc[_VALUE] += value
        day = seconds // _SECONDS_PER_DAY
        acc[_DAYS][day] = acc[_DAYS].get(day, 0) + value
        if order is not None:
            acc[_ORDERS].add(order)

    def mapper_final_emit_customers(self):
        self.report_line_counters()
        self.increment_counter(COUNTER_GROUP_CHURN, "horizon_lines", self._horizon_lines)
        yield from self._emit_customers()
        if self._latest is not None:
            yield None, self._latest // _SECONDS_PER_DAY
        self.resume_gc()

    def _emit_customers(self):
        customers, self._customers = self._customers, {}
        for customer, acc in customers.items():
            record = acc[:_DAYS] + [sorted(acc[_ORDERS]), acc[_H_LINES], acc[_H_VALUE]]
            record.append(sorted(acc[_H_ORDERS]))
            record.append(sorted(acc[_H_DAYS]))
            for day_value in acc[_DAYS].items():
                record += day_value
            yield customer, record

    # -- reducer --------------------------------------------------------------------------

    def reducer_init_cutoff(self):
        self._cutoff_ordinal = parse_as_of(self.options.cutoff)
        self._rows = 0
        self.pause_gc()

    def reducer_final_count_rows(self):
        self.count_output(self._rows)
        self.resume_gc()

    def reducer_label_customer(self, customer, partials):
        if customer is None:
            self.increment_counter(COUNTER_GROUP_CHURN, "latest_day", max(partials))
            return
        merged = self._merge(partials)
        if merged[_FIRST] is None:
            self.increment_counter(COUNTER_GROUP_CHURN, "horizon_only_customers")
            return
        row = self._training_row(customer, merged)
        self._rows += 1
        self.increment_counter(COUNTER_GROUP_CHURN, "churned" if row["churned"] else "bought_again")
        yield None, row

    @staticmethod
    def _merge(partials):
        """One record of a customer's partial records (days as a dict, orders as sets)."""
        first, last, lines, quantity, value = None, None, 0, 0, 0
        days, orders, h_lines, h_value, h_orders, h_days = {}, set(), 0, 0, set(), set()
        for p in partials:
            if p[_FIRST] is not None:
                first = p[_FIRST] if first is None else min(first, p[_FIRST])
                last = p[_LAST] if last is None else max(last, p[_LAST])
            lines += p[_LINES]
            quantity += p[_QUANTITY]
            value += p[_VALUE]
            orders.update(p[_P_ORDERS])
            h_lines += p[_P_H_LINES]
            h_value += p[_P_H_VALUE]
            h_orders.update(p[_P_H_ORDERS])
            h_days.update(p[_P_H_DAYS])
            flat = p[_FLAT_DAYS:]
            for i in range(0, len(flat), 2):
                days[flat[i]] = days.get(flat[i], 0) + flat[i + 1]
        return [
            first,
            last,
            lines,
            quantity,
            value,
            days,
            orders,
            h_lines,
            h_value,
            h_orders,
            h_days,
        ]

    def _training_row(self, customer, m):
        """The RFM row as of the cutoff (period ``D``) and the label columns."""
        lines, value = m[_LINES], m[_VALUE]
        # without an order column every line is an order (as in mr_jobs.rfm)
        n_orders = len(m[_ORDERS]) if m[_ORDERS] else lines
        row = customer_row(
            customer, m[_FIRST], m[_LAST], lines, m[_QUANTITY], value, m[_DAYS], n_orders, "D"
        )
        apply_as_of(row, self._cutoff_ordinal)
        if m[_ORDERS] or m[_H_ORDERS]:
            in_horizon = len(m[_H_ORDERS] - m[_ORDERS])
        else:
            in_horizon = m[_H_LINES]
        row["churned"] = 0 if m[_H_LINES] else 1
        row["orders_in_horizon"] = in_horizon
        row["value_in_horizon"] = (value + m[_H_VALUE]) / _MICRO - value / _MICRO
        row["purchase_days_in_horizon"] = len(m[_H_DAYS])
        return row


if __name__ == "__main__":
    MRChurnFeatures.run()
