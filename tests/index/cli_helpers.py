"""Run the real `citeqa` command line from tests, and check what it printed.

Two ways to run a command, both in a separate process with real SQLite and FAISS:

* `run_citeqa` / `spawn_citeqa` execute the installed console script `.venv/bin/citeqa`, exactly what a
  user runs. Each costs ~2 s on this machine, nearly all of it importing spaCy and torch.
* `CliServer` starts this file as a helper process that imports citeqa once and then forks a fresh child
  for every command. The child runs `api.cli.main(argv)` as the console script does (`sys.exit(main())`,
  an uncaught exception printed as a traceback and exit 1) with its own stdout/stderr file descriptors,
  environment, exit status and SQLite/FAISS state, so a crash by signal, a traceback or a stray C-level
  write shows up as it would from the console script. It takes tens of ms a command instead of ~2 s, which is
  what lets the tests check the whole index after every one of many kills and tamperings.

The tests cross-check a few outputs of `CliServer` against the console script.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
CITEQA = VENV_BIN / "citeqa"
PYTHON = VENV_BIN / "python"
TEMP_PREFIX = ".tmp-"
MAX_K = 100  # search -k used to see every passage (the retriever has capped k at 100)


# ----- environment ------------------------------------------------------------------------------

def cli_env(*, model: str | None = "hash", **settings: str) -> dict[str, str]:
    """The environment of a citeqa command: offline, no inherited CITEQA_ settings.

    `model=None` leaves CITEQA_EMBEDDING__MODEL unset, so the default (bundled MiniLM) model is used;
    `settings` adds CITEQA_ variables, e.g. INDEX__COMMIT_EVERY="1".
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    if model is not None:
        env["CITEQA_EMBEDDING__MODEL"] = model
    for key, value in settings.items():
        env[f"CITEQA_{key}"] = value
    return env


# ----- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CliResult:
    """What one citeqa command did. A negative returncode is the signal that killed it."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:  # pragma: no cover - only on failure
            raise AssertionError(f"stdout is not one JSON document ({exc}):\n{self.describe()}") from exc

    def describe(self) -> str:
        return (f"$ citeqa {' '.join(self.args)}\n-> exit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("citeqa: error: ")]


def check_exit(result: CliResult, *, read_baseline: str | None = None) -> list[str]:
    """Problems with a command that may fail but must fail cleanly; [] when it behaved.

    Clean means: not killed by a signal, no traceback, exit 0 or 2, and on exit 2 exactly one
    `citeqa: error: ...` line, nothing on stdout and nothing on stderr but citeqa's own lines. With
    `read_baseline`, an exit 0 must print exactly that.
    """
    problems = []
    if result.returncode < 0:
        problems.append(f"killed by signal {-result.returncode}")
    if "Traceback" in result.stderr or "Traceback" in result.stdout:
        problems.append("a Python traceback")
    if result.returncode not in (0, 2):
        problems.append(f"exit code {result.returncode} (only 0 or 2 are allowed)")
    if result.returncode == 2:
        errors = error_lines(result.stderr)
        if len(errors) != 1 or len(errors[0]) < len("citeqa: error: ") + 15:
            problems.append(f"not exactly one clear error line: {errors}")
        stray = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("citeqa: ")]
        if stray:
            problems.append(f"stray stderr lines: {stray[:3]}")
        if result.stdout.strip():
            problems.append("output on stdout although the command failed")
    if result.returncode == 0 and read_baseline is not None and result.stdout != read_baseline:
        problems.append("exit 0 but the output differs from the untampered index")
    return [f"{p}\n{result.describe()}" for p in problems]


# ----- the console script -----------------------------------------------------------------------

def run_citeqa(args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 180) -> CliResult:
    """Run `.venv/bin/citeqa ARGS` to completion."""
    proc = subprocess.run([str(CITEQA), *args], env=dict(env if env is not None else cli_env()), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def spawn_citeqa(args: Sequence[str], *, env: Mapping[str, str] | None = None, log_dir: Path) -> Spawned:
    """Start `.venv/bin/citeqa ARGS` without waiting; its output goes to files in `log_dir`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{time.monotonic_ns()}-{random.getrandbits(32):08x}"
    out, err = log_dir / f"{stem}.out", log_dir / f"{stem}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([str(CITEQA), *args], env=dict(env if env is not None else cli_env()), cwd=ROOT,
                                stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
    return Spawned(tuple(args), proc, out, err)


@dataclass
class Spawned:
    args: tuple[str, ...]
    proc: subprocess.Popen
    out: Path
    err: Path

    def kill(self) -> None:
        """SIGKILL the process unless it has already exited."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = 180) -> CliResult:
        try:
            returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            raise
        return CliResult(self.args, returncode, self.out.read_text(errors="replace"),
                         self.err.read_text(errors="replace"))


# ----- the fork server --------------------------------------------------------------------------

class CliServer:
    """A helper process that runs citeqa commands, each in a freshly forked child. Thread-safe.

    Usage: with CliServer() as cli: cli.run(["documents", "list", "--index", d, "--json"]).json()
    """

    def __init__(self, *, preload_model_libraries: bool = False) -> None:
        argv = [str(PYTHON), str(Path(__file__).resolve()), "serve"]
        if preload_model_libraries:
            argv.append("--preload-model-libraries")
        self._lock = threading.Lock()
        self._ready = False  # several servers start (import) in parallel; the first command waits
        self._proc = subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1)

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 180) -> CliResult:
        request = {"argv": [str(a) for a in args], "env": dict(env if env is not None else cli_env()),
                   "timeout": timeout}
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            if not self._ready:
                ready = self._proc.stdout.readline()
                if ready.strip() != "ready":
                    raise RuntimeError(f"the citeqa fork server did not start: {ready!r}")
                self._ready = True
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the citeqa fork server died (exit {self._proc.poll()})")
        reply = json.loads(line)
        return CliResult(tuple(request["argv"]), reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._proc.stdin:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> CliServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(preload_model_libraries: bool) -> None:
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # nothing but replies may reach the test through the reply pipe
    import api.cli  # noqa: F401 - the point: import citeqa once, then fork
    import api.commands  # noqa: F401

    if preload_model_libraries:
        import sentence_transformers  # noqa: F401
    import gc

    gc.freeze()  # the imported modules are never garbage: keep each child's collection (see below) cheap
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"citeqa-fork-server-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    replies.write("ready\n")
    replies.flush()
    try:
        for line in requests:
            request = json.loads(line)
            reply = _run_forked(request, work, close_fds=(replies.fileno(), requests.fileno()))
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


def _run_forked(request: dict[str, Any], work: Path, *, close_fds: Iterable[int]) -> dict[str, Any]:
    out, err = work / "stdout", work / "stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            for fd in close_fds:
                os.close(fd)
            for target, path in ((1, out), (2, err)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, target)
                os.close(fd)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False,  # noqa: SIM115
                              buffering=1)
            os.environ.clear()
            os.environ.update(request["env"])
            code = _console_script(request["argv"])
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                # Interpreter shutdown collects the store's reference cycle, closing SQLite (which
                # checkpoints and removes the WAL); os._exit would skip that, so do it here.
                import gc

                gc.collect()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    timer = threading.Timer(request["timeout"], lambda: _kill(pid))
    timer.start()
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        timer.cancel()
    return {"returncode": os.waitstatus_to_exitcode(status),
            "stdout": out.read_text(encoding="utf-8", errors="replace"),
            "stderr": err.read_text(encoding="utf-8", errors="replace")}


def _console_script(argv: list[str]) -> int:
    """What `sys.exit(main())` in the console script does with each outcome."""
    from api.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        import traceback

        traceback.print_exc()  # the interpreter prints an uncaught exception the same way
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# ----- index directories and articles -----------------------------------------------------------

def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)) if directory.exists() else []


_WORDS = (
    "harbor", "council", "budget", "bridge", "cable", "transit", "school", "hospital", "wildfire",
    "evacuation", "river", "museum", "library", "contract", "election", "tariff", "festival", "stadium",
    "ferry", "railway", "drought", "vaccine", "clinic", "airport", "union", "strike", "housing", "rent",
    "zoning", "orchard", "vineyard", "glacier", "satellite", "reactor", "pension", "lawsuit", "verdict",
    "mayor", "senator", "inspector", "engineer", "nurse", "farmer", "student", "teacher", "witness",
    "reporter", "auditor", "volunteer",
)


def make_article(rng: random.Random, doc_id: str, *, paragraphs: tuple[int, int] = (3, 6)) -> tuple[str, str]:
    """(title, clean text) of a small, unique news-like article."""
    title = f"{rng.choice(_WORDS).capitalize()} {rng.choice(_WORDS)} report {doc_id}"
    paras = []
    for p in range(rng.randint(*paragraphs)):
        sentences = []
        for s in range(rng.randint(2, 5)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 24))]
            number = rng.randint(1, 99999)
            sentences.append(f"{' '.join(words).capitalize()} in {doc_id} cost {number} dollars, item {p}.{s}.")
        paras.append(" ".join(sentences))
    if rng.random() < 0.5:
        paras.append("Caf\u00e9 owners in S\u00e3o Paulo said \u201cno comment\u201d \u2014 twice.")
    return title, "\n\n".join(paras)


def write_article(path: Path, doc_id: str, title: str, text: str, *, noisy: bool = False) -> None:
    """Write an article file whose loaded text is exactly `text`.

    With `noisy`, the body gets CRLF line ends, zero-width spaces and decomposed accents, all of which the
    loader must clean away again.
    """
    body = text
    if noisy:
        body = unicodedata.normalize("NFD", body).replace(" ", " \u200b", 3).replace("\n", "\r\n")
    path.write_bytes(f"---\ntitle: {title}\ndoc_id: {doc_id}\n---\n\n{body}\n".encode())


def check_document(shown: Mapping[str, Any], doc_id: str, text: str) -> list[str]:
    """Problems with a `documents show --json` document against the text it must hold."""
    problems = []
    if shown.get("doc_id") != doc_id:
        problems.append(f"doc_id {shown.get('doc_id')!r} != {doc_id!r}")
    if shown.get("text") != text:
        problems.append(f"{doc_id}: stored text differs from the file's cleaned text")
    passages = shown.get("passages") or []
    if not passages:
        problems.append(f"{doc_id}: no passages")
    for ordinal, p in enumerate(passages):
        if p["passage_id"] != f"{doc_id}#{ordinal}":
            problems.append(f"{doc_id}: passage {ordinal} is named {p['passage_id']!r}")
        if not 0 <= p["char_start"] < p["char_end"] <= len(shown.get("text") or ""):
            problems.append(f"{doc_id}: span {p['char_start']}-{p['char_end']} outside the text")
        elif not (shown["text"][p["char_start"]:p["char_end"]]).strip():
            problems.append(f"{doc_id}: passage {ordinal} is blank")
    return problems


def check_whole_index(run: Callable[..., CliResult], expected: Mapping[str, tuple[str, str]],
                      query: str = "harbor council budget report") -> list[str]:
    """Problems found reading the whole index through the CLI against `expected` {doc_id: (title, text)}.

    `run(*args)` runs one citeqa command on the index. Checks: `documents list` holds exactly these
    documents; `documents show` gives each one's exact text, title and valid spans, agreeing with the list;
    `search -k 100` (the most citeqa returns) gives every passage exactly once and nothing else, each slicing
    its document's text; so the index must hold at most 100 passages.
    """
    listing = run("documents", "list", "--json")
    if listing.returncode != 0:
        return [f"documents list failed:\n{listing.describe()}"]
    listed = {d["doc_id"]: d for d in listing.json()["documents"]}
    problems = []
    if set(listed) != set(expected):
        problems.append(f"documents list: missing {sorted(set(expected) - set(listed))}, "
                        f"unexpected {sorted(set(listed) - set(expected))}")
    spans: dict[str, tuple[str, int, int]] = {}
    texts = {}
    for doc_id in sorted(set(listed) & set(expected)):
        shown = run("documents", "show", doc_id, "--json")
        if shown.returncode != 0:
            problems.append(f"documents show failed:\n{shown.describe()}")
            continue
        record = shown.json()
        title, text = expected[doc_id]
        problems += check_document(record, doc_id, text)
        if record["title"] != title:
            problems.append(f"{doc_id}: title {record['title']!r} != {title!r}")
        summary = listed[doc_id]
        if (summary["chars"], summary["passages"]) != (len(text), len(record["passages"])):
            problems.append(f"{doc_id}: list says {summary['chars']} chars, {summary['passages']} passages; "
                            f"show has {len(record['text'])}, {len(record['passages'])}")
        texts[doc_id] = record["text"]
        spans.update({p["passage_id"]: (doc_id, p["char_start"], p["char_end"]) for p in record["passages"]})
    total = sum(d["passages"] for d in listed.values())
    if total > MAX_K:
        return [*problems, f"{total} passages: too many for one search to return them all (-k {MAX_K} at most)"]
    found = run("search", query, "-k", str(MAX_K), "--json")
    if found.returncode != 0:
        return [*problems, f"search failed:\n{found.describe()}"]
    results = found.json()["results"]
    ids = [r["passage_id"] for r in results]
    if len(ids) != len(set(ids)):
        problems.append("search returned a passage twice")
    if set(ids) != set(spans) or len(ids) != total:
        problems.append(f"search found {len(ids)} passages, the documents hold {total}: only in search "
                        f"{sorted(set(ids) - set(spans))[:5]}, never found {sorted(set(spans) - set(ids))[:5]}")
    for r in results:
        if r["passage_id"] in spans:
            doc_id, start, end = spans[r["passage_id"]]
            if (r["doc_id"], r["char_start"], r["char_end"], r["text"]) != (doc_id, start, end,
                                                                              texts[doc_id][start:end]):
                problems.append(f"search result {r['passage_id']} disagrees with documents show")
    return problems

if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve("--preload-model-libraries" in sys.argv[2:])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve [--preload-model-libraries]")
