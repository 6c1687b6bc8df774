"""Model-predictive control on any world model: propose -> imagine -> decide, as plain methods.

:class:`MPCController` is a :class:`~wm_agents.core.Controller`.  The planner sees only an
objective ``[B, H, A] -> [B]`` or ``[B, K]`` built from the current state by an *objective
factory* (``state -> Objective``):

* for an :class:`~wm_agents.neural.EnsembleDynamicsModel` the default is the ensemble's fast
  rollout (:func:`model_objective`: thousands of candidates per call, particles, a terminal
  value);
* for any other :class:`~wm_agents.core.WorldModel` it is :func:`imagined_objective`: the
  values of the model's own ``imagine`` outcomes (the members' values when every outcome has as
  many), so a model that implements only ``imagine`` / ``aimagine`` / ``learn`` plans with CEM;
* a caller may pass its own (the planning-speed benchmark passes the seed's loop).

The planning graph's nodes call :meth:`~MPCController.propose`, :meth:`~MPCController.imagine`
and :meth:`~MPCController.decide`; :meth:`~MPCController.act` runs them through
:func:`~wm_agents.core.plan_step` for users (and benchmarks) that do not want a graph.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wm_agents.core import (
    Decision,
    Gate,
    Outcome,
    PlannedStep,
    WorldModel,
    plan_step,
    plan_steps,
)
from wm_agents.neural.ensemble import EnsembleDynamicsModel, imagine_many
from wm_agents.neural.rollout import check_explore, one_each, rollout_many, shape_groups
from wm_agents.planning.gate import AgreementGate
from wm_agents.planning.optimizers import (
    BatchObjective,
    CEMPlanner,
    Objective,
    Proposal,
    RandomShootingPlanner,
    propose_together,
)

__all__ = [
    "MPCController",
    "ObjectiveFactory",
    "imagined_objective",
    "joint_pass",
    "model_objective",
    "model_objective_many",
    "plan_together",
]

ObjectiveFactory = Callable[[Any], Objective]
"""``state -> objective``: what a planner optimizes from this state (``[B, H, A] -> [B]`` or
``[B, K]``)."""


def model_objective(
    model: EnsembleDynamicsModel,
    obs: Any,
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    use_value: bool = False,
    value_kappa: float = 1.0,
    explore: float = 0.0,
) -> Objective:
    """``[B, H, A] -> [B, K]`` imagined returns from ``obs`` (K particles, TS-infinity).

    With ``use_value`` and a fitted terminal value, returns include ``gamma^H * V(s_H)`` with the
    pessimistic ``V`` of ``model.value_lcb`` (``value_kappa``).  ``explore > 0`` adds the
    members' disagreement to each step's reward (:func:`~wm_agents.neural.rollout.rollout`;
    every member then imagines every sequence, whatever ``particles`` says).
    """
    obs_t = model.check_obs(obs)
    tv = model.terminal_value_fn(value_kappa) if use_value else None
    k = None if explore else particles
    return lambda actions: (
        model.rollout(
            obs_t, actions, particles=k, gamma=gamma, terminal_value=tv, explore=explore
        ).returns
    )


def model_objective_many(
    model: EnsembleDynamicsModel | Sequence[EnsembleDynamicsModel],
    states: Sequence[Any],
    *,
    particles: int | None = None,
    gamma: float = 1.0,
    use_value: bool = False,
    value_kappa: float = 1.0,
    explore: float = 0.0,
) -> BatchObjective:
    """:func:`model_objective` for ``N`` states as one :data:`BatchObjective`: the sequences of
    every search asking this round go through one :func:`~wm_agents.neural.rollout.rollout_many`
    per population size (searches that re-plan wider ask for more), each search getting the
    ``[B, K]`` returns :func:`model_objective` would give it.

    ``model`` is one model for every state, or one per state (several agents' models of one
    architecture; they search in the first one's ``planning_dtype``): state ``i``'s sequences
    are imagined by its own model, in the same pass as the others'."""
    models = one_each(model, len(states), "model")
    obs_t = torch.stack([m.check_obs(s) for m, s in zip(models, states, strict=True)])
    values = [m.terminal_value_fn(value_kappa) if use_value else None for m in models]

    def objective(which: Sequence[int], actions: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = [torch.empty(0)] * len(which)
        for js in shape_groups(actions):
            rows = [which[j] for j in js]
            rolls = rollout_many(
                [models[i] for i in rows],
                obs_t[rows],
                torch.stack([actions[j] for j in js]),
                particles=None if explore else particles,
                gamma=gamma,
                terminal_value=[values[i] for i in rows],
                dtype=models[0].planning_dtype,
                explore=explore,
            )
            for j, roll in zip(js, rolls, strict=True):
                out[j] = roll.returns
        return out

    return objective


def imagined_objective(model: WorldModel, state: Any, *, horizon: int) -> Objective:
    """``[B, H, A] -> [B, K]`` (or ``[B]``): the values of ``model.imagine``'s outcomes.

    Each call imagines the ``B`` sequences once (``model.imagine(state, sequences,
    horizon=horizon)``).  When every known outcome carries the same number ``K > 0`` of member
    values the objective is ``[B, K]`` (so a planner's ``risk_weight`` sees the spread), else
    ``[B]`` of ``Outcome.value``; an unknown outcome scores ``-inf`` (the planners rank it last
    and count it).

    Raises (when called):
        ValueError: the model returned a different number of outcomes than sequences.
    """

    def objective(actions: torch.Tensor) -> torch.Tensor:
        outcomes = model.imagine(state, actions.tolist(), horizon=horizon)
        if len(outcomes) != actions.shape[0]:
            raise ValueError(
                f"{type(model).__name__}.imagine returned {len(outcomes)} outcomes for "
                f"{actions.shape[0]} sequences"
            )
        widths = {len(o.member_values) for o in outcomes if o.is_known}
        if len(widths) == 1 and 0 not in widths:
            k = widths.pop()
            rows = [o.member_values if o.is_known else [-math.inf] * k for o in outcomes]
            return torch.tensor(rows, dtype=torch.float32)  # [B, K]
        return torch.tensor([o.value for o in outcomes], dtype=torch.float32)  # [B]

    return objective


@dataclass
class MPCController:
    """Plan one action at a time with a world model, a trajectory optimizer and a gate.

    Attributes:
        model: any :class:`~wm_agents.core.WorldModel` (imagines candidates).
        planner: :class:`CEMPlanner` or :class:`RandomShootingPlanner` (proposes candidates).
        gate: decides, and asks for a re-plan when members disagree; default an
            :class:`AgreementGate` (an agreement gate without an action space gets the
            planner's).
        objective: ``state -> Objective`` the planner optimizes (see the module doc); ``None``
            takes the ensemble's fast rollout, or the model's ``imagine`` values for any other
            model.
        particles: particles per candidate inside the optimizer (1: each candidate imagined by
            one member, round-robin, the cheap search; ``None``: one per member).  The final
            candidates are always imagined by every member.  Ensemble only.
        widen: population multiplier for each re-plan the gate asks for.
        gamma: discount inside the horizon (match ``FitConfig.value_gamma``).  Ensemble only.
        use_value: add the model's learned terminal value ``gamma^H * V(s_H)`` (when fitted).
            Ensemble only.
        value_kappa: pessimism of that value: ``mean - kappa * std`` over members.
        halt_margin: this controller's searches and imagination widen the model's halt box
            (:meth:`~wm_agents.neural.network.EnsembleNetwork.state_box`) by this share of
            each range instead of the model's own ``halt_margin``; ``None``: the model's.  A
            training controller may imagine a little past the data (and so go and collect
            it) while the evaluation's plans stay inside it.  Ensemble with the halt on only.
        explore: optimism where the model is ignorant: the search adds this weight times the
            members' disagreement about each imagined state to its reward (every member then
            imagines every sequence, whatever :attr:`particles` says;
            :func:`~wm_agents.neural.rollout.rollout`).  The final candidates are imagined
            without it, so the gate judges real returns.  A training controller's option (go
            where the data is not); 0 for an evaluation.  Ensemble only.
        warm_plan: the ``[H, A]`` plan of the last :meth:`act` (shifted into the next search);
            ``None`` at an episode start (:meth:`reset`).  The graph keeps its own in state.
    """

    model: WorldModel
    planner: CEMPlanner | RandomShootingPlanner
    gate: Gate | None = None
    objective: ObjectiveFactory | None = None
    particles: int | None = 1
    widen: float = 2.0
    gamma: float = 0.99
    use_value: bool = True
    value_kappa: float = 1.0
    halt_margin: float | None = None
    explore: float = 0.0
    warm_plan: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.halt_margin is not None:
            EnsembleDynamicsModel.check_halt_margin(self.halt_margin)
        check_explore(self.explore)
        if self.gate is None:
            self.gate = AgreementGate()
        if isinstance(self.gate, AgreementGate) and self.gate.action_spec is None:
            self.gate = self.gate.for_actions(self.planner.action_spec)

    @property
    def horizon(self) -> int:
        return self.planner.horizon

    @property
    def action_spec(self) -> Any:
        return self.planner.action_spec

    def objective_for(self, obs: Any) -> Objective:
        """The objective the planner optimizes from ``obs`` (see :attr:`objective`)."""
        if self.objective is not None:
            return self.objective(obs)
        if isinstance(self.model, EnsembleDynamicsModel):
            return model_objective(
                self.model,
                obs,
                particles=self.particles,
                gamma=self.gamma,
                use_value=self.use_value,
                value_kappa=self.value_kappa,
                explore=self.explore,
            )
        return imagined_objective(self.model, obs, horizon=self.horizon)

    @torch.inference_mode()
    def propose(self, obs: Any, *, warm_start: Any = None, replans: int = 0) -> Proposal:
        """Search for good action sequences from ``obs``; wider after each re-plan.

        Runs in ``torch.inference_mode`` (as :meth:`imagine` and :meth:`act` do): no autograd
        bookkeeping on the search's thousands of small ops, so a graph node calling it plans as
        fast as the bare loop.
        """
        objective = self.objective_for(obs)
        population = int(self.planner.population * self.widen**replans)
        warm = None
        if warm_start is not None:
            warm = self.planner.shift(torch.as_tensor(warm_start, dtype=torch.float32))
        with self._halting():
            return self.planner.propose(objective, warm_start=warm, population=population)

    def _halting(self) -> contextlib.ExitStack:
        """The model's halt margin as :attr:`halt_margin` says, while the model runs."""
        return _halting_all([self])

    @torch.inference_mode()
    def imagine(
        self, obs: Any, candidates: Sequence[Any], *, horizon: int | None = None
    ) -> list[Outcome]:
        """Every member imagines every candidate (the :class:`WorldModel` call)."""
        h = self.horizon if horizon is None else horizon
        if isinstance(self.model, EnsembleDynamicsModel):
            with self._halting():
                return self.model.imagine(
                    obs,
                    candidates,
                    horizon=h,
                    gamma=self.gamma,
                    use_value=self.use_value,
                    value_kappa=self.value_kappa,
                )
        return list(self.model.imagine(obs, candidates, horizon=h))

    def decide(self, outcomes: Sequence[Outcome], *, replans: int = 0) -> Decision:
        """The gate's decision, marked ``source="mpc"``."""
        assert self.gate is not None  # set in __post_init__
        decision = self.gate.decide(outcomes, replans=replans)
        return decision.model_copy(update={"source": "mpc"})

    @torch.inference_mode()
    def plan(self, obs: Any, *, warm_start: Any = None) -> PlannedStep[Proposal]:
        """One decision's rounds (:func:`~wm_agents.core.plan_step`): the decision and the last
        :class:`Proposal` and outcomes.  Keeps nothing (see :meth:`act`)."""
        return plan_step(
            lambda r: self.propose(obs, warm_start=warm_start, replans=r),
            lambda p: self.imagine(obs, p.candidates.tolist()),
            lambda outcomes, r: self.decide(outcomes, replans=r),
        )

    @torch.inference_mode()
    def act(self, obs: Any) -> Decision:
        """One full decision (with re-plans as the gate asks); keeps the plan for a warm start."""
        t0 = time.perf_counter()
        step = self.plan(obs, warm_start=self.warm_plan)
        self.remember(step.decision)
        ms = (time.perf_counter() - t0) * 1e3
        decision = step.decision
        return decision.model_copy(
            update={"plan_ms": ms, "n_nonfinite": decision.n_nonfinite + step.proposal.n_nonfinite}
        )

    def episode_generator(self, episode_seed: int) -> torch.Generator:
        """The planner's random stream for one evaluation episode: seeded from the planner's
        own seed and ``episode_seed`` (the env seed), so an episode plans the same whether it
        runs alone or beside others in a batch, and in any order
        (:func:`~wm_agents.run_loop.evaluate`, :func:`~wm_agents.batch_eval.evaluate_batched`).
        """
        base = int(self.planner.generator.initial_seed())
        seed = np.random.SeedSequence([base, int(episode_seed) & 0xFFFFFFFF]).generate_state(1)
        return torch.Generator().manual_seed(int(seed[0]))

    def for_episode(self, episode_seed: int) -> MPCController:
        """A twin for one evaluation episode: the same model, gate and options, its planner
        drawing from :meth:`episode_generator` (``episode_seed``) instead of the shared
        stream, so the episode's decisions do not depend on the episodes before it."""
        planner = copy.copy(self.planner)
        planner.generator = self.episode_generator(episode_seed)
        return dataclasses.replace(self, planner=planner)

    def objective_many(self, states: Sequence[Any]) -> BatchObjective:
        """The :data:`BatchObjective` for ``states``: the ensemble's batched rollout, or each
        state's own :meth:`objective_for` (a custom factory, any other model)."""
        return _objective_together([self] * len(states), states)

    @torch.inference_mode()
    def plan_many(
        self,
        states: Sequence[Any],
        *,
        warm_starts: Sequence[Any],
        generators: Sequence[torch.Generator],
    ) -> list[PlannedStep[Proposal]]:
        """:meth:`plan` for ``N`` states at once (one per sub-env of a batched evaluation).

        State ``i`` searches with ``generators[i]`` from ``warm_starts[i]``; each round the
        searches of every state still undecided score their populations in one batched model
        pass (:meth:`objective_many`), so each state gets the decision :meth:`plan` would give
        it with that generator; the final candidates of every state are imagined in one
        batched pass too (:meth:`imagine_many`).  (:func:`plan_together` with this controller
        for every state.)
        """
        return plan_together(
            [self] * len(states), states, warm_starts=warm_starts, generators=generators
        )

    @torch.inference_mode()
    def imagine_many(
        self, states: Sequence[Any], candidates: Sequence[Sequence[Any]]
    ) -> list[list[Outcome]]:
        """:meth:`imagine` for several states: the ensemble's in one batched pass
        (:func:`~wm_agents.neural.ensemble.imagine_many`), any other model's state by state."""
        with self._halting():
            return _imagine_together([self] * len(states), states, candidates)

    def remember(self, decision: Decision) -> None:
        """Keep ``decision.plan`` as the next warm start (what :meth:`act` does after deciding)."""
        self.warm_plan = torch.tensor(decision.plan) if decision.plan is not None else None

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self.warm_plan = None


# ---------------------------------------------------------------------- several controllers


def joint_pass(controllers: Sequence[MPCController]) -> bool:
    """Whether ``controllers`` (one per state: one controller repeated, or several agents')
    imagine in one batched model pass: every one plans on an
    :class:`~wm_agents.neural.EnsembleDynamicsModel`.  (Their searches share it too where every
    one has the default objective.)  Otherwise each state is imagined by its own controller.

    Raises:
        ValueError: ensemble controllers that cannot share the pass (another model
            architecture or planning dtype, or other options of the pass: ``particles``,
            ``gamma``, ``use_value``, ``value_kappa``, ``explore``, the planner's horizon),
            naming the first controller that differs from ``controllers[0]`` and how.
    """
    if not all(isinstance(c.model, EnsembleDynamicsModel) for c in controllers):
        return False
    distinct: dict[int, tuple[int, MPCController]] = {}  # each controller once, in order
    for i, c in enumerate(controllers):
        distinct.setdefault(id(c), (i, c))
    ours = _pass_options(controllers[0])
    for i, c in distinct.values():
        if i == 0:
            continue
        theirs = _pass_options(c)
        diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
        if diff:
            raise ValueError(
                f"controller {i} cannot share a batched model pass with controller 0: {diff} "
                f"(as (controller 0, controller {i})); evaluate them separately "
                "(wm_agents.batch_eval.evaluate_batched each)"
            )
    return True


def _pass_options(c: MPCController) -> dict[str, Any]:
    """What must match for two controllers' searches to share a model pass."""
    model = c.model
    assert isinstance(model, EnsembleDynamicsModel)  # joint_pass checked
    return {
        **model.config.model_dump(),  # the architecture, field by field
        "planning_dtype": model.planning_dtype,
        "particles": c.particles,
        "gamma": c.gamma,
        "use_value": c.use_value,
        "value_kappa": c.value_kappa,
        "horizon": c.horizon,
        "explore": c.explore,
    }


@torch.inference_mode()
def plan_together(
    controllers: Sequence[MPCController],
    states: Sequence[Any],
    *,
    warm_starts: Sequence[Any],
    generators: Sequence[torch.Generator],
) -> list[PlannedStep[Proposal]]:
    """:meth:`MPCController.plan` for ``N`` states at once, state ``i`` by ``controllers[i]``
    (several agents' controllers: a sweep's evaluation episodes, planned together).

    State ``i`` searches with its controller's planner, drawing from ``generators[i]``, from
    ``warm_starts[i]`` (shifted by that planner), and is decided by its controller's gate; each
    round the searches of every state still undecided score their populations in one batched
    model pass, each state's sequences imagined by its own controller's model
    (:func:`model_objective_many`, :func:`~wm_agents.neural.ensemble.imagine_many`).  So each
    state gets the decision its controller's :meth:`~MPCController.plan` would give it with
    that generator.

    Raises:
        ValueError: lists of different lengths, controllers that cannot share the pass
            (:func:`joint_pass`), or two on one model with different ``halt_margin``.
    """
    n = len(states)
    if not len(controllers) == len(warm_starts) == len(generators) == n:
        raise ValueError(
            f"{len(controllers)} controllers, {n} states, {len(warm_starts)} warm starts and "
            f"{len(generators)} generators: one each"
        )
    if not n:
        return []
    with _halting_all(controllers):
        return _plan_together(controllers, states, warm_starts, generators)


def _halting_all(controllers: Sequence[MPCController]) -> contextlib.ExitStack:
    """Every controller's :attr:`~MPCController.halt_margin` on its model while the block runs
    (a model whose controllers all keep its own margin is left alone).

    Raises:
        ValueError: two controllers on one model with different margins.
    """
    margins: dict[int, tuple[Any, float]] = {}
    for c in controllers:
        if not isinstance(c.model, EnsembleDynamicsModel):
            continue
        margin = c.model.halt_margin if c.halt_margin is None else c.halt_margin
        _, other = margins.setdefault(id(c.model), (c.model, margin))
        if other != margin:
            raise ValueError(
                f"controllers on one model with different halt margins ({other} and {margin}) "
                "cannot plan together: plan each with its own plan_many"
            )
    stack = contextlib.ExitStack()
    for model, margin in margins.values():
        if margin != model.halt_margin:
            stack.enter_context(model.halt_margin_as(margin))
    return stack


def _plan_together(
    controllers: Sequence[MPCController],
    states: Sequence[Any],
    warm_starts: Sequence[Any],
    generators: Sequence[torch.Generator],
) -> list[PlannedStep[Proposal]]:
    """:func:`plan_together` once its arguments are checked."""
    n = len(states)
    objective = _objective_together(controllers, states)

    def propose(which: Sequence[int], replans: Sequence[int]) -> list[Proposal]:
        planners = [controllers[i].planner for i in which]
        return propose_together(
            planners,
            lambda live, actions: objective([which[j] for j in live], actions),
            warm_starts=[
                None if warm_starts[i] is None else p.shift(warm_starts[i])
                for i, p in zip(which, planners, strict=True)
            ],
            generators=[generators[i] for i in which],
            populations=[
                int(p.population * controllers[i].widen ** r)
                for i, p, r in zip(which, planners, replans, strict=True)
            ],
        )

    return plan_steps(
        propose,
        lambda which, proposals: _imagine_together(
            [controllers[i] for i in which],
            [states[i] for i in which],
            [p.candidates.tolist() for p in proposals],
        ),
        lambda i, outcomes, replans: controllers[i].decide(outcomes, replans=replans),
        n,
    )


def _objective_together(
    controllers: Sequence[MPCController], states: Sequence[Any]
) -> BatchObjective:
    """State ``i`` scored by ``controllers[i]``: in one batched pass (:func:`joint_pass`, every
    controller with the default objective), or each by its own
    :meth:`~MPCController.objective_for`."""
    if all(c.objective is None for c in controllers) and joint_pass(controllers):
        c = controllers[0]
        return model_objective_many(
            [x.model for x in controllers],  # type: ignore[misc]
            states,
            particles=c.particles,
            gamma=c.gamma,
            use_value=c.use_value,
            value_kappa=c.value_kappa,
            explore=c.explore,
        )
    objectives = [c.objective_for(s) for c, s in zip(controllers, states, strict=True)]
    return lambda which, actions: [objectives[i](a) for i, a in zip(which, actions, strict=True)]


def _imagine_together(
    controllers: Sequence[MPCController],
    states: Sequence[Any],
    candidates: Sequence[Sequence[Any]],
) -> list[list[Outcome]]:
    """``controllers[i].imagine(states[i], candidates[i])`` for every ``i``: the ensembles' in
    one batched pass, any other model's state by state."""
    if joint_pass(controllers):
        c = controllers[0]
        return imagine_many(
            [x.model for x in controllers],  # type: ignore[misc]
            states,
            candidates,
            horizon=c.horizon,
            gamma=c.gamma,
            use_value=c.use_value,
            value_kappa=c.value_kappa,
        )
    return [c.imagine(s, cs) for c, s, cs in zip(controllers, states, candidates, strict=True)]
