"""How well the latent model sees and predicts, in pixels (issue 16, item 5).

For real episodes (frames and the actions before them, as
:class:`~wm_agents.latent.replay.EpisodeReplay` keeps them): the belief is filtered on the real
frames up to a start step; from there

* **reconstruction error**: each real frame filtered into the belief and decoded again;
* **k-step prediction error**: the frames imagined open-loop (prior only, no more real frames)
  for the episode's own next ``k`` actions, every ensemble member's, decoded;
* **copy-last error**: the last frame seen at the start, held for ``k`` steps: what "nothing
  moves" scores, so a k-step error means something beside it.

Errors are mean squared differences of pixel values scaled to [0, 1], averaged over channels,
pixels, members and episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from wm_agents.latent.model import LatentWorldModel

__all__ = ["prediction_errors"]


def prediction_errors(
    model: LatentWorldModel,
    episodes: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    start: int = 3,
    horizon: int = 10,
) -> dict[str, Any]:
    """Reconstruction, k-step (``k = 1..horizon``) and copy-last errors over ``episodes``
    (each ``(frames [T, C, S, S] uint8, actions [T, A])``, ``actions[t]`` taken before
    ``frames[t]``); episodes shorter than ``start + horizon + 1`` frames are skipped.

    Returns ``{"episodes", "start", "horizon", "reconstruction_mse", "k_step_mse",
    "copy_last_mse"}`` (the last two one value per ``k``; ``None`` values when no episode was
    long enough).

    Raises:
        ValueError: ``start < 0`` or ``horizon < 1``.
    """
    if start < 0 or horizon < 1:
        raise ValueError(f"need start >= 0 and horizon >= 1, got {start} and {horizon}")
    recon, k_step, copy_last = [], [], []
    with torch.no_grad():
        for frames, actions in episodes:
            if len(frames) < start + horizon + 1:
                continue
            r, k, c = _episode_errors(model, frames, actions, start, horizon)
            recon.append(r)
            k_step.append(k)
            copy_last.append(c)
    used = len(recon)
    return {
        "episodes": used,
        "start": start,
        "horizon": horizon,
        "reconstruction_mse": float(np.mean(recon)) if used else None,
        "k_step_mse": np.mean(k_step, axis=0).round(6).tolist() if used else None,
        "copy_last_mse": np.mean(copy_last, axis=0).round(6).tolist() if used else None,
    }


def _episode_errors(
    model: LatentWorldModel, frames: np.ndarray, actions: np.ndarray, start: int, horizon: int
) -> tuple[float, np.ndarray, np.ndarray]:
    real = torch.as_tensor(frames[: start + horizon + 1]).float() / 255.0
    acts = torch.as_tensor(actions[: start + horizon + 1], dtype=torch.float32)
    belief = model.initial(1)
    recon_err = []
    at_start = belief
    for t in range(start + horizon + 1):
        belief = model.observe(belief, acts[t][None], torch.as_tensor(frames[t])[None])
        if t == start:
            at_start = belief
        if t >= start:
            recon_err.append(_mse(model, belief, real[t]))
    k_err = np.zeros(horizon)
    for member in range(model.config.ensemble):
        dreamt = model.dream(at_start, acts[start + 1 :], member=member)
        k_err += [_mse(model, b, real[start + 1 + i]) for i, b in enumerate(dreamt)]
    k_err /= model.config.ensemble
    held = real[start]
    copy_err = np.array(
        [float(((held - real[start + k]) ** 2).mean()) for k in range(1, horizon + 1)]
    )
    return float(np.mean(recon_err)), k_err, copy_err


def _mse(model: LatentWorldModel, belief: Any, target: torch.Tensor) -> float:
    """Mean squared error of the decoded belief against ``target`` (pixels in [0, 1])."""
    return float(((model.reconstruct(belief)[0] - target) ** 2).mean())
