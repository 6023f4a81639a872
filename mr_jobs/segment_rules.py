"""The RFM segment rules, and a customer's scores, cell, tier and segment, in pure Python.

One home for the rules (:data:`SEGMENT_RULES`): :mod:`models.rfm_scores` applies them to
a whole frame with numpy, the map-only :mod:`mr_jobs.rfm_segments` to one row at a time on
the tasks, which have only Python and mrjob. The rules and the scores are described in
:mod:`models.rfm_scores`; a test checks that both give the same segments.
"""

__all__ = [
    "SCORE_COLUMNS",
    "SEGMENT_RULES",
    "SEGMENTS",
    "TIERS",
    "score",
    "segment_of",
    "value_tier",
]

#: The named segments, in precedence order: ``(segment, description, predicate)``.
#: ``predicate`` is a tuple of ``(column, operator, value)`` conditions that must all hold;
#: ``column`` is a column of the scored frame (``r_score``, ``f_score``, ``m_score``,
#: ``single_purchase``), ``operator`` one of ``">="``, ``"<="``, ``"=="``. The first rule a
#: customer matches is their segment; the last four rules partition R, so every customer
#: matches at least one.
SEGMENT_RULES = (
    (
        "champions",
        "Bought recently, often, and spend the most.",
        (("r_score", ">=", 4), ("f_score", ">=", 4), ("m_score", ">=", 4)),
    ),
    (
        "loyal",
        "Buy often, still active.",
        (("f_score", ">=", 4), ("r_score", ">=", 3)),
    ),
    (
        "cant_lose",
        "Were among the best customers, have not bought for a while.",
        (("f_score", ">=", 4), ("m_score", ">=", 4), ("r_score", "<=", 2)),
    ),
    (
        "at_risk",
        "Used to buy regularly, slipping away.",
        (("f_score", ">=", 3), ("r_score", "<=", 2)),
    ),
    (
        "new",
        "First and only purchase was recent.",
        (("single_purchase", "==", True), ("r_score", ">=", 4)),
    ),
    (
        "promising",
        "Recent, not frequent yet.",
        (("r_score", ">=", 4),),
    ),
    (
        "need_attention",
        "Middling recency.",
        (("r_score", "==", 3),),
    ),
    (
        "hibernating",
        "Low recency, low frequency.",
        (("r_score", "==", 2),),
    ),
    (
        "lost",
        "The oldest last purchases, low frequency.",
        (("r_score", "==", 1),),
    ),
)

#: Segment names in precedence order.
SEGMENTS = tuple(name for name, _description, _predicate in SEGMENT_RULES)

#: The columns a scored row gets, in this order (the frame's and the map-only job's).
SCORE_COLUMNS = (
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
    "rfm_sum",
    "value_tier",
    "single_purchase",
    "segment",
)

#: The value tiers, from the M score: ``high`` (M >= 4), ``mid`` (2-3), ``low`` (1).
TIERS = ("high", "mid", "low")

_COMPARE = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
}


def score(value, thresholds, higher_is_better):
    """The 1-5 score of ``value`` from the four thresholds of scores 2..5.

    Parameters
    ----------
    value : int or float
    thresholds : sequence of 4 (number or None)
        For scores 2..5, the order statistic a value must beat (strictly above when
        higher is better, strictly below otherwise); None means every value reaches it
        (see :func:`models.rfm_thresholds.exact_thresholds`).
    higher_is_better : bool

    Returns
    -------
    int
    """
    result = 1
    for t in thresholds:
        if t is None or (value > t if higher_is_better else value < t):
            result += 1
    return result


def value_tier(m_score):
    """``"high"`` if M >= 4, ``"mid"`` if M is 2 or 3, ``"low"`` if M == 1."""
    return "high" if m_score >= 4 else "mid" if m_score >= 2 else "low"


def segment_of(r_score, f_score, m_score, single_purchase):
    """The first rule of :data:`SEGMENT_RULES` that the customer matches.

    Raises
    ------
    AssertionError
        If no rule matches (the last four rules partition R = 1..5).
    """
    columns = {
        "r_score": r_score,
        "f_score": f_score,
        "m_score": m_score,
        "single_purchase": single_purchase,
    }
    for name, _description, predicate in SEGMENT_RULES:
        if all(_COMPARE[op](columns[column], value) for column, op, value in predicate):
            return name
    raise AssertionError(f"SEGMENT_RULES leave R={r_score} F={f_score} M={m_score} unmatched")
