"""`rlm-plugins eval --report DIR`: the summary table, a score-vs-cost plot, and every example linked to its
trajectory log, as one HTML page next to the results."""

from __future__ import annotations

import html
import os
import pathlib
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.evals.runner import read_rows
from rlm_plugins.evals.summary import summarize, table_rows

REPORT = "report.html"
PLOT = "score_vs_cost.png"


def render_report(directory: str | os.PathLike[str]) -> pathlib.Path:
    """Write `report.html` and `score_vs_cost.png` into an evaluation directory; returns the report's path."""
    out = pathlib.Path(directory)
    rows = read_rows(out)
    summary = summarize(rows)
    _plot(summary, out / PLOT)
    header, table = table_rows(summary)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>rlm-plugins evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}</style>",
        f"<h1>Evaluation: {html.escape(', '.join(sorted({r['task'] for r in rows})))}</h1>",
        f"<p>root model <code>{html.escape(str(rows[0]['model']))}</code>, sub-model "
        f"<code>{html.escape(str(rows[0]['sub_model']))}</code>, {len(rows)} answers.</p>",
        _table(header, table),
        f"<h2>Score against cost</h2><img src='{PLOT}' alt='score against cost per method'>",
        "<h2>Examples</h2>",
        _table(
            ["example", "method", "tokens", "score", "answer", "gold", "finish", "seconds", "trajectory"],
            [_example_cells(row, out) for row in rows],
            escape=False,
        ),
    ]
    path = out / REPORT
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _plot(summary: list[dict[str, Any]], path: pathlib.Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigurationError('the report plot needs matplotlib: pip install "rlm-plugins[evals]"') from exc
    use_cost = all(item["cost"]["mean"] is not None for item in summary)
    figure, axes = plt.subplots(figsize=(6, 4))
    for item in summary:
        x = item["cost"]["mean"] if use_cost else item["tokens"]["mean"]
        low, high = item["ci95"]
        axes.errorbar(
            [x],
            [item["score"]],
            yerr=[[item["score"] - low], [high - item["score"]]],
            fmt="o",
            capsize=4,
            label=f"{item['task']} / {item['method']}",
        )
    axes.set_xlabel("mean cost per example (USD)" if use_cost else "mean tokens per example (no prices known)")
    axes.set_ylabel("mean score")
    axes.set_ylim(-0.05, 1.05)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _example_cells(row: dict[str, Any], out: pathlib.Path) -> list[str]:
    log = row.get("log_path")
    if log:
        target = os.path.relpath(log, out) if os.path.isabs(log) or pathlib.Path(log).exists() else log
        link = f"<a href='{html.escape(target)}'>{html.escape(pathlib.Path(log).name)}</a>"
    else:
        link = html.escape(row.get("error") or "")
    return [
        html.escape(row["example_id"]),
        html.escape(row["method"]),
        f"{row['tokens']:,}",
        f"{row['score']:.3f}",
        html.escape(_short(row["answer"])),
        html.escape(_short(row["gold"])),
        html.escape(row["finish_reason"]),
        f"{row['seconds']:.2f}",
        link,
    ]


def _table(header: list[str], rows: list[list[str]], escape: bool = True) -> str:
    cell = html.escape if escape else str
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
