"""The report's charts: matplotlib (Agg backend) drawn as deterministic SVG documents.

Every function takes small, already-summarised data (a histogram, a curve, a table of a
few hundred rows) and returns the SVG text of one figure. The SVG is the same for the same
data: matplotlib's ``svg.hashsalt`` is fixed and the ``Date`` metadata left out, so a
report built twice from the same outputs is the same file. Text is kept as glyph paths
(``svg.fonttype = 'path'``), so a chart needs no font when it is opened.
"""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

__all__ = [
    "bar_chart",
    "curve_chart",
    "forecast_chart",
    "heatmap",
    "histogram_chart",
    "lines_chart",
    "scatter_chart",
]

_STYLE = {
    "svg.hashsalt": "crm-mapreduce-report",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_SIZE = (6.4, 3.2)
_COLOURS = plt.get_cmap("tab10").colors


def _svg(fig):
    """The figure as SVG text (deterministic), closed."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def _figure(size=_SIZE):
    with matplotlib.rc_context(_STYLE):
        return plt.subplots(figsize=size)


def _thousands(axis):
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def bar_chart(labels, values, *, xlabel="", title=""):
    """Horizontal bars, one per label (the first on top)."""
    fig, ax = _figure((6.4, 0.3 * len(labels) + 0.9))
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions, values, color=_COLOURS[0])
    ax.set_yticks(positions, labels)
    for y, v in zip(positions, values, strict=True):
        ax.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _thousands(ax.xaxis)
    ax.grid(axis="y", visible=False)
    return _svg(fig)


def histogram_chart(lower, upper, counts, *, xlabel, ylabel="customers", title="", log_x=False):
    """Bars of a histogram given by its bin edges and counts."""
    fig, ax = _figure()
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    ax.bar(lower, counts, width=upper - lower, align="edge", color=_COLOURS[0], edgecolor="white")
    if log_x and lower.size and lower[0] > 0:
        ax.set_xscale("log")
    elif log_x:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _thousands(ax.yaxis)
    return _svg(fig)


def heatmap(matrix, row_labels, column_labels, *, xlabel, ylabel, title, cells=None):
    """A matrix as coloured cells, each annotated with ``cells`` (text) when given."""
    matrix = np.asarray(matrix, dtype=float)
    fig, ax = _figure((0.7 * len(column_labels) + 2.2, 0.45 * len(row_labels) + 1.2))
    image = ax.imshow(matrix, cmap="Blues", aspect="auto", origin="lower")
    ax.set_xticks(range(len(column_labels)), column_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.grid(False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if cells is not None:
        high = np.nanmax(matrix) if matrix.size else 0
        for (i, j), text in np.ndenumerate(np.asarray(cells, dtype=object)):
            dark = high > 0 and matrix[i, j] > 0.6 * high
            colour = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _svg(fig)


def scatter_chart(x, y, groups, *, xlabel, ylabel, title, log_y=False):
    """Points coloured by group (the legend names the groups, in first-seen order)."""
    fig, ax = _figure((6.4, 4.0))
    groups = np.asarray(groups, dtype=object)
    for index, name in enumerate(dict.fromkeys(groups.tolist())):
        mask = groups == name
        colour = _COLOURS[index % len(_COLOURS)]
        ax.scatter(np.asarray(x)[mask], np.asarray(y)[mask], s=6, color=colour, label=name)
    if log_y:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(markerscale=2, fontsize=7, loc="best")
    return _svg(fig)


def lines_chart(x, series, *, xlabel, title, secondary=None):
    """One line per ``{label: values}`` of ``series``; ``secondary`` on a right axis."""
    fig, ax = _figure()
    for index, (label, values) in enumerate(series.items()):
        ax.plot(x, values, marker="o", color=_COLOURS[index], label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(" / ".join(series))
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        right = ax.twinx()
        for index, (label, values) in enumerate(secondary.items(), start=len(series)):
            right.plot(x, values, marker="s", color=_COLOURS[index], label=label)
        right.set_ylabel(" / ".join(secondary))
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize=7, loc="best")
    return _svg(fig)


def curve_chart(curves, *, xlabel, ylabel, title, diagonal=True):
    """Curves ``{label: (x, y)}`` on the unit square, with the diagonal of chance."""
    fig, ax = _figure((4.6, 4.0))
    for index, (label, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, color=_COLOURS[index], label=label)
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return _svg(fig)


def forecast_chart(history, forecast, *, title, ylabel, level=0.95):
    """History ``(periods, values)`` and forecast ``(periods, mean, lower, upper)``, the
    bounds a ``level`` prediction interval."""
    fig, ax = _figure()
    periods, values = history
    ax.plot(np.asarray(periods, dtype="datetime64[D]"), values, color=_COLOURS[0], label="history")
    if forecast[0]:
        when, mean, lower, upper = forecast
        when = np.asarray(when, dtype="datetime64[D]")
        band = f"{level:.0%} interval"
        ax.fill_between(when, lower, upper, color=_COLOURS[1], alpha=0.25, label=band)
        ax.plot(when, mean, color=_COLOURS[1], label="forecast")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _thousands(ax.yaxis)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return _svg(fig)
