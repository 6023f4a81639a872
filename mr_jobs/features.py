"""The customer features K-Means can use, computed from one RFM row each.

Every feature is a documented formula on the columns of :mod:`mr_jobs.rfm`'s rows and a
transform. Skewed counts and amounts get ``log1p`` so that a few big spenders do not
decide the clusters alone; the transformed values are then standardised by the K-Means
driver with statistics computed from the data (:mod:`mr_jobs.feature_stats`).

================  ==============================================  =========  ==============
feature           raw value (RFM columns)                         transform  unit of raw
================  ==============================================  =========  ==============
``recency``       ``recency_days``                                none       days
``frequency``     ``orders``                                      log1p      orders
``monetary``      ``total_value``                                 log1p      currency
``order_value``   ``mean_order_value``                            log1p      currency
``tenure``        ``tenure_days``                                 none       days
``order_rate``    ``365 * orders / (tenure_days + 1)``            log1p      orders a year
``basket_size``   ``lines / orders``                              none       lines an order
``line_value``    ``total_value / lines``                         log1p      currency
``units_per_line`` ``total_quantity / lines``                     none       units a line
================  ==============================================  =========  ==============

:data:`DEFAULT_FEATURES` is recency, frequency and monetary, the same three columns the RFM
scores use (:mod:`models.rfm_scores`).

A row is rejected, and counted under its reason, when a needed column is missing or null
(``missing_feature``), not a number (``not_a_number``; booleans included), NaN, infinite
or beyond the float range, in an input column or in the computed feature
(``not_finite``), or negative where a count, amount or duration cannot be
(``negative_value``).
"""

import math
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURES",
    "Feature",
    "FeatureError",
    "parse_features",
]


class FeatureError(ValueError):
    """A row cannot give a feature; ``reason`` is the counter name."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Feature:
    """One feature: ``transform(raw(row))``.

    Attributes
    ----------
    name : str
    columns : tuple of str
        The RFM columns it reads.
    formula : str
        How the raw value is computed, for people.
    transform : {"none", "log1p"}
    unit : str
        Unit of the raw value.
    """

    name: str
    columns: tuple
    formula: str
    transform: str
    unit: str

    def raw(self, values):
        """The raw value from the column values (in :attr:`columns` order)."""
        return _RAW[self.name](*values)

    def apply(self, raw):
        """The transformed value of a raw one."""
        return math.log1p(raw) if self.transform == "log1p" else raw

    def invert(self, value):
        """The raw value of a transformed one (for centroids in original units)."""
        return math.expm1(value) if self.transform == "log1p" else value


_RAW = {
    "recency": lambda r: r,
    "frequency": lambda o: o,
    "monetary": lambda v: v,
    "order_value": lambda v: v,
    "tenure": lambda t: t,
    "order_rate": lambda o, t: 365.0 * o / (t + 1),
    "basket_size": lambda n, o: n / o if o else 0.0,
    "line_value": lambda v, n: v / n if n else 0.0,
    "units_per_line": lambda q, n: q / n if n else 0.0,
}

FEATURES = {
    f.name: f
    for f in (
        Feature("recency", ("recency_days",), "recency_days", "none", "days"),
        Feature("frequency", ("orders",), "orders", "log1p", "orders"),
        Feature("monetary", ("total_value",), "total_value", "log1p", "currency"),
        Feature("order_value", ("mean_order_value",), "mean_order_value", "log1p", "currency"),
        Feature("tenure", ("tenure_days",), "tenure_days", "none", "days"),
        Feature(
            "order_rate",
            ("orders", "tenure_days"),
            "365 * orders / (tenure_days + 1)",
            "log1p",
            "orders a year",
        ),
        Feature("basket_size", ("lines", "orders"), "lines / orders", "none", "lines an order"),
        Feature("line_value", ("total_value", "lines"), "total_value / lines", "log1p", "currency"),
        Feature(
            "units_per_line",
            ("total_quantity", "lines"),
            "total_quantity / lines",
            "none",
            "units a line",
        ),
    )
}

#: The features used unless told otherwise.
DEFAULT_FEATURES = ("recency", "frequency", "monetary")


def parse_features(spec):
    """The features named by ``spec``.

    Parameters
    ----------
    spec : str or sequence of str
        Comma-separated names (``"recency,frequency,monetary"``) or a sequence of names.

    Returns
    -------
    tuple of Feature

    Raises
    ------
    ValueError
        An unknown or repeated name, or no name at all.
    """
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"features={spec!r} names no feature; choose from {sorted(FEATURES)}")
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"features={spec!r}: unknown {unknown}; choose from {sorted(FEATURES)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"features={spec!r} names {repeated} more than once")
    return tuple(FEATURES[n] for n in names)


def feature_values(row, features):
    """The transformed feature values of one RFM row (a dict).

    Raises
    ------
    FeatureError
        With the rejection reason (see the module docstring).
    """
    values = []
    for feature in features:
        inputs = []
        for column in feature.columns:
            value = row.get(column)
            if value is None:
                raise FeatureError("missing_feature", f"{column} is missing or null")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FeatureError("not_a_number", f"{column}={value!r} is not a number")
            try:
                value = float(value)
            except OverflowError:  # a JSON integer beyond the float range
                raise FeatureError("not_finite", f"{column} is too large for a float") from None
            if not math.isfinite(value):
                raise FeatureError("not_finite", f"{column}={value!r} is not finite")
            if value < 0:
                raise FeatureError("negative_value", f"{column}={value!r} is negative")
            inputs.append(value)
        try:
            result = float(feature.apply(feature.raw(inputs)))
        except (OverflowError, ZeroDivisionError):
            result = math.inf
        if not math.isfinite(result):
            raise FeatureError("not_finite", f"{feature.name} overflows for {inputs!r}")
        values.append(result)
    return values
