"""The learned outcome model's file: bounded, validated, and no pickle.

Layout (little-endian)::

    b"WMLOM\\x00\\x01\\n"                 8 bytes: magic and format version 1
    header length                         8 bytes, unsigned
    header                                UTF-8 JSON (config, vocabulary, calibrators,
                                          examples, tensor table, payload SHA-256)
    payload                               float32 tensors, in the table's order

Loading reads nothing it has not checked: the magic and version, a header no longer than
:data:`MAX_HEADER_BYTES`, a tensor table whose shapes stay under :data:`MAX_TENSOR_ELEMENTS` in
all and add up to the payload exactly, the payload's checksum, then every part through its
validating constructor.  Any mismatch raises :class:`~wm_agents.neural.ModelFileError` saying
what was wrong; a missing file raises ``FileNotFoundError``.  Why not ``torch.save``: its files
are pickles, and unpickling a file runs whatever it names (``weights_only`` narrows that, it
does not make a damaged file fail clearly).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agents.neural.model_config import ModelFileError

__all__ = [
    "MAGIC",
    "MAX_HEADER_BYTES",
    "MAX_TENSOR_ELEMENTS",
    "read_model_file",
    "write_model_file",
]

MAGIC = b"WMLOM\x00\x01\n"
MAX_HEADER_BYTES = 64 * 2**20
"""Largest header read (the examples kept with a model live there)."""
MAX_TENSOR_ELEMENTS = 16 * 2**20
"""Largest number of float32 values read (64 MiB)."""
FORMAT = "wm_agents.LearnedOutcomeModel"


def write_model_file(
    path: str | Path, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``header`` (JSON-serializable) and float32 ``tensors`` to ``path`` (atomically:
    a temporary file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = []
    chunks = []
    offset = 0
    for name, tensor in tensors.items():
        arr = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype="<f4")
        if not np.isfinite(arr).all():
            raise ValueError(f"tensor {name!r} holds non-finite values; refusing to save")
        table.append({"name": name, "shape": list(arr.shape), "offset": offset})
        chunks.append(arr.tobytes())
        offset += arr.size
    payload = b"".join(chunks)
    full = {
        **dict(header),
        "format": FORMAT,
        "tensors": table,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    text = json.dumps(full, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(
            f"header of {len(text)} bytes exceeds {MAX_HEADER_BYTES}; keep fewer examples"
        )
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(MAGIC)
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        fh.write(payload)
    tmp.replace(path)
    return path


def _shape(entry: Any, path: Path) -> tuple[str, tuple[int, ...], int]:
    if not isinstance(entry, Mapping):
        raise ModelFileError(f"{path}: a tensor table entry is not an object")
    name, shape, offset = entry.get("name"), entry.get("shape"), entry.get("offset")
    if (
        not isinstance(name, str)
        or not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(d, int) and 0 <= d <= MAX_TENSOR_ELEMENTS for d in shape)
        or not isinstance(offset, int)
    ):
        raise ModelFileError(f"{path}: malformed tensor table entry {str(entry)[:200]}")
    return name, tuple(shape), offset


def read_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a file written by :func:`write_model_file`: ``(header, tensors)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: anything else wrong with it (see the module docstring).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no learned outcome model file at {path}")
    size = path.stat().st_size
    with path.open("rb") as fh:
        magic = fh.read(len(MAGIC))
        if magic[:6] != MAGIC[:6]:
            raise ModelFileError(f"{path} is not a learned outcome model file (bad magic)")
        if magic != MAGIC:
            raise ModelFileError(f"{path} has format version {magic[6]}, this library reads 1")
        raw_len = fh.read(8)
        if len(raw_len) != 8:
            raise ModelFileError(f"{path} is truncated (no header length)")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > MAX_HEADER_BYTES or header_len > size:
            raise ModelFileError(f"{path} claims a header of {header_len} bytes (corrupt?)")
        text = fh.read(header_len)
        if len(text) != header_len:
            raise ModelFileError(f"{path} is truncated (header cut short)")
        try:
            header = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelFileError(f"{path} has an unreadable header (corrupt?): {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ModelFileError(f"{path} is not a {FORMAT} file")
        table = header.get("tensors")
        if not isinstance(table, list):
            raise ModelFileError(f"{path} has no tensor table")
        entries = [_shape(e, path) for e in table]
        total = 0
        for name, shape, offset in entries:
            if offset != total:
                raise ModelFileError(f"{path}: tensor {name!r} is not where the table says")
            total += math.prod(shape)
            if total > MAX_TENSOR_ELEMENTS:
                raise ModelFileError(f"{path} holds more than {MAX_TENSOR_ELEMENTS} values")
        payload = fh.read(total * 4 + 1)
    if len(payload) != total * 4:
        raise ModelFileError(
            f"{path} has {len(payload)} payload bytes, its table says {total * 4} (corrupt?)"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelFileError(f"{path}: the weights do not match their checksum (corrupt?)")
    values = np.frombuffer(payload, dtype="<f4")
    tensors = {}
    for name, shape, offset in entries:
        n = math.prod(shape)
        arr = values[offset : offset + n].reshape(shape).astype(np.float32)
        tensors[name] = torch.from_numpy(arr)
    return header, tensors
