"""Command-line options every order-line job shares: how to read the input.

Standard library and mrjob only, like the jobs themselves.
"""

import json

from mr_jobs.records import PRESETS, InputSchema

__all__ = ["add_input_schema_args", "schema_from_options", "schema_to_args"]


def add_input_schema_args(job):
    """Register the input-format options on an :class:`mrjob.job.MRJob`.

    Call from ``configure_args()`` after ``super().configure_args()``. The options are
    passthrough options, so they reach the tasks on every runner.
    """
    job.add_passthru_arg(
        "--input-format",
        default="canonical",
        choices=sorted(PRESETS),
        help="a known input dialect (default: canonical CSV)",
    )
    job.add_passthru_arg(
        "--columns",
        default=None,
        help="comma-separated source column names in file order (default: the dialect's)",
    )
    job.add_passthru_arg(
        "--map",
        dest="column_map",
        action="append",
        default=[],
        metavar="ROLE=COLUMN",
        help="which source column plays a role, e.g. --map customer_id=cust (repeatable)",
    )
    job.add_passthru_arg(
        "--delimiter",
        default=None,
        help="',', 'tab', ';', '|' or 'whitespace' (default: the dialect's)",
    )
    job.add_passthru_arg(
        "--timestamp-format",
        default=None,
        help="'iso', 'epoch' or a strptime pattern such as %%Y%%m%%d (default: the dialect's)",
    )


def schema_from_options(options):
    """The :class:`~mr_jobs.records.InputSchema` that a job's parsed options describe.

    Raises
    ------
    mr_jobs.records.SchemaError
        When the options do not describe a usable schema.
    """
    preset = PRESETS[options.input_format]
    mapping = dict(preset.mapping) if options.columns is None else {}
    for item in options.column_map:
        role, sep, column = item.partition("=")
        if not sep:
            raise ValueError(f"--map {item!r} should look like ROLE=COLUMN")
        mapping[role.strip()] = column.strip()
    columns = preset.columns if options.columns is None else options.columns.split(",")
    return InputSchema(
        columns,
        mapping,
        delimiter=options.delimiter or preset.delimiter,
        timestamp_format=options.timestamp_format or preset.timestamp_format,
    )


def schema_to_args(schema):
    """Command-line arguments that make a job read input with ``schema``."""
    args = ["--columns", ",".join(schema.columns)]
    for role, column in sorted(schema.mapping.items()):
        if role != column:
            args += ["--map", f"{role}={column}"]
    delimiter = {"\t": "tab"}.get(schema.delimiter, schema.delimiter)
    args += ["--delimiter", delimiter, "--timestamp-format", schema.timestamp_format]
    return args


def dumps(value):
    """Compact JSON, as the jobs write it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
