"""`esfit generate --model M --prompts P -o corpus.jsonl`: roll a model out to build a candidate corpus.

The prompts are a corpus of records (their ``prompt`` and ``source`` fields; references are not
needed); each prompt is asked "passage + question" through the chat template, exactly as in
training, and every completion becomes a record with ``author`` = the model's name. The output is
what ``esfit score --candidates`` reads.
"""

from __future__ import annotations

from pathlib import Path

import click

from esfit.config import TrainConfig


@click.command("generate")
@click.option("--model", "model_name", default="smollm2", show_default=True,
              help="Embedded model name or a save_pretrained folder (e.g. a training checkpoint).")
@click.option("--prompts", "prompts_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Corpus whose records give the prompts (prompt_id, prompt, optional source).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL corpus to write.")
@click.option("--format", "data_format", default="jsonl", show_default=True,
              help="jsonl, or a loader of `esfit convert` for the prompts file.")
@click.option("--rollouts", type=click.IntRange(min=1), default=1, show_default=True, help="Completions per prompt.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=96, show_default=True)
@click.option("--greedy/--sample", default=False, show_default=True,
              help="Argmax decoding, or sampling at --temperature with seeded noise.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (the same seed gives the same corpus).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=32, show_default=True,
              help="Prompts × rollouts decoded in one generate call.")
@click.option("--max-prompts", type=click.IntRange(min=0), default=0, help="Only the first N prompts (0: all).")
@click.option("--author", default=None, help="Author field of the records (default: the model's name).")
@click.option("--prompt-template", default=TrainConfig.prompt_template, show_default=False,
              help="User message from {source} and {prompt} (default: passage, blank line, question).")
@click.option("--device", default="cpu", show_default=True)
def generate(model_name: str, prompts_path: Path, output: Path, data_format: str, rollouts: int, max_new_tokens: int,
             greedy: bool, temperature: float, seed: int, batch_rows: int, max_prompts: int, author: str | None,
             prompt_template: str, device: str) -> None:
    """Answer every prompt of PROMPTS with MODEL and write the completions as a corpus."""
    from tqdm.auto import tqdm

    from esfit.models import load_model
    from esfit.prompts import load_prompt_set
    from infoextract import CorpusError, write_records
    from trainer import RolloutConfig, generate_rollouts

    try:
        prompts = load_prompt_set(prompts_path, data_format=data_format, template=prompt_template, limit=max_prompts)
        model, tokenizer = load_model(model_name, device=device)
    except (CorpusError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    config = RolloutConfig(max_new_tokens=max_new_tokens, rollouts_per_prompt=rollouts, temperature=temperature,
                           greedy=greedy)
    per_call = max(1, batch_rows // rollouts)
    texts: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), per_call), desc="generate", unit="batch"):
        chunk = prompts.messages[start : start + per_call]
        # seeds derive from the prompt text, so batching does not change what a prompt gets
        texts.extend(generate_rollouts(model, tokenizer, chunk, config, seed=seed).texts[0])
    name = author or Path(model_name).name
    records = prompts.records(texts, author=name, meta={"seed": seed, "greedy": greedy})
    write_records(records, output)
    click.echo(f"wrote {len(records)} completions for {len(prompts)} prompts to {output}")
