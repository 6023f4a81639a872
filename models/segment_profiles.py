"""Profiles and readable names of K-Means segments, from labelled RFM rows.

Naming uses the standardised centre of a segment (``z``, in standard deviations from the
mean customer) on the three RFM features when they were clustered on; a feature missing
from the model counts as 0 (average). With ``r`` = recency (high = long since the last
purchase), ``f`` = frequency and ``m`` = monetary, the first rule that matches names it:

==================  ===========================================  ==========================
name                rule                                         reads as
==================  ===========================================  ==========================
``champions``       r <= -0.25 and f >= 0.5 and m >= 0.5         recent, frequent, big
                                                                 spenders
``cant_lose``       r >= 0.5 and f >= 0.5 and m >= 0.5           were the best, lapsing
``loyal``           f >= 0.25 and r < 0.25                       buy more often than most,
                                                                 still active
``at_risk``         f >= 0 and r >= 0.25                         bought often enough,
                                                                 lapsing
``new``             r <= -0.5 and f < -0.25                      recent first purchases
``promising``       r <= -0.25                                   recent, not frequent yet
``lost``            r >= 0.5 and f < 0                           long gone, few orders
``hibernating``     r >= 0.25                                    long gone
``need_attention``  anything else                                about average
==================  ===========================================  ==========================

The names match those of the RFM segments (:mod:`models.rfm_scores`) so that the overlap
table reads naturally. When two segments earn the same name, the one with the higher
``m`` keeps it and the others get ``_2``, ``_3``, ... Segment ids are ordered by value,
``-r + f + m`` highest first, so segment 0 is the most valuable.
"""

from fractions import Fraction

import numpy as np
import pandas as pd

from mr_jobs.exact_sums import exact_to_fraction

_MICRO = 1_000_000

__all__ = [
    "name_segments",
    "segment_order",
    "profile_segments",
    "profile_from_totals",
    "overlap_table",
    "overlap_from_counts",
]


def _rfm_z(centroids, feature_names):
    z = np.asarray(centroids, dtype=np.float64)
    cols = []
    for name in ("recency", "frequency", "monetary"):
        cols.append(z[:, feature_names.index(name)] if name in feature_names else np.zeros(len(z)))
    return np.column_stack(cols)


def segment_order(centroids, feature_names):
    """Indices of the centres, most valuable first (``-r + f + m``, ties by index)."""
    rfm = _rfm_z(centroids, feature_names)
    value = -rfm[:, 0] + rfm[:, 1] + rfm[:, 2]
    return sorted(range(len(value)), key=lambda j: (-value[j], j))


def _name(r, f, m):
    if r <= -0.25 and f >= 0.5 and m >= 0.5:
        return "champions"
    if r >= 0.5 and f >= 0.5 and m >= 0.5:
        return "cant_lose"
    if f >= 0.25 and r < 0.25:
        return "loyal"
    if f >= 0 and r >= 0.25:
        return "at_risk"
    if r <= -0.5 and f < -0.25:
        return "new"
    if r <= -0.25:
        return "promising"
    if r >= 0.5 and f < 0:
        return "lost"
    if r >= 0.25:
        return "hibernating"
    return "need_attention"


def name_segments(centroids, feature_names):
    """Unique readable names of the centres (see the module docstring).

    Parameters
    ----------
    centroids : array-like
        ``(k, d)`` standardised centres.
    feature_names : list of str

    Returns
    -------
    list of str
    """
    rfm = _rfm_z(centroids, feature_names)
    names = [_name(*row) for row in rfm]
    final = list(names)
    for name in set(names):
        same = [j for j, n in enumerate(names) if n == name]
        same.sort(key=lambda j: (-rfm[j, 2], j))
        for rank, j in enumerate(same[1:], start=2):
            final[j] = f"{name}_{rank}"
    return final


def profile_segments(labelled, centroids_original, feature_names, names):
    """One row per segment, from the labelled rows in memory (small data and tests; the
    stage uses :func:`profile_from_totals`).

    Parameters
    ----------
    labelled : pandas.DataFrame
        One row per customer with ``segment``, ``distance``, ``recency_days``, ``orders``
        and ``total_value``.
    centroids_original : array-like
        ``(k, d)`` centres in the features' raw units.
    feature_names : list of str
    names : list of str
        Names by segment id.

    Returns
    -------
    pandas.DataFrame
        ``segment``, ``name``, ``customers``, ``share_of_customers``, ``revenue``,
        ``share_of_revenue``, ``mean_recency_days``, ``mean_orders``,
        ``mean_total_value``, ``mean_distance``, one ``centre_<feature>`` column per
        feature (raw units), and ``description``.
    """
    total_customers = len(labelled)
    total_revenue = float(labelled["total_value"].sum()) if total_customers else 0.0
    grouped = labelled.groupby("segment")
    rows = []
    for j in range(len(names)):
        part = grouped.get_group(j) if j in grouped.groups else labelled.iloc[0:0]
        revenue = float(part["total_value"].sum())
        means = {
            column: float(part[column].mean()) if len(part) else None
            for column in ("recency_days", "orders", "total_value", "distance")
        }
        shares = (
            len(part) / total_customers if total_customers else 0.0,
            revenue / total_revenue if total_revenue else 0.0,
        )
        centre = dict(zip(feature_names, centroids_original[j], strict=True))
        rows.append(_profile_row(j, names[j], len(part), revenue, shares, means, centre))
    return pd.DataFrame(rows)


def profile_from_totals(totals, centroids_original, feature_names, names):
    """One row per segment, from the exact totals of :class:`mr_jobs.segment_profile.
    MRSegmentProfile` (the same columns as :func:`profile_segments`).

    Parameters
    ----------
    totals : dict
        Segment id -> its record (``customers``, and ``[n, sum]`` per summed column).
    centroids_original, feature_names, names
        As for :func:`profile_segments`.

    Returns
    -------
    pandas.DataFrame

    Notes
    -----
    Sums are exact (``total_value`` in integer millionths, the others exact float sums),
    and each float is the nearest to the exact value: revenue, the shares and the means.
    :func:`profile_segments` sums floats with pandas, so the two agree to the last bits.
    """
    sums = {j: _exact_sums(totals.get(j)) for j in range(len(names))}
    total_customers = sum(s["customers"] for s in sums.values())
    total_revenue = sum(s["revenue"] for s in sums.values())
    rows = []
    for j in range(len(names)):
        s = sums[j]
        shares = (
            float(Fraction(s["customers"], total_customers)) if total_customers else 0.0,
            float(s["revenue"] / total_revenue) if total_revenue else 0.0,
        )
        centre = dict(zip(feature_names, centroids_original[j], strict=True))
        revenue = float(s["revenue"])
        rows.append(_profile_row(j, names[j], s["customers"], revenue, shares, s["means"], centre))
    return pd.DataFrame(rows)


def _exact_sums(record):
    """Customers, the exact revenue and the means of one segment's totals record."""
    if record is None:
        record = {"customers": 0}
    exact, means = {}, {}
    for column in ("recency_days", "orders", "total_value", "distance"):
        n, total = record.get(column, (0, 0))
        if column == "total_value":
            exact[column] = Fraction(total, _MICRO)
        else:
            exact[column] = exact_to_fraction(total) if n else Fraction(0)
        means[column] = float(exact[column] / n) if n else None
    return {"customers": record["customers"], "revenue": exact["total_value"], "means": means}


def _profile_row(j, name, customers, revenue, shares, means, centre):
    """A profile row; ``shares`` of customers and of revenue, ``means`` by column,
    ``centre`` by feature name (raw units)."""
    row = {
        "segment": j,
        "name": name,
        "customers": customers,
        "share_of_customers": shares[0],
        "revenue": revenue,
        "share_of_revenue": shares[1],
        "mean_recency_days": means["recency_days"],
        "mean_orders": means["orders"],
        "mean_total_value": means["total_value"],
        "mean_distance": means["distance"],
    }
    for feature, value in centre.items():
        row[f"centre_{feature}"] = float(value)
    row["description"] = _describe(row)
    return row


def _describe(row):
    if row["customers"] == 0:
        return "no customers"
    return (
        f"{row['customers']:,} customers ({row['share_of_customers']:.1%}) bringing "
        f"{row['share_of_revenue']:.1%} of revenue; on average last bought "
        f"{row['mean_recency_days']:.0f} days ago, {row['mean_orders']:.1f} orders, "
        f"{row['mean_total_value']:,.2f} spent"
    )


def overlap_table(labelled, names):
    """How the K-Means segments overlap the RFM named segments (column ``rfm_segment``),
    from the labelled rows in memory (the stage uses :func:`overlap_from_counts`).

    Returns
    -------
    pandas.DataFrame
        One row per (segment, rfm_segment) pair that has customers: ``segment``, ``name``,
        ``rfm_segment``, ``customers``, ``share_of_segment`` and ``share_of_rfm_segment``.
    """
    counts = labelled.groupby(["segment", "rfm_segment"]).size().rename("customers").reset_index()
    return overlap_from_counts(counts.to_dict("records"), names)


def overlap_from_counts(counts, names):
    """The table of :func:`overlap_table` from the customers of each pair.

    Parameters
    ----------
    counts : list of dict
        ``{"segment", "rfm_segment", "customers"}``, one per pair that has customers
        (:class:`mr_jobs.segment_profile.MRSegmentProfile` writes them).
    names : list of str

    Returns
    -------
    pandas.DataFrame
    """
    table = pd.DataFrame(counts, columns=["segment", "rfm_segment", "customers"])
    table = table.sort_values(["segment", "rfm_segment"], kind="stable").reset_index(drop=True)
    seg_totals = table.groupby("segment")["customers"].transform("sum")
    rfm_totals = table.groupby("rfm_segment")["customers"].transform("sum")
    table["share_of_segment"] = table["customers"] / seg_totals
    table["share_of_rfm_segment"] = table["customers"] / rfm_totals
    table.insert(1, "name", [names[j] for j in table["segment"]])
    return table.sort_values(["segment", "customers", "rfm_segment"], ascending=[True, False, True])
