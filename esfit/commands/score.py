"""`esfit score --references human.jsonl --candidates model.jsonl`: score a corpus against references."""

from __future__ import annotations

from pathlib import Path

import click

from esfit.outputs import AtomicWriter, OutputError, check_output_file


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


def _check_outputs(references: Path, candidates: Path, spec: str | None, plugins: tuple[str, ...],
                   json_path: str | None, report_path: str | None, cache: str | None) -> None:
    """Before any work: no output may be a file the command reads (the cache is read and written),
    and each must be writable."""
    inputs: list[tuple[str, Path | str]] = [("--references", references), ("--candidates", candidates)]
    if spec and spec.strip().endswith(".toml"):
        inputs.append(("--fitness", spec))
    inputs += [("--plugins", p) for p in plugins if p.endswith(".py")]
    try:
        if cache is not None:
            check_output_file(cache, inputs=inputs, option="--cache", example="facts-cache.sqlite")
            inputs.append(("--cache", cache))
        outs = {}
        if json_path is not None:
            outs["--json"] = check_output_file(json_path, inputs=inputs, option="--json", example="score.json")
        if report_path is not None:
            outs["--report"] = check_output_file(report_path, inputs=inputs, option="--report", example="report.html")
    except OutputError as err:
        raise click.UsageError(str(err)) from None
    if len(outs) == 2 and outs["--json"] == outs["--report"]:
        raise click.UsageError(f"--json {json_path} and --report {report_path} are the same file; one would "
                               "overwrite the other: give them different paths")


def _fitness_message(err: Exception, spec: str | None) -> str:
    if isinstance(err, KeyError) and err.args:  # str(KeyError) is the repr of its message
        return str(err.args[0])
    if isinstance(err, UnicodeDecodeError):
        return f"{spec}: not UTF-8 text (byte {err.start}); a fitness TOML file is UTF-8 text"
    return str(err)


def _extractor(pipeline: str | None, cache: str | None):
    from infoextract import Extractor
    from infoextract.cache import ExtractionCache
    from infoextract.pipeline import PipelineNotFoundError

    if cache is not None:  # a bad cache file fails now, not after spaCy has loaded
        try:
            ExtractionCache(cache).close()
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--cache") from None
    try:
        return Extractor(pipeline, cache=cache)
    except PipelineNotFoundError as err:
        raise click.BadParameter(str(err), param_hint="--pipeline") from None
    except ValueError as err:  # the cache (CacheError) or an empty pipeline name
        hint = "--pipeline" if str(err).startswith("pipeline") else "--cache"
        raise click.BadParameter(str(err), param_hint=hint) from None


@click.command("score")
@click.option("--references", "-r", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference corpus (JSONL records, e.g. the human answers).")
@click.option("--candidates", "-c", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Candidate corpus (JSONL records, e.g. model answers; may hold several authors).")
@click.option("--fitness", "spec", default=None,
              help="Fitness spec, e.g. 'f1_at_k:1 + js_facts:-0.5', or a .toml file (default: fitness.DEFAULT_SPEC).")
@click.option("--plugins", "plugins", multiple=True, metavar="MODULE_OR_FILE.py",
              help="Import this module (a name on the Python path, or a .py file) before the fitness is built, "
                   "so the components it registers can be named in --fitness. Repeatable.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write {aggregate: {fitness, components, ci}, prompts: [...]} here (missing folders are created).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write a self-contained HTML report here (missing folders are created).")
@click.option("--by-author", is_flag=True, help="Also score every author of the candidate corpus separately.")
@click.option("--exclude-self", is_flag=True,
              help="Leave out of a prompt's references any reference whose text equals a candidate's.")
@click.option("--pipeline", default=None, help="spaCy pipeline for extraction (default: the embedded one).")
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="sqlite extraction cache file (created when missing).")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples for the confidence intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def score(references: Path, candidates: Path, spec: str | None, plugins: tuple[str, ...], json_path: str | None,
          report_path: str | None, by_author: bool, exclude_self: bool, pipeline: str | None, cache: str | None,
          n_boot: int, seed: int) -> None:
    """Score a candidate corpus against a reference corpus with a fitness; print a table."""
    from fitness import DEFAULT_SPEC, build_fitness, score_corpus
    from infoextract import CorpusError, read_records

    _check_outputs(references, candidates, spec, plugins, json_path, report_path, cache)
    if plugins:
        from esfit.plugins import PluginError, import_plugins

        try:
            import_plugins(plugins, option="--plugins")
        except PluginError as err:
            raise click.UsageError(str(err)) from None
    try:
        fit = build_fitness(spec)
    except (KeyError, ValueError, TypeError, FileNotFoundError) as err:
        raise click.BadParameter(_fitness_message(err, spec), param_hint="--fitness") from None
    try:
        refs, cands = read_records(references), read_records(candidates)
    except CorpusError as err:
        raise click.ClickException(str(err)) from None
    for option, path, records in (("--references", references, refs), ("--candidates", candidates, cands)):
        if not records:
            raise click.ClickException(f"{option} {path} holds no records; give a JSONL corpus, one "
                                       '{"prompt_id", "text"} object a line')
    extractor = _extractor(pipeline, cache)
    try:
        report = score_corpus(refs, cands, fit, extractor=extractor, by_author=by_author,
                              exclude_self=exclude_self, n_boot=n_boot, seed=seed, progress=True)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"fitness: {fit}")
    click.echo(_table(report))
    if json_path is not None:
        import json

        with AtomicWriter(json_path) as out:
            out.write(json.dumps(report.to_json(), indent=2))
        click.echo(f"wrote {json_path}")
    if report_path is not None:
        from fitness.report import write_report

        write_report(report, report_path, spec=spec or DEFAULT_SPEC)
        click.echo(f"wrote {report_path}")
