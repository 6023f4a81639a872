"""Score every customer with a shipped churn model: a map-only pass over RFM rows.

Input: RFM rows (:mod:`mr_jobs.rfm`), one JSON object per line, as the RFM stage publishes
them. Options: ``--model FILE`` (a ``model.skops`` written by :func:`models.churn.save_model`,
shipped to the tasks with the job and loaded with the trust rules of
:func:`mr_jobs.churn_rules.load_model_payload`), ``--value`` (the column valued at risk),
``--top-drivers`` and ``--as-of`` (the date every row must have been computed at; a row
of another date fails the task, naming it). Output: one JSON object per customer, in the
input's order::

    {"customer_id": "C1", "churn_probability": 0.83, "risk_tier": "high", "value": 120.0,
     "value_at_risk": 99.6, "recency_days": 210, "orders": 3, "total_value": 120.0,
     "drivers": [{"feature": "recency_days", "value": 210.0, "effect": 1.2}]}

(``drivers`` only with ``--top-drivers`` > 0.) Rows are scored in batches of
``--batch-size``: one ``predict_proba`` per batch, not per row. Counters: ``crm.output``
``rows``; ``crm.churn.tiers`` ``high``/``medium``/``low``; ``crm.churn``
``value_at_risk_micros`` (the sum of ``round(value_at_risk * 10**6)``: counters are
integers); ``crm.churn.probability`` ``00`` .. ``19``: customers per probability bin of
width 0.05 (bin ``i`` holds ``[i/20, (i+1)/20)``, 1.0 in ``19``; :func:`probability_bin`),
the distribution the report draws. The tasks need numpy, scikit-learn and skops.
"""

from mrjob.protocol import BytesValueProtocol

from mr_jobs.base import CrmJob
from mr_jobs.churn_rules import (
    RFM_INPUT_COLUMNS,
    driver_effects,
    feature_array,
    list_drivers,
    load_model_payload,
    risk_tiers,
)
from mr_jobs.protocols import CompactJSONValueProtocol, loads

__all__ = [
    "COUNTER_GROUP_PROBABILITY",
    "COUNTER_GROUP_TIERS",
    "PROBABILITY_BINS",
    "MRChurnScores",
    "probability_bin",
]

#: Counter group of the customers per risk tier.
COUNTER_GROUP_TIERS = "crm.churn.tiers"
#: Counter group of the customers per churn probability bin (:func:`probability_bin`).
COUNTER_GROUP_PROBABILITY = "crm.churn.probability"
#: Bins of the probability histogram, of width ``1 / PROBABILITY_BINS``.
PROBABILITY_BINS = 20
_MICRO = 1_000_000


def probability_bin(p):
    """The counter name of probability ``p``'s bin: ``"00"`` .. ``"19"``."""
    return f"{min(max(int(p * PROBABILITY_BINS), 0), PROBABILITY_BINS - 1):02d}"


class MRChurnScores(CrmJob):
    """RFM rows -> churn probability, risk tier, value at risk and drivers."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg("--model", required=True, help="model.skops to score with")
        self.add_passthru_arg("--value", default="total_value", help="column valued at risk")
        self.add_passthru_arg("--top-drivers", type=int, default=3, help="drivers per row")
        self.add_passthru_arg("--as-of", default=None, help="YYYY-MM-DD every row should have")
        self.add_passthru_arg("--batch-size", type=int, default=10_000, help="rows per batch")

    def mapper_init(self):
        self._estimator, meta = load_model_payload(self.options.model)
        self._base = self._estimator.calibrated_classifiers_[0].estimator
        self._reference = meta["reference"]
        self._features = tuple(meta["features"])
        self._tiers = meta["tiers"]
        self._batch = []
        self._rows = 0
        self._tier_counts = {"high": 0, "medium": 0, "low": 0}
        self._at_risk_micros = 0
        self._bins = {}

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        self._check(row)
        self._batch.append(row)
        if len(self._batch) >= self.options.batch_size:
            yield from self._score_batch()

    def mapper_final(self):
        yield from self._score_batch()
        self.count_output(self._rows)
        for tier, count in self._tier_counts.items():
            if count:
                self.increment_counter(COUNTER_GROUP_TIERS, tier, count)
        self.increment_counter("crm.churn", "value_at_risk_micros", self._at_risk_micros)
        for name, count in sorted(self._bins.items()):
            self.increment_counter(COUNTER_GROUP_PROBABILITY, name, count)

    def _check(self, row):
        value = self.options.value
        if value not in row:
            customer = row.get("customer_id")
            raise ValueError(f"value={value!r} is not a column of the row of {customer!r}")
        as_of = self.options.as_of
        if as_of is not None and row.get("as_of") != as_of:
            raise ValueError(
                f"customer_id={row.get('customer_id')!r} has as_of={row.get('as_of')!r}, "
                f"not the scoring date {as_of!r}"
            )

    def _score_batch(self):
        import numpy as np

        rows, self._batch = self._batch, []
        if not rows:
            return
        raw = {c: np.array([r[c] for r in rows], dtype=float) for c in RFM_INPUT_COLUMNS}
        x = feature_array(raw)
        p = self._estimator.predict_proba(x)[:, 1]
        worth = np.array([r[self.options.value] for r in rows], dtype=float)
        at_risk = p * worth
        tiers = risk_tiers(p, self._tiers)
        k = self.options.top_drivers
        drivers = None
        if k:
            effects = driver_effects(self._base, self._reference, self._features, x)
            drivers = list_drivers(effects, self._features, x, k)
        for i, r in enumerate(rows):
            yield None, self._scored_row(r, p[i], tiers[i], worth[i], at_risk[i], drivers, i)
        self._rows += len(rows)

    def _scored_row(self, row, p, tier, worth, at_risk, drivers, i):
        tier = str(tier)
        self._tier_counts[tier] += 1
        self._at_risk_micros += round(float(at_risk) * _MICRO)
        name = probability_bin(float(p))
        self._bins[name] = self._bins.get(name, 0) + 1
        out = {
            "customer_id": row["customer_id"],
            "churn_probability": float(p),
            "risk_tier": tier,
            "value": float(worth),
            "value_at_risk": float(at_risk),
            "recency_days": row["recency_days"],
            "orders": row["orders"],
            "total_value": float(row["total_value"]),
        }
        if drivers is not None:
            out["drivers"] = drivers[i]
        return out


if __name__ == "__main__":
    MRChurnScores.run()
