"""The ``crm-mr`` command: generate, import, rfm, baskets, segments, sales, forecast, churn,
clv, run, report.

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
import sys

from hdfs_io import PathExists, PathNotFound, StorageError, UnsafePathError, redact_uri
from hdfs_io.paths import check_disjoint
from models.job_runner import RUNNERS, AccountingError, jobs_started
from models.progress import Reporter
from models.stages import REGISTRY, by_name
from mr_jobs.job_options import add_input_schema_args
from mr_jobs.records import PRESETS, SchemaError

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


def _add_stage_args(p, name, *, in_run=False):
    """The options of stage ``name``, declared once by the stage (:mod:`models.stages`)."""
    by_name(name).add_options(p, in_run=in_run)


def _stage_options(args, name):
    """The keyword arguments of stage ``name``'s runner from the parsed ``args``."""
    return by_name(name).options_from_args(args)


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

    for add_command in (
        _add_generate_command,
        _add_import_command,
        _add_rfm_command,
        _add_baskets_command,
        _add_segments_command,
        _add_sales_command,
        _add_forecast_command,
        _add_churn_command,
        _add_clv_command,
        _add_run_command,
        _add_report_command,
    ):
        add_command(sub)
    return parser


def _add_generate_command(sub):
    """``crm-mr generate``: the built-in synthetic log."""
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


def _add_import_command(sub):
    """``crm-mr import``: a known public log as canonical CSV."""
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


def _add_rfm_command(sub):
    """``crm-mr rfm``: per-customer RFM rows (and the RFM segments)."""
    r = sub.add_parser("rfm", help="per-customer RFM (and optionally segments)")
    r.add_argument("inputs", nargs="+", help="order-line files or directories")
    r.add_argument("-o", "--output", required=True, help="directory to publish RFM rows to")
    r.add_argument("--segments", metavar="DIR", help="also publish scored segments here")
    r.add_argument("--overwrite", action="store_true")
    _add_runner_args(r)
    add_input_schema_args(r.add_argument)
    _add_rfm_args(r)


def _add_baskets_command(sub):
    """``crm-mr baskets``: rules, itemsets and recommendations."""
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
    _add_stage_args(b, "baskets")


def _add_segments_command(sub):
    """``crm-mr segments``: K-Means segments over the RFM rows."""
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
    _add_stage_args(s, "segments")


def _add_sales_command(sub):
    """``crm-mr sales``: sales series per period."""
    sa = sub.add_parser("sales", help="sales series per day or week, total and top-N items")
    sa.add_argument("inputs", nargs="+", help="order-line files or directories")
    sa.add_argument("-o", "--output", required=True, help="directory to publish the series to")
    sa.add_argument("--overwrite", action="store_true")
    sa.add_argument("--as-of", help="YYYY-MM-DD: leave out the lines after it (default: none)")
    _add_runner_args(sa)
    add_input_schema_args(sa.add_argument)
    _add_stage_args(sa, "sales")


def _add_forecast_command(sub):
    """``crm-mr forecast``: forecasts of published sales series."""
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
    _add_runner_args(f)
    _add_stage_args(f, "forecasts")


def _add_churn_command(sub):
    """``crm-mr churn``: the churn model, scores and early warning."""
    c = sub.add_parser("churn", help="train a churn model, score every customer, early warning")
    c.add_argument("inputs", nargs="+", help="order-line files or directories")
    c.add_argument("-o", "--output", required=True, help="directory to publish the scores to")
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--as-of", help="score customers as of YYYY-MM-DD (default: latest purchase)")
    _add_runner_args(c)
    add_input_schema_args(c.add_argument)
    _add_stage_args(c, "churn")


def _add_clv_command(sub):
    """``crm-mr clv``: BG/NBD and Gamma-Gamma customer lifetime value."""
    c = sub.add_parser("clv", help="customer lifetime value: P(alive), expected purchases, CLV")
    c.add_argument("inputs", nargs="+", help="order-line files or directories")
    c.add_argument("-o", "--output", required=True, help="directory to publish the values to")
    c.add_argument("--overwrite", action="store_true")
    c.add_argument(
        "--as-of", help="last day of the calibration, YYYY-MM-DD (default: latest purchase)"
    )
    _add_runner_args(c)
    add_input_schema_args(c.add_argument)
    _add_stage_args(c, "clv")


def _add_run_command(sub):
    """``crm-mr run``: the whole pipeline, with every stage's options from the registry."""
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
    run.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write report.html at the end of the run",
    )
    for stage in REGISTRY:
        stage.add_options(run, in_run=True)


def _add_report_command(sub):
    """``crm-mr report``: the HTML report of an existing output root."""
    r = sub.add_parser("report", help="rebuild the HTML report of a run's output root")
    r.add_argument("output_root", metavar="ROOT", help="a crm-mr run output root (or hdfs://)")
    r.add_argument(
        "-o",
        "--output",
        help="where to write the report (default: ROOT/report.html; a local path or hdfs://)",
    )


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
        **_stage_options(args, "baskets"),
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
        **_stage_options(args, "segments"),
    )


def _cmd_forecast(args, reporter):
    from models.forecast_stage import read_sales_series, run_forecast_stage

    check_disjoint([args.sales], [args.output])
    if args.runner == "inline":  # the driver's process pool
        series, period = read_sales_series(args.sales)
        jobs = {"period": period}
    else:  # the forecasts job on the cluster's tasks
        series, jobs = args.sales, {"runner": args.runner, "conf_paths": _conf_paths(args)}
    run_forecast_stage(
        series,
        args.output,
        **jobs,
        data_span=tuple(args.data_span) if args.data_span else None,
        source=args.sales,
        overwrite=args.overwrite,
        reporter=reporter,
        **_stage_options(args, "forecasts"),
    )


def _cmd_on_lines(stage):
    """The command of a stage that reads order lines: ``crm-mr sales``, ``churn``, ``clv``
    (the stage's runner from the registry, with its options)."""

    def command(args, reporter):
        check_disjoint(args.inputs, [args.output])
        by_name(stage).runner_function()(
            args.inputs,
            args.output,
            schema=_schema(args, args.inputs),
            as_of=args.as_of,
            runner=args.runner,
            conf_paths=_conf_paths(args),
            overwrite=args.overwrite,
            reporter=reporter,
            **_stage_options(args, stage),
        )

    return command


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
        stage_options={
            "generate": generate_options,
            **{s.options_key: s.options_from_args(args) for s in REGISTRY if s.options},
        },
        reporter=reporter,
        report=args.report,
    )


def _cmd_report(args, reporter):
    from models.report import build_report

    say = reporter.progress("report")
    uri, size = build_report(args.output_root, args.output)
    say(f"wrote {uri} ({size:,} bytes)")


_COMMANDS = {
    "generate": _cmd_generate,
    "import": _cmd_import,
    "rfm": _cmd_rfm,
    "baskets": _cmd_baskets,
    "segments": _cmd_segments,
    "sales": _cmd_on_lines("sales"),
    "forecast": _cmd_forecast,
    "churn": _cmd_on_lines("churn"),
    "clv": _cmd_on_lines("clv"),
    "run": _cmd_run,
    "report": _cmd_report,
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
