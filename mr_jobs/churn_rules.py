"""The churn model's pure pieces, one home for the driver and the tasks.

:mod:`models.churn` (the driver: fitting, reports) and the map-only scoring job
:mod:`mr_jobs.churn_scores` (the tasks) both need the model features of an RFM row, the
trust-checked loading of a ``model.skops`` file, the risk tiers and the drivers. The tasks
get only the ``mr_jobs`` package (:meth:`mr_jobs.base.CrmJob.make_runner`), so these live
here, with numpy, scikit-learn and skops as their only dependencies (imported when used).
:mod:`models.churn` documents the method; this module holds no state.

The exact quantile of :func:`quantile_from_order_statistics` reproduces
``numpy.quantile(values, q)`` (the default ``linear`` method) from two order statistics,
so that the early-warning threshold needs no column of values in the driver.
"""

import json
import math

#: The most labelled customers the churn model is fitted on (a seeded sample beyond).
DEFAULT_MAX_TRAIN = 500_000

__all__ = [
    "DEFAULT_MAX_TRAIN",
    "DEFAULT_TIERS",
    "MIN_EFFECT",
    "MODEL_FEATURES",
    "MODEL_FORMAT",
    "RFM_INPUT_COLUMNS",
    "TRUSTED_TYPES",
    "UntrustedModelError",
    "driver_effects",
    "drivers_text",
    "feature_array",
    "list_drivers",
    "load_model_payload",
    "quantile_from_order_statistics",
    "quantile_ranks",
    "risk_tiers",
]

#: The columns the models see, derived from an RFM row (see :mod:`models.churn`).
MODEL_FEATURES = (
    "recency_days",
    "tenure_days",
    "recency_ratio",
    "log_purchase_days",
    "log_orders_per_day",
    "purchase_rate",
    "log_mean_order_value",
    "log_monetary_value",
)

#: The RFM columns the features are derived from.
RFM_INPUT_COLUMNS = (
    "recency_days",
    "tenure_days",
    "purchase_days",
    "orders",
    "mean_order_value",
    "monetary_value",
)

#: Types beyond skops' defaults that a model file may hold: scikit-learn internals of a
#: calibrated classifier (and the folds it was given) and of the tree ensemble's fitted trees.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.model_selection._split.StratifiedKFold",
    }
)

MODEL_FORMAT = "crm-mapreduce churn model 1"
DEFAULT_TIERS = {"high": 0.7, "medium": 0.4}
MIN_EFFECT = 1e-9  # log-odds; below it a "driver" is rounding noise


class UntrustedModelError(ValueError):
    """A model file would instantiate types outside the trusted set."""


def feature_array(raw):
    """The model features of RFM columns, shape ``(n, len(MODEL_FEATURES))``.

    Parameters
    ----------
    raw : dict
        ``{column: float64 array}`` for every column of :data:`RFM_INPUT_COLUMNS`.

    Returns
    -------
    numpy.ndarray
        float64, columns in :data:`MODEL_FEATURES` order.

    Raises
    ------
    ValueError
        Naming a column with missing or non-finite values.
    """
    import numpy as np

    for name in RFM_INPUT_COLUMNS:
        if not np.isfinite(raw[name]).all():
            raise ValueError(f"column {name!r} has missing or non-finite values")
    tenure = raw["tenure_days"] + 1.0
    days = np.maximum(raw["purchase_days"], 1.0)
    columns = {
        "recency_days": raw["recency_days"],
        "tenure_days": raw["tenure_days"],
        "recency_ratio": raw["recency_days"] / tenure,
        "log_purchase_days": np.log(days),
        "log_orders_per_day": np.log(np.maximum(raw["orders"], 1.0) / days),
        "purchase_rate": 30.0 * raw["purchase_days"] / tenure,
        "log_mean_order_value": np.log1p(np.maximum(raw["mean_order_value"], 0.0)),
        "log_monetary_value": np.log1p(np.maximum(raw["monetary_value"], 0.0)),
    }
    return np.column_stack([columns[name] for name in MODEL_FEATURES])


def load_model_payload(path):
    """The estimator and metadata of a churn model file, refusing untrusted types.

    Parameters
    ----------
    path : str

    Returns
    -------
    (sklearn.calibration.CalibratedClassifierCV, dict)

    Raises
    ------
    UntrustedModelError
        When the file would instantiate a type that is neither a skops default nor in
        :data:`TRUSTED_TYPES`, naming the types.
    ValueError
        When the file is not a churn model of this format.
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
    if unexpected:
        raise UntrustedModelError(
            f"{path}: refusing to load types outside the trusted set: {unexpected}"
        )
    payload = sio.load(path, trusted=list(untrusted))
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a churn model file ({MODEL_FORMAT!r})")
    return payload["estimator"], json.loads(payload["metadata"])


def risk_tiers(p, tiers):
    """``high`` / ``medium`` / ``low`` of probabilities ``p`` (a numpy array)."""
    import numpy as np

    return np.where(p >= tiers["high"], "high", np.where(p >= tiers["medium"], "medium", "low"))


def driver_effects(base, reference, features, x):
    """Log-odds effects ``f(x) - f(x with feature j at its median)``, shape (n, features).

    ``base`` is the model under the calibrator; prior validation is assumed.
    """
    import numpy as np

    full = base.decision_function(x)
    effects = np.empty_like(x)
    for j, name in enumerate(features):
        changed = x.copy()
        changed[:, j] = reference[name]
        effects[:, j] = full - base.decision_function(changed)
    return effects


def list_drivers(effects, features, x, k):
    """Per row, up to ``k`` ``{"feature", "value", "effect"}`` with a positive effect,
    largest first."""
    import numpy as np

    order = np.argsort(-effects, axis=1, kind="stable")[:, :k]
    result = []
    for i in range(len(x)):
        listed = []
        for j in order[i]:
            effect = effects[i, j]
            if effect <= MIN_EFFECT:
                break
            listed.append(
                {"feature": features[j], "value": float(x[i, j]), "effect": float(effect)}
            )
        result.append(listed)
    return result


def drivers_text(drivers):
    """The ``drivers_text`` column of a ``drivers`` list."""
    return ", ".join(f"{d['feature']}={d['value']:.4g} ({d['effect']:+.2f})" for d in drivers)


def quantile_ranks(n, q):
    """The 0-based ascending ranks ``numpy.quantile`` (``linear``) interpolates between.

    Returns ``(previous, next, gamma)`` for ``n >= 1`` values and quantile ``q`` in [0, 1].
    """
    virtual = (n - 1) * q
    previous = min(max(math.floor(virtual), 0), n - 1)
    return previous, min(previous + 1, n - 1), virtual - previous


def quantile_from_order_statistics(low, high, gamma):
    """``numpy.quantile``'s ``linear`` interpolation between the order statistics ``low``
    and ``high`` (of :func:`quantile_ranks`), bit for bit."""
    diff = high - low
    if gamma >= 0.5:
        return high - diff * (1 - gamma)
    return low + diff * gamma
