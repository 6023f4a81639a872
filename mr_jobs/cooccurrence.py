"""Item co-occurrence and pairwise association rules (A -> B) over baskets, in four steps.

Input: basket lines, either order lines with an item column (an order is a basket; see
:mod:`mr_jobs.records`) or ``--input-format baskets`` (``basket_id,item``, one line per
item in a basket; ``--columns``/``--map`` adapt it to other basket exports, which need a
basket and an item column only). An order log with no order column has one-item baskets
only (each line is a basket).

Output: one JSON object per line, told apart by ``kind``; counts are exact integers,
metrics floats, ``baskets`` is the number of baskets N every support is a share of::

    {"kind": "item", "item": "bread and cake", "count": 3330, "support": 0.7197, "baskets": 4627}
    {"kind": "pair", "items": ["bread and cake", "milk-cream"], "count": 2337,
     "support": 0.5051, "baskets": 4627}
    {"kind": "rule", "antecedent": "milk-cream", "consequent": "bread and cake",
     "count": 2337, "antecedent_count": 3114, "consequent_count": 3330,
     "support": 0.5051, "antecedent_support": 0.673, "consequent_support": 0.7197,
     "confidence": 0.7505, "lift": 1.0428, "leverage": 0.0207, "conviction": 1.1218,
     "baskets": 4627}

``item`` rows are the frequent items, ``pair`` rows the frequent pairs (``items`` in code
point order), ``rule`` rows both directions of every frequent pair whose confidence is at
least ``--min-confidence``. Frequent means support = count / N >= ``--min-support`` and
count >= ``--min-count`` (support is compared as the float count / N, as mlxtend does).
The minimum confidence filters rules only; it never changes which pairs are frequent.

Metrics follow mlxtend's ``association_rules`` and are computed from the exact counts
(one correctly rounded division each): support = n(A,B)/N, confidence = n(A,B)/n(A),
lift = confidence / (n(B)/N), leverage = support - (n(A)/N)(n(B)/N), conviction =
(1 - n(B)/N) / (1 - confidence). When confidence is 1 the conviction is infinite, which
JSON cannot hold: it is written as ``null``.

Steps
-----
1. Baskets. Mappers parse lines and gather each basket's distinct items in memory
   (in-mapper combining, flushed at ``--combine-max`` held items); the reducer, keyed by
   basket id, unites a basket's parts (so a basket split across files or mappers is one
   basket, duplicate lines and quantities change nothing) and counts, for its share of the
   baskets, N, every item and every pair as half stripes ``A -> {B: n}`` with A < B
   (in-reducer combining, flushed at ``--combine-max`` held pairs).
2. Totals. The totals key (``null``; no item id can be null) receives N and the item
   counts; with ``SORT_VALUES`` the basket counts (tagged 0) sort before the item counts
   (tagged 1), so it streams: once N is known it forwards ``[0, N, n(A)]`` to each
   frequent item A only (Apriori: a pair with an infrequent item is infrequent). Each item
   key merges its stripes (pairs under ``--min-count`` are dropped here already).
3. Pairs. At item A the totals sort before the stripe: a key without totals is an
   infrequent item and is dropped; otherwise every frequent pair (A, B) goes on to key B
   with n(A, B) and n(A), and A's totals are passed on to key A.
4. Rules. At item B its totals sort first again, then its frequent pairs (A, B): all of
   n(A), n(B), n(A, B) and N are at hand, so the ``item``, ``pair`` and both ``rule`` rows
   are written there. No process ever holds all pair counts; the totals key holds one
   number at a time.

Pruning waits for N: the minimum support is a share of the baskets, which is only known
after step 1, so step 1 counts every pair its baskets hold (with ``--min-count`` alone
step 2 could prune, and does). The shuffle of step 1 is bounded by the pairs per reducer
task, not per basket.

Very large baskets: a basket with more than ``--max-basket-items`` distinct items (default
1000, about half a million pairs) is left out of everything (N, items and pairs, so all
metrics are over the same baskets) and counted under ``crm.baskets`` ``capped``; neither
mappers nor reducers hold more than that many items of one basket.

Counters: ``crm.lines`` and ``crm.rejected`` (line accounting, as in every job);
``crm.baskets`` ``baskets`` (N), ``one_item`` (baskets with a single distinct item, which
make no pair) and ``capped``; ``crm.items`` ``distinct`` and ``frequent``; ``crm.pairs``
``distinct`` and ``frequent``; ``crm.rules`` ``rules`` (rows written).
"""

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.job_options import schema_from_options
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol
from mr_jobs.records import make_basket_parser

__all__ = ["MRItemCooccurrence", "rule_metrics"]

COUNTER_GROUP_BASKETS = "crm.baskets"
COUNTER_GROUP_ITEMS = "crm.items"
COUNTER_GROUP_PAIRS = "crm.pairs"
COUNTER_GROUP_RULES = "crm.rules"

# Value tags: with SORT_VALUES the totals (0) reach a reducer before the details (1).
_TOTALS = 0
_DETAIL = 1
_TOTALS_KEY = None  # item ids are strings, so null never collides with one
_ABSENT = ()


def rule_metrics(n_ab, n_a, n_b, n):
    """The metrics of the rule A -> B from exact counts.

    Parameters
    ----------
    n_ab, n_a, n_b, n : int
        Baskets holding A and B, A, B, and all baskets; ``0 < n_ab <= min(n_a, n_b)``,
        ``max(n_a, n_b) <= n`` (prior validation is assumed).

    Returns
    -------
    dict
        ``support``, ``antecedent_support``, ``consequent_support``, ``confidence``,
        ``lift``, ``leverage``, ``conviction`` (``None`` when confidence is 1).

    Examples
    --------
    >>> rule_metrics(2, 4, 2, 8)["lift"]
    2.0
    """
    return {
        "support": n_ab / n,
        "antecedent_support": n_a / n,
        "consequent_support": n_b / n,
        "confidence": n_ab / n_a,
        "lift": (n_ab * n) / (n_a * n_b),
        "leverage": (n_ab * n - n_a * n_b) / (n * n),
        "conviction": None if n_ab == n_a else ((n - n_b) * n_a) / (n * (n_a - n_ab)),
    }


class MRItemCooccurrence(OrderLineJob):
    """Frequent items and pairs, and the rules A -> B between them (see the module doc)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol
    SORT_VALUES = True

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--min-support",
            type=float,
            default=0.01,
            help="least share of baskets a frequent item or pair is in (default: 0.01)",
        )
        self.add_passthru_arg(
            "--min-count",
            type=int,
            default=1,
            help="least number of baskets a frequent item or pair is in (default: 1)",
        )
        self.add_passthru_arg(
            "--min-confidence",
            type=float,
            default=0.5,
            help="least confidence of a rule written (default: 0.5); pairs are unaffected",
        )
        self.add_passthru_arg(
            "--max-basket-items",
            type=int,
            default=1000,
            help="baskets with more distinct items are left out and counted as capped",
        )
        self.add_passthru_arg(
            "--combine-max",
            type=int,
            default=500_000,
            help="items (mappers) or pairs (reducers) a task holds before emitting early",
        )

    def load_args(self, args):
        super().load_args(args)
        o = self.options
        if not 0.0 <= o.min_support <= 1.0:
            raise ValueError(f"--min-support={o.min_support} should be in [0, 1]")
        if not 0.0 <= o.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence={o.min_confidence} should be in [0, 1]")
        if o.min_count < 1:
            raise ValueError(f"--min-count={o.min_count} should be >= 1")
        if o.max_basket_items < 2:
            raise ValueError(f"--max-basket-items={o.max_basket_items} should be >= 2")
        if o.combine_max < 1:
            raise ValueError(f"--combine-max={o.combine_max} should be >= 1")
        make_basket_parser(schema_from_options(o))  # a SchemaError here, not in every task

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_parser,
                mapper=self.mapper_gather_basket_items,
                mapper_final=self.mapper_final_emit_baskets,
                reducer_init=self.reducer_init_counts,
                reducer=self.reducer_count_basket,
                reducer_final=self.reducer_final_emit_counts,
            ),
            MRStep(reducer_init=self.reducer_init_thresholds, reducer=self.reducer_merge_totals),
            MRStep(reducer_init=self.reducer_init_thresholds, reducer=self.reducer_find_pairs),
            MRStep(reducer_init=self.reducer_init_thresholds, reducer=self.reducer_write_rules),
        ]

    # -- step 1: baskets ------------------------------------------------------------------

    def mapper_init_parser(self):
        self.init_basket_parser()
        self._baskets = {}  # basket id -> set of items, or None once over the cap
        self._singles = {}  # item -> lines without a basket id (one-item baskets)
        self._held = 0
        self._cap = self.options.max_basket_items
        self._combine_max = self.options.combine_max
        self.pause_gc()

    def mapper_gather_basket_items(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        basket, item, _customer = record
        if basket is None:
            self._singles[item] = self._singles.get(item, 0) + 1
            return None
        items = self._baskets.get(basket, _ABSENT)
        if items is _ABSENT:
            self._baskets[basket] = {item}
        elif items is None or item in items:
            return None
        elif len(items) >= self._cap:
            self._held -= len(items)
            self._baskets[basket] = None  # over the cap: hold nothing more of it
            return None
        else:
            items.add(item)
        self._held += 1
        if self._held >= self._combine_max:
            # a plain function (no per-line generator); it returns pairs only to flush
            return self._emit_baskets()
        return None

    def mapper_final_emit_baskets(self):
        self.report_line_counters()
        yield from self._emit_baskets()
        for item, count in self._singles.items():
            yield [item], count
        self._singles = {}
        self.resume_gc()

    def _emit_baskets(self):
        baskets, self._baskets, self._held = self._baskets, {}, 0
        for basket, items in baskets.items():
            yield basket, None if items is None else sorted(items)

    def reducer_init_counts(self):
        self._cap = self.options.max_basket_items
        self._combine_max = self.options.combine_max
        self._n_baskets = 0
        self._item_counts = {}
        self._stripes = {}
        self._held = 0
        self.pause_gc()

    def reducer_count_basket(self, basket, parts):
        if type(basket) is list:  # lines without a basket id: one-item baskets
            count = sum(parts)
            item = basket[0]
            self._n_baskets += count
            self._item_counts[item] = self._item_counts.get(item, 0) + count
            self.increment_counter(COUNTER_GROUP_BASKETS, "one_item", count)
            return
        items = set()
        for part in parts:
            if part is None:
                items = None
            elif items is not None:
                items.update(part)
                if len(items) > self._cap:
                    items = None
            # a capped basket's remaining parts are read and dropped
        if items is None:
            self.increment_counter(COUNTER_GROUP_BASKETS, "capped", 1)
            return
        self._n_baskets += 1
        counts = self._item_counts
        for item in items:
            counts[item] = counts.get(item, 0) + 1
        if len(items) == 1:
            self.increment_counter(COUNTER_GROUP_BASKETS, "one_item", 1)
            return
        items = sorted(items)
        stripes = self._stripes
        for i, a in enumerate(items):
            stripe = stripes.get(a)
            if stripe is None:
                stripes[a] = stripe = {}
            for b in items[i + 1 :]:
                n = stripe.get(b)
                if n is None:
                    stripe[b] = 1
                    self._held += 1
                else:
                    stripe[b] = n + 1
        if self._held >= self._combine_max:
            yield from self._emit_stripes()

    def _emit_stripes(self):
        stripes, self._stripes, self._held = self._stripes, {}, 0
        for a, stripe in stripes.items():
            if stripe:
                yield a, [_DETAIL, stripe]

    def reducer_final_emit_counts(self):
        self.increment_counter(COUNTER_GROUP_BASKETS, "baskets", self._n_baskets)
        if self._n_baskets:
            yield _TOTALS_KEY, [_TOTALS, self._n_baskets]
        for item, count in self._item_counts.items():
            yield _TOTALS_KEY, [_DETAIL, item, count]
        yield from self._emit_stripes()
        self.resume_gc()

    # -- steps 2 to 4 ---------------------------------------------------------------------

    def reducer_init_thresholds(self):
        self._min_support = self.options.min_support
        self._min_count = self.options.min_count
        self._min_confidence = self.options.min_confidence

    def _frequent(self, count, n):
        return count >= self._min_count and count / n >= self._min_support

    def reducer_merge_totals(self, key, values):
        if key is _TOTALS_KEY:
            yield from self._forward_frequent_items(values)
            return
        values = iter(values)
        merged = next(values)[1]
        for _tag, stripe in values:
            for b, n in stripe.items():
                merged[b] = merged.get(b, 0) + n
        self.increment_counter(COUNTER_GROUP_PAIRS, "distinct", len(merged))
        min_count = self._min_count
        if min_count > 1:
            merged = {b: n for b, n in merged.items() if n >= min_count}
        if merged:
            yield key, [_DETAIL, merged]

    def _forward_frequent_items(self, values):
        """Stream the totals key: basket counts (tag 0) first, then item counts (tag 1)
        in runs of one item each (the values are sorted as text)."""
        n = 0
        item, count = None, 0
        distinct = frequent = 0
        for value in values:
            if value[0] == _TOTALS:
                n += value[1]
                continue
            if value[1] != item:
                if item is not None:
                    distinct += 1
                    if self._frequent(count, n):
                        frequent += 1
                        yield item, [_TOTALS, n, count]
                item, count = value[1], 0
            count += value[2]
        if item is not None:
            distinct += 1
            if self._frequent(count, n):
                frequent += 1
                yield item, [_TOTALS, n, count]
        self.increment_counter(COUNTER_GROUP_ITEMS, "distinct", distinct)
        self.increment_counter(COUNTER_GROUP_ITEMS, "frequent", frequent)

    def reducer_find_pairs(self, a, values):
        values = iter(values)
        first = next(values)
        if first[0] != _TOTALS:
            return  # no totals: a is not a frequent item, nor is any pair with it
        _tag, n, n_a = first
        yield a, first
        for _tag, stripe in values:
            for b, n_ab in stripe.items():
                if self._frequent(n_ab, n):
                    yield b, [_DETAIL, a, n_ab, n_a]

    def reducer_write_rules(self, b, values):
        values = iter(values)
        _tag, n, n_b = next(values)  # a frequent pair's items are frequent: totals exist
        yield None, {"kind": "item", "item": b, "count": n_b, "support": n_b / n, "baskets": n}
        pairs = rules = 0
        min_confidence = self._min_confidence
        for _tag, a, n_ab, n_a in values:
            pairs += 1
            yield (
                None,
                {
                    "kind": "pair",
                    "items": [a, b],
                    "count": n_ab,
                    "support": n_ab / n,
                    "baskets": n,
                },
            )
            for x, y, n_x, n_y in ((a, b, n_a, n_b), (b, a, n_b, n_a)):
                if n_ab / n_x >= min_confidence:
                    rules += 1
                    yield (
                        None,
                        {
                            "kind": "rule",
                            "antecedent": x,
                            "consequent": y,
                            "count": n_ab,
                            "antecedent_count": n_x,
                            "consequent_count": n_y,
                            **rule_metrics(n_ab, n_x, n_y, n),
                            "baskets": n,
                        },
                    )
        self.increment_counter(COUNTER_GROUP_PAIRS, "frequent", pairs)
        self.increment_counter(COUNTER_GROUP_RULES, "rules", rules)


if __name__ == "__main__":
    MRItemCooccurrence.run()
