"""A self-contained HTML page comparing two sets of answers with the people's, fact by fact.

For training runs (``esfit demo``): the set statistics before and after (means with 95 % bootstrap
intervals over prompts and the paired change), then, for the prompts whose JS moved most, bar
charts of the share of answers mentioning each fact — people, before, after — with a sample
answer of each. Figures are matplotlib PNGs embedded as base64; no external files.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from fitness.setlevel import SET_METRICS, SetReport, paired_delta_ci

__all__ = ["moved_most", "set_report_section", "write_set_report"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
h2{border-bottom:1px solid #ddd;margin-top:2em}.muted{color:#777;font-size:90%}"""
_LOWER_IS_BETTER = {"js", "gap"}


def moved_most(before: SetReport, after: SetReport, *, n: int = 4, metric: str = "js") -> list[str]:
    """The ``n`` prompts whose ``metric`` changed most (either way), largest change first."""
    common = [p for p in before.per_prompt if p in after.per_prompt]
    return sorted(common, key=lambda p: -abs(after.per_prompt[p][metric] - before.per_prompt[p][metric]))[:n]


def _bars(rows_before: Sequence[tuple[str, float, float]], rows_after: Sequence[tuple[str, float, float]],
          title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    after = {u: m for u, _, m in rows_after}
    rows = list(rows_before)[:12]
    labels = [u if len(u) <= 38 else u[:35] + "..." for u, _, _ in rows]
    y = range(len(rows))
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 1.1))
    h = 0.27
    ax.barh([i - h for i in y], [r[1] for r in rows], h, label="people", color="#444")
    ax.barh(list(y), [r[2] for r in rows], h, label="before", color="#d98c3a")
    ax.barh([i + h for i in y], [after.get(r[0], 0.0) for r in rows], h, label="after", color="#3a78d9")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers mentioning the fact")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="fact shares" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def set_report_section(before: SetReport, after: SetReport, *,
                       tables_before: Mapping[str, Sequence[tuple[str, float, float]]],
                       tables_after: Mapping[str, Sequence[tuple[str, float, float]]],
                       questions: Mapping[str, str], samples: Mapping[str, tuple[str, str]] | None = None,
                       n_prompts: int = 4, n_boot: int = 1000) -> str:
    """The HTML (a fragment) of :func:`write_set_report`'s page, to embed in another page."""
    rows = []
    for m in SET_METRICS:
        delta, (lo, hi) = paired_delta_ci(before, after, m, n_boot=n_boot)
        better = (delta < 0) if m in _LOWER_IS_BETTER else (delta > 0)
        shown = " (better, interval excludes 0)" if better and (hi < 0 or lo > 0) else ""
        rows.append(f"<tr><td>{m}{' (lower is better)' if m in _LOWER_IS_BETTER else ''}</td>"
                    f"<td class=num>{before.mean[m]:.3f} [{before.ci[m][0]:.3f}, {before.ci[m][1]:.3f}]</td>"
                    f"<td class=num>{after.mean[m]:.3f} [{after.ci[m][0]:.3f}, {after.ci[m][1]:.3f}]</td>"
                    f"<td class=num>{delta:+.3f} [{lo:+.3f}, {hi:+.3f}]{shown}</td></tr>")
    parts = ["<h2>How often each fact is mentioned: the answers against the people</h2>",
             f"<p>{len(before.per_prompt)} held-out prompts; means with 95 % bootstrap intervals over prompts; the "
             "change is paired (the same prompts before and after). js: Jensen-Shannon divergence (nats; 1.0 where a kind of fact is missing on one side) between "
             "the people's and the answers' shares of mentioning each fact; gap: mean absolute difference of those "
             "shares; precision: share of the answers' facts the references support; depth: facts per answer; "
             "diversity: distinct facts across the answers over distinct facts across the references.</p>",
             "<table><tr><th>statistic</th><th>before</th><th>after</th><th>change</th></tr>", *rows, "</table>",
             "<h3>The prompts that moved most</h3>"]
    for pid in moved_most(before, after, n=n_prompts):
        b, a = before.per_prompt[pid]["js"], after.per_prompt[pid]["js"]
        parts.append(f"<h4>{html.escape(pid)}: {html.escape(questions.get(pid, ''))} (JS {b:.3f} → {a:.3f})</h4>")
        parts.append(_bars(tables_before.get(pid, []), tables_after.get(pid, []), f"{pid}: JS {b:.3f} -> {a:.3f}"))
        if samples and pid in samples:
            sb, sa = samples[pid]
            parts.append(f"<p><b>before:</b> {html.escape(sb)}<br><b>after:</b> {html.escape(sa)}</p>")
    return "\n".join(parts)


def write_set_report(path: str | Path, before: SetReport, after: SetReport, *, title: str = "Before and after training",
                     **section) -> Path:
    """Write a page with :func:`set_report_section` (same keyword arguments). Returns the path."""
    path = Path(path)
    body = set_report_section(before, after, **section)
    page = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"<h1>{html.escape(title)}</h1>{body}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
