"""Features of a call in its situation: the listing parser, value blocks, and the row layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wm_agents.learned.features import (
    MAX_ARG_SLOTS,
    TEXT_BUCKETS,
    VALUE_FEATURES,
    CallFeaturizer,
    Vocabulary,
    json_type_matches,
    value_features,
)
from wm_agents.learned.situation import parse_situation

LS = """Tidy up.
$ ls -lR . (showing 4 of 9 entries)
drwxr-xr-x       - docs/
dr-xr-xr-x       - locked_dir/
-rw-r--r--     120 docs/notes.txt
-r--r--r--    2048 orders.csv  # ids 1-37
"""
PROSE = (
    "The workspace holds data/ (folder), data/config.json (40 B; keys: name, port), "
    "big.log (78.2 KB; read-only), users.csv (1.1 KB; 12 rows, ids 5-16)."
)
TREE = """Workspace tree:
./
old/
  settings.json [54 B]
  tables/
    todo.csv [986 B, ids 1..64]
top.md [0 B]
"""

F = {name: i for i, name in enumerate(VALUE_FEATURES)}


def test_listing_in_ls_style():
    facts = parse_situation(LS)
    assert set(facts.mentions) == {"docs", "locked_dir", "docs/notes.txt", "orders.csv"}
    assert facts.mentions["docs"].is_dir and not facts.mentions["docs"].read_only
    assert facts.mentions["locked_dir"].is_dir and facts.mentions["locked_dir"].read_only
    assert facts.mentions["docs/notes.txt"].size == 120.0
    assert facts.mentions["orders.csv"].read_only
    assert facts.mentions["orders.csv"].id_range == (1, 37)
    assert facts.partial and facts.has_listing


def test_listing_in_prose_style():
    facts = parse_situation(PROSE)
    assert facts.mentions["data"].is_dir
    assert facts.mentions["data/config.json"].keys == ("name", "port")
    assert facts.mentions["big.log"].read_only
    assert facts.mentions["big.log"].size == pytest.approx(78_200)
    assert facts.mentions["users.csv"].id_range == (5, 16)
    assert not facts.mentions["users.csv"].read_only
    assert not facts.partial


def test_listing_in_tree_style_rebuilds_full_paths():
    facts = parse_situation(TREE)
    assert set(facts.mentions) == {
        "old",
        "old/settings.json",
        "old/tables",
        "old/tables/todo.csv",
        "top.md",
    }
    assert facts.mentions["old/tables/todo.csv"].id_range == (1, 64)
    assert facts.folder_known("old/tables") and facts.folder_known(".")
    assert not facts.folder_known("new")


def test_no_listing():
    facts = parse_situation("Compute the totals. The folder has not been listed yet.")
    assert not facts.has_listing and facts.mentions == {}


@pytest.mark.parametrize(
    ("value", "on", "off"),
    [
        (0, ["is_int", "num_zero", "num_integral"], ["num_negative", "num_positive"]),
        (-2.5, ["is_float", "num_negative"], ["num_zero", "num_integral"]),
        (-1e-9, ["num_negative", "num_tiny"], ["num_zero"]),
        (False, ["is_bool", "num_zero"], ["bool_true", "is_int"]),
        (None, ["is_none", "present"], ["is_str"]),
        ("42", ["is_str", "str_int_literal", "str_float_literal", "str_json"], ["path_like"]),
        (" 7 ", ["str_padded", "str_int_literal"], ["str_identifier"]),
        ('{"a": 1}', ["str_json", "str_json_object"], ["str_json_array"]),
        ("{'a': 1}", ["str_single_quotes"], ["str_json"]),
        ("", ["str_empty", "str_blank"], ["str_json"]),
        ("notes.txt", ["path_like", "path_has_extension"], ["path_depth", "str_identifier"]),
        ("../x.txt", ["path_like", "path_parent_ref"], ["path_absolute"]),
        ("/etc/x.txt", ["path_absolute"], ["path_parent_ref"]),
        ([1, 2], ["is_list"], ["is_str"]),
        (math.nan, ["num_nonfinite"], ["num_zero", "num_positive"]),
    ],
)
def test_value_blocks(value, on, off):
    block = value_features(value, parse_situation(""))
    assert block.shape == (len(VALUE_FEATURES),)
    for name in on:
        assert block[F[name]] > 0, name
    for name in off:
        assert block[F[name]] == 0, name


def test_paths_against_the_listing():
    facts = parse_situation(LS)
    listed = value_features("docs/notes.txt", facts)
    assert listed[F["sit_listed"]] == 1 and listed[F["sit_listed_file"]] == 1
    assert listed[F["sit_size_known"]] == 1
    assert listed[F["sit_log_size"]] == pytest.approx(math.log10(121) / 7)
    folder = value_features("./docs/", facts)
    assert folder[F["sit_listed_dir"]] == 1 and folder[F["path_dot_slash"]] == 1
    typo = value_features("docs/notse.txt", facts)
    assert typo[F["sit_listed"]] == 0 and typo[F["sit_near_miss"]] == 1
    assert typo[F["sit_folder_known"]] == 1 and typo[F["sit_unlisted_with_listing"]] == 1
    fresh = value_features("locked_dir/new.txt", facts)
    assert fresh[F["sit_near_miss"]] == 0
    assert fresh[F["sit_folder_known"]] == 1 and fresh[F["sit_folder_read_only"]] == 1
    deep = value_features("a/b/c/" + "x" * 300 + ".txt", facts)
    assert deep[F["path_depth"]] == pytest.approx(0.75) and deep[F["path_too_long"]] == 1


def test_declared_types_as_a_python_tool_sees_them():
    assert json_type_matches(3, "number") and json_type_matches(3.5, "number")
    assert json_type_matches(True, "number") is False
    assert json_type_matches(3.0, "integer") is False
    assert json_type_matches("3", ["integer", "string"]) is True
    assert json_type_matches(None, "null") is True
    assert json_type_matches(1, "something-else") is None


SCHEMAS = {
    "get_row": {
        "type": "object",
        "properties": {"table": {"type": "string"}, "id": {"type": "integer"}},
        "required": ["table", "id"],
    },
    "divide": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
}


@pytest.fixture
def featurizer() -> CallFeaturizer:
    vocab = Vocabulary.fit(
        [("get_row", {"table": "t.csv", "id": 1}), ("divide", {"a": 1, "b": 2})], SCHEMAS
    )
    return CallFeaturizer(vocab)


def test_row_layout(featurizer: CallFeaturizer):
    names = featurizer.feature_names()
    width = len(VALUE_FEATURES)
    assert len(names) == featurizer.dim == len(featurizer.feature_groups())
    assert featurizer.dim == 2 + (MAX_ARG_SLOTS + 1) * width + 5 + TEXT_BUCKETS
    row = featurizer.transform_one(LS, "divide", {"a": 1, "b": 0})
    assert row.dtype == np.float32 and row.shape == (featurizer.dim,)
    assert row[names.index("tool=divide")] == 1 and row[names.index("tool=get_row")] == 0
    # slots are the tool's argument names, sorted: a then b
    assert row[names.index("arg1.num_zero")] == 1 and row[names.index("arg0.num_zero")] == 0
    assert row[names.index("any.num_zero")] == 1  # the pooled block sees it too
    assert row[names.index("arg0.schema_match")] == 1
    assert row[names.index("has_listing")] == 1 and row[names.index("partial_listing")] == 1
    assert row[names.index("n_missing_required")] == 0


def test_link_and_schema_features(featurizer: CallFeaturizer):
    names = featurizer.feature_names()
    # get_row slots: id, table.  orders.csv lists ids 1-37.
    inside = featurizer.transform_one(LS, "get_row", {"table": "orders.csv", "id": 37})
    assert inside[names.index("arg0.link_in_range")] == 1
    above = featurizer.transform_one(LS, "get_row", {"table": "orders.csv", "id": 38})
    assert above[names.index("arg0.link_above_range")] == 1
    as_text = featurizer.transform_one(LS, "get_row", {"table": "orders.csv", "id": "3"})
    assert as_text[names.index("arg0.schema_mismatch")] == 1
    missing = featurizer.transform_one(LS, "get_row", {"table": "orders.csv"})
    assert missing[names.index("n_missing_required")] == 1
    assert missing[names.index("arg0.present")] == 0
    extra = featurizer.transform_one(LS, "divide", {"a": 1, "b": 2, "c": 3})
    assert extra[names.index("n_extra_args")] == 1


def test_unknown_tool_is_a_key_error(featurizer: CallFeaturizer):
    assert not featurizer.knows("mail")
    with pytest.raises(KeyError):
        featurizer.transform_one("", "mail", {})


def test_vocabulary_round_trip_and_validation(featurizer: CallFeaturizer):
    data = featurizer.vocabulary.as_dict()
    assert Vocabulary.from_dict(data) == featurizer.vocabulary
    with pytest.raises(ValueError, match="arg_slots"):
        Vocabulary.from_dict({**data, "arg_slots": {"divide": ["a"]}})
    with pytest.raises(ValueError, match="tools"):
        Vocabulary.from_dict({**data, "tools": "divide"})
