"""Frequent itemsets of any size with SON's two passes (Savasere, Omiecinski, Navathe).

Input: lines naming an item in a basket: full order lines (the basket is ``order_id``)
or ``--input-format baskets`` (``basket_id,item``); see :mod:`mr_jobs.records`. Every line
is counted in ``crm.lines`` and, when rejected, in ``crm.rejected`` by reason.

The job runs in one of two modes, each two MapReduce steps; a driver
(:mod:`models.itemsets_stage`) runs it twice:

Step 1, both modes: group the lines into baskets. Mappers emit ``basket id -> items``
(combined in the mapper); the reducer merges a basket's items wherever they came from
(another file or mapper) and keeps the distinct ones, sorted. A basket with more than
``--max-basket-items`` distinct items is left out of everything (N included), as
:mod:`mr_jobs.cooccurrence` does, so both jobs mine the same baskets; it is counted in
``crm.baskets`` / ``capped``. The input needs a basket column (``order_id``, or ``basket_id`` in the
``baskets`` dialect) and an item column. Counter ``crm.baskets`` / ``baskets`` is the
number of baskets.

Step 2, pass 1 (no ``--candidates``): each mapper holds its baskets (a chunk; at most
``--chunk-baskets`` of them at a time when that is set) and mines them exactly with
Apriori, with the support threshold scaled to the chunk: an itemset is locally frequent
when its count in the chunk is >= min_support x chunk size. An itemset frequent overall
is locally frequent in at least one chunk, so the union of the local results (the
reducer dedupes them) holds every frequent itemset. Output lines::

    {"baskets": 4627}
    {"candidate": ["bread and cake", "milk-cream"]}

Step 2, pass 2 (``--candidates FILE``, the output of pass 1, shipped to every task): each
mapper counts every candidate over its baskets; the reducer sums the counts and keeps the
itemsets whose count is >= min_support x the total number of baskets. Output, one line
per frequent itemset::

    {"items": ["bread and cake", "milk-cream"], "count": 2337, "support": 0.505...}

``items`` is sorted; ``support`` is count / baskets. The threshold is exact: the
``--min-support`` text is read as a decimal fraction and ``count >= min_support x n`` is
compared in integers, so no float rounding moves an itemset across it.

Standard library and mrjob only, like every job.
"""

import argparse
import itertools
import math
from fractions import Fraction

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.job_options import schema_from_options
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads
from mr_jobs.records import make_basket_parser

__all__ = [
    "MRFrequentItemsets",
    "COUNTER_GROUP_BASKETS",
    "COUNTER_GROUP_SON",
    "parse_min_support",
    "min_count",
    "mine_frequent_itemsets",
    "read_candidates",
]

COUNTER_GROUP_BASKETS = "crm.baskets"
COUNTER_GROUP_SON = "crm.son"

_BASKETS_KEY = "baskets"


def parse_min_support(text):
    """The ``--min-support`` fraction, exactly.

    Parameters
    ----------
    text : str or float or Fraction
        A decimal such as ``"0.22"``; ``0 < value <= 1``.

    Returns
    -------
    fractions.Fraction

    Raises
    ------
    ValueError
        Naming the value, when it is not a number in (0, 1].

    Examples
    --------
    >>> parse_min_support("0.22")
    Fraction(11, 50)
    """
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"min_support={text!r} is not a number") from None
    if not 0 < value <= 1:
        raise ValueError(f"min_support={text!r} should be > 0 and <= 1")
    return value


def min_count(min_support, n_baskets):
    """The least count that is >= ``min_support`` x ``n_baskets`` (exact; 1 for no baskets).

    Prior validation is assumed: ``min_support`` is a Fraction in (0, 1].
    """
    return max(1, -(-min_support.numerator * n_baskets // min_support.denominator))


def _positive_int_or_none(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not an integer") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name}={text!r} should be >= 0 (0: no limit)")
        return value or None

    return parse


def _min_support_arg(text):
    try:
        return parse_min_support(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bitset(indexes, n):
    """An int whose bits ``indexes`` are set (built in O(n), not one OR per index)."""
    data = bytearray((n >> 3) + 1)
    for i in indexes:
        data[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(data, "little")


def mine_frequent_itemsets(baskets, threshold, max_size=None):
    """Every itemset held by at least ``threshold`` of ``baskets``: exact, in memory.

    Apriori, level by level: size-k candidates join two frequent (k-1)-itemsets that share
    their first k-2 items, and are dropped unless all their (k-1)-subsets are frequent.
    Each itemset carries the set of baskets holding it as the bits of an int, so a
    candidate's count is the popcount of its two parents' AND.

    Parameters
    ----------
    baskets : sequence of sequence of str
        Each basket's distinct items.
    threshold : int
        The least count of a frequent itemset (>= 1).
    max_size : int, optional
        The largest itemset size to look for (default: no limit).

    Returns
    -------
    dict
        ``{itemset: count}``, each itemset a tuple of sorted items.

    Examples
    --------
    >>> mine_frequent_itemsets([["a", "b"], ["a", "b", "c"], ["a"]], 2)
    {('a',): 3, ('b',): 2, ('a', 'b'): 2}
    """
    n = len(baskets)
    rows = {}
    for i, basket in enumerate(baskets):
        for item in basket:
            rows.setdefault(item, []).append(i)
    found = {}
    level = {}
    for item in sorted(rows):
        if len(rows[item]) >= threshold:
            level[(item,)] = _bitset(rows[item], n)
            found[(item,)] = len(rows[item])
    size = 1
    while level and (max_size is None or size < max_size):
        size += 1
        by_prefix = {}
        for itemset in level:  # sorted: the keys were made in order
            by_prefix.setdefault(itemset[:-1], []).append(itemset)
        next_level = {}
        for group in by_prefix.values():
            for i, left in enumerate(group):
                left_bits = level[left]
                for right in group[i + 1 :]:
                    candidate = left + right[-1:]
                    if size > 2 and not all(
                        candidate[:j] + candidate[j + 1 :] in level for j in range(size - 2)
                    ):
                        continue  # the subsets dropping the last two items are left, right
                    bits = left_bits & level[right]
                    count = bits.bit_count()
                    if count >= threshold:
                        next_level[candidate] = bits
                        found[candidate] = count
        level = next_level
    return found


def read_candidates(path, total_only=False):
    """Read pass 1's output: ``(total baskets, {size: set of candidate tuples})``.

    With ``total_only`` the candidates are skipped (the dict is empty).

    Raises
    ------
    ValueError
        When a line is neither a candidate nor the basket total, naming the file.
    """
    total = 0
    by_size = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if total_only and line.startswith('{"candidate"'):
                continue
            record = loads(line)
            if "candidate" in record:
                itemset = tuple(record["candidate"])
                by_size.setdefault(len(itemset), set()).add(itemset)
            elif _BASKETS_KEY in record:
                total += record[_BASKETS_KEY]
            else:
                raise ValueError(f"{path!r} line {number} is not a pass-1 record: {line[:80]!r}")
    return total, by_size


class MRFrequentItemsets(OrderLineJob):
    """SON frequent itemsets, pass 1 or pass 2 (see the module docstring)."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--min-support",
            type=_min_support_arg,
            default=Fraction(1, 100),
            help="least fraction of baskets holding a frequent itemset, in (0, 1] (default 0.01)",
        )
        self.add_passthru_arg(
            "--max-size",
            type=_positive_int_or_none("max_size"),
            default=None,
            help="largest itemset size to look for (default 0: no limit)",
        )
        self.add_passthru_arg(
            "--max-basket-items",
            type=_positive_int_or_none("max_basket_items"),
            default=None,
            help="leave out baskets with more distinct items than this, counting them as "
            "capped (default 0: no cap)",
        )
        self.add_passthru_arg(
            "--chunk-baskets",
            type=_positive_int_or_none("chunk_baskets"),
            default=None,
            help="pass 1: mine at most this many baskets at a time in a mapper, to bound "
            "its memory (default 0: all of the mapper's baskets at once)",
        )
        self.add_passthru_arg(
            "--combine-max",
            type=int,
            default=100_000,
            help="baskets a step-1 mapper holds before it emits its partial baskets early",
        )
        self.add_file_arg(
            "--candidates",
            default=None,
            help="pass 2: the output of pass 1 (candidates and the basket total)",
        )

    def steps(self):
        group = MRStep(
            mapper_init=self.mapper_init_parser,
            mapper=self.mapper_collect_basket_item,
            mapper_final=self.mapper_final_emit_baskets,
            reducer_init=self.reducer_init_cap,
            reducer=self.reducer_assemble_basket,
        )
        if self.options.candidates is None:
            mine = MRStep(
                mapper_init=self.mapper_init_chunk,
                mapper=self.mapper_hold_basket,
                mapper_final=self.mapper_final_mine_chunk,
                reducer=self.reducer_dedupe_candidates,
            )
            return [group, mine]
        count = MRStep(
            mapper_init=self.mapper_init_candidates,
            mapper=self.mapper_count_candidates,
            mapper_final=self.mapper_final_emit_counts,
            reducer_init=self.reducer_init_threshold,
            reducer=self.reducer_keep_frequent,
        )
        return [group, count]

    # -- step 1: lines -> baskets ---------------------------------------------------------

    def mapper_init_parser(self):
        self.schema = schema_from_options(self.options, purpose="baskets")
        self.parse_line = make_basket_parser(self.schema)
        self.lines_read = 0
        self.lines_rejected = {}
        self._baskets = {}
        self._combine_max = self.options.combine_max

    def mapper_collect_basket_item(self, _, raw):
        self.lines_read += 1
        record = self.parse_line(raw)
        if type(record) is str:
            self.lines_rejected[record] = self.lines_rejected.get(record, 0) + 1
            return None
        basket, item, _customer = record  # a "baskets" schema always has a basket id
        items = self._baskets.get(basket)
        if items is None:
            self._baskets[basket] = {item}
            if len(self._baskets) >= self._combine_max:
                return self._emit_baskets()
        else:
            items.add(item)
        return None

    def mapper_final_emit_baskets(self):
        self.report_line_counters()
        yield from self._emit_baskets()

    def _emit_baskets(self):
        baskets, self._baskets = self._baskets, {}
        for basket, items in baskets.items():
            yield basket, sorted(items)

    def reducer_init_cap(self):
        self._cap = self.options.max_basket_items

    def reducer_assemble_basket(self, _basket, values):
        values = list(values)
        if len(values) == 1:
            items = values[0]
        else:  # the basket's lines reached several mappers
            items = sorted(set().union(*values))
        if self._cap is not None and len(items) > self._cap:
            self.increment_counter(COUNTER_GROUP_BASKETS, "capped", 1)
            return
        self.increment_counter(COUNTER_GROUP_BASKETS, "baskets", 1)
        yield None, items

    # -- step 2, pass 1: local frequent itemsets of each chunk ------------------------------

    def mapper_init_chunk(self):
        self._chunk = []
        self._chunk_max = self.options.chunk_baskets
        self._chunk_baskets = 0
        self._seen = set()

    def mapper_hold_basket(self, _, items):
        self._chunk.append(items)
        if self._chunk_max is not None and len(self._chunk) >= self._chunk_max:
            self._mine_chunk()
        return None

    def mapper_final_mine_chunk(self):
        if self._chunk:
            self._mine_chunk()
        yield _BASKETS_KEY, self._chunk_baskets
        seen, self._seen = self._seen, set()
        for itemset in sorted(seen):
            yield list(itemset), 1

    def _mine_chunk(self):
        chunk, self._chunk = self._chunk, []
        threshold = min_count(self.options.min_support, len(chunk))
        found = mine_frequent_itemsets(chunk, threshold, self.options.max_size)
        self.increment_counter(COUNTER_GROUP_SON, "chunks", 1)
        self.increment_counter(COUNTER_GROUP_SON, "local_itemsets", len(found))
        self._chunk_baskets += len(chunk)
        self._seen.update(found)

    def reducer_dedupe_candidates(self, key, values):
        if key == _BASKETS_KEY:
            yield None, {_BASKETS_KEY: sum(values)}
            return
        self.increment_counter(COUNTER_GROUP_SON, "candidates", 1)
        yield None, {"candidate": key}

    # -- step 2, pass 2: count every candidate, keep the frequent ones ----------------------

    def mapper_init_candidates(self):
        _total, self._candidates = read_candidates(self.options.candidates)
        self._candidate_items = {i for (i,) in self._candidates.get(1, ())}
        self._counts = {}

    def mapper_count_candidates(self, _, items):
        # every item of a candidate is a candidate itself (its subsets were frequent in
        # the chunk that found it, so they were found too)
        items = [i for i in items if i in self._candidate_items]
        counts = self._counts
        for size, candidates in self._candidates.items():
            if size > len(items):
                continue
            if math.comb(len(items), size) <= len(candidates):
                for itemset in itertools.combinations(items, size):
                    if itemset in candidates:
                        counts[itemset] = counts.get(itemset, 0) + 1
            else:
                held = set(items)
                for itemset in candidates:
                    if held.issuperset(itemset):
                        counts[itemset] = counts.get(itemset, 0) + 1
        return None

    def mapper_final_emit_counts(self):
        counts, self._counts = self._counts, {}
        for itemset, count in counts.items():
            yield list(itemset), count

    def reducer_init_threshold(self):
        self._total, _none = read_candidates(self.options.candidates, total_only=True)
        self._threshold = min_count(self.options.min_support, self._total)

    def reducer_keep_frequent(self, items, counts):
        count = sum(counts)
        if count >= self._threshold:
            yield None, {"items": items, "count": count, "support": count / self._total}


if __name__ == "__main__":
    MRFrequentItemsets.run()
