"""When to trust a learned policy: its return in imagination, before it acts for real.

The hybrid agent should not hand real steps to a policy that has not learned the task yet.  It
asks the world model: every member rolls the greedy policy out from real start states for a
whole episode (each member follows its own trajectory, PETS's TS-infinity), and the return is
the reward summed until the member predicts the episode ends, averaged over members and starts.  A
policy is trusted once that imagined return reaches a bar (e.g. the env's solved threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["imagined_policy_return"]


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
    step it predicts termination with probability > 0.5 (that step's reward counts).
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
