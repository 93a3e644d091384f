"""`esfit generate --model M --prompts P -o corpus.jsonl`: roll a model out to build a candidate corpus.

The prompts are a corpus of records (their ``prompt`` and ``source`` fields; references are not
needed); each prompt is asked "passage + question" through the chat template, exactly as in
training, and every completion becomes a record with ``author`` = the model's name. The output is
what ``esfit score --candidates`` reads.

Every option and the output path are checked before the model loads. Completions are written as
they come to a partial file beside OUTPUT, renamed to OUTPUT at the end: a run that fails or is
interrupted half-way keeps what it generated and says where.
"""

from __future__ import annotations

from pathlib import Path

import click

from esfit.models import DEVICE_HINT, check_device
from esfit.outputs import AtomicWriter, OutputError, check_output_file
from esfit.prompts import DEFAULT_PROMPT_TEMPLATE, TemplateError, check_prompt_template
from infoextract.loaders import LOADERS


def _check_template(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_prompt_template(value, option="--prompt-template")
    except TemplateError as err:  # the message names the option already
        raise click.UsageError(str(err), ctx=ctx) from None


def _check_author(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # an empty author is read back as "human" (the record default): model answers would pass for people's
    if value is not None and not value.strip():
        raise click.BadParameter("must be a non-empty name such as smollm2-trained (an empty author reads back as "
                                 "'human')")
    return value


@click.command("generate")
@click.option("--model", "model_name", default="smollm2", show_default=True,
              help="Embedded model name or a save_pretrained folder (e.g. a training checkpoint).")
@click.option("--prompts", "prompts_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Corpus whose records give the prompts (prompt_id, prompt, optional source).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="JSONL corpus to write (missing folders are created; completions go to OUTPUT.*.partial "
                   "as they come, renamed to OUTPUT at the end).")
@click.option("--format", "data_format", default="jsonl", show_default=True,
              type=click.Choice(["jsonl", *sorted(LOADERS)]),
              help="jsonl, or a loader of `esfit convert` for the prompts file.")
@click.option("--rollouts", type=click.IntRange(min=1), default=1, show_default=True, help="Completions per prompt.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=96, show_default=True)
@click.option("--greedy/--sample", default=False, show_default=True,
              help="Argmax decoding, or sampling at --temperature with seeded noise.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True, help="Top-k filter when sampling (0: off).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True,
              help="Nucleus filter when sampling (1: off).")
@click.option("--min-new-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="Shortest completion in tokens: end-of-sequence is held back until then.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (the same seed gives the same corpus).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=32, show_default=True,
              help="Prompts × rollouts decoded in one generate call.")
@click.option("--max-prompts", type=click.IntRange(min=0), default=0, help="Only the first N prompts (0: all).")
@click.option("--author", default=None, callback=_check_author,
              help="Author field of the records (default: the model's name).")
@click.option("--prompt-template", default=DEFAULT_PROMPT_TEMPLATE, show_default=False, callback=_check_template,
              help="User message from {source} and {prompt} ({prompt} required; default: passage, blank line, "
                   "question).")
@click.option("--device", default="cpu", show_default=True, help=f"Where the model runs: {DEVICE_HINT}.")
def generate(model_name: str, prompts_path: Path, output: str, data_format: str, rollouts: int, max_new_tokens: int,
             greedy: bool, temperature: float, top_k: int, top_p: float, min_new_tokens: int,
             seed: int, batch_rows: int, max_prompts: int, author: str | None,
             prompt_template: str, device: str) -> None:
    """Answer every prompt of PROMPTS with MODEL and write the completions as a corpus."""
    try:  # before any work: the output must not be the prompts file, and must be writable
        check_output_file(output, inputs={"--prompts": prompts_path}, option="-o")
    except OutputError as err:
        raise click.UsageError(str(err)) from None

    from tqdm.auto import tqdm

    from esfit.models import load_model
    from esfit.prompts import load_prompt_set
    from infoextract import CorpusError
    from trainer import RolloutConfig, generate_rollouts

    try:
        check_device(device)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    try:
        prompts = load_prompt_set(prompts_path, data_format=data_format, template=prompt_template, limit=max_prompts)
        model, tokenizer = load_model(model_name, device=device)
    except (CorpusError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    config = RolloutConfig(max_new_tokens=max_new_tokens, rollouts_per_prompt=rollouts, temperature=temperature,
                           greedy=greedy, top_k=top_k or None, top_p=None if top_p >= 1.0 else top_p,
                           min_new_tokens=min_new_tokens)
    per_call = max(1, batch_rows // rollouts)
    name = author or Path(model_name).name
    meta = {"seed": seed, "greedy": greedy}
    writer = AtomicWriter(output)
    done = written = 0
    try:
        with writer:
            for start in tqdm(range(0, len(prompts), per_call), desc="generate", unit="batch"):
                chunk = prompts.messages[start : start + per_call]
                # seeds derive from the prompt text, so batching does not change what a prompt gets
                texts = generate_rollouts(model, tokenizer, chunk, config, seed=seed).texts[0]
                for record in prompts.records(texts, author=name, meta=meta, start=start):
                    writer.write_json_line(record.to_dict())
                    written += 1
                writer.flush()
                done += len(chunk)
    except BaseException:
        if writer.partial is not None:
            click.echo(f"generate stopped after {done} of {len(prompts)} prompts: the {written} completions written "
                       f"so far are in {writer.partial} ({output} was not changed)", err=True)
        raise
    click.echo(f"wrote {written} completions for {len(prompts)} prompts to {output}")
