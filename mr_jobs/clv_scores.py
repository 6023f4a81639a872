"""Score every customer with fitted BG/NBD and Gamma-Gamma models: a map-only pass.

Input: the rows :mod:`mr_jobs.clv_stats` reads (RFM rows of period ``D``). Option:
``--model`` a JSON object (passed on the command line: a few numbers)::

    {"bgnbd": [r, alpha, a, b], "gamma_gamma": [p, q, v], "horizon_days": 365,
     "discount_rate": 0.01, "tiers": {"high": 812.5, "medium": 120.0}}

Output: one JSON object per customer, in the input's order::

    {"customer_id": "C1", "frequency": 3, "recency": 120, "T": 300,
     "monetary_value": 41.5, "p_alive": 0.71, "expected_purchases": 1.9,
     "expected_value": 40.2, "clv": 74.1, "value_tier": "medium"}

``expected_purchases`` are in the next ``horizon_days``; ``expected_value`` is the
Gamma-Gamma mean purchase value; ``clv`` is ``expected_value`` times the discounted
expected purchases (:func:`mr_jobs.clv_math.clv_factor`); ``value_tier`` is ``high`` for
``clv >= tiers.high``, ``medium`` for ``clv >= tiers.medium``, else ``low``. The BG/NBD
figures of a customer depend only on ``(x, t_x, T)``: a task computes them once per
distinct triple (at most ``--cache-size`` kept). Counters: ``crm.output`` ``rows``;
``crm.clv.tiers`` ``high``/``medium``/``low``; ``crm.clv`` ``clv_micros`` and
``expected_purchases_micros`` (sums of the values rounded to 1e-6: counters are
integers). The tasks need scipy (installed with scikit-learn).
"""

import json

from mrjob.protocol import BytesValueProtocol

from mr_jobs.base import CrmJob
from mr_jobs.clv_math import clv_factor, expected_value, p_alive
from mr_jobs.clv_stats import COUNTER_GROUP_CLV, key_of_row
from mr_jobs.protocols import CompactJSONValueProtocol, loads

__all__ = ["COUNTER_GROUP_TIERS", "MRCLVScores", "score_row", "value_tier"]

#: Counter group of the customers per value tier.
COUNTER_GROUP_TIERS = "crm.clv.tiers"
_MICRO = 1_000_000


def value_tier(clv, tiers):
    """``high``, ``medium`` or ``low`` by the thresholds ``tiers``."""
    if clv >= tiers["high"]:
        return "high"
    if clv >= tiers["medium"]:
        return "medium"
    return "low"


def score_row(row, model, triples=None):
    """The score of one row (see the module docstring).

    Parameters
    ----------
    row : dict
    model : dict
        As ``--model``.
    triples : dict, optional
        A cache ``(x, t_x, T) -> (p_alive, expected purchases, discounted factor)``.

    Returns
    -------
    dict
    """
    x, t_x, T, _holdout = key_of_row(row)
    triple = (x, t_x, T)
    found = None if triples is None else triples.get(triple)
    if found is None:
        bgnbd = model["bgnbd"]
        purchases, factor = clv_factor(
            bgnbd, model["horizon_days"], model["discount_rate"], x, float(t_x), float(T)
        )
        found = (p_alive(bgnbd, x, float(t_x), float(T)), purchases, factor)
        if triples is not None:
            triples[triple] = found
    alive, purchases, factor = found
    value = expected_value(model["gamma_gamma"], x, float(row["monetary_value"]))
    clv = value * factor
    return {
        "customer_id": row["customer_id"],
        "frequency": x,
        "recency": t_x,
        "T": T,
        "monetary_value": row["monetary_value"],
        "p_alive": alive,
        "expected_purchases": purchases,
        "expected_value": value,
        "clv": clv,
        "value_tier": value_tier(clv, model["tiers"]) if model.get("tiers") else None,
    }


class MRCLVScores(CrmJob):
    """Rows -> P(alive), expected purchases and value, CLV and value tier."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--model", required=True, help="the fitted models, as JSON")
        self.add_passthru_arg(
            "--cache-size", type=int, default=200_000, help="triples a task keeps at most"
        )

    def mapper_init(self):
        self._model = json.loads(self.options.model)
        self._triples = {}
        self._rows = 0
        self._tiers = {"high": 0, "medium": 0, "low": 0}
        self._clv_micros = 0
        self._purchase_micros = 0

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        if len(self._triples) >= self.options.cache_size:
            self._triples = {}
        out = score_row(loads(text), self._model, self._triples)
        self._rows += 1
        self._tiers[out["value_tier"]] += 1
        self._clv_micros += round(out["clv"] * _MICRO)
        self._purchase_micros += round(out["expected_purchases"] * _MICRO)
        yield None, out

    def mapper_final(self):
        self.count_output(self._rows)
        for tier, count in self._tiers.items():
            if count:
                self.increment_counter(COUNTER_GROUP_TIERS, tier, count)
        self.increment_counter(COUNTER_GROUP_CLV, "clv_micros", self._clv_micros)
        self.increment_counter(
            COUNTER_GROUP_CLV, "expected_purchases_micros", self._purchase_micros
        )


if __name__ == "__main__":
    MRCLVScores.run()
