"""Soft actor-critic (Haarnoja et al. 2018) for Box actions, trained on real + imagined rows.

Twin Q-networks with Polyak targets, a tanh-squashed Gaussian actor rescaled to the action
bounds, and an automatically tuned entropy temperature (target entropy ``-A``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wm_agents.imagination.dqn import _mlp
from wm_agents.spaces import ActionSpec

__all__ = ["SACConfig", "SACLearner"]


@dataclass(frozen=True)
class SACConfig:
    """Options (hidden width, Adam step size, discount, Polyak rate, batch size, initial alpha)."""

    hidden: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    init_alpha: float = 0.1


class SACLearner(nn.Module):
    """Actor, twin critics, targets, temperature, and the SAC update.

    Args:
        obs_dim: observation size D.
        action_spec: a ``box`` :class:`ActionSpec` (its bounds scale the tanh output).
        config: options.
        seed: seeds initialization and the learner's own generator (action noise).
    """

    def __init__(
        self,
        obs_dim: int,
        action_spec: ActionSpec,
        config: SACConfig | None = None,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if action_spec.kind != "box":
            raise ValueError("SACLearner needs a Box action space; use DQNLearner for Discrete")
        self.config = c = config or SACConfig()
        self.generator = torch.Generator().manual_seed(seed)
        a = action_spec.dim
        self.action_dim = a
        self.register_buffer("low", action_spec.low_tensor(dtype=torch.float32))
        self.register_buffer("high", action_spec.high_tensor(dtype=torch.float32))
        self.actor = _mlp(obs_dim, c.hidden, 2 * a, self.generator)
        self.q1 = _mlp(obs_dim + a, c.hidden, 1, self.generator)
        self.q2 = _mlp(obs_dim + a, c.hidden, 1, self.generator)
        self.q1_t = _mlp(obs_dim + a, c.hidden, 1, self.generator)
        self.q2_t = _mlp(obs_dim + a, c.hidden, 1, self.generator)
        self.q1_t.load_state_dict(self.q1.state_dict())
        self.q2_t.load_state_dict(self.q2.state_dict())
        self.q1_t.requires_grad_(False)
        self.q2_t.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(c.init_alpha)))
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        self.critic_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=c.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.lr)
        self.updates = 0

    def _sample(
        self, obs: torch.Tensor, generator: torch.Generator | None, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions in the env's bounds ``[N, A]`` and their log-probabilities ``[N]``."""
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(-5.0, 2.0)
        if deterministic:
            u = mean
        else:
            u = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
        t = torch.tanh(u)
        logp = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        logp = (logp - torch.log(1 - t.pow(2) + 1e-6)).sum(-1)
        half = (self.high - self.low) / 2
        return self.low + half * (t + 1.0), logp - torch.log(half).sum()

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, *, explore: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[N, D] -> [N, A]``: the mean action, or a sample with ``explore``."""
        return self._sample(obs, generator or self.generator, deterministic=not explore)[0]

    def _q(self, net: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, act], -1)).squeeze(-1)

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, D] -> [N]`` value of the mean action under the pessimistic twin target."""
        a = self.act(obs)
        return torch.minimum(self._q(self.q1_t, obs, a), self._q(self.q2_t, obs, a))

    def update(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> float:
        """One critic, actor and temperature step on a minibatch; returns the critic loss."""
        c = self.config
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self._sample(next_obs, self.generator)
            q_next = torch.minimum(
                self._q(self.q1_t, next_obs, a2), self._q(self.q2_t, next_obs, a2)
            )
            target = reward + c.gamma * (1.0 - terminated) * (q_next - alpha * logp2)
        critic = ((self._q(self.q1, obs, action) - target) ** 2).mean() + (
            (self._q(self.q2, obs, action) - target) ** 2
        ).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic.backward()
        self.critic_opt.step()

        a_new, logp = self._sample(obs, self.generator)
        q_new = torch.minimum(self._q(self.q1, obs, a_new), self._q(self.q2, obs, a_new))
        actor = (alpha * logp - q_new).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (logp.detach() - self.action_dim)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1_t), (self.q2, self.q2_t)):
                for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                    tp.lerp_(p, c.tau)
        self.updates += 1
        return float(critic.detach())
