"""The training demo: SmolLM2-135M-Instruct trained with ES on the set-level fitness, before vs after.

``run_demo()`` (what ``esfit demo`` and ``make demo`` run) loads the embedded defaults and
``datasets/mentions/train.toml``, samples K answers per held-out prompt from the base model, trains
with ES for a short run (each member's K sampled answers to a prompt scored together by
``js_mentions`` plus F1@K), samples again with the same seeds, and prints held-out JS of the fact
shares, precision, depth and diversity before/after with 95 % bootstrap intervals over prompts
and sample answers. It writes an HTML report (``fitness.report.write_report``, plus the bars of
people's vs the model's fact shares for the prompts that moved most).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esfit.config import load_config
from infoextract.records import Record, read_records

__all__ = ["DEMO_CONFIG", "DEMO_DIR", "MENTIONS_DIR", "DemoResult", "load_demo_corpus", "run_demo"]

# datasets/ sits beside the packages in a checkout (the package is installed editable)
DEMO_DIR = Path(__file__).resolve().parents[1] / "datasets" / "demo"  # the small facts corpus
MENTIONS_DIR = DEMO_DIR.parent / "mentions"  # the set-level corpus the demo trains on
DEMO_CONFIG = MENTIONS_DIR / "train.toml"
SPLITS = ("train", "heldout")
OPTIONAL_SPLITS = ("validation",)


def load_demo_corpus(data_dir: str | Path = DEMO_DIR, splits: Sequence[str] = SPLITS) -> dict[str, list[Record]]:
    """A demo corpus: split name -> records (``<data_dir>/<split>.jsonl``), with the optional
    ``validation`` split when the folder has one."""
    data_dir = Path(data_dir)
    splits = [*splits, *(s for s in OPTIONAL_SPLITS if s not in splits and (data_dir / f"{s}.jsonl").is_file())]
    missing = [s for s in splits if not (data_dir / f"{s}.jsonl").is_file()]
    if missing:
        raise FileNotFoundError(
            f"demo corpus split(s) {', '.join(missing)} not found in {data_dir}; run from a checkout of "
            "esfit (the corpus lives in datasets/demo) or pass --data-dir"
        )
    return {s: read_records(data_dir / f"{s}.jsonl") for s in splits}


@dataclass
class DemoResult:
    before: float
    after: float
    components_before: dict[str, float]
    components_after: dict[str, float]
    report: Path | None
    output_dir: Path
    sets: SetLevel | None = None

    @property
    def improved(self) -> bool:
        return self.after > self.before


def _samples(train_result, eval_set, n: int) -> list[tuple[str, str, str, str]]:
    """(prompt id, question, answer before, answer after) for the first ``n`` held-out prompts."""
    before, after = train_result.evals[0], train_result.evals[-1]
    return [(eval_set.ids[j], eval_set.questions[j], before.texts[j][0].strip(), after.texts[j][0].strip())
            for j in range(min(n, len(eval_set)))]


@dataclass
class SetLevel:
    """The held-out answers before and after as sets: statistics per prompt and fact shares."""

    before: Any  # fitness.SetReport
    after: Any
    tables_before: dict[str, list[tuple[str, float, float]]]
    tables_after: dict[str, list[tuple[str, float, float]]]

    def line(self, metric: str = "js", n_boot: int = 1000) -> str:
        from fitness import paired_delta_ci

        b, a = self.before, self.after
        delta, (lo, hi) = paired_delta_ci(b, a, metric, n_boot=n_boot)
        return (f"held-out {metric} before {b.mean[metric]:.3f} [{b.ci[metric][0]:.3f}, {b.ci[metric][1]:.3f}] -> after "
                f"{a.mean[metric]:.3f} [{a.ci[metric][0]:.3f}, {a.ci[metric][1]:.3f}]; change {delta:+.3f} "
                f"[{lo:+.3f}, {hi:+.3f}] (95 % bootstrap over {len(b.per_prompt)} prompts, paired)")


def set_level(eval_set, before_texts, after_texts, extractor) -> SetLevel:
    """Extract the references and both answer sets once and compare them prompt by prompt."""
    from fitness import set_report
    from fitness.setlevel import mention_table

    ids = eval_set.ids
    refs = dict(zip(ids, _chunked(extractor.extract([r.text for p in ids for r in eval_set.references[p]]),
                                  [len(eval_set.references[p]) for p in ids])))
    prompts = dict(zip(ids, extractor.extract(list(eval_set.questions))))
    sides = []
    for texts in (before_texts, after_texts):
        cands = dict(zip(ids, _chunked(extractor.extract([t for group in texts for t in group]),
                                       [len(g) for g in texts])))
        tables = {p: mention_table(cands[p], refs[p], prompt=prompts[p]) for p in ids}
        sides.append((set_report(cands, refs, prompts=prompts), tables))
    return SetLevel(sides[0][0], sides[1][0], sides[0][1], sides[1][1])


def _chunked(items: list, sizes: list[int]) -> list[list]:
    out, k = [], 0
    for n in sizes:
        out.append(items[k:k + n])
        k += n
    return out


def _write_report(config, eval_set, train_result, path: Path, samples, sets: SetLevel, extractor) -> Path:
    """Score the answers before and after as two authors of one candidate corpus; add samples and
    the set-level comparison (statistics and fact-share bars for the prompts that moved most)."""
    from fitness import score_corpus
    from fitness.report import write_report
    from fitness.setreport import set_report_section

    before, after = train_result.evals[0], train_result.evals[-1]
    candidates = (eval_set.records(before.texts, author="before training")
                  + eval_set.records(after.texts, author=f"after {after.after_generations} generations"))
    references = [r for recs in eval_set.references.values() for r in recs]
    report = score_corpus(references, candidates, config.fitness or None, extractor=extractor,
                          by_author=True, n_boot=200, progress=False)
    spec = config.fitness if isinstance(config.fitness, str) else json.dumps(config.fitness)
    write_report(report, path, spec=spec or "default")
    rows = "".join(
        f"<tr><td>{html.escape(pid)}</td><td>{html.escape(q)}</td><td>{html.escape(b)}</td><td>{html.escape(a)}</td></tr>"
        for pid, q, b, a in samples)
    section = ("<h2>Sample answers before and after training</h2><table><tr><th>prompt</th><th>question</th>"
               f"<th>before</th><th>after</th></tr>{rows}</table>")
    first = {pid: (before.texts[j][0].strip(), after.texts[j][0].strip()) for j, pid in enumerate(eval_set.ids)}
    section += set_report_section(sets.before, sets.after, tables_before=sets.tables_before,
                                  tables_after=sets.tables_after, questions=dict(zip(eval_set.ids, eval_set.questions)),
                                  samples=first)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("</body>", section + "</body>", 1), encoding="utf-8")
    return path


def run_demo(config_path: str | Path = DEMO_CONFIG, *, overrides: Mapping[str, Any] | None = None,
             echo: Callable[[str], None] = print, progress: bool = True, report: bool = True) -> DemoResult:
    """Train with the demo configuration and compare held-out fitness before and after.

    ``overrides`` change config keys (e.g. ``{"generations": 4, "output_dir": "runs/x"}``).
    """
    from esfit.training import train

    config = load_config(config_path, overrides)
    config.validate_paths()
    if not config.eval_data:
        raise ValueError("the demo needs held-out prompts: set eval_data in the config")
    echo(f"training {config.model} for {config.generations} generations: population {config.population_size}, "
         f"σ={config.sigma:g}, learning rate {config.learning_rate:g}, {config.prompts_per_generation} prompts per "
         f"generation, {'greedy' if config.greedy else 'sampled'} rollouts of up to {config.max_new_tokens} tokens")
    # the demo always starts afresh in its folder: a second `make demo` replaces the first one's run
    result = train(config, progress=progress, echo=echo, overwrite_output_dir=True)
    before, after = result.evals[0], result.evals[-1]
    from esfit.prompts import load_prompt_set

    eval_set = load_prompt_set(config.eval_data, template=config.prompt_template, system_prompt=config.system_prompt,
                               limit=config.max_eval_prompts)
    samples = _samples(result, eval_set, 3)
    echo("\nSample held-out answers (same prompts, same seeds):")
    for pid, question, b, a in samples:
        echo(f"  {pid}  {question}\n    before: {b[:300]!r}\n    after:  {a[:300]!r}")
    from infoextract import Extractor

    extractor = Extractor(config.pipeline or None, cache=config.extraction_cache or None)
    sets = set_level(eval_set, before.texts, after.texts, extractor)
    path = None
    if report:
        path = _write_report(config, eval_set, result, Path(config.output_dir) / "report.html", samples, sets,
                             extractor)
        echo(f"\nwrote {path}")
    common = [p for p in before.per_prompt if p in after.per_prompt]
    better = sum(after.per_prompt[p] > before.per_prompt[p] for p in common)
    worse = sum(after.per_prompt[p] < before.per_prompt[p] for p in common)
    echo(f"per held-out prompt: better on {better}, worse on {worse}, unchanged on {len(common) - better - worse} "
         f"of {len(common)}")
    for metric in ("precision", "depth", "diversity"):
        echo(sets.line(metric))
    echo(sets.line("js"))
    verdict = "up" if after.fitness > before.fitness else "NOT up"
    echo(f"held-out fitness before {before.fitness:.4f} -> after {after.fitness:.4f} ({verdict}, "
         f"{after.fitness - before.fitness:+.4f}) after {after.after_generations} generations")
    return DemoResult(before.fitness, after.fitness, before.components, after.components, path,
                      Path(config.output_dir), sets)
