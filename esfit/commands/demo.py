"""`esfit demo`: the facts the demo corpus's references agree on, then the set-level training demo.

Step 1 loads ``datasets/mentions`` (train, validation and held-out prompts, 6-8 references each,
written with designed mention rates), extracts the facts of every reference with
:class:`infoextract.extractor.Extractor` and prints the extraction summary: what a model's sets
of answers are compared against (``--facts-only`` stops here and lists, for each prompt, the facts
most of its references share). Step 2 (:func:`esfit.demo.run_demo`) samples SmolLM2-135M-Instruct's
answers to the held-out prompts, trains it with ES on the set-level fitness for a short run, samples
the same prompts again with the same seeds, prints before/after (JS of the fact shares, precision,
depth, diversity, with bootstrap intervals) and writes an HTML report.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from esfit.demo import MENTIONS_DIR, load_demo_corpus
from infoextract.facts import Extraction
from infoextract.records import CorpusError, group_by_prompt
from infoextract.summary import shared_facts


@click.command("demo")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=MENTIONS_DIR, show_default=True,
              help="Folder holding train.jsonl and heldout.jsonl (and optionally validation.jsonl); datasets/demo is "
                   "the smaller facts corpus.")
@click.option("--pipeline", default=None, help="spaCy pipeline name or path (default: the embedded en_core_web_sm).")
@click.option("--top", type=click.IntRange(min=1), default=6, show_default=True,
              help="--facts-only: shared facts shown per prompt.")
@click.option("--min-share", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="--facts-only: show facts found in at least this share of a prompt's references (and in at least 2).")
@click.option("--facts-only", is_flag=True, help="Only step 1, with the shared facts of every prompt; no training.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Training settings (default: datasets/mentions/train.toml).")
@click.option("--output-dir", default=None, help="Where the run writes (default: runs/demo in the checkout).")
@click.option("--generations", type=click.IntRange(min=1), default=None, help="Override the number of generations.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any training setting (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(data_dir: Path, pipeline: str | None, top: int, min_share: float, facts_only: bool, config_path: Path | None,
         output_dir: str | None, generations: int | None, sets: tuple[str, ...], quiet: bool) -> None:
    """Show what the demo references agree on, then train SmolLM2 so that its sampled answers mention
    each fact about as often as the references do, and compare held-out sets of answers before and
    after (under ten minutes on 2 CPU cores)."""
    from infoextract.extractor import Extractor  # spaCy loads only when the command runs
    from infoextract.summary import format_summary, summarize_extractions

    try:
        splits = load_demo_corpus(data_dir)
    except (FileNotFoundError, CorpusError) as err:
        raise click.ClickException(str(err)) from None
    click.echo("Step 1: the facts in the references")
    for name, records in splits.items():
        click.echo(f"{name:>8}: {len(group_by_prompt(records))} prompts, {len(records)} references ({data_dir / name}.jsonl)")

    records = [r for recs in splits.values() for r in recs]
    extractions = Extractor(pipeline).extract_records(records, progress=not quiet)
    click.echo(format_summary(summarize_extractions(extractions)))

    by_prompt: dict[str, list[Extraction]] = {}
    for record, extraction in zip(records, extractions):
        by_prompt.setdefault(record.prompt_id, []).append(extraction)
    if facts_only:
        click.echo(f"\nFacts most references share (in >= {min_share:.0%} of a prompt's references, and >= 2; top {top})")
    agreed = distinct = 0
    for name, recs in splits.items():
        for prompt_id, group in group_by_prompt(recs).items():
            found = by_prompt[prompt_id]
            agreed += len(shared_facts(found, min_count=2))
            distinct += len(set().union(*(e.keys for e in found)))
            if not facts_only:
                continue
            need = max(2, math.ceil(min_share * len(found) - 1e-9))  # 0.5 of 4 -> 2, not 3 by float drift
            shared = shared_facts(found, min_count=need)
            click.echo(f"\n[{name}] {prompt_id}  {group[0].prompt or ''}")
            if not shared:
                click.echo("   (no fact is shared by enough references)")
            for kind, key, text, n in shared[:top]:
                click.echo(f"   {n}/{len(found)}  {kind:<9} {key:<32} {text!r}")
    share = agreed / distinct if distinct else 0.0
    click.echo(f"\n{agreed} of {distinct} distinct facts ({share:.0%}) are stated by at least two references of their prompt.")
    if facts_only:
        return

    from esfit.config import ConfigError, parse_override
    from esfit.demo import DEMO_CONFIG, run_demo

    click.echo("\nStep 2: train SmolLM2-135M-Instruct so that its sets of sampled answers mention each fact as "
               "often as the references do; compare held-out answers")
    overrides = dict(parse_override(s) for s in sets) if sets else {}
    overrides.update(train_data=str(data_dir / "train.jsonl"), eval_data=str(data_dir / "heldout.jsonl"))
    if pipeline:
        overrides["pipeline"] = pipeline
    if output_dir:
        overrides["output_dir"] = output_dir
    if generations:
        overrides["generations"] = generations
    try:
        run_demo(config_path or DEMO_CONFIG, overrides=overrides, echo=click.echo, progress=not quiet)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
