"""The shared order-line parser: accepted records, exact values, each rejection reason."""

import datetime

import pytest

from mr_jobs.job_options import build_schema, schema_to_args
from mr_jobs.records import (
    PRESETS,
    REJECT_REASONS,
    InputSchema,
    SchemaError,
    format_micros,
    format_seconds,
    make_line_parser,
    parse_as_of,
    parse_decimal_micros,
)

CANONICAL = PRESETS["canonical"]


def seconds(y, m, d, hh=0, mm=0, ss=0):
    return datetime.datetime(y, m, d, hh, mm, ss).toordinal() * 86400 + hh * 3600 + mm * 60 + ss


def parse(line, schema=CANONICAL, **kwargs):
    return make_line_parser(schema, **kwargs)(
        line.encode("utf-8") if isinstance(line, str) else line
    )


@pytest.mark.parametrize(
    "text, micros",
    [
        ("12", 12_000_000),
        ("11.77", 11_770_000),
        ("0.000001", 1),
        ("-3.5", -3_500_000),
        ("+.5", 500_000),
        ("7.", 7_000_000),
        (" 2.50 ", 2_500_000),
        ("1e3", 1_000_000_000),
        ("0.0000005", 0),  # half-to-even rounds down to the even 0
        ("0.0000015", 2),  # and up to the even 2
        ("999999999999999.999999", 999999999999999999999),
        ("1.5e2", 150_000_000),
        ("25E-7", 2),
        ("0e999999", 0),
        ("-0.0", 0),
        ("1e-999999", 0),
    ],
)
def test_decimals_parse_exactly_into_micros(text, micros):
    assert parse_decimal_micros(text) == micros


@pytest.mark.parametrize(
    "text",
    [
        *["", " ", "n/a", "1,5", "nan", "inf", "-", ".", "1.2.3", "١٢", "e5", "1e", "1e+"],
        *["1_000", "0x10", "1e999999999", "1e309", "1e15", "-1000000000000000", "1" * 5000],
        *["1e5000", "\u00a05", "5\u00a0", "1" + "0" * 39 + "e-40", "１２"],
    ],
)
def test_non_numbers_parse_to_none(text):
    assert parse_decimal_micros(text) is None


def test_format_micros_gives_ints_for_whole_values_and_nearest_floats_otherwise():
    assert format_micros(3_000_000) == 3 and isinstance(format_micros(3_000_000), int)
    assert format_micros(11_770_000) == 11.77
    assert format_micros(1) == 1e-06


def test_a_canonical_line_parses_to_a_record():
    record = parse("O1,C01,2023-05-06T10:20:30,I9,3,2.50")
    assert record == ("C01", "O1", seconds(2023, 5, 6, 10, 20, 30), "I9", 3_000_000, 7_500_000)


def test_quantity_times_price_is_exact_for_fractional_quantities():
    record = parse("O1,C01,2023-05-06,I9,0.333,3.33")
    assert record[5] == 1_108_890  # 0.333 * 3.33 = 1.10889 exactly


def test_quoted_fields_may_hold_the_delimiter_and_unicode():
    record = parse('O1,"Smith, J",2023-05-06,"Café, crème",1,4.20')
    assert record[0] == "Smith, J" and record[3] == "Café, crème"


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2023-05-06", seconds(2023, 5, 6)),
        ("2023-05-06 07:08:09", seconds(2023, 5, 6, 7, 8, 9)),
        ("2023-05-06T07:08", seconds(2023, 5, 6, 7, 8)),
        ("2023-05-06T07:08:09.999", seconds(2023, 5, 6, 7, 8, 9)),
        ("2023-05-06T07:08:09Z", seconds(2023, 5, 6, 7, 8, 9)),
        ("2023-05-06T01:00:00+02:00", seconds(2023, 5, 5, 23, 0, 0)),
    ],
)
def test_iso_timestamps_in_several_shapes(stamp, expected):
    assert parse(f"O1,C1,{stamp},I1,1,1")[2] == expected


def test_format_seconds_round_trips_a_timestamp():
    assert format_seconds(seconds(1997, 1, 1, 23, 59, 58)) == "1997-01-01T23:59:58"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("order_id,customer_id,timestamp,item_id,quantity,unit_price", "header"),
        ("\ufefforder_id,customer_id,timestamp,item_id,quantity,unit_price", "header"),
        ("", "blank"),
        ("   ", "blank"),
        (b"O1,C1,2023-01-01,I\xff,1,1", "undecodable"),
        ("O1,C1,2023-01-01,I1,1", "column_count"),
        ("O1,C1,2023-01-01,I1,1,1,1", "column_count"),
        ("O1,,2023-01-01,I1,1,1", "missing_customer"),
        (",C1,2023-01-01,I1,1,1", "missing_order"),
        ("O1,C1,2023-02-30,I1,1,1", "bad_timestamp"),
        ("O1,C1,2023-13-01T10:00:00,I1,1,1", "bad_timestamp"),
        ("O1,C1,2023-01-01T25:00:00,I1,1,1", "bad_timestamp"),
        ("O1,C1,yesterday,I1,1,1", "bad_timestamp"),
        ("O1,C1,2023-01-01,I1,two,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,0,1", "zero_quantity"),
        ("O1,C1,2023-01-01,I1,-1,1", "return"),
        ("O1,C1,2023-01-01,I1,1,n/a", "bad_price"),
        ("O1,C1,2023-01-01,I1,1,-0.01", "bad_price"),
        ("O1,C1,2023-01-01,I1,1,nan", "bad_price"),
    ],
)
def test_each_bad_line_is_rejected_with_its_reason(line, reason):
    assert parse(line) == reason
    assert reason in REJECT_REASONS


def test_an_empty_item_is_accepted_unless_the_job_needs_items():
    assert parse("O1,C1,2023-01-01,,1,1")[3] is None
    assert parse("O1,C1,2023-01-01,,1,1", require_item=True) == "missing_item"


def test_lines_after_an_explicit_as_of_date_are_counted_apart():
    until = parse_as_of("2023-01-01")
    assert parse("O1,C1,2023-01-01T23:59:59,I1,1,1", until_ordinal=until)[0] == "C1"
    assert parse("O1,C1,2023-01-02,I1,1,1", until_ordinal=until) == "after_as_of"


def test_cdnow_preset_reads_the_whitespace_log():
    cdnow = PRESETS["cdnow"]
    assert parse(" 00002 19970112  5   77.00\r".rstrip("\r"), cdnow) == (
        "00002",
        None,
        seconds(1997, 1, 12),
        None,
        5_000_000,
        77_000_000,
    )
    assert parse(" customer_id  date number_of_cds  dollar_value", cdnow) == "header"
    assert parse(" 00002 19971312  5   77.00", cdnow) == "bad_timestamp"


def test_amount_replaces_quantity_times_price_and_negative_amounts_are_returns():
    schema = InputSchema(
        ["cust", "when", "total"], {"customer_id": "cust", "timestamp": "when", "amount": "total"}
    )
    assert parse("C1,2023-01-01,10.5", schema) == (
        "C1",
        None,
        seconds(2023, 1, 1),
        None,
        1_000_000,
        10_500_000,
    )
    assert parse("C1,2023-01-01,-10.5", schema) == "return"
    assert parse("C1,2023-01-01,ten", schema) == "bad_amount"


def test_an_amount_column_left_empty_falls_back_to_quantity_times_price():
    schema = InputSchema(list(CANONICAL.columns) + ["amount"])
    assert parse("O1,C1,2023-01-01,I1,2,1.25,", schema)[5] == 2_500_000
    assert parse("O1,C1,2023-01-01,I1,2,,7", schema)[5] == 7_000_000


def test_epoch_and_strptime_timestamp_formats():
    epoch = InputSchema(CANONICAL.columns, timestamp_format="epoch")
    assert parse("O1,C1,86400,I1,1,1", epoch)[2] == seconds(1970, 1, 2)
    us = InputSchema(CANONICAL.columns, timestamp_format="%m/%d/%Y %H:%M")
    assert parse("O1,C1,12/31/2022 18:30,I1,1,1", us)[2] == seconds(2022, 12, 31, 18, 30)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"columns": ["a", "b"]}, "required role 'customer_id'"),
        ({"columns": ["customer_id", "timestamp"]}, "need either an 'amount'"),
        ({"columns": CANONICAL.columns, "mapping": {"amount": "total"}}, "'total'"),
        ({"columns": CANONICAL.columns, "mapping": {"colour": "x"}}, "unknown role 'colour'"),
        ({"columns": CANONICAL.columns, "delimiter": "#"}, "delimiter='#'"),
        ({"columns": CANONICAL.columns, "timestamp_format": "yyyymmdd"}, "yyyymmdd"),
        ({"columns": ["customer_id", "customer_id"]}, "distinct"),
    ],
)
def test_invalid_schemas_name_the_bad_value(kwargs, message):
    with pytest.raises(SchemaError, match=message):
        InputSchema(**kwargs)


def test_build_schema_applies_a_mapping_to_a_real_export():
    schema = build_schema(
        columns="cust,when,sku,total",
        column_map=["customer_id=cust", "timestamp=when", "item_id=sku", "amount=total"],
    )
    assert schema.mapping == {
        "customer_id": "cust",
        "timestamp": "when",
        "item_id": "sku",
        "amount": "total",
    }
    assert not schema.has("order_id")


def test_schema_args_round_trip_through_the_job_options():
    from mr_jobs.rfm import MRCustomerRFM

    for schema in (
        PRESETS["cdnow"],
        build_schema(
            columns="a,b,c",
            column_map=["customer_id=a", "timestamp=b", "amount=c"],
            delimiter="tab",
        ),
    ):
        job = MRCustomerRFM(args=schema_to_args(schema))
        from mr_jobs.job_options import schema_from_options

        assert schema_from_options(job.options) == schema


def test_parse_as_of_names_the_bad_value():
    with pytest.raises(ValueError, match="as_of='2023-02-30'"):
        parse_as_of("2023-02-30")


# -- hostile lines: every one is a counted rejection, never an exception ----------------


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"O1,C1,2023-01-01,I1,1,1\rO2,C2,2023-01-01,I1,1,1", "control_character"),
        (b'O1,"C\r1",2023-01-01,I1,1,1', "control_character"),
        (b'O1,"C\x001",2023-01-01,I1,1,1', "control_character"),
        (b"O1,C\x1f1,2023-01-01,I1,1,1", "control_character"),
        ("O1,C\u20281,2023-01-01,I1,1,1", "control_character"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "undecodable"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "undecodable"),
        (b"\x1f\x08\x00\x00\x00\x00\x00\x00\x03", "control_character"),
        ('O1,"' + "x" * 200_000 + '",2023-01-01,I1,1,1', "line_too_long"),
        ("O1,C1,2023-01-01,I1,1e999999999,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,1,1e999999999", "bad_price"),
        ("O1,C1,2023-01-01,I1,1e309,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,1,1e309", "bad_price"),
        ("O1,C1,2023-01-01,I1,1e5000,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,1_000,1", "bad_quantity"),
        ("O1,C1,2023-01-01,I1,1000000000000000,1", "bad_quantity"),
        ("O1,C1,0001-01-01T00:30:00+01:00,I1,1,1", "date_out_of_range"),
        ("O1,C1,9999-12-31T23:30:00-01:00,I1,1,1", "date_out_of_range"),
        ("O1,C1,9999-01-01,I1,1,1", "date_out_of_range"),
        ("O1,C1,1899-12-31T23:59:59,I1,1,1", "date_out_of_range"),
        ("O1,C1,2100-12-31T23:00:00-01:00,I1,1,1", "date_out_of_range"),
        ("O1,C1,0999-01-01,I1,1,1", "date_out_of_range"),
        ("O1,C" + "x" * 257 + ",2023-01-01,I1,1,1", "id_too_long"),
        ("O" + "x" * 257 + ",C1,2023-01-01,I1,1,1", "id_too_long"),
        ("O1,C1,2023-01-01,I" + "x" * 257 + ",1,1", "id_too_long"),
    ],
)
def test_hostile_lines_are_rejected_with_a_reason(line, reason):
    assert reason in REJECT_REASONS
    assert parse(line) == reason


@pytest.mark.parametrize(
    "stamp",
    [
        "2023-01-01T10",
        "2023-01-01T1030",
        "2023-01-01T10:30+0200",
        "2023-01-01T10:30:00.1234567",
        "2023-01-01T10:30:00+02",
        "2023-W01-1",
        "20230101",
        "2023-01-01T10:30:60",
        "2023-01-01T10:30:00+24:00",
        "2023-01-01Z",
        "٢٠٢٣-01-01",
        "2023-01-01T١٠:30:00",
    ],
)
def test_timestamps_outside_the_documented_grammar_are_rejected(stamp):
    assert parse(f"O1,C1,{stamp},I1,1,1") == "bad_timestamp"


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2023-01-01T10:30:00.1", seconds(2023, 1, 1, 10, 30)),
        ("2023-01-01T10:30:00.123456", seconds(2023, 1, 1, 10, 30)),
        ("2023-01-01 10:30:00z", seconds(2023, 1, 1, 10, 30)),
        ("2023-01-01T00:30:00+01:00", seconds(2022, 12, 31, 23, 30)),
        ("2023-01-01T23:30-01:00", seconds(2023, 1, 2, 0, 30)),
        (" 2023-01-01T10:30:00\t", seconds(2023, 1, 1, 10, 30)),
        ("1900-01-01", seconds(1900, 1, 1)),
        ("2100-12-31T23:59:59", seconds(2100, 12, 31, 23, 59, 59)),
    ],
)
def test_the_documented_timestamp_grammar_is_read_the_same_on_every_python(stamp, expected):
    assert parse(f"O1,C1,{stamp},I1,1,1")[2] == expected


def test_the_date_window_is_configurable_and_checked():
    wide = InputSchema(CANONICAL.columns, date_window="1700-01-01..2250-12-31")
    assert parse("O1,C1,1800-02-03,I1,1,1", wide)[2] == seconds(1800, 2, 3)
    narrow = build_schema(date_window="2023-01-01..2023-01-31")
    assert parse("O1,C1,2023-02-01,I1,1,1", narrow) == "date_out_of_range"
    assert "--date-window" in schema_to_args(narrow)
    assert InputSchema.from_dict(narrow.to_dict()) == narrow
    for bad in ("0001-01-01..9999-12-31", "2023-02-01..2023-01-01", "2023-01-01", "x..y"):
        with pytest.raises(SchemaError, match="date_window="):
            InputSchema(CANONICAL.columns, date_window=bad)


def test_epoch_and_pattern_timestamps_outside_the_window_are_rejected():
    epoch = InputSchema(CANONICAL.columns, timestamp_format="epoch")
    assert parse("O1,C1,-99999999999999,I1,1,1", epoch) == "date_out_of_range"
    assert parse("O1,C1,1e14,I1,1,1", epoch) == "date_out_of_range"
    pattern = InputSchema(CANONICAL.columns, timestamp_format="%Y-%m-%dT%H:%M%z")
    assert parse("O1,C1,0001-01-01T00:30+0100,I1,1,1", pattern) == "date_out_of_range"
    assert parse("O1,C1,2023-01-01T00:30+0100,I1,1,1", pattern)[2] == seconds(2022, 12, 31, 23, 30)


def test_ids_keep_every_character_but_surrounding_spaces_and_tabs():
    assert parse("O1,\u00a0C1\u00a0,2023-01-01,I1,1,1")[0] == "\u00a0C1\u00a0"
    assert parse("O1, \tC1 ,2023-01-01,I1,1,1")[0] == "C1"
    assert parse("O1,\u05d0\u05d1\u200f\U0001f600,2023-01-01,I1,1,1")[0] == "אב\u200f😀"
    assert parse("O1,C" + "x" * 255 + ",2023-01-01,I1,1,1")[0] == "C" + "x" * 255


def test_a_byte_order_mark_and_a_crlf_ending_are_not_part_of_the_data():
    assert parse("\ufeffO1,C1,2023-01-01,I1,1,1\r")[:2] == ("C1", "O1")
    headerless = InputSchema(("customer_id", "timestamp", "amount"))
    assert parse("\ufeffC1,2023-01-01,5", headerless)[0] == "C1"


def test_whitespace_dialect_splits_on_spaces_and_tabs_only():
    cdnow = PRESETS["cdnow"]
    assert parse("  00001 19970101 1 11.77", cdnow)[0] == "00001"
    assert parse("00001\u00a019970101 1 11.77", cdnow) == "column_count"
    assert parse("   ", cdnow) == "blank"


def test_an_unterminated_quote_is_a_column_count_rejection():
    assert parse('O1,"C1,2023-01-01,I1,1,1') == "column_count"
