"""Deterministic synthetic retail order-line log, with the ground truth it planted.

This is the project's built-in default data. :func:`generate` writes a canonical CSV
order-line log (one line per item of a basket) plus two truth files, so that later
analyses (RFM, association rules, segments, forecasts, churn models) can be checked
against what was planted::

    order_id,customer_id,timestamp,item_id,quantity,unit_price
    O00000001,C000001,2023-01-01T10:41:07,I0042,1,12.99

The generative model
--------------------
Time
    ``days`` days from ``start``. Each day ``d`` has a weight
    ``w(d) = weekly[dow(d)] * yearly(d) * trend(d)`` with ``weekly`` the seven
    multipliers Monday..Sunday (:data:`WEEKLY_MULTIPLIERS`, weekend boost),
    ``yearly(d) = 1 + amplitude * cos(2 pi (doy(d) - peak_doy) / 365.25)`` (December
    peak) and ``trend(d) = (1 + growth_per_year) ** (d / 365.25)``. Shop hours are
    08:00-22:00 with an intraday profile (lunch and evening peaks).
Catalogue
    ``n_items`` items with Zipf popularity (exponent 1, ranks assigned at random to the
    ids) and lognormal list prices (median about 12, from 0.49 to 199.99, ending in .99
    or .49). Eight disjoint bundles of 2-3 mid-popularity items (popularity ranks 16-100).
Customers
    Each customer belongs to one of :data:`SEGMENTS`. A share of them (the launch
    cohort) joins during the first 28 days, the rest join with an acquisition rate that
    grows linearly over the span (twice as many per day at the end as at the start),
    both modulated by ``w(d)``. The first order is placed on the join day, so every
    customer has at least one order. Each customer has an individual order rate,
    ``segment rate * Gamma(shape 2.5, mean 1)``, and a lifetime drawn from an exponential
    distribution (a constant, segment-specific churn hazard ``1 / mean_lifetime_days``).
    A customer who churns never buys again; the churn date is recorded when it falls
    inside the span. Churn is therefore learnable from recency and frequency, as in the
    Pareto/NBD model: a churned customer's recency grows while an active one's does not.
Orders
    After the join, orders follow a Poisson process with intensity ``rate * w(t)`` until
    churn or the end of the span: the count is ``Poisson(rate * integral of w)`` and each
    order is placed by inverse CDF on the cumulative weight. ``one_off`` customers are
    capped at two orders in all.
Baskets
    An order has ``1 + Poisson(basket_mean - 1)`` item slots (at most 20). With
    probability 0.15 it contains a whole bundle (chosen uniformly), which takes one slot
    and adds its items. The other items are distinct, drawn with probability
    proportional to ``popularity * price ** price_gamma`` (the segment's price
    preference). Quantity is 1, or 2-4 with the segment's ``multi_quantity_prob``; a line
    is discounted by 10/20/30/50 % with the segment's ``discount_prob``.
Dirty lines
    About ``dirty_rate`` of the clean lines are added as rejectable lines, each kind at
    least once when ``dirty_rate > 0`` (see :data:`REJECT_REASONS`). A ``return`` is a
    copy of an earlier purchase line, 1-30 days later, with a negative quantity and an
    order id of its own; the other kinds are corrupted copies of the clean line just
    before them (or a blank or repeated header line). Dirty lines are not part of the
    clean truth: orders, revenue and per-customer counts cover clean lines only.

Outputs
-------
``path``
    The CSV (UTF-8 except for the deliberately ``undecodable`` lines, ``\\n`` endings),
    sorted by timestamp then order id; order ids are numbered in that order.
:func:`truth_path` ``(path)``
    JSON with every parameter and count (see :func:`generate`).
:func:`customers_truth_path` ``(path)``
    One JSON object per customer, in customer id order.

Same arguments and seed give byte-identical files. Everything is drawn from
``numpy.random.default_rng([seed, stream])`` with one stream per concern (catalogue,
customers and orders, items, dirty lines), so the catalogue does not depend on the
number of customers.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hdfs_io.local import atomic_file
from models.checks import check_int

__all__ = [
    "DEFAULT_CUSTOMERS",
    "GENERATOR",
    "HEADER",
    "REJECT_REASONS",
    "SEGMENTS",
    "WEEKLY_MULTIPLIERS",
    "Segment",
    "customers_truth_path",
    "generate",
    "truth_path",
]

GENERATOR = "crm-mapreduce synthetic v1"
HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price"

#: Reasons under which the project's parser rejects the planted dirty lines.
REJECT_REASONS = (
    "return",
    "blank",
    "bad_timestamp",
    "bad_price",
    "missing_customer",
    "column_count",
    "undecodable",
    "header",
)

DEFAULT_CUSTOMERS = 4000


@dataclass(frozen=True)
class Segment:
    """One behavioural segment of customers.

    Attributes
    ----------
    name : str
    share : float
        Probability that a customer belongs to the segment.
    order_rate_per_day : float
        Mean order rate (before the individual Gamma multiplier and ``w(d)``).
    basket_mean_items : float
        Mean number of item slots per order.
    multi_quantity_prob : float
        Probability that a line has quantity 2-4 instead of 1.
    price_gamma : float
        Item choice weight is ``popularity * price ** price_gamma``.
    discount_prob : float
        Probability that a line is discounted.
    mean_lifetime_days : float
        Mean of the exponential lifetime: the churn hazard is its inverse.
    max_orders : int or None
        Cap on the number of orders of a customer.
    """

    name: str
    share: float
    order_rate_per_day: float
    basket_mean_items: float
    multi_quantity_prob: float
    price_gamma: float
    discount_prob: float
    mean_lifetime_days: float
    max_orders: int | None = None


SEGMENTS = (
    Segment("vip", 0.05, 1 / 10, 4.0, 0.25, 0.8, 0.05, 1500.0),
    Segment("regular", 0.25, 1 / 30, 2.8, 0.15, 0.0, 0.10, 600.0),
    Segment("occasional", 0.40, 1 / 90, 2.2, 0.10, -0.2, 0.10, 450.0),
    Segment("bargain_hunter", 0.15, 1 / 16, 2.8, 0.35, -1.0, 0.40, 450.0),
    Segment("one_off", 0.15, 1 / 20, 2.0, 0.10, 0.0, 0.15, 25.0, max_orders=2),
)

#: Day-of-week multipliers of the order intensity, Monday first (mean 1).
WEEKLY_MULTIPLIERS = (0.90, 0.85, 0.88, 0.95, 1.07, 1.25, 1.10)
_YEARLY_AMPLITUDE = 0.25
_YEARLY_PEAK_DOY = 350
_TREND_GROWTH_PER_YEAR = 0.10
_ACQUISITION_GROWTH = 1.0  # joins per day rise linearly from 1x to (1 + this)x
_INITIAL_SHARE = 0.20
_INITIAL_DAYS = 28
_RATE_SHAPE = 2.5
_OPEN_HOUR = 8
_CLOSE_HOUR = 22
_HOUR_WEIGHTS = (2, 3, 4, 5, 7, 6, 5, 5, 6, 8, 9, 8, 6, 3)  # 08:00 .. 21:00
_ZIPF_EXPONENT = 1.0
_PRICE_MEDIAN = 12.0
_PRICE_SIGMA = 0.9
_N_BUNDLES = 8
_BUNDLE_PROB = 0.15
_MAX_BASKET = 20
_DISCOUNT_PCTS = (10, 20, 30, 50)
_DISCOUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
_MULTI_QUANTITIES = (2, 3, 4)
_MULTI_WEIGHTS = (0.6, 0.3, 0.1)
_RETURN_MAX_DELAY_DAYS = 30
_DIRTY_WEIGHTS = {
    "return": 0.30,
    "blank": 0.10,
    "bad_timestamp": 0.12,
    "bad_price": 0.12,
    "missing_customer": 0.12,
    "column_count": 0.10,
    "undecodable": 0.08,
    "header": 0.06,
}
_PILOT_CUSTOMERS = 20_000
_SCAN_CUSTOMERS = 5_000
_WRITE_CHUNK = 500_000
_SECONDS_PER_DAY = 86_400
# Streams of numpy.random.default_rng([seed, stream]).
_STREAM_CATALOGUE, _STREAM_ORDERS, _STREAM_ITEMS, _STREAM_DIRTY = 0, 1, 2, 3


def truth_path(path):
    """Path of the truth JSON written beside ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV path.

    Returns
    -------
    str or pathlib.Path
        ``<path without .csv>.truth.json``; a ``str`` when ``path`` is a ``str``.

    Examples
    --------
    >>> truth_path("data/transactions.csv")
    'data/transactions.truth.json'
    """
    return _sibling(path, ".truth.json")


def customers_truth_path(path):
    """Path of the per-customer truth (JSON lines) written beside ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV path.

    Returns
    -------
    str or pathlib.Path
        ``<path without .csv>.customers.jsonl``; a ``str`` when ``path`` is a ``str``.

    Examples
    --------
    >>> customers_truth_path("data/transactions.csv")
    'data/transactions.customers.jsonl'
    """
    return _sibling(path, ".customers.jsonl")


def _sibling(path, suffix):
    text = os.fspath(path)
    if text.lower().endswith(".csv"):
        text = text[:-4]
    text += suffix
    return text if isinstance(path, str) else Path(text)


def generate(
    path,
    *,
    customers=None,
    lines=None,
    seed=42,
    start="2023-01-01",
    days=730,
    n_items=200,
    dirty_rate=0.002,
    progress=None,
):
    """Write a synthetic order-line log and its ground truth.

    Parameters
    ----------
    path : str or os.PathLike
        Local CSV path; parent directories are created. The truth goes to
        :func:`truth_path` and :func:`customers_truth_path` of it.
    customers : int, optional
        Number of customers (>= 1). Default 4,000 (about 110k lines).
    lines : int, optional
        Approximate number of lines in the file instead (>= 100); the number of
        customers is chosen (by simulating the orders with this seed) so that the file has
        ``lines`` lines, usually within 1 % from a few thousand lines up; below about
        1,000 lines a single big customer can make it miss by more. Exclusive with
        ``customers``.
    seed : int
        Non-negative seed; same arguments and seed give byte-identical files.
    start : str or datetime.date
        First day, ISO ``YYYY-MM-DD``.
    days : int
        Number of days covered (>= 7).
    n_items : int
        Catalogue size (30 .. 999,999).
    dirty_rate : float
        Rejectable lines added per clean line (0 .. 0.5); 0 disables them.
    progress : callable, optional
        ``progress(message)`` is called a few times with what is being done.

    Returns
    -------
    dict
        The truth, identical to the JSON written to :func:`truth_path`: ``generator``,
        ``seed``, ``parameters`` (the arguments), ``start``, ``end`` (last day),
        ``n_customers``, ``n_items``, ``segments`` (name -> parameters, ``customers``,
        ``orders``, ``lines``), ``weekly_multipliers`` (Monday first), ``yearly``,
        ``trend``, ``acquisition``, ``shop_hours``, ``bundles`` (lists of item ids),
        ``churned_customers``, ``orders`` (clean), ``lines_accepted`` (clean lines),
        ``lines_total`` (every line, first header and blank lines included),
        ``rejects_by_reason`` (``header`` includes the first line), ``revenue`` (exact
        sum of quantity x unit_price of clean lines, a string with two decimals),
        ``customers_truth_file`` (basename) and ``items`` (``item_id``, ``list_price``,
        ``popularity``). ``lines_total == lines_accepted + sum(rejects_by_reason)``.

    Raises
    ------
    ValueError
        When both ``customers`` and ``lines`` are given, an argument is out of range, or
        a destination is a directory (checked before any work).
    hdfs_io.StorageError
        When a file cannot be written. Each file is written to a new temporary file of
        unpredictable name beside it (``O_EXCL``, see :func:`hdfs_io.local.atomic_file`)
        and renamed into place, so a failed write leaves nothing behind and a symbolic
        link planted beside the destination is never followed.

    Notes
    -----
    The per-customer file has one JSON object per line: ``customer_id``, ``segment``,
    ``join_date``, ``churn_date`` (``null`` when not churned within the span), ``orders``
    (clean orders) and ``order_rate_per_day`` (the individual rate before ``w(d)``).

    Examples
    --------
    >>> truth = generate("/tmp/demo.csv", customers=100, seed=1)  # doctest: +SKIP
    >>> truth["lines_total"] == truth["lines_accepted"] + sum(
    ...     truth["rejects_by_reason"].values())  # doctest: +SKIP
    True
    """
    start_date = _check_arguments(customers, lines, seed, start, days, n_items, dirty_rate)
    _check_destinations(path)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress={progress!r} should be a callable or None")
    say = progress if progress is not None else _silent
    customers, lines = (None if v is None else int(v) for v in (customers, lines))
    seed, days, n_items, dirty_rate = int(seed), int(days), int(n_items), float(dirty_rate)
    parameters = {
        "customers": customers,
        "lines": lines,
        "seed": seed,
        "start": start_date.isoformat(),
        "days": days,
        "n_items": n_items,
        "dirty_rate": dirty_rate,
    }

    cal = _calendar(start_date, days)
    cat = _catalogue(seed, n_items)
    if lines is not None:
        say(f"choosing the number of customers for about {lines:,} lines")
        sim = _size_for_lines(seed, lines, dirty_rate, cal, cat, say)
    else:
        n = DEFAULT_CUSTOMERS if customers is None else customers
        say(f"placing the orders of {n:,} customers")
        sim = _simulate_orders(seed, n, cal, cat)
    say(f"drawing the items of {sim.n_lines:,} lines")
    basket = _draw_lines(seed, sim, cat)
    log = _assemble(seed, sim, basket, cal, dirty_rate)

    path = os.fspath(path)
    say(f"writing {log.lines_total:,} lines to {path}")
    _write_csv(path, log, sim, cat, cal)
    truth = _truth(parameters, seed, cal, cat, sim, basket, log, path)
    _write_text(truth_path(path), json.dumps(truth, indent=2) + "\n")
    _write_text(customers_truth_path(path), _customers_jsonl(sim, log, cal))
    return truth


def _silent(message):
    pass


def _check_destinations(path):
    """Refuse, before any work, destinations that cannot become files (directories)."""
    for target in (path, truth_path(path), customers_truth_path(path)):
        if os.path.isdir(target):
            raise ValueError(
                f"cannot write the generated log to {os.fspath(target)!r}: it is a directory; "
                "give a file path (e.g. DIR/orders.csv)"
            )
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write the generated log under {parent!r}: it is a file")


def _check_arguments(customers, lines, seed, start, days, n_items, dirty_rate):
    """Validate the public arguments; return the start date."""
    if customers is not None and lines is not None:
        raise ValueError(
            f"customers={customers!r} and lines={lines!r} are mutually exclusive: give one"
        )
    for name, value, low, high in (
        ("customers", customers, 1, None),
        ("lines", lines, 100, None),
        ("seed", seed, 0, None),
        ("days", days, 7, None),
        ("n_items", n_items, 30, 999_999),
    ):
        if value is None and name in ("customers", "lines"):
            continue
        check_int(name, value, low, high)
    if not isinstance(dirty_rate, (int, float)) or isinstance(dirty_rate, bool):
        raise ValueError(f"dirty_rate={dirty_rate!r} should be a number")
    if not 0 <= dirty_rate <= 0.5:
        raise ValueError(f"dirty_rate={dirty_rate!r} should be between 0 and 0.5")
    if isinstance(start, _dt.datetime):
        start = start.date()
    if isinstance(start, _dt.date):
        return start
    try:
        return _dt.date.fromisoformat(str(start))
    except ValueError:
        raise ValueError(f"start={start!r} is not an ISO date (YYYY-MM-DD)") from None


# --------------------------------------------------------------------------- calendar


@dataclass
class _Calendar:
    start: _dt.date
    days: int
    weight: np.ndarray  # w(d)
    cum: np.ndarray  # cumulative weight, cum[d] = sum of w before day d (days + 1 values)
    date_strings: list


def _calendar(start, days):
    dates = np.datetime64(start.isoformat(), "D") + np.arange(days)
    epoch_days = dates.astype(np.int64)
    dow = (epoch_days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    year_start = dates.astype("datetime64[Y]").astype("datetime64[D]")
    doy = (dates - year_start).astype(np.int64) + 1
    weekly = np.asarray(WEEKLY_MULTIPLIERS)[dow]
    yearly = 1.0 + _YEARLY_AMPLITUDE * np.cos(2 * np.pi * (doy - _YEARLY_PEAK_DOY) / 365.25)
    trend = (1.0 + _TREND_GROWTH_PER_YEAR) ** (np.arange(days) / 365.25)
    weight = weekly * yearly * trend
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    return _Calendar(start, days, weight, cum, np.datetime_as_string(dates).tolist())


def _cumulative_weight(cal, t):
    """Integral of w over [0, t) for continuous times ``t`` in days."""
    day = np.minimum(np.floor(t).astype(np.int64), cal.days - 1)
    return cal.cum[day] + cal.weight[day] * (t - day)


def _sample_days(rng, density, size):
    """Day indices drawn with probability proportional to ``density``."""
    cdf = np.cumsum(density)
    u = rng.random(size) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(density) - 1)


# -------------------------------------------------------------------------- catalogue


@dataclass
class _Catalogue:
    n_items: int
    cents: np.ndarray  # list price in cents
    popularity: np.ndarray  # base probability, sums to 1
    bundles: list  # lists of item indices
    bundle_items: np.ndarray  # (n_bundles, 3), padded with -1
    bundle_len: np.ndarray
    segment_cdf: np.ndarray  # (n_segments * n_items,), segment s offset by s


def _catalogue(seed, n_items):
    rng = np.random.default_rng([seed, _STREAM_CATALOGUE])
    ranks = rng.permutation(n_items)  # rank of each item id, 0 = most popular
    popularity = 1.0 / (ranks + 1.0) ** _ZIPF_EXPONENT
    popularity /= popularity.sum()
    raw = rng.lognormal(math.log(_PRICE_MEDIAN), _PRICE_SIGMA, n_items)
    whole = np.clip(np.rint(raw), 1, 200).astype(np.int64)
    ending = np.where(rng.random(n_items) < 0.3, 51, 1)
    cents = whole * 100 - ending

    by_rank = np.argsort(ranks)
    low = min(15, n_items - 3 * _N_BUNDLES)  # mid-popularity items, not the best sellers
    candidates = by_rank[low : max(low + 3 * _N_BUNDLES, min(100, n_items))]
    sizes = rng.integers(2, 4, _N_BUNDLES)
    picks = rng.choice(candidates, size=int(sizes.sum()), replace=False)
    bundles = [sorted(b.tolist()) for b in np.split(picks, np.cumsum(sizes)[:-1])]
    bundle_items = np.full((_N_BUNDLES, 3), -1, dtype=np.int64)
    for k, b in enumerate(bundles):
        bundle_items[k, : len(b)] = b

    price = cents / (100.0 * _PRICE_MEDIAN)
    cdfs = []
    for s, seg in enumerate(SEGMENTS):
        w = popularity * price**seg.price_gamma
        cdf = np.cumsum(w) / w.sum()
        cdf[-1] = 1.0
        cdfs.append(s + cdf)
    return _Catalogue(
        n_items,
        cents,
        popularity,
        bundles,
        bundle_items,
        sizes.astype(np.int64),
        np.concatenate(cdfs),
    )


# ---------------------------------------------------------------------------- orders


@dataclass
class _Orders:
    n_customers: int
    seg: np.ndarray  # per customer
    rate: np.ndarray
    join_t: np.ndarray  # continuous day of the join (first order)
    churn_t: np.ndarray  # continuous day of churn (may be beyond the span)
    n_orders: np.ndarray
    o_cust: np.ndarray  # per order
    o_day: np.ndarray
    o_tod: np.ndarray  # seconds since midnight
    o_bundle: np.ndarray  # bundle index or -1
    o_other: np.ndarray  # number of non-bundle items
    o_lines: np.ndarray
    n_lines: int


def _simulate_orders(seed, n, cal, cat):
    """Customers, their orders and basket sizes (no item draws yet)."""
    rng = np.random.default_rng([seed, _STREAM_ORDERS])
    days = cal.days
    shares = np.array([s.share for s in SEGMENTS])
    seg = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum())
    rate = np.array([s.order_rate_per_day for s in SEGMENTS])[seg]
    rate = rate * rng.gamma(_RATE_SHAPE, 1.0 / _RATE_SHAPE, n)

    initial = rng.random(n) < _INITIAL_SHARE
    first_days = min(_INITIAL_DAYS, days)
    acquisition = 1.0 + _ACQUISITION_GROWTH * np.arange(days) / max(days - 1, 1)
    join_day = np.where(
        initial,
        _sample_days(rng, cal.weight[:first_days], n),
        _sample_days(rng, cal.weight * acquisition, n),
    )
    join_t = join_day + rng.random(n)
    lifetime = np.array([s.mean_lifetime_days for s in SEGMENTS])[seg]
    churn_t = join_t + rng.exponential(1.0, n) * lifetime
    stop_t = np.minimum(churn_t, days)
    w_join = _cumulative_weight(cal, join_t)
    w_span = np.maximum(_cumulative_weight(cal, stop_t) - w_join, 0.0)
    extra = rng.poisson(rate * w_span)
    max_orders = np.array([s.max_orders or np.iinfo(np.int64).max for s in SEGMENTS])
    extra = np.minimum(extra, max_orders[seg] - 1)

    who = np.repeat(np.arange(n), extra)
    u = w_join[who] + rng.random(who.size) * w_span[who]
    day = np.searchsorted(cal.cum, u, side="right") - 1
    stop_day = np.minimum(np.floor(stop_t).astype(np.int64), days - 1)
    day = np.clip(day, join_day[who], stop_day[who])

    o_cust = np.concatenate([np.arange(n), who])
    o_day = np.concatenate([join_day, day]).astype(np.int64)
    n_o = o_cust.size
    hours = _OPEN_HOUR + rng.choice(
        len(_HOUR_WEIGHTS), size=n_o, p=np.array(_HOUR_WEIGHTS) / sum(_HOUR_WEIGHTS)
    )
    o_tod = hours * 3600 + rng.integers(0, 3600, n_o)

    o_seg = seg[o_cust]
    basket_mean = np.array([s.basket_mean_items for s in SEGMENTS])[o_seg]
    slots = 1 + rng.poisson(basket_mean - 1.0)
    max_slots = min(_MAX_BASKET, cat.n_items // 3)
    slots = np.minimum(slots, max_slots)
    has_bundle = rng.random(n_o) < _BUNDLE_PROB
    bundle = np.where(has_bundle, rng.integers(0, _N_BUNDLES, n_o), -1)
    blen = np.where(has_bundle, cat.bundle_len[np.maximum(bundle, 0)], 0)
    other = np.where(has_bundle, slots - 1, slots)
    other = np.minimum(other, max_slots - blen)
    o_lines = blen + other
    return _Orders(
        n_customers=n,
        seg=seg,
        rate=rate,
        join_t=join_t,
        churn_t=churn_t,
        n_orders=1 + extra,
        o_cust=o_cust,
        o_day=o_day,
        o_tod=o_tod.astype(np.int64),
        o_bundle=bundle,
        o_other=other,
        o_lines=o_lines,
        n_lines=int(o_lines.sum()),
    )


def _dirty_counts(clean_lines, dirty_rate):
    """Dirty lines to add per reason (header: repeated ones only); deterministic."""
    counts = dict.fromkeys(REJECT_REASONS, 0)
    if dirty_rate <= 0 or clean_lines == 0:
        return counts
    total = round(dirty_rate * clean_lines)
    weights = np.array([_DIRTY_WEIGHTS[r] for r in REJECT_REASONS])
    exact = total * weights / weights.sum()
    alloc = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - alloc), kind="stable")
    alloc[order[: total - int(alloc.sum())]] += 1
    for reason, k in zip(REJECT_REASONS, alloc, strict=True):
        counts[reason] = max(1, int(k))
    return counts


def _expected_total_lines(clean_lines, dirty_rate):
    return 1 + clean_lines + sum(_dirty_counts(clean_lines, dirty_rate).values())


def _size_for_lines(seed, lines, dirty_rate, cal, cat, say):
    """Simulate orders for the number of customers that gives about ``lines`` lines.

    A pilot with the same seed estimates the lines per customer; the number of customers
    is then corrected from the simulated totals. Small sizes, where one big customer
    moves the total a lot, also scan the numbers around the best one (each is cheap).
    """
    pilot = _simulate_orders(seed, _PILOT_CUSTOMERS, cal, cat)
    per_customer = max(pilot.n_lines / _PILOT_CUSTOMERS, 1e-9)
    target_clean = max((lines - 1) / (1.0 + dirty_rate), 1.0)
    n = max(1, round(target_clean / per_customer))
    best, best_error, tried = None, math.inf, set()

    def attempt(n):
        nonlocal best, best_error
        tried.add(n)
        sim = pilot if n == _PILOT_CUSTOMERS else _simulate_orders(seed, n, cal, cat)
        total = _expected_total_lines(sim.n_lines, dirty_rate)
        error = abs(total - lines) / lines
        if error < best_error or (error == best_error and n < best.n_customers):
            best, best_error = sim, error
        return total, error

    for _ in range(4):
        say(f"trying {n:,} customers")
        total, error = attempt(n)
        if error <= 0.01:
            return best
        n = max(1, round(n * (lines - 1) / max(total - 1, 1)))
        if n in tried:
            break
    if best.n_customers <= _SCAN_CUSTOMERS:
        centre = best.n_customers
        low, high = max(1, int(centre * 0.5)), int(centre * 1.5) + 5
        for n in range(low, high + 1, max(1, (high - low) // 80)):
            if n not in tried:
                attempt(n)
            if best_error <= 0.01:
                break
    return best


# ----------------------------------------------------------------------------- items


@dataclass
class _Lines:
    order: np.ndarray  # order index (into _Orders arrays), sorted
    item: np.ndarray
    quantity: np.ndarray
    cents: np.ndarray  # unit price actually paid


def _ranges(starts, lengths):
    """Concatenation of ``arange(s, s + l)`` for each start and length."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def _draw_lines(seed, sim, cat):
    """Distinct items of every basket, quantities and prices paid."""
    rng = np.random.default_rng([seed, _STREAM_ITEMS])
    n_items = cat.n_items
    counts = sim.o_lines
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    order = np.repeat(np.arange(counts.size), counts)
    slot = np.arange(order.size) - starts[order]
    bundle = sim.o_bundle[order]
    blen = np.where(bundle >= 0, cat.bundle_len[np.maximum(bundle, 0)], 0)
    fixed = slot < blen
    seg = sim.seg[sim.o_cust[order]]

    def draw(idx):
        u = seg[idx] + rng.random(idx.size)
        pick = np.searchsorted(cat.segment_cdf, u, side="right") - seg[idx] * n_items
        return np.clip(pick, 0, n_items - 1)

    item = np.empty(order.size, dtype=np.int64)
    item[fixed] = cat.bundle_items[bundle[fixed], slot[fixed]]
    free = np.flatnonzero(~fixed)
    item[free] = draw(free)

    # Redraw duplicates within an order (bundle items are kept) until all are distinct.
    check = np.arange(order.size)
    while check.size:
        # Sorting by (order, item, not fixed) puts a fixed line first among equal items.
        key = (order[check] * n_items + item[check]) * 2 + ~fixed[check]
        by_key = np.argsort(key, kind="stable")
        key = key[by_key] >> 1
        dup = np.zeros(key.size, dtype=bool)
        dup[1:] = key[1:] == key[:-1]
        redo = check[by_key[dup]]
        if redo.size == 0:
            break
        item[redo] = draw(redo)
        again = np.unique(order[redo])
        check = _ranges(starts[again], counts[again])

    by_item = np.argsort(order * n_items + item, kind="stable")
    item = item[by_item]
    seg = seg[by_item]
    n_lines = order.size
    multi_p = np.array([s.multi_quantity_prob for s in SEGMENTS])[seg]
    quantity = np.where(
        rng.random(n_lines) < multi_p,
        rng.choice(_MULTI_QUANTITIES, size=n_lines, p=_MULTI_WEIGHTS),
        1,
    ).astype(np.int64)
    discount_p = np.array([s.discount_prob for s in SEGMENTS])[seg]
    pct = np.where(
        rng.random(n_lines) < discount_p,
        rng.choice(_DISCOUNT_PCTS, size=n_lines, p=_DISCOUNT_WEIGHTS),
        0,
    )
    list_cents = cat.cents[item]
    cents = np.maximum((list_cents * (100 - pct) + 50) // 100, 1)
    return _Lines(order=order, item=item, quantity=quantity, cents=cents.astype(np.int64))


# -------------------------------------------------------------------- file assembly


@dataclass
class _Log:
    # One row per purchase-like line (clean and returns), in file order.
    order_num: np.ndarray  # 1-based order number of the line
    cust: np.ndarray  # customer index
    item: np.ndarray
    quantity: np.ndarray
    cents: np.ndarray
    is_return: np.ndarray
    # Per order number - 1.
    order_cust: np.ndarray
    order_sec: np.ndarray  # seconds since the start of the span
    # Customer index -> 1-based customer number (by join time).
    cust_num: np.ndarray
    # Other dirty lines: inserted after line ``dirty_anchor`` of the sequence above.
    dirty_anchor: np.ndarray
    dirty_reason: list
    dirty_variant: np.ndarray
    rejects: dict
    lines_accepted: int
    lines_total: int
    clean_orders: int
    revenue_cents: int


def _assemble(seed, sim, basket, cal, dirty_rate):
    """Order numbers, returns and the positions and kinds of the other dirty lines."""
    rng = np.random.default_rng([seed, _STREAM_DIRTY])
    n_clean = basket.order.size
    planned = _dirty_counts(n_clean, dirty_rate)
    o_sec = sim.o_day * _SECONDS_PER_DAY + sim.o_tod
    line_day = sim.o_day[basket.order]

    # Returns: copies of earlier lines, 1-30 days later, each an order of its own.
    sources = np.flatnonzero(line_day < cal.days - 1)
    n_ret = min(planned["return"], sources.size)
    src = np.sort(rng.choice(sources, size=n_ret, replace=False)) if n_ret else sources[:0]
    max_delay = np.minimum(_RETURN_MAX_DELAY_DAYS, cal.days - 1 - line_day[src])
    delay = 1 + np.floor(rng.random(n_ret) * max_delay).astype(np.int64)
    hours = _OPEN_HOUR + rng.integers(0, _CLOSE_HOUR - _OPEN_HOUR, n_ret)
    ret_sec = (line_day[src] + delay) * _SECONDS_PER_DAY + hours * 3600
    ret_sec = ret_sec + rng.integers(0, 3600, n_ret)
    ret_qty = -rng.integers(1, basket.quantity[src] + 1) if n_ret else src[:0]

    # Number all orders (clean and returns) in time order; ties by customer, clean first.
    n_o = o_sec.size
    all_sec = np.concatenate([o_sec, ret_sec])
    all_cust = np.concatenate([sim.o_cust, sim.o_cust[basket.order[src]]])
    cust_num = np.empty(sim.n_customers, dtype=np.int64)
    cust_num[np.argsort(sim.join_t, kind="stable")] = np.arange(1, sim.n_customers + 1)
    kind = np.concatenate([np.zeros(n_o, dtype=np.int64), np.ones(n_ret, dtype=np.int64)])
    by_time = np.lexsort((kind, cust_num[all_cust], all_sec))
    number = np.empty(all_sec.size, dtype=np.int64)
    number[by_time] = np.arange(1, all_sec.size + 1)

    order_num = np.concatenate([number[basket.order], number[n_o:]])
    item = np.concatenate([basket.item, basket.item[src]])
    seq = np.argsort(order_num * (int(item.max(initial=0)) + 1) + item, kind="stable")
    is_return = np.concatenate([np.zeros(n_clean, dtype=bool), np.ones(n_ret, dtype=bool)])
    log_cust = np.concatenate([sim.o_cust[basket.order], sim.o_cust[basket.order[src]]])

    # Other dirty lines go after a clean line (not the last one) and copy it.
    is_return = is_return[seq]
    n_seq = seq.size
    anchors_pool = np.flatnonzero(~is_return[: max(n_seq - 1, 1)])
    reasons = [r for r in REJECT_REASONS if r != "return" for _ in range(planned[r])]
    if anchors_pool.size == 0:
        reasons = []
    anchor = rng.choice(anchors_pool, size=len(reasons)) if reasons else np.zeros(0, np.int64)
    variant = rng.integers(0, 6, len(reasons))
    by_anchor = np.argsort(anchor, kind="stable")

    rejects = dict.fromkeys(REJECT_REASONS, 0)
    for r in reasons:
        rejects[r] += 1
    rejects["return"] = n_ret
    rejects["header"] += 1  # the first line
    revenue = int((basket.quantity * basket.cents).sum())
    return _Log(
        order_num=order_num[seq],
        cust=log_cust[seq],
        item=item[seq],
        quantity=np.concatenate([basket.quantity, ret_qty])[seq],
        cents=np.concatenate([basket.cents, basket.cents[src]])[seq],
        is_return=is_return,
        order_cust=all_cust[by_time],
        order_sec=all_sec[by_time],
        cust_num=cust_num,
        dirty_anchor=anchor[by_anchor],
        dirty_reason=[reasons[k] for k in by_anchor],
        dirty_variant=variant[by_anchor],
        rejects=rejects,
        lines_accepted=n_clean,
        lines_total=n_clean + sum(rejects.values()),
        clean_orders=n_o,
        revenue_cents=revenue,
    )


def _money(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _id_width(count, minimum):
    return max(minimum, len(str(count)))


def _write_csv(path, log, sim, cat, cal):
    """Write the log in chunks, with the dirty lines in their places."""
    n_orders = log.order_sec.size
    ow = _id_width(n_orders, 8)
    cw = _id_width(sim.n_customers, 6)
    iw = _id_width(cat.n_items, 4)
    item_str = [f"I{k + 1:0{iw}d}" for k in range(cat.n_items)]
    cust_str = [f"C{k:0{cw}d}" for k in range(sim.n_customers + 1)]  # by customer number
    clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
    dates = cal.date_strings
    days = (log.order_sec // _SECONDS_PER_DAY).tolist()
    tods = (log.order_sec % _SECONDS_PER_DAY).tolist()
    order_cust_num = log.cust_num[log.order_cust].tolist()
    order_fmt = f"O{{:0{ow}d}},".format
    prefix = [
        order_fmt(k) + cust_str[c] + "," + dates[d] + "T" + clock[t] + ","
        for k, c, d, t in zip(range(1, n_orders + 1), order_cust_num, days, tods, strict=True)
    ]
    # ",quantity,price" tails, one string per distinct (quantity, cents) pair.
    q_min = int(log.quantity.min(initial=0))
    stride = int(log.cents.max(initial=0)) + 1
    tail_key = (log.quantity - q_min) * stride + log.cents
    tail_values = np.flatnonzero(np.bincount(tail_key))
    lookup = np.zeros(int(tail_values[-1]) + 1 if tail_values.size else 1, dtype=np.int64)
    lookup[tail_values] = np.arange(tail_values.size)
    tail_index = lookup[tail_key]
    tails = [f",{v // stride + q_min},{_money(v % stride)}" for v in tail_values.tolist()]

    dirty = _dirty_texts(log, prefix, item_str, tails, tail_index)
    anchors = log.dirty_anchor.tolist()
    d = 0
    n = log.order_num.size
    with atomic_file(path, overwrite=True) as fh:
        fh.write((HEADER + "\n").encode("ascii"))
        for a in range(0, n, _WRITE_CHUNK):
            b = min(n, a + _WRITE_CHUNK)
            o = (log.order_num[a:b] - 1).tolist()
            it = log.item[a:b].tolist()
            tl = tail_index[a:b].tolist()
            text = [prefix[x] + item_str[y] + tails[z] for x, y, z in zip(o, it, tl, strict=True)]
            if d < len(anchors) and anchors[d] < b:
                pieces, prev = [], a
                while d < len(anchors) and anchors[d] < b:
                    pieces.extend(text[prev - a : anchors[d] + 1 - a])
                    pieces.append(dirty[d])
                    prev = anchors[d] + 1
                    d += 1
                pieces.extend(text[prev - a :])
                text = pieces
            fh.write(("\n".join(text) + "\n").encode("utf-8", "surrogateescape"))


def _dirty_texts(log, prefix, item_str, tails, tail_index):
    """Text of each non-return dirty line, a corrupted copy of its anchor line."""
    texts = []
    for anchor, reason, variant in zip(
        log.dirty_anchor.tolist(), log.dirty_reason, log.dirty_variant.tolist(), strict=True
    ):
        order_id, customer, timestamp, _ = prefix[log.order_num[anchor] - 1].split(",")
        item = item_str[log.item[anchor]]
        _, quantity, price = tails[tail_index[anchor]].split(",")
        fields = [order_id, customer, timestamp, item, quantity, price]
        if reason == "blank":
            texts.append("")
            continue
        if reason == "header":
            texts.append(HEADER)
            continue
        if reason == "bad_timestamp":
            fields[2] = "not-a-date" if variant % 2 else f"{timestamp[:4]}-13-45{timestamp[10:]}"
        elif reason == "bad_price":
            fields[5] = "n/a"
        elif reason == "missing_customer":
            fields[1] = ""
        elif reason == "column_count":
            del fields[variant]
        elif reason == "undecodable":
            fields[3] = item[:2] + "\udcff" + item[2:]  # written as the byte 0xff
        texts.append(",".join(fields))
    return texts


def _write_text(path, text):
    with atomic_file(path, overwrite=True) as fh:
        fh.write(text.encode("utf-8"))


# ----------------------------------------------------------------------------- truth


def _iso_day(cal, t):
    return (cal.start + _dt.timedelta(days=int(t))).isoformat()


def _truth(parameters, seed, cal, cat, sim, basket, log, path):
    iw = _id_width(cat.n_items, 4)
    churned = sim.churn_t < cal.days
    seg_lines = np.bincount(sim.seg[sim.o_cust[basket.order]], minlength=len(SEGMENTS)).tolist()
    seg_orders = np.bincount(sim.seg, weights=sim.n_orders, minlength=len(SEGMENTS))
    seg_customers = np.bincount(sim.seg, minlength=len(SEGMENTS)).tolist()
    segments = {}
    for s, seg in enumerate(SEGMENTS):
        entry = asdict(seg)
        del entry["name"]
        entry["mean_interval_days"] = round(1.0 / seg.order_rate_per_day, 6)
        entry["churn_hazard_per_day"] = round(1.0 / seg.mean_lifetime_days, 8)
        entry["customers"] = seg_customers[s]
        entry["orders"] = int(seg_orders[s])
        entry["lines"] = seg_lines[s]
        segments[seg.name] = entry
    return {
        "generator": GENERATOR,
        "seed": seed,
        "parameters": parameters,
        "start": cal.start.isoformat(),
        "end": _iso_day(cal, cal.days - 1),
        "n_customers": sim.n_customers,
        "n_items": cat.n_items,
        "segments": segments,
        "rate_heterogeneity": {
            "distribution": "gamma, mean 1 (individual rate = segment rate * multiplier)",
            "shape": _RATE_SHAPE,
        },
        "weekly_multipliers": list(WEEKLY_MULTIPLIERS),
        "yearly": {
            "form": "1 + amplitude * cos(2 * pi * (day_of_year - peak_day_of_year) / 365.25)",
            "amplitude": _YEARLY_AMPLITUDE,
            "peak_day_of_year": _YEARLY_PEAK_DOY,
        },
        "trend": {
            "description": (
                "each customer's order intensity is multiplied by "
                "(1 + growth_per_year) ** (days since start / 365.25); on top of it the "
                "customer base grows since joins per day rise linearly over the span"
            ),
            "growth_per_year": _TREND_GROWTH_PER_YEAR,
        },
        "acquisition": {
            "initial_share": _INITIAL_SHARE,
            "initial_days": _INITIAL_DAYS,
            "growth_over_span": _ACQUISITION_GROWTH,
            "description": (
                "initial_share of customers join in the first initial_days days; the others "
                "join with a daily rate rising linearly from 1 to 1 + growth_over_span, "
                "both times the daily weight w(d); the first order is on the join day"
            ),
        },
        "churn": {
            "description": (
                "exponential lifetime from the join (constant hazard 1 / mean_lifetime_days "
                "per segment); no order after churn; churn_date null when beyond the end"
            ),
        },
        "shop_hours": {
            "open": f"{_OPEN_HOUR:02d}:00",
            "close": f"{_CLOSE_HOUR:02d}:00",
            "hour_weights": list(_HOUR_WEIGHTS),
        },
        "baskets": {
            "bundle_probability": _BUNDLE_PROB,
            "max_items": min(_MAX_BASKET, cat.n_items // 3),
            "discount_percents": list(_DISCOUNT_PCTS),
            "discount_weights": list(_DISCOUNT_WEIGHTS),
            "multi_quantities": list(_MULTI_QUANTITIES),
            "multi_quantity_weights": list(_MULTI_WEIGHTS),
        },
        "bundles": [[f"I{k + 1:0{iw}d}" for k in b] for b in cat.bundles],
        "churned_customers": int(churned.sum()),
        "orders": log.clean_orders,
        "lines_accepted": log.lines_accepted,
        "lines_total": log.lines_total,
        "rejects_by_reason": dict(log.rejects),
        "revenue": _money(log.revenue_cents),
        "customers_truth_file": os.path.basename(customers_truth_path(path)),
        "items": [
            {
                "item_id": f"I{k + 1:0{iw}d}",
                "list_price": int(c) / 100,
                "popularity": float(p),
            }
            for k, (c, p) in enumerate(zip(cat.cents.tolist(), cat.popularity, strict=True))
        ],
    }


def _customers_jsonl(sim, log, cal):
    """The per-customer truth as JSON lines, in customer id order."""
    cw = _id_width(sim.n_customers, 6)
    by_number = np.argsort(log.cust_num)
    names = [json.dumps(s.name) for s in SEGMENTS]
    quoted = [json.dumps(d) for d in cal.date_strings]
    churn_day = np.floor(sim.churn_t[by_number])
    churned = churn_day < cal.days
    churn_day = np.where(churned, churn_day, 0).astype(np.int64).tolist()
    columns = zip(
        log.cust_num[by_number].tolist(),
        sim.seg[by_number].tolist(),
        np.floor(sim.join_t[by_number]).astype(np.int64).tolist(),
        churned.tolist(),
        churn_day,
        sim.n_orders[by_number].tolist(),
        sim.rate[by_number].tolist(),
        strict=True,
    )
    # What json.dumps gives for each row, spelled out for speed (a float's repr is JSON).
    rows = [
        f'{{"customer_id": "C{num:0{cw}d}", "segment": {names[seg]}, '
        f'"join_date": {quoted[join]}, "churn_date": {quoted[churn] if gone else "null"}, '
        f'"orders": {orders}, "order_rate_per_day": {round(rate, 8)!r}}}\n'
        for num, seg, join, gone, churn, orders, rate in columns
    ]
    return "".join(rows)
