"""The ensemble dynamics model as a :class:`~wm_agents.core.WorldModel`: imagine, learn, save.

:class:`EnsembleDynamicsModel` is the network (:class:`~wm_agents.neural.network.EnsembleNetwork`:
E probabilistic MLPs, one batched matmul per layer, learned reward, termination and terminal
value) plus what makes it a world model: a replay buffer that :meth:`~EnsembleDynamicsModel.learn`
fills and fits on (:mod:`wm_agents.neural.trainer`), the planner's fast rollout
(:mod:`wm_agents.neural.rollout`), :meth:`~EnsembleDynamicsModel.imagine` turning rollouts into
:class:`~wm_agents.core.Outcome` objects, and its file (:mod:`wm_agents.neural.persistence`).

Shapes (E members, D obs size, A action width, H horizon, B candidates, K particles):
candidate action sequences ``[B, H, A]``, per-particle imagined returns ``[B, K]``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.neural.buffer import ReplayBuffer
from wm_agents.neural.network import EnsembleNetwork, RewardFn, TerminationFn
from wm_agents.neural.persistence import load_model, save_model
from wm_agents.neural.rollout import (
    ImaginedRollout,
    one_each,
    planning_weights,
    rollout,
    rollout_many,
    shape_groups,
)
from wm_agents.neural.trainer import MIN_TRANSITIONS, FitConfig, fit_ensemble
from wm_agents.spaces import ActionSpec

__all__ = ["EnsembleDynamicsModel", "imagine_many", "outcomes_from_rollout"]


class EnsembleDynamicsModel(EnsembleNetwork):
    """A learned world model for vector-observation environments (a :class:`WorldModel`).

    Args:
        obs_dim: observation size D.
        action_spec: the env's action space (see :class:`ActionSpec`).
        ensemble_size: number of members E (5 in the seed's "ensemble of 5").
        hidden: width of each hidden layer.
        layers: number of hidden layers.
        seed: seeds weight init, bootstrap and minibatch order (its own ``torch.Generator``).
        reward_fn: optional ``(obs, action, next_obs) -> reward`` replacing the learned reward.
        termination_fn: optional ``next_obs -> probability in [0, 1]`` replacing the learned
            termination head.
        buffer_capacity: capacity of the replay buffer :meth:`learn` fills.
        fit_config: training options used by :meth:`learn` (see :class:`FitConfig`).
        end_reward: also learn the reward of an episode's last step from the state it lands
            in (see :class:`~wm_agents.neural.network.EnsembleNetwork`).

    ``planning_dtype`` is the search precision :meth:`rollout` uses when given none: float32
    (the same on every CPU); set ``"auto"`` (:func:`~wm_agents.neural.rollout.search_dtype`)
    for bfloat16 on CPUs that run it natively, ~3x faster for wide models, CPU-dependent
    results.  :meth:`imagine` always runs float32 (the reference numbers).
    """

    def __init__(
        self,
        obs_dim: int,
        action_spec: ActionSpec,
        *,
        ensemble_size: int = 5,
        hidden: int = 200,
        layers: int = 3,
        seed: int = 0,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        buffer_capacity: int = 100_000,
        fit_config: FitConfig | None = None,
        end_reward: bool = False,
    ) -> None:
        super().__init__(
            obs_dim,
            action_spec,
            ensemble_size=ensemble_size,
            hidden=hidden,
            layers=layers,
            seed=seed,
            reward_fn=reward_fn,
            termination_fn=termination_fn,
            end_reward=end_reward,
        )
        self.buffer = ReplayBuffer(obs_dim, action_spec.dim, buffer_capacity)
        self.fit_config = fit_config
        # float32 by default: "auto" (bfloat16 where the CPU has it) is a CPU-dependent choice,
        # so a seed would plan differently on different machines.
        self.planning_dtype: torch.dtype | str = torch.float32

    # ------------------------------------------------------------------ imagination
    def planning_weights(self, dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Normalizer-folded weights of the fast rollout
        (:func:`~wm_agents.neural.rollout.planning_weights`)."""
        return planning_weights(self, dtype)

    def rollout(
        self,
        obs: torch.Tensor | np.ndarray | Sequence[float],
        actions: torch.Tensor,
        *,
        particles: int | None = None,
        gamma: float = 1.0,
        sample: bool = False,
        generator: torch.Generator | None = None,
        terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dtype: torch.dtype | str | None = None,
        count_clipped: bool = False,
        explore: float = 0.0,
    ) -> ImaginedRollout:
        """Imagine ``[B, H, A]`` sequences from one observation ``[D]`` with ``particles``
        particles each (:func:`~wm_agents.neural.rollout.rollout`); ``dtype`` ``None`` takes
        :attr:`planning_dtype`; ``explore`` adds the members' disagreement to the reward."""
        return rollout(
            self,
            obs,
            actions,
            particles=particles,
            gamma=gamma,
            sample=sample,
            generator=generator,
            terminal_value=terminal_value,
            dtype=self.planning_dtype if dtype is None else dtype,
            count_clipped=count_clipped,
            explore=explore,
        )

    def rollout_many(
        self,
        obs: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
        actions: torch.Tensor,
        *,
        particles: int | None = None,
        gamma: float = 1.0,
        terminal_value: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dtype: torch.dtype | str | None = None,
        explore: float = 0.0,
    ) -> list[ImaginedRollout]:
        """:meth:`rollout` from ``N`` observations ``[N, D]`` at once, each with its own
        ``[B, H, A]`` sequences (``actions [N, B, H, A]``), in one batched pass
        (:func:`~wm_agents.neural.rollout.rollout_many`)."""
        return rollout_many(
            self,
            obs,
            actions,
            particles=particles,
            gamma=gamma,
            terminal_value=terminal_value,
            dtype=self.planning_dtype if dtype is None else dtype,
            explore=explore,
        )

    def imagine(
        self,
        state: Any,
        candidates: Sequence[Any],
        *,
        horizon: int = 1,
        gamma: float = 1.0,
        use_value: bool = False,
        value_kappa: float = 1.0,
    ) -> list[Outcome]:
        """Score action-sequence candidates with every member (the :class:`WorldModel` API).

        ``state`` is an observation ``[D]``; each candidate an action sequence ``[H][A]`` (or
        ``[H]`` for discrete actions); Box actions outside the bounds are imagined clipped to
        them, as the env runs them (:meth:`ActionSpec.encode`), while ``Outcome.candidate``
        keeps them as given.  ``horizon`` truncates longer sequences.  Values are
        predicted returns per member; ``uncertainty`` is their standard deviation and ``risk``
        the mean probability that the episode ends within the horizon.  A candidate whose
        prediction is non-finite comes back ``status="unknown"``.  With ``use_value`` (and a
        fitted value, see ``trainer.fit_value``) values include ``gamma^H * survival * V(s_H)``
        with the pessimistic ``V`` of :meth:`value_lcb` (``value_kappa``).  Rewards and terminal
        values are clipped to the range of the real data (see :meth:`rollout`);
        ``prediction["clipped_members"]`` counts the members whose value was clipped.
        """
        actions = self.candidates_to_tensor(candidates)
        if horizon >= 1:
            actions = actions[:, :horizon]
        tv = self.terminal_value_fn(value_kappa) if use_value else None
        roll = self.rollout(
            state,
            actions,
            particles=self.ensemble_size,
            gamma=gamma,
            terminal_value=tv,
            dtype=torch.float32,
            count_clipped=True,
        )
        return outcomes_from_rollout(candidates, roll)

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1, **kwargs: Any
    ) -> list[Outcome]:
        """:meth:`imagine` in a worker thread (torch work is CPU-bound, not I/O)."""
        return await asyncio.to_thread(self.imagine, state, candidates, horizon=horizon, **kwargs)

    def candidates_to_tensor(self, candidates: Sequence[Any]) -> torch.Tensor:
        """Candidates as nested lists / arrays -> validated ``[B, H, A]`` float tensor."""
        if len(candidates) == 0:
            raise ValueError("no candidates to imagine: pass at least one action sequence")
        try:
            arr = np.asarray(
                [np.asarray(c, dtype=np.float32) for c in candidates], dtype=np.float32
            )
        except ValueError as err:
            raise ValueError(
                f"candidates must all be action sequences of one shape: {err}"
            ) from err
        if arr.ndim == 2 and self.action_spec.dim == 1:
            arr = arr[..., None]
        return self.action_spec.check_sequences(torch.from_numpy(arr), name="candidates")

    # ------------------------------------------------------------------ learning
    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Add real transitions to the replay buffer and refit on all of it."""
        n = self.buffer.add_transitions(transitions)
        if len(self.buffer) < MIN_TRANSITIONS:
            return LearnReport(
                n_transitions=n,
                updated=False,
                message=f"not enough data to fit: {len(self.buffer)} of {MIN_TRANSITIONS} "
                "transitions",
            )
        report = fit_ensemble(self, self.buffer.all(), self.fit_config or FitConfig())
        return LearnReport(
            n_transitions=n, updated=True, metrics=report.metrics(), message=report.summary()
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write config + weights + normalizers to one file
        (:func:`~wm_agents.neural.persistence.save_model`)."""
        return save_model(self, path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        expect_obs_dim: int | None = None,
        expect_action_spec: ActionSpec | None = None,
        **kwargs: Any,
    ) -> EnsembleDynamicsModel:
        """Load a file written by :meth:`save` (:func:`~wm_agents.neural.persistence.load_model`).

        Raises :class:`~wm_agents.neural.model_config.ModelFileError` for a corrupt or foreign file,
        or when the stored model
        does not match ``expect_obs_dim`` / ``expect_action_spec``; ``FileNotFoundError`` when
        the file is missing.  ``kwargs`` (``reward_fn``, ``termination_fn``, ``seed``...) are
        passed to the constructor.
        """
        return load_model(
            cls,
            path,
            expect_obs_dim=expect_obs_dim,
            expect_action_spec=expect_action_spec,
            **kwargs,
        )


def imagine_many(
    model: EnsembleDynamicsModel | Sequence[EnsembleDynamicsModel],
    states: Sequence[Any],
    candidates: Sequence[Sequence[Any]],
    *,
    horizon: int = 1,
    gamma: float = 1.0,
    use_value: bool = False,
    value_kappa: float = 1.0,
) -> list[list[Outcome]]:
    """``model.imagine(states[i], candidates[i], ...)`` for every ``i``, in one batched rollout
    per candidate count (:func:`~wm_agents.neural.rollout.rollout_many`).

    ``model`` is one model for every state, or one per state (several agents' ensembles of one
    architecture, each imagining only its own states: ``model[i].imagine(states[i], ...)``)."""
    models = one_each(model, len(states), "model")
    if len(candidates) != len(states):
        raise ValueError(f"{len(states)} states but {len(candidates)} candidate lists")
    actions = [m.candidates_to_tensor(c) for m, c in zip(models, candidates, strict=True)]
    if horizon >= 1:
        actions = [a[:, :horizon] for a in actions]
    out: list[list[Outcome]] = [[] for _ in states]
    for idx in shape_groups(actions):
        group = [models[i] for i in idx]
        rolls = rollout_many(
            group,
            torch.stack([m.check_obs(states[i]) for m, i in zip(group, idx, strict=True)]),
            torch.stack([actions[i] for i in idx]),
            particles=group[0].ensemble_size,
            gamma=gamma,
            terminal_value=[m.terminal_value_fn(value_kappa) if use_value else None for m in group],
            dtype=torch.float32,
            count_clipped=True,
        )
        for i, roll in zip(idx, rolls, strict=True):
            out[i] = outcomes_from_rollout(candidates[i], roll)
    return out


def outcomes_from_rollout(candidates: Sequence[Any], roll: ImaginedRollout) -> list[Outcome]:
    """Turn per-particle returns into one :class:`Outcome` per candidate."""
    returns = roll.returns.double()
    mean = returns.mean(dim=1)
    std = returns.std(dim=1, correction=0) if returns.shape[1] > 1 else torch.zeros_like(mean)
    risk = (1.0 - roll.survival.double().mean(dim=1)).clamp(0.0, 1.0)
    first = roll.first_obs.double().mean(dim=1)
    n_clipped = roll.clipped.sum(dim=1).tolist() if roll.clipped is not None else None
    outcomes = []
    for i, cand in enumerate(candidates):
        members = returns[i].tolist()
        cand_list = np.asarray(cand, dtype=float).tolist()
        if not (math.isfinite(mean[i].item()) and math.isfinite(std[i].item())):
            outcomes.append(
                Outcome.unknown(
                    cand_list,
                    "non-finite predicted return (the model diverged on this sequence)",
                    member_values=[v if math.isfinite(v) else -math.inf for v in members],
                )
            )
            continue
        outcomes.append(
            Outcome(
                candidate=cand_list,
                prediction={
                    "next_obs": first[i].tolist(),
                    "termination_prob": float(risk[i]),
                    **({"clipped_members": n_clipped[i]} if n_clipped is not None else {}),
                },
                value=float(mean[i]),
                uncertainty=float(std[i]),
                risk=float(risk[i]),
                member_values=members,
            )
        )
    return outcomes
