"""Basket lines: the ``baskets`` preset, basket-purpose schemas and make_basket_parser."""

import pytest

from mr_jobs.job_options import build_schema, schema_from_options, schema_to_args
from mr_jobs.records import (
    PRESETS,
    REJECT_REASONS,
    InputSchema,
    SchemaError,
    make_basket_parser,
    make_line_parser,
)

BASKETS = PRESETS["baskets"]
CANONICAL = PRESETS["canonical"]


def parse(line, schema=BASKETS):
    return make_basket_parser(schema)(line.encode("utf-8") if isinstance(line, str) else line)


def test_the_baskets_preset_maps_basket_id_and_item_to_order_and_item_roles():
    assert BASKETS.columns == ("basket_id", "item")
    assert BASKETS.mapping == {"order_id": "basket_id", "item_id": "item"}
    assert BASKETS.purpose == "baskets"
    assert not BASKETS.is_order_lines
    assert CANONICAL.is_order_lines


def test_a_basket_line_parses_to_basket_item_and_no_customer():
    assert parse("0,bread and cake") == ("0", "bread and cake", None)
    assert parse(" 17 , juice-sat-cord-ms \r\n") == ("17", "juice-sat-cord-ms", None)


def test_basket_item_ids_keep_quoted_commas_and_unicode():
    assert parse('B1,"bread, cake"') == ("B1", "bread, cake", None)
    assert parse("B1,crème brûlée 🍮") == ("B1", "crème brûlée 🍮", None)
    assert parse('"B,2","say ""cheese"""') == ("B,2", 'say "cheese"', None)


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"basket_id,item", "header"),
        (b"\xef\xbb\xbfBASKET_ID,Item", "header"),
        (b"", "blank"),
        (b"  \t", "blank"),
        (b"1,br\xffead", "undecodable"),
        ("1,br\ufffdead".encode(), "undecodable"),
        (b"1,bread,extra", "column_count"),
        (b"1", "column_count"),
        (b",bread", "missing_order"),
        (b"1, ", "missing_item"),
    ],
)
def test_each_bad_basket_line_is_rejected_with_its_reason(line, reason):
    assert reason in REJECT_REASONS
    assert parse(line) == reason


def test_a_basket_schema_with_customer_and_quantity_columns_checks_the_quantity():
    schema = InputSchema(("order_id", "item_id", "customer_id", "quantity"), purpose="baskets")
    assert parse("O1,I1,C1,2", schema) == ("O1", "I1", "C1")
    assert parse("O1,I1,,2", schema) == ("O1", "I1", None)
    assert parse("O1,I1,C1,-1", schema) == "return"
    assert parse("O1,I1,C1,0", schema) == "zero_quantity"
    assert parse("O1,I1,C1,x", schema) == "bad_quantity"


def test_full_order_lines_feed_baskets_with_every_order_line_check():
    header = "order_id,customer_id,timestamp,item_id,quantity,unit_price"
    assert parse("O1,C1,2023-01-02,I1,2,1.50", CANONICAL) == ("O1", "I1", "C1")
    assert parse('O1,C1,2023-01-02,"a, b",2,1.50', CANONICAL) == ("O1", "a, b", "C1")
    for line, reason in [
        (header, "header"),
        ("O1,C1,2023-01-02,I1,-1,1.50", "return"),
        ("O1,C1,2023-01-02,,1,1.50", "missing_item"),
        (",C1,2023-01-02,I1,1,1.50", "missing_order"),
        ("O1,C1,2023-02-30,I1,1,1.50", "bad_timestamp"),
        ("O1,,2023-01-02,I1,1,1.50", "missing_customer"),
    ]:
        assert parse(line, CANONICAL) == reason
        assert make_line_parser(CANONICAL, require_item=True)(line.encode()) == reason


def test_order_lines_without_an_order_column_make_one_basket_per_line():
    schema = InputSchema(("customer_id", "timestamp", "item_id", "amount"))
    assert parse("C1,2023-01-02,I1,3.00", schema) == (None, "I1", "C1")


def test_a_schema_without_items_cannot_feed_baskets():
    with pytest.raises(SchemaError, match="no item_id column"):
        make_basket_parser(PRESETS["cdnow"])


def test_basket_schemas_require_basket_and_item_columns_and_name_them():
    with pytest.raises(SchemaError, match="required role 'item_id'"):
        InputSchema(("order_id", "thing"), purpose="baskets")
    with pytest.raises(SchemaError, match="required role 'order_id'"):
        InputSchema(("basket", "item_id"), purpose="baskets")
    with pytest.raises(SchemaError, match="purpose='carts'"):
        InputSchema(("order_id", "item_id"), purpose="carts")


def test_order_line_parsing_refuses_a_basket_only_schema():
    with pytest.raises(SchemaError, match="not order lines"):
        make_line_parser(BASKETS)


def test_build_schema_keeps_the_presets_purpose_unless_told():
    assert build_schema("baskets") == BASKETS
    canonical_for_baskets = build_schema("canonical", purpose="baskets")
    assert canonical_for_baskets.purpose == "baskets"
    assert canonical_for_baskets.is_order_lines
    basket_export = build_schema(
        columns=["ticket", "sku"], column_map=["order_id=ticket", "item_id=sku"],
        delimiter=";", purpose="baskets",
    )  # fmt: skip
    assert basket_export.mapping == {"order_id": "ticket", "item_id": "sku"}
    assert InputSchema.from_dict(basket_export.to_dict()) == basket_export


def test_basket_schema_args_round_trip_through_the_job_options():
    from mr_jobs.rfm import MRCustomerRFM

    schema = build_schema(
        columns="ticket,sku", column_map=["order_id=ticket", "item_id=sku"], purpose="baskets"
    )
    args = schema_to_args(schema)
    assert args[:2] == ["--input-format", "baskets"]
    job = MRCustomerRFM(args=args)
    assert schema_from_options(job.options) == schema
    assert schema_from_options(MRCustomerRFM(args=["--input-format", "baskets"]).options) == BASKETS
