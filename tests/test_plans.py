"""Plans as a user writes them: the same plan from Python, JSON and YAML, and every mistake
refused with a message that says where it is and what to do about it."""

import dataclasses
import json
import math

import pytest
import yaml

from otel_execaudit.errors import ConfigurationError, PlanError
from otel_execaudit.executor.plans import Plan, PlanStep, RollbackHint, load_plan
from otel_execaudit.recording import DeclaredEffect
from otel_execaudit.recording.records import SideEffectCategory

PLAN = {
    "plan_id": "rebalance",
    "description": "nightly rebalance",
    "limits": {"orders": 10, "notional": 100000, "actions": 20},
    "strategies": {"scalper": {"orders": 2}, "7": {"notional": 500}},
    "steps": [
        {"name": "quote", "action_type": "fetch_quote", "params": {"symbol": "BTCUSDT"}},
        {"name": "buy", "action_type": "place_order",
         "params": {"symbol": "BTCUSDT", "quantity": 0.001, "price": 50000,
                    "tags": ["a", "b"], "routing": {"venue": "x", "tif": "GTC"}},
         "side_effects": [{"category": "network", "reversible": False,
                           "description": "place a limit buy order"}],
         "consumes": {"orders": 1, "notional": 50},
         "rollback": {"description": "cancel the order", "actions": ["cancel_order"],
                      "risks": ["partial fill"]},
         "idempotency_key": "buy-1", "description": "buy a little"},
        {"name": "note", "action_type": "write_note", "side_effects": ["file_system"]},
    ],
}


def plan_with_step(**step):
    """A one-step plan whose step has the given fields (name and action_type unless given)."""
    return {"plan_id": "p", "steps": [{"name": "s", "action_type": "a", **step}]}


def refused(source):
    with pytest.raises(PlanError) as caught:
        load_plan(source)
    return str(caught.value)


# -- one plan, three sources ----------------------------------------------------------------------

def test_a_dict_a_json_file_and_a_yaml_file_load_the_same_plan(tmp_path):
    as_json = tmp_path / "plan.json"
    as_json.write_text(json.dumps(PLAN), encoding="utf-8")
    as_yaml = tmp_path / "plan.yaml"
    as_yaml.write_text(yaml.safe_dump(PLAN, sort_keys=False), encoding="utf-8")
    as_yml = tmp_path / "plan.YML"
    as_yml.write_text(yaml.safe_dump(PLAN), encoding="utf-8")

    from_dict = load_plan(PLAN)
    expected = from_dict.to_dict()
    assert load_plan(as_json).to_dict() == expected
    assert load_plan(str(as_yaml)).to_dict() == expected
    assert load_plan(as_yml).to_dict() == expected
    assert load_plan(from_dict) is from_dict

    assert [step.name for step in from_dict.steps] == ["quote", "buy", "note"]
    assert expected["steps"][1]["params"]["routing"] == {"venue": "x", "tif": "GTC"}
    assert expected["steps"][1]["params"]["tags"] == ["a", "b"]
    buy = from_dict.steps[1]
    assert buy.side_effects == (DeclaredEffect(SideEffectCategory.NETWORK, False,
                                               "place a limit buy order"),)
    assert buy.rollback == RollbackHint("cancel the order", ("cancel_order",), ("partial fill",))
    assert buy.idempotency_key == "buy-1"
    assert from_dict.steps[2].side_effects[0].category is SideEffectCategory.FILE_SYSTEM


def test_a_handwritten_yaml_plan_loads(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "plan_id: deploy\n"
        "steps:\n"
        "  - name: push\n"
        "    action_type: git_push\n"
        "    params: {branch: main}\n"
        "    side_effects:\n"
        "      - category: NETWORK\n"
        "        reversible: false\n"
        "    rollback: revert the commit\n",
        encoding="utf-8")
    step = load_plan(path).steps[0]
    assert step.params == {"branch": "main"}
    assert step.side_effects[0].category is SideEffectCategory.NETWORK
    assert step.side_effects[0].reversible is False
    assert step.rollback.description == "revert the commit"
    assert step.acts


# -- refusals: each names where, what, and what to do ---------------------------------------------

def test_plan_error_is_a_configuration_error():
    assert issubclass(PlanError, ConfigurationError)


def test_missing_plan_id_is_refused_with_an_example():
    message = refused({"steps": [{"name": "s", "action_type": "a"}]})
    assert "plan_id" in message and "for example" in message
    assert "plan_id" in refused({"plan_id": "  ", "steps": [{"name": "s", "action_type": "a"}]})


@pytest.mark.parametrize("steps", [[], None, "quote"])
def test_empty_or_missing_steps_are_refused(steps):
    source = {"plan_id": "p"} if steps is None else {"plan_id": "p", "steps": steps}
    message = refused(source)
    assert "plan 'p'" in message and "steps" in message and "non-empty list" in message


@pytest.mark.parametrize("name", [None, "", "   "])
def test_a_step_without_a_name_is_refused_naming_its_position(name):
    step = {"action_type": "a"} if name is None else {"name": name, "action_type": "a"}
    message = refused({"plan_id": "p", "steps": [{"name": "first", "action_type": "a"}, step]})
    assert "plan 'p', step 2" in message and "name" in message


def test_a_step_without_a_name_is_told_what_to_do():
    message = refused({"plan_id": "p", "steps": [{"action_type": "a"}]})
    assert "for example" in message or "give" in message.lower()


def test_a_step_without_action_type_is_refused_with_an_example():
    message = refused({"plan_id": "p", "steps": [{"name": "buy"}]})
    assert "plan 'p', step 1 ('buy')" in message
    assert "action_type is missing" in message and 'for example "action_type"' in message


@pytest.mark.parametrize("where, step, typo", [
    ("step", {"side_efects": ["network"]}, "side_efects"),
    ("step", {"param": {"x": 1}}, "param"),
    ("side effect", {"side_effects": [{"category": "network", "reverisble": False}]},
     "reverisble"),
    ("rollback", {"rollback": {"description": "undo", "action": ["x"]}}, "action"),
])
def test_a_typo_in_a_field_name_is_refused_not_ignored(where, step, typo):
    message = refused(plan_with_step(**step))
    assert "step 1 ('s')" in message
    assert f"unknown field(s) [{typo!r}]" in message
    if where != "step":
        assert where in message
    # ... and it says which fields it knows, so the user can fix the spelling
    assert "known fields are" in message


def test_a_typo_in_a_plan_field_is_refused():
    source = {"plan_id": "p", "steps": [{"name": "s", "action_type": "a"}],
              "limit": {"orders": 1}}
    message = refused(source)
    assert "plan 'p'" in message and "['limit']" in message and "'limits'" in message


def test_an_unknown_side_effect_category_is_refused_listing_the_categories():
    message = refused(plan_with_step(side_effects=[{"category": "teleport"}]))
    assert "step 1 ('s')" in message and "'teleport'" in message
    assert "use one of" in message
    for category in SideEffectCategory:
        assert category.value in message


@pytest.mark.parametrize("value", ["network", {"category": "network"}, 3])
def test_side_effects_that_are_not_a_list_are_refused_naming_the_field(value):
    message = refused(plan_with_step(side_effects=value))
    assert "step 1 ('s')" in message and "side_effects must be a list" in message


def test_rollback_actions_given_as_a_string_are_not_split_into_characters():
    try:
        step = load_plan(plan_with_step(rollback={"actions": "cancel_order"})).steps[0]
    except PlanError as error:
        assert "actions" in str(error)
    else:
        assert step.rollback.actions == ("cancel_order",)


@pytest.mark.parametrize("value", ["false", "no", 0, 1, None])
def test_reversible_must_be_a_boolean(value):
    message = refused(plan_with_step(side_effects=[{"category": "network", "reversible": value}]))
    assert "step 1 ('s')" in message and "reversible must be true or false" in message


@pytest.mark.parametrize("value", [-1, -0.5, "10", True, None, [1]])
def test_consumes_must_be_non_negative_numbers(value):
    message = refused(plan_with_step(consumes={"orders": value}))
    assert "step 1 ('s')" in message and "consumes.orders" in message
    assert "must be a finite number >= 0" in message


@pytest.mark.parametrize("value", [-1, "ten", False])
def test_limits_must_be_non_negative_numbers(value):
    message = refused({**plan_with_step(), "limits": {"orders": value}})
    assert "plan 'p'" in message and "limits.orders" in message
    assert "must be a finite number >= 0" in message


def test_strategy_limits_must_be_non_negative_numbers():
    message = refused({**plan_with_step(), "strategies": {"scalper": {"orders": -2}}})
    assert "strategies.scalper.orders" in message and "must be a finite number >= 0" in message
    message = refused({**plan_with_step(), "strategies": ["scalper"]})
    assert "strategies must map a strategy id to its limits" in message


def test_limits_that_are_not_a_mapping_are_refused_with_an_example():
    message = refused({**plan_with_step(), "limits": 10})
    assert "limits" in message and "for example" in message
    message = refused(plan_with_step(consumes=[1]))
    assert "step 1 ('s')" in message and "consumes" in message


@pytest.mark.parametrize("field, value", [("limits", math.nan), ("consumes", math.nan),
                                          ("consumes", math.inf)])
def test_nan_and_infinity_are_not_accepted_as_limits_or_amounts(field, value):
    source = ({**plan_with_step(), "limits": {"orders": value}} if field == "limits"
              else plan_with_step(consumes={"orders": value}))
    with pytest.raises(PlanError, match=f"{field}.orders"):
        load_plan(source)


@pytest.mark.parametrize("field", ["consumes", "limits"])
@pytest.mark.parametrize("value", [10 ** 400, 1e16], ids=["401 digits", "1e16"])
def test_amounts_too_large_to_count_are_refused_naming_the_maximum(field, value):
    source = ({**plan_with_step(), "limits": {"orders": value}} if field == "limits"
              else plan_with_step(consumes={"orders": value}))
    message = refused(source)
    assert f"{field}.orders" in message and "at most 1e+15" in message
    assert load_plan({**plan_with_step(consumes={"orders": 1e15}),
                      "limits": {"orders": 10 ** 15}}).limits == {"orders": 10 ** 15}


def test_a_huge_integer_literal_in_a_json_plan_is_refused_as_an_amount(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"plan_id": "p", "steps": [{"name": "s", "action_type": "a"}], '
                    '"limits": {"notional": 1' + "0" * 400 + "}}", encoding="utf-8")
    message = refused(path)
    assert str(path) in message and "limits.notional" in message and "at most 1e+15" in message


@pytest.mark.parametrize("value", [10 ** 5000, 2 ** 64, -2 ** 63 - 1],
                         ids=["5001 digits", "2**64", "-2**63-1"])
def test_params_integers_wider_than_64_bits_are_refused_asking_for_a_string(value):
    message = refused(plan_with_step(params={"order_id": value}))
    assert "params.order_id" in message and "wider than 64 bits" in message
    assert "as a string" in message


def test_params_integers_within_64_bits_load_and_can_be_recorded():
    from otel_execaudit.ledger.canonical import canonical_bytes

    plan = load_plan(plan_with_step(params={"high": 2 ** 64 - 1, "low": -2 ** 63}))
    assert plan.steps[0].params == {"high": 2 ** 64 - 1, "low": -2 ** 63}
    assert b'"high":"18446744073709551615"' in canonical_bytes(plan.to_dict())


@pytest.mark.parametrize("source", [
    {**plan_with_step(), 1: "x", "limit": {}},
    {"plan_id": "p", "steps": [{"name": "s", "action_type": "a", None: 1, "side_efects": []}]},
], ids=["plan", "step"])
def test_field_names_that_are_not_strings_are_refused(source):
    message = refused(source)
    assert "field names must be strings" in message and "quote the name" in message
    assert "known fields are" in message.lower()


def test_a_yaml_key_read_as_a_boolean_is_refused_asking_to_quote_it(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("plan_id: p\nsteps:\n  - name: s\n    action_type: a\n"
                    "    on: retry\n    descripton: typo\n", encoding="utf-8")
    message = refused(path)
    assert message.startswith(f"{path}: plan 'p', step 1 ('s'): field names must be strings, "
                              "not bool")
    assert "quote the name" in message


def test_values_read_as_text_that_python_cannot_write_as_text_are_refused():
    for source in (plan_with_step(idempotency_key=10 ** 5000),
                   {**plan_with_step(), "strategies": {10 ** 5000: {"orders": 1}}},
                   plan_with_step(consumes={10 ** 5000: 1})):
        assert "cannot be written as text; give it as a string" in refused(source)


def test_duplicate_step_names_are_refused_naming_the_name():
    message = refused({"plan_id": "p", "steps": [
        {"name": "buy", "action_type": "a"}, {"name": "sell", "action_type": "a"},
        {"name": "buy", "action_type": "b"}]})
    assert "plan 'p'" in message and "unique" in message and "['buy']" in message
    assert "sell" not in message


def test_a_step_that_is_not_a_mapping_is_refused():
    message = refused({"plan_id": "p", "steps": ["buy"]})
    assert "plan 'p', step 1" in message and "a step must be a mapping" in message


def test_params_that_are_not_a_mapping_are_refused():
    message = refused(plan_with_step(params=["BTCUSDT"]))
    assert "step 1 ('s')" in message and "params must be a mapping" in message


# -- files ----------------------------------------------------------------------------------------

def test_a_missing_file_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "nope.yaml"
    message = refused(path)
    assert str(path) in message and "no such plan file" in message and "Check the path" in message


def test_an_unreadable_file_is_refused_naming_the_path(tmp_path):
    directory = tmp_path / "plan.yaml"
    directory.mkdir()
    message = refused(directory)
    assert str(directory) in message and "cannot read the plan" in message
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    message = refused(binary)
    assert str(binary) in message and "cannot read the plan" in message


@pytest.mark.parametrize("name", ["plan.txt", "plan", "plan.toml", "plan.json.bak"])
def test_a_file_with_the_wrong_suffix_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text(json.dumps(PLAN), encoding="utf-8")
    message = refused(path)
    assert str(path) in message and ".json, .yaml or .yml" in message


def test_invalid_yaml_is_refused_naming_the_file_and_the_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("plan_id: p\nsteps:\n  - name: [unclosed\n", encoding="utf-8")
    message = refused(path)
    assert str(path) in message and "not valid YAML" in message and "line" in message


def test_invalid_yaml_names_the_file_at_each_position_not_a_string(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("plan_id: p\nsteps:\n  - name: [unclosed\n", encoding="utf-8")
    message = refused(path)
    assert f'in "{path}", line 3' in message and "<unicode string>" not in message
    assert "[unclosed" in message  # the excerpt of the offending line is kept


@pytest.mark.parametrize("suffix, text", [
    (".json", "[" * 200_000 + "]" * 200_000),
    (".yaml", "a: " + "[" * 20_000 + "]" * 20_000 + "\n"),
], ids=["json", "yaml"])
def test_a_plan_file_nested_too_deeply_is_refused_naming_the_file(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text, encoding="utf-8")
    message = refused(path)
    assert str(path) in message and "nested too deeply" in message
    assert "at most 32 levels" in message


def test_invalid_json_is_refused_naming_the_file_and_the_line(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"plan_id": "p",\n "steps": [}\n', encoding="utf-8")
    message = refused(path)
    assert str(path) in message and "not valid JSON" in message and "line 2" in message


@pytest.mark.parametrize("text, kind", [("", "NoneType"), ("- a\n- b\n", "list"),
                                         ("just text\n", "str")])
def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    message = refused(path)
    assert str(path) in message and "must be a mapping with plan_id and steps" in message
    assert kind in message


def test_errors_in_a_file_name_the_file_and_the_step(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("plan_id: p\nsteps:\n  - name: buy\n    action_type: a\n"
                    "    consumes: {orders: -1}\n", encoding="utf-8")
    message = refused(path)
    assert message.startswith(f"{path}: plan 'p', step 1 ('buy')")
    assert "consumes.orders" in message


# -- immutability ---------------------------------------------------------------------------------

def test_params_cannot_be_changed_through_the_plan():
    plan = load_plan(PLAN)
    buy = plan.steps[1]
    with pytest.raises(TypeError):
        buy.params["price"] = 1
    with pytest.raises(TypeError):
        buy.params["routing"]["venue"] = "elsewhere"
    with pytest.raises((TypeError, AttributeError)):
        buy.params["tags"].append("c")
    with pytest.raises(TypeError):
        buy.consumes["orders"] = 0
    with pytest.raises(TypeError):
        plan.limits["orders"] = 10 ** 9
    with pytest.raises(TypeError):
        plan.strategies["scalper"]["orders"] = 10 ** 9
    assert buy.params["price"] == 50000 and plan.limits["orders"] == 10


def test_plan_and_step_attributes_cannot_be_reassigned():
    plan = load_plan(PLAN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.plan_id = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps[1].params = {"price": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps[1].side_effects[0].reversible = True
    with pytest.raises(TypeError):
        plan.steps[0] = plan.steps[1]


def test_changing_the_source_or_to_dict_after_loading_does_not_change_the_plan():
    source = json.loads(json.dumps(PLAN))
    plan = load_plan(source)
    before = plan.to_dict()
    source["steps"][1]["params"]["price"] = 1
    source["steps"][1]["params"]["routing"]["venue"] = "elsewhere"
    source["steps"].append({"name": "extra", "action_type": "a"})
    source["limits"]["orders"] = 10 ** 9
    exported = plan.to_dict()
    exported["steps"][1]["params"]["price"] = 2
    exported["limits"]["orders"] = 0
    assert plan.to_dict() == before


def test_a_step_built_directly_freezes_its_params():
    params = {"symbol": "ETH", "legs": [{"qty": 1}]}
    step = PlanStep("s", "a", params=params)
    params["symbol"] = "DOGE"
    assert step.params["symbol"] == "ETH"
    with pytest.raises(TypeError):
        step.params["legs"][0]["qty"] = 99
    plan = Plan("p", [step], limits={"orders": 1})
    assert isinstance(plan.steps, tuple)


# -- consumption and limits -----------------------------------------------------------------------

def test_an_acting_step_consumes_one_action_plus_what_it_declares():
    plan = load_plan(PLAN)
    assert plan.steps[1].consumption == {"actions": 1, "orders": 1, "notional": 50}
    assert plan.steps[2].consumption == {"actions": 1}


def test_a_step_may_declare_how_many_actions_it_consumes():
    step = load_plan(plan_with_step(side_effects=["network"], consumes={"actions": 3})).steps[0]
    assert step.consumption == {"actions": 3}


def test_a_read_only_step_consumes_only_what_it_declares():
    from dataclasses import replace

    quote = load_plan(PLAN).steps[0]
    assert quote.acts and quote.consumption == {"actions": 1}  # until its adapter says it reads
    assert not replace(quote, read_only=True).acts
    assert replace(quote, read_only=True).consumption == {}
    reader = replace(load_plan(plan_with_step(consumes={"api_calls": 2})).steps[0],
                     read_only=True)
    assert reader.consumption == {"api_calls": 2}


def test_consumption_is_a_copy():
    step = load_plan(PLAN).steps[1]
    step.consumption["orders"] = 100
    assert step.consumption["orders"] == 1


def test_limits_for_a_strategy_override_the_plan_limits():
    plan = load_plan(PLAN)
    assert plan.limits_for(None) == {"orders": 10, "notional": 100000, "actions": 20}
    assert plan.limits_for("scalper") == {"orders": 2, "notional": 100000, "actions": 20}
    assert plan.limits_for("unknown") == plan.limits_for(None)
    assert plan.limits_for(7) == {"orders": 10, "notional": 500, "actions": 20}
    chosen = plan.limits_for("scalper")
    chosen["orders"] = 10 ** 9
    assert plan.limits_for("scalper")["orders"] == 2


def test_yaml_strategy_ids_that_look_like_numbers_still_match(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("plan_id: p\nlimits: {orders: 5}\nstrategies:\n  42: {orders: 1}\n"
                    "steps:\n  - {name: s, action_type: a}\n", encoding="utf-8")
    plan = load_plan(path)
    assert plan.limits_for("42") == {"orders": 1}
    assert plan.limits_for(42) == {"orders": 1}
