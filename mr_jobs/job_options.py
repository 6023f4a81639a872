"""Command-line options every order-line job shares: how to read the input.

Standard library and mrjob only, like the jobs themselves.
"""

from mr_jobs.records import DEFAULT_DATE_WINDOW, PRESETS, InputSchema, SchemaError

__all__ = ["add_input_schema_args", "build_schema", "schema_from_options", "schema_to_args"]


def add_input_schema_args(add_argument):
    """Register the input-format options through ``add_argument``.

    Parameters
    ----------
    add_argument : callable
        ``job.add_passthru_arg`` in a job's ``configure_args()`` (passthrough options reach
        the tasks on every runner), or ``ArgumentParser.add_argument`` for the CLI.
    """
    add_argument(
        "--input-format",
        default="canonical",
        choices=sorted(PRESETS),
        help=(
            "input dialect (default: canonical CSV; the CLI reads its columns from the "
            "header); 'baskets' is basket_id,item lines, for basket jobs only"
        ),
    )
    add_argument(
        "--columns",
        default=None,
        help="comma-separated source column names in file order (default: the dialect's)",
    )
    add_argument(
        "--map",
        dest="column_map",
        action="append",
        default=[],
        metavar="ROLE=COLUMN",
        help="which source column plays a role, e.g. --map customer_id=cust (repeatable)",
    )
    add_argument(
        "--delimiter",
        default=None,
        help="',', 'tab', ';', '|' or 'whitespace' (default: the dialect's)",
    )
    add_argument(
        "--timestamp-format",
        default=None,
        help="'iso', 'epoch' or a strptime pattern such as %%Y%%m%%d (default: the dialect's)",
    )
    add_argument(
        "--date-window",
        default=None,
        metavar="FIRST..LAST",
        help=(
            "plausible dates, inclusive; lines dated outside are rejected as "
            f"date_out_of_range (default: {'..'.join(DEFAULT_DATE_WINDOW)})"
        ),
    )


def build_schema(
    input_format="canonical",
    columns=None,
    column_map=(),
    delimiter=None,
    timestamp_format=None,
    purpose=None,
    date_window=None,
):
    """The :class:`~mr_jobs.records.InputSchema` for a dialect and overrides.

    Parameters
    ----------
    input_format : str
        A key of :data:`mr_jobs.records.PRESETS`.
    columns : sequence of str or str, optional
        Source column names in file order (a comma-separated string is split); replaces
        the dialect's columns and its role mapping.
    column_map : iterable of str
        ``"ROLE=COLUMN"`` items.
    delimiter, timestamp_format : str, optional
        Override the dialect's.
    purpose : {"orders", "baskets"}, optional
        Which roles the schema must have (see :class:`~mr_jobs.records.InputSchema`);
        default: the dialect's (``baskets`` for the ``baskets`` preset, else ``orders``).
        Basket jobs pass ``"baskets"``, so they read full order lines too.
    date_window : str, optional
        ``FIRST..LAST`` (see :class:`~mr_jobs.records.InputSchema`); default the
        dialect's.

    Raises
    ------
    mr_jobs.records.SchemaError
        When the result is not a usable schema, naming the bad value.
    """
    if input_format not in PRESETS:
        raise SchemaError(f"input_format={input_format!r} is not one of {sorted(PRESETS)}")
    preset = PRESETS[input_format]
    if isinstance(columns, str):
        columns = columns.split(",")
    mapping = dict(preset.mapping) if columns is None else {}
    for item in column_map:
        role, sep, column = item.partition("=")
        if not sep:
            raise SchemaError(f"--map {item!r} should look like ROLE=COLUMN")
        mapping[role.strip()] = column.strip()
    return InputSchema(
        preset.columns if columns is None else columns,
        mapping,
        delimiter=delimiter or preset.delimiter,
        timestamp_format=timestamp_format or preset.timestamp_format,
        purpose=purpose or preset.purpose,
        date_window=date_window or preset.date_window,
    )


def schema_from_options(options, purpose=None):
    """The schema that a job's parsed options describe (see :func:`build_schema`)."""
    return build_schema(
        options.input_format,
        options.columns,
        options.column_map,
        options.delimiter,
        options.timestamp_format,
        purpose,
        options.date_window,
    )


def schema_to_args(schema):
    """Command-line arguments that make a job read input with ``schema``.

    A ``baskets`` schema also gets ``--input-format baskets`` (whose purpose it carries);
    basket jobs read full order-line schemas as they are.
    """
    args = ["--columns", ",".join(schema.columns)]
    if schema.purpose == "baskets" and not schema.is_order_lines:
        args = ["--input-format", "baskets", *args]
    for role, column in sorted(schema.mapping.items()):
        if role != column:
            args += ["--map", f"{role}={column}"]
    delimiter = {"\t": "tab"}.get(schema.delimiter, schema.delimiter)
    args += ["--delimiter", delimiter, "--timestamp-format", schema.timestamp_format]
    args += ["--date-window", "..".join(schema.date_window)]
    return args
