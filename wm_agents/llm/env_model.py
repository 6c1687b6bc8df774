"""An LLM as an environment world model: the next state, reward and termination, from text.

A **baseline**, to show what the neural ensemble buys (issue 14, item 5): the same
:class:`~wm_agents.core.WorldModel` interface, so the same comparison and the same planning
loop run on both.  The model reads a description of the environment, a few real transitions as
examples, the current state and an action, and writes the next state as compact JSON
(``{"next":[...],"reward":1,"terminated":false}``).  A rollout of ``H`` steps is ``H`` calls in
a row (each step reads the last predicted state); the candidates of one ``imagine`` are rolled
out concurrently, under ``max_concurrency``.

Against a llama.cpp server (the embedded model, or ``backend="llama.cpp"``) a GBNF grammar
holds the answer to that shape, with bounded digits; any other OpenAI-compatible model is asked
for the JSON in the prompt and its text parsed.  A step whose answer cannot be read (or a model
that cannot be reached) makes that sample fail; a candidate whose samples all failed is
``status="unknown"`` with the reason, never a crash.

Uncertainty is the standard deviation of the samples' returns (as for the ensemble, whose
members play the samples' part); with one sample it cannot be measured and is reported as the
horizon (the largest spread a return of unit rewards can have), with
``prediction["uncertainty_known"] = False``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from langchain_core.messages import HumanMessage, SystemMessage

from wm_agents.core import LearnReport, Outcome, Transition
from wm_agents.llm.requests import uses_llama_cpp
from wm_agents.llm.sync import run_sync

__all__ = ["EnvTransition", "LLMDynamicsModel", "step_grammar"]

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class EnvTransition:
    """One real transition shown to the model as an example."""

    obs: tuple[float, ...]
    action: int
    next_obs: tuple[float, ...]
    reward: float
    terminated: bool


def step_grammar(obs_dim: int, decimals: int = 4) -> str:
    """A GBNF grammar for ``{"next":[x,...],"reward":r,"terminated":b}`` with ``obs_dim``
    numbers of at most 3 integer digits and ``decimals`` decimals (llama.cpp holds the answer
    to it; the tiny model otherwise wanders into prose or 20-digit numbers)."""
    if obs_dim < 1:
        raise ValueError(f"obs_dim must be >= 1, got {obs_dim}")
    if not 0 <= decimals <= 8:
        raise ValueError(f"decimals must be in [0, 8], got {decimals}")
    nums = ' "," '.join(["num"] * obs_dim)
    frac = f'("." [0-9]{{1,{decimals}}})?' if decimals else ""
    return (
        f'root ::= "{{\\"next\\":[" {nums} "],\\"reward\\":" num '
        '",\\"terminated\\":" ("true" | "false") "}"\n'
        f'num ::= "-"? [0-9] [0-9]? [0-9]? {frac}\n'
    )


def _fmt(values: Sequence[float], decimals: int) -> str:
    return "[" + ",".join(f"{float(v):.{decimals}f}" for v in values) + "]"


class _StepFault(Exception):
    """A sample's step that produced no usable answer (the message says why)."""


class LLMDynamicsModel:
    """A :class:`~wm_agents.core.WorldModel` over a vector environment, imagined by an LLM.

    Args:
        model: a LangChain chat model (``ChatOpenAI`` to the embedded server or any
            OpenAI-compatible one).
        description: what the environment is (dynamics in words, what ends an episode, the
            reward); goes into the system prompt.
        obs_names: one name per observation dimension, in order.
        action_names: one text per discrete action (``"push the cart left"``).
        examples: real transitions shown in every prompt (the same ones every time, so a
            prompt cache reads them once).
        samples: rollouts per candidate (their spread is the uncertainty).
        temperature: sampling temperature (0 for one sample, by default 0.7 with more).
        seed: sample ``i`` of a step uses ``seed + i`` where the server honours seeds.
        max_concurrency: model calls in flight at once.
        max_tokens: per call.
        timeout_s: per call.
        decimals: digits after the point in prompts and answers.
        backend: ``"auto"`` (llama.cpp's grammar for a model that can carry ``extra_body``
            and is the embedded one), ``"llama.cpp"`` or ``"openai"``.

    Raises:
        ValueError: on settings that cannot work (no observation names, no actions, ...).
    """

    def __init__(
        self,
        model: Any,
        *,
        description: str,
        obs_names: Sequence[str],
        action_names: Sequence[str],
        examples: Sequence[EnvTransition] = (),
        samples: int = 1,
        temperature: float | None = None,
        seed: int = 0,
        max_concurrency: int = 4,
        max_tokens: int = 96,
        timeout_s: float = 120.0,
        decimals: int = 4,
        backend: Literal["auto", "llama.cpp", "openai"] = "auto",
    ) -> None:
        if not obs_names:
            raise ValueError("obs_names must name at least one observation dimension")
        if len(action_names) < 2:
            raise ValueError("action_names must list at least two discrete actions")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.model = model
        self.description = str(description)
        self.obs_names = [str(n) for n in obs_names]
        self.action_names = [str(a) for a in action_names]
        self.examples = list(examples)
        for ex in self.examples:
            if len(ex.obs) != len(self.obs_names) or len(ex.next_obs) != len(self.obs_names):
                raise ValueError("an example's observations do not match obs_names")
        self.samples = int(samples)
        self.temperature = (0.0 if samples == 1 else 0.7) if temperature is None else temperature
        self.seed = int(seed)
        self.max_concurrency = int(max_concurrency)
        self.max_tokens = int(max_tokens)
        self.timeout_s = float(timeout_s)
        self.decimals = int(decimals)
        self.backend = backend
        self.grammar = step_grammar(len(self.obs_names), self.decimals)
        self.calls = 0
        """Model calls made (for the benchmark's cost column)."""
        self.failures = 0
        """Steps whose answer could not be used."""
        self._runnables: dict[int, Any] = {}
        self._system = self._system_prompt()

    # -- prompts ----------------------------------------------------------------------------

    def _system_prompt(self) -> str:
        lines = [
            "You simulate a physical environment one step at a time.",
            self.description.strip(),
            "State: " + ", ".join(self.obs_names) + ".",
            "Actions: " + "; ".join(f"{i} = {a}" for i, a in enumerate(self.action_names)) + ".",
            'Answer with JSON only: {"next":[...],"reward":r,"terminated":true|false}.',
        ]
        if self.examples:
            lines.append("Real steps of this environment:")
            for ex in self.examples:
                lines.append(
                    f"state {_fmt(ex.obs, self.decimals)} action {ex.action} -> "
                    + json.dumps(
                        {
                            "next": [round(float(v), self.decimals) for v in ex.next_obs],
                            "reward": float(ex.reward),
                            "terminated": bool(ex.terminated),
                        },
                        separators=(",", ":"),
                    )
                )
        return "\n".join(lines)

    def _messages(self, obs: np.ndarray, action: int) -> list[Any]:
        user = f"state {_fmt(obs, self.decimals)} action {action} ->"
        return [SystemMessage(self._system), HumanMessage(user)]

    # -- one step ---------------------------------------------------------------------------

    def _runnable(self, index: int) -> Any:
        if index in self._runnables:
            return self._runnables[index]
        fields = getattr(type(self.model), "model_fields", {})
        update: dict[str, Any] = {}
        if "temperature" in fields:
            update["temperature"] = self.temperature
        if "seed" in fields:
            update["seed"] = self.seed + index
        if "max_tokens" in fields:
            update["max_tokens"] = self.max_tokens
        if uses_llama_cpp(self.model, self.backend):
            extra = {**(getattr(self.model, "extra_body", None) or {}), "cache_prompt": True}
            update["extra_body"] = {**extra, "grammar": self.grammar}
        runnable = self.model.model_copy(update=update) if update else self.model
        self._runnables[index] = runnable
        return runnable

    def _parse(self, text: str) -> tuple[np.ndarray, float, bool]:
        match = _JSON_OBJECT.search(text or "")
        if match is None:
            raise _StepFault(f"no JSON object in the answer: {text[:80]!r}")
        try:
            data = json.loads(match.group(0))
        except ValueError as exc:
            raise _StepFault(f"unparseable answer: {exc}") from None
        nxt = data.get("next") if isinstance(data, dict) else None
        if not isinstance(nxt, list) or len(nxt) != len(self.obs_names):
            raise _StepFault(f"'next' must hold {len(self.obs_names)} numbers")
        try:
            values = np.asarray([float(v) for v in nxt], dtype=np.float64)
            reward = float(data.get("reward", 0.0))
        except (TypeError, ValueError):
            raise _StepFault("'next' and 'reward' must be numbers") from None
        if not (np.all(np.isfinite(values)) and math.isfinite(reward)):
            raise _StepFault("non-finite numbers in the answer")
        terminated = data.get("terminated")
        if not isinstance(terminated, bool):
            raise _StepFault("'terminated' must be true or false")
        return values, reward, terminated

    async def _step(
        self, obs: np.ndarray, action: int, index: int, semaphore: asyncio.Semaphore
    ) -> tuple[np.ndarray, float, bool]:
        async with semaphore:
            self.calls += 1
            try:
                out = await asyncio.wait_for(
                    self._runnable(index).ainvoke(self._messages(obs, action)),
                    timeout=self.timeout_s,
                )
            except Exception as exc:  # a dead server, a timeout: this sample fails
                raise _StepFault(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        content = getattr(out, "content", out)
        return self._parse(content if isinstance(content, str) else str(content))

    async def astep(self, obs: Sequence[float], action: int) -> tuple[np.ndarray, float, bool]:
        """One imagined step (sample 0): next observation, reward, terminated.

        Raises:
            ValueError: the answer could not be used (the message says why).
        """
        obs_arr = self._check_obs(obs)
        try:
            return await self._step(obs_arr, self._check_action(action), 0, asyncio.Semaphore(1))
        except _StepFault as exc:
            self.failures += 1
            raise ValueError(str(exc)) from None

    def step(self, obs: Sequence[float], action: int) -> tuple[np.ndarray, float, bool]:
        """Sync :meth:`astep`."""
        return run_sync(self.astep(obs, action))

    # -- imagine ----------------------------------------------------------------------------

    def _check_obs(self, obs: Any) -> np.ndarray:
        arr = np.asarray(obs, dtype=np.float64).reshape(-1)
        if arr.shape != (len(self.obs_names),):
            raise ValueError(
                f"state must be {len(self.obs_names)} numbers ({', '.join(self.obs_names)}), "
                f"got shape {np.shape(obs)}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"state must be finite, got {arr.tolist()}")
        return arr

    def _check_action(self, a: Any) -> int:
        value = np.asarray(a).reshape(-1)
        if value.size != 1 or float(value[0]) != int(value[0]):
            raise ValueError(f"an action must be one integer, got {a!r}")
        action = int(value[0])
        if not 0 <= action < len(self.action_names):
            raise ValueError(f"action {action} is not in 0..{len(self.action_names) - 1}")
        return action

    async def _rollout(
        self, obs: np.ndarray, actions: list[int], index: int, semaphore: asyncio.Semaphore
    ) -> tuple[float, list[list[float]], int | None]:
        total, states, ended = 0.0, [], None
        for t, a in enumerate(actions):
            obs, reward, terminated = await self._step(obs, a, index, semaphore)
            total += reward
            states.append([round(float(v), self.decimals) for v in obs])
            if terminated:
                ended = t
                break
        return total, states, ended

    async def aimagine(
        self, state: Any, candidates: Sequence[Any], *, horizon: int = 1
    ) -> list[Outcome]:
        """One :class:`Outcome` per action-sequence candidate (truncated to ``horizon``; a
        plain action is a sequence of one); every candidate x sample rolled out concurrently.

        Raises:
            ValueError: a state or an action of the wrong shape or range (programming errors).
        """
        obs = self._check_obs(state)
        seqs: list[list[int]] = []
        for c in candidates:
            arr = np.asarray(c).reshape(-1) if np.ndim(c) else np.asarray([c])
            seq = [self._check_action(a) for a in arr]
            seqs.append(seq[:horizon] if horizon >= 1 else seq)
        if not seqs:
            raise ValueError("no candidates to imagine: pass at least one action sequence")
        semaphore = asyncio.Semaphore(self.max_concurrency)
        jobs = [
            self._rollout(obs.copy(), seq, i, semaphore)
            for seq in seqs
            for i in range(self.samples)
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        outcomes = []
        for k, seq in enumerate(seqs):
            mine = results[k * self.samples : (k + 1) * self.samples]
            good = [r for r in mine if not isinstance(r, BaseException)]
            bad = [r for r in mine if isinstance(r, BaseException)]
            self.failures += len(bad)
            for r in bad:
                if not isinstance(r, _StepFault):
                    raise r  # a programming error, not the model's
            candidate = [int(a) for a in seq]
            if not good:
                reason = f"every sample failed: {bad[0]}" if bad else "no samples"
                outcomes.append(Outcome.unknown(candidate, reason, uncertainty=1.0))
                continue
            values = [float(r[0]) for r in good]
            known = len(values) >= 2
            spread = float(np.std(values)) if known else float(len(seq))
            ended = [r[2] for r in good]
            outcomes.append(
                Outcome(
                    candidate=candidate,
                    prediction={
                        "source": "llm",
                        "states": good[0][1],
                        "terminated_at": ended[0],
                        "samples": len(good),
                        "failed_samples": len(bad),
                        "uncertainty_known": known,
                    },
                    value=float(np.mean(values)),
                    uncertainty=spread,
                    risk=sum(e is not None for e in ended) / len(ended),
                    member_values=values,
                )
            )
        return outcomes

    def imagine(self, state: Any, candidates: Sequence[Any], *, horizon: int = 1) -> list[Outcome]:
        """Sync :meth:`aimagine`."""
        return run_sync(self.aimagine(state, candidates, horizon=horizon))

    def learn(self, transitions: Sequence[Transition]) -> LearnReport:
        """Nothing to fit: the examples are fixed at construction (a prompt that changed with
        every step would defeat the prompt cache, which is most of the speed)."""
        return LearnReport(
            n_transitions=len(transitions),
            updated=False,
            message="the LLM dynamics model does not learn; its examples are fixed",
        )
