"""The frequent-itemsets stage: SON's two runs of :class:`MRFrequentItemsets`, then rules.

Before the runs, the globally frequent items and pairs are needed: the caller gives them
(the baskets stage has them from the co-occurrence job) or they are computed here with
:class:`mr_jobs.cooccurrence.MRItemCooccurrence`. They go to run 1 as ``--frequent``.

Run 1 (pass 1) groups the lines into baskets, hashes them by id into chunks of about
``chunk_baskets`` baskets (never fewer than :data:`MIN_LOCAL_COUNT` / min_support, so the
scaled local threshold is at least about :data:`MIN_LOCAL_COUNT`) and mines each chunk
for local frequent itemsets over the frequent items and pairs only; its output (the
deduplicated candidates and the number of baskets) is written to a file that run 2 ships
to every task with ``--candidates``. Run 2 (pass 2) groups the lines again, counts every
candidate over all baskets and keeps the globally frequent ones. Both runs account for
every input line (read = accepted + rejected), and the driver checks that they saw the
same number of baskets as the co-occurrence counts.

The chunks depend only on the basket ids, the number of baskets, ``min_support`` and
``chunk_baskets``: the candidates, like the result, are the same however the input is
split into files or tasks and whichever runner runs it.

Association rules with a single-item consequent come from the itemset counts alone: every
subset of a frequent itemset is frequent, so the counts of a rule's antecedent and
consequent are in the output too.

Rule records (JSON-safe: an infinite conviction, when confidence is 1, is ``null``)::

    {"antecedent": ["bread and cake", "fruit"], "consequent": ["milk-cream"],
     "count": 1003, "support": 0.2167, "confidence": 0.7047, "lift": 1.1055,
     "leverage": 0.0207, "conviction": 1.2289,
     "antecedent_support": 0.3075, "consequent_support": 0.6374}

These are mlxtend's ``association_rules`` metrics: support = count(A u C) / baskets,
confidence = count(A u C) / count(A), lift = confidence / support(C), leverage =
support - support(A) x support(C), conviction = (1 - support(C)) / (1 - confidence).
"""

import json
import os
import shutil
import tempfile
from fractions import Fraction

from models.job_runner import run_job
from mr_jobs.cooccurrence import MRItemCooccurrence
from mr_jobs.frequent_itemsets import (
    COUNTER_GROUP_BASKETS,
    COUNTER_GROUP_SON,
    MRFrequentItemsets,
    parse_min_support,
)
from mr_jobs.job_options import schema_to_args

__all__ = [
    "find_frequent_itemsets",
    "derive_rules",
    "parse_min_confidence",
    "son_chunks",
    "DEFAULT_CHUNK_BASKETS",
    "MIN_LOCAL_COUNT",
]

#: Baskets per pass-1 chunk when ``chunk_baskets`` is not given.
DEFAULT_CHUNK_BASKETS = 2000
#: A chunk holds at least this many / min_support baskets (about), so that its scaled
#: threshold is about this count or more: a chunk of a few baskets would make min count
#: 1 and every subset of its baskets locally frequent.
MIN_LOCAL_COUNT = 100
#: ``--max-basket-items`` given to the co-occurrence job when SON has no cap.
_NO_CAP = 1_000_000_000


def parse_min_confidence(value):
    """The minimum confidence as an exact fraction in [0, 1].

    Raises
    ------
    ValueError
        Naming the value, when it is not a number in [0, 1].
    """
    try:
        fraction = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"min_confidence={value!r} is not a number") from None
    if not 0 <= fraction <= 1:
        raise ValueError(f"min_confidence={value!r} should be >= 0 and <= 1")
    return fraction


def _limit(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} should be an integer >= 1, or None for no limit")
    return value


def son_chunks(n_baskets, min_support, chunk_baskets=None):
    """The number of pass-1 chunks and the least baskets per chunk aimed at.

    Parameters
    ----------
    n_baskets : int
    min_support : fractions.Fraction
        Prior validation is assumed.
    chunk_baskets : int, optional
        Baskets per chunk wanted (default :data:`DEFAULT_CHUNK_BASKETS`); raised to
        ``ceil(MIN_LOCAL_COUNT / min_support)`` when smaller.

    Returns
    -------
    (int, int)
        ``(chunks, baskets per chunk)``, chunks >= 1.

    Examples
    --------
    >>> from fractions import Fraction
    >>> son_chunks(15_183, Fraction(1, 500))
    (1, 50000)
    >>> son_chunks(4_627, Fraction(1, 2), chunk_baskets=10)
    (23, 200)
    """
    wanted = chunk_baskets or DEFAULT_CHUNK_BASKETS
    floor = -(-MIN_LOCAL_COUNT * min_support.denominator // min_support.numerator)
    size = max(wanted, floor)
    return max(1, n_baskets // size), size


def find_frequent_itemsets(
    input_paths,
    *,
    schema,
    min_support,
    max_size=None,
    max_basket_items=None,
    chunk_baskets=None,
    max_candidates=1_000_000,
    frequent=None,
    runner="inline",
    conf_paths=None,
    extra_args=(),
    progress=None,
):
    """Frequent itemsets of the baskets in ``input_paths``, with SON's two MapReduce runs.

    Parameters
    ----------
    input_paths : list of str
        Files or directories the runner can read.
    schema : mr_jobs.records.InputSchema
        How to read the lines (full order lines, or the ``baskets`` preset).
    min_support : str or float
        Least fraction of baskets holding a frequent itemset, in (0, 1]; read exactly as
        a decimal (``"0.22"`` is 22/100).
    max_size : int, optional
        Largest itemset size (default: no limit).
    max_basket_items : int, optional
        Leave out baskets with more distinct items than this (counted as capped), as the
        co-occurrence job does.
    chunk_baskets : int, optional
        Baskets per pass-1 chunk (see :func:`son_chunks`; default
        :data:`DEFAULT_CHUNK_BASKETS`, never below ``MIN_LOCAL_COUNT / min_support``).
    max_candidates : int, optional
        Pass 1 fails, naming this limit, when one chunk has more locally frequent
        itemsets (``None``: no limit).
    frequent : dict, optional
        The globally frequent items and pairs at ``min_support`` over the same baskets
        (same ``max_basket_items``), as :func:`models.baskets_stage.count_cooccurrence`
        returns them: ``{"baskets": N, "items": [{"item": a}, ...], "pairs":
        [{"items": [a, b]}, ...]}``. Computed with the co-occurrence job when not given.
    runner : str
    conf_paths : list of str or None
        See :func:`models.job_runner.run_job`.
    extra_args : sequence of str
        More job options (e.g. ``["--num-cores", "2"]``).
    progress : callable, optional

    Returns
    -------
    (list of dict, dict)
        The itemsets ``{"items", "count", "support"}``, sorted by size then items, and
        details: ``baskets``, ``capped_baskets``, ``candidates`` (the itemsets pass 2
        counted), ``chunks``, ``chunk_baskets`` (the least aimed at), ``local_itemsets``
        (summed over chunks), ``frequent_items``, ``frequent_pairs``, ``lines`` (pass
        1's accounting) and ``seconds`` per pass (``frequent`` when computed here).

    Raises
    ------
    ValueError
        A bad parameter, named; a schema without a basket or an item column.
    RuntimeError
        When the two passes, or the co-occurrence counts, saw different numbers of
        baskets.
    mr_jobs.frequent_itemsets.CandidateLimitError
        On the inline runner, when a chunk exceeds ``max_candidates`` (other runners
        raise their step failure, with this message in the task's log).
    """
    support = parse_min_support(min_support)
    if not (schema.has("order_id") and schema.has("item_id")):
        raise ValueError(
            f"columns={list(schema.columns)!r} need a basket (order_id) and an item_id "
            "column to make baskets"
        )
    args = _job_args(schema, support, max_size, max_basket_items, max_candidates, extra_args)
    _limit("chunk_baskets", chunk_baskets)
    say = progress or (lambda message: None)
    seconds = {}
    if frequent is None:
        say("SON: frequent items and pairs (co-occurrence job)")
        frequent, seconds["frequent"] = _frequent_items_and_pairs(
            input_paths, schema, support, max_basket_items, runner, conf_paths, extra_args
        )
    chunks, chunk_size = son_chunks(frequent["baskets"], support, chunk_baskets)
    pass1, pass2, baskets, n_candidates, itemsets = _two_passes(
        input_paths, args, frequent, chunks, runner, conf_paths, say
    )
    son = _summed(pass1.counters, COUNTER_GROUP_SON)
    itemsets.sort(key=lambda r: (len(r["items"]), r["items"]))
    details = {
        "baskets": baskets,
        "capped_baskets": _group(pass1.counters, 0, COUNTER_GROUP_BASKETS).get("capped", 0),
        "candidates": n_candidates,
        "chunks": son.get("chunks", 0),
        "chunk_baskets": chunk_size,
        "local_itemsets": son.get("local_itemsets", 0),
        "frequent_items": len(frequent["items"]),
        "frequent_pairs": len(frequent["pairs"]),
        "itemsets": len(itemsets),
        "lines": pass1.lines,
        "seconds": {
            **seconds,
            "pass1": round(pass1.seconds, 3),
            "pass2": round(pass2.seconds, 3),
        },
    }
    return itemsets, details


def _job_args(schema, support, max_size, max_basket_items, max_candidates, extra_args):
    args = [*schema_to_args(schema), "--min-support", str(support)]
    for name, value in (
        ("max_size", max_size),
        ("max_basket_items", max_basket_items),
        ("max_candidates", max_candidates),
    ):
        if _limit(name, value) is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    if max_candidates is None:
        args += ["--max-candidates", "0"]
    return args + list(extra_args)


def _two_passes(input_paths, args, frequent, chunks, runner, conf_paths, say):
    """SON's runs: ``(pass 1 run, pass 2 run, baskets, candidates, itemsets)``, checked."""
    tmp_dir = tempfile.mkdtemp(prefix="crm-son-")
    try:
        frequent_path = os.path.join(tmp_dir, "frequent.jsonl")
        _write_frequent(frequent_path, frequent)
        candidates_path = os.path.join(tmp_dir, "candidates.jsonl")
        say(f"SON pass 1: local frequent itemsets of {chunks:,} chunk(s)")
        pass1_args = [*args, "--chunks", str(chunks), "--frequent", frequent_path]
        with run_job(
            MRFrequentItemsets, input_paths, pass1_args, runner=runner, conf_paths=conf_paths
        ) as pass1:
            baskets, n_candidates = _write_candidates(pass1.rows(), candidates_path)
        say(f"SON pass 2: counting {n_candidates:,} candidates over {baskets:,} baskets")
        pass2_args = [*args, "--candidates", candidates_path]
        with run_job(
            MRFrequentItemsets, input_paths, pass2_args, runner=runner, conf_paths=conf_paths
        ) as pass2:
            itemsets = list(pass2.rows())
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    counted = _group(pass2.counters, 0, COUNTER_GROUP_BASKETS).get("baskets", 0)
    if counted != baskets or pass2.lines != pass1.lines or baskets != frequent["baskets"]:
        raise RuntimeError(
            f"SON pass 1 saw {baskets} baskets and lines {pass1.lines}, pass 2 saw "
            f"{counted} baskets and lines {pass2.lines}, the frequent items and pairs are "
            f"of {frequent['baskets']} baskets: the input changed between the runs"
        )
    return pass1, pass2, baskets, n_candidates, itemsets


def _frequent_items_and_pairs(
    input_paths, schema, support, max_basket_items, runner, conf_paths, extra_args
):
    """The co-occurrence job's frequent items and pairs, as ``frequent``, and its seconds."""
    args = [
        *schema_to_args(schema),
        "--min-support",
        repr(float(support)),
        "--min-confidence",
        "1",
        "--max-basket-items",
        str(max_basket_items or _NO_CAP),
        *extra_args,
    ]
    found = {"item": [], "pair": []}
    with run_job(
        MRItemCooccurrence, input_paths, args, runner=runner, conf_paths=conf_paths
    ) as run:
        for record in run.rows():
            if record["kind"] in found:
                found[record["kind"]].append(record)
        baskets = _group(run.counters, 0, COUNTER_GROUP_BASKETS).get("baskets", 0)
        seconds = round(run.seconds, 3)
    return {"baskets": baskets, "items": found["item"], "pairs": found["pair"]}, seconds


def _write_frequent(path, frequent):
    with open(path, "w", encoding="utf-8") as f:
        for record in frequent["items"]:
            f.write(json.dumps({"item": record["item"]}, ensure_ascii=False) + "\n")
        for record in frequent["pairs"]:
            f.write(json.dumps({"pair": record["items"]}, ensure_ascii=False) + "\n")


def _write_candidates(rows, path):
    """Write pass 1's rows to ``path``: ``(baskets, candidates)``."""
    baskets = 0
    n_candidates = 0
    with open(path, "w", encoding="utf-8") as f:
        for record in rows:
            if "baskets" in record:
                baskets += record["baskets"]
            else:
                n_candidates += 1
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return baskets, n_candidates


def _group(counters, step, group):
    return counters[step].get(group, {}) if len(counters) > step else {}


def _summed(counters, group):
    total = {}
    for step in counters:
        for name, value in step.get(group, {}).items():
            total[name] = total.get(name, 0) + value
    return total


def derive_rules(itemsets, n_baskets, min_confidence=0):
    """Association rules ``antecedent -> one item`` from frequent itemsets and their counts.

    Parameters
    ----------
    itemsets : list of dict
        ``{"items": [...], "count": int}`` for every frequent itemset (closed under
        subsets, as :func:`find_frequent_itemsets` returns them).
    n_baskets : int
        The number of baskets the counts are out of.
    min_confidence : str or float
        Keep rules with confidence >= this, compared exactly (``"0.5"`` is 1/2).

    Returns
    -------
    list of dict
        Rules (see the module docstring), sorted by antecedent size, antecedent and
        consequent.

    Raises
    ------
    ValueError
        When ``min_confidence`` is not in [0, 1], or a subset's count is missing (the
        itemsets are not closed under subsets), naming it.
    """
    threshold = parse_min_confidence(min_confidence)
    counts = {tuple(r["items"]): r["count"] for r in itemsets}
    rules = []
    for items, count in counts.items():
        if len(items) < 2:
            continue
        for i, consequent in enumerate(items):
            antecedent = items[:i] + items[i + 1 :]
            try:
                count_a = counts[antecedent]
                count_c = counts[(consequent,)]
            except KeyError as e:
                raise ValueError(
                    f"itemset {list(e.args[0])!r}, a subset of {list(items)!r}, has no count"
                ) from None
            if count * threshold.denominator < threshold.numerator * count_a:
                continue
            support = count / n_baskets
            support_a = count_a / n_baskets
            support_c = count_c / n_baskets
            confidence = count / count_a
            rules.append(
                {
                    "antecedent": list(antecedent),
                    "consequent": [consequent],
                    "count": count,
                    "support": support,
                    "confidence": confidence,
                    "lift": confidence / support_c,
                    "leverage": support - support_a * support_c,
                    # confidence 1 makes it infinite: null keeps the record valid JSON
                    "conviction": None if count == count_a else (1 - support_c) / (1 - confidence),
                    "antecedent_support": support_a,
                    "consequent_support": support_c,
                }
            )
    rules.sort(key=lambda r: (len(r["antecedent"]), r["antecedent"], r["consequent"]))
    return rules
