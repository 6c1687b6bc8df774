"""Pictures of what the latent model sees and dreams (issue 16, item 4).

For one real episode: the real frames, the model's reconstructions of them (each frame filtered
into the belief), and, from a starting step on, the frames it imagines open-loop for the same
actions without seeing any more of the episode.  :func:`save_strip` writes the three rows as a
PNG, :func:`save_animation` the real and imagined frames side by side as a GIF.  Frames are
shown as the agent sees them: the newest frame of each stacked observation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agents.latent.model import LatentWorldModel

__all__ = ["dream_rows", "save_animation", "save_strip"]


def _newest(frames: np.ndarray, channels_per_frame: int) -> np.ndarray:
    """``[C, S, S]`` stacked frames -> the newest ``[S, S, 3]`` (grey repeated) uint8 image."""
    last = frames[-channels_per_frame:]
    img = np.repeat(last, 3, axis=0) if channels_per_frame == 1 else last
    return np.ascontiguousarray(img.transpose(1, 2, 0))


def dream_rows(
    model: LatentWorldModel,
    frames: np.ndarray,
    actions: np.ndarray,
    *,
    start: int,
    horizon: int,
    channels_per_frame: int = 3,
    member: int = 0,
) -> dict[str, list[np.ndarray]]:
    """Images for steps ``start .. start + horizon`` of one episode: ``real``,
    ``reconstructed`` (filtered) and ``imagined`` (open loop from the belief at ``start``).

    Args:
        frames: the episode's observations ``[T, C, S, S]`` uint8.
        actions: ``[T, A]`` encoded actions, ``actions[t]`` taken *before* ``frames[t]``
            (zeros at ``t = 0``), as :class:`~wm_agents.latent.replay.EpisodeReplay` keeps them.

    Raises:
        ValueError: the episode is too short for ``start + horizon``.
    """
    t_total = len(frames)
    if start < 0 or start + horizon >= t_total:
        raise ValueError(f"an episode of {t_total} frames has no steps {start}..{start + horizon}")
    belief = model.initial(1)
    recon: list[np.ndarray] = []
    beliefs = []
    for t in range(start + horizon + 1):
        a = torch.as_tensor(actions[t], dtype=torch.float32)[None]
        belief = model.observe(belief, a, torch.as_tensor(frames[t])[None])
        beliefs.append(belief)
        if t >= start:
            recon.append(_newest(model.decode(belief)[0], channels_per_frame))
    future = torch.as_tensor(actions[start + 1 : start + horizon + 1], dtype=torch.float32)
    dreamt = model.dream(beliefs[start], future, member=member)
    imagined = [recon[0]] + [_newest(model.decode(b)[0], channels_per_frame) for b in dreamt]
    real = [_newest(frames[t], channels_per_frame) for t in range(start, start + horizon + 1)]
    return {"real": real, "reconstructed": recon, "imagined": imagined}


def save_strip(rows: dict[str, list[np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """The rows as a PNG grid (one row each, one column per step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    cols = len(rows[names[0]])
    fig, axes = plt.subplots(
        len(names), cols, figsize=(1.1 * cols, 1.25 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        for c, img in enumerate(rows[name]):
            ax = axes[r][c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"+{c}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_animation(
    rows: dict[str, list[np.ndarray]], path: str | Path, *, scale: int = 4, ms: int = 150
) -> Path:
    """``real`` and ``imagined`` side by side, one GIF frame per step (nearest-neighbour
    enlarged ``scale`` times)."""
    from PIL import Image

    frames: list[Any] = []
    for real, dreamt in zip(rows["real"], rows["imagined"], strict=True):
        gap = np.full((real.shape[0], 2, 3), 255, np.uint8)
        both = np.concatenate([real, gap, dreamt], axis=1)
        img = Image.fromarray(both).resize(
            (both.shape[1] * scale, both.shape[0] * scale), Image.NEAREST
        )
        frames.append(img)
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return path
