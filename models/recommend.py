"""Recommendations from pairwise association rules: per item, and per customer.

The rules are the ``kind: "rule"`` records of :class:`mr_jobs.cooccurrence.MRItemCooccurrence`
(A -> B with ``count``, ``support``, ``confidence``, ``lift``, ``leverage``, ...). Only
positive associations recommend: a rule with lift <= 1 says that buying A does not make B
more likely than it is anyway, so it is left out.

Item to item (:func:`item_recommendations`), one record per item and rank::

    {"item": "milk-cream", "rank": 1, "recommended": "bread and cake", "score": 1.0428,
     "confidence": 0.7505, "lift": 1.0428, "support": 0.5051, "count": 2337}

The table the customer job ships (:func:`write_neighbors`), one JSON line per item::

    {"item": "milk-cream", "neighbors": [["bread and cake", 0.7505], ["fruit", 0.61]]}

Customer (:func:`recommend_for_customers`, one run of
:class:`mr_jobs.recommendations.MRCustomerRecommendations`), one record per customer who
gets a recommendation::

    {"customer_id": "C0001", "history_items": 3,
     "recommendations": [{"item": "fruit", "score": 1.36, "because": ["milk-cream", "tea"]}]}

where score(j) is the sum of confidence(i -> j) over the customer's items i (see the job's
module docstring).
"""

import heapq
import json
import math
import os
import shutil
import tempfile

from models.checks import check_int
from models.job_runner import run_job, run_job_into
from mr_jobs.job_options import schema_to_args
from mr_jobs.recommendations import COUNTER_GROUP_CUSTOMERS, MRCustomerRecommendations

__all__ = ["RANK_BY", "item_recommendations", "write_neighbors", "recommend_for_customers"]

#: The rule metrics :func:`item_recommendations` can rank by.
RANK_BY = ("lift", "confidence", "leverage")


def _pairwise_rules(rules):
    """The ``rule`` records of ``rules``, checked to be pairwise (A -> B, both strings).

    Records of another ``kind`` (``item``, ``pair``) are skipped; a record without a
    ``kind`` is taken as a rule.
    """
    for rule in rules:
        if rule.get("kind", "rule") != "rule":
            continue
        antecedent = rule.get("antecedent")
        consequent = rule.get("consequent")
        if not (isinstance(antecedent, str) and isinstance(consequent, str)):
            raise ValueError(
                f"antecedent={antecedent!r}, consequent={consequent!r}: only pairwise rules "
                "(one item -> one item, as MRItemCooccurrence writes them) are supported"
            )
        yield rule


def _metric(rule, name):
    value = rule.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"rule {rule['antecedent']!r} -> {rule['consequent']!r} has {name}={value!r}, "
            "not a number"
        )
    return value


class _Ranked:
    """One candidate of an item's top list; ``a < b`` means a ranks below b."""

    __slots__ = ("score", "confidence", "item", "rule")

    def __init__(self, score, confidence, item, rule):
        self.score = score
        self.confidence = confidence
        self.item = item
        self.rule = rule

    def __lt__(self, other):
        if self.score != other.score:
            return self.score < other.score
        if self.confidence != other.confidence:
            return self.confidence < other.confidence
        return self.item > other.item


def item_recommendations(rules, top_n=10, rank_by="lift"):
    """The top recommended items for each item, from pairwise association rules.

    Parameters
    ----------
    rules : iterable of dict
        Records as :class:`mr_jobs.cooccurrence.MRItemCooccurrence` writes them; those
        of ``kind`` ``"rule"`` are used (``antecedent``, ``consequent``, ``count``,
        ``support``, ``confidence``, ``lift``, ``leverage``), the others skipped.
    top_n : int
        Most recommendations per item (>= 1).
    rank_by : {"lift", "confidence", "leverage"}
        The metric the ``score`` is and the ranking is by.

    Returns
    -------
    list of dict
        ``{"item", "rank", "recommended", "score", "confidence", "lift", "support",
        "count"}``, sorted by item (code point order) then rank (1, 2, ...). Within an
        item: score descending, then confidence descending, then the recommended item
        in code point order.

    Raises
    ------
    ValueError
        Naming the bad value: ``top_n`` or ``rank_by`` out of range, a rule that is not
        pairwise, a metric that is missing or not a number, or the same rule A -> B
        twice among an item's kept candidates.

    Notes
    -----
    Only rules with lift > 1 (a positive association) recommend. The rules are streamed:
    at most ``top_n`` candidates per item are held (a heap each), never all the rules.

    Examples
    --------
    >>> rules = [{"kind": "rule", "antecedent": "a", "consequent": "b", "count": 2,
    ...           "support": 0.5, "confidence": 1.0, "lift": 2.0, "leverage": 0.25}]
    >>> item_recommendations(rules)[0]["recommended"]
    'b'
    """
    check_int("top_n", top_n, 1)
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by={rank_by!r} should be one of {RANK_BY}")
    heaps = {}  # item -> min-heap of _Ranked, the lowest-ranked on top
    kept = {}  # item -> the recommended items in its heap
    for rule in _pairwise_rules(rules):
        if not _metric(rule, "lift") > 1:
            continue
        a, b = rule["antecedent"], rule["consequent"]
        candidate = _Ranked(_metric(rule, rank_by), _metric(rule, "confidence"), b, rule)
        heap = heaps.get(a)
        if heap is None:
            heaps[a] = [candidate]
            kept[a] = {b}
            continue
        if b in kept[a]:
            raise ValueError(f"the rule {a!r} -> {b!r} appears twice")
        if len(heap) < top_n:
            heapq.heappush(heap, candidate)
            kept[a].add(b)
        else:
            dropped = heapq.heappushpop(heap, candidate)
            if dropped is not candidate:
                kept[a].discard(dropped.item)
                kept[a].add(b)
    out = []
    for a in sorted(heaps):
        for rank, entry in enumerate(sorted(heaps[a], reverse=True), 1):
            rule = entry.rule
            out.append(
                {
                    "item": a,
                    "rank": rank,
                    "recommended": entry.item,
                    "score": entry.score,
                    "confidence": rule["confidence"],
                    "lift": rule["lift"],
                    "support": rule.get("support"),
                    "count": rule.get("count"),
                }
            )
    return out


def write_neighbors(rules, path, min_lift=1.0):
    """Write the item-to-item table that :func:`recommend_for_customers` ships to its job.

    Parameters
    ----------
    rules : iterable of dict
        Pairwise rule records, as for :func:`item_recommendations`.
    path : str or os.PathLike
        Local file to write (replaced if it exists).
    min_lift : float
        Keep the rules with lift > ``min_lift`` (default 1: positive associations only).

    Returns
    -------
    int
        The number of items written (items with at least one neighbour).

    Raises
    ------
    ValueError
        When ``min_lift`` is not a finite number >= 0, a rule is not pairwise or lacks
        a number for lift or confidence, or the same rule A -> B appears twice.

    Notes
    -----
    One JSON line per item, in code point order: ``{"item": A, "neighbors": [[B,
    confidence], ...]}``, neighbours by confidence descending then item. See
    :func:`mr_jobs.recommendations.read_neighbors` for what the job accepts.
    """
    if (
        isinstance(min_lift, bool)
        or not isinstance(min_lift, (int, float))
        or not math.isfinite(min_lift)
        or min_lift < 0
    ):
        raise ValueError(f"min_lift={min_lift!r} should be a finite number >= 0")
    table = {}
    for rule in _pairwise_rules(rules):
        if not _metric(rule, "lift") > min_lift:
            continue
        a, b = rule["antecedent"], rule["consequent"]
        neighbors = table.setdefault(a, {})
        if b in neighbors:
            raise ValueError(f"the rule {a!r} -> {b!r} appears twice")
        neighbors[b] = float(_metric(rule, "confidence"))
    with open(path, "w", encoding="utf-8") as f:
        for a in sorted(table):
            ranked = sorted(table[a].items(), key=lambda bc: (-bc[1], bc[0]))
            record = {"item": a, "neighbors": [[b, c] for b, c in ranked]}
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(table)


def recommend_for_customers(
    input_paths,
    rules,
    *,
    schema,
    top_n=10,
    max_history_items=None,
    runner="inline",
    conf_paths=None,
    extra_args=(),
    progress=None,
    publication=None,
):
    """Recommend items to every customer from their history and pairwise rules.

    Parameters
    ----------
    input_paths : list of str
        Files or directories of order lines (or basket lines with a customer column)
        the runner can read.
    rules : iterable of dict
        Pairwise rule records (see :func:`item_recommendations`); those with lift > 1
        become the item-to-item table (:func:`write_neighbors`).
    schema : mr_jobs.records.InputSchema
        How to read the lines; it needs a ``customer_id`` and an ``item_id`` column.
    top_n : int
        Most recommendations per customer (>= 1).
    max_history_items : int, optional
        Keep at most this many distinct items per customer, the first in code point
        order (default: the job's, 10,000); capped customers are counted.
    runner : str
    conf_paths : list of str or None
        See :func:`models.job_runner.run_job`.
    extra_args : sequence of str
        More job options (e.g. ``["--num-cores", "2"]``).
    progress : callable, optional
        Called with a message at each stage.
    publication : hdfs_io.Publication, optional
        When given, the job's tasks write the rows as the publication's ``part-*`` files
        (:func:`models.job_runner.run_job_into`) and none is read by the driver: the
        rows returned are None, and ``details["rows_written"]`` is the tasks' count.

    Returns
    -------
    (list of dict or None, dict)
        The rows ``{"customer_id", "history_items", "recommendations": [{"item",
        "score", "because"}, ...]}`` of the customers with at least one recommendation,
        sorted by customer id (None with ``publication``); and details: ``customers``
        (with an accepted line),
        ``with_recommendations``, ``capped``, ``neighbors_items`` (items in the table),
        ``lines`` (the run's line accounting) and ``seconds`` (the run's wall time).

    Raises
    ------
    ValueError
        Naming the bad value: a schema without a customer or an item column, ``top_n``
        or ``max_history_items`` out of range, bad rules (see :func:`write_neighbors`).
    models.job_runner.AccountingError
        When the run's line counters do not add up.

    Notes
    -----
    The table is written to a temporary directory, shipped with ``--neighbors`` and
    checked by the job's launcher before any task starts; the directory is removed
    afterwards.
    """
    if not (schema.has("customer_id") and schema.has("item_id")):
        raise ValueError(
            f"columns={list(schema.columns)!r} need a customer_id and an item_id column "
            "to recommend items to customers"
        )
    args = [*schema_to_args(schema), "--top-n", str(check_int("top_n", top_n, 1))]
    if max_history_items is not None:
        args += ["--max-history-items", str(check_int("max_history_items", max_history_items, 1))]
    args += list(extra_args)
    say = progress or (lambda message: None)
    tmp_dir = tempfile.mkdtemp(prefix="crm-recommend-")
    try:
        neighbors_path = os.path.join(tmp_dir, "neighbors.jsonl")
        neighbors_items = write_neighbors(rules, neighbors_path)
        say(f"item-to-item table: {neighbors_items:,} items with a positive association")
        job = (MRCustomerRecommendations, input_paths, [*args, "--neighbors", neighbors_path])
        jobs = {"runner": runner, "conf_paths": conf_paths, "progress": progress}
        running = (
            run_job(*job, **jobs)
            if publication is None
            else run_job_into(publication, *job, **jobs)
        )
        with running as run:
            rows = None if publication is not None else sorted(run.rows(), key=_customer_id)
            written = run.output_rows
            counters = run.counters[0].get(COUNTER_GROUP_CUSTOMERS, {}) if run.counters else {}
            lines, seconds = run.lines, run.seconds
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    details = {
        "rows_written": written,
        "customers": counters.get("customers", 0),
        "with_recommendations": counters.get("with_recommendations", 0),
        "capped": counters.get("capped", 0),
        "neighbors_items": neighbors_items,
        "lines": lines,
        "seconds": round(seconds, 3),
    }
    return rows, details


def _customer_id(row):
    return row["customer_id"]
