"""Churn: who will not buy again, learned from the log by a cutoff date and a horizon.

Definition
----------
A *cutoff* date ``c`` and a *horizon* of ``h`` days split the log in time:

* **Features and labels** come from one MapReduce pass over the lines
  (:class:`mr_jobs.churn_features.MRChurnFeatures`, run by :func:`run_training_rows`):
  each customer's features are the RFM row :class:`mr_jobs.rfm.MRCustomerRFM` computes
  with ``as_of = c`` (period ``D``), from the lines dated on or before ``c`` only. Every
  later line is counted as rejected ``after_as_of`` in the features' accounting, as the
  RFM run to ``c`` rejects it, so no information from after the cutoff can reach a
  feature: the feature rows are the same, byte for byte, whatever the log holds after
  ``c`` (``tests/test_churn.py`` proves it). Lines dated on ``c`` itself belong to the
  features.
* **Labels**: a customer with a purchase in ``(c, c + h]`` bought again: ``churned = 0``;
  otherwise ``churned = 1`` ("no purchase within the horizon"). The same pass gives
  ``orders_in_horizon`` and ``value_in_horizon`` (what an RFM run to ``c + h`` adds to the
  one to ``c``), and the label accounting (the lines after ``c + h`` rejected).
* Only customers with a purchase on or before ``c`` are in the data set; customers whose
  first purchase falls in the horizon are not (they have no features). When the log ends
  before ``c + h`` (and no line is dated after it), a warning says that customers are
  labelled churned for lack of data.
* **Training sample**: :func:`training_sample` reads every training row when there are at
  most ``max_train``, else the ``max_train`` customers with the smallest keyed hash of
  the id (:func:`mr_jobs.churn_sample.sample_key`): a uniform sample, the same for a seed.

On CDNOW the classic split is ``c = 1997-09-30`` (calibration 1997-01-01..1997-09-30) and
``h = 273`` days (the next 39 weeks, to 1998-06-30).

Model features
--------------
From each RFM row (:data:`MODEL_FEATURES`): ``recency_days``, ``tenure_days``,
``recency_ratio`` (``recency_days / (tenure_days + 1)``: the silence compared to the
customer's history), ``log_purchase_days`` (log of the distinct purchase days),
``log_orders_per_day`` (log of orders per purchase day), ``purchase_rate`` (purchase days
per 30 days of tenure, ``30 * purchase_days / (tenure_days + 1)``),
``log_mean_order_value`` and ``log_monetary_value`` (``log1p`` of the mean order value and
of lifetimes' mean repeat-purchase value, 0 for one-off buyers). Counts and money are
logged because they are heavy-tailed, which also keeps a linear model from extrapolating
wildly on a customer with many more orders than any in training; exactly collinear
columns (``frequency = purchase_days - 1``, ``log total = log orders + log mean``) are
left out so that the coefficients and the drivers mean something. All are computed from the
feature run's row only.

Models and selection
--------------------
Two candidates, both seeded: ``logistic_regression`` (``StandardScaler`` then
``LogisticRegression``) and ``hist_gradient_boosting`` (a
``HistGradientBoostingClassifier``, fixed number of trees, no early stopping so the fit does
not depend on an internal split). The labelled customers are split once, stratified, into a
training part and a held-out part (``test_size``, default 25 %). On the training part each
candidate gets a stratified ``cv_folds``-fold cross-validated ROC-AUC; the higher mean wins
(ties go to the logistic regression, the simpler model).

Calibration
-----------
The winner is wrapped in ``CalibratedClassifierCV(ensemble=False)`` and fitted on the
training part: the model is fitted once on the whole training part and the calibrator
(isotonic regression, or Platt's sigmoid) is fitted on cross-validated predictions. One
base model keeps scoring and the per-customer drivers cheap. ``calibration="auto"`` uses
isotonic regression when the training part has at least 1,000 customers and the sigmoid
below that (isotonic regression overfits small sets).

Held-out report
---------------
On the held-out part, never seen by the selection, the fit or the calibration:
ROC-AUC, PR-AUC (average precision, churn as the positive class), Brier score (calibrated,
and of the same model uncalibrated), lift in the top decile (churn rate among the 10 %
highest scores, ``ceil(n / 10)`` customers, ties in held-out order, divided by the held-out
churn rate), the base rate, and the ROC-AUC of the recency-only rule (score =
``recency_days``) on the same customers. The reported metrics describe the model that is
returned and saved (it is not refitted on all labelled customers afterwards).

Scoring current customers
-------------------------
The churn stage scores the RFM rows of every current customer with the map-only
:mod:`mr_jobs.churn_scores`, which ships the saved model to the tasks; :func:`score_customers`
does the same on a frame in the driver (the same pure functions,
:mod:`mr_jobs.churn_rules`). Each customer gets ``churn_probability`` (the probability of no
purchase in the next ``h`` days), a ``risk_tier`` (``high`` >= 0.7, ``medium`` >= 0.4,
else ``low``; configurable), ``value`` and ``value_at_risk = churn_probability x value``.
``value`` is, by default, the customer's ``total_value``: their gross spend over the
feature window (all purchases up to the as-of date), the RFM "M"; another RFM column can be
chosen (e.g. ``monetary_value``, lifetimes' mean repeat-purchase value).
The model learnt what happened in the ``h`` days after ``c``; applying it at a later date
assumes behaviour is stable, and the current customers have longer histories than the
training ones (the ratios ``recency_ratio`` and ``purchase_rate`` carry over better than
raw counts). For production, train with the latest cutoff the log allows (its last day
minus ``h``). Isotonic calibration is a step function: at the extremes it can give exactly
0 or 1.
:func:`early_warning` keeps the high-value customers (``value`` at or above the 80th
percentile of the scored customers) whose probability is at least the high-risk threshold,
sorted by value at risk.

Drivers
-------
Each score comes with the features that drive it: a "what-if" attribution on the base
model's log-odds (before calibration, which is monotone and so does not change the order).
The effect of feature ``j`` is ``f(x) - f(x with x_j set to the training median)``, in
log-odds; positive means the feature's value makes churn more likely than it is for a
typical customer. The ``drivers`` column lists up to ``top_drivers`` features with a
positive effect (above 1e-9), largest first. For the logistic regression this is exactly
``coefficient x (x_j - median_j) / scale_j``; for the tree ensemble it is the same question
asked of the trees. Each feature is changed alone (correlated features such as
``recency_days`` and ``recency_ratio`` each get their own effect).

Persistence
-----------
:func:`save_model` writes a `skops <https://skops.readthedocs.io>`_ file (no pickle): the
calibrated estimator and a JSON string of everything else. :func:`load_model` lists the
types the file would instantiate and refuses, with :class:`UntrustedModelError`, any type
outside skops' defaults and :data:`TRUSTED_TYPES` (four scikit-learn internals). That is the
trust boundary: a file is trusted to hold only these types, never code. Trees and
coefficients from a hostile file can still produce wrong scores, so load models from where
you saved them.
"""

import datetime
import json
import math
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hdfs_io import LocalFileSystem, read_parts
from models.checks import check_int, check_iso_date
from models.inputs import local_inputs
from models.job_runner import AccountingError, run_job
from models.rfm_stage import run_rfm_stage
from mr_jobs.churn_features import COUNTER_GROUP_CHURN, MRChurnFeatures, label_lines, latest_day
from mr_jobs.churn_rules import (
    DEFAULT_TIERS,
    MODEL_FEATURES,
    MODEL_FORMAT,
    RFM_INPUT_COLUMNS,
    TRUSTED_TYPES,
    UntrustedModelError,
    driver_effects,
    drivers_text,
    feature_array,
    list_drivers,
    load_model_payload,
)
from mr_jobs.churn_sample import KEY_SPACE, MRChurnSample
from mr_jobs.job_options import schema_to_args

__all__ = [
    "CANDIDATES",
    "ChurnDataset",
    "ChurnModel",
    "MODEL_FEATURES",
    "TRUSTED_TYPES",
    "UntrustedModelError",
    "LABEL_COLUMNS",
    "TrainingRun",
    "build_churn_dataset",
    "current_features",
    "early_warning",
    "feature_matrix",
    "fit_churn_model",
    "load_model",
    "run_training_rows",
    "save_model",
    "score_customers",
    "top_decile_lift",
    "training_sample",
]

#: Candidate model names, in tie-break order.
CANDIDATES = ("logistic_regression", "hist_gradient_boosting")

_FORMAT = MODEL_FORMAT
_ISOTONIC_MIN_SAMPLES = 1000


# -- data ----------------------------------------------------------------------------------------

#: The columns a training row adds to the RFM row as of the cutoff.
LABEL_COLUMNS = ("churned", "orders_in_horizon", "value_in_horizon")
#: The columns of a training row about the horizon: the labels, and the holdout purchase days
#: of the CLV stage.
_HORIZON_COLUMNS = (*LABEL_COLUMNS, "purchase_days_in_horizon")


@dataclass
class ChurnDataset:
    """Labelled customers at a cutoff, with the line accounting of the one pass.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per customer with a purchase on or before the cutoff, sorted by
        ``customer_id``: the RFM columns as of the cutoff, then ``churned`` (1 = no
        purchase in the horizon), ``orders_in_horizon`` and ``value_in_horizon``.
    feature_rows : list of dict
        The RFM rows as of the cutoff (the training rows without the label columns).
    cutoff : str
    horizon_days : int
    horizon_end : str
        ``cutoff + horizon_days``, ISO.
    lines : dict
        ``{"features": ..., "labels": ...}``: the line accounting (read, accepted,
        rejected, rejected_by_reason) of the features (the lines after the cutoff rejected
        as ``after_as_of``) and of the labels (the lines after the horizon's end).
    """

    frame: pd.DataFrame
    feature_rows: list
    cutoff: str
    horizon_days: int
    horizon_end: str
    lines: dict


@dataclass
class TrainingRun:
    """A finished :class:`mr_jobs.churn_features.MRChurnFeatures` run (see
    :func:`run_training_rows`): its counters, not its rows.

    Attributes
    ----------
    job : models.job_runner.JobRun
        The run; its output (the training rows) exists while the ``with`` block lasts.
    cutoff, horizon_end : str
    lines : dict
        ``{"features": ..., "labels": ...}`` as in :attr:`ChurnDataset.lines`.
    counts : numpy.ndarray
        ``[bought again, churned]`` training rows.
    """

    job: object
    cutoff: str
    horizon_end: str
    lines: dict
    counts: np.ndarray

    @property
    def labelled(self):
        """Training rows written by the tasks."""
        return int(self.counts.sum())


def _check_horizon(horizon_days):
    return check_int("horizon_days", horizon_days, 1, rule="a positive integer")


def _check_inputs(input_paths):
    if isinstance(input_paths, (str, os.PathLike)) or not input_paths:
        raise ValueError(f"input_paths={input_paths!r} should be a non-empty list of paths")
    return [os.fspath(p) for p in input_paths]


def _warn_if_log_ends_early(run, lines, cutoff, horizon_days, horizon_end):
    last_seen = latest_day(run.counters)
    data_after_end = lines["labels"]["rejected_by_reason"].get("after_as_of", 0)
    if last_seen is not None and last_seen.isoformat() < horizon_end and not data_after_end:
        warnings.warn(
            f"the log's last purchase is on {last_seen.isoformat()}, before the horizon end "
            f"{horizon_end} (cutoff={cutoff}, horizon_days={horizon_days}): customers who "
            "would have bought after it are labelled churned",
            UserWarning,
            stacklevel=4,
        )


@contextmanager
def run_training_rows(
    input_paths, *, schema, cutoff, horizon_days, runner="inline", conf_paths=None, progress=None
):
    """Run the one pass of features and labels; yield a :class:`TrainingRun`.

    The training rows stay in the job's output (written by its tasks) until the block
    ends; nothing per customer is read here.

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    schema : mr_jobs.records.InputSchema
    cutoff : str
        ``YYYY-MM-DD``: features see the lines dated on or before it.
    horizon_days : int
        > 0: a customer who buys in ``(cutoff, cutoff + horizon_days]`` has not churned.
    runner : str
    conf_paths : list of str or None
    progress : callable, optional

    Yields
    ------
    TrainingRun

    Raises
    ------
    ValueError
        When ``cutoff`` is not a date, ``horizon_days`` is not a positive integer or there
        are no input paths.

    Warns
    -----
    UserWarning
        When the log ends before ``cutoff + horizon_days``.
    """
    paths = _check_inputs(input_paths)
    cutoff_date = check_iso_date("cutoff", cutoff)
    horizon_days = _check_horizon(horizon_days)
    end_date = cutoff_date + datetime.timedelta(days=horizon_days)
    cutoff, horizon_end = cutoff_date.isoformat(), end_date.isoformat()
    args = schema_to_args(schema) + ["--cutoff", cutoff, "--as-of", horizon_end]
    jobs = {"runner": runner, "conf_paths": conf_paths, "progress": progress}
    with local_inputs(paths, runner, progress=progress) as readable:
        with run_job(MRChurnFeatures, readable, args, **jobs) as run:
            lines = {"features": run.lines, "labels": label_lines(run.lines, run.counters)}
            found = run.counters[0].get(COUNTER_GROUP_CHURN, {}) if run.counters else {}
            counts = np.array([found.get("bought_again", 0), found.get("churned", 0)])
            if int(counts.sum()) != run.output_rows:
                raise AccountingError(
                    f"{run.output_rows} training rows written but {int(counts.sum())} "
                    "labelled; a task's counters were lost"
                )
            _warn_if_log_ends_early(run, lines, cutoff, horizon_days, horizon_end)
            yield TrainingRun(run, cutoff, horizon_end, lines, counts)


def _frame_of(rows):
    """Training rows (dicts) as a frame sorted by ``customer_id``."""
    rows = sorted(rows, key=lambda r: r["customer_id"])
    if not rows:
        return pd.DataFrame(columns=["customer_id", *LABEL_COLUMNS])
    frame = pd.DataFrame.from_records(rows)
    frame["churned"] = frame["churned"].astype(np.int64)
    frame["orders_in_horizon"] = frame["orders_in_horizon"].astype(np.int64)
    frame["value_in_horizon"] = frame["value_in_horizon"].astype(float)
    return frame


def build_churn_dataset(
    input_paths,
    *,
    schema,
    cutoff,
    horizon_days,
    runner="inline",
    conf_paths=None,
    reporter=None,
):
    """Features before a cutoff and churn labels over a horizon, in one MapReduce pass,
    read into a frame.

    A convenience for notebooks and tests: it reads every training row into the driver.
    The churn stage (:mod:`models.churn_stage`) reads only a bounded sample of them
    (:func:`training_sample`).

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    schema : mr_jobs.records.InputSchema
        How to read them (e.g. ``PRESETS["cdnow"]``).
    cutoff : str
        ``YYYY-MM-DD``: features see the lines dated on or before it.
    horizon_days : int
        > 0: a customer who buys in ``(cutoff, cutoff + horizon_days]`` has not churned.
    runner : str
        mrjob runner.
    conf_paths : list of str or None
        mrjob config files (``[]`` reads none; see :func:`models.job_runner.run_job`).
    reporter : models.progress.Reporter, optional

    Returns
    -------
    ChurnDataset

    Raises
    ------
    ValueError
        When ``cutoff`` is not a date, ``horizon_days`` is not a positive integer or there
        are no input paths.

    Warns
    -----
    UserWarning
        When the log ends before ``cutoff + horizon_days``.

    Examples
    --------
    >>> data = build_churn_dataset(["CDNOW_master.txt"], schema=PRESETS["cdnow"],
    ...     cutoff="1997-09-30", horizon_days=273, conf_paths=[])  # doctest: +SKIP
    >>> data.frame["churned"].mean()  # doctest: +SKIP
    """
    say = reporter.progress("churn") if reporter else None
    with run_training_rows(
        input_paths,
        schema=schema,
        cutoff=cutoff,
        horizon_days=horizon_days,
        runner=runner,
        conf_paths=conf_paths,
        progress=say,
    ) as training:
        frame = _frame_of(training.job.rows())
    feature_rows = [
        {k: v for k, v in r.items() if k not in _HORIZON_COLUMNS} for r in frame.to_dict("records")
    ]
    return ChurnDataset(
        frame=frame,
        feature_rows=feature_rows,
        cutoff=training.cutoff,
        horizon_days=int(horizon_days),
        horizon_end=training.horizon_end,
        lines=training.lines,
    )


#: Standard deviations of the sample's size above ``max_train`` that the first threshold
#: allows for (the driver then keeps the ``max_train`` smallest keys).
_SAMPLE_MARGIN_SIGMAS = 4.0


def _first_threshold(max_train, population):
    """A key threshold under which about ``max_train + 4 sigma`` customers fall."""
    wanted = max_train + _SAMPLE_MARGIN_SIGMAS * math.sqrt(max_train) + 16
    return min(KEY_SPACE, math.ceil(KEY_SPACE * wanted / population))


def training_sample(training, *, max_train, seed, runner="inline", conf_paths=None):
    """The training rows to fit on: all of them when there are at most ``max_train``,
    else the ``max_train`` customers with the smallest :func:`mr_jobs.churn_sample.sample_key`.

    Parameters
    ----------
    training : TrainingRun
        From :func:`run_training_rows` (its output must still exist).
    max_train : int
        >= 1.
    seed : int
        Keys the hash (the same seed and ids give the same sample).
    runner, conf_paths
        Of the sampling job (:class:`mr_jobs.churn_sample.MRChurnSample`, map-only).

    Returns
    -------
    (pandas.DataFrame, dict)
        The sampled training rows sorted by ``customer_id`` (as :func:`build_churn_dataset`
        builds its frame), and the sample's description for the manifest: ``rule``,
        ``seed``, ``population``, ``size``, ``max_train`` and ``threshold`` (the last key
        range the job was given, None when every row was read).

    Notes
    -----
    The driver reads at most about ``max_train + 4 sqrt(max_train)`` rows: the job keeps
    the keys under a threshold set for that many, and should fewer than ``max_train`` fall
    under it (odds about 3e-5), the job runs again with the threshold doubled.
    """
    frame, info = keyed_sample(
        training.job.output_parts(),
        training.job.rows,
        population=training.labelled,
        max_rows=max_train,
        seed=seed,
        columns=_TRAINING_COLUMNS,
        noun="labelled customers",
        runner=runner,
        conf_paths=conf_paths,
    )
    info["max_train"] = info.pop("max_rows")
    return frame, info


def keyed_sample(
    parts, all_rows, *, population, max_rows, seed, columns, noun, runner="inline", conf_paths=None
):
    """A uniform, seeded sample of at most ``max_rows`` JSON rows with a ``customer_id``:
    all of them when there are no more, else those with the smallest
    :func:`mr_jobs.churn_sample.sample_key` (the map-only
    :class:`mr_jobs.churn_sample.MRChurnSample` over ``parts`` keeps the keys under a
    threshold; see :func:`training_sample`).

    Parameters
    ----------
    parts : list of str
        The rows' part files, as the runner reads them.
    all_rows : callable
        Returns an iterator over every row (read when ``population <= max_rows``).
    population : int
        How many rows the parts hold.
    max_rows : int
    seed : int
    columns : tuple of str
        The columns kept (``customer_id`` first), as :func:`_compact_frame` types them.
    noun : str
        What a row is, for the rule (``"labelled customers"``).
    runner, conf_paths
        Of the sampling job.

    Returns
    -------
    (pandas.DataFrame, dict)
        The sample sorted by ``customer_id`` and its description: ``rule``, ``seed``,
        ``population``, ``size``, ``max_rows`` and ``threshold``.
    """
    info = {"seed": int(seed), "population": int(population), "max_rows": int(max_rows)}
    if population <= max_rows:
        frame = _compact_frame(all_rows(), columns)
        rule = f"every one of the {noun} (population {population} <= {max_rows})"
        return frame, {**info, "rule": rule, "size": len(frame), "threshold": None}
    threshold = _first_threshold(max_rows, population)
    while True:
        args = ["--seed", str(int(seed)), "--threshold", str(threshold)]
        with run_job(MRChurnSample, parts, args, runner=runner, conf_paths=conf_paths) as run:
            if run.output_rows >= max_rows or threshold >= KEY_SPACE:
                frame = _compact_frame(run.rows(), ("sample_key", *columns))
                break
        threshold = min(KEY_SPACE, threshold * 2)
    # the max_rows smallest keys (a stable sort: equal keys keep the id order); the frame
    # is sorted by id, so the kept positions in increasing order keep it sorted
    keep = np.sort(np.argsort(frame["sample_key"].to_numpy(), kind="stable")[:max_rows])
    frame = pd.DataFrame({c: frame[c].to_numpy()[keep] for c in columns})
    rule = (
        f"the {max_rows} {noun} with the smallest blake2b-64 key of the UTF-8 "
        "customer id keyed by the seed (mr_jobs.churn_sample.sample_key)"
    )
    return frame, {**info, "rule": rule, "size": len(frame), "threshold": threshold}


#: What the fit reads of a training row (:func:`fit_churn_model`); the rest of the row
#: (dates, counts, lifetimes columns) is left in the job's output.
_TRAINING_COLUMNS = ("customer_id", *RFM_INPUT_COLUMNS, *LABEL_COLUMNS)

#: Rows converted to arrays at a time by :func:`_compact_frame`.
_CHUNK_ROWS = 65_536

#: Ids up to this many characters are held as a fixed-width numpy array while the sample is
#: read (longer ones, or ids with a NUL, which numpy would strip, stay Python strings).
_ID_WIDTH = 64


def _compact_frame(rows, columns):
    """Training rows (dicts) as a frame of ``columns`` sorted by ``customer_id``, built
    chunk by chunk so that only one chunk of dicts is held at a time.

    A row as a dict costs about 2 KB; in the frame, about 130 bytes (the id and nine
    numbers). The ids are kept in fixed-width numpy arrays until the frame is made: a
    Python string kept from each decoded row would pin the allocator's pools of the row's
    freed keys (measured on 520,000 rows: 219 MB more resident for a 71 MB frame).
    """
    chunks, batch = [], []
    for row in rows:
        batch.append(row)
        if len(batch) == _CHUNK_ROWS:
            chunks.append(_columns_of(batch, columns))
            batch = []
    if batch or not chunks:
        chunks.append(_columns_of(batch, columns))
    del batch
    data = {}
    for name in columns:  # one column at a time: its chunks go as it is joined
        data[name] = np.concatenate([chunk.pop(name) for chunk in chunks])
    del chunks
    order = np.argsort(data["customer_id"], kind="stable")
    return pd.DataFrame({name: data.pop(name)[order] for name in columns})


def _columns_of(rows, columns):
    data = {}
    for name in columns:
        values = [row[name] for row in rows]
        if name == "customer_id":
            data[name] = _id_array(values)
        elif name == "sample_key":
            data[name] = np.array(values, dtype=np.uint64)
        elif name in ("churned", "orders_in_horizon"):
            data[name] = np.array(values, dtype=np.int64)
        else:
            data[name] = np.array(values, dtype=float)
    return data


def _id_array(ids):
    """``ids`` as a fixed-width unicode array when that keeps them exactly and is small."""
    longest = max(map(len, ids), default=0)
    if longest <= _ID_WIDTH and not any("\x00" in i for i in ids):
        return np.array(ids, dtype=f"<U{max(longest, 1)}")
    return np.array(ids, dtype=object)


def current_features(
    input_paths,
    *,
    schema,
    as_of=None,
    runner="inline",
    conf_paths=None,
    work_dir=None,
    reporter=None,
):
    """RFM rows of every customer as of a date (default: the log's latest purchase date),
    read into a frame.

    A convenience for notebooks and tests: it reads every row into the driver. The churn
    stage scores the published RFM rows with a map-only job instead.

    Parameters
    ----------
    input_paths : list of str
    schema : mr_jobs.records.InputSchema
    as_of : str, optional
        ``YYYY-MM-DD``; lines after it are rejected as ``after_as_of``.
    runner : str
    conf_paths : list of str or None
    work_dir : str, optional
        Where the RFM result is published (``current/``); default a temporary directory.
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (pandas.DataFrame, dict)
        The rows (sorted by ``customer_id``) and the RFM manifest.
    """
    paths = _check_inputs(input_paths)
    if as_of is not None:
        as_of = check_iso_date("as_of", as_of).isoformat()
    with tempfile.TemporaryDirectory(prefix="churn-rfm-") as temporary:
        directory = os.path.join(temporary if work_dir is None else os.fspath(work_dir), "current")
        manifest = run_rfm_stage(
            paths,
            directory,
            schema=schema,
            runner=runner,
            as_of=as_of,
            conf_paths=conf_paths,
            reporter=reporter,
        )
        lines = read_parts(LocalFileSystem(), directory)
        rows = sorted((json.loads(t) for t in lines if t.strip()), key=lambda r: r["customer_id"])
    return pd.DataFrame.from_records(rows), manifest


def feature_matrix(rows):
    """The model features (:data:`MODEL_FEATURES`) of RFM rows.

    Parameters
    ----------
    rows : pandas.DataFrame or list of dict
        With at least the columns of :data:`RFM_INPUT_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        float64 columns in :data:`MODEL_FEATURES` order, same index as ``rows``
        (:func:`mr_jobs.churn_rules.feature_array`, which the scoring tasks use too).

    Raises
    ------
    ValueError
        Naming the missing columns, or a column with missing or non-finite values.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    missing = [c for c in RFM_INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack the RFM columns {missing}")
    raw = {c: frame[c].to_numpy(dtype=float) for c in RFM_INPUT_COLUMNS}
    return pd.DataFrame(feature_array(raw), columns=list(MODEL_FEATURES), index=frame.index)


# -- model ---------------------------------------------------------------------------------------


def _candidate(name, seed):
    if name == "logistic_regression":
        return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=150,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def top_decile_lift(y_true, scores):
    """Churn rate among the top 10 % scores divided by the overall churn rate.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
        Higher = more likely to churn.

    Returns
    -------
    float
        ``mean(y in top ceil(n / 10)) / mean(y)``; ties keep the input order (stable sort).
        NaN when there are no positives.
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.size == 0 or y.mean() == 0:
        return float("nan")
    top = np.argsort(-s, kind="stable")[: math.ceil(y.size / 10)]
    return float(y[top].mean() / y.mean())


def _metrics(y, p):
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "top_decile_lift": top_decile_lift(y, p),
    }


@dataclass
class ChurnModel:
    """A fitted, calibrated churn model and its report (see :func:`fit_churn_model`).

    Attributes
    ----------
    estimator : sklearn.calibration.CalibratedClassifierCV
        Predicts churn (class 1) from :func:`feature_matrix` columns.
    chosen : str
        The winning candidate (one of :data:`CANDIDATES`).
    cv_scores : dict
        ``{candidate: [ROC-AUC per fold]}`` on the training part.
    metrics : dict
        Held-out: ``roc_auc``, ``pr_auc``, ``brier``, ``top_decile_lift`` of the calibrated
        model, ``brier_uncalibrated`` and ``roc_auc_uncalibrated`` of the same model before
        calibration, ``recency_only_roc_auc``, ``base_rate``, ``n_train``, ``n_holdout``.
    calibration : str
        ``"isotonic"`` or ``"sigmoid"``.
    reference : dict
        Training medians of the features (the "typical customer" of the drivers).
    tiers : dict
        ``{"high": p, "medium": p}`` thresholds.
    seed, cv_folds : int
    test_size : float
    features : tuple of str
    holdout : pandas.DataFrame or None
        Held-out customers: ``customer_id``, ``churned``, ``churn_probability``,
        ``recency_days`` (not saved by :func:`save_model`).
    info : dict
        Free-form facts about the training data (cutoff, horizon...), saved with the model.
    timings : dict
        Seconds: ``cv_<candidate>`` (its cross-validation) and ``calibrated_fit``.
    """

    estimator: object
    chosen: str
    cv_scores: dict
    metrics: dict
    calibration: str
    reference: dict
    tiers: dict
    seed: int
    cv_folds: int
    test_size: float
    features: tuple = MODEL_FEATURES
    holdout: pd.DataFrame | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def predict_proba(self, rows):
        """Calibrated churn probabilities of RFM rows (DataFrame or list of dicts)."""
        return self.estimator.predict_proba(feature_matrix(rows).to_numpy())[:, 1]

    def base_estimator(self):
        """The fitted model under the calibrator (its log-odds drive the attributions)."""
        return self.estimator.calibrated_classifiers_[0].estimator

    def metadata(self):
        """Everything but the estimator and the held-out frame, JSON-able."""
        return {
            "format": _FORMAT,
            "chosen": self.chosen,
            "cv_scores": self.cv_scores,
            "metrics": self.metrics,
            "calibration": self.calibration,
            "reference": self.reference,
            "tiers": self.tiers,
            "seed": self.seed,
            "cv_folds": self.cv_folds,
            "test_size": self.test_size,
            "features": list(self.features),
            "info": self.info,
            "timings": self.timings,
        }


def fit_churn_model(
    frame,
    *,
    seed=0,
    cv_folds=5,
    test_size=0.25,
    calibration="auto",
    tiers=None,
    info=None,
):
    """Select, fit and calibrate a churn model; report it on a held-out part.

    Parameters
    ----------
    frame : pandas.DataFrame
        :attr:`ChurnDataset.frame`: RFM columns and ``churned`` (0/1).
    seed : int
        Seeds the split, the folds and the tree ensemble.
    cv_folds : int
        >= 2; stratified folds of the selection and of the calibration.
    test_size : float
        In (0, 1): the held-out share.
    calibration : {"auto", "isotonic", "sigmoid"}
        ``auto``: isotonic with >= 1,000 training customers, else sigmoid.
    tiers : dict, optional
        ``{"high": p, "medium": q}`` with 0 < q <= p < 1; default 0.7 and 0.4.
    info : dict, optional
        JSON-able facts saved with the model (e.g. the cutoff and horizon).

    Returns
    -------
    ChurnModel

    Raises
    ------
    ValueError
        On a bad parameter, no ``churned`` column, labels other than 0/1, or too few
        customers of a class for the folds.
    """
    check_int("seed", seed, 0, rule="a non-negative integer")
    check_int("cv_folds", cv_folds, 2)
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size={test_size!r} should be a float in (0, 1)")
    if calibration not in ("auto", "isotonic", "sigmoid"):
        raise ValueError(f"calibration={calibration!r} should be 'auto', 'isotonic' or 'sigmoid'")
    tiers = _check_tiers(DEFAULT_TIERS if tiers is None else tiers)
    if "churned" not in frame.columns:
        raise ValueError("frame has no 'churned' column (see build_churn_dataset)")
    y = frame["churned"].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"churned should be 0 or 1, found {sorted(set(y.tolist()))[:5]}")
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=2)
    need = math.ceil(cv_folds / (1.0 - test_size)) + math.ceil(1.0 / test_size)
    if counts.min() < need:
        raise ValueError(
            f"{int(counts[0])} customers bought again and {int(counts[1])} churned: each class "
            f"needs >= {need} for cv_folds={cv_folds} and test_size={test_size}"
        )
    x = feature_matrix(frame).to_numpy()
    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=test_size, stratify=y, random_state=seed)
    # one copy of each part, made once (the candidates, folds and calibration all read it)
    x_train, x_test, y_train = x[train], x[test], y[train]
    del x
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    cv_scores, timings = {}, {}
    for name in CANDIDATES:
        started = time.perf_counter()
        scores = cross_val_score(
            _candidate(name, seed), x_train, y_train, cv=folds, scoring="roc_auc"
        )
        cv_scores[name] = [float(s) for s in scores]
        timings[f"cv_{name}"] = time.perf_counter() - started
    chosen = max(CANDIDATES, key=lambda n: (np.mean(cv_scores[n]), -CANDIDATES.index(n)))
    method = calibration
    if method == "auto":
        method = "isotonic" if len(train) >= _ISOTONIC_MIN_SAMPLES else "sigmoid"
    calibrated = CalibratedClassifierCV(
        _candidate(chosen, seed), method=method, cv=folds, ensemble=False
    )
    started = time.perf_counter()
    calibrated.fit(x_train, y_train)
    timings["calibrated_fit"] = time.perf_counter() - started
    # with ensemble=False the base model is the chosen candidate fitted on the whole training
    # part: exactly the uncalibrated model
    uncalibrated = calibrated.calibrated_classifiers_[0].estimator
    p = calibrated.predict_proba(x_test)[:, 1]
    p_raw = uncalibrated.predict_proba(x_test)[:, 1]
    recency = frame["recency_days"].to_numpy(dtype=float)[test]
    metrics = _metrics(y[test], p)
    metrics.update(
        brier_uncalibrated=float(brier_score_loss(y[test], p_raw)),
        roc_auc_uncalibrated=float(roc_auc_score(y[test], p_raw)),
        recency_only_roc_auc=float(roc_auc_score(y[test], recency)),
        base_rate=float(y[test].mean()),
        mean_probability=float(p.mean()),
        n_train=int(len(train)),
        n_holdout=int(len(test)),
    )
    holdout = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy()[test]
            if "customer_id" in frame.columns
            else test,
            "churned": y[test],
            "churn_probability": p,
            "recency_days": recency,
        }
    )
    reference = dict(zip(MODEL_FEATURES, np.median(x_train, axis=0).tolist(), strict=True))
    return ChurnModel(
        estimator=calibrated,
        chosen=chosen,
        cv_scores=cv_scores,
        metrics=metrics,
        calibration=method,
        reference=reference,
        tiers=tiers,
        seed=int(seed),
        cv_folds=int(cv_folds),
        test_size=test_size,
        holdout=holdout,
        info=dict(info or {}),
        timings=timings,
    )


def _check_tiers(tiers):
    if not isinstance(tiers, dict) or set(tiers) != {"high", "medium"}:
        raise ValueError(f"tiers={tiers!r} should be a dict with keys 'high' and 'medium'")
    high, medium = tiers["high"], tiers["medium"]
    if not (isinstance(high, (int, float)) and isinstance(medium, (int, float))):
        raise ValueError(f"tiers={tiers!r} should hold numbers")
    if not 0.0 < medium <= high < 1.0:
        raise ValueError(f"tiers={tiers!r} should satisfy 0 < medium <= high < 1")
    return {"high": float(high), "medium": float(medium)}


# -- scoring -------------------------------------------------------------------------------------


def _driver_effects(model, x):
    """Log-odds effects ``f(x) - f(x with feature j at its median)``, shape (n, features).

    Prior validation is assumed.
    """
    return driver_effects(model.base_estimator(), model.reference, model.features, x)


def score_customers(model, rows, *, value="total_value", top_drivers=3, tiers=None):
    """Churn probability, risk tier, value at risk and drivers of every customer.

    Parameters
    ----------
    model : ChurnModel
    rows : pandas.DataFrame or list of dict
        RFM rows (e.g. from :func:`current_features`) with ``customer_id``.
    value : str
        The RFM column valued at risk: ``total_value`` (gross spend over the feature
        window, the default) or another numeric column such as ``monetary_value``.
    top_drivers : int
        Features listed per customer (0: none, and no attribution is computed).
    tiers : dict, optional
        Overrides the model's ``{"high": p, "medium": q}``.

    Returns
    -------
    pandas.DataFrame
        In input order: ``customer_id``, ``churn_probability``, ``risk_tier``
        (``high``/``medium``/``low``), ``value``, ``value_at_risk``
        (``churn_probability * value``), ``recency_days``, ``orders``, ``total_value`` and,
        with ``top_drivers > 0``, ``drivers`` (a list of ``{"feature", "value", "effect"}``
        with positive log-odds effects, largest first) and ``drivers_text``.

    Raises
    ------
    ValueError
        On an unknown ``value`` column, a bad ``top_drivers`` or bad tiers.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if value not in frame.columns:
        raise ValueError(f"value={value!r} is not a column of the rows")
    if isinstance(top_drivers, bool) or not isinstance(top_drivers, (int, np.integer)):
        raise ValueError(f"top_drivers={top_drivers!r} should be an integer >= 0")
    if not 0 <= top_drivers <= len(model.features):
        raise ValueError(f"top_drivers={top_drivers!r} should be in [0, {len(model.features)}]")
    tiers = _check_tiers(model.tiers if tiers is None else tiers)
    features = feature_matrix(frame)
    x = features.to_numpy()
    p = model.estimator.predict_proba(x)[:, 1] if len(x) else np.empty(0)
    worth = frame[value].to_numpy(dtype=float)
    tier = np.where(p >= tiers["high"], "high", np.where(p >= tiers["medium"], "medium", "low"))
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "churn_probability": p,
            "risk_tier": tier,
            "value": worth,
            "value_at_risk": p * worth,
            "recency_days": frame["recency_days"].to_numpy(),
            "orders": frame["orders"].to_numpy(),
            "total_value": frame["total_value"].to_numpy(dtype=float),
        },
        index=frame.index,
    )
    if top_drivers:
        out["drivers"] = _drivers(model, x, top_drivers) if len(x) else []
        out["drivers_text"] = [drivers_text(ds) for ds in out["drivers"]]
    return out


def _drivers(model, x, k):
    return list_drivers(_driver_effects(model, x), model.features, x, k)


def early_warning(scored, *, value_quantile=0.8, min_probability=None, limit=None):
    """High-value customers at high risk, for the retention team.

    Parameters
    ----------
    scored : pandas.DataFrame
        :func:`score_customers`' output (all scored customers: the value threshold is a
        quantile of them).
    value_quantile : float
        In [0, 1): a customer is high-value when ``value >= quantile(value,
        value_quantile)`` (0.8: the top 20 %).
    min_probability : float, optional
        Default: the high-risk threshold, i.e. ``risk_tier == "high"``.
    limit : int, optional
        Keep the first ``limit`` rows.

    Returns
    -------
    pandas.DataFrame
        The selected rows sorted by ``value_at_risk`` (descending), then ``customer_id``,
        with a ``rank`` column from 1 and ``value_threshold``.
    """
    if not isinstance(value_quantile, float) or not 0.0 <= value_quantile < 1.0:
        raise ValueError(f"value_quantile={value_quantile!r} should be a float in [0, 1)")
    if min_probability is not None and not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability={min_probability!r} should be in [0, 1]")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r} should be a positive integer")
    if scored.empty:
        return scored.assign(rank=pd.Series(dtype=np.int64), value_threshold=np.nan)
    threshold = float(np.quantile(scored["value"].to_numpy(dtype=float), value_quantile))
    if min_probability is None:
        risky = scored["risk_tier"] == "high"
    else:
        risky = scored["churn_probability"] >= min_probability
    picked = scored[risky & (scored["value"] >= threshold)]
    picked = picked.sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable"
    )
    if limit is not None:
        picked = picked.head(limit)
    picked = picked.reset_index(drop=True)
    picked.insert(0, "rank", np.arange(1, len(picked) + 1))
    picked["value_threshold"] = threshold
    return picked


# -- persistence ---------------------------------------------------------------------------------


def save_model(model, path):
    """Write ``model`` to ``path`` as a skops file (no pickle), atomically.

    Parameters
    ----------
    model : ChurnModel
    path : str or os.PathLike
        Usually ``*.skops``; replaced if it exists.
    """
    import skops.io as sio

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    payload = {
        "format": _FORMAT,
        "estimator": model.estimator,
        "metadata": json.dumps(model.metadata(), sort_keys=True),
    }
    handle, temporary = tempfile.mkstemp(prefix=".churn-", suffix=".skops", dir=directory)
    os.close(handle)
    try:
        sio.dump(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_model(path):
    """Read a model written by :func:`save_model`, refusing types outside the trust boundary.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ChurnModel
        Without :attr:`ChurnModel.holdout`.

    Raises
    ------
    UntrustedModelError
        When the file would instantiate a type that is neither a skops default nor in
        :data:`TRUSTED_TYPES`, naming the types.
    ValueError
        When the file is not a churn model of this format.
    """
    estimator, meta = load_model_payload(os.fspath(path))
    return ChurnModel(
        estimator=estimator,
        chosen=meta["chosen"],
        cv_scores=meta["cv_scores"],
        metrics=meta["metrics"],
        calibration=meta["calibration"],
        reference=meta["reference"],
        tiers=meta["tiers"],
        seed=meta["seed"],
        cv_folds=meta["cv_folds"],
        test_size=meta["test_size"],
        features=tuple(meta["features"]),
        holdout=None,
        info=meta["info"],
        timings=meta.get("timings", {}),
    )
