"""Training and held-out prompts with their references, and the prompt the model sees.

A prompt set comes from a corpus of reference records (JSONL, or any public format that
``esfit convert`` reads): the records of one ``prompt_id`` are its references, their ``prompt``
field is the question and their ``source`` field the passage. The model is asked "passage +
question" as one user message through its chat template (``prompt_template``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infoextract import Record, group_by_prompt, read_records

__all__ = ["PromptSet", "format_user_message", "load_prompt_set"]


def format_user_message(template: str, *, prompt: str, source: str | None) -> str:
    """The user message: ``template`` filled with the passage and the question; the question
    alone when the prompt has no passage."""
    if not source:
        return prompt
    return template.format(source=source.strip(), prompt=prompt.strip())


@dataclass
class PromptSet:
    """Prompts in file order: ids, questions, passages, references, and the chat messages."""

    ids: list[str]
    questions: list[str]
    sources: list[str | None]
    references: dict[str, list[Record]]
    messages: list[list[dict[str, str]]]

    def __len__(self) -> int:
        return len(self.ids)

    def records(self, texts_by_prompt: list[list[str]], *, author: str = "model", meta: dict | None = None) -> list[Record]:
        """Completions as corpus records (``texts_by_prompt[j]`` answers prompt j), for ``esfit score``."""
        return [
            Record(pid, text, author=author, prompt=q, source=s, meta=dict(meta or {}))
            for pid, q, s, texts in zip(self.ids, self.questions, self.sources, texts_by_prompt)
            for text in texts
        ]


def load_prompt_set(path: str | Path, *, data_format: str = "jsonl", template: str = "{source}\n\n{prompt}",
                    system_prompt: str = "", limit: int = 0) -> PromptSet:
    """Read a corpus and group it into prompts (the first ``limit`` prompts when ``limit`` > 0).

    References are the records whose author is ``human`` (all records when none is). Raises
    ``ValueError`` naming the file and prompt id when a prompt has no question text.
    """
    path = Path(path)
    if data_format == "jsonl":
        records = read_records(path)
    else:
        from infoextract.loaders import load_corpus

        records = load_corpus(data_format, path)
    if not records:
        raise ValueError(f"{path} holds no records; give a corpus with reference answers per prompt")
    humans = [r for r in records if r.author == "human"]
    groups = group_by_prompt(humans or records)
    ids = list(groups)[:limit] if limit else list(groups)
    questions, sources, messages = [], [], []
    for pid in ids:
        recs = groups[pid]
        question = next((r.prompt for r in recs if r.prompt), None)
        if not question:
            raise ValueError(f"{path}: prompt {pid!r} has no question: give its records a 'prompt' field "
                             "(the instruction the model answers)")
        source = next((r.source for r in recs if r.source), None)
        user = format_user_message(template, prompt=question, source=source)
        chat = [{"role": "system", "content": system_prompt}] if system_prompt else []
        questions.append(question)
        sources.append(source)
        messages.append([*chat, {"role": "user", "content": user}])
    return PromptSet(ids, questions, sources, {pid: groups[pid] for pid in ids}, messages)
