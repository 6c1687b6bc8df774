"""The ensemble's model file: config + weights + normalizers + data ranges, in one torch file.

A file records its format and version; loading checks both, rebuilds the network from the
saved (size-bounded, see :mod:`wm_agents.neural.model_config`) config before reading any
weights, and reads with ``torch.load(weights_only=True)``, so a damaged or foreign file fails
with a :class:`~wm_agents.neural.model_config.ModelFileError` that says what is wrong instead of
running code or allocating what it asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import ValidationError

from wm_agents.neural.model_config import EnsembleConfig, ModelFileError, config_problem
from wm_agents.neural.network import EnsembleNetwork
from wm_agents.spaces import ActionSpec

__all__ = ["FILE_FORMAT", "FILE_VERSION", "load_model", "read_model_file", "save_model"]

FILE_FORMAT = "wm_agents.EnsembleDynamicsModel"
FILE_VERSION = 4
# Version 2 files lack the data ranges of version 3 (``reward_seen``, ``value_seen``), and
# versions 2-3 the observation range of version 4 (``state_seen``); they load with nothing seen
# (no clipping, no halting) until the model is fitted again.
_READABLE_VERSIONS = {
    2: {"reward_seen", "value_seen", "state_seen"},
    3: {"state_seen"},
    FILE_VERSION: set(),
}

M = TypeVar("M", bound=EnsembleNetwork)


def save_model(model: EnsembleNetwork, path: str | Path) -> Path:
    """Write config + weights + normalizers to one file (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "config": model.config.model_dump(),
            "state_dict": model.state_dict(),
        },
        path,
    )
    return path


def read_model_file(path: Path, file_format: str) -> dict[str, Any]:
    """The dict a model file holds, read with ``weights_only=True`` and checked to be of
    ``file_format`` (the ensemble's, the latent model's).

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: not a readable torch file, or not one of ``file_format``.
    """
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged zip / pickle
        raise ModelFileError(f"{path} is not a readable model file (corrupt?): {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != file_format:
        raise ModelFileError(f"{path} is not a {file_format} file")
    return blob


def load_model(
    cls: type[M],
    path: str | Path,
    *,
    expect_obs_dim: int | None = None,
    expect_action_spec: ActionSpec | None = None,
    **kwargs: Any,
) -> M:
    """Load a file written by :func:`save_model` as a ``cls`` (the ensemble model class).

    Raises :class:`ModelFileError` for a corrupt or foreign file, or when the stored model
    does not match ``expect_obs_dim`` / ``expect_action_spec``; ``FileNotFoundError`` when
    the file is missing.  ``kwargs`` (``reward_fn``, ``termination_fn``, ``seed``...) are
    passed to the constructor.
    """
    path = Path(path)
    blob = read_model_file(path, FILE_FORMAT)
    version = blob.get("version")
    if version not in _READABLE_VERSIONS:
        raise ModelFileError(
            f"{path} has file version {version}, this library reads "
            f"{', '.join(map(str, sorted(_READABLE_VERSIONS)))}"
        )
    try:
        config = EnsembleConfig(**blob["config"])
    except ValidationError as err:
        raise ModelFileError(f"{path} has an invalid config: {config_problem(err)}") from None
    except Exception as err:
        raise ModelFileError(f"{path} has an invalid config: {err}") from err
    if expect_obs_dim is not None and config.obs_dim != expect_obs_dim:
        raise ModelFileError(
            f"{path} models observations of size {config.obs_dim}, expected {expect_obs_dim}"
        )
    if expect_action_spec is not None and config.action_spec != expect_action_spec:
        raise ModelFileError(
            f"{path} models actions {config.action_spec}, expected {expect_action_spec}"
        )
    model = cls(
        config.obs_dim,
        config.action_spec,
        ensemble_size=config.ensemble_size,
        hidden=config.hidden,
        layers=config.layers,
        end_reward=config.end_reward,
        **kwargs,
    )
    try:
        missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    except (RuntimeError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path} weights do not match its config: {err}") from err
    absent = sorted(set(missing) - _READABLE_VERSIONS[version])
    if absent or unexpected:
        raise ModelFileError(
            f"{path} weights do not match its config: missing {absent}, "
            f"unexpected {sorted(unexpected)}"
        )
    return model
