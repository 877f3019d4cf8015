"""The `citeqa` command line. Exit codes: 0 ok, 2 usage or bad input, 1 other failure.

argparse (the standard library's) parses: it gives subcommands, help and exit code 2 on usage errors with
no dependency. `--json` prints exactly one JSON document on stdout; logs and progress go to stderr.
"""

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api.settings import Settings
from index.errors import IndexingError
from qa.errors import QAError

log = logging.getLogger("citeqa")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: exit 2 with one line."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", type=Path,
                        help="index directory (default: $CITEQA_INDEX_DIR, else ./.citeqa/index)")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")

    parser = argparse.ArgumentParser(prog="citeqa", description="Answers from your articles, citing the exact "
                                     "sentence.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", parents=[common], help="add or update articles from files or folders")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help=".txt .md .html .htm .json .jsonl files, or folders (recursive)")

    documents = commands.add_parser("documents", help="list, show or delete indexed articles")
    doc_commands = documents.add_subparsers(dest="action", required=True, metavar="ACTION")
    doc_commands.add_parser("list", parents=[common], help="every indexed document")
    show = doc_commands.add_parser("show", parents=[common], help="one document with its exact text")
    show.add_argument("doc_id", metavar="ID")
    delete = doc_commands.add_parser("delete", parents=[common], help="remove a document and its passages")
    delete.add_argument("doc_id", metavar="ID")

    search = commands.add_parser("search", parents=[common], help="ranked passages for a query")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("-k", type=int, default=5, metavar="N", help="how many passages (default 5)")

    ask = commands.add_parser("ask", parents=[common], help="one answer with citations")
    ask.add_argument("question", metavar="QUESTION")
    ask.add_argument("-k", type=int, default=None, metavar="N", help="passages read (default: settings, 5)")
    ask.add_argument("--generator", choices=["extractive", "llm"], default=None,
                     help="answerer (default: settings, extractive)")

    chat = commands.add_parser("chat", parents=[common], help="interactive multi-turn questions with follow-ups",
                               description="Ask questions one per line; follow-ups ('When was that?') are read "
                               "against the session. Commands: /sources /reset /help /quit; Ctrl-D quits. "
                               "With --json, each answer is one JSON line.")
    chat.add_argument("--session", metavar="ID", default=None, help="resume a stored session")
    chat.add_argument("-k", type=int, default=None, metavar="N", help="passages read (default: settings, 5)")
    chat.add_argument("--generator", choices=["extractive", "llm"], default=None,
                      help="answerer (default: settings, extractive)")

    evaluate = commands.add_parser("eval", parents=[common], help="score a gold Q&A set against the index",
                                   description="Scores a gold set (JSONL, chat JSONL or SQuAD JSON): SQuAD "
                                   "EM/F1, refusals, retrieval, citations, latency; or compares two reports.")
    evaluate.add_argument("gold", nargs="?", type=Path, metavar="GOLD", help="gold file (JSONL or SQuAD JSON)")
    evaluate.add_argument("--corpus", type=Path, metavar="PATH",
                          help="ingest these articles first (files, a folder, or a SQuAD JSON's contexts)")
    evaluate.add_argument("--generator", choices=["extractive", "llm"], default=None,
                          help="answerer (default: settings, extractive)")
    evaluate.add_argument("--baseline", choices=["bm25", "dense", "first-sentence"], default=None,
                          help="a floor: BM25-only or dense-only retrieval, or the top passage's first sentence")
    evaluate.add_argument("-k", type=int, default=None, metavar="N", help="passages read (default: settings, 5)")
    evaluate.add_argument("--limit", type=int, default=None, metavar="N", help="only N questions (conversations)")
    evaluate.add_argument("--seed", type=int, default=None, metavar="S",
                          help="with --limit: a seeded random sample instead of the first N")
    evaluate.add_argument("--report", type=Path, metavar="DIR",
                          help="write summary.json, per_question.jsonl and report.html here")
    evaluate.add_argument("--compare", nargs=2, type=Path, metavar=("REPORT_A", "REPORT_B"),
                          help="compare two report folders instead of evaluating")

    serve = commands.add_parser("serve", parents=[common], help="the HTTP API and the web chat page")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")

    model = commands.add_parser("model", help="prepare the embedding model's faster backends")
    model_commands = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    export_onnx = model_commands.add_parser(
        "export-onnx", help="export the model to int8 ONNX and run the quality check that enables it",
        description="Exports the embedding model (settings) to ONNX with int8 dynamic quantization, offline, "
        "into a cache, then compares it with the fp32 model on the check data (cosine of paragraph vectors, "
        "recall@10 of the questions' paragraphs) and records the result: CITEQA_EMBEDDING__BACKEND=onnx-int8 "
        "uses the model only when the check passed.")
    export_onnx.add_argument("--check-data", required=True, type=Path, metavar="DIR",
                             help="corpus.jsonl and qa.jsonl of a SQuAD-style dev split "
                             "(e.g. ../shared/datasets/squad_v2_dev)")
    export_onnx.add_argument("--quantization", choices=["auto", "avx512_vnni", "avx2", "arm64"], default=None,
                             help="int8 preset (default: settings, auto = from this CPU)")
    export_onnx.add_argument("--force", action="store_true", help="export again even if the model is cached")
    export_onnx.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    export_onnx.add_argument("-v", "--verbose", action="store_true", help="log progress details on stderr")
    export_onnx.set_defaults(index=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # citeqa never downloads: the default model ships in a package. Offline mode makes a wrong model name
    # fail at once instead of hanging on the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="citeqa: %(levelname)s: %(message)s")
    try:
        settings = Settings()
        if args.index is not None:
            settings.index = settings.index.model_copy(update={"dir": args.index})
        return _dispatch(args, settings)
    except (IndexingError, QAError, UsageError, ValueError) as exc:
        print(f"citeqa: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("citeqa: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last resort: one line, not a traceback (CITEQA_DEBUG=1 shows it)
        if os.environ.get("CITEQA_DEBUG"):
            raise
        print(f"citeqa: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from api import commands

    if args.command == "ingest":
        return commands.ingest(settings, args.paths, as_json=args.json)
    if args.command == "documents":
        return commands.documents(settings, args.action, getattr(args, "doc_id", None), as_json=args.json)
    if args.command == "search":
        if args.k < 1:
            raise UsageError(f"-k must be at least 1, got {args.k}")
        return commands.search(settings, args.query, k=args.k, as_json=args.json)
    if args.command == "ask":
        if args.k is not None and args.k < 1:
            raise UsageError(f"-k must be at least 1, got {args.k}")
        return commands.ask(settings, args.question, k=args.k, generator=args.generator, as_json=args.json)
    if args.command == "chat":
        if args.k is not None and args.k < 1:
            raise UsageError(f"-k must be at least 1, got {args.k}")
        from api.chat_repl import run_chat

        return run_chat(settings, session_id=args.session, k=args.k, generator=args.generator, as_json=args.json)
    if args.command == "eval":
        if (args.gold is None) == (args.compare is None):
            raise UsageError("give a GOLD file to evaluate, or --compare REPORT_A REPORT_B (not both)")
        if args.compare is not None:
            return commands.compare(args.compare[0], args.compare[1], as_json=args.json)
        if (args.k is not None and args.k < 1) or (args.limit is not None and args.limit < 1):
            raise UsageError(f"-k and --limit must be at least 1, got {args.k} and {args.limit}")
        return commands.evaluate(settings, args.gold, corpus=args.corpus, generator=args.generator,
                                 baseline=args.baseline, k=args.k, limit=args.limit, seed=args.seed,
                                 report=args.report, as_json=args.json)
    if args.command == "serve":
        if args.workers < 1 or not 0 <= args.port <= 65535:
            raise UsageError(f"--workers must be at least 1 and --port 0-65535, got {args.workers} and {args.port}")
        from api.app import serve

        serve(settings, host=args.host, port=args.port, workers=args.workers)
        return EXIT_OK
    if args.command == "model":
        return commands.export_onnx(settings, check_data=args.check_data, quantization=args.quantization,
                                    force=args.force, as_json=args.json)
    raise UsageError(f"unknown command {args.command!r}")


def emit_json(document: Any) -> None:
    """The one JSON document a `--json` command prints."""
    print(json.dumps(document, ensure_ascii=False, indent=2))






def wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(" ".join(text.split()), width=100, initial_indent=indent, subsequent_indent=indent)


if __name__ == "__main__":
    sys.exit(main())
