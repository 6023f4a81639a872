"""The churn stage: train a churn model by a cutoff, score every customer, publish.

:mod:`models.churn` documents the method: features from the RFM MapReduce job run on the
lines up to a cutoff date (the later lines are rejected as ``after_as_of``, counted in the
manifest's lines, so nothing after the cutoff reaches a feature), the label "no purchase
within ``horizon_days`` after the cutoff" from a second RFM run, two candidate models
chosen by cross-validated ROC-AUC and calibrated, a held-out report, and scores with
drivers.

The cutoff
----------
By default the cutoff is the latest purchase date of the current customers (or ``as_of``
when given) minus ``horizon_days``: the latest cutoff whose whole horizon the log covers,
so the model learns from the most recent behaviour. ``details.cutoff_rule`` records
whether it was given or derived. A given cutoff must be before ``as_of`` (when both are
given): a model trained on a horizon after the scoring date would have seen the future.

The current customers are scored as of the same date as the RFM stage (the pipeline passes
its rows as ``current_rows``, so the RFM job does not run a third time).

Published layout (``<output>/``)
--------------------------------
``part-*``
    One JSON object per current customer, sorted by ``customer_id``:
    ``customer_id``, ``churn_probability``, ``risk_tier`` (``high``, ``medium``, ``low``),
    ``value`` (spend to date), ``value_at_risk`` (probability x value),
    ``recency_days``, ``orders``, ``total_value`` and ``drivers`` (a list of
    ``{"feature", "value", "effect"}``: the features that make churn more likely than for
    a typical customer, effect in log-odds, largest first).
``scores.csv``
    The same columns with ``drivers_text`` instead of ``drivers``.
``early_warning.jsonl`` and ``early_warning.csv``
    High-value customers at high risk (value in the top ``1 - value_quantile``, risk tier
    ``high``), by value at risk: ``rank`` then the score columns and ``value_threshold``.
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
    ``lines``: the feature run's accounting (read = accepted + rejected; the lines after
    the cutoff are rejected as ``after_as_of``); ``details``: the cutoff and how it was
    chosen, the horizon, the labelled customers and their churn rate, the label run's
    lines (``label_lines``), the scored customers' RFM run's lines (``current_lines``,
    ``null`` when the rows were given), the chosen model and its held-out metrics,
    customers per risk tier, the total value at risk and the early-warning count.
"""

import datetime
import json
import math
import os
import tempfile

import numpy as np
import pandas as pd

from hdfs_io import Publication, check_can_publish, get_filesystem
from models.churn import (
    MODEL_FEATURES,
    RFM_INPUT_COLUMNS,
    build_churn_dataset,
    current_features,
    early_warning,
    fit_churn_model,
    save_model,
    score_customers,
)
from models.inputs import describe_inputs
from models.manifest import Stopwatch, build_manifest
from models.rfm_stage import write_json_parts
from mr_jobs.rfm import RFM_COLUMNS

__all__ = [
    "DEFAULT_HORIZON_DAYS",
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

DEFAULT_HORIZON_DAYS = 90
#: The longest horizon accepted: ten years.
MAX_HORIZON_DAYS = 3650
SCORES_CSV = "scores.csv"
EARLY_WARNING_CSV = "early_warning.csv"
EARLY_WARNING_JSONL = "early_warning.jsonl"
METRICS_JSON = "metrics.json"
MODEL_FILE = "model.skops"
_CV_FOLDS = 5
_TEST_SIZE = 0.25
#: The numeric columns of an RFM row: what ``value`` may name when the stage computes the rows.
_RFM_NUMERIC = tuple(
    c
    for c in RFM_COLUMNS
    if c not in ("customer_id", "first_purchase", "last_purchase", "as_of", "period")
)


class TooFewCustomersError(ValueError):
    """Not enough labelled customers of each class to fit and evaluate a model."""


def _date(name, value):
    try:
        if not isinstance(value, str) or len(value.strip()) != 10:
            raise ValueError
        return datetime.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name}={value!r} should be an ISO date (YYYY-MM-DD)") from None


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
    ordinal = _date("latest", latest).toordinal() - horizon_days
    if ordinal < 1:
        raise ValueError(
            f"cutoff = {latest} minus horizon_days={horizon_days} falls before year 1: "
            "give a shorter horizon or a cutoff"
        )
    return datetime.date.fromordinal(ordinal).isoformat()


def _check_horizon_end(cutoff, horizon_days):
    """Refuse a horizon that ends after 9999-12-31 (no date can name its end)."""
    if _date("cutoff", cutoff).toordinal() + horizon_days > datetime.date.max.toordinal():
        raise ValueError(
            f"cutoff={cutoff!r} plus horizon_days={horizon_days} ends after "
            f"{datetime.date.max.isoformat()}: give an earlier cutoff or a shorter horizon"
        )


def _check(horizon_days, cutoff, as_of, value, value_quantile, top_drivers, limit, seed):
    """Validate the scalar arguments; return ``(cutoff, as_of)`` as ISO dates or None."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)):
        raise ValueError(f"horizon_days={horizon_days!r} should be a positive integer")
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days!r} should be a positive integer")
    if horizon_days > MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days={horizon_days!r} should be at most {MAX_HORIZON_DAYS}")
    cutoff = None if cutoff is None else _date("cutoff", cutoff).isoformat()
    as_of = None if as_of is None else _date("as_of", as_of).isoformat()
    if cutoff is not None:
        _check_horizon_end(cutoff, int(horizon_days))
    if cutoff is not None and as_of is not None and cutoff >= as_of:
        raise ValueError(f"cutoff={cutoff!r} should be before as_of={as_of!r}")
    if not isinstance(value, str) or not value:
        raise ValueError(f"value={value!r} should be the name of a numeric RFM column")
    if not isinstance(value_quantile, float) or not 0.0 <= value_quantile < 1.0:
        raise ValueError(f"value_quantile={value_quantile!r} should be a float in [0, 1)")
    if isinstance(top_drivers, bool) or not isinstance(top_drivers, int) or top_drivers < 0:
        raise ValueError(f"top_drivers={top_drivers!r} should be an integer >= 0")
    if top_drivers > len(MODEL_FEATURES):
        raise ValueError(f"top_drivers={top_drivers!r} should be <= {len(MODEL_FEATURES)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"early_warning_limit={limit!r} should be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} should be a non-negative integer")
    return cutoff, as_of


def _given_rows(current_rows, value, need_dates):
    """The given current rows as a frame, checked before any job runs."""
    if isinstance(current_rows, pd.DataFrame):
        frame = current_rows.copy()
    else:
        frame = pd.DataFrame.from_records(list(current_rows))
    if frame.empty:
        return frame
    if value not in frame.columns:
        raise ValueError(f"value={value!r} is not a column of current_rows")
    needed = ["customer_id", *RFM_INPUT_COLUMNS, "total_value"]
    if need_dates:
        needed.append("last_purchase")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"current_rows lack the RFM columns {missing}")
    repeated = frame["customer_id"][frame["customer_id"].duplicated()]
    if len(repeated):
        raise ValueError(
            f"current_rows hold customer_id={repeated.iloc[0]!r} more than once "
            f"({len(repeated)} repeated rows)"
        )
    return frame


def _plain(value):
    """A JSON-able copy: numpy scalars to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonl(rows):
    return "".join(json.dumps(r, allow_nan=False, ensure_ascii=False) + "\n" for r in rows)


def _enough(frame):
    """(ok, counts, need): whether both classes have enough customers for the fit."""
    y = frame["churned"].to_numpy() if "churned" in frame.columns else np.empty(0)
    counts = np.bincount(y.astype(np.int64), minlength=2) if len(y) else np.zeros(2, np.int64)
    need = math.ceil(_CV_FOLDS / (1.0 - _TEST_SIZE)) + math.ceil(1.0 / _TEST_SIZE)
    return bool(counts.min() >= need), counts, need


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
    current_rows=None,
    as_of=None,
    runner="inline",
    conf_paths=None,
    seed=0,
    value="total_value",
    value_quantile=0.8,
    top_drivers=3,
    early_warning_limit=None,
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
        ``YYYY-MM-DD``; default: the latest purchase date (or ``as_of``) minus
        ``horizon_days``.
    current_rows : list of dict or pandas.DataFrame, optional
        RFM rows of every current customer (the RFM stage's, as of ``as_of``), one per
        customer; computed by :func:`models.churn.current_features` when not given.
    as_of : str, optional
        The date the current customers are scored at; default the latest purchase date.
        When given with ``current_rows``, it should be the date those rows were computed at.
    runner : str
        mrjob runner of the RFM runs.
    conf_paths : list of str or None
        mrjob config files.
    seed : int
        Seeds the split, the folds and the tree ensemble.
    value : str
        The RFM column valued at risk (default ``total_value``: spend to date); a numeric
        RFM column, or a column of ``current_rows`` when they are given.
    value_quantile : float
        The early-warning list keeps values at or above this quantile.
    top_drivers : int
        Drivers listed per customer.
    early_warning_limit : int, optional
        Keep at most this many early-warning rows.
    overwrite : bool
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (pandas.DataFrame, models.churn.ChurnModel, dict)
        The scores (sorted by ``customer_id``), the model and the manifest.

    Raises
    ------
    ValueError
        A bad argument (including ``current_rows`` without the RFM columns or with a
        customer twice, or a given cutoff not before ``as_of``), before any job runs; a
        given cutoff not before the latest purchase date, before the two RFM runs.
    TooFewCustomersError
        When there is no current customer or either class (bought again, churned) has too
        few labelled customers for the fit (the formula of
        :func:`models.churn.fit_churn_model`); nothing is published.
    hdfs_io.PathExists, hdfs_io.UnsafePathError
        When ``output_path`` may not be published to, before any job runs.

    Notes
    -----
    The manifest's ``lines`` are the feature run's accounting: ``read == accepted +
    rejected``, and every line dated after the cutoff is rejected as ``after_as_of``. That
    is expected (it is how no information from after the cutoff reaches a feature), not a
    sign of bad input; the other reasons are the input's real rejects. The label run's
    accounting is in ``details.label_lines``, and the run that computed the scored
    customers' rows in ``details.current_lines`` (``None`` when ``current_rows`` are given).
    """
    cutoff, as_of = _check(
        horizon_days, cutoff, as_of, value, value_quantile, top_drivers, early_warning_limit, seed
    )
    horizon_days = int(horizon_days)
    if current_rows is None and value not in _RFM_NUMERIC:
        raise ValueError(f"value={value!r} should be one of the numeric RFM columns {_RFM_NUMERIC}")
    given = None
    if current_rows is not None:
        given = _given_rows(current_rows, value, need_dates=as_of is None)
    say = reporter.progress("churn") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    check_can_publish(fs, out, overwrite)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    current_lines = None
    if given is None:
        say("computing the current customers' RFM rows")
        frame, current_manifest = current_features(
            input_paths,
            schema=schema,
            as_of=as_of,
            runner=runner,
            conf_paths=conf_paths,
            reporter=reporter,
        )
        current_lines = current_manifest["lines"]
    else:
        frame = given
    if frame.empty:
        raise TooFewCustomersError("no current customer: there is nothing to train on or score")
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    if as_of is not None:
        latest, source = as_of, "as_of"
    else:
        latest = max(str(d)[:10] for d in frame["last_purchase"])
        source = "latest purchase date"
    if cutoff is None:
        cutoff = default_cutoff(latest, horizon_days)
        rule = f"{source} {latest} minus horizon_days={horizon_days}"
    elif cutoff >= latest:
        raise ValueError(f"cutoff={cutoff!r} should be before the {source} {latest}")
    else:
        rule = "given"
    say(f"cutoff {cutoff} ({rule}), horizon {horizon_days} days")
    data = build_churn_dataset(
        input_paths,
        schema=schema,
        cutoff=cutoff,
        horizon_days=horizon_days,
        runner=runner,
        conf_paths=conf_paths,
        reporter=reporter,
    )
    ok, counts, need = _enough(data.frame)
    if not ok:
        raise TooFewCustomersError(
            f"cutoff={data.cutoff} horizon_days={horizon_days}: {int(counts[0])} customers "
            f"bought again and {int(counts[1])} churned; each class needs >= {need}"
        )
    say(
        f"{len(data.frame):,} labelled customers, churn rate {data.frame['churned'].mean():.3f}; "
        "selecting and calibrating a model"
    )
    model = fit_churn_model(
        data.frame,
        seed=int(seed),
        cv_folds=_CV_FOLDS,
        test_size=_TEST_SIZE,
        info={
            "cutoff": data.cutoff,
            "horizon_days": horizon_days,
            "horizon_end": data.horizon_end,
            "labelled_customers": int(len(data.frame)),
        },
    )
    m = model.metrics
    say(
        f"chosen {model.chosen}: held-out ROC-AUC {m['roc_auc']:.3f} (recency only "
        f"{m['recency_only_roc_auc']:.3f}), Brier {m['brier']:.4f}"
    )
    scored = score_customers(model, frame, value=value, top_drivers=top_drivers)
    warning = early_warning(scored, value_quantile=value_quantile, limit=early_warning_limit)
    say(f"scored {len(scored):,} customers; {len(warning):,} on the early-warning list")
    with Publication(fs, out, overwrite=overwrite) as publication:
        has_drivers = "drivers" in scored.columns
        rows = [
            _plain({k: v for k, v in r.items() if k != "drivers_text"})
            for r in scored.to_dict("records")
        ]
        written = write_json_parts(publication, rows)
        table = scored.drop(columns=["drivers"]) if has_drivers else scored
        publication.write_file(SCORES_CSV, table.to_csv(index=False, lineterminator="\n"))
        warning_rows = [
            _plain({k: v for k, v in r.items() if k != "drivers_text"})
            for r in warning.to_dict("records")
        ]
        publication.write_file(EARLY_WARNING_JSONL, _jsonl(warning_rows))
        warning_table = warning.drop(columns=["drivers"]) if has_drivers else warning
        publication.write_file(
            EARLY_WARNING_CSV, warning_table.to_csv(index=False, lineterminator="\n")
        )
        metadata = _plain(
            {
                **model.metadata(),
                "cutoff": data.cutoff,
                "horizon_days": horizon_days,
                "horizon_end": data.horizon_end,
            }
        )
        publication.write_file(
            METRICS_JSON, json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
        with tempfile.TemporaryDirectory(prefix="crm-churn-") as tmp:
            local = os.path.join(tmp, MODEL_FILE)
            save_model(model, local)
            with open(local, "rb") as f:
                publication.write_file(MODEL_FILE, f.read())
        tiers = scored["risk_tier"].value_counts()
        manifest = build_manifest(
            "churn",
            inputs=inputs,
            parameters={
                "schema": schema.to_dict(),
                "horizon_days": horizon_days,
                "cutoff": cutoff if rule == "given" else None,
                "as_of": as_of,
                "seed": int(seed),
                "value": value,
                "value_quantile": value_quantile,
                "top_drivers": top_drivers,
                "early_warning_limit": early_warning_limit,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=data.lines["features"],
            rows_written=written,
            stopwatch=watch,
            outputs=[SCORES_CSV, EARLY_WARNING_CSV, EARLY_WARNING_JSONL, METRICS_JSON, MODEL_FILE],
            details=_plain(
                {
                    "cutoff": data.cutoff,
                    "cutoff_rule": rule,
                    "horizon_days": horizon_days,
                    "horizon_end": data.horizon_end,
                    "scored_as_of": latest,
                    "labelled_customers": int(len(data.frame)),
                    "churn_rate": float(data.frame["churned"].mean()),
                    "label_lines": data.lines["labels"],
                    "current_lines": current_lines,
                    "scored_customers": int(len(scored)),
                    "chosen": model.chosen,
                    "calibration": model.calibration,
                    "metrics": m,
                    "tiers": {t: int(tiers.get(t, 0)) for t in ("high", "medium", "low")},
                    "value": value,
                    "value_at_risk_total": float(scored["value_at_risk"].sum()),
                    "early_warning": int(len(warning)),
                    "model_file": MODEL_FILE,
                    "trust_boundary": "load with models.churn.load_model, which refuses "
                    "types outside skops' defaults and models.churn.TRUSTED_TYPES",
                }
            ),
        )
        publication.commit(manifest)
    say(f"published {written:,} scores and {len(manifest['outputs'])} files to {fs.uri(out)}")
    if reporter:
        lines = data.lines["features"]
        reporter.summary(
            "churn",
            rows_in=lines["read"],
            rows_out=written,
            rejected=lines["rejected"],
            seconds=manifest["timings"]["seconds"],
            by_reason=lines["rejected_by_reason"],
        )
    return scored, model, manifest
