"""`esfit score --references human.jsonl --candidates model.jsonl`: score a corpus against references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


def _table(report) -> str:
    """The aggregate scores, one row per component, one column per candidate set."""
    columns = {"all": report.overall, **report.by_author}
    labels = ["fitness", *report.overall.result.components]
    width = max(len(lab) for lab in labels) + 2
    head = "".join(f"{name[:22]:>24}" for name in columns)
    lines = [f"{'':<{width}}{head}"]
    for lab in labels:
        cells = []
        for s in columns.values():
            value = s.result.total if lab == "fitness" else s.result.components[lab]
            lo, hi = s.ci["fitness"] if lab == "fitness" else s.ci["components"][lab]
            cells.append(f"{value:>+8.3f} [{lo:+.2f},{hi:+.2f}]")
        lines.append(f"{lab:<{width}}" + "".join(f"{c:>24}" for c in cells))
    n = len(report.overall.candidates)
    lines.append(f"{n} prompt(s) scored; 95 % bootstrap intervals over prompts"
                 + (f"; {len(report.overall.skipped)} skipped (see --json)" if report.overall.skipped else ""))
    return "\n".join(lines)


@click.command("score")
@click.option("--references", "-r", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference corpus (JSONL records, e.g. the human answers).")
@click.option("--candidates", "-c", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Candidate corpus (JSONL records, e.g. model answers; may hold several authors).")
@click.option("--fitness", "spec", default=None,
              help="Fitness spec, e.g. 'f1_at_k:1 + js_facts:-0.5', or a .toml file (default: fitness.DEFAULT_SPEC).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write {aggregate: {fitness, components, ci}, prompts: [...]} here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML report here.")
@click.option("--by-author", is_flag=True, help="Also score every author of the candidate corpus separately.")
@click.option("--exclude-self", is_flag=True,
              help="Leave out of a prompt's references any reference whose text equals a candidate's.")
@click.option("--pipeline", default=None, help="spaCy pipeline for extraction (default: the embedded one).")
@click.option("--cache", type=click.Path(dir_okay=False), default=None, help="sqlite extraction cache file.")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples for the confidence intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def score(references: Path, candidates: Path, spec: str | None, json_path: Path | None, report_path: Path | None,
          by_author: bool, exclude_self: bool, pipeline: str | None, cache: str | None, n_boot: int, seed: int) -> None:
    """Score a candidate corpus against a reference corpus with a fitness; print a table."""
    from fitness import DEFAULT_SPEC, build_fitness, score_corpus
    from infoextract import CorpusError, Extractor, read_records

    try:
        fit = build_fitness(spec)
    except (KeyError, ValueError, FileNotFoundError) as err:
        raise click.BadParameter(str(err).strip("'\""), param_hint="--fitness") from None
    try:
        refs, cands = read_records(references), read_records(candidates)
    except CorpusError as err:
        raise click.ClickException(str(err)) from None
    extractor = Extractor(pipeline, cache=cache)
    try:
        report = score_corpus(refs, cands, fit, extractor=extractor, by_author=by_author,
                              exclude_self=exclude_self, n_boot=n_boot, seed=seed, progress=True)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"fitness: {fit}")
    click.echo(_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
        os.replace(tmp, json_path)
        click.echo(f"wrote {json_path}")
    if report_path is not None:
        from fitness.report import write_report

        write_report(report, report_path, spec=spec or DEFAULT_SPEC)
        click.echo(f"wrote {report_path}")
