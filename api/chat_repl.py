"""`citeqa chat`: an interactive, multi-turn session in the terminal.

In a terminal, lines are read with the standard library's `readline` (line editing, and a history kept in
`<index dir>/chat_history`); the prompt is `> `. When stdin is not a terminal, lines are read as they come and
each is echoed after `> `, so a chat can be scripted: `printf 'Who …?\\nWhen was that?\\n' | citeqa chat`.

Commands: /sources (the last answer's citations in full), /reset (a new session), /help, /quit. Ctrl-D (end
of input) quits; Ctrl-C cancels the line being typed or the answer being computed. A bad line (too long) gets
one error line on stderr and the chat goes on.
"""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from api.cli import EXIT_OK, wrap
from api.commands import answer_json, format_answer
from api.settings import Settings
from api.wiring import make_chat
from qa.chat import ChatPipeline
from qa.errors import QAError, UnknownSession
from qa.records import Answer

PROMPT = "> "
HISTORY_FILE = "chat_history"
HELP = """Ask a question and press Enter; follow-ups may say "he", "it", "that", "And the mayor?".
  /sources   the last answer's sources, with their full quotes
  /reset     start a new session (forget the conversation)
  /help      this text
  /quit      leave (Ctrl-D too); Ctrl-C cancels the current line"""


class ChatRepl:
    """The read-answer-print loop over one `ChatPipeline`. Usage: ChatRepl(chat=c, session_id=s).run(lines)"""

    def __init__(self, *, chat: ChatPipeline, session_id: str, k: int | None = None, as_json: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        if not isinstance(chat, ChatPipeline):
            raise TypeError(f"chat must be a ChatPipeline, got {type(chat).__name__}")
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.chat = chat
        self.session_id = session_id
        self._k = k
        self._json = as_json
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._last: Answer | None = None

    def run(self, lines: Iterator[str]) -> int:
        """Answer every line until /quit or the end of input; returns the exit code."""
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return EXIT_OK
            except KeyboardInterrupt:  # Ctrl-C while typing: drop the line, keep the chat
                self._say("", to_err=True)
                continue
            try:
                if not self.handle(line):
                    return EXIT_OK
            except KeyboardInterrupt:
                self._say("(cancelled)", to_err=True)

    def handle(self, line: str) -> bool:
        """One line of input; False when the chat should end."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/"):
            return self._command(text)
        try:
            answer = self.chat.ask(self.session_id, text, k=self._k)
        except UnknownSession:
            raise
        except QAError as exc:
            self._say(f"citeqa: error: {exc}", to_err=True)
            return True
        self._last = answer
        if self._json:
            self._say(json.dumps(answer_json(answer), ensure_ascii=False))
            return True
        if answer.standalone_question and answer.standalone_question != answer.question:
            self._say(f"(read as: {answer.standalone_question})")
        self._say(format_answer(answer) + "\n")
        return True

    def _command(self, text: str) -> bool:
        name = text.split()[0].lower()
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            self._say(HELP)
        elif name == "/sources":
            self._say(self._sources())
        elif name == "/reset":
            self.session_id = self.chat.start()
            self._last = None
            self._say(f"(new session {self.session_id})", to_err=True)
        else:
            self._say(f"citeqa: error: unknown command {name}; /help lists them", to_err=True)
        return True

    def _sources(self) -> str:
        if self._last is None:
            return "(no answer yet)"
        if not self._last.citations:
            return "(the last answer has no sources)"
        lines = []
        for c in self._last.citations:
            status = "supports the answer" if c.supports and not self._last.refused else "closest passage"
            lines.append(f"[{c.n}] {c.title or c.doc_id}  ({status})")
            lines.append(f"    document {c.doc_id}, passage {c.passage_id}, chars {c.char_start}-{c.char_end}")
            if c.url:
                lines.append(f"    {c.url}")
            lines.append(wrap(f"\u201c{c.quote}\u201d"))
        return "\n".join(lines)

    def _say(self, text: str, *, to_err: bool = False) -> None:
        stream = self._err if to_err else self._out
        print(text, file=stream, flush=True)


def run_chat(settings: Settings, *, session_id: str | None, k: int | None, generator: str | None,
             as_json: bool) -> int:
    """`citeqa chat`: load the models, open or resume a session, then read lines until the end."""
    print("loading…", file=sys.stderr, flush=True)
    chat = make_chat(settings, generator)
    if session_id is not None:
        if not chat.store.exists(session_id):
            raise UnknownSession(f"no chat session {session_id!r} in {chat.store.path}")
    else:
        session_id = chat.start()
    interactive = sys.stdin.isatty()
    print(f"session {session_id} (resume with --session {session_id}); /help lists the commands",
          file=sys.stderr, flush=True)
    repl = ChatRepl(chat=chat, session_id=session_id, k=k, as_json=as_json)
    if not interactive:
        return repl.run(_piped_lines(sys.stdin, echo=None if as_json else sys.stdout))
    history = settings.index.dir / HISTORY_FILE
    _load_readline_history(history)
    try:
        return repl.run(_typed_lines())
    finally:
        _save_readline_history(history)


def _typed_lines() -> Iterator[str]:
    """Lines typed at the prompt (readline edits them); ends on Ctrl-D."""
    while True:
        try:
            yield input(PROMPT)
        except EOFError:
            print(file=sys.stdout)
            return


def _piped_lines(stream: TextIO, *, echo: TextIO | None) -> Iterator[str]:
    """Lines of a pipe or file, each echoed after the prompt so a transcript reads like a session."""
    for line in stream:
        line = line.rstrip("\n")
        if echo is not None and line.strip():
            shown = line.strip()
            print(f"{PROMPT}{shown[:200]}{'…' if len(shown) > 200 else ''}", file=echo, flush=True)
        yield line


def _load_readline_history(path: Path) -> None:
    try:
        import readline
    except ImportError:  # not every Python has it (Windows); typing still works, without history
        return
    readline.set_history_length(1000)
    with contextlib.suppress(OSError):  # no history yet, or an unreadable one: start without
        readline.read_history_file(path)


def _save_readline_history(path: Path) -> None:
    try:
        import readline

        readline.write_history_file(path)
    except (ImportError, OSError):
        pass
