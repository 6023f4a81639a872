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
figures of a customer depend only on ``(x, t_x, T)``: a task scores ``--batch-size`` rows
at a time, computing the batch's new triples at once (numpy), and keeps at most
``--cache-size`` triples. Counters: ``crm.output`` ``rows``;
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

__all__ = ["COUNTER_GROUP_TIERS", "MRCLVScores", "score_rows", "value_tier"]

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


def _fill(triples, keys, model):
    """Compute the BG/NBD figures of the ``keys`` not in ``triples`` at once (vectorized)."""
    import numpy as np

    missing = list({k for k in keys if k not in triples})
    if not missing:
        return
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*missing, strict=True))
    bgnbd = model["bgnbd"]
    purchases, factor = clv_factor(bgnbd, model["horizon_days"], model["discount_rate"], x, t_x, T)
    alive = p_alive(bgnbd, x, t_x, T)
    for i, key in enumerate(missing):
        triples[key] = (float(alive[i]), float(purchases[i]), float(factor[i]))


def score_rows(rows, model, triples=None):
    """The scores of a batch of rows (see the module docstring), in their order.

    Parameters
    ----------
    rows : list of dict
    model : dict
        As ``--model``.
    triples : dict, optional
        A cache ``(x, t_x, T) -> (p_alive, expected purchases, discounted factor)``,
        filled with the batch's new triples.

    Returns
    -------
    list of dict
    """
    import numpy as np

    triples = {} if triples is None else triples
    keys = [key_of_row(row)[:3] for row in rows]
    _fill(triples, keys, model)
    x = np.array([k[0] for k in keys], dtype=float)
    m = np.array([row["monetary_value"] for row in rows], dtype=float)
    values = expected_value(model["gamma_gamma"], x, m).tolist()
    tiers = model.get("tiers")
    out = []
    for row, key, value in zip(rows, keys, values, strict=True):
        alive, purchases, factor = triples[key]
        clv = value * factor
        out.append(
            {
                "customer_id": row["customer_id"],
                "frequency": key[0],
                "recency": key[1],
                "T": key[2],
                "monetary_value": row["monetary_value"],
                "p_alive": alive,
                "expected_purchases": purchases,
                "expected_value": value,
                "clv": clv,
                "value_tier": value_tier(clv, tiers) if tiers else None,
            }
        )
    return out


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
        self.add_passthru_arg("--batch-size", type=int, default=5_000, help="rows per batch")

    def mapper_init(self):
        self._model = json.loads(self.options.model)
        self._triples = {}
        self._batch = []
        self._rows = 0
        self._tiers = {"high": 0, "medium": 0, "low": 0}
        self._clv_micros = 0
        self._purchase_micros = 0

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        self._batch.append(loads(text))
        if len(self._batch) >= self.options.batch_size:
            yield from self._score_batch()

    def _score_batch(self):
        rows, self._batch = self._batch, []
        if len(self._triples) >= self.options.cache_size:
            self._triples = {}
        for out in score_rows(rows, self._model, self._triples):
            self._rows += 1
            self._tiers[out["value_tier"]] += 1
            self._clv_micros += round(out["clv"] * _MICRO)
            self._purchase_micros += round(out["expected_purchases"] * _MICRO)
            yield None, out

    def mapper_final(self):
        yield from self._score_batch()
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
