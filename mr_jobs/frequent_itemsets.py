"""Frequent itemsets of any size with SON's two passes (Savasere, Omiecinski, Navathe).

Input: lines naming an item in a basket: full order lines (the basket is ``order_id``)
or ``--input-format baskets`` (``basket_id,item``); see :mod:`mr_jobs.records`. Every line
is counted in ``crm.lines`` and, when rejected, in ``crm.rejected`` by reason.

The job runs in one of two modes (pass 1: three MapReduce steps, pass 2: two); a driver
(:mod:`models.itemsets_stage`) runs it twice:

Step 1, both modes: group the lines into baskets. Mappers emit ``basket id -> items``
(combined in the mapper); the reducer merges a basket's items wherever they came from
(another file or mapper) and keeps the distinct ones, sorted. A basket with more than
``--max-basket-items`` distinct items is left out of everything (N included), as
:mod:`mr_jobs.cooccurrence` does, so both jobs mine the same baskets; it is counted in
``crm.baskets`` / ``capped``. The input needs a basket column (``order_id``, or ``basket_id`` in the
``baskets`` dialect) and an item column. Counter ``crm.baskets`` / ``baskets`` is the
number of baskets.

Step 2, pass 1 (no ``--candidates``): the step-1 reducer gives each basket to one of
``--chunks`` chunks by a hash of its id (CRC-32, so the same basket lands in the same
chunk whatever the runner, the number of tasks or the input files); a reducer holds one
chunk at a time and mines it exactly with Apriori, with the support threshold scaled to
the chunk: an itemset is locally frequent when its count in the chunk is >= min_support x
chunk size. An itemset frequent overall is locally frequent in at least one chunk, so the
union of the local results (step 3 dedupes them) holds every frequent itemset. The
driver picks ``--chunks`` from the number of baskets so that no chunk is small (a chunk
of 25 baskets would make every subset of a 25-item basket locally frequent: 2^25).

With ``--frequent FILE`` (the globally frequent items and pairs, which the co-occurrence
job computes exactly: lines ``{"item": "a"}`` and ``{"pair": ["a", "b"]}``) each chunk is
mined over the frequent items only, and a size-2 itemset is kept only when it is a
frequent pair, so every candidate of any size has all its pairs frequent. That drops
only itemsets that cannot be frequent. ``--max-candidates`` bounds the itemsets one chunk
may find (an error names the limit, instead of running out of memory). Output lines::

    {"baskets": 4627}
    {"candidate": ["bread and cake", "milk-cream"]}

Step 2, pass 2 (``--candidates FILE``, the output of pass 1, shipped to every task): each
mapper counts every candidate over its baskets; the reducer sums the counts and keeps the
itemsets whose count is >= min_support x the total number of baskets (counters
``crm.son`` / ``counted``: candidates held by at least one basket, ``frequent``: those
kept). Output, one line per frequent itemset::

    {"items": ["bread and cake", "milk-cream"], "count": 2337, "support": 0.505...}

``items`` is sorted; ``support`` is count / baskets. The threshold is exact: the
``--min-support`` text is read as a decimal fraction and ``count >= min_support x n`` is
compared in integers, so no float rounding moves an itemset across it.

Standard library and mrjob only, like every job.
"""

import argparse
import zlib
from fractions import Fraction

from mrjob.step import MRStep

from mr_jobs.base import OrderLineJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads

__all__ = [
    "MRFrequentItemsets",
    "COUNTER_GROUP_BASKETS",
    "COUNTER_GROUP_SON",
    "parse_min_support",
    "min_count",
    "mine_frequent_itemsets",
    "read_candidates",
    "read_frequent",
    "candidate_trie",
    "count_candidates",
    "chunk_of",
    "CandidateLimitError",
]

COUNTER_GROUP_BASKETS = "crm.baskets"
COUNTER_GROUP_SON = "crm.son"

_BASKETS_KEY = "baskets"
#: Baskets a pass-2 mapper holds before it counts the candidates in them.
_COUNT_BATCH = 20_000


class CandidateLimitError(ValueError):
    """A chunk holds more locally frequent itemsets than ``--max-candidates`` allows."""


def chunk_of(basket_id, chunks):
    """The chunk (``0 <= c < chunks``) of a basket: CRC-32 of its id, the same everywhere.

    Python's ``hash`` of a str changes between processes; CRC-32 does not, so a basket's
    chunk depends on its id and the number of chunks only.

    Examples
    --------
    >>> chunk_of("T1", 1)
    0
    """
    return zlib.crc32(str(basket_id).encode("utf-8")) % chunks


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


def _chunks_arg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"chunks={text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"chunks={text!r} should be >= 1")
    return value


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


def mine_frequent_itemsets(baskets, threshold, max_size=None, *, pairs=None, limit=None):
    """Every itemset held by at least ``threshold`` of ``baskets``: exact, in memory.

    Apriori, level by level: size-k candidates join two frequent (k-1)-itemsets that share
    their first k-2 items, and are dropped unless all their (k-1)-subsets are frequent.
    Each itemset carries the set of baskets holding it as the bits of an int, so a
    candidate's count is the popcount of its two parents' AND. The work is bounded by the
    itemsets found (no basket's subsets are enumerated).

    Parameters
    ----------
    baskets : sequence of sequence of str
        Each basket's distinct items.
    threshold : int
        The least count of a frequent itemset (>= 1).
    max_size : int, optional
        The largest itemset size to look for (default: no limit).
    pairs : set of tuple, optional
        When given, the only size-2 itemsets allowed (sorted tuples): an itemset with a
        pair outside it is neither counted nor returned.
    limit : int, optional
        The most itemsets to find (default: no limit).

    Returns
    -------
    dict
        ``{itemset: count}``, each itemset a tuple of sorted items.

    Raises
    ------
    CandidateLimitError
        When more than ``limit`` itemsets are frequent, naming the limit.

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
                    if size == 2 and pairs is not None and candidate not in pairs:
                        continue
                    if size > 2 and not all(
                        candidate[:j] + candidate[j + 1 :] in level for j in range(size - 2)
                    ):
                        continue  # the subsets dropping the last two items are left, right
                    bits = left_bits & level[right]
                    count = bits.bit_count()
                    if count >= threshold:
                        next_level[candidate] = bits
                        found[candidate] = count
            if limit is not None and len(found) > limit:
                raise CandidateLimitError(
                    f"more than max_candidates={limit} itemsets are frequent at a count of "
                    f"{threshold} in {n} baskets (size {size}): raise --min-support, set "
                    "--max-size, or raise --max-candidates"
                )
        level = next_level
    return found


def candidate_trie(candidates):
    """A prefix tree of sorted itemsets: ``{item: [is a candidate, {next item: ...}]}``."""
    root = {}
    for itemset in candidates:
        node = root
        for depth, item in enumerate(itemset):
            entry = node.setdefault(item, [False, {}])
            if depth == len(itemset) - 1:
                entry[0] = True
            node = entry[1]
    return root


def count_candidates(baskets, trie):
    """How many of ``baskets`` hold each itemset of ``trie`` (:func:`candidate_trie`).

    Each item's baskets are the bits of an int; a walk down the tree ANDs them, so an
    itemset costs one AND of len(baskets) bits whatever the size of the baskets, and a
    prefix no basket holds is not walked below.

    Returns
    -------
    dict
        ``{itemset: count}`` for the itemsets held by at least one basket.

    Examples
    --------
    >>> count_candidates([["a", "b"], ["a", "b", "c"], ["b"]], candidate_trie([("a", "b")]))
    {('a', 'b'): 2}
    """
    rows = {}
    for i, basket in enumerate(baskets):
        for item in basket:
            rows.setdefault(item, []).append(i)
    n = len(baskets)
    bits = {item: _bitset(indexes, n) for item, indexes in rows.items()}
    counts = {}
    _count_below(trie, None, (), bits, counts)
    return counts


def _count_below(node, held, prefix, bits, counts):
    for item, (is_candidate, children) in node.items():
        item_bits = bits.get(item)
        if item_bits is None:
            continue
        both = item_bits if held is None else held & item_bits
        if not both:
            continue
        itemset = prefix + (item,)
        if is_candidate:
            counts[itemset] = both.bit_count()
        if children:
            _count_below(children, both, itemset, bits, counts)


def read_frequent(path):
    """Read ``--frequent``: ``(set of frequent items, set of frequent pair tuples)``.

    Raises
    ------
    ValueError
        When a line is neither an item nor a pair, naming the file and the line.
    """
    items, pairs = set(), set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            record = loads(line)
            if "item" in record:
                items.add(record["item"])
            elif "pair" in record and len(record["pair"]) == 2:
                pairs.add(tuple(sorted(record["pair"])))
            else:
                raise ValueError(
                    f"{path!r} line {number} is neither an item nor a pair: {line[:80]!r}"
                )
    return items, pairs


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
            "--chunks",
            type=_chunks_arg,
            default=1,
            help="pass 1: mine the baskets in this many chunks, a basket's chunk chosen by "
            "a hash of its id (default 1: all baskets at once)",
        )
        self.add_passthru_arg(
            "--max-candidates",
            type=_positive_int_or_none("max_candidates"),
            default=1_000_000,
            help="pass 1: fail, naming this limit, when one chunk has more locally frequent "
            "itemsets (default 1000000; 0: no limit)",
        )
        self.add_file_arg(
            "--frequent",
            default=None,
            help='pass 1: the globally frequent items and pairs (JSON lines {"item": a} '
            'and {"pair": [a, b]}); chunks are mined over these only',
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
                reducer_init=self.reducer_init_chunk,
                reducer=self.reducer_mine_chunk,
            )
            return [group, mine, MRStep(reducer=self.reducer_dedupe_candidates)]
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
        self.init_basket_parser(purpose="baskets")
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
        self._chunks = self.options.chunks if self.options.candidates is None else None

    def reducer_assemble_basket(self, basket, values):
        values = list(values)
        if len(values) == 1:
            items = values[0]
        else:  # the basket's lines reached several mappers
            items = sorted(set().union(*values))
        if self._cap is not None and len(items) > self._cap:
            self.increment_counter(COUNTER_GROUP_BASKETS, "capped", 1)
            return
        self.increment_counter(COUNTER_GROUP_BASKETS, "baskets", 1)
        yield (None if self._chunks is None else chunk_of(basket, self._chunks)), items

    # -- step 2, pass 1: local frequent itemsets of each chunk ------------------------------

    def reducer_init_chunk(self):
        self._items, self._pairs = None, None
        if self.options.frequent is not None:
            self._items, self._pairs = read_frequent(self.options.frequent)

    def reducer_mine_chunk(self, _chunk, baskets):
        items = self._items
        if items is None:
            chunk = list(baskets)
        else:  # an infrequent item is in no frequent itemset
            chunk = [[i for i in basket if i in items] for basket in baskets]
        threshold = min_count(self.options.min_support, len(chunk))
        found = mine_frequent_itemsets(
            chunk,
            threshold,
            self.options.max_size,
            pairs=self._pairs,
            limit=self.options.max_candidates,
        )
        self.increment_counter(COUNTER_GROUP_SON, "chunks", 1)
        self.increment_counter(COUNTER_GROUP_SON, "local_itemsets", len(found))
        yield _BASKETS_KEY, len(chunk)
        for itemset in found:
            yield list(itemset), 1

    def reducer_dedupe_candidates(self, key, values):
        if key == _BASKETS_KEY:
            yield None, {_BASKETS_KEY: sum(values)}
            return
        self.increment_counter(COUNTER_GROUP_SON, "candidates", 1)
        yield None, {"candidate": key}

    # -- step 2, pass 2: count every candidate, keep the frequent ones ----------------------

    def mapper_init_candidates(self):
        _total, by_size = read_candidates(self.options.candidates)
        self._trie = candidate_trie(c for candidates in by_size.values() for c in candidates)
        self._held = []
        self._counts = {}

    def mapper_count_candidates(self, _, items):
        self._held.append(items)
        if len(self._held) >= _COUNT_BATCH:
            self._count_held()
        return None

    def mapper_final_emit_counts(self):
        self._count_held()
        counts, self._counts = self._counts, {}
        for itemset, count in counts.items():
            yield list(itemset), count

    def _count_held(self):
        held, self._held = self._held, []
        for itemset, count in count_candidates(held, self._trie).items():
            self._counts[itemset] = self._counts.get(itemset, 0) + count

    def reducer_init_threshold(self):
        self._total, _none = read_candidates(self.options.candidates, total_only=True)
        self._threshold = min_count(self.options.min_support, self._total)

    def reducer_keep_frequent(self, items, counts):
        count = sum(counts)
        self.increment_counter(COUNTER_GROUP_SON, "counted", 1)
        if count >= self._threshold:
            self.increment_counter(COUNTER_GROUP_SON, "frequent", 1)
            yield None, {"items": items, "count": count, "support": count / self._total}


if __name__ == "__main__":
    MRFrequentItemsets.run()
