"""The seed's planning loop on this library's weights: one candidate, one step at a time.

The planning-speed benchmark (:mod:`wm_agents.bench.planning_speed`) times these objectives
against the batched rollout on the same decision: same weights (the model's
:meth:`~wm_agents.neural.EnsembleDynamicsModel.planning_weights`), same member assignment, same
arithmetic, so only the batching differs.  :func:`seed_style_objective` runs the seed's loop on
raw tensor ops, :func:`seed_module_objective` as the seed writes it (``nn.Sequential`` members).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.planning.optimizers import Objective

__all__ = ["seed_module_objective", "seed_style_objective"]


def seed_style_objective(
    model: EnsembleDynamicsModel, obs: Any, *, particles: int = 1, gamma: float = 1.0
) -> Objective:
    """The seed's ``plan_with_model`` loop on this model: one candidate, one step at a time.

    Same weights, same member assignment (particle ``i * K + j`` -> member ``(i * K + j) % E``)
    and same arithmetic as the batched mean rollout, so only the batching differs.
    """
    w = model.planning_weights()
    e_count, d = model.ensemble_size, model.obs_dim
    silu = torch.nn.functional.silu
    (wt1, bt1), (wt2, bt2) = w["term"]
    wt3, bt3 = w["term_out"]
    obs_t = model.check_obs(obs)[None]

    def objective(actions: torch.Tensor) -> torch.Tensor:
        b, h, _ = actions.shape
        enc = model.action_spec.encode(actions)
        out = torch.empty(b, particles)
        for i in range(b):  # one candidate at a time, as the seed does
            for j in range(particles):
                m = (i * particles + j) % e_count
                state, ret, alive, disc = obs_t, 0.0, 1.0, 1.0
                for t in range(h):
                    x = silu(state @ w["w1s"][m] + enc[i, t][None] @ w["w1a"][m] + w["b1"][m])
                    for wm, bm in w["mid"]:
                        x = silu(x @ wm[m] + bm[m])
                    y = x @ w["wh"][m] + w["bh"][m]
                    state = state + y[:, :d]
                    z = silu(state @ wt1[m] + bt1[m])
                    z = silu(z @ wt2[m] + bt2[m])
                    cont = float(torch.sigmoid(z @ wt3[m] + bt3[m]))
                    ret += disc * alive * float(y[0, d])
                    alive *= cont
                    disc *= gamma
                out[i, j] = ret
        return out

    return objective


def seed_module_objective(
    model: EnsembleDynamicsModel, obs: Any, *, particles: int = 1, gamma: float = 1.0
) -> Objective:
    """The seed's loop as written: ``nn.Sequential`` members, ``torch.cat``, one step a call.

    The seed's ``WorldModel.rollout`` calls ``self.forward(state, action)`` per step, which
    concatenates state and action and runs an ``nn.Sequential`` of ``nn.Linear`` layers;
    ``plan_with_model`` does that for one candidate at a time.  Here each member is such a
    ``Sequential`` holding this model's (normalizer-folded) weights, plus the termination
    classifier as another ``Sequential`` (the seed has none; it is needed for equal work), with
    the same member assignment as :func:`seed_style_objective`, so the returns are the same.
    """
    w = model.planning_weights()
    e_count, d = model.ensemble_size, model.obs_dim

    def linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
        layer = nn.Linear(weight.shape[0], weight.shape[1])
        with torch.no_grad():
            layer.weight.copy_(weight.T)
            layer.bias.copy_(bias.reshape(-1))
        return layer

    dynamics, termination = [], []
    (wt1, bt1), (wt2, bt2) = w["term"]
    wt3, bt3 = w["term_out"]
    for m in range(e_count):
        w1 = torch.cat([w["w1s"][m], w["w1a"][m]], dim=0)
        layers: list[nn.Module] = [linear(w1, w["b1"][m]), nn.SiLU()]
        for wm, bm in w["mid"]:
            layers += [linear(wm[m], bm[m]), nn.SiLU()]
        layers.append(linear(w["wh"][m], w["bh"][m]))
        dynamics.append(nn.Sequential(*layers))
        termination.append(
            nn.Sequential(
                linear(wt1[m], bt1[m]),
                nn.SiLU(),
                linear(wt2[m], bt2[m]),
                nn.SiLU(),
                linear(wt3[m], bt3[m]),
            )
        )
    obs_t = model.check_obs(obs)

    def rollout(m: int, state: torch.Tensor, action_sequence: torch.Tensor) -> torch.Tensor:
        rewards, alive, disc = [], 1.0, 1.0
        for action in action_sequence:
            out = dynamics[m](torch.cat([state, action], dim=-1))
            state = state + out[..., :d]
            cont = float(torch.sigmoid(termination[m](state)))
            rewards.append(disc * alive * out[..., d])
            alive *= cont
            disc *= gamma
        return torch.stack(rewards)

    @torch.no_grad()
    def objective(actions: torch.Tensor) -> torch.Tensor:
        enc = model.action_spec.encode(actions)
        out = torch.empty(actions.shape[0], particles)
        for i in range(actions.shape[0]):  # plan_with_model: one candidate at a time
            for j in range(particles):
                out[i, j] = rollout((i * particles + j) % e_count, obs_t, enc[i]).sum()
        return out

    return objective
