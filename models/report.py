"""The report: one offline HTML file of a ``crm-mr run`` output root, local or ``hdfs://``.

:func:`build_report` reads only what the stages publish for people and for this report:
the run record ``_pipeline.json``, each stage's ``_manifest.json``, its summaries (segment
tables, rules, forecasts, backtests, metrics, holdout tables) and its bounded side outputs
(``rfm_segments/sample.csv``, ``segments/sample.csv``, ``clv/sample.csv``,
``churn/curves.csv``, ``churn/probability_histogram.csv``; :mod:`models.summaries`). It
never reads the ``part-*`` files of a per-customer stage, so it takes seconds whatever the
number of customers.

One section per stage; a stage that was skipped, failed or is not published says why
instead. The charts (:mod:`models.report_charts`) are SVG images embedded as ``data:``
URIs: the file makes no network request and needs no JavaScript. The same outputs give
the same file, byte for byte (no timestamp but the run's own). Credentials never appear:
parameters are passed through :func:`models.manifest.redact` (keys naming a password,
token or secret) and :func:`hdfs_io.errors.redact_secrets` (passwords in URIs).
"""

import base64
import html
import io
import json

import pandas as pd

from hdfs_io import (
    PathNotFound,
    get_filesystem,
    is_published,
    redact_uri,
    write_file_atomically,
)
from hdfs_io.errors import redact_secrets
from hdfs_io.paths import join
from models.manifest import redact
from models.pipeline import PUBLISHED, REPORT_FILE, RUN_RECORD

__all__ = ["REPORT_FILE", "build_report", "render_report"]

_TOP_ROWS = 10


class _Outputs:
    """Read access to the small published files of an output root."""

    def __init__(self, fs, root):
        self.fs, self.root = fs, root
        self.record = self._record()
        self.entries = {e["stage"]: e for e in self.record.get("stages", [])}

    def _record(self):
        path = join(self.root, RUN_RECORD)
        if not self.fs.exists(path):
            return {}
        return json.loads(self.fs.read(path).decode("utf-8"))

    def path(self, stage, name=None):
        base = join(self.root, stage)
        return join(base, name) if name else base

    def published(self, stage):
        return self.fs.exists(self.path(stage)) and is_published(self.fs, self.path(stage))

    def has(self, stage, name):
        return self.fs.exists(self.path(stage, name))

    def json(self, stage, name):
        return json.loads(self.fs.read(self.path(stage, name)).decode("utf-8"))

    def csv(self, stage, name, **kwargs):
        return pd.read_csv(io.BytesIO(self.fs.read(self.path(stage, name))), **kwargs)

    def csv_head(self, stage, name, rows):
        """The first ``rows`` rows of a CSV that may be long, read as a stream."""
        with self.fs.open_read(self.path(stage, name)) as stream:
            return pd.read_csv(stream, nrows=rows)

    def manifest(self, stage):
        return self.json(stage, "_manifest.json")

    def why_not(self, stage):
        """Why ``stage`` has no published output (None when it has one)."""
        if self.published(stage):
            return None
        entry = self.entries.get(stage)
        if entry is None:
            failed = self.record.get("failed_stage")
            if failed:
                return f"the run stopped at the {failed} stage ({self.record.get('status')})"
            return "not run: no published output and no record of it in the run"
        if entry.get("status") == "skipped":
            return f"skipped: {entry.get('skipped')}"
        return f"{entry.get('status')}: {entry.get('error', 'no published output')}"


# -- formatting -------------------------------------------------------------------


def _e(value):
    return html.escape(str(value))


def _int(value):
    return f"{int(round(float(value))):,}"


def _num(value, digits=2):
    return f"{float(value):,.{digits}f}"


def _pct(value):
    return f"{float(value):.1%}"


def _money(value):
    return f"{float(value):,.2f}"


def _table(frame, formats=None, caption=None):
    """An HTML table of ``frame``; ``formats`` maps a column to its formatter."""
    formats = formats or {}
    head = "".join(f"<th>{_e(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            fmt = formats.get(column)
            text = "" if pd.isna(value) else (fmt(value) if fmt else value)
            numeric = fmt is not None or isinstance(value, int | float)
            cells.append(f'<td class="{"n" if numeric else "t"}">{_e(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pairs(items):
    """A two-column table of ``(label, formatted value)``."""
    rows = "".join(f'<tr><th>{_e(k)}</th><td class="n">{_e(v)}</td></tr>' for k, v in items)
    return f'<table class="pairs"><tbody>{rows}</tbody></table>'


def _image(svg, alt):
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}"></figure>'


def _note(text):
    return f'<p class="note">{_e(text)}</p>'


# -- sections ---------------------------------------------------------------------


def _at_a_glance(out):
    """The headline figures of the stages that ran, from their manifests and summaries."""
    found = []
    if out.published("rfm_segments") and out.has("rfm_segments", "segment_summary.csv"):
        summary = out.csv("rfm_segments", "segment_summary.csv")
        found.append(("customers", _int(summary["customers"].sum())))
        found.append(("revenue", _money(summary["revenue"].sum())))
        top = summary.sort_values(["revenue", "segment"], ascending=[False, True]).iloc[0]
        found.append(
            (
                "largest share of revenue",
                f"{top['segment']}: {_pct(top['share_revenue'])} of revenue from "
                f"{_pct(top['share_customers'])} of customers",
            )
        )
    if out.published("forecasts") and out.has("forecasts", "forecasts.csv"):
        fc = out.csv("forecasts", "forecasts.csv")
        total = fc[fc["series"] == "total"]
        if len(total):
            found.append(
                (
                    f"forecast of total {out.manifest('forecasts')['parameters'].get('value')}",
                    f"{_money(total['forecast'].sum())} over the {len(total)} periods from "
                    f"{total['period'].min()}",
                )
            )
    if out.published("churn"):
        details = out.manifest("churn").get("details", {})
        found.append(
            (
                "customers at high churn risk",
                f"{_int(details.get('tiers', {}).get('high', 0))} of "
                f"{_int(details.get('scored_customers', 0))}",
            )
        )
        found.append(
            (
                "early-warning list",
                f"{_int(details.get('early_warning', 0))} customers, value at risk "
                f"{_money(details.get('value_at_risk_total', 0))}",
            )
        )
    if out.published("clv"):
        manifest = out.manifest("clv")
        horizon = manifest.get("parameters", {}).get("horizon_days")
        found.append(
            (
                f"customer lifetime value ({horizon} days)"
                if horizon
                else "customer lifetime value",
                _money(manifest.get("details", {}).get("clv_total", 0)),
            )
        )
    if not found:
        return _note("No stage published a result to summarise.")
    return _pairs(found)


def _data_quality(out):
    from models import report_charts as charts

    manifest = out.manifest("rfm")
    lines, details = manifest["lines"], manifest.get("details", {})
    parts = [
        _pairs(
            [
                ("lines read", _int(lines["read"])),
                ("accepted", _int(lines["accepted"])),
                ("rejected", _int(lines["rejected"])),
                (
                    "date range",
                    f"{details.get('first_purchase_date')} to {details.get('last_purchase_date')}",
                ),
                ("as of", f"{details.get('as_of')} ({details.get('as_of_source', '')})"),
                ("customers", _int(details.get("customers", manifest["rows_written"]))),
            ]
            + _orders_and_items(out)
        )
    ]
    reasons = lines.get("rejected_by_reason") or {}
    if reasons:
        ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(
            _image(
                charts.bar_chart(
                    [k for k, _ in ordered],
                    [v for _, v in ordered],
                    xlabel="lines",
                    title="Rejected lines by reason",
                ),
                "rejected lines by reason",
            )
        )
    else:
        parts.append(_note("No line was rejected."))
    skipped = [e for e in out.record.get("stages", []) if e.get("status") != "completed"]
    if skipped:
        rows = "".join(
            f"<li><b>{_e(e['stage'])}</b>: {_e(e.get('skipped') or e.get('error') or '')}</li>"
            for e in skipped
        )
        parts.append(f"<h3>Stages not run</h3><ul>{rows}</ul>")
    return "".join(parts)


def _orders_and_items(out):
    found = []
    if out.published("sales") and out.has("sales", "series.csv"):
        series = out.csv("sales", "series.csv", usecols=["series", "orders"])
        found.append(("orders", _int(series.loc[series["series"] == "total", "orders"].sum())))
    if out.published("baskets"):
        details = out.manifest("baskets").get("details", {})
        for key, label in (("items_distinct", "distinct items"), ("baskets", "baskets")):
            if details.get(key) is not None:
                found.append((label, _int(details[key])))
    return found


def _customer_value(out):
    from models import report_charts as charts

    summary = out.csv("rfm_segments", "segment_summary.csv")
    total = int(summary["customers"].sum())
    table = _table(
        summary[
            [
                "segment",
                "customers",
                "share_customers",
                "share_revenue",
                "mean_recency_days",
                "mean_orders",
                "mean_total_value",
            ]
        ],
        {
            "customers": _int,
            "share_customers": _pct,
            "share_revenue": _pct,
            "mean_recency_days": lambda v: _num(v, 0),
            "mean_orders": lambda v: _num(v, 1),
            "mean_total_value": _money,
        },
        caption="RFM segments (every customer)",
    )
    parts = [table]
    if out.has("rfm_segments", "sample.csv"):
        sample = out.csv("rfm_segments", "sample.csv")
        parts.append(
            _note(
                f"Distributions and the heatmap: a uniform sample of {len(sample):,} of "
                f"{total:,} customers."
            )
        )
        for column, label, log in (
            ("recency_days", "days since the last purchase", False),
            ("orders", "orders (log scale)", True),
            ("total_value", "total value (log scale)", True),
        ):
            parts.append(_image(_histogram(charts, sample[column], label, log=log), label))
        parts.append(_image(_rf_heatmap(charts, sample), "R score by F score"))
    return "".join(parts)


def _histogram(charts, values, label, bins=30, log=False):
    """A histogram chart of ``values``; with ``log``, bins even on a log1p scale (for the
    long tails of orders and spend, non-negative)."""
    import numpy as np

    values = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if not values.size:
        values = np.zeros(1)
    if log and values.min() > 0 and values.max() > values.min():
        edges = np.geomspace(values.min(), values.max(), bins + 1)
        if np.all(values == np.round(values)):  # counts: one bin per small integer
            edges = np.unique(np.round(edges)) - 0.5
            edges = np.append(edges, edges[-1] + 1.0) if edges[-1] <= values.max() else edges
            edges[0] = max(edges[0], values.min() - 0.5)
    elif log and values.min() >= 0:
        edges = np.expm1(np.linspace(0.0, np.log1p(max(values.max(), 1.0)), bins + 1))
    else:
        edges, log = bins, False
    counts, edges = np.histogram(values, bins=edges)
    return charts.histogram_chart(
        edges[:-1],
        edges[1:],
        counts,
        xlabel=label,
        title=f"Distribution of {label.replace(' (log scale)', '')}",
        log_x=log,
    )


def _rf_heatmap(charts, sample):
    import numpy as np

    customers = np.zeros((5, 5))
    revenue = np.zeros((5, 5))
    for (r, f), group in sample.groupby(["r_score", "f_score"]):
        customers[int(r) - 1, int(f) - 1] = len(group)
        revenue[int(r) - 1, int(f) - 1] = group["total_value"].sum()
    share = revenue / revenue.sum() if revenue.sum() else revenue
    cells = [[f"{int(customers[i, j]):,}\n{share[i, j]:.0%}" for j in range(5)] for i in range(5)]
    return charts.heatmap(
        customers,
        [str(i) for i in range(1, 6)],
        [str(i) for i in range(1, 6)],
        xlabel="F score",
        ylabel="R score",
        title="Customers (and share of revenue) by R and F score",
        cells=cells,
    )


def _segments(out):
    from models import report_charts as charts

    profiles = out.csv("segments", "segments.csv")
    centre_columns = [c for c in profiles.columns if c.startswith("centre_")]
    shown = profiles[
        ["name", "customers", "share_of_customers", "share_of_revenue", *centre_columns]
    ]
    formats = {"customers": _int, "share_of_customers": _pct, "share_of_revenue": _pct}
    formats.update({c: (lambda v: _num(v, 1)) for c in centre_columns})
    parts = [_table(shown, formats, caption="K-Means segments (centres in original units)")]
    if out.has("segments", "sample.csv"):
        sample = out.csv("segments", "sample.csv")
        x, y = _scatter_axes(sample)
        if x and y:
            parts.append(
                _image(
                    charts.scatter_chart(
                        sample[x],
                        sample[y],
                        sample["segment_name"],
                        xlabel=x,
                        ylabel=y,
                        title=f"A sample of {len(sample):,} customers by segment",
                        log_y=True,
                    ),
                    "customers by segment",
                )
            )
    selection = out.csv("segments", "k_selection.csv")
    parts.append(
        _image(
            charts.lines_chart(
                selection["k"].tolist(),
                {"inertia": selection["inertia"].tolist()},
                xlabel="k",
                title="Inertia and silhouette against k",
                secondary={"silhouette": selection["silhouette"].tolist()},
            ),
            "inertia and silhouette against k",
        )
    )
    if out.has("segments", "overlap.csv"):
        overlap = out.csv("segments", "overlap.csv")
        pivot = overlap.pivot_table(
            index="name", columns="rfm_segment", values="customers", aggfunc="sum", fill_value=0
        ).reset_index()
        formats = {c: _int for c in pivot.columns if c != "name"}
        parts.append(_table(pivot, formats, caption="Customers by K-Means and RFM segment"))
    return "".join(parts)


def _scatter_axes(sample):
    columns = [c for c in sample.columns if c not in ("segment", "segment_name")]
    x = "recency" if "recency" in columns else (columns[0] if columns else None)
    rest = [c for c in columns if c != x]
    y = "monetary" if "monetary" in rest else (rest[0] if rest else None)
    return x, y


def _baskets(out):
    rules = out.csv("baskets", "rules.csv")
    top = rules.sort_values(["lift", "antecedent", "consequent"], ascending=[False, True, True])
    parts = [
        _table(
            top.head(_TOP_ROWS)[
                ["antecedent", "consequent", "count", "support", "confidence", "lift"]
            ],
            {"count": _int, "support": _pct, "confidence": _pct, "lift": _num},
            caption=f"Top {_TOP_ROWS} rules by lift (of {len(rules):,})",
        )
    ]
    if out.published("recommendations") and out.has("recommendations", "item_to_item.csv"):
        recs = out.csv("recommendations", "item_to_item.csv")
        items = out.csv("baskets", "items.csv")
        items = items[items["item"].isin(recs["item"])]
        items = items.sort_values(["count", "item"], ascending=[False, True])
        best = items["item"].head(_TOP_ROWS).tolist()
        recs = recs[recs["item"].isin(best)].copy()
        recs["order"] = recs["item"].map({item: i for i, item in enumerate(best)})
        recs = recs.sort_values(["order", "rank"])
        parts.append(
            _table(
                recs[["item", "rank", "recommended", "confidence", "lift"]],
                {"rank": _int, "confidence": _pct, "lift": _num},
                caption="Recommendations for the best-selling items that have some",
            )
            if len(recs)
            else _note("No item has a recommendation (no rule reached the thresholds).")
        )
    return "".join(parts)


def _forecasts(out):
    from models import report_charts as charts

    forecasts = out.csv("forecasts", "forecasts.csv")
    parameters = out.manifest("forecasts").get("parameters", {})
    value = parameters.get("value", "revenue")
    level = 1 - float(parameters.get("alpha", 0.05))
    names = list(dict.fromkeys(forecasts["series"].tolist()))[:4]
    history = None
    if out.published("sales") and out.has("sales", "series.csv"):
        history = out.csv("sales", "series.csv")
        history = history[history["series"].isin(names)]
        details = out.manifest("forecasts").get("details", {})
        first, last = details.get("first_period"), details.get("last_period")
        if first and last:  # the periods fitted: the partial edge weeks left out
            history = history[history["period"].between(first, last)]
    parts = []
    for name in names:
        f = forecasts[forecasts["series"] == name]
        h = history[history["series"] == name] if history is not None else None
        hist = (
            (h["period"].tolist(), h[value].tolist()) if h is not None and value in h else ([], [])
        )
        parts.append(
            _image(
                charts.forecast_chart(
                    hist,
                    (f["period"].tolist(), f["forecast"], f["lower"], f["upper"]),
                    title=f"{name}: {f['model'].iloc[0] if len(f) else ''}",
                    ylabel=str(value),
                    level=level,
                ),
                f"forecast of {name}",
            )
        )
    if out.has("forecasts", "backtest.csv"):
        backtest = out.csv("forecasts", "backtest.csv")
        columns = [
            c
            for c in ("series", "model", "mae", "naive_mae", "relative_mae", "mase", "coverage")
            if c in backtest.columns
        ]
        parts.append(
            _table(
                backtest[columns].head(_TOP_ROWS * 2),
                {
                    "mae": _num,
                    "naive_mae": _num,
                    "relative_mae": lambda v: _num(v, 3),
                    "mase": lambda v: _num(v, 3),
                    "coverage": _pct,
                },
                caption="Backtest against the seasonal naive (relative MAE < 1: better)",
            )
        )
    return "".join(parts)


def _churn(out):
    from models import report_charts as charts

    metrics = out.json("churn", "metrics.json")
    held = metrics.get("metrics", {})
    parts = [
        _pairs(
            [
                ("model", metrics.get("chosen", "")),
                ("held-out customers", _int(held.get("n_holdout", 0))),
                ("churn rate (held out)", _pct(held.get("base_rate", 0))),
                ("ROC-AUC: model", _num(held.get("roc_auc", 0), 3)),
                ("ROC-AUC: recency-only rule", _num(held.get("recency_only_roc_auc", 0), 3)),
                ("PR-AUC", _num(held.get("pr_auc", 0), 3)),
                ("Brier score", _num(held.get("brier", 0), 3)),
                ("top-decile lift", _num(held.get("top_decile_lift", 0), 2)),
            ]
        )
    ]
    if out.has("churn", "curves.csv"):
        curves = out.csv("churn", "curves.csv")
        for kind, xlabel, ylabel, title in (
            ("roc", "false positive rate", "true positive rate", "ROC (held-out customers)"),
            (
                "gain",
                "share of customers contacted",
                "share of churners found",
                "Cumulative gain (held-out customers)",
            ),
        ):
            found = {
                label: (c["x"].to_numpy(), c["y"].to_numpy())
                for label, name in (("model", f"{kind}_model"), ("recency only", f"{kind}_recency"))
                if len(c := curves[curves["curve"] == name])
            }
            if found:
                parts.append(
                    _image(
                        charts.curve_chart(found, xlabel=xlabel, ylabel=ylabel, title=title),
                        title,
                    )
                )
    if out.has("churn", "probability_histogram.csv"):
        h = out.csv("churn", "probability_histogram.csv")
        parts.append(
            _image(
                charts.histogram_chart(
                    h["lower"],
                    h["upper"],
                    h["count"],
                    xlabel="churn probability",
                    title="Churn probability of every scored customer",
                ),
                "churn probability distribution",
            )
        )
    warning = out.csv_head("churn", "early_warning.csv", _TOP_ROWS * 2)
    listed = out.manifest("churn").get("details", {}).get("early_warning", len(warning))
    parts.append(
        _table(
            warning.head(_TOP_ROWS * 2)[
                [
                    "rank",
                    "customer_id",
                    "churn_probability",
                    "value_at_risk",
                    "recency_days",
                    "orders",
                    "total_value",
                ]
            ],
            {
                "rank": _int,
                "churn_probability": _pct,
                "value_at_risk": _money,
                "recency_days": _int,
                "orders": _int,
                "total_value": _money,
            },
            caption=f"Early-warning list: top {len(warning)} of {listed:,} by value at risk",
        )
    )
    return "".join(parts)


def _clv(out):
    from models import report_charts as charts

    model = out.json("clv", "model.json")
    parts = [
        _pairs(
            [
                ("as of", model.get("as_of", "")),
                ("horizon (days)", _int(model.get("horizon_days", 0))),
                ("discount rate (monthly)", _pct(model.get("discount_rate", 0))),
            ]
        )
    ]
    if out.has("clv", "sample.csv"):
        sample = out.csv("clv", "sample.csv")
        parts.append(_note(f"Charts: a uniform sample of {len(sample):,} customers of the fit."))
        parts.append(_image(_p_alive_heatmap(charts, sample), "P(alive) by frequency and recency"))
        label = "customer lifetime value (log scale)"
        parts.append(_image(_histogram(charts, sample["clv"], label, log=True), "CLV"))
    if out.has("clv", "holdout.csv"):
        holdout = out.csv("clv", "holdout.csv")
        counts = ("customers", "actual_purchases")
        formats = {c: (_int if c in counts else _num) for c in holdout.columns if c != "frequency"}
        parts.append(_table(holdout, formats, caption="Holdout: predicted vs actual purchases"))
    else:
        parts.append(_note("No holdout table: run with --as-of and --clv-holdout-end for one."))
    return "".join(parts)


def _p_alive_heatmap(charts, sample):
    import numpy as np

    f_edges = [0, 1, 2, 3, 5, 10, 20, np.inf]
    f_labels = ["0", "1", "2", "3-4", "5-9", "10-19", "20+"]
    high = max(float(sample["T"].max()), 1.0) if len(sample) else 1.0
    r_edges = np.linspace(0, high, 7)
    r_labels = [f"{int(a)}-{int(b)}" for a, b in zip(r_edges[:-1], r_edges[1:], strict=True)]
    f_bin = np.clip(np.searchsorted(f_edges, sample["frequency"], side="right") - 1, 0, 6)
    r_bin = np.clip(np.searchsorted(r_edges, sample["recency"], side="right") - 1, 0, 5)
    total = np.zeros((7, 6))
    count = np.zeros((7, 6))
    np.add.at(total, (f_bin, r_bin), sample["p_alive"].to_numpy())
    np.add.at(count, (f_bin, r_bin), 1)
    mean = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
    cells = [[f"{mean[i, j]:.2f}" if count[i, j] else "" for j in range(6)] for i in range(7)]
    return charts.heatmap(
        np.nan_to_num(mean),
        f_labels,
        r_labels,
        xlabel="recency (days between first and last purchase)",
        ylabel="frequency (repeat purchases)",
        title="Mean P(alive) by frequency and recency",
        cells=cells,
    )


def _the_run(out):
    record = out.record
    if not record:
        return _note("No run record (_pipeline.json): this root was not made by crm-mr run.")
    parts = [
        _pairs(
            [
                ("status", record.get("status", "")),
                ("runner", record.get("runner", "")),
                ("output root", _safe(record.get("output_root", ""))),
                ("seconds", _num(record.get("timings", {}).get("seconds", 0), 1)),
                ("finished", record.get("timings", {}).get("finished", "")),
            ]
            + [
                (label, _safe(str(record[key])))
                for key, label in (("failed_stage", "failed stage"), ("error", "error"))
                if record.get(key)
            ]
        )
    ]
    stages = pd.DataFrame(
        [
            {
                "stage": e.get("stage"),
                "status": e.get("status"),
                "rows written": e.get("rows_written"),
                "seconds": e.get("seconds"),
            }
            for e in record.get("stages", [])
        ]
    )
    if len(stages):
        parts.append(
            _table(
                stages,
                {"rows written": _int, "seconds": lambda v: _num(v, 1)},
                caption="Seconds per stage",
            )
        )
    parameters = _safe(record.get("parameters", {}))
    parts.append(
        f"<h3>Parameters</h3><pre>{_e(json.dumps(parameters, indent=1, sort_keys=True))}</pre>"
    )
    versions = record.get("versions", {})
    parts.append(_pairs(sorted(versions.items())))
    return "".join(parts)


def _safe(value):
    """``value`` without credentials: secret-named keys redacted
    (:func:`models.manifest.redact`), passwords in URIs masked."""
    return redact_secrets(redact(value) if isinstance(value, dict) else value)


#: ``(anchor, title, stages it needs, section function)``, in the report's order.
SECTIONS = (
    ("glance", "At a glance", (), _at_a_glance),
    ("data", "Data quality", ("rfm",), _data_quality),
    ("value", "Customer value (RFM)", ("rfm_segments",), _customer_value),
    ("segments", "Segments (K-Means)", ("segments",), _segments),
    ("baskets", "Baskets", ("baskets",), _baskets),
    ("forecasts", "Forecasts", ("forecasts",), _forecasts),
    ("churn", "Churn", ("churn",), _churn),
    ("clv", "Customer lifetime value", ("clv",), _clv),
    ("run", "The run", (), _the_run),
)

#: Nothing but the page itself and its data: URIs (no request to the network, no script).
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
max-width:1100px;margin:0 auto;padding:0 16px 40px}
h1{font-size:24px;margin:18px 0 4px}h2{border-bottom:2px solid #4c72b0;padding-bottom:3px;
margin-top:34px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{text-align:left;background:#f3f5f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.pairs th{background:none;font-weight:600}
figure{margin:8px 0;display:inline-block;max-width:100%}img{max-width:100%;height:auto}
.note{color:#555;font-style:italic}.notrun{background:#fff4e5;border-left:4px solid #f0a020;
padding:8px 12px}pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto;
white-space:pre-wrap}
@media print{nav{display:none}body{max-width:none;font-size:11px}
section{break-inside:auto}figure,table{break-inside:avoid}h2{break-after:avoid}}
"""


def render_report(fs, root):
    """The report's HTML for the output root ``root`` on ``fs`` (see the module docstring)."""
    out = _Outputs(fs, root)
    body = []
    for anchor, title, stages, section in SECTIONS:
        reasons = [r for r in (out.why_not(s) for s in stages) if r]
        if reasons:
            content = f'<p class="notrun">Not shown: {_e("; ".join(reasons))}</p>'
        else:
            try:
                content = section(out)
            except Exception as e:  # noqa: BLE001 - one section must not break the report
                content = (
                    f'<p class="notrun">This section could not be drawn: '
                    f"{_e(type(e).__name__)}: {_e(_safe(str(e)))}</p>"
                )
        body.append(f'<section id="{anchor}"><h2>{_e(title)}</h2>{content}</section>')
    nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t, _, _ in SECTIONS)
    subtitle = _safe(out.record.get("output_root", fs.uri(root)))
    finished = out.record.get("timings", {}).get("finished", "")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>CRM report: {_e(subtitle)}</title><style>{_CSS}</style></head><body>"
        f'<h1>CRM report</h1><p class="note">{_e(subtitle)}'
        f"{' &middot; run finished ' + _e(finished) if finished else ''}</p>"
        f"<nav>{nav}</nav>{''.join(body)}</body></html>\n"
    )


def build_report(output_root, output=None):
    """Write the report of ``output_root`` (local path or ``hdfs://`` URI).

    Parameters
    ----------
    output_root : str
        A ``crm-mr run`` output root.
    output : str, optional
        Where to write it (local path or URI); default ``<output_root>/report.html``.
        An existing file there is replaced (atomically: readers see the old report or
        the new one).

    Returns
    -------
    (str, int)
        The URI written and its size in bytes.

    Raises
    ------
    hdfs_io.PathNotFound
        When ``output_root`` does not exist or holds neither ``_pipeline.json`` nor any
        stage's output.
    hdfs_io.UnsafePathError
        When ``output`` is a directory.
    """
    fs, root = get_filesystem(output_root)
    if not fs.exists(root) or not (
        fs.exists(join(root, RUN_RECORD)) or any(fs.exists(join(root, s)) for s in PUBLISHED)
    ):
        raise PathNotFound(
            f"{redact_uri(fs.uri(root))} is not a crm-mr output root: "
            f"no {RUN_RECORD} and no stage output ({', '.join(PUBLISHED)})"
        )
    text = render_report(fs, root).encode("utf-8")
    if output is None:
        target_fs, target = fs, join(root, REPORT_FILE)
    else:
        target_fs, target = get_filesystem(output)

    def write(path):
        target_fs.write(path, text)

    write_file_atomically(target_fs, target, write, overwrite=True)
    return target_fs.uri(target), len(text)
