"""Planning and learning in latent space through the one planning graph (issue 16, item 3).

* :class:`LatentController` is a :class:`~wm_agents.core.Controller`: it keeps the belief
  ``(h, z)`` of the episode (filtering each new frame with the action it chose before), and
  plans with the same :class:`~wm_agents.planning.CEMPlanner` and agreement gate as the vector
  agent, whose objective is every member's imagined return from the belief.
* :class:`LatentLearner` is the run loop's :class:`~wm_agents.run_loop.RunLearner`: it keeps
  whole episodes of frames (:class:`~wm_agents.latent.replay.EpisodeReplay`) and trains the
  model on sequences every ``train_every`` real steps.
* :func:`run_latent_gym` is :func:`~wm_agents.run_loop.run_env_loop` with those two on an env
  seen through :class:`~wm_agents.envs.pixels.PixelObservation`.

The belief moves on when a decision was made since the last frame (not when the frame changed:
a frame can repeat), so a re-plan of the same step does not filter the same frame twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wm_agents.core import Decision, Outcome
from wm_agents.latent.model import LatentBelief, LatentConfig, LatentWorldModel
from wm_agents.latent.replay import EpisodeReplay
from wm_agents.planning import AgreementGate, CEMPlanner, MPCController
from wm_agents.spaces import ActionSpec

__all__ = ["LatentAgentConfig", "LatentController", "LatentLearner", "run_latent_gym"]


@dataclass(frozen=True)
class LatentAgentConfig:
    """The latent agent's settings (model sizes are :class:`LatentConfig`'s).

    Attributes:
        horizon, population, elites, iterations, risk_weight: the CEM search.
        train_every: real steps between training rounds; train_steps: gradient steps per round.
        warmup_train_steps: gradient steps after the random warm-up.
        batch, seq_len: sequences per gradient step and their length.
    """

    horizon: int = 12
    population: int = 100
    elites: int = 10
    iterations: int = 3
    risk_weight: float = 0.0
    train_every: int = 50
    train_steps: int = 25
    warmup_train_steps: int = 200
    batch: int = 16
    seq_len: int = 16


class _BeliefModel:
    """The latent model as the MPC controller's world model: imagines from the controller's
    current belief, whatever ``state`` the graph passes (the flat frames)."""

    def __init__(self, controller: LatentController) -> None:
        self.controller = controller

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        c = self.controller
        c.track(state)
        assert c.belief is not None
        encoded = c.spec.encode(torch.as_tensor(np.asarray(candidates, dtype=np.float32)))
        outcomes = c.model.imagine(c.belief, encoded.tolist(), horizon=horizon)
        return [
            o.model_copy(update={"candidate": cand})
            for o, cand in zip(outcomes, candidates, strict=True)
        ]

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        return self.imagine(state, candidates, horizon=horizon)

    def learn(self, transitions: Sequence[Any]) -> Any:
        return self.controller.model.learn(transitions)


class LatentController:
    """CEM in latent space with belief tracking (see the module docstring).

    Args:
        model: the latent world model.
        action_spec: the env's action space.
        config: search settings.
        seed: the planner's generator.
    """

    def __init__(
        self,
        model: LatentWorldModel,
        action_spec: ActionSpec,
        config: LatentAgentConfig | None = None,
        *,
        seed: int = 0,
    ) -> None:
        cfg = config or LatentAgentConfig()
        if action_spec.encoded_dim != model.config.action_dim:
            raise ValueError(
                f"the model takes actions of width {model.config.action_dim}, the env's "
                f"encode to {action_spec.encoded_dim}"
            )
        self.model, self.spec = model, action_spec
        self.shape = (model.config.channels, model.config.size, model.config.size)
        planner = CEMPlanner(
            action_spec,
            horizon=cfg.horizon,
            population=cfg.population,
            elites=cfg.elites,
            iterations=cfg.iterations,
            risk_weight=cfg.risk_weight,
            seed=seed,
        )
        gate = AgreementGate(risk_weight=cfg.risk_weight, action_spec=action_spec)
        self.mpc = MPCController(_BeliefModel(self), planner, gate, objective=self._objective)
        self.belief: LatentBelief | None = None
        self._last_action: np.ndarray | None = None
        self._moved = False

    # -- belief -----------------------------------------------------------------------------

    def frames(self, obs: Any) -> torch.Tensor:
        """The flat observation the actuator passes, as ``uint8 [1, C, S, S]`` frames."""
        arr = np.asarray(obs, dtype=np.float32).reshape(-1)
        if arr.size != int(np.prod(self.shape)):
            raise ValueError(
                f"expected {int(np.prod(self.shape))} pixel values {self.shape}, got {arr.size}"
            )
        return torch.as_tensor(arr.reshape(self.shape).round().clip(0, 255).astype(np.uint8))[None]

    def track(self, obs: Any) -> None:
        """Filter ``obs`` into the belief if a decision was made since the last frame."""
        if self.belief is None:
            zero = torch.zeros(1, self.model.config.action_dim)
            self.belief = self.model.observe(self.model.initial(1), zero, self.frames(obs))
        elif self._moved:
            assert self._last_action is not None
            action = self.spec.encode(torch.as_tensor(self._last_action, dtype=torch.float32))
            self.belief = self.model.observe(self.belief, action[None], self.frames(obs))
        self._moved = False

    def _objective(self, obs: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        self.track(obs)
        belief = self.belief
        assert belief is not None

        def objective(actions: torch.Tensor) -> torch.Tensor:
            returns, _ = self.model.rollout(belief, self.spec.encode(actions.float()))
            return returns.T  # [B, E]: the planner's risk weight sees the members' spread

        return objective

    def record(self, action: Any) -> None:
        """The action taken in the env now (by this controller or another sharing the belief):
        the next frame is filtered with it."""
        self._last_action = np.asarray(action, dtype=np.float32).reshape(-1)
        self._moved = True

    @property
    def warm_plan(self) -> torch.Tensor | None:
        """The last planned sequence (the next search's warm start)."""
        return self.mpc.warm_plan

    def remember(self, decision: Decision) -> None:
        """Keep ``decision.plan`` as the next warm start."""
        self.mpc.remember(decision)

    # -- the Controller protocol ------------------------------------------------------------

    @property
    def horizon(self) -> int:
        return self.mpc.horizon

    def propose(self, state: Any, *, warm_start: Any = None, replans: int = 0) -> Any:
        return self.mpc.propose(state, warm_start=warm_start, replans=replans)

    def imagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        return self.mpc.imagine(state, candidates, horizon=horizon)

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        decision = self.mpc.decide(outcomes, replans=replans).model_copy(
            update={"source": "latent"}
        )
        if decision.verdict != "replan":
            self.record(decision.action)
        return decision

    def act(self, state: Any) -> Decision:
        self.track(state)
        decision = self.mpc.act(state).model_copy(update={"source": "latent"})
        self.record(decision.action)
        return decision

    def reset(self) -> None:
        self.mpc.reset()
        self.belief, self._last_action, self._moved = None, None, False


class LatentLearner:
    """Keeps whole episodes of frames and trains the latent model on sequences.

    Args:
        model: the latent world model.
        controller: whose frames/encoding it shares.
        budget: real steps to learn for (warm-up included).
        config: the training schedule.
        seed: the sequence sampler's generator.
    """

    def __init__(
        self,
        model: LatentWorldModel,
        controller: LatentController,
        budget: int,
        config: LatentAgentConfig | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.model, self.controller, self.budget = model, controller, int(budget)
        self.config = config or LatentAgentConfig()
        self.replay = EpisodeReplay(model.config.action_dim)
        self.rng = np.random.default_rng(seed)
        self._steps = 0
        self._new_episode = True
        self._warm = False
        self.losses: list[dict[str, float]] = []
        """Loss parts after each training round (the last gradient step's)."""

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def exhausted(self) -> bool:
        return self._steps >= self.budget

    def _frames(self, obs: Any) -> np.ndarray:
        return self.controller.frames(obs)[0].numpy()

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Record one real step; train when due (after the warm-up)."""
        if self._new_episode:
            self.replay.start(self._frames(obs))
            self._new_episode = False
        encoded = self.controller.spec.encode(torch.as_tensor(action, dtype=torch.float32))
        self.replay.add(encoded.numpy(), self._frames(next_obs), float(reward), bool(terminated))
        self._steps += 1
        if terminated or truncated:
            self._new_episode = True
        if self._warm and self._steps % self.config.train_every == 0:
            self.train(self.config.train_steps)

    def mark_episode_end(self) -> None:
        self._new_episode = True

    def finish_warmup(self) -> None:
        self._warm = True
        self.train(self.config.warmup_train_steps)

    def train(self, steps: int) -> None:
        """``steps`` gradient steps on sampled sequences."""
        parts: dict[str, float] = {}
        for _ in range(steps):
            b = self.replay.sample(self.config.batch, self.config.seq_len, self.rng)
            parts = self.model.train_step(b.frames, b.actions, b.rewards, b.continues, b.mask)
        if parts:
            self.losses.append(parts)


def run_latent_gym(
    make_env: Callable[[], Any],
    *,
    seed: int = 0,
    max_steps: int = 10_000,
    warmup_steps: int = 1_000,
    eval_every: int = 1_000,
    eval_episodes: int = 5,
    model_config: Mapping[str, Any] | None = None,
    agent_config: LatentAgentConfig | None = None,
    agent: str = "mpc",
    dream_config: Any = None,
    trust_return: float | None = None,
    policy_after: int | None = None,
    progress: bool = True,
) -> tuple[Any, LatentLearner]:
    """Learn an env from pixels: ``make_env()`` returns a pixel env (a
    :class:`~wm_agents.envs.pixels.PixelObservation`); two are made, one for evaluation.

    ``agent``: ``"mpc"`` (latent CEM), ``"policy"`` (a policy learned in the model's dreams,
    :mod:`wm_agents.latent.dream_agent`) or ``"hybrid"`` (latent MPC until that policy is
    trusted: its imagined return reaches ``trust_return``, then a real training episode run by
    the hybrid returns as much; ``None``: trusted from the first dream round on).
    ``dream_config`` is a :class:`~wm_agents.latent.dream.DreamConfig`; ``policy_after`` the
    real steps before the first dream round (default: the warm-up).  Returns the run loop's
    :class:`~wm_agents.run_loop.LoopRun` and the learner (its model, replay and losses; for the
    dreaming agents also ``trainer``, and the strategy as ``learner.strategy``).
    """
    from wm_agents.envs import GymActuator
    from wm_agents.run_loop import run_env_loop
    from wm_agents.runner import MPCStrategy

    if agent not in ("mpc", "policy", "hybrid"):
        raise ValueError(f"agent must be 'mpc', 'policy' or 'hybrid', got {agent!r}")
    env, eval_env = make_env(), make_env()
    actuator, eval_actuator = GymActuator(env), GymActuator(eval_env)
    shape = env.observation_space.shape
    spec = actuator.action_spec
    cfg = LatentConfig(
        channels=shape[0], size=shape[1], action_dim=spec.encoded_dim, **dict(model_config or {})
    )
    model = LatentWorldModel(cfg, seed=seed)
    controller = LatentController(model, spec, agent_config, seed=seed)
    strategy: Any
    if agent == "mpc":
        learner = LatentLearner(model, controller, max_steps, agent_config, seed=seed)
        strategy = MPCStrategy(controller, controller)
    else:
        from wm_agents.imagination.strategies import HybridTrust
        from wm_agents.latent.dream import DreamTrainer
        from wm_agents.latent.dream_agent import (
            LatentDreamLearner,
            LatentDreamStrategy,
            LatentHybridController,
            LatentPolicyController,
        )

        trainer = DreamTrainer(model, spec, dream_config, seed=seed)
        after = warmup_steps if policy_after is None else int(policy_after)
        learner = LatentDreamLearner(
            model, controller, max_steps, trainer, agent_config, policy_after=after, seed=seed
        )
        policy = LatentPolicyController(controller, trainer, seed=seed)
        hybrid, trust = None, None
        if agent == "hybrid":
            hybrid = LatentHybridController(policy=policy, mpc=controller)  # type: ignore[arg-type]
            trust = HybridTrust(trust_return, confirm_bar=trust_return)
        strategy = LatentDreamStrategy(
            controller, policy, learner, hybrid=hybrid, trust=trust, policy_after=after
        )
        learner.strategy = strategy
    run = run_env_loop(
        actuator,
        eval_actuator,
        strategy,
        learner,
        seed=seed,
        max_steps=max_steps,
        warmup_steps=warmup_steps,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        max_replans=2 if agent == "hybrid" else 1,  # a hybrid's policy round comes first
        progress=progress,
        desc="real steps (pixels)",
    )
    return run, learner
