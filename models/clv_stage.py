"""The CLV stage: BG/NBD and Gamma-Gamma fitted on compressed statistics, every customer
scored on the tasks, a holdout evaluation, published.

:mod:`models.clv` documents the fit and :mod:`mr_jobs.clv_math` the formulas. No
per-customer row passes through the driver except a bounded sample:

1. **Calibration rows** (one per customer, the lifetimes columns in days): the RFM
   stage's published parts (``current_path``, period ``D``); else an RFM run as of
   ``as_of`` into a temporary directory; with ``holdout_end``, the one pass of
   :mod:`mr_jobs.churn_features` with the cutoff at ``as_of`` and the horizon to
   ``holdout_end``, which adds each customer's purchase days in the holdout.
2. **Statistics** (:mod:`mr_jobs.clv_stats`): customers per distinct ``(x, t_x, T,
   holdout)``; bounded by the log's span in days, not by the customers.
3. **Fit** in the driver: BG/NBD on the distinct triples (exact, whatever the number of
   customers); Gamma-Gamma on the repeat customers with a positive mean value among a
   uniform, seeded sample of at most ``clv_max_train`` customers (all of them when there
   are no more; :func:`models.churn.keyed_sample`), which also sets the value tiers: the
   0.5 and 0.8 quantiles of the sample's CLV.
4. **Scores** (:mod:`mr_jobs.clv_scores`, map-only, the parameters passed as JSON): the
   tasks write the published ``part-*``; totals and tiers come from counters.
5. **Holdout** (with ``holdout_end``): from the statistics alone, predicted vs actual
   repeat purchases per calibration frequency, against the recency rule.

Published layout (``<output>/``)
--------------------------------
``part-*`` and ``customers.csv``
    One row per customer (:data:`CUSTOMER_COLUMNS`): ``customer_id``; ``frequency``,
    ``recency``, ``T`` and ``monetary_value`` (the calibration's lifetimes columns in
    days); ``p_alive`` (the probability the customer is still a customer at the end of
    the calibration); ``expected_purchases`` (purchase days expected in the next
    ``horizon_days``); ``expected_value`` (the Gamma-Gamma mean value of a purchase day);
    ``clv`` (``expected_value`` x the expected purchases discounted by month);
    ``value_tier`` (``high``: CLV at or above the sample's 0.8 quantile; ``medium``: at
    or above its median; ``low``). Parts are in the order of the rows they read.
``model.json``
    Both fits (parameters with time in days, standard errors, log-likelihood,
    convergence, the data they came from), the horizon, the discount rate, the tiers.
``sample.csv``
    For the report's distributions: a seeded subsample
    (:func:`models.summaries.subsample_positions`) of at most
    :data:`models.summaries.REPORT_SAMPLE_SIZE` customers of the fit's sample, scored as
    the tasks score them (:data:`REPORT_SAMPLE_COLUMNS`; no customer id).
``holdout.csv`` (with ``holdout_end``)
    Per calibration frequency ``0`` .. ``6`` and ``7+`` then ``all``: customers, actual
    and predicted repeat purchases in the holdout (sums and means), and the recency
    rule's predictions (:func:`holdout_table`).
``_manifest.json``, ``_SUCCESS``
    ``lines``: the calibration rows' accounting (with ``holdout_end``: the lines up to it
    accepted, later ones rejected ``after_as_of``; with ``current_path``: the RFM run's
    from its manifest, or, for bare part files, their rows as lines read and accepted);
    ``details``: the fits, the sample, customers per tier, the total CLV and expected
    purchases (to 1e-6 per customer), the holdout summary.
"""

import dataclasses
import datetime
import json
import os
import tempfile
import time
from contextlib import contextmanager

import numpy as np

from hdfs_io import PathNotFound, Publication, check_can_publish, get_filesystem
from models.checks import check_int, check_iso_date
from models.churn import keyed_sample, run_training_rows
from models.clv import ModelNotIdentifiedError, fit_bgnbd, fit_gamma_gamma
from models.inputs import describe_inputs, expand_parts
from models.job_runner import AccountingError, run_job, run_job_into
from models.manifest import Stopwatch, build_manifest
from models.outputs import csv_from_parts, csv_string, first_part_row, json_plain, read_part_rows
from models.progress import summarize_manifest
from models.rfm_stage import run_rfm_stage
from models.summaries import subsample_positions
from mr_jobs.clv_math import clv_factor, expected_purchases, p_alive
from mr_jobs.clv_scores import COUNTER_GROUP_TIERS, MRCLVScores, score_rows
from mr_jobs.clv_stats import COUNTER_GROUP_CLV, MRCLVStats

__all__ = [
    "CUSTOMER_COLUMNS",
    "DEFAULTS",
    "ModelNotIdentifiedError",
    "check_options",
    "holdout_table",
    "run_clv_stage",
]

DEFAULTS = {"horizon_days": 365, "discount_rate": 0.01, "clv_max_train": 500_000, "seed": 0}
CUSTOMER_COLUMNS = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "expected_value",
    "clv",
    "value_tier",
)
CUSTOMERS_CSV = "customers.csv"
SAMPLE_CSV = "sample.csv"
#: The columns of :data:`SAMPLE_CSV`.
REPORT_SAMPLE_COLUMNS = CUSTOMER_COLUMNS[1:-1]
MODEL_JSON = "model.json"
HOLDOUT_CSV = "holdout.csv"
#: The quantiles of the sample's CLV that start the ``medium`` and ``high`` tiers.
TIER_QUANTILES = {"medium": 0.5, "high": 0.8}
#: The longest horizon: ten years.
MAX_HORIZON_DAYS = 3650
#: Sample rows scored at a time for the tiers (as a scoring task does).
_SCORE_BATCH = 5_000
_SAMPLE_COLUMNS = ("customer_id", "frequency", "recency", "T", "monetary_value")


def check_options(
    *,
    as_of=None,
    holdout_end=None,
    horizon_days=DEFAULTS["horizon_days"],
    discount_rate=DEFAULTS["discount_rate"],
    clv_max_train=DEFAULTS["clv_max_train"],
    seed=DEFAULTS["seed"],
):
    """Validate the options of :func:`run_clv_stage` before any work.

    Returns
    -------
    (str or None, str or None)
        ``as_of`` and ``holdout_end`` as ISO dates.

    Raises
    ------
    ValueError
        Naming the bad value.
    """
    check_int("horizon_days", horizon_days, 1, rule="a positive integer")
    if horizon_days > MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days={horizon_days!r} should be at most {MAX_HORIZON_DAYS}")
    if isinstance(discount_rate, bool) or not isinstance(discount_rate, (int, float)):
        raise ValueError(f"discount_rate={discount_rate!r} should be a number in [0, 1)")
    if not 0.0 <= discount_rate < 1.0:
        raise ValueError(f"discount_rate={discount_rate!r} should be a number in [0, 1)")
    check_int("clv_max_train", clv_max_train, 2, rule="an integer >= 2")
    check_int("seed", seed, 0, rule="a non-negative integer")
    as_of = None if as_of is None else check_iso_date("as_of", as_of).isoformat()
    if holdout_end is None:
        return as_of, None
    holdout_end = check_iso_date("holdout_end", holdout_end).isoformat()
    if as_of is None:
        raise ValueError(
            f"holdout_end={holdout_end!r} needs as_of: the calibration's last day, before it"
        )
    if holdout_end <= as_of:
        raise ValueError(f"holdout_end={holdout_end!r} should be after as_of={as_of!r}")
    return as_of, holdout_end


@dataclasses.dataclass
class _Rows:
    """The calibration rows: part files, the date they are as of, their line accounting."""

    parts: list
    as_of: str
    lines: dict | None


def run_clv_stage(
    input_paths,
    output_path,
    *,
    schema,
    as_of=None,
    holdout_end=None,
    current_path=None,
    horizon_days=DEFAULTS["horizon_days"],
    discount_rate=DEFAULTS["discount_rate"],
    clv_max_train=DEFAULTS["clv_max_train"],
    seed=DEFAULTS["seed"],
    churn_path=None,
    runner="inline",
    conf_paths=None,
    overwrite=False,
    reporter=None,
):
    """Fit BG/NBD and Gamma-Gamma, score every customer and publish (module docstring).

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    output_path : str
        Where to publish (refused if it exists and not ``overwrite``).
    schema : mr_jobs.records.InputSchema
    as_of : str, optional
        The calibration's last day (``YYYY-MM-DD``; default the latest purchase date).
    holdout_end : str, optional
        With ``as_of``: the lines after ``as_of`` up to this day are the holdout.
    current_path : str or list of str, optional
        RFM rows of period ``D`` to use as the calibration rows (the RFM stage's
        published directory); not with ``holdout_end``.
    horizon_days : int
        The CLV and expected purchases' horizon (default 365).
    discount_rate : float
        Monthly (default 0.01).
    clv_max_train : int
        Gamma-Gamma and the tiers use at most this many customers (a seeded sample).
    seed : int
    churn_path : str, optional
        A published churn stage's output: with a holdout, its held-out ROC-AUC is set
        beside this model's in ``details.holdout.churn_model`` (when it is published).
    runner, conf_paths, overwrite, reporter
        As for the other stages.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ValueError
        A bad argument, before any job runs.
    models.clv.ModelNotIdentifiedError
        When the data cannot identify a model (no customer, no repeat purchase): nothing
        is published.
    """
    as_of, holdout_end = check_options(
        as_of=as_of,
        holdout_end=holdout_end,
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        clv_max_train=clv_max_train,
        seed=seed,
    )
    if current_path is not None and holdout_end is not None:
        raise ValueError("current_path has no holdout: give holdout_end or current_path")
    say = reporter.progress("clv") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    check_can_publish(fs, out, overwrite)
    watch = Stopwatch()
    jobs = {"runner": runner, "conf_paths": conf_paths}
    settings = {"horizon_days": int(horizon_days), "discount_rate": float(discount_rate)}
    rows_of = _calibration_rows(input_paths, current_path, schema, as_of, holdout_end, jobs, say)
    with rows_of as rows:
        seconds = {}
        with _timed(seconds, "statistics"):
            stats = _statistics(rows.parts, jobs)
        if rows.lines is None:
            rows.lines = _row_lines(stats["customers"])
        say(
            f"{stats['customers']:,} customers in {len(stats['n']):,} distinct (x, t_x, T, holdout)"
        )
        model = _fit(rows, stats, settings, clv_max_train, seed, jobs, say, seconds)
        holdout = None
        if holdout_end is not None:
            days = _days_between(as_of, holdout_end)
            holdout = holdout_table(stats, model["bgnbd"], days)
            holdout["summary"]["churn_model"] = _churn_reference(churn_path)
        with Publication(fs, out, overwrite=overwrite) as publication:
            with _timed(seconds, "scores"):
                scored = _score(publication, rows.parts, model, stats["customers"], jobs)
            say(f"scored {scored['rows']:,} customers, total CLV {scored['clv_total']:,.2f}")
            with _timed(seconds, "customers_csv"):
                csv_from_parts(publication, CUSTOMERS_CSV, CUSTOMER_COLUMNS)
            _write_model(publication, model, rows, holdout_end)
            publication.write_file(SAMPLE_CSV, _report_sample(model, seed))
            outputs = [CUSTOMERS_CSV, MODEL_JSON, SAMPLE_CSV]
            if holdout is not None:
                publication.write_file(HOLDOUT_CSV, csv_string(HOLDOUT_COLUMNS, holdout["table"]))
                outputs.append(HOLDOUT_CSV)
            parameters = {
                "schema": schema.to_dict(),
                "as_of": as_of,
                "holdout_end": holdout_end,
                **settings,
                "clv_max_train": int(clv_max_train),
                "seed": int(seed),
                "overwrite": overwrite,
            }
            manifest = build_manifest(
                "clv",
                inputs=describe_inputs(input_paths),
                parameters=parameters,
                runner=runner,
                lines=rows.lines,
                rows_written=scored["rows"],
                stopwatch=watch,
                outputs=outputs,
                details=json_plain({**_details(rows, model, scored, holdout), "seconds": seconds}),
            )
            publication.commit(manifest)
    say(f"published {scored['rows']:,} customers and {len(outputs)} files to {fs.uri(out)}")
    summarize_manifest(reporter, "clv", manifest)
    return manifest


def _churn_reference(churn_path):
    """The churn stage's held-out ROC-AUC, its cutoff and horizon, or None."""
    from hdfs_io import is_published, read_manifest

    if churn_path is None:
        return None
    fs, path = get_filesystem(churn_path)
    if not is_published(fs, path):
        return None
    details = read_manifest(fs, path).get("details", {})
    return {
        "roc_auc": details.get("metrics", {}).get("roc_auc"),
        "cutoff": details.get("cutoff"),
        "horizon_days": details.get("horizon_days"),
        "note": "the churn stage's held-out ROC-AUC of churning, on its own cutoff, "
        "horizon and held-out customers: beside, not on, this holdout",
    }


@contextmanager
def _timed(seconds, step):
    """Add the seconds the block takes to ``seconds[step]`` (for ``details.seconds``)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = round(seconds.get(step, 0.0) + time.perf_counter() - started, 3)


def _days_between(start, end):
    return (datetime.date.fromisoformat(end) - datetime.date.fromisoformat(start)).days


# -- 1. calibration rows -----------------------------------------------------------------


def _given_rows(current_path, as_of):
    parts = expand_parts(current_path if isinstance(current_path, list) else [current_path])
    first = first_part_row(parts)
    if first is None:
        raise ModelNotIdentifiedError("no customer in current_path: nothing to fit or score")
    if first.get("period") != "D":
        raise ValueError(
            f"the rows of current_path have period={first.get('period')!r}: the CLV models "
            "need the lifetimes columns in days (run the RFM stage with period D)"
        )
    if as_of is not None and first.get("as_of") != as_of:
        raise ValueError(
            f"as_of={as_of!r} but the rows of current_path are as of {first['as_of']!r}"
        )
    return _Rows(parts, first["as_of"], _given_lines(current_path))


def _given_lines(current_path):
    """The line accounting of the RFM run that wrote ``current_path`` (its manifest), or
    None for part files without one (the rows are then accounted as read)."""
    from hdfs_io import is_published, read_manifest

    if isinstance(current_path, list):
        return None
    fs, path = get_filesystem(current_path)
    if not is_published(fs, path):
        return None
    try:
        return read_manifest(fs, path)["lines"]
    except PathNotFound:  # published by another tool, without a manifest
        return None


@contextmanager
def _calibration_rows(input_paths, current_path, schema, as_of, holdout_end, jobs, say):
    """Yield the :class:`_Rows` of the calibration (see the module docstring, step 1)."""
    if current_path is not None:
        yield _given_rows(current_path, as_of)
        return
    if holdout_end is not None:
        say(f"calibration to {as_of}, holdout to {holdout_end}")
        days = _days_between(as_of, holdout_end)
        with run_training_rows(
            input_paths, schema=schema, cutoff=as_of, horizon_days=days, progress=say, **jobs
        ) as training:
            yield _Rows(training.job.output_parts(), as_of, training.lines["labels"])
        return
    say("computing the customers' RFM rows (period D)")
    with tempfile.TemporaryDirectory(prefix="crm-clv-rfm-") as tmp:
        out = os.path.join(tmp, "rfm")
        manifest = run_rfm_stage(input_paths, out, schema=schema, as_of=as_of, period="D", **jobs)
        yield _Rows(expand_parts([out]), manifest["details"]["as_of"], manifest["lines"])


# -- 2. statistics -----------------------------------------------------------------------


def _statistics(parts, jobs):
    """The distinct ``(x, t_x, T, holdout)`` and their customers, as arrays."""
    with run_job(MRCLVStats, parts, [], **jobs) as run:
        # one flat stream of integers: no Python list per key is kept
        flat = (value for row in run.rows() for value in row)
        keys = np.fromiter(flat, dtype=np.int64).reshape(-1, 5)
        read = run.counters[0].get(COUNTER_GROUP_CLV, {}).get("rows", 0) if run.counters else 0
    customers = int(keys[:, 4].sum())
    if customers != read:
        raise AccountingError(f"{read} rows read but {customers} customers counted")
    if customers == 0:
        raise ModelNotIdentifiedError("no customer: there is nothing to fit or score")
    names = ("x", "t_x", "T", "holdout", "n")
    return {"customers": customers, **{name: keys[:, i] for i, name in enumerate(names)}}


def _row_lines(rows):
    """The accounting of given rows without a manifest: every row read is accepted."""
    return {"read": rows, "accepted": rows, "rejected": 0, "rejected_by_reason": {}}


def _triples(stats):
    """The distinct ``(x, t_x, T)`` and their customers (the holdout summed out)."""
    keys = np.stack([stats["x"], stats["t_x"], stats["T"]], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=stats["n"])
    return unique, counts


# -- 3. fit ------------------------------------------------------------------------------


def _fit(rows, stats, settings, max_rows, seed, jobs, say, seconds):
    """Both fits and the tiers: the model the scoring tasks get."""
    triples, counts = _triples(stats)
    with _timed(seconds, "bgnbd_fit"):
        bgnbd = fit_bgnbd(triples[:, 0], triples[:, 1], triples[:, 2], counts)
    p = bgnbd["parameters"]
    with _timed(seconds, "bgnbd_check"):
        _check_expectations(p, triples, settings)
    say(
        f"BG/NBD r={p['r']:.4f} alpha={p['alpha']:.4f} a={p['a']:.4f} b={p['b']:.4f} "
        f"(days), log-likelihood {bgnbd['log_likelihood']:,.2f}"
    )
    with _timed(seconds, "sample"):
        frame, sample = keyed_sample(
            rows.parts,
            lambda: read_part_rows(rows.parts),
            population=stats["customers"],
            max_rows=max_rows,
            seed=seed,
            columns=_SAMPLE_COLUMNS,
            noun="customers",
            **jobs,
        )
    with _timed(seconds, "gamma_gamma_fit"):
        gamma_gamma = _fit_gamma_gamma(frame)
    q = gamma_gamma["parameters"]
    say(f"Gamma-Gamma p={q['p']:.4f} q={q['q']:.4f} v={q['v']:.4f} on {sample['size']:,}")
    model = {
        "bgnbd": [p[k] for k in ("r", "alpha", "a", "b")],
        "gamma_gamma": [q[k] for k in ("p", "q", "v")],
        **settings,
    }
    with _timed(seconds, "tiers"):
        model["tiers"] = _tiers(frame, model)
    keep = subsample_positions(len(frame), seed=seed)
    fits = {"bgnbd": bgnbd, "gamma_gamma": gamma_gamma}
    return {**model, "fits": fits, "sample": sample, "report_frame": frame.iloc[keep]}


def _report_sample(model, seed):
    """:data:`SAMPLE_CSV`: the report's subsample of the fit's sample, scored."""
    shipped = {k: model[k] for k in _SHIPPED}
    scored = score_rows(list(_sample_rows(model["report_frame"])), shipped)
    return csv_string(REPORT_SAMPLE_COLUMNS, scored)


def _fit_gamma_gamma(frame):
    """Gamma-Gamma on the sample's repeat customers with a positive mean value."""
    x = frame["frequency"].to_numpy()
    m = frame["monetary_value"].to_numpy()
    keep = (x > 0) & (m > 0)
    pairs, counts = np.unique(np.stack([x[keep], m[keep]], axis=1), axis=0, return_counts=True)
    fit = fit_gamma_gamma(pairs[:, 0], pairs[:, 1], counts)
    fit["data"]["left_out"] = {
        "no_repeat_purchase": int(np.sum(x == 0)),
        "mean_value_not_positive": int(np.sum((x > 0) & (m <= 0))),
    }
    return fit


def _check_expectations(parameters, triples, settings):
    """Refuse a fit whose expectations are not finite for some customer's triple (a
    degenerate fit: e.g. every customer with the same frequency drives r and alpha to the
    Poisson limit, where 2F1 gives NaN), naming one such triple."""
    bgnbd = [parameters[k] for k in ("r", "alpha", "a", "b")]
    x, t_x, T = triples[:, 0], triples[:, 1], triples[:, 2]
    purchases, factor = clv_factor(
        bgnbd, settings["horizon_days"], settings["discount_rate"], x, t_x, T
    )
    bad = ~(np.isfinite(purchases) & np.isfinite(factor) & np.isfinite(p_alive(bgnbd, x, t_x, T)))
    if bad.any():
        first = triples[np.argmax(bad)].tolist()
        shown = ", ".join(f"{k}={v:.4g}" for k, v in parameters.items())
        raise ModelNotIdentifiedError(
            f"BG/NBD fitted to {shown} gives no finite expectation for {int(bad.sum()):,} of "
            f"{len(triples):,} (frequency, recency, T), e.g. {tuple(first)}: these data do not "
            "identify the model (too little variety in frequency and recency)"
        )


def _sample_rows(frame):
    for customer, x, t_x, T, m in zip(*(frame[c].to_numpy() for c in _SAMPLE_COLUMNS), strict=True):
        yield {
            "customer_id": customer,
            "period": "D",
            "frequency": int(x),
            "recency": int(t_x),
            "T": int(T),
            "monetary_value": float(m),
        }


def _tiers(frame, model):
    """The CLV at the :data:`TIER_QUANTILES` of the sample (``numpy.quantile``), computed
    by the scoring tasks' own function."""
    cache, clv, batch = {}, [], []
    for row in _sample_rows(frame):
        batch.append(row)
        if len(batch) == _SCORE_BATCH:
            clv += [out["clv"] for out in score_rows(batch, model, cache)]
            batch = []
    clv = np.array(clv + [out["clv"] for out in score_rows(batch, model, cache)])
    found = np.quantile(clv, list(TIER_QUANTILES.values()))
    return {tier: float(v) for tier, v in zip(TIER_QUANTILES, found, strict=True)}


# -- 4. scores ---------------------------------------------------------------------------


def _score(publication, parts, model, customers, jobs):
    args = ["--model", json.dumps({k: model[k] for k in _SHIPPED}, allow_nan=False)]
    with run_job_into(publication, MRCLVScores, parts, args, **jobs) as run:
        found = run.counters[0] if run.counters else {}
        tiers = {t: found.get(COUNTER_GROUP_TIERS, {}).get(t, 0) for t in ("high", "medium", "low")}
        sums = found.get(COUNTER_GROUP_CLV, {})
        written = run.output_rows
    if written != customers or sum(tiers.values()) != written:
        raise AccountingError(
            f"{customers} customers, {written} scores written, {sum(tiers.values())} tiered"
        )
    return {
        "rows": written,
        "tiers": tiers,
        "clv_total": sums.get("clv_micros", 0) / 1_000_000,
        "expected_purchases_total": sums.get("expected_purchases_micros", 0) / 1_000_000,
    }


_SHIPPED = ("bgnbd", "gamma_gamma", "horizon_days", "discount_rate", "tiers")


def _write_model(publication, model, rows, holdout_end):
    document = {
        "time_unit": "days",
        "as_of": rows.as_of,
        "holdout_end": holdout_end,
        "bgnbd": model["fits"]["bgnbd"],
        "gamma_gamma": {**model["fits"]["gamma_gamma"], "sample": model["sample"]},
        "horizon_days": model["horizon_days"],
        "discount_rate": model["discount_rate"],
        "discounting": "monthly: months of 30 days, the last one shorter",
        "tiers": {
            **model["tiers"],
            "rule": "high: clv >= the 0.8 quantile of the sample's CLV; medium: >= its "
            "median; low: the rest",
        },
    }
    text = json.dumps(json_plain(document), indent=2, sort_keys=True, allow_nan=False) + "\n"
    publication.write_file(MODEL_JSON, text)


def _details(rows, model, scored, holdout):
    fits = model["fits"]
    return {
        "as_of": rows.as_of,
        "customers": scored["rows"],
        "bgnbd": {k: fits["bgnbd"][k] for k in ("parameters", "log_likelihood", "converged")},
        "gamma_gamma": {
            k: fits["gamma_gamma"][k] for k in ("parameters", "log_likelihood", "converged")
        },
        "distinct_triples": fits["bgnbd"]["data"]["distinct_triples"],
        "sample": model["sample"],
        "tiers": scored["tiers"],
        "tier_thresholds": model["tiers"],
        "clv_total": scored["clv_total"],
        "expected_purchases_total": scored["expected_purchases_total"],
        "totals_rule": "sums of the per-customer values rounded to 1e-6 (counters are integers)",
        "holdout": None if holdout is None else holdout["summary"],
    }


# -- 5. holdout --------------------------------------------------------------------------

HOLDOUT_COLUMNS = (
    "frequency",
    "customers",
    "actual_purchases",
    "predicted_purchases",
    "actual_mean",
    "predicted_mean",
    "recency_rule_mean",
)
_TOP_BUCKET = 7


def holdout_table(stats, bgnbd, days):
    """Predicted vs actual repeat purchases in a holdout of ``days``, by calibration
    frequency (the table of Fader, Hardie and Lee 2005), from the statistics alone.

    The recency rule, for comparison: a customer whose last purchase is within the last
    ``days`` days of the calibration buys again at their calibration rate ``x / T`` per
    day; the others buy nothing.

    Parameters
    ----------
    stats : dict
        Arrays ``x``, ``t_x``, ``T``, ``holdout``, ``n`` (customers per key).
    bgnbd : sequence of float
        ``(r, alpha, a, b)``, alpha in days.
    days : int
        The holdout's length.

    Returns
    -------
    dict
        ``table`` (rows of :data:`HOLDOUT_COLUMNS`: frequencies ``0`` .. ``6``, ``7+``,
        then ``all``) and ``summary`` (totals, MAE per customer of the model and of the
        recency rule, ROC-AUC of buying again for the expected purchases and for recency
        alone).
    """
    x, t_x, T, h, n = (stats[k] for k in ("x", "t_x", "T", "holdout", "n"))
    predicted = expected_purchases(bgnbd, float(days), x, t_x, T)
    rate = np.divide(x, T, out=np.zeros(len(x)), where=T > 0)
    rule = np.where(T - t_x <= days, rate * days, 0.0)
    bucket = np.minimum(x, _TOP_BUCKET)
    table = [
        _holdout_row(str(b) if b < _TOP_BUCKET else f"{b}+", bucket == b, n, h, predicted, rule)
        for b in range(_TOP_BUCKET + 1)
    ]
    table.append(_holdout_row("all", np.ones(len(x), bool), n, h, predicted, rule))
    customers = float(n.sum())
    summary = {
        "holdout_days": int(days),
        "customers": int(customers),
        "actual_purchases": int(np.sum(n * h)),
        "predicted_purchases": float(np.sum(n * predicted)),
        "mae": float(np.sum(n * np.abs(predicted - h)) / customers),
        "recency_rule_mae": float(np.sum(n * np.abs(rule - h)) / customers),
        **_auc(h > 0, n, predicted, -(T - t_x)),
    }
    return {"table": table, "summary": summary}


def _holdout_row(label, mask, n, h, predicted, rule):
    customers = int(n[mask].sum())
    actual = int(np.sum(n[mask] * h[mask]))
    expected = float(np.sum(n[mask] * predicted[mask]))
    per = (lambda v: v / customers) if customers else (lambda v: None)
    return {
        "frequency": label,
        "customers": customers,
        "actual_purchases": actual,
        "predicted_purchases": round(expected, 6),
        "actual_mean": per(actual),
        "predicted_mean": per(expected),
        "recency_rule_mean": per(float(np.sum(n[mask] * rule[mask]))),
    }


def _auc(bought, n, score, recency_score):
    """ROC-AUC of buying again in the holdout, weighted by customers (None with one class)."""
    if bought.all() or not bought.any():
        return {"roc_auc": None, "recency_only_roc_auc": None}
    from sklearn.metrics import roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(bought, score, sample_weight=n)),
        "recency_only_roc_auc": float(roc_auc_score(bought, recency_score, sample_weight=n)),
    }
