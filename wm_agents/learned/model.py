"""``LearnedOutcomeModel``: a small torch model predicts a tool call's success, behind
``WorldModel``.

It learns from real outcomes (``learn(transitions)``, or the records an
:class:`~wm_agents.llm.ExperienceMemory` keeps) and predicts first-time calls from features of
the call and its situation (:mod:`wm_agents.learned.features`): an ensemble of small networks,
each on its own random subset of feature groups, calibrated on out-of-fold predictions, and
combined with the LLM's prior when one is given and enough examples had one
(:mod:`wm_agents.learned.training`, :mod:`wm_agents.learned.calibration`).

Each :class:`~wm_agents.core.Outcome` it returns:

* ``prediction["source"] = "learned"``; ``prediction["success_probability"]`` the calibrated
  ``p``; ``prediction["network_success_probability"]`` the network's alone;
  ``prediction["llm_success_probability"]`` the prior, when one was given;
* ``risk = 1 - p * (1 - harm)`` (``1 - p`` with the default harm 0);
* ``value = goal_progress * p - risk_penalty * harm`` (the LLM predictor's formula);
  ``member_values`` the same per member.  The model predicts success, not progress or harm:
  unless a prior outcome supplies them, progress is ``goal_progress`` (default 0.5: half-way,
  the middle of the LLM predictor's scale, so values from both sources compare) and harm is
  ``harm`` (default 0: harm is for declared hints and simulators to say);
* ``uncertainty`` in ``[0, 1]``: twice the standard deviation of the members' probabilities
  (0 = they agree; 1 = half say certain success, half certain failure).

It says *unknown* (``status="unknown"``, a reason, uncertainty 1, risk 1, value ``-inf``) when
it has too few examples (fewer than ``min_examples``, or only one outcome among them), for a
tool it has never seen or seen fewer than ``min_tool_examples`` times, and when a call's
features cannot be read: a composite model can then route the call to the LLM.  It never
raises for a bad prediction; a candidate that is not a tool call is a programming error and
raises ``ValueError``.

Why one module of ~570 lines: it is the one object that holds the model's state (examples,
fitted ensemble, calibrator, vocabulary) through its life (learn, refit, predict, save, load);
each step it delegates already has its own module (features, training, calibration, network,
file format in :mod:`wm_agents.learned.io`).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from wm_agents.core import LearnReport, Outcome, Transition, WorldModel
from wm_agents.learned.calibration import LogisticCalibrator
from wm_agents.learned.data import (
    OutcomeExample,
    aexamples_from_memory,
    example_from_transition,
    prior_from_outcome,
    situation_of,
)
from wm_agents.learned.features import CallFeaturizer, Vocabulary
from wm_agents.learned.io import read_model_file, write_model_file
from wm_agents.learned.metrics import accuracy, brier
from wm_agents.learned.network import EnsembleClassifier
from wm_agents.learned.training import FittedPredictor, LearnedConfig, fit_predictor, predict
from wm_agents.llm.memory import ExperienceMemory
from wm_agents.llm.schemas import LLMState, ToolCallCandidate, ToolSpec
from wm_agents.llm.sync import run_sync
from wm_agents.neural.model_config import ModelFileError

__all__ = ["UNKNOWN_UNCERTAINTY", "LearnedOutcomeModel", "LearnedPrediction"]

UNKNOWN_UNCERTAINTY = 1.0
"""Uncertainty is in [0, 1]; an unknown outcome has the maximum."""


@dataclass(frozen=True)
class LearnedPrediction:
    """The model's answer for one call: probabilities, or why it has none.

    Attributes:
        tool: the call's tool.
        p_success: calibrated success probability (with the prior where it was weighed in);
            None when unknown.
        p_network: the network's calibrated probability alone.
        prior: the LLM prior that was given (weighed in only when ``prior_used``).
        prior_used: whether the prior entered ``p_success``.
        member_probabilities: each member's probability.
        uncertainty: in [0, 1] (see the module docstring); 1 when unknown.
        reason: why there is no prediction (None when there is one).
        cause: a short key for ``reason``: ``"too_little_data"`` (not trained, or the tool
            seen too rarely), ``"unseen_tool"``, ``"unreadable_call"`` (its features could not
            be read) or ``"non_finite"``; the composite model passes such calls on to the
            next source (:data:`wm_agents.tools.composite.FALL_THROUGH`).
    """

    tool: str
    p_success: float | None
    p_network: float | None = None
    prior: float | None = None
    prior_used: bool = False
    member_probabilities: tuple[float, ...] = ()
    uncertainty: float = UNKNOWN_UNCERTAINTY
    reason: str | None = None
    cause: str | None = None

    @property
    def is_known(self) -> bool:
        """True when the model predicted."""
        return self.p_success is not None


class LearnedOutcomeModel:
    """A :class:`~wm_agents.core.WorldModel` over tool calls that learns from real outcomes.

    Args:
        config: network, training, calibration and refit settings (:class:`LearnedConfig`).
        tools: tool metadata (``BaseTool``, dicts, :class:`~wm_agents.llm.ToolSpec`); their
            parameter schemas add declared-type features.
        prior_model: a world model asked for each candidate's LLM prior in :meth:`aimagine`
            (an :class:`~wm_agents.llm.LLMOutcomePredictor`); its known outcomes' progress and
            harm are used too.  None: no prior unless :meth:`imagine` is given ``priors``.
        goal_progress: progress assumed when no prior outcome gives one (see the module
            docstring).
        harm: harm assumed when no prior outcome gives one.
        risk_penalty: ``lambda`` in ``value = progress * p - lambda * harm``.
    """

    def __init__(
        self,
        config: LearnedConfig | None = None,
        *,
        tools: Sequence[Any] = (),
        prior_model: WorldModel | None = None,
        goal_progress: float = 0.5,
        harm: float = 0.0,
        risk_penalty: float = 0.5,
    ) -> None:
        if not (0.0 <= goal_progress <= 1.0 and 0.0 <= harm <= 1.0 and risk_penalty >= 0.0):
            raise ValueError("need goal_progress and harm in [0, 1] and risk_penalty >= 0")
        self.config = config or LearnedConfig()
        self.prior_model = prior_model
        self.goal_progress = float(goal_progress)
        self.harm = float(harm)
        self.risk_penalty = float(risk_penalty)
        self.schemas: dict[str, dict[str, Any]] = {}
        for tool in tools:
            spec = ToolSpec.from_any(tool)
            self.schemas[spec.name] = dict(spec.parameters)
        self._examples: list[OutcomeExample] = []
        self._fitted: FittedPredictor | None = None
        self._new_since_fit = 0
        self._lock = threading.RLock()

    # -- state ------------------------------------------------------------------------------

    @property
    def examples(self) -> list[OutcomeExample]:
        """A copy of the examples kept (oldest first)."""
        with self._lock:
            return list(self._examples)

    @property
    def fitted(self) -> FittedPredictor | None:
        """The trained network and its calibration, or None before the first fit."""
        return self._fitted

    def _not_ready_reason(self) -> str | None:
        n = len(self._examples)
        if self._fitted is not None:
            return None
        if n < self.config.min_examples:
            return (
                f"the learned model is not trained yet: {n} real outcomes, it needs "
                f"{self.config.min_examples}"
            )
        return (
            "the learned model is not trained yet: its outcomes are all successes or all failures"
        )

    def add_examples(self, examples: Sequence[OutcomeExample]) -> int:
        """Keep ``examples`` (the oldest are dropped beyond ``max_examples``); no refit."""
        with self._lock:
            self._examples.extend(examples)
            overflow = len(self._examples) - self.config.max_examples
            if overflow > 0:
                del self._examples[:overflow]
            self._new_since_fit += len(examples)
            return len(examples)

    # -- fitting ----------------------------------------------------------------------------

    def fit(self) -> LearnReport:
        """Refit on every example kept now.  Too few examples (or one outcome only) is not an
        error: the report says so and predictions stay as they were (unknown before a first
        fit)."""
        with self._lock:
            examples = list(self._examples)
            schemas = dict(self.schemas)
        n = len(examples)
        outcomes = {ex.success for ex in examples}
        if n < self.config.min_examples or len(outcomes) < 2:
            why = (
                f"{n} of {self.config.min_examples} examples"
                if n < self.config.min_examples
                else "only one outcome among the examples"
            )
            return LearnReport(n_transitions=0, updated=False, message=f"not fitted: {why}")
        fitted = fit_predictor(examples, self.config, schemas)
        with self._lock:
            self._fitted = fitted
            self._new_since_fit = max(0, len(self._examples) - n)
        m = fitted.metrics
        return LearnReport(
            n_transitions=0,
            updated=True,
            metrics=dict(m),
            message=(
                f"fitted on {n} outcomes ({len(fitted.tool_counts)} tools) in {m['fit_s']:.1f}s; "
                f"out-of-fold Brier {m['oof_brier_calibrated']:.3f}"
            ),
        )

    def _should_refit(self, new: Sequence[OutcomeExample]) -> bool:
        if self._fitted is None:
            return True
        if self._new_since_fit >= self.config.refit_every:
            return True
        # A tool the network does not know becomes predictable as soon as it has enough data.
        counts: dict[str, int] = {}
        for ex in self._examples:
            counts[ex.tool] = counts.get(ex.tool, 0) + 1
        return any(
            not self._fitted.featurizer.knows(ex.tool)
            and counts[ex.tool] >= self.config.min_tool_examples
            for ex in new
        )

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Add real outcomes and refit when due (see ``refit_every`` in :class:`LearnedConfig`).

        Metrics: ``brier``/``accuracy`` of what the model predicted for these calls *before*
        learning them (over those it could predict, ``n_scored``), then the fit's own metrics
        when it refitted.

        Raises:
            ValueError: a transition without ``success`` or whose action is not a tool call.
        """
        new = [example_from_transition(t) for t in transitions]
        for t in transitions:
            for tool in LLMState.from_any(t.state).tools:
                spec = ToolSpec.from_any(tool)
                self.schemas.setdefault(spec.name, dict(spec.parameters))
        scored = self._predict_examples(new)
        known = [(p, ex) for p, ex in zip(scored, new, strict=True) if p.is_known]
        metrics: dict[str, float] = {"n_scored": float(len(known))}
        if known:
            ps = [p.p_success or 0.0 for p, _ in known]
            ys = [1.0 if ex.success else 0.0 for _, ex in known]
            metrics |= {"brier": brier(ps, ys), "accuracy": accuracy(ps, ys)}
        self.add_examples(new)
        if not self._should_refit(new):
            return LearnReport(
                n_transitions=len(new),
                updated=False,
                metrics=metrics,
                message=f"stored {len(new)} outcomes; refit after {self.config.refit_every} new",
            )
        report = self.fit()
        return LearnReport(
            n_transitions=len(new),
            updated=report.updated,
            metrics=metrics | report.metrics,
            message=f"stored {len(new)} outcomes; {report.message}",
        )

    async def alearn(self, transitions: Sequence[Transition]) -> LearnReport:
        """:meth:`learn` in a worker thread (fitting takes seconds of CPU)."""
        return await asyncio.to_thread(self.learn, transitions)

    async def afit_from_memory(self, memory: ExperienceMemory) -> LearnReport:
        """Replace the examples with the call records ``memory`` keeps, and refit."""
        examples = await aexamples_from_memory(memory, limit=self.config.max_examples)
        with self._lock:
            self._examples = list(examples)
            self._new_since_fit = len(examples)
        report = await asyncio.to_thread(self.fit)
        return report.model_copy(update={"n_transitions": len(examples)})

    def fit_from_memory(self, memory: ExperienceMemory) -> LearnReport:
        """Sync :meth:`afit_from_memory`."""
        return run_sync(self.afit_from_memory(memory))

    # -- predicting ---------------------------------------------------------------------------

    def _predict_examples(self, examples: Sequence[OutcomeExample]) -> list[LearnedPrediction]:
        return self.predict(
            [(ex.situation, ex.tool, ex.args) for ex in examples], [ex.p_llm for ex in examples]
        )

    def predict(
        self,
        calls: Sequence[tuple[str, str, dict[str, Any]]],
        priors: Sequence[float | None] | None = None,
    ) -> list[LearnedPrediction]:
        """Predictions for ``(situation text, tool, args)`` triples, batched (one network call
        for all); ``priors`` are LLM probabilities (None where there is none).  Never raises
        for a call it cannot predict: that one is unknown with the reason."""
        priors = list(priors) if priors is not None else [None] * len(calls)
        if len(priors) != len(calls):
            raise ValueError(f"got {len(priors)} priors for {len(calls)} calls")
        fitted = self._fitted
        not_ready = self._not_ready_reason()
        out: list[LearnedPrediction | None] = [None] * len(calls)
        rows: list[np.ndarray] = []
        index: list[int] = []
        for i, (situation, tool, args) in enumerate(calls):
            prior = _clean_prior(priors[i])
            if fitted is None:
                out[i] = LearnedPrediction(
                    tool, None, prior=prior, reason=not_ready, cause="too_little_data"
                )
                continue
            if not fitted.featurizer.knows(tool):
                known = ", ".join(sorted(fitted.tool_counts)) or "none"
                reason = f"the learned model has never seen tool {tool!r} (it knows: {known})"
                out[i] = LearnedPrediction(
                    tool, None, prior=prior, reason=reason, cause="unseen_tool"
                )
                continue
            n_tool = fitted.tool_counts.get(tool, 0)
            if n_tool < self.config.min_tool_examples:
                reason = (
                    f"the learned model has seen tool {tool!r} {n_tool} times; it needs "
                    f"{self.config.min_tool_examples}"
                )
                out[i] = LearnedPrediction(
                    tool, None, prior=prior, reason=reason, cause="too_little_data"
                )
                continue
            try:
                rows.append(fitted.featurizer.transform_one(situation, tool, args))
            except Exception as exc:  # odd argument values are data, not a crash
                reason = f"could not read the call's features: {type(exc).__name__}: {exc}"
                out[i] = LearnedPrediction(
                    tool, None, prior=prior, reason=reason[:300], cause="unreadable_call"
                )
                continue
            index.append(i)
        if index and fitted is not None:
            batch = predict(fitted, np.stack(rows), [_clean_prior(priors[i]) for i in index])
            unc = batch.uncertainty
            for j, i in enumerate(index):
                tool = calls[i][1]
                members = tuple(float(v) for v in batch.member_probabilities[:, j])
                p = float(batch.p_success[j])
                if not (math.isfinite(p) and all(math.isfinite(v) for v in members)):
                    out[i] = LearnedPrediction(
                        tool, None, reason="non-finite prediction", cause="non_finite"
                    )
                    continue
                out[i] = LearnedPrediction(
                    tool,
                    p,
                    p_network=float(batch.p_network[j]),
                    prior=_clean_prior(priors[i]),
                    prior_used=bool(batch.prior_used[j]),
                    member_probabilities=members,
                    uncertainty=float(unc[j]),
                )
        return [o for o in out if o is not None]

    async def aimagine(
        self,
        state: Any,
        candidates: Sequence[Any],
        *,
        horizon: int = 1,
        priors: Sequence[float | None] | None = None,
    ) -> list[Outcome]:
        """One :class:`Outcome` per candidate tool call, in order.

        Args:
            state: an :class:`~wm_agents.llm.LLMState`, a dict (``task``, ``context``...) or a
                string (the task).
            candidates: tool calls ``{"name", "args"}``.
            horizon: ignored: one tool call is one step.
            priors: the LLM's success probability per candidate (None where unknown); when
                not given and a ``prior_model`` is set, it is asked.

        Raises:
            ValueError: a candidate is not a tool call (a programming error).
        """
        del horizon
        llm_state = LLMState.from_any(state)
        calls = [ToolCallCandidate.from_any(c) for c in candidates]
        prior_outcomes: list[Outcome | None] = [None] * len(calls)
        if priors is None and self.prior_model is not None and calls:
            try:
                prior_outcomes = list(
                    await self.prior_model.aimagine(llm_state, [c.as_dict() for c in calls])
                )
            except Exception as exc:  # a failing prior must not take the prediction down
                reason = f"{type(exc).__name__}: {exc}"
                prior_outcomes = [Outcome.unknown(c.as_dict(), reason) for c in calls]
            priors = [prior_from_outcome(o) for o in prior_outcomes]
        situation = situation_of(llm_state)
        preds = await asyncio.to_thread(
            self.predict, [(situation, c.name, c.as_dict()["args"]) for c in calls], priors
        )
        return [
            self._outcome(call, pred, prior)
            for call, pred, prior in zip(calls, preds, prior_outcomes, strict=True)
        ]

    def imagine(
        self,
        state: Any,
        candidates: Sequence[Any],
        *,
        horizon: int = 1,
        priors: Sequence[float | None] | None = None,
    ) -> list[Outcome]:
        """Sync :meth:`aimagine`."""
        return run_sync(self.aimagine(state, candidates, horizon=horizon, priors=priors))

    def _outcome(
        self, call: ToolCallCandidate, pred: LearnedPrediction, prior: Outcome | None
    ) -> Outcome:
        n_tool = self._fitted.tool_counts.get(call.name, 0) if self._fitted else 0
        base = {
            "source": "learned",
            "tool": call.name,
            "n_examples": len(self._examples),
            "n_tool_examples": n_tool,
            "llm_success_probability": pred.prior,
        }
        if not pred.is_known or pred.p_success is None:
            return Outcome(
                candidate=call.as_dict(),
                prediction={**base, "cause": pred.cause or "unknown"},
                value=-math.inf,
                uncertainty=UNKNOWN_UNCERTAINTY,
                risk=1.0,
                status="unknown",
                reason=pred.reason,
            )
        progress, harm = self.goal_progress, self.harm
        if prior is not None and prior.is_known:
            progress = _clean_prior(prior.prediction.get("goal_progress")) or progress
            given_harm = _clean_prior(prior.prediction.get("harm"))
            harm = harm if given_harm is None else given_harm
        p = pred.p_success
        return Outcome(
            candidate=call.as_dict(),
            prediction={
                **base,
                "success": p >= 0.5,
                "success_probability": p,
                "network_success_probability": pred.p_network,
                "prior_used": pred.prior_used,
                "member_probabilities": list(pred.member_probabilities),
                "goal_progress": progress,
                "harm": harm,
            },
            value=progress * p - self.risk_penalty * harm,
            uncertainty=min(1.0, max(0.0, pred.uncertainty)),
            risk=min(1.0, max(0.0, 1.0 - p * (1.0 - harm))),
            member_values=[
                progress * q - self.risk_penalty * harm for q in pred.member_probabilities
            ],
        )

    # -- files ------------------------------------------------------------------------------

    def save(self, path: str | Path, *, include_examples: bool = True) -> Path:
        """Write the model (and, by default, its examples, so learning can go on after a
        load) to ``path``; see :mod:`wm_agents.learned.io` for the format."""
        with self._lock:
            fitted = self._fitted
            header: dict[str, Any] = {
                "version": 1,
                "config": self.config.model_dump(),
                "settings": {
                    "goal_progress": self.goal_progress,
                    "harm": self.harm,
                    "risk_penalty": self.risk_penalty,
                },
                "schemas": self.schemas,
                "examples": [ex.as_dict() for ex in self._examples] if include_examples else [],
                "fitted": None,
            }
            tensors: dict[str, torch.Tensor] = {}
            if fitted is not None:
                header["fitted"] = {
                    "vocabulary": fitted.featurizer.vocabulary.as_dict(),
                    "platt": fitted.platt.as_dict(),
                    "combiner": None if fitted.combiner is None else fitted.combiner.as_dict(),
                    "tool_counts": fitted.tool_counts,
                    "metrics": fitted.metrics,
                }
                tensors = dict(fitted.net.state_dict())
        return write_model_file(path, header, tensors)

    @classmethod
    def load(
        cls, path: str | Path, *, prior_model: WorldModel | None = None
    ) -> LearnedOutcomeModel:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            ModelFileError: the file is corrupt, truncated, not such a model, or its parts do
                not fit together (the message says which).
        """
        header, tensors = read_model_file(path)
        if header.get("version") != 1:
            raise ModelFileError(f"{path} has model version {header.get('version')}, expected 1")
        try:
            config = LearnedConfig(**header["config"])
            settings = header["settings"]
            model = cls(
                config,
                prior_model=prior_model,
                goal_progress=float(settings["goal_progress"]),
                harm=float(settings["harm"]),
                risk_penalty=float(settings["risk_penalty"]),
            )
            schemas = header.get("schemas") or {}
            if not isinstance(schemas, dict) or not all(
                isinstance(v, dict) for v in schemas.values()
            ):
                raise ValueError("schemas must map tool names to objects")
            model.schemas = {str(k): v for k, v in schemas.items()}
            raw_examples = header.get("examples") or []
            if not isinstance(raw_examples, list) or len(raw_examples) > config.max_examples:
                raise ValueError(f"examples must be a list of at most {config.max_examples}")
            model._examples = [OutcomeExample.from_dict(e) for e in raw_examples]
            fitted_data = header.get("fitted")
            if fitted_data is not None:
                model._fitted = _fitted_from(fitted_data, tensors, config)
            elif tensors:
                raise ValueError("weights without a fitted model")
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, ValidationError, RuntimeError) as exc:
            raise ModelFileError(f"{path} is not a valid learned outcome model: {exc}") from exc
        model._new_since_fit = 0
        return model


def _fitted_from(
    data: dict[str, Any], tensors: dict[str, torch.Tensor], config: LearnedConfig
) -> FittedPredictor:
    vocab = Vocabulary.from_dict(data["vocabulary"])
    featurizer = CallFeaturizer(vocab)
    columns = tensors.get("columns")
    if columns is None or columns.dim() != 1:
        raise ValueError("the weights do not say which feature columns the network reads")
    net = EnsembleClassifier(
        featurizer.dim,
        ensemble_size=config.ensemble_size,
        hidden=config.hidden,
        generator=torch.Generator().manual_seed(0),  # overwritten by the saved weights
        columns=[int(c) for c in columns.tolist()],
    )
    net.load_state_dict(tensors, strict=True)  # RuntimeError names missing/mismatched weights
    net.eval()
    counts = data["tool_counts"]
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
    ):
        raise ValueError("tool_counts must map tools to counts")
    combiner = data.get("combiner")
    metrics = data.get("metrics") or {}
    return FittedPredictor(
        featurizer,
        net,
        LogisticCalibrator.from_dict(data["platt"], n_inputs=1),
        None if combiner is None else LogisticCalibrator.from_dict(combiner, n_inputs=2),
        {str(k): int(v) for k, v in counts.items()},
        {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)},
    )


def _clean_prior(p: Any) -> float | None:
    if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p):
        return min(1.0, max(0.0, float(p)))
    return None
