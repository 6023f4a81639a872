"""The ``baskets`` stage, which also publishes ``recommendations``
(:mod:`models.baskets_stage`)."""

from models.stages.base import Option, Stage, stage_entry

__all__ = ["BasketsStage"]


def _options():
    from models.baskets_stage import DEFAULTS

    return (
        Option(
            "min_support",
            "--min-support",
            default=DEFAULTS["min_support"],
            help="least share of baskets holding a frequent item, pair or itemset "
            "(default: %(default)s)",
        ),
        Option(
            "min_confidence",
            "--min-confidence",
            default=DEFAULTS["min_confidence"],
            help="least confidence of a rule; never changes what is frequent "
            "(default: %(default)s)",
        ),
        Option(
            "min_count",
            "--min-count",
            type=int,
            default=DEFAULTS["min_count"],
            help="least number of baskets holding a frequent item or pair (default: %(default)s)",
        ),
        Option(
            "max_basket_items",
            "--max-basket-items",
            type=int,
            default=DEFAULTS["max_basket_items"],
            help="baskets with more distinct items are left out and counted (default: %(default)s)",
        ),
        Option(
            "itemsets",
            "--no-itemsets",
            negate=True,
            help="pairs only: skip the frequent itemsets of size 3 and more (two SON runs)",
        ),
        Option(
            "max_itemset_size",
            "--max-itemset-size",
            type=int,
            default=DEFAULTS["max_itemset_size"],
            help="largest frequent itemset mined; 0 for no limit (default: %(default)s)",
            to_value=lambda size: size or None,
        ),
        Option(
            "top_n",
            "--top-n",
            type=int,
            default=DEFAULTS["top_n"],
            help="recommendations per item and per customer (default: %(default)s)",
        ),
        Option(
            "rank_by",
            "--rank-by",
            choices=("lift", "confidence", "leverage"),
            default=DEFAULTS["rank_by"],
            help="how items recommended with an item are ranked (default: %(default)s)",
        ),
    )


class BasketsStage(Stage):
    """Frequent items, pairs, itemsets and rules, and the recommendations; skipped when
    the input has no order (basket) and item columns."""

    name = "baskets"
    runner = "models.baskets_stage:run_baskets_stage"
    publishes = ("baskets", "recommendations")
    options_key = "baskets"
    needs = ("inputs", "schema")

    @property
    def options(self):
        return _options()

    def skip_reason(self, run):
        schema = run.schema
        if schema.has("order_id") and schema.has("item_id"):
            return None
        return f"columns={list(schema.columns)!r} have no order_id and item_id to make baskets"

    def compute(self, run):
        from models.baskets_stage import run_baskets_stage

        manifest = run_baskets_stage(
            run.inputs,
            run.uri("baskets"),
            schema=run.schema,
            recommendations_path=run.uri("recommendations"),
            as_of=run.as_of,
            **run.jobs(),
            **self.options_of(run),
        )
        rec = manifest["details"]["recommendations"]
        return [
            stage_entry("baskets", run.uri("baskets"), manifest),
            {
                "stage": "recommendations",
                "status": "completed",
                "output": rec["output"],
                "lines": manifest["lines"],
                "rows_written": rec["rows_written"],
                "seconds": rec["seconds"],
            },
        ]
