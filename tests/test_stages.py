"""The stage registry (:mod:`models.stages`): one declaration of each stage's options,
what it needs and provides, driving ``crm-mr run`` and the stage commands."""

import inspect

import pytest

from models.cli import build_parser
from models.pipeline import STAGES
from models.stages import REGISTRY, by_name
from tests.test_pipeline import PUBLISHED

_NO_DEFAULT = inspect.Parameter.empty


def test_registry_publishes_the_documented_directories_in_run_order():
    assert STAGES == ("data", *PUBLISHED)


@pytest.mark.parametrize("stage", [s for s in REGISTRY if s.options], ids=lambda s: s.name)
def test_every_option_default_is_its_runners_default(stage):
    """An option is declared once: the CLI's default is the runner's (the forecast
    processes had drifted to 2 in the CLI and 1 in the stage)."""
    parameters = inspect.signature(stage.runner_function()).parameters
    for option in stage.options:
        assert option.key in parameters, f"{stage.name}: {option.key} is not a keyword"
        default = parameters[option.key].default
        assert default is not _NO_DEFAULT, f"{stage.name}.{option.key} has no default"
        declared = True if option.negate else option.default
        if option.to_value and declared is not None:
            declared = option.to_value(declared)
        assert declared == default, f"{stage.name}.{option.key}: {declared!r} != {default!r}"


def test_every_need_is_provided_by_an_earlier_stage():
    provided = set()
    for stage in REGISTRY:
        missing = set(stage.needs) - provided
        assert not missing, f"{stage.name} needs {sorted(missing)} before anything provides it"
        provided |= set(stage.provides)


def test_run_and_stage_commands_parse_to_the_same_runner_options():
    """``crm-mr sales --top-n 3`` and ``crm-mr run --sales-top-n 3`` give the runner the
    same keywords; the defaults agree too."""
    parser = build_parser()
    run = parser.parse_args(["run", "--sales-top-n", "3", "--churn-seed", "7", "--no-itemsets"])
    sales = parser.parse_args(["sales", "in.csv", "-o", "out", "--top-n", "3"])
    churn = parser.parse_args(["churn", "in.csv", "-o", "out", "--seed", "7"])
    baskets = parser.parse_args(["baskets", "in.csv", "-o", "out", "--no-itemsets"])
    for name, alone in (("sales", sales), ("churn", churn), ("baskets", baskets)):
        stage = by_name(name)
        assert stage.options_from_args(run) == stage.options_from_args(alone)
    assert by_name("sales").options_from_args(run)["top_n"] == 3
    assert by_name("baskets").options_from_args(run)["itemsets"] is False
    assert by_name("churn").options_from_args(run)["seed"] == 7


def test_options_left_unset_are_left_to_the_runner():
    """``--horizon`` and ``--churn-cutoff`` depend on the data: not given, not passed."""
    args = build_parser().parse_args(["run"])
    assert "horizon" not in by_name("forecasts").options_from_args(args)
    assert "cutoff" not in by_name("churn").options_from_args(args)
    args = build_parser().parse_args(["run", "--horizon", "5", "--max-itemset-size", "0"])
    assert by_name("forecasts").options_from_args(args)["horizon"] == 5
    assert by_name("baskets").options_from_args(args)["max_itemset_size"] is None


def test_unknown_stage_is_named():
    with pytest.raises(KeyError, match="stage='nope' is not one of"):
        by_name("nope")
