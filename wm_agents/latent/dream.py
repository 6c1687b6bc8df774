"""Learning in dreams: a policy trained on imagined latent rollouts (issue 16, item 3).

Ha & Schmidhuber trained their controller inside the world model's dream; Dreamer trains its
actor and critic on imagined latent trajectories.  Here the imagination learners the vector agent
already has (:class:`~wm_agents.imagination.dqn.DQNLearner` for discrete actions,
:class:`~wm_agents.imagination.sac.SACLearner` for boxes) learn on the latent model's dreams, with
the belief features ``(h, z)`` as their observation:

1. real sequences from the episode replay are filtered through the model
   (:func:`filter_beliefs`): the posterior belief at every real step is a start state, and the
   members' disagreement there says how unsure the model is about *real* data;
2. from those beliefs the current policy acts inside the model (:func:`dream_rollouts`): each row
   follows one prior head drawn at random (MBPO's member per row), gets the reward head's reward
   and ends where the continue head says the episode ends; a row stops *before* the first step
   whose disagreement exceeds the 0.99 quantile of the real data's (the policy never learns from
   a dream the members do not share);
3. the policy takes gradient steps on those transitions only.  The latent space moves whenever
   the model trains, so dreams from an older model are not kept: every round dreams afresh.

Disagreement of a belief ``h`` is ``max_d std_k(mean_k[d]) / mean_k(std_k[d])``: how far the
prior heads' means for the next stochastic state spread, in units of the heads' own predicted
spread (1.0: the members disagree by as much as each one is unsure).

The policy is scored, after each round, by its imagined return from the latent beliefs of real
episode starts (greedy, mean over members, each member ending its trajectory where it predicts
the end): the number the hybrid agent's trust compares with the env's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wm_agents.imagination.buffer import TensorReplay
from wm_agents.imagination.dqn import DQNLearner
from wm_agents.imagination.rollouts import ImaginedBatch
from wm_agents.imagination.sac import SACLearner
from wm_agents.latent.model import LatentBelief, LatentWorldModel, _gaussian
from wm_agents.latent.replay import SequenceBatch
from wm_agents.spaces import ActionSpec

__all__ = [
    "DreamConfig",
    "DreamTrainer",
    "dream_rollouts",
    "episode_start_beliefs",
    "filter_beliefs",
    "imagined_latent_return",
    "latent_disagreement",
    "make_latent_policy",
    "policy_actions",
]


@dataclass(frozen=True)
class DreamConfig:
    """How the policy learns in dreams.

    Attributes:
        length: imagined steps per start belief.
        sequences: replay sequences filtered per round (``x`` the learner's sequence length
            start beliefs).
        updates: policy gradient steps per round.
        quantile: rows stop where the disagreement exceeds this quantile of the real data's.
        epsilon: DQN exploration inside the dream (coverage is free there); SAC samples.
        score_starts: real episode starts the policy's imagined return is scored from.
        score_horizon: imagined steps of that score (the env's episode limit).
    """

    length: int = 15
    sequences: int = 16
    updates: int = 100
    quantile: float = 0.99
    epsilon: float = 0.1
    score_starts: int = 16
    score_horizon: int = 500

    def __post_init__(self) -> None:
        for name in ("length", "sequences", "updates", "score_starts", "score_horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")


def make_latent_policy(
    model: LatentWorldModel, spec: ActionSpec, *, seed: int = 0
) -> DQNLearner | SACLearner:
    """A DQN (discrete actions) or SAC (box) learner over the model's belief features."""
    feat = model.config.deter + model.config.stoch
    if spec.kind == "discrete":
        assert spec.n is not None
        return DQNLearner(feat, spec.n, seed=seed)
    return SACLearner(feat, spec, seed=seed)


def policy_actions(
    policy: DQNLearner | SACLearner,
    features: torch.Tensor,
    *,
    explore: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[N, F]`` features -> ``[N, A]`` env-space actions (indices for DQN); ``explore`` is
    DQN's epsilon, or (> 0) SAC sampling instead of its mean action."""
    if isinstance(policy, DQNLearner):
        return policy.act(features, epsilon=explore, generator=generator)
    return policy.act(features, explore=explore > 0, generator=generator)


def _prior_stats(model: LatentWorldModel, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every prior head's mean and std of the next stochastic state: ``[E, N, S]`` each."""
    stats = [_gaussian(head(h)) for head in model.priors]
    return torch.stack([m for m, _ in stats]), torch.stack([s for _, s in stats])


def _spread(means: torch.Tensor, stds: torch.Tensor) -> torch.Tensor:
    """``[E, N, S]`` head statistics -> ``[N]`` disagreement (see the module doc)."""
    return (means.std(0, correction=0) / stds.mean(0)).max(-1).values


def latent_disagreement(model: LatentWorldModel, h: torch.Tensor) -> torch.Tensor:
    """``[N, deter]`` -> ``[N]``: the prior heads' spread about the next stochastic state (see
    the module doc)."""
    return _spread(*_prior_stats(model, h))


@torch.no_grad()
def filter_beliefs(
    model: LatentWorldModel, batch: SequenceBatch
) -> tuple[LatentBelief, torch.Tensor]:
    """The posterior belief at every real (unmasked) step of ``batch``, flattened ``[M]``, and
    the members' disagreement at each (about the real step that led there)."""
    b, t = batch.frames.shape[:2]
    belief = model.initial(b)
    hs, zs, dis = [], [], []
    for i in range(t):
        belief = model.observe(belief, batch.actions[:, i], batch.frames[:, i])
        hs.append(belief.h)
        zs.append(belief.z)
        dis.append(latent_disagreement(model, belief.h))
    keep = batch.mask.reshape(-1) > 0
    h_all = torch.stack(hs, 1).reshape(b * t, -1)[keep]
    z_all = torch.stack(zs, 1).reshape(b * t, -1)[keep]
    return LatentBelief(h_all, z_all), torch.stack(dis, 1).reshape(-1)[keep]


@torch.no_grad()
def dream_rollouts(
    model: LatentWorldModel,
    start: LatentBelief,
    policy: DQNLearner | SACLearner,
    spec: ActionSpec,
    length: int,
    *,
    threshold: float = float("inf"),
    explore: float = 0.0,
    generator: torch.Generator | None = None,
) -> ImaginedBatch:
    """The policy acting in the model from ``start`` (``N`` beliefs) for up to ``length`` steps
    (see the module doc); observations are belief features."""
    n = start.h.shape[0]
    e = model.config.ensemble
    g = generator or model.generator
    member = torch.randint(0, e, (n,), generator=g)
    rows = torch.arange(n)
    h, z = start.h, start.z
    alive = torch.ones(n, dtype=torch.bool)
    stopped = torch.zeros(n, dtype=torch.bool)
    lengths = torch.zeros(n, dtype=torch.long)
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("o", "a", "r", "o2", "t", "d")}
    for _ in range(length):
        feat = torch.cat([h, z], -1)
        action = policy_actions(policy, feat, explore=explore, generator=g)
        h2 = model.transition(h, z, spec.encode(action))
        means, stds = _prior_stats(model, h2)
        dis = _spread(means, stds)
        z2 = model._sample(means[member, rows], stds[member, rows])
        feat2 = torch.cat([h2, z2], -1)
        reward = model.reward_head(feat2).squeeze(-1)
        ended = torch.sigmoid(model.continue_head(feat2).squeeze(-1)) < 0.5
        keep = alive & (dis <= threshold) & torch.isfinite(feat2).all(-1) & torch.isfinite(reward)
        stopped |= alive & ~keep
        for key, val in (
            ("o", feat),
            ("a", action),
            ("r", reward),
            ("o2", feat2),
            ("t", ended.float()),
            ("d", dis),
        ):
            cols[key].append(val[keep])
        lengths += keep.long()
        alive = keep & ~ended
        h, z = h2, z2
        if not bool(alive.any()):
            break
    return ImaginedBatch(
        obs=torch.cat(cols["o"]),
        action=torch.cat(cols["a"]),
        reward=torch.cat(cols["r"]),
        next_obs=torch.cat(cols["o2"]),
        terminated=torch.cat(cols["t"]),
        lengths=lengths,
        stopped=stopped,
        disagreement=torch.cat(cols["d"]),
    )


@torch.no_grad()
def imagined_latent_return(
    model: LatentWorldModel,
    start: LatentBelief,
    policy: DQNLearner | SACLearner,
    spec: ActionSpec,
    horizon: int,
) -> torch.Tensor:
    """``[N]`` beliefs -> ``[N]`` greedy imagined return, mean over members; member ``k``
    follows prior head ``k`` and ends after the first step its continue head gives < 0.5."""
    e, n = model.config.ensemble, start.h.shape[0]
    h = start.h.repeat(e, 1)  # member-major rows
    z = start.z.repeat(e, 1)
    alive = torch.ones(e * n)
    ret = torch.zeros(e * n)
    for _ in range(horizon):
        action = policy_actions(policy, torch.cat([h, z], -1))
        h = model.transition(h, z, spec.encode(action))
        own = torch.cat(
            [head(r) for head, r in zip(model.priors, h.reshape(e, n, -1), strict=True)]
        )
        z = model._sample(*_gaussian(own))
        feat = torch.cat([h, z], -1)
        ret += alive * model.reward_head(feat).squeeze(-1)
        alive = alive * (torch.sigmoid(model.continue_head(feat).squeeze(-1)) >= 0.5).float()
        if float(alive.max()) == 0.0:
            break
    return ret.reshape(e, n).mean(0)


class DreamTrainer:
    """One policy learning in the latent model's dreams (see the module doc).

    Args:
        model: the latent world model.
        spec: the env's action space.
        config: dream settings.
        seed: the policy's initialization and the dream generator.
        policy: the learner to train (default :func:`make_latent_policy`'s, with the
            imagination learners' own settings).
    """

    def __init__(
        self,
        model: LatentWorldModel,
        spec: ActionSpec,
        config: DreamConfig | None = None,
        *,
        seed: int = 0,
        policy: DQNLearner | SACLearner | None = None,
    ) -> None:
        self.model, self.spec = model, spec
        self.config = config or DreamConfig()
        self.policy = policy if policy is not None else make_latent_policy(model, spec, seed=seed)
        self.generator = torch.Generator().manual_seed(seed + 11)
        self.threshold = float("inf")
        self.score: float = -float("inf")
        self.rounds: list[dict[str, float]] = []
        """Per round: threshold, dreamed transitions, mean dream length, stopped fraction,
        policy loss and imagined score."""

    def round(self, batch: SequenceBatch, score_starts: LatentBelief | None) -> dict[str, float]:
        """Dream from ``batch``'s real steps, update the policy, score it from
        ``score_starts`` (the beliefs at real episode starts)."""
        cfg = self.config
        starts, real_dis = filter_beliefs(self.model, batch)
        finite = real_dis[torch.isfinite(real_dis)]
        self.threshold = (
            float(torch.quantile(finite, cfg.quantile)) if finite.numel() else float("inf")
        )
        data = dream_rollouts(
            self.model,
            starts,
            self.policy,
            self.spec,
            cfg.length,
            threshold=self.threshold,
            explore=cfg.epsilon,
            generator=self.generator,
        )
        loss = float("nan")
        if len(data):
            replay = TensorReplay(data.obs.shape[1], data.action.shape[1], len(data))
            replay.add(data)
            batch_size = self.policy.config.batch_size
            for _ in range(cfg.updates):
                loss = self.policy.update(*replay.sample(batch_size, self.generator))
        if score_starts is not None and score_starts.h.shape[0]:
            scores = imagined_latent_return(
                self.model, score_starts, self.policy, self.spec, cfg.score_horizon
            )
            self.score = float(scores.mean())
        info = {
            "threshold": self.threshold,
            "transitions": float(len(data)),
            "mean_length": float(data.lengths.float().mean()) if len(data.lengths) else 0.0,
            "stopped": float(data.stopped.float().mean()) if len(data.stopped) else 0.0,
            "loss": loss,
            "score": self.score,
        }
        self.rounds.append(info)
        return info


def episode_start_beliefs(
    model: LatentWorldModel, episodes: list[dict[str, list]], n: int, rng: np.random.Generator
) -> LatentBelief | None:
    """The model's belief at the first frames of up to ``n`` real episodes (drawn with
    ``rng``), or ``None`` when there are none."""
    if not episodes:
        return None
    picks = rng.choice(len(episodes), size=min(n, len(episodes)), replace=False)
    frames = torch.as_tensor(np.stack([episodes[int(i)]["frames"][0] for i in picks]))
    zero = torch.zeros(frames.shape[0], model.config.action_dim)
    return model.observe(model.initial(frames.shape[0]), zero, frames)
