"""What `citeqa eval` shows: the stdout table, the report folder, and the comparison of two reports.

A report folder holds `summary.json` (the `--json` summary), `per_question.jsonl` (one `QuestionRow` a line:
everything the summary is computed from) and `report.html`: the tables, three matplotlib plots embedded as
PNG (scores by question type, latency histogram, refusal-threshold sweep) and every question with what went
wrong on it.

Usage:
    write_report(result, Path("eval-out"))
    print(format_summary(result.summary))
    print(format_comparison(compare_reports(load_report(a), load_report(b))))
"""

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.evaluation import EvalResult, QuestionRow
from qa.metrics import f1_score, normalize_answer

SUMMARY_FILE, ROWS_FILE, HTML_FILE = "summary.json", "per_question.jsonl", "report.html"


class ReportError(ValueError):
    """A report folder is missing a file or holds something unreadable."""


@dataclass(frozen=True)
class LoadedReport:
    """A report folder read back."""

    directory: Path
    summary: Mapping[str, Any]
    rows: tuple[QuestionRow, ...]


# --- reading and writing ---------------------------------------------------------------------------------

def write_report(result: EvalResult, directory: Path) -> list[Path]:
    """Write summary.json, per_question.jsonl and report.html into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    summary_path, rows_path, html_path = directory / SUMMARY_FILE, directory / ROWS_FILE, directory / HTML_FILE
    summary_path.write_text(json.dumps(result.summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with rows_path.open("w", encoding="utf-8") as out:
        for row in result.rows:
            out.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    html_path.write_text(render_html(result), encoding="utf-8")
    return [summary_path, rows_path, html_path]


def load_report(directory: Path) -> LoadedReport:
    """Read a folder written by `write_report`.

    Raises:
        ReportError: a file is missing or not what `write_report` writes.
    """
    try:
        summary = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
        lines = (directory / ROWS_FILE).read_text(encoding="utf-8").splitlines()
        rows = tuple(QuestionRow.from_json(json.loads(line)) for line in lines if line.strip())
    except FileNotFoundError as exc:
        raise ReportError(f"{directory} is not an eval report: {Path(exc.filename).name} is missing") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ReportError(f"cannot read the eval report in {directory}: {exc}") from exc
    return LoadedReport(directory=directory, summary=summary, rows=rows)


# --- what went wrong -------------------------------------------------------------------------------------

def first_relevant_rank(row: QuestionRow) -> int | None:
    """The rank of the first relevant retrieved passage, or None."""
    return next((int(r["rank"]) for r in row.retrieved if r.get("relevant")), None)


def diagnose(row: QuestionRow) -> str:
    """One line on what went wrong with a question ("" when nothing did)."""
    if row.error is not None:
        return f"failed: {row.error}"
    rank = first_relevant_rank(row)
    polar = bool(row.answers) and all(normalize_answer(a) in ("yes", "no") for a in row.answers)
    where = ("retrieval is not judged for a yes/no answer" if polar
             else f"a relevant passage was retrieved at rank {rank}" if rank is not None
             else "no passage of the index holds a gold answer" if row.relevant_in_index == 0
             else f"retrieval missed all {row.relevant_in_index} relevant passages")
    if not row.answerable:
        return "" if row.refused else "answered a question the corpus does not answer"
    if row.refused:
        candidate = f" (its candidate {row.candidate!r} scores F1 " \
                    f"{_candidate_f1(row):.2f})" if row.candidate else ""
        return f"refused at confidence {row.confidence}{candidate}; {where}"
    problems = []
    if row.f1 < 1.0:
        problems.append(f"wrong answer (F1 {row.f1:.2f}); {where}" if row.f1 == 0.0
                        else f"partly right (F1 {row.f1:.2f}); {where}")
    if row.citation_recall is not None and row.citation_recall < 1.0:
        problems.append("a sentence is not supported by its citations")
    if row.answer_in_quote is False:
        problems.append("no gold answer in the cited quote")
    return "; ".join(problems)


def _candidate_f1(row: QuestionRow) -> float:
    return f1_score(row.candidate or "", row.answers)


# --- the stdout table ------------------------------------------------------------------------------------

def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _threshold(value: float | None) -> str:
    return "refusing everything" if value is None else f"threshold {value:.4g}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a plain-text table (every score is 100 × a mean; n is how many questions it is over)."""
    lines = [f"citeqa eval: {summary.get('gold', '')}  ({summary['questions']} questions, {summary['failed']} "
             f"failed; generator {summary.get('generator', '-')}, baseline {summary.get('baseline') or 'none'}, "
             f"k={summary['retrieval']['k']})", ""]
    table: list[tuple[str, str, str]] = [("metric", "value", "n")]
    answer = summary["answer"]
    for group, label in (("overall", "overall"), ("has_ans", "answerable"), ("no_ans", "unanswerable")):
        table.append((f"EM / F1 {label}", f"{_num(answer[group]['em'])} / {_num(answer[group]['f1'])}",
                      str(answer[group]["n"])))
    abst = summary["abstention"]
    sweep = abst["sweep"]
    table += [
        ("refusal precision", _num(abst["refusal_precision"]["value"]), str(abst["refusal_precision"]["n"])),
        ("refusal recall", _num(abst["refusal_recall"]["value"]), str(abst["refusal_recall"]["n"])),
        (f"F1 at shipped threshold {sweep['shipped_threshold']}", _num(sweep["f1_at_shipped"]), str(sweep["n"])),
        (f"best F1 ({_threshold(sweep['best_threshold'])})", _num(sweep["best_f1"]), str(sweep["n"])),
    ]
    retrieval = summary["retrieval"]
    for name in ("hit@1", "hit@k", "recall@k", "mrr@k", "ndcg@k"):
        label = name.replace("@k", f"@{retrieval['k']}")
        table.append((f"retrieval {label}", _num(retrieval[name]["value"]), str(retrieval[name]["n"])))
    cites = summary["citations"]
    for name in ("recall", "precision", "answer_in_quote"):
        label = "answer in quote" if name == "answer_in_quote" else f"citation {name}"
        table.append((label, _num(cites[name]["value"]), str(cites[name]["n"])))
    for stage, values in summary["latency_ms"].items():
        table.append((f"latency {stage} ms p50/p95/max",
                      f"{_num(values['p50'])} / {_num(values['p95'])} / {_num(values['max'])}", str(values["n"])))
    width = max(len(r[0]) for r in table)
    value_width = max(len(r[1]) for r in table)
    lines += [f"{a:<{width}}  {b:>{value_width}}  {c:>5}" for a, b, c in table]
    if len(summary.get("by_type", {})) > 1:
        lines += ["", "by question type (EM / F1, n):"]
        lines += [f"  {name:<{width - 2}}  {_num(g['em']):>5} / {_num(g['f1']):>5}  {g['n']:>5}"
                  for name, g in summary["by_type"].items()]
    if retrieval["no_relevant_in_index"]:
        lines.append(f"\n{retrieval['no_relevant_in_index']} answerable questions have no passage holding a gold "
                     "answer in the index (left out of the retrieval means).")
    for failure in summary["failures"]:
        lines.append(f"FAILED {failure['id']}: {failure['error']}")
    return "\n".join(lines)


# --- the HTML report -------------------------------------------------------------------------------------

def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(result: EvalResult) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory only
    import matplotlib.pyplot as plt

    summary = result.summary
    plots: dict[str, str] = {}
    groups = summary["by_type"]
    names = list(groups)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2), 3.6))
    positions = range(len(names))
    axes.bar([p - 0.2 for p in positions], [groups[n]["em"] or 0 for n in names], width=0.4, label="EM")
    axes.bar([p + 0.2 for p in positions], [groups[n]["f1"] or 0 for n in names], width=0.4, label="F1")
    axes.set_xticks(list(positions), [f"{n}\n(n={groups[n]['n']})" for n in names], rotation=30, ha="right",
                    fontsize=8)
    axes.set_ylim(0, 100)
    axes.set_ylabel("score (100 × mean)")
    axes.set_title("EM and F1 by question type")
    axes.legend()
    plots["by_type"] = _png(figure)

    totals = [r.timings_ms["total"] for r in result.rows if r.error is None and "total" in r.timings_ms]
    figure, axes = plt.subplots(figsize=(6, 3.4))
    axes.hist(totals, bins=min(30, max(5, len(totals) // 3)))
    latency = summary["latency_ms"]["total"]
    for name, color in (("p50", "tab:green"), ("p95", "tab:red")):
        if latency[name] is not None:
            axes.axvline(latency[name], color=color, linestyle="--", label=f"{name} {latency[name]:.0f} ms")
    axes.set_xlabel("total latency per question (ms)")
    axes.set_ylabel("questions")
    axes.set_title(f"Latency (n={latency['n']})")
    if totals:
        axes.legend()
    plots["latency"] = _png(figure)

    sweep = summary["abstention"]["sweep"]
    curve = sweep["curve"]
    figure, axes = plt.subplots(figsize=(6, 3.4))
    axes.plot([p["threshold"] for p in curve], [p["f1"] for p in curve], label="overall F1")
    axes.plot([p["threshold"] for p in curve], [p["em"] for p in curve], label="overall EM", alpha=0.7)
    if sweep["shipped_threshold"] is not None:
        axes.axvline(sweep["shipped_threshold"], color="tab:red", linestyle="--",
                     label=f"shipped {sweep['shipped_threshold']} (F1 {sweep['f1_at_shipped']:.1f})")
    if sweep["best_threshold"] is not None:
        axes.axvline(sweep["best_threshold"], color="tab:green", linestyle=":",
                     label=f"best {sweep['best_threshold']:.3f} (F1 {sweep['best_f1']:.1f})")
    axes.set_xlabel("refusal threshold (refuse below this confidence)")
    axes.set_ylabel("score (100 × mean)")
    axes.set_ylim(0, 100)
    axes.set_title(f"Refusal-threshold sweep (n={sweep['n']})")
    axes.legend(fontsize=8)
    plots["sweep"] = _png(figure)
    return plots


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f3f3f3}.bad{background:#fff0f0}.num{text-align:right}img{max-width:100%;margin:1em 1em 0 0}
code{font-size:.9em}"""


def render_html(result: EvalResult) -> str:
    """The self-contained report page (plots embedded as PNG data URLs)."""
    summary = result.summary
    plots = _plots(result)
    e = html.escape
    table_text = format_summary(summary)
    rows_html = []
    for row in result.rows:
        problem = diagnose(row)
        quote = " | ".join(str(c["quote"]) for c in row.citations)
        rows_html.append(
            f"<tr class='{'bad' if problem else ''}'><td>{e(row.id)}</td><td>{e(row.type or '')}</td>"
            f"<td>{e(row.question)}</td><td>{e(' | '.join(row.answers) or '(unanswerable)')}</td>"
            f"<td>{e('(refused)' if row.refused else row.short_answer or '')}</td>"
            f"<td class='num'>{row.em:.0f}</td><td class='num'>{row.f1:.2f}</td>"
            f"<td class='num'>{'' if row.confidence is None else row.confidence}</td>"
            f"<td class='num'>{first_relevant_rank(row) or '-'}</td><td>{e(problem)}</td>"
            f"<td><small>{e(quote)}</small></td></tr>")
    failures = "".join(f"<li><code>{e(f['id'])}</code>: {e(f['error'])}</li>" for f in summary["failures"])
    info = {key: value for key, value in summary.items() if not isinstance(value, dict | list)}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>citeqa eval: {e(str(summary.get('gold', '')))}</title>
<style>{_STYLE}</style></head><body>
<h1>citeqa eval</h1>
<table>{''.join(f'<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>' for k, v in info.items())}</table>
<h2>Summary</h2>
<p>Every score is 100 × a mean over the n questions beside it (definitions: shared EVAL.md).
Citation support check: {e(summary['citations']['support_check'])}.</p>
<pre>{e(table_text)}</pre>
<h2>Plots</h2>
<img alt="EM and F1 by question type" src="{plots['by_type']}">
<img alt="latency histogram" src="{plots['latency']}">
<img alt="refusal-threshold sweep" src="{plots['sweep']}">
<h2>Failures ({len(summary['failures'])})</h2><ul>{failures or '<li>none</li>'}</ul>
<h2>Every question</h2>
<p>Rows with a problem are shaded. "rel. rank" is the rank of the first retrieved passage that holds a gold
answer in the gold article.</p>
<table><tr><th>id</th><th>type</th><th>question</th><th>gold</th><th>predicted</th><th>EM</th><th>F1</th>
<th>conf.</th><th>rel. rank</th><th>what went wrong</th><th>cited quote</th></tr>
{''.join(rows_html)}</table>
</body></html>
"""


# --- comparing two reports -------------------------------------------------------------------------------

_COMPARED = (
    ("EM overall", ("answer", "overall", "em")), ("F1 overall", ("answer", "overall", "f1")),
    ("EM answerable", ("answer", "has_ans", "em")), ("F1 answerable", ("answer", "has_ans", "f1")),
    ("EM unanswerable", ("answer", "no_ans", "em")),
    ("refusal precision", ("abstention", "refusal_precision", "value")),
    ("refusal recall", ("abstention", "refusal_recall", "value")),
    ("best F1 (sweep)", ("abstention", "sweep", "best_f1")),
    ("hit@1", ("retrieval", "hit@1", "value")), ("hit@k", ("retrieval", "hit@k", "value")),
    ("recall@k", ("retrieval", "recall@k", "value")), ("MRR@k", ("retrieval", "mrr@k", "value")),
    ("nDCG@k", ("retrieval", "ndcg@k", "value")),
    ("citation recall", ("citations", "recall", "value")),
    ("citation precision", ("citations", "precision", "value")),
    ("answer in quote", ("citations", "answer_in_quote", "value")),
    ("latency p50 ms", ("latency_ms", "total", "p50")), ("latency p95 ms", ("latency_ms", "total", "p95")),
)


@dataclass(frozen=True)
class QuestionChange:
    """A question scored differently in two reports."""

    id: str
    question: str
    f1_a: float
    f1_b: float
    answer_a: str | None
    answer_b: str | None


@dataclass(frozen=True)
class Comparison:
    """Metric deltas (B − A) and the questions that got better or worse (by F1)."""

    a: str
    b: str
    metrics: tuple[tuple[str, float | None, float | None], ...]
    better: tuple[QuestionChange, ...]
    worse: tuple[QuestionChange, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b,
                "metrics": [{"metric": m, "a": a, "b": b, "delta": None if a is None or b is None else round(b - a, 4)}
                            for m, a, b in self.metrics],
                "better": [c.__dict__ for c in self.better], "worse": [c.__dict__ for c in self.worse],
                "only_a": list(self.only_a), "only_b": list(self.only_b)}


def _lookup(summary: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = summary
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, int | float) else None


def compare_reports(a: LoadedReport, b: LoadedReport) -> Comparison:
    """What changed from report A to report B, question by question (matched by id)."""
    rows_a, rows_b = {r.id: r for r in a.rows}, {r.id: r for r in b.rows}
    better: list[QuestionChange] = []
    worse: list[QuestionChange] = []
    for qid, row_a in rows_a.items():
        row_b = rows_b.get(qid)
        if row_b is None or abs(row_b.f1 - row_a.f1) < 1e-9:
            continue
        change = QuestionChange(id=qid, question=row_a.question, f1_a=row_a.f1, f1_b=row_b.f1,
                                answer_a=None if row_a.refused else row_a.short_answer,
                                answer_b=None if row_b.refused else row_b.short_answer)
        (better if row_b.f1 > row_a.f1 else worse).append(change)
    return Comparison(
        a=str(a.directory), b=str(b.directory),
        metrics=tuple((name, _lookup(a.summary, path), _lookup(b.summary, path)) for name, path in _COMPARED),
        better=tuple(sorted(better, key=lambda c: c.f1_a - c.f1_b)),
        worse=tuple(sorted(worse, key=lambda c: c.f1_b - c.f1_a)),
        only_a=tuple(sorted(set(rows_a) - set(rows_b))), only_b=tuple(sorted(set(rows_b) - set(rows_a))))


def format_comparison(comparison: Comparison) -> str:
    """The comparison as plain text: metric deltas, then the questions that changed."""
    lines = [f"A = {comparison.a}", f"B = {comparison.b}", "", f"{'metric':<20} {'A':>8} {'B':>8} {'B - A':>8}"]
    for name, a, b in comparison.metrics:
        delta = "-" if a is None or b is None else f"{b - a:+.1f}"
        lines.append(f"{name:<20} {_num(a):>8} {_num(b):>8} {delta:>8}")
    for title, changes in (("better in B", comparison.better), ("worse in B", comparison.worse)):
        lines += ["", f"{title} ({len(changes)}):"]
        lines += [f"  {c.id}  F1 {c.f1_a:.2f} -> {c.f1_b:.2f}  {c.answer_a or '(refused)'!r} -> "
                  f"{c.answer_b or '(refused)'!r}  {c.question}" for c in changes]
    if comparison.only_a or comparison.only_b:
        lines.append(f"\nonly in A: {len(comparison.only_a)} questions; only in B: {len(comparison.only_b)}")
    return "\n".join(lines)
