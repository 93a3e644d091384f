"""A self-contained HTML report of a scored corpus (``esfit score --report report.html``).

One page, no external files: matplotlib figures are embedded as base64 PNGs. It shows the
aggregate scores with confidence intervals, human vs model fact distributions for the most
divergent prompts, depth histograms, a precision vs depth scatter, and the facts people mention
that the model misses (and the reverse).
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path

import numpy as np

from fitness.bootstrap import bootstrap_answers_ci
from fitness.distributions import fact_distributions
from fitness.divergences import estimate, js_divergence
from fitness.scoring import CorpusScore, ScoreReport
from fitness.support import SupportIndex
from infoextract import Extraction

__all__ = ["write_report", "prompt_divergences", "missed_and_extra"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
h2{border-bottom:1px solid #ddd;margin-top:2em}.muted{color:#777;font-size:90%}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _js(cands: list[Extraction], refs: list[Extraction]) -> float:
    cand, ref = fact_distributions(cands, refs, view="key")
    c, r = cand.counts[ref.counts > 0], ref.counts[ref.counts > 0]
    if r.sum() == 0 or c.sum() == 0:
        return 1.0
    return js_divergence(estimate(r, estimator="plugin"), estimate(c, estimator="plugin"), base=2)


def prompt_divergences(score: CorpusScore) -> dict[str, float]:
    """JS (bits, plug-in) between the human and model shares of the facts people mention, per prompt."""
    return {pid: _js(cands, score.references[pid]) for pid, cands in score.candidates.items()}


def missed_and_extra(cands: list[Extraction], refs: list[Extraction], *, top: int = 8):
    """Facts people mention that the candidates never do, and candidate facts no reference supports,
    each with the share of answers mentioning it, most frequent first."""
    cand, ref = fact_distributions(cands, refs, view="key")
    missed = [(o, float(rm)) for o, rm, cm in zip(ref.outcomes, ref.mass, cand.mass) if rm > 0 and cm == 0]
    index = SupportIndex.build([f for e in refs for f in e.unique_facts])
    unsupported = Counter()
    for e in cands:
        facts = e.unique_facts
        for f, ok in zip(facts, index.supports(facts)):
            if not ok:
                unsupported[f"{f.kind}:{f.key}"] += 1
    extra = [(o, n / max(len(cands), 1)) for o, n in unsupported.most_common()]
    return sorted(missed, key=lambda x: -x[1])[:top], extra[:top]


def _precision_depth(cands: list[Extraction], refs: list[Extraction]):
    """(depth, precision) per candidate answer, and per reference answer against the other references."""
    index = SupportIndex.build([f for e in refs for f in e.unique_facts])
    model = [(e.depth, float(index.supports(e.unique_facts).mean()) if e.depth else 0.0) for e in cands]
    human = []
    for i, e in enumerate(refs):
        others = [f for j, o in enumerate(refs) if j != i for f in o.unique_facts]
        if others and e.depth:
            human.append((e.depth, float(SupportIndex.build(others).supports(e.unique_facts).mean())))
    return model, human


def _table(rows, header) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{c:.3f}</td>' if isinstance(c, float) else f"<td>{html.escape(str(c))}</td>" for c in row
        ) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _aggregate_rows(name: str, score: CorpusScore):
    ci = score.ci
    rows = [(name, "fitness (total)", score.result.total, f"[{ci['fitness'][0]:.3f}, {ci['fitness'][1]:.3f}]")]
    for label, value in score.result.components.items():
        lo, hi = ci["components"][label]
        rows.append((name, label, value, f"[{lo:.3f}, {hi:.3f}]"))
    return rows


def write_report(report: ScoreReport, path: str | Path, *, spec: str = "", n_prompts: int = 4) -> Path:
    """Write the HTML report of ``report`` to ``path`` and return the path."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    score = report.overall
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>esfit score report</title>"
             f"<style>{_CSS}</style></head><body><h1>esfit score report</h1>"]
    parts.append(f"<p>Fitness: <code>{html.escape(spec or 'default')}</code>. {len(score.candidates)} prompts scored"
                 f"{f', {len(score.skipped)} skipped' if score.skipped else ''}. Higher fitness is better; "
                 "divergence components are lower-is-better (their weights are negative). Intervals: "
                 f"{int(score.ci['level'] * 100)} % bootstrap over prompts.</p>")
    rows = _aggregate_rows("all", score)
    for author, s in report.by_author.items():
        rows += _aggregate_rows(author, s)
    parts.append("<h2>Scores</h2>" + _table(rows, ["candidates", "component", "mean", "CI"]))

    # most divergent prompts: human vs model shares of the facts
    div = prompt_divergences(score)
    worst = sorted(div, key=lambda p: -div[p])[:n_prompts]
    parts.append("<h2>Human vs model fact distributions (most divergent prompts)</h2><p class='muted'>Share of "
                 "answers mentioning each fact; the facts shown are the most frequent on either side.</p>")
    for pid in worst:
        cands, refs = score.candidates[pid], score.references[pid]
        cand, ref = fact_distributions(cands, refs, view="key")
        order = np.argsort(-(ref.mass + cand.mass))[:16]
        fig, ax = plt.subplots(figsize=(10, 3.6))
        x = np.arange(order.size)
        ax.bar(x - 0.2, ref.mass[order], 0.4, label=f"people ({ref.n_answers} answers)", color="#4c72b0")
        ax.bar(x + 0.2, cand.mass[order], 0.4, label=f"candidates ({cand.n_answers} answers)", color="#dd8452")
        ax.set_xticks(x, [ref.outcomes[i][:28] for i in order], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("share of answers")
        # how much of that is small-sample noise: resample both sides' answers
        lo, hi = bootstrap_answers_ci(_js, cands, refs, n_boot=200)
        ax.set_title(f"{pid}: JS = {div[pid]:.2f} bits (95 % bootstrap over answers: {lo:.2f}-{hi:.2f})", fontsize=10)
        ax.legend(fontsize=8)
        prompt = report.prompts.get(pid, "")
        missed, extra = missed_and_extra(cands, refs)
        parts.append(f"<h3>{html.escape(pid)}</h3><p>{html.escape(prompt)}</p>" + _png(fig))
        parts.append("<p>People mention, the model misses:</p>" + _table(missed, ["fact", "share of people"]))
        parts.append("<p>The model says, no reference supports:</p>" + _table(extra, ["fact", "share of model answers"]))
        if score.candidate_texts.get(pid):
            parts.append(f"<p class='muted'>A model answer: {html.escape(score.candidate_texts[pid][0][:600])}</p>")

    # depth histograms and precision vs depth, all prompts pooled
    model_pd, human_pd = [], []
    for pid, cands in score.candidates.items():
        m, h = _precision_depth(cands, score.references[pid])
        model_pd += m
        human_pd += h
    ref_depths = [e.depth for refs in score.references.values() for e in refs]
    cand_depths = [e.depth for cands in score.candidates.values() for e in cands]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.histogram_bin_edges(ref_depths + cand_depths, bins=20)
    ax.hist(ref_depths, bins=bins, alpha=0.6, density=True, label="people", color="#4c72b0")
    ax.hist(cand_depths, bins=bins, alpha=0.6, density=True, label="candidates", color="#dd8452")
    ax.set_xlabel("depth (unique informative facts per answer)")
    ax.set_ylabel("density")
    ax.legend()
    parts.append("<h2>Depth</h2>" + _png(fig))
    fig, ax = plt.subplots(figsize=(7, 4))
    if human_pd:
        ax.scatter(*zip(*human_pd), s=14, alpha=0.6, label="people (vs the other people)", color="#4c72b0")
    if model_pd:
        ax.scatter(*zip(*model_pd), s=14, alpha=0.6, label="candidates (vs people)", color="#dd8452")
    ax.set_xlabel("depth (unique informative facts)")
    ax.set_ylabel("precision (share supported)")
    ax.legend()
    parts.append("<h2>Precision vs depth</h2><p class='muted'>One point per answer. People are scored against "
                 "the other people's answers.</p>" + _png(fig))

    # corpus-wide missed / extra facts
    missed_all, extra_all = Counter(), Counter()
    for pid, cands in score.candidates.items():
        missed, extra = missed_and_extra(cands, score.references[pid], top=1000)
        for fact, share in missed:
            missed_all[fact] += share
        for fact, share in extra:
            extra_all[fact] += share
    parts.append("<h2>Across all prompts</h2><p>Facts people mention that the model misses (summed share):</p>"
                 + _table([(f, float(v)) for f, v in missed_all.most_common(15)], ["fact", "sum of shares"])
                 + "<p>Facts the model says that no reference supports:</p>"
                 + _table([(f, float(v)) for f, v in extra_all.most_common(15)], ["fact", "sum of shares"]))
    if score.skipped:
        parts.append("<h2>Skipped prompts</h2>" + _table(list(score.skipped.items()), ["prompt", "why"]))
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
