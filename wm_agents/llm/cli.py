"""``wm-agents llm serve`` and ``wm-agents llm predict``.

``predict`` imagines one tool call and prints it as a table; with ``--json`` the last line of
stdout is one JSON object (``status``, ``predicted_result``, ``success_probability``, ``risk``,
``uncertainty``, ``reason``, ...).  With no ``OPENAI_*`` variables it starts the embedded model
itself.  A model fault (server unreachable, timeout, bad output) prints status ``unknown`` with
the reason and exits 1, without a traceback.

"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["configure", "json_object", "outcome_summary"]

logger = logging.getLogger(__name__)


def configure(llm: argparse.ArgumentParser, rest: Sequence[str] | None = None) -> None:
    """Add the ``serve`` and ``predict`` sub-commands to the ``llm`` command's parser; each
    sets ``func(args) -> int``."""
    from wm_agents.llm.server import build_arg_parser

    del rest
    llm_sub = llm.add_subparsers(dest="llm_command", metavar="{serve,predict}")
    llm_sub.required = True

    serve = llm_sub.add_parser(
        "serve",
        help="run the embedded offline LLM (OpenAI-compatible) in the foreground until Ctrl-C",
        description="Run the embedded SmolLM2-135M on llama.cpp's OpenAI-compatible server.",
    )
    build_arg_parser(serve)
    serve.set_defaults(func=_serve)

    predict = llm_sub.add_parser(
        "predict",
        help="imagine the outcome of one tool call",
        description="Imagine the outcome of one tool call before it runs. Uses OPENAI_BASE_URL "
        "/ OPENAI_API_KEY / WM_AGENTS_LLM_MODEL when set, else the embedded offline model.",
    )
    predict.add_argument("--tool", required=True, help="tool name")
    predict.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    predict.add_argument("--context", default="", help="what the model should know")
    predict.add_argument("--task", default="", help="what the agent is trying to do")
    predict.add_argument("--description", default="", help="the tool's description")
    predict.add_argument("--schema", default=None, help="the tool's JSON schema of arguments")
    predict.add_argument("--samples", type=int, default=3, help="samples (default 3)")
    predict.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    predict.add_argument("--temperature", type=float, default=0.7, help="(default 0.7)")
    predict.add_argument("--timeout", type=float, default=60.0, help="seconds per model call")
    predict.add_argument("--retries", type=int, default=1, help="retries on connection errors")
    predict.add_argument("--json", action="store_true", help="end with one JSON object")
    predict.set_defaults(func=_predict)


def _serve(args: argparse.Namespace) -> int:
    from wm_agents.llm.server import run_from_args

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(
        f"serving the embedded LLM at http://{args.host}:{args.port}/v1 "
        "(Ctrl-C to stop; the tiny model is for plumbing, not judgement)",
        flush=True,
    )
    return run_from_args(args)


def json_object(text: str, option: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object of finite numbers; ``ValueError`` naming ``option``.

    Python's ``json`` accepts ``NaN`` / ``Infinity`` (and turns ``1e999`` into ``inf``), which
    strict JSON has no way to write back: such input would pass here and break the JSON output
    after the model was asked, so it is refused before any work.
    """

    def refuse(token: str) -> Any:
        raise ValueError(f"{option} has {token}: JSON numbers must be finite")

    def finite(token: str) -> float:
        value = float(token)
        return value if math.isfinite(value) else refuse(token)

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} must be JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def outcome_summary(outcome: Any, *, model: str = "") -> dict[str, Any]:
    """The flat JSON the CLI prints: always ``status``, ``predicted_result``,
    ``success_probability`` (in [0, 1]; 0.5 when unknown), ``risk``, ``uncertainty``,
    ``reason``; non-finite numbers become ``null``."""
    p = outcome.prediction
    known = outcome.status == "ok"
    return {
        "status": outcome.status,
        "tool": (outcome.candidate or {}).get("name"),
        "args": (outcome.candidate or {}).get("args"),
        "predicted_result": p.get("predicted_result") if known else None,
        "success_probability": float(p.get("success_probability", 0.5)) if known else 0.5,
        "llm_success_probability": p.get("llm_success_probability") if known else None,
        "risk": outcome.risk,
        "risk_level": p.get("risk_level"),
        "reversible": p.get("reversible"),
        "side_effects": p.get("side_effects"),
        "uncertainty": _finite(outcome.uncertainty),
        "value": _finite(outcome.value),
        "n_samples": p.get("n_samples", 0),
        "n_failed": p.get("n_failed", 0),
        "reason": outcome.reason,
        "model": model,
    }


def _print_table(summary: dict[str, Any]) -> None:
    """Print the summary as a table; every value is ``Text`` (model output is data, not
    markup: a predicted result of ``[/red]`` prints as written)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    ok = summary["status"] == "ok"
    table = Table(title="imagined outcome", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    rows = [
        ("status", Text("ok", style="green") if ok else Text("unknown", style="red")),
        ("tool call", f"{summary['tool']}({json.dumps(summary['args'])})"),
        ("predicted result", fmt(summary["predicted_result"])),
        ("success probability", fmt(summary["success_probability"])),
        ("risk", fmt(summary["risk"])),
        ("risk level", fmt(summary["risk_level"])),
        ("reversible", fmt(summary["reversible"])),
        ("side effects", fmt(summary["side_effects"])),
        ("uncertainty", fmt(summary["uncertainty"])),
        ("value", fmt(summary["value"])),
        ("samples", f"{summary['n_samples']} ({summary['n_failed']} failed)"),
        ("reason", fmt(summary["reason"])),
        ("model", fmt(summary["model"])),
    ]
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else Text(value))
    Console(highlight=False, markup=False).print(table)


def _predict(args: argparse.Namespace) -> int:
    from wm_agents.core import Outcome
    from wm_agents.llm.config import chat_model_from_settings, resolve_llm_settings
    from wm_agents.llm.predictor import LLMOutcomePredictor
    from wm_agents.llm.server import EmbeddedLLMServer, EmbeddedServerError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        tool_args = json_object(args.args, "--args")
        schema = json_object(args.schema, "--schema") if args.schema else {}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.samples < 1:
        print("error: --samples must be >= 1", file=sys.stderr)
        return 2
    candidate = {"name": args.tool, "args": tool_args}
    tool = {"name": args.tool, "description": args.description, "parameters": schema}
    state = {"task": args.task, "context": args.context}
    settings = resolve_llm_settings()

    server: EmbeddedLLMServer | None = None
    try:
        if settings.embedded:
            print("starting the embedded LLM (offline)...", file=sys.stderr, flush=True)
            server = EmbeddedLLMServer(parallel=max(1, min(4, args.samples)))
            try:
                server.start()
            except EmbeddedServerError as exc:
                outcome = Outcome.unknown(
                    candidate, f"embedded LLM unavailable: {exc}", uncertainty=1.0
                )
                return _report(outcome, args, settings.describe())
            model = server.chat_model(timeout=args.timeout)
        else:
            model = chat_model_from_settings(settings, timeout_s=args.timeout)
        predictor = LLMOutcomePredictor(
            model,
            tools=[tool],
            samples=args.samples,
            seed=args.seed,
            temperature=args.temperature,
            timeout_s=args.timeout,
            max_retries=max(0, args.retries),
            backoff_s=0.25,
        )
        outcome = predictor.imagine(state, [candidate])[0]
        return _report(outcome, args, settings.describe())
    finally:
        if server is not None:
            server.stop()


def _report(outcome: Any, args: argparse.Namespace, model: str) -> int:
    summary = outcome_summary(outcome, model=model)
    _print_table(summary)
    if args.json:
        print(json.dumps(summary, allow_nan=False, default=str), flush=True)
    return 0 if outcome.status == "ok" else 1
