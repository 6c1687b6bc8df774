"""Features of a tool call in its situation: what a learned model can generalise from.

Why these: whether a first-time call works turns on the *shape* of its arguments (a zero
divisor, a negative square root, a number passed as a string, JSON that does not parse, a name
too long) and on what the situation says exists (the file is listed, its folder is read-only,
the id is outside the table's range), rarely on the words themselves.  So a value is described
by its type, sign and magnitude, its string form (empty, parses as an int / a float / JSON),
its path form (depth, extension, ``..``, absolute, a component too long) and how it matches the
situation's listing (:mod:`wm_agents.learned.situation`): listed, listed as a folder, a near
miss of a listed name (a typo), its folder known or read-only, its size; a number against the
id range listed with another argument (``get_row(table, id)``), a key against the keys listed
with another argument's file.

Layout of one row (``[D]``, float32), see :meth:`CallFeaturizer.feature_names`:

* the tool, one-hot over the tools seen in training (its vocabulary);
* one block of :data:`VALUE_FEATURES` per argument slot: a tool's argument names seen in
  training, sorted, at most :data:`MAX_ARG_SLOTS` (a missing argument leaves its block zero,
  ``present`` = 0);
* the element-wise max of the argument blocks (tool-independent: "some path is not listed");
* call-level facts: missing / extra argument counts, listing present, partial listing;
* the situation's words hashed into :data:`TEXT_BUCKETS` buckets (presence), so the kind of
  situation can shift the base rate.

The LLM's prior is *not* an input: it is missing for most stored outcomes (asking the LLM costs
seconds), and its worth depends on which LLM it is; the calibrator weighs it instead (see
:mod:`wm_agents.learned.calibration`).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wm_agents.learned.situation import Mention, SituationFacts, normalize_path, parse_situation

__all__ = [
    "FEATURE_GROUPS",
    "MAX_ARG_SLOTS",
    "TEXT_BUCKETS",
    "VALUE_FEATURES",
    "CallFeaturizer",
    "Vocabulary",
    "json_type_matches",
    "value_features",
]

MAX_ARG_SLOTS = 4
"""Argument slots per tool; arguments beyond them count in ``n_extra_args`` only."""
TEXT_BUCKETS = 64
"""Hash buckets of the situation's words."""
EXT_BUCKETS = 8
"""Hash buckets of a path's extension."""

VALUE_FEATURES: tuple[str, ...] = (
    # type
    "present", "is_none", "is_bool", "is_int", "is_float", "is_str", "is_list", "is_dict",
    # number (bools count as numbers: Python divides by False)
    "num_zero", "num_negative", "num_positive", "num_log_magnitude", "num_integral",
    "num_nonfinite", "num_tiny", "bool_true",
    # string
    "str_empty", "str_blank", "str_log_length", "str_padded", "str_int_literal",
    "str_float_literal", "str_json", "str_json_object", "str_json_array", "str_json_scalar",
    "str_single_quotes", "str_identifier", "str_has_digit", "str_has_space",
    # path
    "path_like", "path_depth", "path_has_extension", "path_dot_slash", "path_absolute",
    "path_parent_ref", "path_longest_component", "path_too_long", "path_trailing_slash",
    *(f"path_ext_bucket_{i}" for i in range(EXT_BUCKETS)),
    # against the situation
    "sit_listed", "sit_listed_dir", "sit_listed_file", "sit_basename_listed", "sit_near_miss",
    "sit_folder_known", "sit_folder_read_only", "sit_read_only", "sit_log_size",
    "sit_size_known", "sit_word_mentioned", "sit_unlisted_with_listing",
    # against what the situation says about the call's other arguments
    "link_range_known", "link_in_range", "link_below_range", "link_above_range",
    "link_keys_known", "link_in_keys",
    # against the tool's declared parameter type (its JSON schema), when one is known
    "schema_known", "schema_match", "schema_mismatch",
)  # fmt: skip
"""Names of one argument's block, in order."""

_INDEX = {name: i for i, name in enumerate(VALUE_FEATURES)}

FEATURE_GROUPS: tuple[str, ...] = (
    "tool", "type", "number", "string", "path", "situation", "link", "schema", "call", "words",
)  # fmt: skip
"""Kinds of features, for :meth:`CallFeaturizer.feature_groups`."""

_PREFIX_GROUP = {"num": "number", "bool": "number", "str": "string", "path": "path",
                 "sit": "situation", "link": "link", "schema": "schema"}  # fmt: skip


def _kind(name: str) -> str:
    return _PREFIX_GROUP.get(name.split("_", 1)[0], "type")


_CALL_FEATURES = (
    "n_missing_args",
    "n_extra_args",
    "n_missing_required",
    "has_listing",
    "partial_listing",
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"[A-Za-z0-9_]+")


def _bucket(text: str, n: int) -> int:
    return zlib.crc32(text.encode("utf-8")) % n


def _edit_distance_at_most(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of ``a`` and ``b`` is at most ``limit`` (banded, early exit)."""
    if abs(len(a) - len(b)) > limit:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return False
        prev = cur
    return prev[-1] <= limit


def _parses(fn: Any, text: str) -> bool:
    try:
        fn(text)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _number_block(x: float, v: np.ndarray) -> None:
    f = _INDEX
    if not math.isfinite(x):
        v[f["num_nonfinite"]] = 1.0
        return
    v[f["num_zero"]] = float(x == 0)
    v[f["num_negative"]] = float(x < 0)
    v[f["num_positive"]] = float(x > 0)
    v[f["num_log_magnitude"]] = min(math.log10(abs(x) + 1.0) / 10.0, 3.0)
    v[f["num_integral"]] = float(x == int(x))
    v[f["num_tiny"]] = float(0 < abs(x) < 1e-3)


def _string_block(s: str, v: np.ndarray) -> None:
    f = _INDEX
    v[f["str_empty"]] = float(s == "")
    v[f["str_blank"]] = float(s.strip() == "")
    v[f["str_log_length"]] = math.log1p(len(s)) / 6.0
    v[f["str_padded"]] = float(s != s.strip())
    v[f["str_int_literal"]] = float(_parses(int, s))
    v[f["str_float_literal"]] = float(_parses(float, s))
    try:
        parsed = json.loads(s)
    except (ValueError, RecursionError):
        pass
    else:
        v[f["str_json"]] = 1.0
        kind = (
            "str_json_object"
            if isinstance(parsed, dict)
            else "str_json_array"
            if isinstance(parsed, list)
            else "str_json_scalar"
        )
        v[f[kind]] = 1.0
    v[f["str_single_quotes"]] = float("'" in s)
    v[f["str_identifier"]] = float(bool(_IDENTIFIER.match(s)))
    v[f["str_has_digit"]] = float(any(c.isdigit() for c in s))
    v[f["str_has_space"]] = float(any(c.isspace() for c in s))


def _path_block(s: str, v: np.ndarray) -> bool:
    """Fill the path features; True when ``s`` looks like a path."""
    f = _INDEX
    core = s.strip()
    name = core.rstrip("/").rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name.strip(".") else ""
    path_like = "/" in core or bool(ext and ext.isalnum() and len(ext) <= 6)
    if not path_like or len(core) > 4096:
        return False
    parts = [p for p in core.split("/") if p not in ("", ".")]
    v[f["path_like"]] = 1.0
    v[f["path_depth"]] = min(max(len(parts) - 1, 0) / 4.0, 2.0)
    v[f["path_has_extension"]] = float(bool(ext))
    v[f["path_dot_slash"]] = float(core.startswith("./"))
    v[f["path_absolute"]] = float(core.startswith("/"))
    v[f["path_parent_ref"]] = float(".." in parts)
    longest = max((len(p.encode("utf-8")) for p in parts), default=0)
    v[f["path_longest_component"]] = min(longest / 255.0, 2.0)
    v[f["path_too_long"]] = float(longest > 255)
    v[f["path_trailing_slash"]] = float(core.endswith("/"))
    if ext:
        v[f[f"path_ext_bucket_{_bucket(ext, EXT_BUCKETS)}"]] = 1.0
    return True


def _situation_block(s: str, facts: SituationFacts, is_path: bool, v: np.ndarray) -> None:
    f = _INDEX
    v[f["sit_word_mentioned"]] = float(
        bool(s.strip()) and all(w.lower() in facts.words for w in _WORD.findall(s) or ["\0"])
    )
    if not is_path or not facts.has_listing:
        return
    path = normalize_path(s)
    mention = facts.get(path)
    folder = path.rsplit("/", 1)[0] if "/" in path else "."
    name = path.rsplit("/", 1)[-1]
    v[f["sit_listed"]] = float(mention is not None)
    v[f["sit_listed_dir"]] = float(mention is not None and mention.is_dir)
    v[f["sit_listed_file"]] = float(mention is not None and not mention.is_dir)
    v[f["sit_basename_listed"]] = float(name in facts.basenames())
    v[f["sit_folder_known"]] = float(facts.folder_known(folder))
    folder_mention = facts.get(folder)
    v[f["sit_folder_read_only"]] = float(folder_mention is not None and folder_mention.read_only)
    if mention is not None:
        v[f["sit_read_only"]] = float(mention.read_only)
        if mention.size is not None:
            v[f["sit_size_known"]] = 1.0
            v[f["sit_log_size"]] = math.log10(mention.size + 1.0) / 7.0
    else:
        v[f["sit_unlisted_with_listing"]] = 1.0
        v[f["sit_near_miss"]] = float(
            any(_edit_distance_at_most(path, known, 2) for known in facts.mentions)
        )


def value_features(value: Any, facts: SituationFacts) -> np.ndarray:
    """One argument's block (``[len(VALUE_FEATURES)]``), without the ``link_*`` features
    (those need the call's other arguments; see :meth:`CallFeaturizer.transform`)."""
    f = _INDEX
    v = np.zeros(len(VALUE_FEATURES), dtype=np.float32)
    v[f["present"]] = 1.0
    if value is None:
        v[f["is_none"]] = 1.0
    elif isinstance(value, bool):
        v[f["is_bool"]] = 1.0
        v[f["bool_true"]] = float(value)
        _number_block(float(value), v)
    elif isinstance(value, int | float):
        v[f["is_int" if isinstance(value, int) else "is_float"]] = 1.0
        _number_block(float(value), v)
    elif isinstance(value, str):
        v[f["is_str"]] = 1.0
        _string_block(value, v)
        _situation_block(value, facts, _path_block(value, v), v)
    elif isinstance(value, list | tuple):
        v[f["is_list"]] = 1.0
        v[f["str_log_length"]] = math.log1p(len(value)) / 6.0
    elif isinstance(value, Mapping):
        v[f["is_dict"]] = 1.0
        v[f["str_log_length"]] = math.log1p(len(value)) / 6.0
    return v


def _link_features(
    values: Sequence[Any], blocks: list[np.ndarray | None], facts: SituationFacts
) -> None:
    """Numbers against id ranges, and keys against JSON keys, listed with the other
    arguments' paths (``get_row(table, id)``, ``json_get(path, key)``)."""
    mentions: list[Mention] = []
    for value in values:
        if isinstance(value, str) and (m := facts.get(value)) is not None:
            mentions.append(m)
    ranges = [m.id_range for m in mentions if m.id_range is not None]
    keys = {k for m in mentions for k in m.keys}
    f = _INDEX
    for value, block in zip(values, blocks, strict=True):
        if block is None:
            continue
        if ranges and isinstance(value, int | float) and not isinstance(value, bool):
            block[f["link_range_known"]] = 1.0
            lo, hi = ranges[0]
            block[f["link_in_range"]] = float(lo <= value <= hi)
            block[f["link_below_range"]] = float(value < lo)
            block[f["link_above_range"]] = float(value > hi)
        if keys and isinstance(value, str) and facts.get(value) is None:
            block[f["link_keys_known"]] = 1.0
            block[f["link_in_keys"]] = float(value in keys)


def json_type_matches(value: Any, declared: Any) -> bool | None:
    """Does ``value`` have a JSON schema ``type`` (a name or a list of names) as a Python tool
    sees it?  ``integer`` means a Python ``int``, never a bool; ``number`` an int or a float,
    never a bool.  None when ``declared`` names no type this knows."""
    names = declared if isinstance(declared, list) else [declared]
    checks = {
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list | tuple),
        "object": lambda v: isinstance(v, Mapping),
        "null": lambda v: v is None,
    }
    known = [checks[n] for n in names if isinstance(n, str) and n in checks]
    if not known:
        return None
    return any(check(value) for check in known)


@dataclass(frozen=True)
class Vocabulary:
    """What the featurizer learned from training calls and tool specs: the tools, each tool's
    argument slots, and the declared types and required arguments of tools whose JSON schema is
    known.  JSON-serializable (saved with the model).

    Attributes:
        tools: tool names, sorted; the one-hot order.
        arg_slots: tool -> its argument names (sorted, at most :data:`MAX_ARG_SLOTS`).
        declared_types: tool -> argument -> JSON schema ``type`` (a name or a list).
        required: tool -> required argument names.
    """

    tools: tuple[str, ...]
    arg_slots: dict[str, tuple[str, ...]]
    declared_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Vocabulary:
        """Tools and the most frequent argument names of each (ties by name); declared types
        from ``schemas`` (tool -> JSON schema of its parameters) for the tools seen."""
        names: dict[str, Counter[str]] = {}
        for tool, args in calls:
            names.setdefault(tool, Counter()).update(args.keys())
        slots = {}
        for tool, counts in names.items():
            top = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_ARG_SLOTS]
            slots[tool] = tuple(sorted(top))
        declared: dict[str, dict[str, Any]] = {}
        required: dict[str, tuple[str, ...]] = {}
        for tool, schema in (schemas or {}).items():
            if tool not in names or not isinstance(schema, Mapping):
                continue
            props = schema.get("properties")
            if isinstance(props, Mapping):
                declared[tool] = {
                    str(k): v["type"]
                    for k, v in props.items()
                    if isinstance(v, Mapping) and isinstance(v.get("type"), str | list)
                }
            req = schema.get("required")
            if isinstance(req, list):
                required[tool] = tuple(str(r) for r in req)
        return cls(tuple(sorted(names)), slots, declared, required)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "tools": list(self.tools),
            "arg_slots": {k: list(v) for k, v in self.arg_slots.items()},
            "declared_types": self.declared_types,
            "required": {k: list(v) for k, v in self.required.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Inverse of :meth:`as_dict`; raises ``ValueError`` for a malformed one."""
        tools = data.get("tools")
        slots = data.get("arg_slots")
        declared = data.get("declared_types", {})
        required = data.get("required", {})
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise ValueError("vocabulary.tools must be a list of strings")
        if not isinstance(slots, Mapping) or set(slots) != set(tools):
            raise ValueError("vocabulary.arg_slots must name exactly the vocabulary's tools")
        out = {}
        for tool, names in slots.items():
            if (
                not isinstance(names, list)
                or len(names) > MAX_ARG_SLOTS
                or not all(isinstance(n, str) for n in names)
            ):
                raise ValueError(f"vocabulary.arg_slots[{tool!r}] must list <= 4 names")
            out[tool] = tuple(names)
        if not isinstance(declared, Mapping) or not all(
            isinstance(v, Mapping) for v in declared.values()
        ):
            raise ValueError("vocabulary.declared_types must map tools to objects")
        if not isinstance(required, Mapping) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in required.values()
        ):
            raise ValueError("vocabulary.required must map tools to lists of names")
        return cls(
            tuple(tools),
            out,
            {str(k): dict(v) for k, v in declared.items()},
            {str(k): tuple(v) for k, v in required.items()},
        )


class CallFeaturizer:
    """Turns ``(situation text, tool, args)`` into a feature row; see the module docstring.

    Args:
        vocabulary: the tools and argument slots (from :meth:`Vocabulary.fit` on training
            calls).
    """

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._tool_index = {t: i for i, t in enumerate(vocabulary.tools)}
        n_tools = len(vocabulary.tools)
        self._slots_at = n_tools
        self._pool_at = n_tools + MAX_ARG_SLOTS * len(VALUE_FEATURES)
        self._call_at = self._pool_at + len(VALUE_FEATURES)
        self._text_at = self._call_at + len(_CALL_FEATURES)
        self.dim = self._text_at + TEXT_BUCKETS
        """Length of a feature row."""

    def knows(self, tool: str) -> bool:
        """True when ``tool`` was in the training calls."""
        return tool in self._tool_index

    def feature_names(self) -> list[str]:
        """The name of every column, in order."""
        names = [f"tool={t}" for t in self.vocabulary.tools]
        for i in range(MAX_ARG_SLOTS):
            names += [f"arg{i}.{n}" for n in VALUE_FEATURES]
        names += [f"any.{n}" for n in VALUE_FEATURES]
        names += list(_CALL_FEATURES)
        names += [f"word_bucket_{i}" for i in range(TEXT_BUCKETS)]
        return names

    def feature_groups(self) -> list[int]:
        """A group id per column (:data:`FEATURE_GROUPS` order): the tool's identity (0), then
        the kind of each argument feature (type, number, string, path, situation, link,
        schema) wherever it appears, call-level facts, the situation's words."""
        ids = [0] * len(self.vocabulary.tools)
        per_value = [FEATURE_GROUPS.index(_kind(n)) for n in VALUE_FEATURES]
        ids += per_value * (MAX_ARG_SLOTS + 1)
        ids += [FEATURE_GROUPS.index("call")] * len(_CALL_FEATURES)
        ids += [FEATURE_GROUPS.index("words")] * TEXT_BUCKETS
        return ids

    def transform_one(self, situation: str, tool: str, args: Mapping[str, Any]) -> np.ndarray:
        """One row ``[D]``.

        Raises:
            KeyError: ``tool`` is not in the vocabulary (check :meth:`knows` first).
        """
        row = np.zeros(self.dim, dtype=np.float32)
        row[self._tool_index[tool]] = 1.0
        facts = parse_situation(situation)
        slots = self.vocabulary.arg_slots[tool]
        values = [args.get(name) for name in slots]
        blocks: list[np.ndarray | None] = [
            value_features(args[name], facts) if name in args else None for name in slots
        ]
        _link_features(values, blocks, facts)
        declared = self.vocabulary.declared_types.get(tool, {})
        for name, block in zip(slots, blocks, strict=True):
            if block is not None and name in declared:
                match = json_type_matches(args[name], declared[name])
                if match is not None:
                    block[_INDEX["schema_known"]] = 1.0
                    block[_INDEX["schema_match" if match else "schema_mismatch"]] = 1.0
        width = len(VALUE_FEATURES)
        pooled = np.zeros(width, dtype=np.float32)
        for i, block in enumerate(blocks):
            if block is not None:
                row[self._slots_at + i * width : self._slots_at + (i + 1) * width] = block
                np.maximum(pooled, block, out=pooled)
        row[self._pool_at : self._pool_at + width] = pooled
        required = self.vocabulary.required.get(tool, ())
        row[self._call_at + 0] = sum(1 for name in slots if name not in args)
        row[self._call_at + 1] = sum(1 for name in args if name not in slots)
        row[self._call_at + 2] = sum(1 for name in required if name not in args)
        row[self._call_at + 3] = float(facts.has_listing)
        row[self._call_at + 4] = float(facts.partial)
        for word in facts.words:
            if not word.isdigit():  # sizes and counts would only add noise to the buckets
                row[self._text_at + _bucket(word, TEXT_BUCKETS)] = 1.0
        return row

    def transform(self, calls: Sequence[tuple[str, str, Mapping[str, Any]]]) -> np.ndarray:
        """Rows ``[N, D]`` for ``(situation, tool, args)`` triples (tools must be known)."""
        out = np.zeros((len(calls), self.dim), dtype=np.float32)
        for i, (situation, tool, args) in enumerate(calls):
            out[i] = self.transform_one(situation, tool, args)
        return out
