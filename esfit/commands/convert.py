"""`esfit convert FORMAT INPUT -o corpus.jsonl`: a public data format to a JSONL corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from esfit.outputs import AtomicWriter, OutputError, check_output_file
from infoextract.loaders import LOADERS, FormatError, load_corpus
from infoextract.records import Record, group_by_prompt


def corpus_summary(records: list[Record]) -> str:
    """A few lines describing a corpus: records and prompts, and per author records and mean words."""
    groups = group_by_prompt(records)
    authors = Counter(r.author for r in records)
    words = Counter()
    for r in records:
        words[r.author] += len(r.text.split())
    sizes = [len(g) for g in groups.values()] or [0]
    spread = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
    lines = [f"{len(records)} records, {len(groups)} prompts ({spread} records per prompt)"]
    for author, n in authors.most_common():
        lines.append(f"  {author:<12} {n:>7} records  {words[author] / n:7.1f} words on average")
    with_source = sum(r.source is not None for r in records)
    with_prompt = sum(r.prompt is not None for r in records)
    lines.append(f"  with a source: {with_source}, with a prompt text: {with_prompt}")
    return "\n".join(lines)


@click.command("convert")
@click.argument("format", metavar="FORMAT", type=click.Choice(sorted(LOADERS)))
@click.argument("input", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The JSONL corpus to write (one record a line; missing folders are created).")
@click.option("--dedupe/--keep-duplicates", default=None,
              help="squad, mgtbench: keep only the first of identical human spans of a question "
                   "(default: keep them, each is a separate annotator).")
@click.option("--stories", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="squality-eval: the SQuALITY story file of the same split (e.g. v1-3_txt_test.jsonl), "
                   "for the question text, the story and the reference uid of human responses.")
@click.option("--model-author", default=None, help="mgtbench: the author name of the model answers (default chatgpt).")
@click.option("--annotations", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="realsumm: the folder of annotation CSVs (default: annotations/ beside scores.json).")
@click.option("--scus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="realsumm: SCUs_list.csv (default: the one beside scores.json).")
@click.option("--max-prompts", type=click.IntRange(min=1), default=None,
              help="Keep only the first N prompts (in file order).")
def convert(format: str, input: Path, output: str, dedupe: bool | None, stories: Path | None,
            model_author: str | None, annotations: Path | None, scus: Path | None, max_prompts: int | None) -> None:
    """Convert INPUT, a file in a public FORMAT, to a JSONL corpus of records.

    \b
    Formats:
      squad          SQuAD v1.1 JSON: each human answer span a record
      squality       SQuALITY story file: four human responses per question
      squality-eval  SQuALITY human-eval file: bart, bart-dpr, human responses with ratings
      mgtbench       MGTBench CSV: human spans and the ChatGPT answer
      multiref       JSON/JSONL {prompt_id, source, prompt?, references, systems}
      realsumm       REALSumm scores.json (+ SCUs_list.csv, annotations/): reference and 25
                     system summaries per article, Lite-Pyramid scores and SCU labels
    """
    try:  # before reading: the output must not be an input, and must be writable
        check_output_file(output, inputs={"INPUT": input, "--stories": stories, "--scus": scus}, option="-o")
    except OutputError as err:
        raise click.UsageError(str(err)) from None
    try:
        records = load_corpus(format, input, dedupe=dedupe, stories=stories, model_author=model_author,
                              annotations=annotations, scus=scus)
    except (FormatError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    except TypeError as err:  # an option this format does not take
        raise click.UsageError(str(err)) from None
    if max_prompts is not None:
        groups = list(group_by_prompt(records).values())[:max_prompts]
        records = [r for group in groups for r in group]
    if not records:
        raise click.ClickException(f"{input} holds no records in format {format!r}; nothing written to {output}")
    try:
        with AtomicWriter(output) as out:  # a lone surrogate from a JSON escape is written back as that escape
            for record in records:
                out.write_json_line(record.to_dict())
    except OSError as err:
        raise click.ClickException(f"-o {output}: writing failed ({err.strerror or err}); {output} was not changed") from None
    click.echo(f"wrote {output}")
    click.echo(corpus_summary(records))
