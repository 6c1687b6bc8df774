"""When to trust a learned policy: its return in imagination, before it acts for real; and how
much member disagreement about one of its actions is still "familiar".

The hybrid agent should not hand real steps to a policy that has not learned the task yet.  It
asks the world model: every member rolls the greedy policy out from real start states for a
whole episode (each member follows its own trajectory, PETS's TS-infinity), and the return is
the reward summed until the member predicts the episode ends, averaged over members and starts.  A
policy is trusted once that imagined return reaches a bar (e.g. the env's solved threshold).

Once trusted, the hybrid agent lets the policy act on a step only while the members agree about
its action's next state.  "Agree" is calibrated from data, not set per env:
:func:`calibrate_disagreement` is a quantile of the members' disagreement on the real transitions
the model was fitted on, so a step more uncertain than (say) 99% of familiar ones goes to MPC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from wm_agents.imagination.rollouts import default_scale, ensemble_disagreement

__all__ = ["calibrate_disagreement", "imagined_policy_return"]


@torch.no_grad()
def imagined_policy_return(
    model: Any,
    policy: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    horizon: int,
    *,
    gamma: float = 1.0,
) -> torch.Tensor:
    """``[N, D]`` real start states -> ``[N]`` imagined return of ``policy`` (mean over members).

    ``policy`` maps ``[n, D] -> [n, A]`` (greedy).  A member's trajectory ends after the first
    step it predicts termination with probability > 0.5 (that step's reward counts).  Rewards
    are the model's, clipped to the range of its real data (``model.predict``): a young
    model's absurd reward cannot carry a policy past the trust bar.
    """
    if starts.ndim != 2:
        raise ValueError(f"starts must be [N, D], got {list(starts.shape)}")
    e = int(model.ensemble_size)
    n, d = starts.shape
    state = starts.float().expand(e, n, d).contiguous()
    alive = torch.ones(e, n)
    ret = torch.zeros(e, n)
    discount = 1.0
    for _ in range(horizon):
        act = policy(state.reshape(e * n, d)).view(e, n, -1)
        state, reward, term = model.predict(state, act)
        ret += discount * alive * reward
        # Hard ends (probability > 0.5, as in branched rollouts): multiplying 500 small false
        # alarms of the termination classifier would cap even a perfect policy's return.
        alive = alive * (term <= 0.5).float()
        discount *= gamma
        if float(alive.max()) < 1e-3:
            break
    return ret.mean(0)


@torch.no_grad()
def calibrate_disagreement(
    model: Any, obs: Any, action: Any, *, quantile: float = 0.99, max_rows: int = 5_000
) -> float:
    """The ``quantile`` of member disagreement on real ``(obs [N, D], action [N, A])`` pairs.

    Disagreement is :func:`ensemble_disagreement` of the members' next states in units of
    :func:`default_scale` (what :class:`HybridController` compares with its threshold).  Only
    the newest ``max_rows`` pairs are used (the recent data is where the agent acts now).
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
    a = torch.as_tensor(np.asarray(action, dtype=np.float32))
    if o.ndim != 2 or a.ndim != 2 or o.shape[0] != a.shape[0] or o.shape[0] == 0:
        raise ValueError(
            f"need obs [N, D] and action [N, A] with N >= 1, got {list(o.shape)}, {list(a.shape)}"
        )
    o, a = o[-max_rows:], a[-max_rows:]
    e, n = int(model.ensemble_size), o.shape[0]
    nxt, _, _ = model.predict(o.expand(e, n, -1), a.expand(e, n, -1))
    dis = ensemble_disagreement(nxt, default_scale(model))
    return float(torch.quantile(dis.double(), quantile))
