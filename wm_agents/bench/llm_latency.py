"""Milliseconds per imagined tool call on the embedded LLM, before and after a code change.

Two copies of the library are compared side by side: the working tree ("after") and an older
checkout given with ``--base`` ("before").  Each runs in its own worker process (this file run
with ``--worker``, with ``PYTHONPATH`` pointing at its copy; the worker imports only what older
copies have) with its own embedded server (4 slots, 1 thread, that copy's server settings), and
the driver interleaves them call by call, so both see the same machine load.

The calls are the sandbox demo's (``wm_agents/demos/fs_agent.py``; ``tools/demo.py`` before):
its five tools, task and situation, and five decisions in a row whose messages grow as the
agent's do (each tool call and its result are appended). Every decision imagines 1, 2 or 4
candidates x 3 samples with a fresh predictor (no cached samples) and seeds that differ per
decision but are the same for before and after; the predictor is set up like the demo's
(``max_tokens=256``, ``max_messages=2``, ``max_concurrency=4``). Per call the server's own
timings are summed over its requests (prompt tokens read and ms, tokens generated and ms; read
from each response by an HTTP hook).

Reproducibility: 10 prompts (the five decisions x 2 candidates) x 3 samples with seed 1000,
imagined twice by fresh predictors: first decision by decision, then, after other prompts have
gone through the server, in reverse order with the candidates swapped.  Counted: samples whose
every field (or whose failure) is the same both times.

Run (about 30 minutes on a shared 2-core machine)::

    git archive 436bda4 | (mkdir -p /tmp/llm-base && tar -x -C /tmp/llm-base)
    wm-agents bench llm-latency --base /tmp/llm-base --out benchmarks/results/llm_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["STEPS", "add_arguments", "run_cli"]

SAMPLES = 3
CANDIDATES_PER_DECISION = (1, 2, 4)

# The demo's five decisions: the candidate calls considered, and the call that then ran with
# its real result (what the next decision's messages show).
STEPS: list[dict[str, Any]] = [
    {
        "candidates": [
            {"name": "list_files", "args": {"path": "."}},
            {"name": "read_file", "args": {"path": "missing.txt"}},
            {"name": "read_file", "args": {"path": "notes.txt"}},
            {"name": "list_files", "args": {"path": "archive"}},
        ],
        "result": "archive/\narchive/old.log\nnotes.txt\ntodo.txt",
    },
    {
        "candidates": [
            {"name": "read_file", "args": {"path": "missing.txt"}},
            {"name": "read_file", "args": {"path": "notes.txt"}},
            {"name": "delete_file", "args": {"path": "archive/old.log"}},
            {"name": "read_file", "args": {"path": "todo.txt"}},
        ],
        "result": 'Error: FileNotFoundError("[Errno 2] No such file or directory: '
        "'missing.txt'\")",
    },
    {
        "candidates": [
            {"name": "read_file", "args": {"path": "notes.txt"}},
            {"name": "list_files", "args": {"path": "archive"}},
            {"name": "wipe_directory", "args": {"path": "."}},
            {"name": "read_file", "args": {"path": "missing.txt"}},
        ],
        "result": "Meeting notes: ship the gate on Friday. Owner: Ada.\n",
    },
    {
        "candidates": [
            {
                "name": "write_file",
                "args": {"path": "summary.txt", "content": "Ship the gate on Friday (Ada)."},
            },
            {"name": "delete_file", "args": {"path": "archive/old.log"}},
            {"name": "wipe_directory", "args": {"path": "archive"}},
            {"name": "read_file", "args": {"path": "todo.txt"}},
        ],
        "result": "wrote 30 characters to summary.txt",
    },
    {
        "candidates": [
            {"name": "wipe_directory", "args": {"path": "."}},
            {"name": "delete_file", "args": {"path": "archive/old.log"}},
            {"name": "list_files", "args": {"path": "."}},
            {"name": "read_file", "args": {"path": "summary.txt"}},
        ],
        "result": "deleted archive/old.log",
    },
]


# -- worker: one copy of the library, one embedded server ---------------------------------------


class _Worker:
    """Imagines calls on request (``imagine``, ``repro``), reading the server's timings."""

    def __init__(self) -> None:
        from wm_agents.llm.server import EmbeddedLLMServer
        from wm_agents.tools.sandbox import make_sandbox_tools

        try:  # the demo's home since issue 12 item 5
            from wm_agents.demos.fs_agent import DEMO_TASK, SITUATION
        except ImportError:  # an older checkout (--base)
            from wm_agents.tools.demo import SITUATION
            from wm_agents.tools.sandbox import DEMO_TASK

        self.server = EmbeddedLLMServer(parallel=4).start()
        self.tools = make_sandbox_tools(tempfile.mkdtemp(prefix="wm-bench-sandbox-"))
        self.task, self.situation = DEMO_TASK, SITUATION
        self.responses: list[dict[str, Any]] = []

    def _chat_model(self) -> Any:
        import httpx

        async def record(response: httpx.Response) -> None:
            await response.aread()
            try:
                body = json.loads(response.content)
                sent = json.loads(response.request.content)
            except ValueError:
                return
            self.responses.append(
                {
                    "timings": body.get("timings") or {},
                    "usage": body.get("usage") or {},
                    "primes": sent.get("max_completion_tokens") == 1 and "grammar" not in sent,
                }
            )

        client = httpx.AsyncClient(
            timeout=120.0,
            limits=httpx.Limits(max_keepalive_connections=0),
            event_hooks={"response": [record]},
        )
        return self.server.chat_model(timeout=120.0, http_async_client=client)

    def _predictor(self, seed: int) -> Any:
        from wm_agents.llm.predictor import LLMOutcomePredictor

        return LLMOutcomePredictor(
            self._chat_model(),
            tools=self.tools,
            samples=SAMPLES,
            seed=seed,
            max_tokens=256,
            max_concurrency=4,
            max_messages=2,
            timeout_s=120.0,
        )

    def _state(self, step: int) -> dict[str, Any]:
        from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

        messages: list[Any] = [HumanMessage(self.task)]
        for i, past in enumerate(STEPS[:step]):
            call = past["candidates"][0] | {"id": f"call-{i}"}
            messages.append(AIMessage("", tool_calls=[call]))
            messages.append(ToolMessage(past["result"], tool_call_id=f"call-{i}"))
        return {
            "task": self.task,
            "context": self.situation,
            "messages": messages,
            "tools": self.tools,
        }

    def imagine(self, step: int, n: int, seed: int) -> dict[str, Any]:
        predictor = self._predictor(seed)
        self.responses = []
        start = time.perf_counter()
        outcomes = predictor.imagine(self._state(step), STEPS[step]["candidates"][:n])
        wall_ms = (time.perf_counter() - start) * 1000.0
        samples = [r for r in self.responses if not r["primes"]]
        primes = [r for r in self.responses if r["primes"]]

        def total(rows: list[dict[str, Any]], group: str, key: str) -> float:
            return sum(float(r[group].get(key) or 0) for r in rows)

        return {
            "wall_ms": wall_ms,
            "unknown": sum(o.status != "ok" for o in outcomes),
            "requests": len(self.responses),
            "primes": len(primes),
            "prompt_tokens_per_request": statistics.median(
                [float(r["usage"].get("prompt_tokens") or 0) for r in samples] or [0.0]
            ),
            "prompt_read_tokens": total(self.responses, "timings", "prompt_n"),
            "prompt_cached_tokens": total(self.responses, "timings", "cache_n"),
            "prompt_ms": total(self.responses, "timings", "prompt_ms"),
            "generated_tokens": total(self.responses, "timings", "predicted_n"),
            "generation_ms": total(self.responses, "timings", "predicted_ms"),
        }

    def repro(self, seed: int = 1000) -> dict[str, Any]:
        pairs = [(step, STEPS[step]["candidates"][:2]) for step in range(len(STEPS))]
        fields = (
            "success",
            "success_probability",
            "risk_level",
            "reversible",
            "goal_progress",
            "predicted_result",
            "side_effects",
        )

        def run(order: list[tuple[int, list[dict[str, Any]]]]) -> dict[tuple[str, int], Any]:
            predictor, out = self._predictor(seed), {}
            for step, calls in order:
                for call, o in zip(calls, predictor.imagine(self._state(step), calls), strict=True):
                    for s in o.prediction.get("samples", []):
                        key = (f"{step}:{json.dumps(call, sort_keys=True)}", s["index"])
                        out[key] = tuple(s.get(f) for f in (*fields, "error"))
            return out

        first = run(pairs)
        self._predictor(seed + 1).imagine(self._state(0), [STEPS[0]["candidates"][3]])
        second = run([(step, calls[::-1]) for step, calls in reversed(pairs)])
        return {
            "identical": sum(second.get(k) == v for k, v in first.items()),
            "total": len(first),
            "failed_first_run": sum(v[-1] is not None for v in first.values()),
            "failed_second_run": sum(v[-1] is not None for v in second.values()),
        }

    def close(self) -> None:
        self.server.stop()


def worker_main() -> int:
    """``--worker``: answer one JSON command per stdin line with one JSON line on stdout."""
    worker = _Worker()
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            if cmd["op"] == "imagine":
                out = worker.imagine(cmd["step"], cmd["n"], cmd["seed"])
            else:
                out = worker.repro()
            print(json.dumps(out), flush=True)
    finally:
        worker.close()
    return 0


# -- driver: interleave before and after -----------------------------------------------------------


class _Remote:
    """A worker process running the library copy at ``root``."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root
        env = dict(os.environ, PYTHONPATH=str(root))
        for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "WM_AGENTS_LLM_MODEL"):
            env.pop(var, None)
        # This file's worker code, on the copy's library: run by path (an older copy may not
        # have this module), from -c so that this file's folder does not come first on sys.path.
        run_worker = (
            "import runpy, sys; sys.argv = [sys.argv[0], '--worker']; "
            f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", run_worker],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask(None)

    def ask(self, cmd: dict[str, Any] | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd is not None:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker exited (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread (min, 25th and 75th percentile, max) per mode and candidates."""
    out: dict[str, Any] = {}
    for mode in sorted({r["mode"] for r in rows}):
        for n in CANDIDATES_PER_DECISION:
            sel = [r for r in rows if r["mode"] == mode and r["candidates"] == n]
            if not sel:
                continue
            wall = sorted(r["wall_ms"] for r in sel)
            q = statistics.quantiles(wall, n=4) if len(wall) > 1 else [wall[0]] * 3
            out[f"{mode}/{n}"] = {
                "calls": len(sel),
                "wall_ms_median": statistics.median(wall),
                "wall_ms_min": wall[0],
                "wall_ms_p25": q[0],
                "wall_ms_p75": q[2],
                "wall_ms_max": wall[-1],
                "ms_per_candidate_median": statistics.median(w / n for w in wall),
                "unknown": sum(r["unknown"] for r in sel),
                **{
                    f"{key}_median": statistics.median(r[key] for r in sel)
                    for key in (
                        "requests",
                        "prompt_tokens_per_request",
                        "prompt_read_tokens",
                        "prompt_ms",
                        "generated_tokens",
                        "generation_ms",
                    )
                },
            }
    return out


def driver_main(args: argparse.Namespace) -> int:
    """Interleave before/after call by call; write and print the results."""
    here = Path(__file__).resolve().parents[2]  # the source tree this module runs from
    modes = {"after": here}
    if args.base is not None:
        modes = {"before": args.base.resolve(), "after": here}
    meta = {
        "command": "wm-agents " + " ".join(sys.argv[1:]),
        "after_commit": _git(here, "rev-parse", "HEAD"),
        "after_dirty": bool(_git(here, "status", "--porcelain", "--untracked-files=no")),
        "before_root": str(args.base) if args.base else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_at_start": os.getloadavg(),
    }
    remotes = {name: _Remote(name, root) for name, root in modes.items()}
    rows: list[dict[str, Any]] = []
    try:
        for remote in remotes.values():  # warm-up: page in the model, fill the prompt cache
            remote.ask({"op": "imagine", "step": 0, "n": 1, "seed": 9999})
        plan = [
            (n, episode, step)
            for n in CANDIDATES_PER_DECISION
            for episode in range(args.episodes_1 if n == 1 else args.episodes)
            for step in range(len(STEPS))
        ]
        for i, (n, episode, step) in enumerate(plan):
            seed = 100 * (episode + 1) + 10 * step + n
            order = list(remotes.values())
            if i % 2:
                order.reverse()
            for remote in order:
                row = remote.ask({"op": "imagine", "step": step, "n": n, "seed": seed})
                row |= {
                    "mode": remote.name,
                    "candidates": n,
                    "episode": episode,
                    "step": step,
                    "seed": seed,
                    "load1": os.getloadavg()[0],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        repro = {name: remote.ask({"op": "repro"}) for name, remote in remotes.items()}
    finally:
        for remote in remotes.values():
            remote.close()
    meta["load_at_end"] = os.getloadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result = {"meta": meta, "summary": _summary(rows), "reproducibility": repro, "rows": rows}
    print(json.dumps({"summary": result["summary"], "reproducibility": repro}, indent=1))
    if args.out is not None:
        from wm_agents.outputs import write_text_with_fallback

        write_text_with_fallback(args.out, json.dumps(result, indent=1) + "\n")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wm-agents bench llm-latency``."""
    parser.add_argument("--base", type=Path, default=None, help="checkout of the 'before' code")
    parser.add_argument("--episodes-1", type=int, default=4, help="episodes, 1 candidate")
    parser.add_argument("--episodes", type=int, default=2, help="episodes, 2 and 4 candidates")
    parser.add_argument("--out", type=Path, default=None, help="results JSON")


def run_cli(args: argparse.Namespace) -> int:
    """The driver, after checking ``--base`` and ``--out`` (before half an hour of calls)."""
    from wm_agents.outputs import check_output_file

    if args.base is not None and not (args.base / "wm_agents" / "__init__.py").is_file():
        raise ValueError(f"--base {args.base} has no wm_agents package")
    if args.out is not None:
        check_output_file(args.out)
    return driver_main(args)


if __name__ == "__main__":  # the worker process (see _Remote)
    if sys.argv[1:] != ["--worker"]:
        raise SystemExit("run the benchmark as: wm-agents bench llm-latency [options]")
    raise SystemExit(worker_main())
