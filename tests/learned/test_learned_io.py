"""Saving and loading: a round trip gives the same outcomes; a damaged file fails clearly."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from wm_agents.bench.toolworld import CallSplit
from wm_agents.learned import LearnedOutcomeModel
from wm_agents.learned.io import MAGIC
from wm_agents.neural import ModelFileError


@pytest.fixture(scope="module")
def saved(trained: LearnedOutcomeModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained.save(tmp_path_factory.mktemp("model") / "outcomes.wmlom")


def test_round_trip(trained: LearnedOutcomeModel, saved: Path, small_split: CallSplit):
    loaded = LearnedOutcomeModel.load(saved)
    rows = small_split.test[:10]
    state = rows[0].state()
    a = trained.imagine(state, [r.call() for r in rows] + [{"name": "mail", "args": {}}])
    b = loaded.imagine(state, [r.call() for r in rows] + [{"name": "mail", "args": {}}])
    assert [o.model_dump() for o in a] == [o.model_dump() for o in b]
    assert loaded.examples == trained.examples
    assert loaded.config == trained.config and loaded.schemas == trained.schemas


def test_an_unfitted_model_round_trips_without_examples(tmp_path: Path, trained):
    model = LearnedOutcomeModel(trained.config)
    model.add_examples(trained.examples[:5])
    loaded = LearnedOutcomeModel.load(model.save(tmp_path / "m", include_examples=False))
    assert loaded.fitted is None and loaded.examples == []


def corrupt(src: Path, dst: Path, edit) -> Path:
    data = bytearray(src.read_bytes())
    dst.write_bytes(bytes(edit(data)))
    return dst


def header_of(data: bytearray) -> tuple[dict, int]:
    (n,) = struct.unpack("<Q", data[len(MAGIC) : len(MAGIC) + 8])
    start = len(MAGIC) + 8
    return json.loads(data[start : start + n]), start + n


def with_header(data: bytearray, header: dict) -> bytearray:
    _, end = header_of(data)
    text = json.dumps(header).encode()
    return bytearray(MAGIC + struct.pack("<Q", len(text)) + text) + data[end:]


def flip_last(data: bytearray) -> bytearray:
    data[-1] ^= 0xFF
    return data


def wrong_shape(data: bytearray) -> bytearray:
    header, _ = header_of(data)
    header["tensors"][0]["shape"] = [1, 1]
    return with_header(data, header)


def bad_config(data: bytearray) -> bytearray:
    header, _ = header_of(data)
    header["config"]["ensemble_size"] = -3
    return with_header(data, header)


def extra_tool(data: bytearray) -> bytearray:
    header, _ = header_of(data)
    header["fitted"]["vocabulary"]["tools"].append("zzz")
    return with_header(data, header)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: bytearray(b"PK\x03\x04") + d[4:], "bad magic"),
        (lambda d: d[: len(MAGIC) + 4], "truncated"),
        (lambda d: d[:-10], "payload bytes"),
        (flip_last, "checksum"),
        (lambda d: d[:20] + bytearray(b"\xff\xfe") + d[22:], "unreadable header"),
        (lambda d: bytearray(MAGIC + struct.pack("<Q", 2**40)) + d[16:], "claims a header"),
        (wrong_shape, "not where the table says|payload bytes"),
        (bad_config, "not a valid learned outcome model"),
        (extra_tool, "not a valid learned outcome model"),
    ],
)
def test_damaged_files_raise_a_clear_error(saved: Path, tmp_path: Path, edit, message):
    path = corrupt(saved, tmp_path / "bad.wmlom", edit)
    with pytest.raises(ModelFileError, match=message):
        LearnedOutcomeModel.load(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        LearnedOutcomeModel.load(tmp_path / "nope.wmlom")
