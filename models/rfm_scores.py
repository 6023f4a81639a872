"""RFM scores and named customer segments from the per-customer RFM table.

Input: the table of :mod:`mr_jobs.rfm` (one row per customer, as published by
:mod:`models.rfm_stage`). Only ``recency_days``, ``orders`` and ``total_value`` are used;
every other column is carried through unchanged.

Scores
------
Each customer gets three scores from 1 (worst) to 5 (best), by quintile of their rank
among the *other* customers (see :func:`quintile_scores` for the exact formula and its tie
handling):

=========  ================  ====================================================
score      column            better is
=========  ================  ====================================================
R          ``recency_days``  lower (a more recent last purchase)
F          ``orders``        higher (more distinct orders)
M          ``total_value``   higher (more total spend)
=========  ================  ====================================================

``rfm_cell`` is the three digits R, F, M (``"545"``), ``rfm_sum`` their sum (3-15).

Value tier (from M alone): ``high`` if M >= 4, ``mid`` if M is 2 or 3, ``low`` if M == 1.

Segments
--------
Every customer gets exactly one segment: the first rule, in this order, that they match.
The rules are :data:`SEGMENT_RULES`; this table describes them (a test checks that it
does):

==  ==================  ==========================================  ==========================
#   segment             rule                                        meaning
==  ==================  ==========================================  ==========================
1   ``champions``       R >= 4 and F >= 4 and M >= 4                bought recently, often,
                                                                    and spend the most
2   ``loyal``           F >= 4 and R >= 3                           buy often, still active
3   ``cant_lose``       F >= 4 and M >= 4 and R <= 2                were among the best
                                                                    customers, have not
                                                                    bought for a while
4   ``at_risk``         F >= 3 and R <= 2                           used to buy regularly,
                                                                    slipping away
5   ``new``             single_purchase and R >= 4                  first and only purchase
                                                                    was recent
6   ``promising``       R >= 4                                      recent, not frequent yet
7   ``need_attention``  R == 3                                      middling recency
8   ``hibernating``     R == 2                                      low recency, low frequency
9   ``lost``            R == 1                                      the oldest last purchases,
                                                                    low frequency
==  ==================  ==========================================  ==========================

Rules 6-9 cover R = 5/4, 3, 2 and 1, so nobody is left without a segment.

Single-purchase customers (``orders == 1``, column ``single_purchase``) are handled
deliberately: nobody has fewer than one order, so every single-purchase customer has
F = 1 (the lowest score, shared by all of them). F = 1 keeps them out of ``champions``,
``loyal``, ``cant_lose`` and ``at_risk``; a recent one (R >= 4) is ``new``; the others
fall through by recency to ``need_attention`` (R = 3), ``hibernating`` (R = 2) or
``lost`` (R = 1).
"""

import numpy as np
import pandas as pd

from mr_jobs.segment_rules import SCORE_COLUMNS, SEGMENT_RULES, SEGMENTS

__all__ = [
    "OUTPUT_COLUMNS",
    "REQUIRED_COLUMNS",
    "SEGMENT_RULES",
    "SEGMENTS",
    "quintile_scores",
    "score_customers",
    "segment_summary",
    "summary_from_totals",
]

#: Input columns :func:`score_customers` needs.
REQUIRED_COLUMNS = ("recency_days", "orders", "total_value")

#: Columns :func:`score_customers` adds (replacing any of the same name), in this order.
OUTPUT_COLUMNS = SCORE_COLUMNS

_OPERATORS = {">=": np.greater_equal, "<=": np.less_equal, "==": np.equal}
_SHORT_NAMES = {"r_score": "R", "f_score": "F", "m_score": "M"}


def _format_predicate(predicate):
    """``(("r_score", ">=", 4), ("single_purchase", "==", True))`` -> ``"R >= 4 and
    single_purchase"``: the notation of the module docstring's table."""
    parts = []
    for column, op, value in predicate:
        if value is True and op == "==":
            parts.append(column)
        else:
            parts.append(f"{_SHORT_NAMES.get(column, column)} {op} {value}")
    return " and ".join(parts)


def _column_name(values):
    name = getattr(values, "name", None)
    return "values" if name is None else str(name)


def _numeric_array(values):
    """``values`` as a 1-D numeric numpy array; ValueError on NaN/None/NA, naming the
    column (a Series' name) and how many."""
    name = _column_name(values)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of values, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.int8)
    missing = int(np.count_nonzero(pd.isna(arr)))
    if missing:
        raise ValueError(
            f"{name} has {missing} missing (NaN) value{'s' if missing != 1 else ''}; "
            "scores need a value for every customer"
        )
    if arr.dtype.kind == "f":
        return arr
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: values must be numeric, got dtype {arr.dtype}") from exc


def quintile_scores(values, higher_is_better=True):
    """Score values 1-5 by quintile of their rank among strictly worse values.

    Parameters
    ----------
    values : array-like of numbers, 1-D
        One value per customer (a list, numpy array or pandas Series; a Series' name is
        used in error messages).
    higher_is_better : bool, default True
        True: larger values score higher (frequency, monetary value). False: smaller values
        score higher (recency in days).

    Returns
    -------
    numpy.ndarray of int64
        One score in 1..5 per value, in the input order.

    Raises
    ------
    ValueError
        If any value is NaN/None/NA (the message names the column and how many), or
        ``values`` is not 1-D.
    TypeError
        If the values are not numeric.

    Notes
    -----
    With ``n`` values, the score of a value is::

        score = min(5, 1 + floor(5 * k / n))

    where ``k`` is the number of values strictly worse than it: strictly smaller when
    ``higher_is_better``, strictly larger otherwise. ``k`` is found with
    :func:`numpy.searchsorted` on the sorted values, so scoring is O(n log n).

    Consequences, all deliberate:

    - Tied values always get the same score, and the scores never depend on the order of
      the input (only on the multiset of values).
    - With all values distinct, ``k`` runs over 0..n-1 and each score goes to a fifth of
      the values (to within one): 5 distinct values score 1, 2, 3, 4, 5; 10 score
      1, 1, 2, 2, ..., 5, 5.
    - With heavy ties, scores are skipped rather than splitting equal values arbitrarily:
      in ``[1, 1, 1, 1, 1, 2, 3, 4, 5, 6]`` the five 1s all score 1, and the 2 (``k = 5``)
      starts at 3, giving ``[1, 1, 1, 1, 1, 3, 4, 4, 5, 5]``. So if half of the customers
      have exactly one order, they all get F = 1 and the next group starts at F = 3; if
      60% or more do, customers with two orders already get F >= 4.
    - The worst value (and everything tied with it) always scores 1; a score of 5 needs
      at least 80% of the values strictly worse. A constant column scores 1 throughout,
      and a single value (``n = 1``, ``k = 0``) scores 1: a one-customer table scores
      R-F-M 1-1-1. With fewer than five values the top scores are out of reach: two
      distinct values score 1 and 3, three score 1, 2, 4, four score 1, 2, 3, 4.
    - Ties are exact equality of the numbers given (no tolerance).
    - Empty input gives an empty array.

    Examples
    --------
    >>> quintile_scores([10, 20, 30, 40, 50]).tolist()
    [1, 2, 3, 4, 5]
    >>> quintile_scores([1, 1, 1, 1, 1, 2, 3, 4, 5, 6]).tolist()
    [1, 1, 1, 1, 1, 3, 4, 4, 5, 5]
    >>> quintile_scores([0, 7, 30, 90, 365], higher_is_better=False).tolist()
    [5, 4, 3, 2, 1]
    >>> quintile_scores([42.0]).tolist()
    [1]
    """
    arr = _numeric_array(values)
    n = arr.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Search the sorted values for themselves (sorted keys let searchsorted narrow each
    # search from the previous one: several times faster than searching in input order on
    # millions of rows), then put the counts back in input order.
    order = np.argsort(arr, kind="stable")
    ordered = arr[order]
    if higher_is_better:
        worse_sorted = np.searchsorted(ordered, ordered, side="left")  # strictly smaller
    else:
        worse_sorted = n - np.searchsorted(ordered, ordered, side="right")  # strictly larger
    worse = np.empty(n, dtype=np.int64)
    worse[order] = worse_sorted
    # k <= n - 1 keeps 5k // n <= 4; the cap is only a guard.
    return np.minimum(1 + (5 * worse) // n, 5)


def _check_columns(df, required, what):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} expects a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing required column(s): {', '.join(missing)}")


def score_customers(df):
    """Add RFM scores, value tier and named segment to a per-customer RFM table.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per customer with at least ``recency_days`` (days since the last purchase,
        >= 0), ``orders`` (distinct orders, >= 1) and ``total_value`` (total spend). Other
        columns (``customer_id``, ...) are carried through.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` (same index and row order) with these columns added, or replaced
        if present:

        - ``r_score``, ``f_score``, ``m_score`` (int64, 1-5): :func:`quintile_scores` of
          ``recency_days`` (lower is better), ``orders`` and ``total_value``.
        - ``rfm_cell`` (str): R, F, M digits, e.g. ``"545"``. The string columns have
          pandas' default string dtype (``str`` in pandas 3, ``object`` before).
        - ``rfm_sum`` (int64, 3-15): R + F + M.
        - ``value_tier`` (str): ``"high"`` if M >= 4, ``"mid"`` if M is 2 or 3, ``"low"``
          if M == 1.
        - ``single_purchase`` (bool): ``orders == 1``.
        - ``segment`` (str): the first matching rule of :data:`SEGMENT_RULES`.

    Raises
    ------
    TypeError
        If ``df`` is not a DataFrame, or a required column is not numeric.
    ValueError
        If a required column is missing (all missing ones are listed), has NaN values
        (the column and the count are named), ``recency_days`` is negative or ``orders``
        is below 1 (the number of such rows is named).

    Notes
    -----
    Scores are relative to the customers in ``df``: score the whole table at once, not
    chunks of it. See :func:`quintile_scores` for the tie handling (tied customers share a
    score; heavy ties skip scores; a one-customer table scores 1-1-1, which makes that
    customer ``lost``). The segments are described in the module docstring.

    An empty ``df`` (with the required columns) gives an empty frame with all the output
    columns and the same dtypes as a non-empty result.

    ``recency_days`` is ``null`` in the raw output of a job run without ``--as-of``; use
    the rows finished by :func:`models.rfm_stage.run_rfm_stage`.

    Examples
    --------
    >>> df = pd.DataFrame({
    ...     "customer_id": ["a", "b", "c", "d", "e"],
    ...     "recency_days": [3, 10, 40, 200, 400],
    ...     "orders": [9, 1, 4, 6, 1],
    ...     "total_value": [900.0, 20.0, 150.0, 600.0, 10.0],
    ... })
    >>> scored = score_customers(df)
    >>> print(scored[["customer_id", "rfm_cell", "value_tier", "segment"]].to_string(index=False))
    customer_id rfm_cell value_tier        segment
              a      555       high      champions
              b      412        mid            new
              c      333        mid need_attention
              d      244       high      cant_lose
              e      111        low           lost
    """
    _check_columns(df, REQUIRED_COLUMNS, "score_customers")
    recency = _numeric_array(df["recency_days"])
    orders = _numeric_array(df["orders"])
    _numeric_array(df["total_value"])  # NaN/type check before any scoring

    negative = int(np.count_nonzero(recency < 0))
    if negative:
        raise ValueError(
            f"recency_days is negative in {negative} row{'s' if negative != 1 else ''}; "
            "it counts days from the last purchase to the as-of date"
        )
    no_orders = int(np.count_nonzero(orders < 1))
    if no_orders:
        raise ValueError(
            f"orders is below 1 in {no_orders} row{'s' if no_orders != 1 else ''}; "
            "every customer in the table has at least one order"
        )

    r = quintile_scores(df["recency_days"], higher_is_better=False)
    f = quintile_scores(df["orders"])
    m = quintile_scores(df["total_value"])
    single = orders == 1

    out = df.copy()
    for column in OUTPUT_COLUMNS:
        if column in out.columns:
            del out[column]
    out["r_score"] = r
    out["f_score"] = f
    out["m_score"] = m
    out["rfm_cell"] = _labels(_CELLS, (r - 1) * 25 + (f - 1) * 5 + (m - 1), out.index)
    out["rfm_sum"] = r + f + m
    out["value_tier"] = _labels(_TIERS, np.select([m >= 4, m >= 2], [0, 1], default=2), out.index)
    out["single_purchase"] = np.asarray(single, dtype=bool)
    segment_codes = _segment_codes(
        {"r_score": r, "f_score": f, "m_score": m, "single_purchase": single}
    )
    out["segment"] = _labels(SEGMENTS, segment_codes, out.index)
    return out


_CELLS = tuple(f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6))
_TIERS = ("high", "mid", "low")


def _labels(names, codes, index):
    """A string Series of ``names[code]`` per row: pandas' default string dtype (``str``
    in pandas 3, ``object`` before), built by one take rather than per-row conversion."""
    labels = pd.Series(list(names), dtype=object).astype(str).array
    return pd.Series(labels.take(np.asarray(codes, dtype=np.intp)), index=index)


def _segment_codes(columns):
    """Vectorised first match of :data:`SEGMENT_RULES` over ``columns`` (name -> array):
    the position of each row's segment in :data:`SEGMENTS`."""
    n = len(columns["r_score"])
    conditions = []
    for _name, _description, predicate in SEGMENT_RULES:
        condition = np.ones(n, dtype=bool)
        for column, op, value in predicate:
            condition &= _OPERATORS[op](columns[column], value)
        conditions.append(condition)
    codes = np.select(conditions, np.arange(len(SEGMENT_RULES)), default=-1)
    if (codes < 0).any():
        raise AssertionError("SEGMENT_RULES leave some customers without a segment")
    return codes


def _assign_segments(columns):
    """Segment names (numpy array of str) for ``columns``; see :func:`_segment_codes`."""
    return np.asarray(SEGMENTS)[_segment_codes(columns)]


def segment_summary(scored):
    """One row per named segment: size, revenue and averages.

    Parameters
    ----------
    scored : pandas.DataFrame
        The output of :func:`score_customers` (needs ``segment``, ``total_value``,
        ``recency_days`` and ``orders``).

    Returns
    -------
    pandas.DataFrame
        Nine rows, one per segment in :data:`SEGMENT_RULES` order (segments with no
        customers included), with a fresh 0..8 index and the columns:

        - ``segment`` (str)
        - ``customers`` (int64): customers in the segment.
        - ``share_customers`` (float): ``customers`` / all customers.
        - ``revenue`` (float): sum of ``total_value`` rounded to 6 decimals, the
          precision of the jobs' exact sums (0.0 for an empty segment).
        - ``share_revenue`` (float): ``revenue`` / total revenue.
        - ``mean_recency_days``, ``mean_orders``, ``mean_total_value`` (float): means
          over the segment's customers (NaN for an empty segment).
        - ``description`` (str): from :data:`SEGMENT_RULES`.

    Raises
    ------
    TypeError
        If ``scored`` is not a DataFrame.
    ValueError
        If a needed column is missing (all are listed), or ``segment`` holds names that
        are not in :data:`SEGMENT_RULES` (which would make the shares not sum to 1).

    Notes
    -----
    The shares sum to 1 (up to rounding). When there are no customers, or the total
    revenue is 0, the corresponding shares are NaN (undefined) rather than 0.

    Examples
    --------
    >>> df = pd.DataFrame({
    ...     "recency_days": [3, 10, 40, 200, 400],
    ...     "orders": [9, 1, 4, 6, 1],
    ...     "total_value": [900.0, 20.0, 150.0, 600.0, 10.0],
    ... })
    >>> summary = segment_summary(score_customers(df))
    >>> print(summary[["segment", "customers", "share_customers", "revenue"]].to_string())
              segment  customers  share_customers  revenue
    0       champions          1              0.2    900.0
    1           loyal          0              0.0      0.0
    2       cant_lose          1              0.2    600.0
    3         at_risk          0              0.0      0.0
    4             new          1              0.2     20.0
    5       promising          0              0.0      0.0
    6  need_attention          1              0.2    150.0
    7     hibernating          0              0.0      0.0
    8            lost          1              0.2     10.0
    """
    _check_columns(scored, ("segment", "total_value", "recency_days", "orders"), "segment_summary")
    segments = scored["segment"]
    unknown = sorted(set(pd.unique(segments.astype(object))) - set(SEGMENTS), key=str)
    if unknown:
        raise ValueError(
            f"segment_summary: unknown segment name(s) {unknown}; expected {list(SEGMENTS)}"
        )
    values = pd.DataFrame(
        {
            "segment": segments.astype(object).to_numpy(),
            "customers": 1,
            "recency_days": _numeric_array(scored["recency_days"]),
            "orders": _numeric_array(scored["orders"]),
            "total_value_micros": np.rint(
                _numeric_array(scored["total_value"]).astype(np.float64) * 1e6
            ).astype(np.int64),
        }
    )
    grouped = values.groupby("segment", sort=False).sum()
    return summary_from_totals({segment: row.to_dict() for segment, row in grouped.iterrows()})


def summary_from_totals(totals):
    """The segment summary (see :func:`segment_summary`) from per-segment sums.

    Parameters
    ----------
    totals : dict
        ``{segment: {"customers", "recency_days", "orders", "total_value_micros"}}``:
        sums of integers (``total_value`` in millionths), as the map-only scoring job
        (:mod:`mr_jobs.rfm_segments`) counts them; absent segments have no customers.

    Returns
    -------
    pandas.DataFrame
        As :func:`segment_summary`. Sums and means are exact up to one final rounding:
        ``revenue`` is the float nearest the exact sum, the means the float quotient of
        the exact integer sums.

    Raises
    ------
    ValueError
        If a segment is not one of :data:`SEGMENTS`.
    """
    unknown = sorted(set(totals) - set(SEGMENTS), key=str)
    if unknown:
        raise ValueError(f"unknown segment name(s) {unknown}; expected {list(SEGMENTS)}")
    empty = {"customers": 0, "recency_days": 0, "orders": 0, "total_value_micros": 0}
    rows = [{**empty, **{k: int(v) for k, v in totals.get(s, {}).items()}} for s in SEGMENTS]
    customers = np.array([r["customers"] for r in rows], dtype=np.int64)
    micros = [r["total_value_micros"] for r in rows]
    revenue = np.array([m / 1_000_000 for m in micros], dtype=np.float64)
    total_customers = int(customers.sum())
    total_micros = sum(micros)

    def mean(column, scale=1):
        return [r[column] / (scale * r["customers"]) if r["customers"] else np.nan for r in rows]

    return pd.DataFrame(
        {
            "segment": pd.Series(list(SEGMENTS), dtype=object).astype(str),
            "customers": customers,
            "share_customers": [
                c / total_customers if total_customers else np.nan for c in customers.tolist()
            ],
            "revenue": revenue,
            "share_revenue": [m / total_micros if total_micros else np.nan for m in micros],
            "mean_recency_days": mean("recency_days"),
            "mean_orders": mean("orders"),
            "mean_total_value": mean("total_value_micros", 1_000_000),
            "description": pd.Series(
                [description for _name, description, _predicate in SEGMENT_RULES], dtype=object
            ).astype(str),
        }
    )
