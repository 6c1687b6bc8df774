"""The latent world model's file: its :class:`~wm_agents.latent.model.LatentConfig`, weights and
(for training on) the optimizer's state, in one torch file.

As for the vector ensemble (:mod:`wm_agents.neural.persistence`): the file records its format
and version; loading reads it with ``torch.load(weights_only=True)``, checks the config's sizes
against bounds before building anything (a damaged or hostile file cannot ask for a network of
any size), then the weights, and every problem is a
:class:`~wm_agents.neural.model_config.ModelFileError` that says what is wrong.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from wm_agents.latent.model import LatentConfig, LatentWorldModel
from wm_agents.neural.model_config import ModelFileError
from wm_agents.neural.persistence import read_model_file

__all__ = ["FILE_FORMAT", "FILE_VERSION", "SIZE_LIMITS", "load_latent_model", "save_latent_model"]

FILE_FORMAT = "wm_agents.LatentWorldModel"
FILE_VERSION = 1

SIZE_LIMITS = {
    "channels": 64,
    "size": 256,
    "action_dim": 1024,
    "deter": 4096,
    "stoch": 1024,
    "hidden": 4096,
    "ensemble": 64,
    "depth": 256,
}
"""The largest value of each size a file may ask for (far above any model this library trains:
64 x 64 frames, a few hundred latent units)."""


def save_latent_model(model: LatentWorldModel, path: str | Path) -> Path:
    """Write config + weights + optimizer state to one file (folders created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "config": dataclasses.asdict(model.config),
            "state_dict": model.state_dict(),
            "optimizer": model.optimizer.state_dict(),
        },
        path,
    )
    return path


def load_latent_model(
    path: str | Path,
    *,
    expect_channels: int | None = None,
    expect_size: int | None = None,
    expect_action_dim: int | None = None,
    seed: int = 0,
) -> LatentWorldModel:
    """Load a file written by :func:`save_latent_model` (``seed``: the new model's sampling
    stream).

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: a corrupt or foreign file, a config out of bounds, weights that do not
            fit it, or a model of other frames or actions than ``expect_*``.
    """
    path = Path(path)
    blob = read_model_file(path, FILE_FORMAT)
    if blob.get("version") != FILE_VERSION:
        raise ModelFileError(
            f"{path} has file version {blob.get('version')}, this library reads {FILE_VERSION}"
        )
    config = _config(path, blob.get("config"))
    for name, want in (
        ("channels", expect_channels),
        ("size", expect_size),
        ("action_dim", expect_action_dim),
    ):
        if want is not None and getattr(config, name) != want:
            raise ModelFileError(f"{path} models {name} = {getattr(config, name)}, expected {want}")
    model = LatentWorldModel(config, seed=seed)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path} weights do not match its config: {err}") from err
    if "optimizer" in blob:
        try:
            model.optimizer.load_state_dict(blob["optimizer"])
        except (ValueError, KeyError, TypeError) as err:
            raise ModelFileError(f"{path} has an optimizer state that does not fit: {err}") from err
    return model


def _config(path: Path, raw: Any) -> LatentConfig:
    """The file's :class:`LatentConfig`, its fields checked before any network is built."""
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path} has no config")
    known = {f.name: f for f in dataclasses.fields(LatentConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ModelFileError(f"{path} has an invalid config: unknown fields {unknown}")
    for name, limit in SIZE_LIMITS.items():
        value = raw.get(name)
        if name in raw and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ModelFileError(f"{path} has an invalid config: {name} = {value!r}")
        if isinstance(value, int) and value > limit:
            raise ModelFileError(
                f"{path} has an invalid config: {name} = {value} (at most {limit})"
            )
    for name in set(raw) - set(SIZE_LIMITS):
        if not isinstance(raw[name], int | float) or isinstance(raw[name], bool):
            raise ModelFileError(f"{path} has an invalid config: {name} = {raw[name]!r}")
    try:
        return LatentConfig(**raw)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{path} has an invalid config: {err}") from None
