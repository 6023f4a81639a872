"""The churn stage: train a churn model by a cutoff, score every customer, publish.

:mod:`models.churn` documents the method. No per-customer row passes through the driver,
except the bounded training sample:

1. **Current customers**: the RFM rows to score are ``current_path``'s (the RFM stage's
   published parts; the driver reads their first row only, for ``as_of`` and the columns),
   or an RFM run's as of ``as_of`` into a temporary directory.
2. **Training rows** in one pass over the lines (:mod:`mr_jobs.churn_features`): the RFM
   row as of the cutoff and the label of every customer with a purchase on or before it,
   written by the tasks; the class counts come from counters.
3. **Fit** in the driver on at most ``churn_max_train`` of them (default 500,000): all
   when there are no more, else the ``churn_max_train`` customers with the smallest keyed
   hash of the id (:func:`models.churn.training_sample`, the map-only
   :mod:`mr_jobs.churn_sample`); ``details.training_sample`` records the rule, the seed,
   the population and the size. Driver memory: the sample only.
4. **Scores**: the map-only :mod:`mr_jobs.churn_scores` ships ``model.skops`` to the tasks,
   which write the published ``part-*``; customers per tier and the value at risk come
   from counters.
5. **Early warning**: the value threshold is ``numpy.quantile(value, value_quantile)``
   over the scored customers, exactly, from the two order statistics it interpolates
   between (:mod:`mr_jobs.order_statistics`: one sorted stream, one value at a time);
   the list is the top-N reduce :mod:`mr_jobs.top_n`, streamed into the two files.
   ``scores.csv`` is streamed from the parts (:func:`models.outputs.csv_from_parts`).

The cutoff
----------
By default the cutoff is the scoring date (``as_of``, else the date the current rows were
computed at: the latest purchase date) minus ``horizon_days``: the latest cutoff whose
whole horizon the log covers. ``details.cutoff_rule`` records whether it was given or
derived. A given cutoff must be before ``as_of`` (when both are given): a model trained on
a horizon after the scoring date would have seen the future.

Published layout (``<output>/``)
--------------------------------
``part-*``
    One JSON object per current customer, written by the scoring tasks in the order of
    the RFM parts they read (each RFM part is sorted by the shuffle's key order, which is
    ``customer_id`` order for ids without JSON escapes); across parts no order is promised:
    ``customer_id``, ``churn_probability``, ``risk_tier`` (``high``, ``medium``, ``low``),
    ``value`` (spend to date), ``value_at_risk`` (probability x value),
    ``recency_days``, ``orders``, ``total_value`` and ``drivers`` (a list of
    ``{"feature", "value", "effect"}``: the features that make churn more likely than for
    a typical customer, effect in log-odds, largest first).
``scores.csv``
    The same columns with ``drivers_text`` instead of ``drivers``, in part order.
``early_warning.jsonl`` and ``early_warning.csv``
    High-value customers at high risk (value at or above the ``value_quantile`` quantile,
    risk tier ``high``), by value at risk then ``customer_id``: ``rank`` then the score
    columns and ``value_threshold``.
``probability_histogram.csv``
    Every scored customer's churn probability in 20 bins of 0.05: ``lower``, ``upper``,
    ``count`` (from the scoring job's counters, :func:`mr_jobs.churn_scores.probability_bin`).
``curves.csv``
    For the report's charts, on the held-out customers of the fit (at most 101 points
    a curve, :mod:`models.summaries`): ``curve`` (``roc_model``, ``roc_recency``: false
    and true positive rates; ``gain_model``, ``gain_recency``: share of customers taken
    by score, share of the churners found), ``x``, ``y``.
``metrics.json``
    The model's metadata (:meth:`models.churn.ChurnModel.metadata`): chosen candidate,
    cross-validation ROC-AUC per fold, held-out ``roc_auc``, ``pr_auc``, ``brier``,
    ``top_decile_lift``, ``recency_only_roc_auc``, ``base_rate``, calibration, tiers,
    the training medians, ``info``, and at the top level ``cutoff``, ``horizon_days`` and
    ``horizon_end``.
``model.skops``
    The calibrated model (:func:`models.churn.save_model`; no pickle). Load it with
    :func:`models.churn.load_model`, which refuses any type outside skops' defaults and
    :data:`models.churn.TRUSTED_TYPES`: that is the trust boundary. A hostile file can
    still hold trees that give wrong scores, so load models only from where you saved them.
``_manifest.json``, ``_SUCCESS``
    ``lines``: the training pass's accounting as the RFM run to the cutoff counted it
    (read = accepted + rejected; the lines after the cutoff are rejected as
    ``after_as_of``); ``details``: the cutoff and how it was chosen, the horizon, the
    labelled customers and their churn rate, the training sample, the label accounting
    (``label_lines``), the scored customers' RFM run's lines (``current_lines``, ``null``
    with ``current_path``), the chosen model and its held-out metrics, customers per risk
    tier, the total value at risk (to 1e-6 per customer: counters are integers), the value
    threshold and the early-warning count.
"""

import datetime
import json
import math
import os
import posixpath
import tempfile
from contextlib import contextmanager

from hdfs_io import Publication, check_can_publish, get_filesystem
from models.checks import check_int, check_iso_date
from models.churn import (
    MODEL_FEATURES,
    RFM_INPUT_COLUMNS,
    fit_churn_model,
    run_training_rows,
    save_model,
    training_sample,
)
from models.inputs import describe_inputs, expand_parts
from models.job_runner import AccountingError, run_job, run_job_into
from models.manifest import Stopwatch, build_manifest
from models.outputs import (
    csv_from_parts,
    csv_lines,
    csv_string,
    first_part_row,
    json_plain,
    staged_parts,
)
from models.progress import summarize_manifest
from models.rfm_stage import run_rfm_stage
from models.stages.churn import DEFAULT_HORIZON_DAYS
from models.summaries import curve_rows, gain_curve, roc_curve_points
from mr_jobs.churn_rules import (
    DEFAULT_MAX_TRAIN,
    drivers_text,
    quantile_from_order_statistics,
    quantile_ranks,
)
from mr_jobs.churn_scores import (
    COUNTER_GROUP_PROBABILITY,
    COUNTER_GROUP_TIERS,
    PROBABILITY_BINS,
    MRChurnScores,
)
from mr_jobs.order_statistics import MROrderStatistics
from mr_jobs.rfm import RFM_COLUMNS
from mr_jobs.top_n import MRTopAtRisk

__all__ = [
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_MAX_TRAIN",
    "MAX_HORIZON_DAYS",
    "check_options",
    "SCORES_CSV",
    "EARLY_WARNING_CSV",
    "EARLY_WARNING_JSONL",
    "METRICS_JSON",
    "MODEL_FILE",
    "TooFewCustomersError",
    "default_cutoff",
    "run_churn_stage",
]

#: The longest horizon accepted: ten years.
MAX_HORIZON_DAYS = 3650
SCORES_CSV = "scores.csv"
EARLY_WARNING_CSV = "early_warning.csv"
EARLY_WARNING_JSONL = "early_warning.jsonl"
METRICS_JSON = "metrics.json"
HISTOGRAM_CSV = "probability_histogram.csv"
CURVES_CSV = "curves.csv"
MODEL_FILE = "model.skops"
#: Fit on at most this many labelled customers by default.
#: The columns of a published score row (``drivers`` after them when listed).
SCORE_COLUMNS = (
    "customer_id",
    "churn_probability",
    "risk_tier",
    "value",
    "value_at_risk",
    "recency_days",
    "orders",
    "total_value",
)
_CV_FOLDS = 5
_TEST_SIZE = 0.25
#: The numeric columns of an RFM row: what ``value`` may name when the stage computes them.
_RFM_NUMERIC = tuple(
    c
    for c in RFM_COLUMNS
    if c not in ("customer_id", "first_purchase", "last_purchase", "as_of", "period")
)


class TooFewCustomersError(ValueError):
    """Not enough labelled customers of each class to fit and evaluate a model."""


def default_cutoff(latest, horizon_days):
    """The latest cutoff whose horizon the log covers: ``latest - horizon_days``.

    Parameters
    ----------
    latest : str
        The latest purchase date (or the as-of date), ``YYYY-MM-DD``.
    horizon_days : int

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When the cutoff would fall before 0001-01-01, naming ``latest`` and the horizon.
    """
    ordinal = check_iso_date("latest", latest).toordinal() - horizon_days
    if ordinal < 1:
        raise ValueError(
            f"cutoff = {latest} minus horizon_days={horizon_days} falls before year 1: "
            "give a shorter horizon or a cutoff"
        )
    return datetime.date.fromordinal(ordinal).isoformat()


def _check_horizon_end(cutoff, horizon_days):
    """Refuse a horizon that ends after 9999-12-31 (no date can name its end)."""
    if check_iso_date("cutoff", cutoff).toordinal() + horizon_days > datetime.date.max.toordinal():
        raise ValueError(
            f"cutoff={cutoff!r} plus horizon_days={horizon_days} ends after "
            f"{datetime.date.max.isoformat()}: give an earlier cutoff or a shorter horizon"
        )


def _check(horizon_days, cutoff, as_of, value, value_quantile, top_drivers, limit, seed):
    """Validate the scalar arguments; return ``(cutoff, as_of)`` as ISO dates or None."""
    check_int("horizon_days", horizon_days, 1, rule="a positive integer")
    if horizon_days > MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days={horizon_days!r} should be at most {MAX_HORIZON_DAYS}")
    cutoff = None if cutoff is None else check_iso_date("cutoff", cutoff).isoformat()
    as_of = None if as_of is None else check_iso_date("as_of", as_of).isoformat()
    if cutoff is not None:
        _check_horizon_end(cutoff, int(horizon_days))
    if cutoff is not None and as_of is not None and cutoff >= as_of:
        raise ValueError(f"cutoff={cutoff!r} should be before as_of={as_of!r}")
    if not isinstance(value, str) or not value:
        raise ValueError(f"value={value!r} should be the name of a numeric RFM column")
    if not isinstance(value_quantile, float) or not 0.0 <= value_quantile < 1.0:
        raise ValueError(f"value_quantile={value_quantile!r} should be a float in [0, 1)")
    check_int("top_drivers", top_drivers, 0)
    if top_drivers > len(MODEL_FEATURES):
        raise ValueError(f"top_drivers={top_drivers!r} should be <= {len(MODEL_FEATURES)}")
    if limit is not None:
        check_int("early_warning_limit", limit, 1, rule="a positive integer")
    check_int("seed", seed, 0, rule="a non-negative integer")
    return cutoff, as_of


def _enough(counts):
    """(ok, counts, need): whether both classes (``[bought again, churned]``) have enough
    customers for the fit."""
    need = math.ceil(_CV_FOLDS / (1.0 - _TEST_SIZE)) + math.ceil(1.0 / _TEST_SIZE)
    return bool(counts.min() >= need), counts, need


def _check_max_train(max_train):
    check_int("churn_max_train", max_train, 1, rule="a positive integer")


def check_options(
    *,
    horizon_days=DEFAULT_HORIZON_DAYS,
    cutoff=None,
    as_of=None,
    seed=0,
    value="total_value",
    value_quantile=0.8,
    top_drivers=3,
    early_warning_limit=None,
    churn_max_train=DEFAULT_MAX_TRAIN,
):
    """Validate the options of :func:`run_churn_stage` before any work.

    Returns
    -------
    (str or None, str or None)
        ``cutoff`` and ``as_of`` as ISO dates.

    Raises
    ------
    ValueError
        Naming the bad value.
    """
    _check_max_train(churn_max_train)
    return _check(
        horizon_days, cutoff, as_of, value, value_quantile, top_drivers, early_warning_limit, seed
    )


def run_churn_stage(
    input_paths,
    output_path,
    *,
    schema,
    horizon_days=DEFAULT_HORIZON_DAYS,
    cutoff=None,
    current_path=None,
    as_of=None,
    runner="inline",
    conf_paths=None,
    seed=0,
    value="total_value",
    value_quantile=0.8,
    top_drivers=3,
    early_warning_limit=None,
    churn_max_train=DEFAULT_MAX_TRAIN,
    overwrite=False,
    reporter=None,
):
    """Train a churn model, score every current customer and publish the results.

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    output_path : str
        Where to publish (refused if it exists and not ``overwrite``).
    schema : mr_jobs.records.InputSchema
        How to read the input.
    horizon_days : int
        Churned = no purchase within this many days after the cutoff; 1 to
        :data:`MAX_HORIZON_DAYS`.
    cutoff : str, optional
        ``YYYY-MM-DD``; default: the scoring date minus ``horizon_days``.
    current_path : str or list of str, optional
        The RFM rows of every current customer: the RFM stage's published directory (or
        its part files), local or ``hdfs://``. Only their first row is read by the
        driver (for its ``as_of`` and columns); the scoring job reads the rest. Default:
        the RFM job is run as of ``as_of`` into a temporary directory.
    as_of : str, optional
        The date the current customers are scored at; default the latest purchase date
        (with ``current_path``: the date its rows were computed at, which ``as_of``, when
        given, must equal).
    runner : str
        mrjob runner of every job.
    conf_paths : list of str or None
        mrjob config files.
    seed : int
        Seeds the training sample, the split, the folds and the tree ensemble.
    value : str
        The RFM column valued at risk (default ``total_value``: spend to date).
    value_quantile : float
        The early-warning list keeps values at or above this quantile.
    top_drivers : int
        Drivers listed per customer.
    early_warning_limit : int, optional
        Keep at most this many early-warning rows.
    churn_max_train : int
        Fit on at most this many labelled customers (a seeded sample by a hash of the id,
        :func:`models.churn.training_sample`); default 500,000.
    overwrite : bool
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (list of str, models.churn.ChurnModel, dict)
        The published score parts' names, the model and the manifest.

    Raises
    ------
    ValueError
        A bad argument, before any job runs (with ``current_path``, a ``value`` or RFM
        column its rows lack, or rows of another date than ``as_of``); a given cutoff not
        before the scoring date, before the training job.
    TooFewCustomersError
        When there is no current customer or either class (bought again, churned) has too
        few labelled customers for the fit; nothing is published.
    hdfs_io.PathExists, hdfs_io.UnsafePathError
        When ``output_path`` may not be published to, before any job runs.

    Notes
    -----
    The manifest's ``lines`` are the training pass's accounting as the RFM run to the
    cutoff counted it: ``read == accepted + rejected``, and every line dated after the
    cutoff is rejected as ``after_as_of`` (it reaches no feature; those inside the horizon
    set the labels). The label accounting is ``details.label_lines``, and the RFM run of
    the scored customers' rows ``details.current_lines`` (``None`` with ``current_path``).
    """
    cutoff, as_of = _check(
        horizon_days, cutoff, as_of, value, value_quantile, top_drivers, early_warning_limit, seed
    )
    _check_max_train(churn_max_train)
    horizon_days = int(horizon_days)
    if current_path is None and value not in _RFM_NUMERIC:
        raise ValueError(f"value={value!r} should be one of the numeric RFM columns {_RFM_NUMERIC}")
    say = reporter.progress("churn") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    check_can_publish(fs, out, overwrite)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    jobs = {"runner": runner, "conf_paths": conf_paths}
    rows_of = _current_rows(
        input_paths, current_path, value=value, schema=schema, as_of=as_of, jobs=jobs, say=say
    )
    with rows_of as (parts, latest, current_lines):
        source = "as_of" if as_of is not None else "latest purchase date"
        cutoff, rule = _choose_cutoff(cutoff, latest, source, horizon_days)
        say(f"cutoff {cutoff} ({rule}), horizon {horizon_days} days")
        with run_training_rows(
            input_paths,
            schema=schema,
            cutoff=cutoff,
            horizon_days=horizon_days,
            progress=say,
            **jobs,
        ) as training:
            model, sample = _fit(
                training,
                max_train=churn_max_train,
                seed=seed,
                horizon_days=horizon_days,
                jobs=jobs,
                say=say,
            )
        m = model.metrics
        say(
            f"chosen {model.chosen}: held-out ROC-AUC {m['roc_auc']:.3f} (recency only "
            f"{m['recency_only_roc_auc']:.3f}), Brier {m['brier']:.4f}"
        )
        with Publication(fs, out, overwrite=overwrite) as publication:
            scored = _publish_scores(
                publication,
                model,
                parts,
                as_of=latest,
                value=value,
                value_quantile=value_quantile,
                top_drivers=top_drivers,
                limit=early_warning_limit,
                jobs=jobs,
                say=say,
            )
            _write_metrics(publication, model, training, horizon_days)
            parameters = {
                "schema": schema.to_dict(),
                "horizon_days": horizon_days,
                "cutoff": cutoff if rule == "given" else None,
                "as_of": as_of,
                "seed": int(seed),
                "value": value,
                "value_quantile": value_quantile,
                "top_drivers": top_drivers,
                "early_warning_limit": early_warning_limit,
                "churn_max_train": churn_max_train,
                "overwrite": overwrite,
            }
            facts = {
                "cutoff_rule": rule,
                "scored_as_of": latest,
                "training_sample": sample,
                "current_lines": current_lines,
                "value": value,
            }
            manifest = _manifest(inputs, parameters, runner, watch, training, model, scored, facts)
            publication.commit(manifest)
    written = scored["written"]
    say(f"published {written:,} scores and {len(manifest['outputs'])} files to {fs.uri(out)}")
    summarize_manifest(reporter, "churn", manifest)
    return [posixpath.basename(p) for p in scored["parts"]], model, manifest


def _publish_scores(
    publication, model, parts, *, as_of, value, value_quantile, top_drivers, limit, jobs, say
):
    """Score every customer into ``publication``, then its early-warning list and CSV."""
    written, tiers, at_risk, bins = _score(
        publication, model, parts, value=value, top_drivers=top_drivers, as_of=as_of, jobs=jobs
    )
    scored_parts = _runner_paths(publication.fs, staged_parts(publication))
    threshold = _value_threshold(scored_parts, written, value_quantile, jobs)
    warned = _early_warning(publication, scored_parts, threshold, limit, top_drivers, jobs)
    say(f"scored {written:,} customers; {warned:,} on the early-warning list")
    _scores_csv(publication, top_drivers)
    _write_report_summaries(publication, model, bins)
    return {
        "written": written,
        "tiers": tiers,
        "at_risk": at_risk,
        "parts": scored_parts,
        "threshold": threshold,
        "warned": warned,
    }


def _write_metrics(publication, model, training, horizon_days):
    metadata = json_plain(
        {
            **model.metadata(),
            "cutoff": training.cutoff,
            "horizon_days": horizon_days,
            "horizon_end": training.horizon_end,
        }
    )
    text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n"
    publication.write_file(METRICS_JSON, text)


def _manifest(inputs, parameters, runner, watch, training, model, scored, facts):
    """The churn manifest: the training pass's line accounting, the scores and the model."""
    details = {
        "cutoff": training.cutoff,
        "cutoff_rule": facts["cutoff_rule"],
        "horizon_days": parameters["horizon_days"],
        "horizon_end": training.horizon_end,
        "scored_as_of": facts["scored_as_of"],
        "labelled_customers": training.labelled,
        "churn_rate": float(training.counts[1] / training.labelled),
        "training_sample": facts["training_sample"],
        "label_lines": training.lines["labels"],
        "current_lines": facts["current_lines"],
        "scored_customers": scored["written"],
        "chosen": model.chosen,
        "calibration": model.calibration,
        "metrics": model.metrics,
        "tiers": scored["tiers"],
        "value": facts["value"],
        "value_threshold": scored["threshold"],
        "value_at_risk_total": scored["at_risk"],
        "value_at_risk_total_rule": "the sum of value_at_risk rounded to 1e-6 "
        "per customer (counters are integers)",
        "early_warning": scored["warned"],
        "model_file": MODEL_FILE,
        "trust_boundary": "load with models.churn.load_model, which refuses "
        "types outside skops' defaults and models.churn.TRUSTED_TYPES",
    }
    return build_manifest(
        "churn",
        inputs=inputs,
        parameters=parameters,
        runner=runner,
        lines=training.lines["features"],
        rows_written=scored["written"],
        stopwatch=watch,
        outputs=[
            SCORES_CSV,
            EARLY_WARNING_CSV,
            EARLY_WARNING_JSONL,
            METRICS_JSON,
            MODEL_FILE,
            HISTOGRAM_CSV,
            CURVES_CSV,
        ],
        details=json_plain(details),
    )


def _given_rows(current_path, value, as_of):
    """The part files of ``current_path`` and their as-of date, checked on the first row."""
    parts = expand_parts(current_path if isinstance(current_path, list) else [current_path])
    first = first_part_row(parts)
    if first is None:
        raise TooFewCustomersError("no current customer: there is nothing to train on or score")
    if value not in first:
        raise ValueError(f"value={value!r} is not a column of the rows of current_path")
    missing = [c for c in ("customer_id", *RFM_INPUT_COLUMNS, "total_value") if c not in first]
    if missing:
        raise ValueError(f"the rows of current_path lack the RFM columns {missing}")
    rows_as_of = first.get("as_of")
    if as_of is not None and rows_as_of != as_of:
        raise ValueError(f"as_of={as_of!r} but the rows of current_path are as of {rows_as_of!r}")
    return parts, rows_as_of


@contextmanager
def _current_rows(input_paths, current_path, *, value, schema, as_of, jobs, say):
    """Yield ``(part files, as-of date, lines of the RFM run or None)`` of the customers to
    score: ``current_path``'s, or an RFM run's into a temporary directory."""
    if current_path is not None:
        parts, rows_as_of = _given_rows(current_path, value, as_of)
        yield parts, rows_as_of, None
        return
    say("computing the current customers' RFM rows")
    with tempfile.TemporaryDirectory(prefix="crm-churn-rfm-") as tmp:
        out = os.path.join(tmp, "current")
        manifest = run_rfm_stage(input_paths, out, schema=schema, as_of=as_of, **jobs)
        if manifest["rows_written"] == 0:
            raise TooFewCustomersError("no current customer: there is nothing to train on or score")
        yield expand_parts([out]), manifest["details"]["as_of"], manifest["lines"]


def _runner_paths(fs, paths):
    """Staged paths as a runner reads them: local paths, or URIs (``hdfs://...``)."""
    return [fs.normalize(p) if fs.scheme == "file" else fs.uri(p) for p in paths]


def _choose_cutoff(cutoff, latest, source, horizon_days):
    if cutoff is None:
        return default_cutoff(
            latest, horizon_days
        ), f"{source} {latest} minus horizon_days={horizon_days}"
    if cutoff >= latest:
        raise ValueError(f"cutoff={cutoff!r} should be before the {source} {latest}")
    return cutoff, "given"


def _fit(training, *, max_train, seed, horizon_days, jobs, say):
    ok, counts, need = _enough(training.counts)
    if not ok:
        raise TooFewCustomersError(
            f"cutoff={training.cutoff} horizon_days={horizon_days}: {int(counts[0])} customers "
            f"bought again and {int(counts[1])} churned; each class needs >= {need}"
        )
    frame, sample = training_sample(
        training,
        max_train=max_train,
        seed=seed,
        runner=jobs["runner"],
        conf_paths=jobs["conf_paths"],
    )
    say(
        f"{training.labelled:,} labelled customers, churn rate "
        f"{counts[1] / training.labelled:.3f}; fitting on {len(frame):,}"
    )
    model = fit_churn_model(
        frame,
        seed=int(seed),
        cv_folds=_CV_FOLDS,
        test_size=_TEST_SIZE,
        info={
            "cutoff": training.cutoff,
            "horizon_days": horizon_days,
            "horizon_end": training.horizon_end,
            "labelled_customers": training.labelled,
        },
    )
    return model, sample


def _score(publication, model, parts, *, value, top_drivers, as_of, jobs):
    """Run the scoring job into ``publication``; return ``(rows, tiers, value at risk)``."""
    with tempfile.TemporaryDirectory(prefix="crm-churn-model-") as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        save_model(model, local)
        args = ["--model", local, "--value", value, "--top-drivers", str(top_drivers)]
        args += ["--as-of", as_of]
        with run_job_into(publication, MRChurnScores, parts, args, **jobs) as run:
            found = run.counters[0] if run.counters else {}
            tiers = {
                t: found.get(COUNTER_GROUP_TIERS, {}).get(t, 0) for t in ("high", "medium", "low")
            }
            micros = found.get("crm.churn", {}).get("value_at_risk_micros", 0)
            bins = found.get(COUNTER_GROUP_PROBABILITY, {})
            written = run.output_rows
        with open(local, "rb") as f:
            publication.write_file(MODEL_FILE, f.read())
    if sum(tiers.values()) != written:
        raise AccountingError(f"{written} scores written but {sum(tiers.values())} tiered")
    return written, tiers, micros / 1_000_000, bins


def _write_report_summaries(publication, model, bins):
    """``probability_histogram.csv`` from the scoring counters ``bins`` and
    ``curves.csv`` from the model's held-out customers (both bounded)."""
    rows = [
        {"lower": i / PROBABILITY_BINS, "upper": (i + 1) / PROBABILITY_BINS, "count": 0}
        for i in range(PROBABILITY_BINS)
    ]
    for name, count in bins.items():
        rows[int(name)]["count"] = int(count)
    publication.write_file(HISTOGRAM_CSV, csv_string(("lower", "upper", "count"), rows))
    curves = []
    holdout = model.holdout
    if holdout is not None and len(holdout):
        y = holdout["churned"].to_numpy()
        for name, scores in (
            ("model", holdout["churn_probability"].to_numpy()),
            ("recency", holdout["recency_days"].to_numpy()),
        ):
            curves += curve_rows(f"roc_{name}", *roc_curve_points(y, scores))
            curves += curve_rows(f"gain_{name}", *gain_curve(y, scores))
    publication.write_file(CURVES_CSV, csv_string(("curve", "x", "y"), curves))


def _value_threshold(parts, n, value_quantile, jobs):
    """The exact ``numpy.quantile(value, value_quantile)`` of the scored rows."""
    low, high, gamma = quantile_ranks(n, value_quantile)
    args = ["--column", "value", "--n", str(n), "--ranks", f"{low},{high}"]
    with run_job(MROrderStatistics, parts, args, **jobs) as run:
        found = dict((int(r), v) for r, v in run.rows())
    if set(found) != {low, high}:
        raise AccountingError(f"order statistics {sorted(found)} found, {low} and {high} asked for")
    return quantile_from_order_statistics(found[low], found[high], gamma)


def _warning_csv_row(row):
    out = {k: v for k, v in row.items() if k != "drivers"}
    if "drivers" in row:
        out["drivers_text"] = drivers_text(row["drivers"])
        out["value_threshold"] = out.pop("value_threshold")
    return out


def _early_warning(publication, parts, threshold, limit, top_drivers, jobs):
    """Write the early-warning files from the top-N job's output, streamed; return the count."""
    args = ["--threshold", repr(threshold)] + ([] if limit is None else ["--limit", str(limit)])
    fs, staging = publication.fs, publication.staging_path
    columns = [
        "rank",
        *SCORE_COLUMNS,
        *(["drivers_text"] if top_drivers else []),
        "value_threshold",
    ]
    with run_job(MRTopAtRisk, parts, args, **jobs) as run:
        fs.write_lines(
            posixpath.join(staging, EARLY_WARNING_JSONL),
            (json.dumps(json_plain(r), allow_nan=False, ensure_ascii=False) for r in run.rows()),
        )
        fs.write_lines(
            posixpath.join(staging, EARLY_WARNING_CSV),
            csv_lines(columns, (_warning_csv_row(r) for r in run.rows())),
        )
        return run.output_rows


def _scores_csv(publication, top_drivers):
    columns = [*SCORE_COLUMNS, *(["drivers_text"] if top_drivers else [])]

    def convert(row):
        if "drivers" in row:
            row["drivers_text"] = drivers_text(row["drivers"])
        return row

    return csv_from_parts(publication, SCORES_CSV, columns, convert=convert)
