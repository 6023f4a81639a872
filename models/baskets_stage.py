"""The baskets stage: co-occurrence, association rules, frequent itemsets, recommendations.

Jobs, in order, over the same basket lines (full order lines, or ``basket_id,item``):

1. :class:`mr_jobs.cooccurrence.MRItemCooccurrence`: frequent items and pairs and the
   pairwise rules A -> B (:func:`count_cooccurrence`).
2. Unless ``itemsets=False``, SON's two runs of :class:`mr_jobs.frequent_itemsets.
   MRFrequentItemsets`: frequent itemsets of every size up to ``max_itemset_size`` and the
   rules with one consequent (:mod:`models.itemsets_stage`). Their pairs must equal job 1's
   (checked: two algorithms, one answer).
3. When the input has a customer column, :class:`mr_jobs.recommendations.
   MRCustomerRecommendations`: each customer's top-N items not bought yet
   (:mod:`models.recommend`).

Every job accounts for every line (read = accepted + rejected by reason) and the stage
checks that all of them read the same lines. With ``as_of``, every job is given
``--as-of``: order lines dated after it are rejected as ``after_as_of`` (basket lines,
which carry no date, are kept), so ``crm-mr run --as-of`` mines what its RFM rows cover.

Published layout
----------------
``<output>/`` (the association analysis)::

    part-*                  pairwise rules, JSON lines, strongest first (lift, then
                            confidence, then antecedent and consequent)
    rules.csv               the same rules, flat
    items.csv / pairs.csv   frequent items / frequent pairs with counts and support
    itemsets.jsonl / .csv   frequent itemsets of every size (SON)
    itemset_rules.jsonl / .csv
                            rules antecedent (1+ items) -> one consequent, from the itemsets
    _manifest.json, _SUCCESS

``<recommendations>/``::

    part-*                  per customer, JSON lines, sorted by customer_id
    customers.csv           the same, one row per (customer, rank)
    item_to_item.jsonl / .csv
                            per item, the top-N items to recommend with it
    _manifest.json, _SUCCESS

Every column and formula is in the README (section "Market baskets").
"""

from hdfs_io import Publication, check_can_publish, get_filesystem
from models.checks import check_int
from models.inputs import describe_inputs, local_inputs
from models.itemsets_stage import derive_rules, find_frequent_itemsets, parse_min_confidence
from models.job_runner import run_job
from models.manifest import Stopwatch, build_manifest
from models.outputs import csv_from_parts, csv_string, jsonl_text, write_json_parts
from models.progress import summarize_manifest
from models.recommend import item_recommendations, recommend_for_customers
from mr_jobs.cooccurrence import (
    COUNTER_GROUP_BASKETS,
    COUNTER_GROUP_ITEMS,
    COUNTER_GROUP_PAIRS,
    MRItemCooccurrence,
)
from mr_jobs.frequent_itemsets import parse_min_support
from mr_jobs.job_options import schema_to_args
from mr_jobs.records import parse_as_of

__all__ = [
    "run_baskets_stage",
    "count_cooccurrence",
    "rule_strength",
    "DEFAULTS",
    "RULE_COLUMNS",
    "ITEMSET_RULE_COLUMNS",
    "ITEM_TO_ITEM_COLUMNS",
    "CUSTOMER_COLUMNS",
]

#: Default thresholds of the stage (and of ``crm-mr baskets`` / ``crm-mr run``).
DEFAULTS = {
    "min_support": "0.01",
    "min_confidence": "0.5",
    "min_count": 1,
    "max_basket_items": 1000,
    "max_itemset_size": 4,
    "top_n": 10,
    "rank_by": "lift",
}

ITEM_COLUMNS = ("item", "count", "support")
PAIR_COLUMNS = ("item_a", "item_b", "count", "support")
RULE_COLUMNS = (
    "antecedent",
    "consequent",
    "count",
    "antecedent_count",
    "consequent_count",
    "support",
    "antecedent_support",
    "consequent_support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
)
ITEMSET_COLUMNS = ("size", "items", "count", "support")
ITEMSET_RULE_COLUMNS = (
    "antecedent",
    "consequent",
    "count",
    "support",
    "antecedent_support",
    "consequent_support",
    "confidence",
    "lift",
    "leverage",
    "conviction",
)
ITEM_TO_ITEM_COLUMNS = (
    "item",
    "rank",
    "recommended",
    "score",
    "confidence",
    "lift",
    "support",
    "count",
)
CUSTOMER_COLUMNS = ("customer_id", "history_items", "rank", "item", "score", "because")


def _say(reporter, stage):
    return reporter.progress(stage) if reporter else (lambda message: None)


def count_cooccurrence(
    input_paths,
    *,
    schema,
    min_support=DEFAULTS["min_support"],
    min_count=DEFAULTS["min_count"],
    min_confidence=DEFAULTS["min_confidence"],
    max_basket_items=DEFAULTS["max_basket_items"],
    runner="inline",
    conf_paths=None,
    extra_args=(),
    progress=None,
):
    """Frequent items, frequent pairs and pairwise rules, with :class:`MRItemCooccurrence`.

    Parameters
    ----------
    input_paths : list of str
        Files or directories the runner can read.
    schema : mr_jobs.records.InputSchema
        Basket lines or full order lines with an item column.
    min_support : str or float
        Least share of baskets, in (0, 1].
    min_count : int
        Least number of baskets.
    min_confidence : str or float
        Least confidence of a rule, in [0, 1]; never changes which pairs are frequent.
    max_basket_items : int
        Baskets with more distinct items are left out and counted as capped.
    runner, conf_paths, extra_args, progress
        See :func:`models.job_runner.run_job`.

    Returns
    -------
    (dict, dict)
        ``{"items": [...], "pairs": [...], "rules": [...]}`` (the job's records by kind,
        items and pairs sorted by name, rules strongest first) and details: ``baskets``,
        ``one_item_baskets``, ``capped_baskets``, ``items_distinct``, ``items_frequent``,
        ``pairs_distinct``, ``pairs_frequent``, ``rules``, ``lines``, ``seconds``.

    Raises
    ------
    ValueError
        A threshold out of range, named.
    """
    support = parse_min_support(min_support)
    confidence = parse_min_confidence(min_confidence)
    check_int("min_count", min_count, 1)
    check_int("max_basket_items", max_basket_items, 2)
    args = [
        *schema_to_args(schema),
        "--min-support",
        repr(float(support)),
        "--min-count",
        str(min_count),
        "--min-confidence",
        repr(float(confidence)),
        "--max-basket-items",
        str(max_basket_items),
        *extra_args,
    ]
    found = {"item": [], "pair": [], "rule": []}
    with run_job(
        MRItemCooccurrence,
        input_paths,
        args,
        runner=runner,
        conf_paths=conf_paths,
        progress=progress,
    ) as run:
        for record in run.rows():
            kind = record.pop("kind")
            found[kind].append(record)
        counters = run.counters[0] if run.counters else {}
        later = {}
        for step in run.counters[1:]:
            for group, values in step.items():
                for name, value in values.items():
                    later.setdefault(group, {})[name] = later.get(group, {}).get(name, 0) + value
        lines, seconds = run.lines, run.seconds
    baskets = counters.get(COUNTER_GROUP_BASKETS, {})
    items = sorted(found["item"], key=lambda r: r["item"])
    pairs = sorted(found["pair"], key=lambda r: r["items"])
    rules = sorted(found["rule"], key=rule_strength)
    details = {
        "baskets": baskets.get("baskets", 0),
        "one_item_baskets": baskets.get("one_item", 0),
        "capped_baskets": baskets.get("capped", 0),
        "items_distinct": later.get(COUNTER_GROUP_ITEMS, {}).get("distinct", len(items)),
        "items_frequent": len(items),
        "pairs_distinct": later.get(COUNTER_GROUP_PAIRS, {}).get("distinct"),
        "pairs_frequent": len(pairs),
        "rules": len(rules),
        "lines": lines,
        "seconds": round(seconds, 3),
    }
    return {"items": items, "pairs": pairs, "rules": rules}, details


def _iso_date(as_of):
    """``as_of`` checked as ``YYYY-MM-DD`` (a ValueError naming it otherwise)."""
    parse_as_of(as_of)
    return as_of


def rule_strength(rule):
    """Sort key of rules, strongest first: lift, confidence (both descending), then names.

    Works for pairwise rules (item names) and itemset rules (lists of names) alike.
    """
    return (-rule["lift"], -rule["confidence"], rule["antecedent"], rule["consequent"])


def run_baskets_stage(
    input_paths,
    output_path,
    *,
    schema,
    recommendations_path=None,
    runner="inline",
    min_support=DEFAULTS["min_support"],
    min_confidence=DEFAULTS["min_confidence"],
    min_count=DEFAULTS["min_count"],
    max_basket_items=DEFAULTS["max_basket_items"],
    itemsets=True,
    max_itemset_size=DEFAULTS["max_itemset_size"],
    top_n=DEFAULTS["top_n"],
    rank_by=DEFAULTS["rank_by"],
    as_of=None,
    overwrite=False,
    conf_paths=None,
    reporter=None,
):
    """Mine the baskets in ``input_paths`` and publish rules, itemsets and recommendations.

    Parameters
    ----------
    input_paths : list of str
        Basket or order-line files or directories, local or ``hdfs://``.
    output_path : str
        Where to publish the association analysis (refused if it exists and not
        ``overwrite``).
    schema : mr_jobs.records.InputSchema
        How to read the lines; needs a basket (``order_id``) and an ``item_id`` column.
    recommendations_path : str, optional
        Where to publish the recommendations; nothing is recommended without it.
    runner : str
        mrjob runner.
    min_support, min_confidence, min_count, max_basket_items
        See :func:`count_cooccurrence`; ``min_support`` and ``min_confidence`` apply to the
        itemsets too.
    itemsets : bool
        Also mine frequent itemsets of size 3 and more (SON, two more runs).
    max_itemset_size : int or None
        Largest itemset mined (None: no limit).
    top_n : int
        Recommendations per item and per customer.
    rank_by : {"lift", "confidence", "leverage"}
        How item-to-item recommendations are ranked (see :mod:`models.recommend`).
    as_of : str, optional
        ``YYYY-MM-DD``: leave out the order lines dated after it (``after_as_of``).
    overwrite : bool
    conf_paths : list of str or None
    reporter : models.progress.Reporter, optional

    Returns
    -------
    dict
        The manifest of the association analysis; ``details["recommendations"]`` holds
        the recommendations' manifest when they were published.

    Raises
    ------
    ValueError
        A bad parameter, or a schema without a basket or item column, named.
    RuntimeError
        When the jobs read different lines, or the two algorithms disagree on the pairs.
    """
    say = _say(reporter, "baskets")
    if not (schema.has("order_id") and schema.has("item_id")):
        raise ValueError(
            f"columns={list(schema.columns)!r} need a basket (order_id) and an item_id "
            "column to make baskets"
        )
    # every parameter is checked before the first job runs
    _check_options(min_support, min_confidence, min_count, max_basket_items, max_itemset_size)
    item_recommendations([], top_n=top_n, rank_by=rank_by)  # checks both
    as_of_args = [] if as_of is None else ["--as-of", _iso_date(as_of)]
    fs, out = get_filesystem(output_path)
    check_can_publish(fs, out, overwrite)
    if recommendations_path is not None:
        check_can_publish(*get_filesystem(recommendations_path), overwrite)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    say(f"{len(inputs)} input(s), {sum(i['bytes'] for i in inputs):,} bytes -> {fs.uri(out)}")
    with Publication(fs, out, overwrite=overwrite) as publication:
        with local_inputs(input_paths, runner, progress=say) as readable:
            say("co-occurrence: baskets, items, pairs and rules A -> B")
            found, details = count_cooccurrence(
                readable,
                schema=schema,
                min_support=min_support,
                min_count=min_count,
                min_confidence=min_confidence,
                max_basket_items=max_basket_items,
                runner=runner,
                conf_paths=conf_paths,
                extra_args=as_of_args,
                progress=say,
            )
            lines = details["lines"]
            say(
                f"{details['baskets']:,} baskets, {details['items_frequent']:,} frequent items, "
                f"{details['pairs_frequent']:,} frequent pairs, {details['rules']:,} rules "
                f"({details['seconds']:.1f} s)"
            )
            sets, set_rules = [], []
            if itemsets:
                sets, set_rules = _itemsets(
                    readable,
                    found,
                    details,
                    schema=schema,
                    min_support=min_support,
                    min_count=min_count,
                    min_confidence=min_confidence,
                    max_itemset_size=max_itemset_size,
                    max_basket_items=max_basket_items,
                    jobs={"runner": runner, "conf_paths": conf_paths, "extra_args": as_of_args},
                    say=say,
                )
            rec_manifest = None
            if recommendations_path is not None:
                rec_manifest = _publish_recommendations(
                    readable,
                    recommendations_path,
                    found["rules"],
                    inputs=inputs,
                    schema=schema,
                    lines=lines,
                    source=fs.uri(out),
                    parameters={"top_n": top_n, "rank_by": rank_by, "overwrite": overwrite},
                    runner=runner,
                    conf_paths=conf_paths,
                    extra_args=as_of_args,
                    overwrite=overwrite,
                    reporter=reporter,
                )
        written = write_json_parts(publication, found["rules"])
        outputs = _write_tables(publication, found, sets if itemsets else None, set_rules)
        if rec_manifest is not None:
            details["recommendations"] = _recommendations_facts(rec_manifest)
        manifest = build_manifest(
            "baskets",
            inputs=inputs,
            parameters={
                "schema": schema.to_dict(),
                "min_support": str(min_support),
                "min_confidence": str(min_confidence),
                "min_count": min_count,
                "max_basket_items": max_basket_items,
                "itemsets": itemsets,
                "max_itemset_size": max_itemset_size,
                "as_of": as_of,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            outputs=outputs,
            details={k: v for k, v in details.items() if k != "lines"},
        )
        publication.commit(manifest)
    summarize_manifest(reporter, "baskets", manifest)
    return manifest


def _check_options(min_support, min_confidence, min_count, max_basket_items, max_itemset_size):
    parse_min_support(min_support)
    parse_min_confidence(min_confidence)
    check_int("min_count", min_count, 1)
    check_int("max_basket_items", max_basket_items, 2)
    if max_itemset_size is not None:
        rule = "an integer >= 1, or None for no limit"
        check_int("max_itemset_size", max_itemset_size, 1, rule=rule)


def _itemsets(
    readable,
    found,
    details,
    *,
    min_support,
    min_count,
    min_confidence,
    max_itemset_size,
    max_basket_items,
    schema,
    jobs,
    say,
):
    """SON's frequent itemsets and their one-consequent rules; records them in ``details``."""
    if not found["pairs"]:
        # no frequent pair, so no frequent itemset of 2 or more (Apriori): the frequent
        # items are all there is, and SON's two runs are skipped
        sets = [
            {"items": [r["item"]], "count": r["count"], "support": r["support"]}
            for r in found["items"]
        ]
        details["itemsets"] = {
            "by_size": _count_by_size(sets),
            "rules": 0,
            "candidates": 0,
            "seconds": {},
            "skipped": "no frequent pair: the frequent items are the only itemsets",
        }
        return sets, []
    sets, set_details = find_frequent_itemsets(
        readable,
        schema=schema,
        min_support=min_support,
        max_size=max_itemset_size,
        max_basket_items=max_basket_items,
        # SON mines over job 1's frequent items and pairs; with a min_count they may be
        # too few, so SON finds its own (min count 1)
        frequent={**found, "baskets": details["baskets"]} if min_count == 1 else None,
        progress=say,
        **jobs,
    )
    _check_same_lines("frequent itemsets", set_details["lines"], details["lines"])
    _check_same_pairs(found["pairs"], sets, details, set_details)
    set_rules = derive_rules(sets, set_details["baskets"], min_confidence)
    set_rules.sort(key=rule_strength)
    details["itemsets"] = {
        "by_size": _count_by_size(sets),
        "rules": len(set_rules),
        "candidates": set_details["candidates"],
        "chunks": set_details["chunks"],
        "seconds": set_details["seconds"],
    }
    say(f"{len(sets):,} frequent itemsets, {len(set_rules):,} rules with one consequent")
    return sets, set_rules


def _write_tables(publication, found, sets, set_rules):
    """Write the rules', items' and pairs' CSV (and the itemsets' files unless ``sets`` is
    None); return the names written."""
    publication.write_file("rules.csv", csv_string(RULE_COLUMNS, found["rules"]))
    publication.write_file("items.csv", csv_string(ITEM_COLUMNS, found["items"]))
    pairs = ({**p, "item_a": p["items"][0], "item_b": p["items"][1]} for p in found["pairs"])
    publication.write_file("pairs.csv", csv_string(PAIR_COLUMNS, pairs))
    outputs = ["rules.csv", "items.csv", "pairs.csv"]
    if sets is None:
        return outputs
    publication.write_file("itemsets.jsonl", jsonl_text(sets))
    sized = ({**s, "size": len(s["items"])} for s in sets)
    publication.write_file("itemsets.csv", csv_string(ITEMSET_COLUMNS, sized))
    publication.write_file("itemset_rules.jsonl", jsonl_text(set_rules))
    publication.write_file("itemset_rules.csv", csv_string(ITEMSET_RULE_COLUMNS, set_rules))
    return outputs + ["itemsets.jsonl", "itemsets.csv", "itemset_rules.jsonl", "itemset_rules.csv"]


def _recommendations_facts(rec_manifest):
    """What the baskets manifest records of the recommendations it published."""
    return {
        "output": rec_manifest["output"],
        "customers": rec_manifest["details"]["customers"],
        "customers_with_recommendations": rec_manifest["details"]["with_recommendations"],
        "rows_written": rec_manifest["rows_written"],
        "seconds": rec_manifest["timings"]["seconds"],
    }


def _publish_recommendations(
    input_paths,
    output_path,
    rules,
    *,
    inputs,
    schema,
    lines,
    source,
    parameters,
    runner,
    conf_paths,
    extra_args,
    overwrite,
    reporter,
):
    say = _say(reporter, "recommendations")
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    top_n, rank_by = parameters["top_n"], parameters["rank_by"]
    with Publication(fs, out, overwrite=overwrite) as publication:
        by_item = item_recommendations(rules, top_n=top_n, rank_by=rank_by)
        say(f"item to item: {len({r['item'] for r in by_item}):,} items with recommendations")
        details = {"customers": None, "with_recommendations": 0}
        written = 0
        if not by_item:
            details["skipped"] = "no rule with lift > 1 to recommend from"
            say("no rule with lift > 1: nothing to recommend")
        elif schema.has("customer_id"):
            say("per customer: items not bought yet, scored from the customer's history")
            _rows, details = recommend_for_customers(
                input_paths,
                rules,
                schema=schema,
                top_n=top_n,
                runner=runner,
                conf_paths=conf_paths,
                extra_args=extra_args,
                progress=say,
                publication=publication,
            )
            _check_same_lines("recommendations", details["lines"], lines)
            written = details.pop("rows_written")
            details = {k: v for k, v in details.items() if k != "lines"}
        else:
            details["skipped"] = "the input has no customer column"
            say("no customer column: no per-customer recommendations")
        if written == 0:
            publication.write_part(0, [])
        csv_from_parts(publication, "customers.csv", CUSTOMER_COLUMNS, explode=_flat_customers)
        publication.write_file("item_to_item.jsonl", jsonl_text(by_item))
        publication.write_file("item_to_item.csv", csv_string(ITEM_TO_ITEM_COLUMNS, by_item))
        details["item_to_item_rows"] = len(by_item)
        manifest = build_manifest(
            "recommendations",
            inputs=[{"path": p["path"], "bytes": p["bytes"]} for p in inputs]
            + [{"path": source, "bytes": None}],
            parameters=parameters,
            runner=None if "skipped" in details else runner,
            lines=lines,  # the co-occurrence job's, checked equal to the customer job's
            rows_written=written,
            stopwatch=watch,
            outputs=["customers.csv", "item_to_item.jsonl", "item_to_item.csv"],
            details=details,
        )
        publication.commit(manifest)
    if reporter:
        reporter.summary(
            "recommendations",
            rows_in=lines["read"],
            rows_out=written,
            rejected=lines["rejected"],
            seconds=manifest["timings"]["seconds"],
        )
    manifest["output"] = fs.uri(out)
    return manifest


def _flat_customers(row):
    """The CSV rows of one customer's recommendations, one per recommendation."""
    for rank, rec in enumerate(row["recommendations"], 1):
        yield {
            "customer_id": row["customer_id"],
            "history_items": row["history_items"],
            "rank": rank,
            "item": rec["item"],
            "score": rec["score"],
            "because": rec["because"],
        }


def _check_same_lines(what, theirs, ours):
    if theirs != ours:
        raise RuntimeError(
            f"the {what} job read lines {theirs}, the co-occurrence job {ours}: "
            "the input changed during the stage"
        )


def _check_same_pairs(pairs, sets, details, set_details):
    """The co-occurrence job and SON must find the same frequent pairs with equal counts."""
    if set_details["baskets"] != details["baskets"]:
        raise RuntimeError(
            f"SON counted {set_details['baskets']} baskets, the co-occurrence job "
            f"{details['baskets']}"
        )
    ours = {tuple(p["items"]): p["count"] for p in pairs}
    theirs = {tuple(s["items"]): s["count"] for s in sets if len(s["items"]) == 2}
    if ours != theirs:
        differ = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        raise RuntimeError(
            f"the co-occurrence job and SON disagree on frequent pairs, e.g. {differ}"
        )


def _count_by_size(sets):
    sizes = {}
    for s in sets:
        sizes[len(s["items"])] = sizes.get(len(s["items"]), 0) + 1
    return {str(k): v for k, v in sorted(sizes.items())}
