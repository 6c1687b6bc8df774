"""A fast policy distilled from the planner's real choices (behaviour cloning of MPC).

The hybrid agent's MPC acts on real states before its policy is trusted, and later on every
step the members are unsure of; each of those choices is a demonstration of what the planner
does in a real state.  :class:`DistilledPolicy` fits a small network to them (cross-entropy for
discrete actions, squared error for Box actions), so it acts in one forward pass.  Copying a
stochastic planner is noisy (CEM's choice between two near-equal actions is close to a coin
flip in balanced CartPole states, so ~70% agreement is typical), and a wider network fits
that noise: a linear map and a small weight-decayed network are both tried, and the agent keeps
whichever does best *in imagination* (:meth:`ImaginationLearner.select`), the same test the
DQN's snapshots pass.  Nothing about which copy is better is assumed.

The policy has the learners' acting surface (``act``, ``value``), so
:class:`~wm_agents.imagination.controllers.PolicyController` runs it unchanged; ``value`` comes
from a critic if one is given (the DQN / SAC learner being trained alongside), else 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wm_agents.imagination.dqn import _init_uniform_
from wm_agents.spaces import ActionSpec

__all__ = ["DistilledPolicy"]


class DistilledPolicy(nn.Module):
    """Behaviour cloning of demonstrations ``(obs [N, D], action [N, A])``.

    Args:
        obs_dim: observation size D.
        action_spec: the env's actions (discrete: a classifier over ``n``; Box: a regressor
            squashed into the bounds).
        hidden: width of the one hidden layer; 0 makes the policy linear.
        weight_decay: AdamW decay (a brake on fitting the planner's noise).
        seed: seeds the initialization and the minibatch draws.
        critic: optional learner whose ``value(obs)`` this policy reports.
    """

    def __init__(
        self,
        obs_dim: int,
        action_spec: ActionSpec,
        *,
        hidden: int = 32,
        weight_decay: float = 1e-2,
        seed: int = 0,
        critic: Any = None,
    ) -> None:
        super().__init__()
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.spec = action_spec
        self.discrete = action_spec.kind == "discrete"
        out = action_spec.n if self.discrete else action_spec.dim
        self.generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = (
            [nn.Linear(obs_dim, out)]
            if hidden == 0
            else [nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, out)]
        )
        self.net = _init_uniform_(nn.Sequential(*layers), self.generator)
        self.hidden, self.weight_decay = hidden, weight_decay
        # Not a submodule: the critic is the live learner, not part of this policy's weights.
        object.__setattr__(self, "critic", critic)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        if not self.discrete:
            low = torch.as_tensor(action_spec.low, dtype=torch.float32)
            high = torch.as_tensor(action_spec.high, dtype=torch.float32)
            if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
                raise ValueError("a distilled Box policy needs finite action bounds")
            self.register_buffer("a_mid", (high + low) / 2)
            self.register_buffer("a_half", (high - low) / 2)
        self.agreement = float("nan")  # on the demonstrations, after fit()

    @property
    def name(self) -> str:
        return "distilled-linear" if self.hidden == 0 else f"distilled-mlp{self.hidden}"

    def _out(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net((obs - self.obs_mean) / self.obs_std)

    def fit(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        *,
        iterations: int = 1_000,
        batch_size: int = 256,
        lr: float | None = None,
    ) -> float:
        """Fit the demonstrations; returns (and keeps in ``agreement``) the share of them the
        greedy policy reproduces (discrete) or ``1 - mean squared error / variance`` (Box)."""
        if obs.ndim != 2 or action.ndim != 2 or len(obs) != len(action) or len(obs) == 0:
            raise ValueError(
                f"need obs [N, D] and action [N, A] with N >= 1, got {list(obs.shape)}, "
                f"{list(action.shape)}"
            )
        obs = obs.float()
        if not (torch.isfinite(obs).all() and torch.isfinite(action.float()).all()):
            raise ValueError("demonstrations must be finite (NaN or inf in obs or action)")
        with torch.no_grad():
            self.obs_mean.copy_(obs.mean(0))
            self.obs_std.copy_(obs.std(0, correction=0).clamp(min=1e-6))
        target = action.long().view(-1) if self.discrete else self._unsquash(action.float())
        step = lr if lr is not None else (1e-2 if self.hidden == 0 else 1e-3)
        opt = torch.optim.AdamW(self.net.parameters(), step, weight_decay=self.weight_decay)
        for _ in range(iterations):
            idx = torch.randint(0, len(obs), (batch_size,), generator=self.generator)
            out = self._out(obs[idx])
            if self.discrete:
                loss = nn.functional.cross_entropy(out, target[idx])
            else:
                loss = nn.functional.mse_loss(out, target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            if self.discrete:
                self.agreement = float((self.act(obs).view(-1) == action.view(-1)).float().mean())
            else:
                err = (self.act(obs) - action).pow(2).mean()
                self.agreement = float(1.0 - err / action.var(correction=0).clamp(min=1e-8))
        return self.agreement

    def _unsquash(self, action: torch.Tensor) -> torch.Tensor:
        x = ((action - self.a_mid) / self.a_half).clamp(-0.999, 0.999)
        return torch.atanh(x)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        *,
        epsilon: float = 0.0,
        explore: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``[N, D] -> [N, A]`` actions (discrete: float indices, epsilon-greedy if asked;
        Box: the squashed regression, plus 10% Gaussian noise when ``explore``)."""
        out = self._out(obs)
        g = generator or self.generator
        if self.discrete:
            a = out.argmax(-1)
            if epsilon > 0.0:
                n = out.shape[-1]
                flip = torch.rand(a.shape, generator=g) < epsilon
                a = torch.where(flip, torch.randint(0, n, a.shape, generator=g), a)
            return a.float().unsqueeze(-1)
        a = torch.tanh(out)
        if explore:
            a = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(-1.0, 1.0)
        return self.a_mid + self.a_half * a

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, D] -> [N]``: the critic's value, or zeros without one."""
        if self.critic is not None:
            return self.critic.value(obs)
        return torch.zeros(obs.shape[0])
