"""The ``crm-mr`` command: generate, import, rfm, baskets, segments, sales, forecast, churn,
run.

Every subcommand prints progress and a one-line summary per stage on standard error;
every failure is one line ``crm-mr: error: ...`` (the traceback of an unexpected error
only with ``-v``).

Exit status
-----------
===  ==================================================================================
0    success (a stage recorded as skipped, e.g. no customer to segment, is a success)
1    runtime failure: a job failed, storage was unreachable or refused an operation at
     run time, an OSError (disk full, permission denied), a line-accounting mismatch,
     a data error found after the first job was launched, or an unexpected error
2    bad arguments or a refused path, found before any work: an invalid option, a
     missing input, an existing output without ``--overwrite``, an output that overlaps
     an input or another output (:func:`hdfs_io.paths.check_disjoint`), a refused
     ``--resume``
130  interrupted (SIGINT, Ctrl-C); staging directories and mrjob's temporary
     directories are removed on the way out
===  ==================================================================================

A ``ValueError`` (or a missing input) counts as bad arguments when no job was launched yet
(:func:`models.job_runner.jobs_started`), as a runtime failure afterwards.
"""

import argparse
import logging
import os
import sys

from hdfs_io import PathExists, PathNotFound, StorageError, UnsafePathError, redact_uri
from hdfs_io.paths import check_disjoint
from models.job_runner import RUNNERS, AccountingError, jobs_started
from models.progress import Reporter
from mr_jobs.job_options import add_input_schema_args
from mr_jobs.records import PRESETS, SchemaError
from mr_jobs.sales import MAX_PERIODS

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_INTERRUPTED"]

PROG = "crm-mr"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _add_runner_args(p):
    p.add_argument(
        "-r",
        "--runner",
        choices=RUNNERS,
        default="inline",
        help="mrjob runner (default: inline)",
    )
    p.add_argument(
        "--mrjob-conf",
        action="append",
        default=None,
        metavar="PATH",
        help="mrjob config file (repeatable); default: mrjob's own lookup "
        "($MRJOB_CONF, ~/.mrjob.conf, /etc/mrjob.conf)",
    )
    p.add_argument("--no-mrjob-conf", action="store_true", help="read no mrjob config file at all")


def _add_rfm_args(p):
    p.add_argument("--as-of", help="YYYY-MM-DD (default: the latest purchase date in the input)")
    p.add_argument(
        "--period",
        choices=["D", "W"],
        default="D",
        help="period of the lifetimes-compatible columns (default: D)",
    )


def _add_basket_args(p):
    from models.baskets_stage import DEFAULTS

    p.add_argument(
        "--min-support",
        default=DEFAULTS["min_support"],
        help="least share of baskets holding a frequent item, pair or itemset "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--min-confidence",
        default=DEFAULTS["min_confidence"],
        help="least confidence of a rule; never changes what is frequent (default: %(default)s)",
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=DEFAULTS["min_count"],
        help="least number of baskets holding a frequent item or pair (default: %(default)s)",
    )
    p.add_argument(
        "--max-basket-items",
        type=int,
        default=DEFAULTS["max_basket_items"],
        help="baskets with more distinct items are left out and counted (default: %(default)s)",
    )
    p.add_argument(
        "--max-itemset-size",
        type=int,
        default=DEFAULTS["max_itemset_size"],
        help="largest frequent itemset mined; 0 for no limit (default: %(default)s)",
    )
    p.add_argument(
        "--no-itemsets",
        action="store_true",
        help="pairs only: skip the frequent itemsets of size 3 and more (two SON runs)",
    )
    p.add_argument(
        "--top-n",
        type=int,
        default=DEFAULTS["top_n"],
        help="recommendations per item and per customer (default: %(default)s)",
    )
    p.add_argument(
        "--rank-by",
        choices=["lift", "confidence", "leverage"],
        default=DEFAULTS["rank_by"],
        help="how items recommended with an item are ranked (default: %(default)s)",
    )


def _basket_options(args):
    return {
        "min_support": args.min_support,
        "min_confidence": args.min_confidence,
        "min_count": args.min_count,
        "max_basket_items": args.max_basket_items,
        "itemsets": not args.no_itemsets,
        "max_itemset_size": args.max_itemset_size or None,
        "top_n": args.top_n,
        "rank_by": args.rank_by,
    }


def _add_kmeans_args(p, seed_flag):
    from models.kmeans_stage import DEFAULTS

    p.add_argument(
        "--k",
        default=DEFAULTS["k"],
        help="number of segments: an int, a range like 4-8 or a list like 4,6,8; with "
        "several, the best silhouette picks one (default: %(default)s)",
    )
    p.add_argument(
        "--features",
        default=DEFAULTS["features"],
        help="comma-separated customer features (recency, frequency, monetary, order_value, "
        "tenure, order_rate, basket_size, line_value, units_per_line; see the README) "
        "(default: %(default)s)",
    )
    p.add_argument(
        seed_flag,
        dest="kmeans_seed",
        type=int,
        default=DEFAULTS["seed"],
        help="seed of the sample and of k-means++ (default: %(default)s)",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=DEFAULTS["tol"],
        help="stop when the squared centre shift <= tol x mean feature variance "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=DEFAULTS["max_iter"],
        help="most Lloyd iterations (MapReduce runs) per k (default: %(default)s)",
    )
    p.add_argument(
        "--n-init",
        type=int,
        default=DEFAULTS["n_init"],
        help="k-means++ seedings tried on the sample (default: %(default)s)",
    )
    p.add_argument(
        "--sample-size",
        type=int,
        default=DEFAULTS["sample_size"],
        help="customers in the uniform sample for seeding and silhouettes (default: %(default)s)",
    )


def _kmeans_options(args):
    return {
        "k": args.k,
        "features": args.features,
        "seed": args.kmeans_seed,
        "tol": args.tol,
        "max_iter": args.max_iter,
        "n_init": args.n_init,
        "sample_size": args.sample_size,
    }


def _add_sales_args(p, period_flag, top_n_flag, max_periods_flag):
    p.add_argument(
        period_flag,
        dest="sales_period",
        choices=["D", "W"],
        default="W",
        help="sales series period: D (day) or W (Monday-Sunday week) (default: W)",
    )
    p.add_argument(
        top_n_flag,
        dest="sales_top_n",
        type=int,
        default=20,
        help="items with a sales series of their own; the rest make __other__ (default: 20)",
    )
    p.add_argument(
        max_periods_flag,
        dest="sales_max_periods",
        type=int,
        default=MAX_PERIODS,
        help=(
            "the most periods a sales series may span; a longer span is refused "
            f"(default: {MAX_PERIODS:,})"
        ),
    )


def _sales_options(args):
    return {
        "period": args.sales_period,
        "top_n": args.sales_top_n,
        "max_periods": args.sales_max_periods,
    }


def _add_forecast_args(p, prefix):
    p.add_argument(
        "--horizon",
        type=int,
        help="periods to forecast (default: 28 days or 8 weeks, as the sales period)",
    )
    p.add_argument(
        f"--{prefix}value",
        dest="forecast_value",
        choices=["revenue", "quantity", "orders", "customers"],
        default="revenue",
        help="the measure forecast (default: revenue)",
    )
    p.add_argument(
        f"--{prefix}backtest",
        dest="backtest_periods",
        type=int,
        help="periods held out for the backtest, 0 for none (default: 28 days or 8 weeks)",
    )
    p.add_argument(
        f"--{prefix}processes",
        dest="forecast_processes",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes fitting the series (default: %(default)s)",
    )


def _forecast_options(args):
    options = {"value": args.forecast_value, "processes": args.forecast_processes}
    if args.horizon is not None:
        options["horizon"] = args.horizon
    if args.backtest_periods is not None:
        options["backtest_periods"] = args.backtest_periods
    return options


def _add_churn_args(p, prefix):
    p.add_argument(
        f"--{prefix}horizon-days",
        dest="churn_horizon_days",
        type=int,
        default=90,
        help="churned = no purchase within this many days after the cutoff; at most 3,650 "
        "(default: 90)",
    )
    p.add_argument(
        f"--{prefix}cutoff",
        dest="churn_cutoff",
        metavar="YYYY-MM-DD",
        help="training cutoff (default: the latest purchase date minus the horizon)",
    )
    p.add_argument(
        f"--{prefix}seed",
        dest="churn_seed",
        type=int,
        default=0,
        help="seed of the split, the folds and the tree ensemble (default: 0)",
    )
    from mr_jobs.churn_rules import DEFAULT_MAX_TRAIN

    p.add_argument(
        f"--{prefix}max-train",
        dest="churn_max_train",
        type=int,
        default=DEFAULT_MAX_TRAIN,
        help="fit on at most this many labelled customers, a seeded sample by a hash of the "
        f"id (default: {DEFAULT_MAX_TRAIN:,})",
    )


def _churn_options(args):
    options = {
        "horizon_days": args.churn_horizon_days,
        "seed": args.churn_seed,
        "churn_max_train": args.churn_max_train,
    }
    if args.churn_cutoff is not None:
        options["cutoff"] = args.churn_cutoff
    return options


def build_parser():
    """The argument parser of ``crm-mr``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Customer-relationship analytics with MapReduce (mrjob)."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="only stage summaries")
    common.add_argument("-v", "--verbose", action="store_true", help="show mrjob's own log")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub_parser = sub.add_parser

    def add_parser(name, **kwargs):
        return sub_parser(name, parents=[common], **kwargs)

    sub.add_parser = add_parser

    g = sub.add_parser("generate", help="write the built-in synthetic order-line log")
    g.add_argument(
        "-o",
        "--output",
        default="crm-output/data/transactions.csv",
        help="CSV to write (default: %(default)s); truth files go beside it",
    )
    size = g.add_mutually_exclusive_group()
    size.add_argument("--customers", type=int, help="number of customers (default: 4,000)")
    size.add_argument("--lines", type=int, help="approximate number of lines instead")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--start", default="2023-01-01", help="first day (default: %(default)s)")
    g.add_argument("--days", type=int, default=730, help="days covered (default: %(default)s)")
    g.add_argument(
        "--dirty-rate",
        type=float,
        default=0.002,
        help="share of deliberately bad lines (default: %(default)s)",
    )
    g.add_argument("--overwrite", action="store_true")

    i = sub.add_parser("import", help="convert a known public log into canonical CSV")
    i.add_argument(
        "--format",
        required=True,
        # order-line dialects only: basket lines have no customer or value to import
        choices=sorted(n for n, s in PRESETS.items() if n != "canonical" and s.is_order_lines),
    )
    i.add_argument("source", help="the source log (local or hdfs://)")
    i.add_argument("destination", help="the canonical CSV to write")
    i.add_argument("--overwrite", action="store_true")

    r = sub.add_parser("rfm", help="per-customer RFM (and optionally segments)")
    r.add_argument("inputs", nargs="+", help="order-line files or directories")
    r.add_argument("-o", "--output", required=True, help="directory to publish RFM rows to")
    r.add_argument("--segments", metavar="DIR", help="also publish scored segments here")
    r.add_argument("--overwrite", action="store_true")
    _add_runner_args(r)
    add_input_schema_args(r.add_argument)
    _add_rfm_args(r)

    b = sub.add_parser(
        "baskets", help="co-occurrence, association rules, frequent itemsets, recommendations"
    )
    b.add_argument("inputs", nargs="+", help="basket or order-line files or directories")
    b.add_argument("-o", "--output", required=True, help="directory to publish the rules to")
    b.add_argument(
        "--recommendations",
        metavar="DIR",
        help="also publish item-to-item and per-customer recommendations here",
    )
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--as-of", help="YYYY-MM-DD: leave out the order lines after it (default: none)")
    _add_runner_args(b)
    add_input_schema_args(b.add_argument)
    _add_basket_args(b)

    s = sub.add_parser(
        "segments", help="customer segments by distributed K-Means over the RFM rows"
    )
    s.add_argument(
        "inputs",
        nargs="+",
        help="RFM rows: the output directory of `crm-mr rfm` (or of its --segments, "
        "which adds the overlap with the RFM segments)",
    )
    s.add_argument("-o", "--output", required=True, help="directory to publish segments to")
    s.add_argument("--overwrite", action="store_true")
    _add_runner_args(s)
    _add_kmeans_args(s, "--seed")

    sa = sub.add_parser("sales", help="sales series per day or week, total and top-N items")
    sa.add_argument("inputs", nargs="+", help="order-line files or directories")
    sa.add_argument("-o", "--output", required=True, help="directory to publish the series to")
    sa.add_argument("--overwrite", action="store_true")
    sa.add_argument("--as-of", help="YYYY-MM-DD: leave out the lines after it (default: none)")
    _add_runner_args(sa)
    add_input_schema_args(sa.add_argument)
    _add_sales_args(sa, "--period", "--top-n", "--max-periods")

    f = sub.add_parser("forecast", help="ARIMA forecasts and backtests of published sales series")
    f.add_argument("sales", help="the output directory of `crm-mr sales` (local or hdfs://)")
    f.add_argument("-o", "--output", required=True, help="directory to publish forecasts to")
    f.add_argument("--overwrite", action="store_true")
    f.add_argument(
        "--data-span",
        nargs=2,
        metavar=("FIRST_DAY", "LAST_DAY"),
        help="the log's first and last days: a partial first or last week is not fitted",
    )
    _add_forecast_args(f, "")

    c = sub.add_parser("churn", help="train a churn model, score every customer, early warning")
    c.add_argument("inputs", nargs="+", help="order-line files or directories")
    c.add_argument("-o", "--output", required=True, help="directory to publish the scores to")
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--as-of", help="score customers as of YYYY-MM-DD (default: latest purchase)")
    _add_runner_args(c)
    add_input_schema_args(c.add_argument)
    _add_churn_args(c, "")

    run = sub.add_parser("run", help="the whole pipeline (default: on built-in data)")
    run.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        help="order-line file or directory (repeatable); default: generate built-in data",
    )
    run.add_argument(
        "-o", "--output-root", default="crm-output", help="results root (default: %(default)s)"
    )
    run.add_argument("--overwrite", action="store_true", help="replace existing results")
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip the stages a previous run with the same parameters completed",
    )
    run.add_argument("--customers", type=int, help="built-in data: number of customers")
    run.add_argument("--lines", type=int, help="built-in data: approximate number of lines")
    run.add_argument("--seed", type=int, default=42, help="built-in data: seed")
    _add_runner_args(run)
    add_input_schema_args(run.add_argument)
    _add_rfm_args(run)
    _add_basket_args(run)
    _add_kmeans_args(run, "--kmeans-seed")
    _add_sales_args(run, "--sales-period", "--sales-top-n", "--sales-max-periods")
    _add_forecast_args(run, "forecast-")
    _add_churn_args(run, "churn-")
    return parser


def _conf_paths(args):
    if args.no_mrjob_conf:
        return []
    return args.mrjob_conf


def _schema(args, inputs):
    from models.inputs import detect_schema

    return detect_schema(
        inputs,
        args.input_format,
        args.columns,
        args.column_map,
        args.delimiter,
        args.timestamp_format,
        args.date_window,
    )


def _cmd_generate(args, reporter):
    from models.data_stage import data_files, generate_data

    options = {
        "customers": args.customers,
        "lines": args.lines,
        "seed": args.seed,
        "start": args.start,
        "days": args.days,
        "dirty_rate": args.dirty_rate,
    }
    generate_data(args.output, options, overwrite=args.overwrite, reporter=reporter)
    reporter.progress("generate")(f"wrote {', '.join(data_files(args.output))}")


def _cmd_import(args, reporter):
    from models.importer import import_log

    check_disjoint([args.source], [args.destination])
    import_log(
        args.source,
        args.destination,
        PRESETS[args.format],
        overwrite=args.overwrite,
        reporter=reporter,
    )


def _cmd_rfm(args, reporter):
    from models.rfm_stage import run_rfm_stage
    from models.segments_stage import run_segments_stage

    check_disjoint(args.inputs, [args.output, args.segments])
    if args.segments:
        from hdfs_io import check_can_publish, get_filesystem

        check_can_publish(*get_filesystem(args.segments), args.overwrite)
    run_rfm_stage(
        args.inputs,
        args.output,
        schema=_schema(args, args.inputs),
        runner=args.runner,
        as_of=args.as_of,
        period=args.period,
        overwrite=args.overwrite,
        conf_paths=_conf_paths(args),
        reporter=reporter,
    )
    if args.segments:
        run_segments_stage(
            args.output,
            args.segments,
            runner=args.runner,
            conf_paths=_conf_paths(args),
            overwrite=args.overwrite,
            reporter=reporter,
        )


def _cmd_baskets(args, reporter):
    from models.baskets_stage import run_baskets_stage

    check_disjoint(args.inputs, [args.output, args.recommendations])
    run_baskets_stage(
        args.inputs,
        args.output,
        schema=_schema(args, args.inputs),
        recommendations_path=args.recommendations,
        as_of=args.as_of,
        runner=args.runner,
        overwrite=args.overwrite,
        conf_paths=_conf_paths(args),
        reporter=reporter,
        **_basket_options(args),
    )


def _cmd_segments(args, reporter):
    from models.kmeans_stage import run_kmeans_stage

    check_disjoint(args.inputs, [args.output])
    run_kmeans_stage(
        args.inputs,
        args.output,
        runner=args.runner,
        conf_paths=_conf_paths(args),
        overwrite=args.overwrite,
        reporter=reporter,
        **_kmeans_options(args),
    )


def _cmd_sales(args, reporter):
    from models.sales_stage import run_sales_stage

    check_disjoint(args.inputs, [args.output])
    run_sales_stage(
        args.inputs,
        args.output,
        schema=_schema(args, args.inputs),
        as_of=args.as_of,
        runner=args.runner,
        conf_paths=_conf_paths(args),
        overwrite=args.overwrite,
        reporter=reporter,
        **_sales_options(args),
    )


def _cmd_forecast(args, reporter):
    from models.forecast_stage import read_sales_series, run_forecast_stage

    check_disjoint([args.sales], [args.output])
    series, period = read_sales_series(args.sales)
    run_forecast_stage(
        series,
        args.output,
        period=period,
        data_span=tuple(args.data_span) if args.data_span else None,
        source=args.sales,
        overwrite=args.overwrite,
        reporter=reporter,
        **_forecast_options(args),
    )


def _cmd_churn(args, reporter):
    from models.churn_stage import run_churn_stage

    check_disjoint(args.inputs, [args.output])
    run_churn_stage(
        args.inputs,
        args.output,
        schema=_schema(args, args.inputs),
        as_of=args.as_of,
        runner=args.runner,
        conf_paths=_conf_paths(args),
        overwrite=args.overwrite,
        reporter=reporter,
        **_churn_options(args),
    )


def _cmd_run(args, reporter):
    from models.pipeline import run_pipeline

    generate_options = {"seed": args.seed}
    if args.customers is not None:
        generate_options["customers"] = args.customers
    if args.lines is not None:
        generate_options["lines"] = args.lines
    run_pipeline(
        args.output_root,
        inputs=args.inputs,
        schema=_schema(args, args.inputs) if args.inputs else None,
        runner=args.runner,
        as_of=args.as_of,
        period=args.period,
        overwrite=args.overwrite,
        resume=args.resume,
        conf_paths=_conf_paths(args),
        generate_options=generate_options,
        basket_options=_basket_options(args),
        kmeans_options=_kmeans_options(args),
        sales_options=_sales_options(args),
        forecast_options=_forecast_options(args),
        churn_options=_churn_options(args),
        reporter=reporter,
    )


_COMMANDS = {
    "generate": _cmd_generate,
    "import": _cmd_import,
    "rfm": _cmd_rfm,
    "baskets": _cmd_baskets,
    "segments": _cmd_segments,
    "sales": _cmd_sales,
    "forecast": _cmd_forecast,
    "churn": _cmd_churn,
    "run": _cmd_run,
}


def main(argv=None):
    """Entry point of ``crm-mr``; returns the exit code (see the module docstring)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # "No configs specified for inline runner" is noise when none was asked for
        logging.getLogger("mrjob.conf").setLevel(logging.ERROR)
    reporter = Reporter(quiet=args.quiet)
    _jobs_at_start[0] = jobs_started()
    try:
        _COMMANDS[args.command](args, reporter)
    except Exception as e:
        code, message = _classify(e)
        print(f"{PROG}: error: {redact_uri(message)}", file=sys.stderr)
        if args.verbose and code == EXIT_FAILURE:
            import traceback

            traceback.print_exc(file=sys.stderr)
        return code
    return EXIT_OK


def _classify(error):
    """``(exit status, one-line message)`` for an error (see the module docstring)."""
    from mrjob.step import StepFailedException

    before_work = jobs_started() == _jobs_at_start[0]
    if isinstance(error, PathExists | UnsafePathError):
        return EXIT_USAGE, str(error)
    if isinstance(error, PathNotFound):
        return (EXIT_USAGE if before_work else EXIT_FAILURE), str(error)
    if isinstance(error, StorageError | AccountingError):
        return EXIT_FAILURE, str(error)
    if isinstance(error, StepFailedException):
        return EXIT_FAILURE, f"the MapReduce job failed: {error}"
    if isinstance(error, SchemaError | ValueError):
        return (EXIT_USAGE if before_work else EXIT_FAILURE), _one_line(error)
    return EXIT_FAILURE, f"{type(error).__name__}: {_one_line(error)}"


def _one_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_jobs_at_start = [0]  # jobs_started() when main() began (main may run more than once)


if __name__ == "__main__":
    sys.exit(main())
