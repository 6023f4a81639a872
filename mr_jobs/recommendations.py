"""Item-to-item recommendations per customer, from their purchase history and a rule table.

Input: order lines with a customer and an item column (see :mod:`mr_jobs.records`), or a
basket export (``--input-format baskets`` with ``--columns``/``--map``) that has a
customer column. A line without a customer is rejected as ``missing_customer``, one
without an item as ``missing_item``; every other check of the basket jobs applies.

``--neighbors FILE`` (required) is the item-to-item table, one JSON object per line, that
:func:`models.recommend.write_neighbors` makes from the pairwise rules of
:class:`mr_jobs.cooccurrence.MRItemCooccurrence`::

    {"item": "milk-cream", "neighbors": [["bread and cake", 0.7505], ["fruit", 0.61]]}

Each ``[B, confidence]`` is a rule A -> B with its confidence (0 < confidence <= 1); an
item appears on one line at most and names each neighbour once (see
:func:`read_neighbors`).

Output: one JSON object per line for each customer who gets at least one
recommendation, ``history_items`` being the number of distinct items of the history H
used::

    {"customer_id": "C0001", "history_items": 3,
     "recommendations": [{"item": "fruit", "score": 1.36, "because": ["milk-cream", "tea"]}]}

Scoring: score(j) = the sum (``math.fsum``, exactly rounded, so it does not depend on the
order of the terms) of confidence(i -> j) over the items i of H that have a rule i -> j,
for every item j not in H. Items already bought are never recommended. The ``--top-n``
items with the highest scores are kept, ties broken by item id (code point order);
``because`` lists up to three history items with the largest contributions, ties broken
by item id.

One step. Mappers parse the lines and gather each customer's distinct items in memory
(in-mapper combining, emitted early when a mapper holds ``--combine-max`` items); the
reducer, keyed by customer, unites the parts (so a customer split across files or
mappers is one customer, duplicate lines change nothing), loads the table once per task
(``reducer_init``) and scores.

Very long histories: a customer with more than ``--max-history-items`` distinct items
(default 10,000) keeps the first that many in code point order, which is the same set
whatever the split of the input (mappers and reducers trim to it), and is counted under
``crm.customers`` ``capped``.

Counters: ``crm.lines`` and ``crm.rejected`` (line accounting, as in every job);
``crm.customers`` ``customers`` (distinct customers with an accepted line),
``with_recommendations`` (rows written) and ``capped``.
"""

import heapq
import math

from mrjob.parse import is_uri
from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.job_options import schema_from_options
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads
from mr_jobs.records import SchemaError, make_basket_parser

__all__ = ["MRCustomerRecommendations", "read_neighbors", "COUNTER_GROUP_CUSTOMERS"]

COUNTER_GROUP_CUSTOMERS = "crm.customers"

#: How many history items a recommendation names as its reasons.
BECAUSE_ITEMS = 3


def read_neighbors(path):
    """Read and check an item-to-item table (the ``--neighbors`` file).

    Parameters
    ----------
    path : str
        A local file of JSON lines ``{"item": A, "neighbors": [[B, confidence], ...]}``;
        blank lines are skipped.

    Returns
    -------
    dict
        ``{A: [(B, confidence), ...]}`` in the file's order.

    Raises
    ------
    ValueError
        Naming the file and the line: when the file does not exist or cannot be read,
        a line is not such an object, an item appears on two lines, a list names a
        neighbour twice or the item itself, or a confidence is not a number in (0, 1].
    """
    table = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise ValueError(f"neighbors file {path!r} cannot be read: {e.strerror}") from None
    with f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f"neighbors file {path!r} line {number}"
            try:
                record = loads(line)
            except ValueError:
                raise ValueError(f"{where} is not JSON: {line[:80]!r}") from None
            item = record.get("item") if isinstance(record, dict) else None
            neighbors = record.get("neighbors") if isinstance(record, dict) else None
            if not isinstance(item, str) or not isinstance(neighbors, list):
                raise ValueError(
                    f'{where} should be {{"item": str, "neighbors": [[str, confidence], ...]}}'
                    f": {line[:80]!r}"
                )
            if item in table:
                raise ValueError(f"{where}: item {item!r} already has a neighbor list")
            entries = []
            seen = set()
            for entry in neighbors:
                if not (
                    isinstance(entry, list)
                    and len(entry) == 2
                    and isinstance(entry[0], str)
                    and isinstance(entry[1], (int, float))
                    and not isinstance(entry[1], bool)
                ):
                    raise ValueError(f"{where}: {entry!r} should be [item, confidence]")
                neighbor, confidence = entry
                if not 0 < confidence <= 1:  # NaN fails too
                    raise ValueError(
                        f"{where}: confidence={confidence!r} of {item!r} -> {neighbor!r} "
                        "should be in (0, 1]"
                    )
                if neighbor == item:
                    raise ValueError(f"{where}: item {item!r} lists itself as a neighbor")
                if neighbor in seen:
                    raise ValueError(f"{where}: item {item!r} lists {neighbor!r} twice")
                seen.add(neighbor)
                entries.append((neighbor, float(confidence)))
            table[item] = entries
    return table


def _smallest(items, cap):
    """The ``cap`` smallest items in code point order, sorted (prior validation is assumed)."""
    return heapq.nsmallest(cap, items)


class MRCustomerRecommendations(OrderLineJob):
    """Top items for each customer from their history and a rule table (see the module doc)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg(
            "--neighbors",
            default=None,
            help="required: the item-to-item table, JSON lines "
            '{"item": A, "neighbors": [[B, confidence], ...]}',
        )
        self.add_passthru_arg(
            "--top-n",
            type=int,
            default=10,
            help="most recommendations per customer (default: 10)",
        )
        self.add_passthru_arg(
            "--max-history-items",
            type=int,
            default=10_000,
            help="keep at most this many distinct items of a customer, the first in code "
            "point order; capped customers are counted (default: 10000)",
        )
        self.add_passthru_arg(
            "--combine-max",
            type=int,
            default=500_000,
            help="items a mapper holds before it emits its partial histories early",
        )

    def load_args(self, args):
        super().load_args(args)
        o = self.options
        if o.top_n < 1:
            raise ValueError(f"--top-n={o.top_n} should be >= 1")
        if o.max_history_items < 1:
            raise ValueError(f"--max-history-items={o.max_history_items} should be >= 1")
        if o.combine_max < 1:
            raise ValueError(f"--combine-max={o.combine_max} should be >= 1")
        schema = schema_from_options(o)
        make_basket_parser(schema)  # a SchemaError here, not in every task
        if not schema.has("customer_id"):
            raise SchemaError(
                f"columns={list(schema.columns)!r} have no customer_id column: "
                "recommendations are per customer"
            )

    def make_runner(self):
        """Check the ``--neighbors`` table here, in the launching process, before any task.

        A table on a URI (e.g. ``hdfs://``) is checked by the tasks that load it.
        """
        path = self.options.neighbors
        if path is None:
            raise ValueError("--neighbors FILE is required: the item-to-item table")
        if not is_uri(path) or path.startswith("file://"):
            read_neighbors(path[len("file://") :] if path.startswith("file://") else path)
        return super().make_runner()

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_parser,
                mapper=self.mapper_gather_history,
                mapper_final=self.mapper_final_emit_histories,
                reducer_init=self.reducer_init_neighbors,
                reducer=self.reducer_recommend_items,
                reducer_final=self.reducer_final_count_customers,
            )
        ]

    # -- mappers: lines -> partial histories -----------------------------------------------

    def mapper_init_parser(self):
        self.init_basket_parser()
        self._histories = {}  # customer id -> set of items
        self._trimmed = set()  # customers whose set this mapper trimmed to the cap
        self._held = 0
        self._cap = self.options.max_history_items
        self._combine_max = self.options.combine_max
        self.pause_gc()

    def mapper_gather_history(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        _basket, item, customer = record
        if customer is None:  # a basket export whose customer field is empty
            self.lines_rejected["missing_customer"] = (
                self.lines_rejected.get("missing_customer", 0) + 1
            )
            return None
        items = self._histories.get(customer)
        if items is None:
            self._histories[customer] = {item}
        elif item in items:
            return None
        else:
            items.add(item)
            if len(items) > 2 * self._cap:  # trim now and then: memory stays O(cap)
                kept = _smallest(items, self._cap)
                self._held -= len(items) - len(kept)
                self._histories[customer] = set(kept)
                self._trimmed.add(customer)
        self._held += 1
        if self._held >= self._combine_max:
            # a plain function (no per-line generator); it returns pairs only to flush
            return self._emit_histories()
        return None

    def mapper_final_emit_histories(self):
        self.report_line_counters()
        yield from self._emit_histories()
        self.resume_gc()

    def _emit_histories(self):
        histories, self._histories, self._held = self._histories, {}, 0
        trimmed, self._trimmed = self._trimmed, set()
        cap = self._cap
        for customer, items in histories.items():
            capped = customer in trimmed or len(items) > cap
            yield customer, [_smallest(items, cap) if capped else sorted(items), capped]

    # -- reducers: histories -> recommendations --------------------------------------------

    def reducer_init_neighbors(self):
        self._neighbors = read_neighbors(self.options.neighbors)
        self._top_n = self.options.top_n
        self._cap = self.options.max_history_items
        self._customers = 0
        self._with_recommendations = 0
        self._capped = 0

    def reducer_recommend_items(self, customer, parts):
        cap = self._cap
        history = set()
        capped = False
        for items, trimmed in parts:
            capped = capped or trimmed
            history.update(items)
            if len(history) > 2 * cap:
                history = set(_smallest(history, cap))
                capped = True
        if len(history) > cap:
            history = set(_smallest(history, cap))
            capped = True
        self._customers += 1
        if capped:
            self._capped += 1
        recommendations = self._score(history)
        if recommendations:
            self._with_recommendations += 1
            yield (
                None,
                {
                    "customer_id": customer,
                    "history_items": len(history),
                    "recommendations": recommendations,
                },
            )

    def _score(self, history):
        """The top recommendations for a set of items (see the module doc)."""
        contributions = {}  # candidate j -> [(confidence(i -> j), i), ...]
        neighbors = self._neighbors
        for i in history:
            for j, confidence in neighbors.get(i, ()):
                if j not in history:
                    found = contributions.get(j)
                    if found is None:
                        contributions[j] = [(confidence, i)]
                    else:
                        found.append((confidence, i))
        scored = [(math.fsum(c for c, _ in terms), j) for j, terms in contributions.items()]
        top = heapq.nsmallest(self._top_n, scored, key=lambda t: (-t[0], t[1]))
        return [
            {
                "item": j,
                "score": score,
                "because": [
                    i
                    for _, i in heapq.nsmallest(
                        BECAUSE_ITEMS, contributions[j], key=lambda t: (-t[0], t[1])
                    )
                ],
            }
            for score, j in top
        ]

    def reducer_final_count_customers(self):
        group = COUNTER_GROUP_CUSTOMERS
        self.increment_counter(group, "customers", self._customers)
        self.increment_counter(group, "with_recommendations", self._with_recommendations)
        self.count_output(self._with_recommendations)
        if self._capped:
            self.increment_counter(group, "capped", self._capped)


if __name__ == "__main__":
    MRCustomerRecommendations.run()
