"""A latent world model from pixels: convolutional encoder/decoder and a recurrent state-space
model (RSSM) with an ensemble of transition heads, behind the same ``imagine`` (issue 16).

Why an RSSM (PlaNet / Dreamer) rather than Ha & Schmidhuber's VAE + MDN-RNN: the RSSM is trained
end to end, so the latent keeps what predicts the future (a VAE trained alone keeps what
reconstructs one frame, and a pole a few pixels wide is cheap to drop); its deterministic path
(a GRU) carries velocity across steps, and its stochastic part keeps the model honest about what
one frame cannot tell. Planning then runs in the latent space with the same CEM as the vector
agent: candidates stay action sequences.

The state is a belief ``(h, z)``: ``h`` the GRU's deterministic state, ``z`` a diagonal
Gaussian sample. Each step:

* prior (imagination): ``h' = GRU(h, f(z, a))``, ``z' ~ p_k(z' | h')`` from head ``k``;
* posterior (filtering a real frame): ``z' ~ q(z' | h', e)`` with ``e = encoder(frames)``;
* heads on ``(h, z)``: the frames (decoder), the reward, and whether the episode goes on.

**Uncertainty** comes from ``ensemble`` prior heads, each trained to match the posterior (as
Plan2Explore's one-step ensemble): imagined with head ``k``, member ``k``'s rollout is its own
particle, and the spread of the members' returns is the outcome's uncertainty, as for the
vector ensemble, so the same gate applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wm_agents.core import LearnReport, Outcome

__all__ = ["LatentBelief", "LatentConfig", "LatentWorldModel"]


@dataclass(frozen=True)
class LatentConfig:
    """Sizes and training settings.

    Attributes:
        channels: input channels (frames x colour channels of the pixel observation).
        size: frame side, a power of two >= 8 (the conv stack halves it down to 4).
        action_dim: the action vector's size (one-hot size for discrete actions).
        deter, stoch, hidden: GRU state, stochastic latent and MLP widths.
        ensemble: prior heads (members) for the uncertainty.
        depth: channels of the first conv layer (doubling per layer).
        free_nats: KL below this is not penalised (lets the latent carry information early).
        kl_balance: share of the KL's weight that trains the priors toward the posterior (the
            rest holds the posterior toward the priors); DreamerV2's KL balancing.  0.5 is the
            plain KL at half the weight.  Above 0.5, encoding what a frame shows costs the
            posterior little, so a small object (a 2 x 2 dot, a thin pole) is not dropped for
            the KL it would cost (at 0.5 a tiny model reconstructs a moving dot as an empty frame).
        kl_scale, reward_scale, continue_scale: loss weights.
        end_weight_cap: in the continue loss an episode end weighs as much as the batch's
            continuing steps per end, at most this (1, the default: unweighted).  Weighting
            miscalibrates the end probabilities the planner multiplies: on CartPole from pixels
            at 20 the head gave steps 10 or more before a fall a mean end probability of 0.19,
            every plan looked like a fall, and the agent acted at random (BENCHMARKS.md).
        lr: Adam learning rate; grad_clip: gradient norm clip.
    """

    channels: int
    size: int
    action_dim: int
    deter: int = 128
    stoch: int = 16
    hidden: int = 128
    ensemble: int = 5
    depth: int = 16
    free_nats: float = 1.0
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    reward_scale: float = 1.0
    continue_scale: float = 1.0
    end_weight_cap: float = 1.0
    lr: float = 1e-3
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 8, got {self.size}")
        for name in ("channels", "action_dim", "deter", "stoch", "hidden", "ensemble", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.end_weight_cap < 1.0:
            raise ValueError(f"end_weight_cap must be >= 1, got {self.end_weight_cap}")
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"kl_balance must be in [0, 1], got {self.kl_balance}")

    @property
    def layers(self) -> int:
        """Conv layers from ``size`` down to 4 x 4."""
        return int(math.log2(self.size)) - 2


@dataclass
class LatentBelief:
    """What the model believes now: ``h [N, deter]``, ``z [N, stoch]`` (``N`` beliefs)."""

    h: torch.Tensor
    z: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        return torch.cat([self.h, self.z], dim=-1)


def _gaussian(stats: torch.Tensor, min_std: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    mean, raw = stats.chunk(2, dim=-1)
    return mean, F.softplus(raw) + min_std


def _kl(mq: torch.Tensor, sq: torch.Tensor, mp: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dimension."""
    return (torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5).sum(-1)


class _Encoder(nn.Module):
    def __init__(self, cfg: LatentConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.channels
        for i in range(cfg.layers):
            c_out = cfg.depth * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = c_in * 16

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.float() / 255.0 - 0.5)


class _Decoder(nn.Module):
    def __init__(self, cfg: LatentConfig) -> None:
        super().__init__()
        c = cfg.depth * 2 ** (cfg.layers - 1)
        self.c = c
        self.fc = nn.Linear(cfg.deter + cfg.stoch, c * 16)
        layers: list[nn.Module] = []
        for i in reversed(range(cfg.layers)):
            c_out = cfg.channels if i == 0 else cfg.depth * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.SiLU())
            c = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.fc(features).reshape(-1, self.c, 4, 4)
        return self.net(x)  # frames / 255 - 0.5


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, d_out))


class LatentWorldModel(nn.Module):
    """RSSM world model over pixel observations (see the module docstring).

    Args:
        config: sizes and training settings.
        seed: initial weights and every sample the model draws come from generators seeded
            with it.
    """

    def __init__(self, config: LatentConfig, *, seed: int = 0) -> None:
        super().__init__()
        self.config = cfg = config
        self.generator = torch.Generator().manual_seed(seed + 1)
        with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's RNG untouched
            torch.manual_seed(seed)
            self._build(cfg)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.lr)

    def _build(self, cfg: LatentConfig) -> None:
        self.encoder = _Encoder(cfg)
        self.decoder = _Decoder(cfg)
        self.pre_gru = nn.Sequential(nn.Linear(cfg.stoch + cfg.action_dim, cfg.hidden), nn.SiLU())
        self.gru = nn.GRUCell(cfg.hidden, cfg.deter)
        self.priors = nn.ModuleList(
            [_mlp(cfg.deter, cfg.hidden, 2 * cfg.stoch) for _ in range(cfg.ensemble)]
        )
        self.posterior = _mlp(cfg.deter + self.encoder.out_dim, cfg.hidden, 2 * cfg.stoch)
        feat = cfg.deter + cfg.stoch
        self.reward_head = _mlp(feat, cfg.hidden, 1)
        self.continue_head = _mlp(feat, cfg.hidden, 1)

    # -- files ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Config, weights and optimizer state in one file
        (:func:`~wm_agents.latent.persistence.save_latent_model`); returns the path."""
        from wm_agents.latent.persistence import save_latent_model

        return save_latent_model(self, path)

    @classmethod
    def load(cls, path: str | Path, **expect: Any) -> LatentWorldModel:
        """A model from a :meth:`save` file; ``expect_channels`` / ``expect_size`` /
        ``expect_action_dim`` / ``seed`` as :func:`~wm_agents.latent.persistence.load_latent_model`
        (whose :class:`~wm_agents.neural.model_config.ModelFileError` it raises)."""
        from wm_agents.latent.persistence import load_latent_model

        return load_latent_model(path, **expect)

    # -- beliefs ----------------------------------------------------------------------------

    def initial(self, n: int) -> LatentBelief:
        """The belief before any frame: zeros."""
        return LatentBelief(torch.zeros(n, self.config.deter), torch.zeros(n, self.config.stoch))

    def _sample(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype)
        return mean + std * noise

    def transition(self, h: torch.Tensor, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The deterministic state after ``action`` from ``(h, z)``: ``[N, deter]``."""
        return self.gru(self.pre_gru(torch.cat([z, action], -1)), h)

    def observe(
        self, belief: LatentBelief, action: torch.Tensor, frames: torch.Tensor
    ) -> LatentBelief:
        """The belief after ``action`` and then seeing ``frames`` (``[N, C, S, S]`` uint8);
        the first frames of an episode go with :meth:`initial` and a zero action."""
        with torch.no_grad():
            h = self.transition(belief.h, belief.z, action.float())
            mean, std = _gaussian(self.posterior(torch.cat([h, self.encoder(frames)], -1)))
            return LatentBelief(h, self._sample(mean, std))

    def reconstruct(self, belief: LatentBelief) -> torch.Tensor:
        """The frames the model sees in ``belief`` as pixel values in [0, 1], ``[N, C, S, S]``
        (what :meth:`decode` rounds; the pixel errors compare these)."""
        with torch.no_grad():
            return (self.decoder(belief.features) + 0.5).clamp(0, 1)

    def decode(self, belief: LatentBelief) -> np.ndarray:
        """The frames the model sees in ``belief``, ``uint8 [N, C, S, S]``."""
        return (self.reconstruct(belief) * 255).round().to(torch.uint8).numpy()

    # -- imagination ------------------------------------------------------------------------

    def rollout(
        self, belief: LatentBelief, actions: torch.Tensor, *, gamma: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Imagine ``[B, H, A]`` action sequences from one belief (``N = 1``) with every member:
        returns ``[E, B]`` (discounted, weighted by the probability of still running) and the
        probability that the episode ends within the horizon ``[E, B]``."""
        e, (b, horizon, _) = self.config.ensemble, actions.shape
        h = belief.h.expand(e * b, -1)
        z = belief.z.expand(e * b, -1)
        acts = actions.float().repeat(e, 1, 1)  # member-major: rows k*B..(k+1)*B-1
        ret = torch.zeros(e * b)
        alive = torch.ones(e * b)
        with torch.no_grad():
            for t in range(horizon):
                h = self.transition(h, z, acts[:, t])
                rows = h.reshape(e, b, -1)  # member k's particles use prior head k only
                own = torch.cat([head(rows[k]) for k, head in enumerate(self.priors)])
                z = self._sample(*_gaussian(own))
                feat = torch.cat([h, z], -1)
                ret = ret + (gamma**t) * alive * self.reward_head(feat).squeeze(-1)
                alive = alive * torch.sigmoid(self.continue_head(feat).squeeze(-1))
        return ret.reshape(e, b), (1 - alive).reshape(e, b)

    def dream(
        self, belief: LatentBelief, actions: torch.Tensor, *, member: int = 0
    ) -> list[LatentBelief]:
        """The beliefs of one open-loop imagined trajectory (``actions [H, A]``, prior head
        ``member``), one per step: what :meth:`decode` turns into imagined frames."""
        if not 0 <= member < self.config.ensemble:
            raise ValueError(f"member must be in [0, {self.config.ensemble - 1}], got {member}")
        out = []
        h, z = belief.h, belief.z
        with torch.no_grad():
            for a in actions.float():
                h = self.transition(h, z, a[None])
                z = self._sample(*_gaussian(self.priors[member](h)))
                out.append(LatentBelief(h, z))
        return out

    def imagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1, gamma: float = 1.0
    ) -> list[Outcome]:
        """One :class:`Outcome` per action-sequence candidate (``[H][A]``, truncated to
        ``horizon``), imagined from ``state`` (a :class:`LatentBelief`, or frames
        ``[C, S, S]`` filtered from the initial belief).

        Raises:
            ValueError: candidates of the wrong shape, or a state that is neither.
        """
        belief = self._belief(state)
        actions = self._actions(candidates, horizon)
        returns, ended = self.rollout(belief, actions, gamma=gamma)
        out = []
        for i, cand in enumerate(candidates):
            members = returns[:, i].tolist()
            if not all(math.isfinite(v) for v in members):
                out.append(Outcome.unknown(cand, "non-finite imagined return", uncertainty=1.0))
                continue
            out.append(
                Outcome(
                    candidate=cand,
                    prediction={"source": "latent", "p_end": float(ended[:, i].mean())},
                    value=float(np.mean(members)),
                    uncertainty=float(np.std(members)),
                    risk=float(ended[:, i].mean()),
                    member_values=members,
                )
            )
        return out

    def _belief(self, state: Any) -> LatentBelief:
        if isinstance(state, LatentBelief):
            if state.h.shape[0] != 1:
                raise ValueError("imagine plans from one belief (N = 1)")
            return state
        frames = torch.as_tensor(np.asarray(state))
        want = (self.config.channels, self.config.size, self.config.size)
        if tuple(frames.shape) != want:
            raise ValueError(
                f"state must be a LatentBelief or frames {want}, got {tuple(frames.shape)}"
            )
        zero = torch.zeros(1, self.config.action_dim)
        return self.observe(self.initial(1), zero, frames[None])

    def _actions(self, candidates: Sequence[Any], horizon: int) -> torch.Tensor:
        if len(candidates) == 0:
            raise ValueError("no candidates to imagine: pass at least one action sequence")
        arr = torch.as_tensor(np.asarray(candidates, dtype=np.float32))
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] != self.config.action_dim:
            raise ValueError(
                f"candidates must be [B, H, {self.config.action_dim}] action sequences, "
                f"got shape {tuple(arr.shape)}"
            )
        return arr[:, :horizon] if horizon >= 1 else arr

    # -- learning ---------------------------------------------------------------------------

    def loss(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        continues: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on a batch of sequences: ``frames [B, T, C, S, S]`` uint8,
        ``actions [B, T, A]`` (the action *before* each frame; zeros for an episode's first),
        ``rewards [B, T]`` and ``continues [B, T]`` (0 where the episode ended at that frame);
        ``mask [B, T]`` is 0 on padding (ignored by every term).
        """
        b, t = frames.shape[:2]
        embed = self.encoder(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)
        h = torch.zeros(b, self.config.deter)
        z = torch.zeros(b, self.config.stoch)
        feats, dyn_kls, rep_kls = [], [], []
        for i in range(t):
            h = self.transition(h, z, actions[:, i].float())
            mq, sq = _gaussian(self.posterior(torch.cat([h, embed[:, i]], -1)))
            z = self._sample(mq, sq)  # reparameterised: gradients reach mq and sq
            priors = [_gaussian(head(h)) for head in self.priors]
            # KL balancing: the same KL twice, each with the other side's gradient stopped
            mq_, sq_ = mq.detach(), sq.detach()
            dyn_kls.append(torch.stack([_kl(mq_, sq_, mp, sp) for mp, sp in priors]).mean(0))
            rep_kls.append(
                torch.stack([_kl(mq, sq, mp.detach(), sp.detach()) for mp, sp in priors]).mean(0)
            )
            feats.append(torch.cat([h, z], -1))
        feat = torch.stack(feats, 1).reshape(b * t, -1)
        w = torch.ones(b * t) if mask is None else mask.reshape(-1).float()
        n = w.sum().clamp(min=1.0)
        target = frames.reshape(b * t, *frames.shape[2:]).float() / 255.0 - 0.5
        recon = (((self.decoder(feat) - target) ** 2).sum((1, 2, 3)) * w).sum() / n
        err = (self.reward_head(feat).squeeze(-1) - rewards.reshape(-1).float()) ** 2
        reward = (err * w).sum() / n
        going = continues.reshape(-1).float()
        ends = ((1.0 - going) * w).sum()
        end_weight = (
            torch.clamp((going * w).sum() / ends, 1.0, self.config.end_weight_cap)
            if float(ends) > 0
            else torch.tensor(1.0)
        )
        bce = F.binary_cross_entropy_with_logits(
            self.continue_head(feat).squeeze(-1), going, reduction="none"
        )
        cont = (bce * w * torch.where(going > 0.5, 1.0, end_weight)).sum() / n
        cfg = self.config
        dyn = (torch.stack(dyn_kls, 1).reshape(-1) * w).sum() / n
        rep = (torch.stack(rep_kls, 1).reshape(-1) * w).sum() / n
        kl = dyn.detach()  # the same value as rep
        kl_loss = cfg.kl_balance * torch.clamp(dyn, min=cfg.free_nats) + (
            1.0 - cfg.kl_balance
        ) * torch.clamp(rep, min=cfg.free_nats)
        total = (
            recon + cfg.kl_scale * kl_loss + cfg.reward_scale * reward + cfg.continue_scale * cont
        )
        parts = {
            "recon": float(recon.detach()),
            "kl": float(kl.detach()),
            "reward": float(reward.detach()),
            "continue": float(cont.detach()),
        }
        return total, parts

    def train_step(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        continues: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One gradient step on a batch (see :meth:`loss`); returns the loss parts."""
        self.train()
        total, parts = self.loss(frames, actions, rewards, continues, mask)
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite training loss: {parts}")
        self.optimizer.zero_grad()
        total.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.eval()
        return parts

    def learn(self, transitions: Sequence[Any]) -> LearnReport:
        """Sequences come from a replay of whole episodes (:mod:`wm_agents.latent.replay`),
        not single transitions: use :meth:`train_step` on its batches."""
        return LearnReport(
            n_transitions=len(transitions),
            updated=False,
            message="the latent model trains on sequences: call train_step on replay batches",
        )
