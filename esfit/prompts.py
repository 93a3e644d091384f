"""Training and held-out prompts with their references, and the prompt the model sees.

A prompt set comes from a corpus of reference records (JSONL, or any public format that
``esfit convert`` reads): the records of one ``prompt_id`` are its references, their ``prompt``
field is the question and their ``source`` field the passage. The model is asked "passage +
question" as one user message through its chat template (``prompt_template``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infoextract import Record, group_by_prompt, read_records

__all__ = ["DEFAULT_PROMPT_TEMPLATE", "PromptSet", "TemplateError", "check_prompt_template", "format_user_message",
           "load_prompt_set", "shared_prompt_ids"]

# the passage, a blank line, the question
DEFAULT_PROMPT_TEMPLATE = "{source}\n\n{prompt}"
_PLACEHOLDERS = ("source", "prompt")


class TemplateError(ValueError):
    """A prompt template that cannot be filled; the message names the option, the rule and the fix."""


def check_prompt_template(template: str, *, option: str = "prompt_template") -> str:
    """Check a user-message template before any model loads; returns it unchanged.

    The rule: ``str.format`` syntax with the placeholders ``{source}`` (the passage) and ``{prompt}``
    (the question) only, ``{prompt}`` required; a literal brace is written ``{{`` or ``}}``.
    Raises :class:`TemplateError` naming ``option``.
    """
    usage = (f"use {{prompt}} for the question and optionally {{source}} for the passage, e.g. "
             f"{DEFAULT_PROMPT_TEMPLATE!r}; write a literal brace as {{{{ or }}}}")
    if not isinstance(template, str):
        raise TemplateError(f"{option}={template!r} must be a string; {usage}")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:  # a lone brace
        raise TemplateError(f"{option}={template!r} is not a valid template ({err}); {usage}") from None
    unknown = sorted({f for f in fields if f not in _PLACEHOLDERS})
    if unknown:
        names = ", ".join("{" + f + "}" for f in unknown)
        raise TemplateError(f"{option}={template!r} has unknown placeholder(s) {names}; only {{source}} and "
                            f"{{prompt}} are filled in; {usage}")
    if "prompt" not in fields:
        raise TemplateError(f"{option}={template!r} has no {{prompt}} placeholder, so the model would never see "
                            f"the question; {usage}")
    try:  # conversions and format specs ("{prompt!x}", "{prompt:d}") fail only when filled
        template.format(source="passage", prompt="question")
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as err:
        raise TemplateError(f"{option}={template!r} cannot be filled ({type(err).__name__}: {err}); {usage}") from None
    return template


def format_user_message(template: str, *, prompt: str, source: str | None) -> str:
    """The user message: ``template`` filled with the passage and the question; the question
    alone when the prompt has no passage. Check the template first with
    :func:`check_prompt_template`."""
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

    def records(self, texts_by_prompt: list[list[str]], *, author: str = "model", meta: dict | None = None,
                start: int = 0) -> list[Record]:
        """Completions as corpus records (``texts_by_prompt[j]`` answers prompt ``start + j``), for
        ``esfit score``; ``start`` lets a caller write the records of one batch of prompts at a time."""
        end = start + len(texts_by_prompt)
        return [
            Record(pid, text, author=author, prompt=q, source=s, meta=dict(meta or {}))
            for pid, q, s, texts in zip(self.ids[start:end], self.questions[start:end], self.sources[start:end],
                                        texts_by_prompt)
            for text in texts
        ]


def shared_prompt_ids(sets: Mapping[str, PromptSet]) -> tuple[str, str, list[str]] | None:
    """The first pair of ``sets`` (in their order) that share prompt ids, as (the earlier name, the
    later name, the shared ids sorted); None when they are all disjoint."""
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            overlap = set(sets[a].ids) & set(sets[b].ids)
            if overlap:
                return a, b, sorted(overlap)
    return None


def load_prompt_set(path: str | Path, *, data_format: str = "jsonl", template: str = DEFAULT_PROMPT_TEMPLATE,
                    system_prompt: str = "", limit: int = 0) -> PromptSet:
    """Read a corpus and group it into prompts (the first ``limit`` prompts when ``limit`` > 0).

    References are the records whose author is ``human`` (all records when none is). Raises
    ``ValueError`` naming the file and prompt id when a prompt has no question text, and
    :class:`TemplateError` for a template :func:`check_prompt_template` refuses.
    """
    check_prompt_template(template)
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
