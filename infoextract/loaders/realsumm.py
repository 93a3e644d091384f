"""REALSumm (Bhandari et al., EMNLP 2020, "Re-evaluating Evaluation in Text Summarization").

100 CNN/DailyMail test articles, 25 systems and human Lite-Pyramid judgments. Three parts of the
public release are read:

- ``scores.json``: ``{"abs"|"ext": {doc_id: {"ref_summ", "system_summaries": {"<system>.txt":
  {"system_summary", "scores": {"litepyramid_recall", "rouge_2_recall", ...}}}}}}`` (the reference,
  each system's summary, the human Lite-Pyramid score and the authors' metric scores);
- ``SCUs_list.csv`` beside it (``eventId, questionId, questionText``): the Semantic Content Units
  written from each article's reference;
- ``annotations/{abs,ext}/*.csv`` beside it: Mechanical Turk rows, one per (article, summary,
  annotator), with ``Input.eventId``, ``Input.summaryId``, ``Input.qIdList``, ``Input.summary_text``,
  ``Input.statement_<i>`` (``BLANK`` padding) and ``Answer.S<i>Answer`` (``p`` present / ``n`` not).

Joining them: a system is ``"<group>/<name>"`` (``"abs/t5_out_11B"``), the group being the key of
``scores.json`` it is listed under (the annotation folders do not follow it: BanditSum and NeuSum
are annotated under ``abs/`` but scored under ``ext``). Annotation articles are named ``cnndm<N>``
and score articles ``"0".."99"``; they are matched by summary text (the same system's summary,
compared on letters and digits only). An SCU is present in a summary by *majority*: more than half
of its annotators said ``p`` (2 of 4 is absent); this reproduces every ``litepyramid_recall`` of
``scores.json`` exactly, except for ``abs/bart_out``, whose entry in ``scores.json`` is a copy of
``ext/bart_out`` (same text, same scores) while ``annotations/abs/bart_out_*.csv`` judges another,
abstractive BART summary. Records keep the ``scores.json`` summary (what the authors' metric scores
are computed on) and, where the annotators saw another text, it is ``meta["annotated_text"]``.

Texts in ``scores.json`` are often lower-cased and tokenised, with ``<t> ... </t>`` around
sentences; the tags are removed, and where the annotators saw the same words with their case
(most systems), their text is used instead.
"""

from __future__ import annotations

import ast
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infoextract.loaders.base import FormatError, Problems, read_json, read_text, register
from infoextract.records import Record

__all__ = ["RealSumm", "SummaryJudgment", "read_realsumm", "load_realsumm", "REFERENCE_AUTHOR"]

REFERENCE_AUTHOR = "human"
FIX = (
    "REALSumm's scores.json is {'abs'|'ext': {doc_id: {'ref_summ', 'system_summaries': {system: "
    "{'system_summary', 'scores': {'litepyramid_recall', ...}}}}}}, with SCUs_list.csv and the "
    "annotations/ folder beside it (or given with scus= and annotations=)."
)
SCU_FIX = "SCUs_list.csv has a header row with eventId, questionId, questionText."
ANNOTATION_FIX = ("An annotation CSV has columns Input.eventId, Input.summaryId, Input.qIdList, "
                  "Input.summary_text, Input.statement_<i> and Answer.S<i>Answer (p or n).")
_TAG = re.compile(r"</?t>")
# PTB-style tokenisation artefacts of CNN/DailyMail ("-lrb-" for "(", "#" for the pound sign)
_UNTOKENISE = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"-lrb-", "("), (r"-rrb-", ")"), (r"-lsb-", "["), (r"-rsb-", "]"), (r"``|''", '"'), (r"`", "'"),
    (r"#\s?(?=\d)", "£"), (r"(?<=\w) - (?=\w)", "-"), (r" (?=[.,;:!?%)\]])", ""), (r"(?<=[(\[]) ", ""),
    (r" (?=(?:'s|n't|'re|'ve|'ll|'d|'m)\b)", ""),
)]


def _clean(text: str) -> str:
    """The summary as plain text: ``<t>`` tags removed and tokenisation undone where it is safe."""
    text = " ".join(_TAG.sub(" ", text).split())
    for pattern, repl in _UNTOKENISE:
        text = pattern.sub(repl, text)
    return text


def _letters(text: str) -> str:
    """Letters and digits only: how two copies of one summary are recognised."""
    return re.sub(r"[^a-z0-9]", "", _clean(text).lower())


@dataclass(frozen=True)
class SummaryJudgment:
    """The annotators' present/absent labels of one summary: ``votes[scu]`` has one bool per
    annotator (``True`` = present) for every SCU of the article."""

    votes: dict[int, tuple[bool, ...]]
    text: str  # the summary the annotators saw

    def majority(self) -> dict[int, bool]:
        """SCU -> present by majority (more than half of the annotators)."""
        return {q: sum(v) * 2 > len(v) for q, v in self.votes.items()}

    def lite_pyramid(self) -> float:
        """Share of the article's SCUs present by majority (Shapira et al., 2019)."""
        labels = self.majority()
        return sum(labels.values()) / len(labels) if labels else 0.0


@dataclass
class RealSumm:
    """REALSumm joined: per article (``doc_id``) the reference, the SCUs, every system's summary
    with its human and metric scores, and the annotators' labels."""

    references: dict[str, str]
    summaries: dict[str, dict[str, str]]  # doc id -> system -> text
    scores: dict[str, dict[str, dict[str, float]]]  # doc id -> system -> metric -> value
    event_ids: dict[str, str] = field(default_factory=dict)  # doc id -> cnndm<N>
    scus: dict[str, dict[int, str]] = field(default_factory=dict)  # doc id -> SCU index -> text
    judgments: dict[str, dict[str, SummaryJudgment]] = field(default_factory=dict)  # doc -> system -> labels

    @property
    def systems(self) -> list[str]:
        return sorted({s for by in self.summaries.values() for s in by})

    def lite_pyramid(self, doc_id: str, system: str) -> float:
        """The human score of one summary, as ``scores.json`` gives it."""
        return self.scores[doc_id][system]["litepyramid_recall"]


def read_realsumm(path: str | Path, *, annotations: str | Path | None = None,
                  scus: str | Path | None = None) -> RealSumm:
    """Read ``scores.json`` and, when found, the SCUs and annotations beside it.

    Args:
        path: ``scores.json``.
        annotations: the folder of annotation CSVs (searched recursively); default the
            ``annotations`` folder beside ``path`` when it exists.
        scus: ``SCUs_list.csv``; default the one beside ``path`` when it exists.

    Raises:
        FileNotFoundError: an ``annotations`` or ``scus`` path that was given does not exist.
        FormatError: a file does not match its format (every bad item named).
    """
    path = Path(path)
    data = _read_scores(path)
    annotations = _option_path(annotations, path.parent / "annotations", "annotations", folder=True)
    scus_path = _option_path(scus, path.parent / "SCUs_list.csv", "scus", folder=False)
    if annotations is None:
        return data
    rows = _read_annotations(annotations)
    _join(data, rows, annotations)
    if scus_path is not None:
        by_event = _read_scus(scus_path)
        data.scus = {doc: by_event.get(event, {}) for doc, event in data.event_ids.items()}
    return data


@register("realsumm")
def load_realsumm(path: Path, *, annotations: str | Path | None = None,
                  scus: str | Path | None = None) -> list[Record]:
    """REALSumm as records: per article the reference (``author`` ``"human"``, ``meta["scus"]``)
    and each system's summary (``author`` = ``"<group>/<name>"``; ``meta``: ``litepyramid`` (the
    human score), ``scores`` (the authors' metrics), ``scu_votes`` and ``scu_present`` (each
    annotator's and the majority label per SCU), ``annotated_text`` when it differs)."""
    data = read_realsumm(path, annotations=annotations, scus=scus)
    records: list[Record] = []
    for doc, reference in data.references.items():
        base = {"doc_id": doc}
        if doc in data.event_ids:
            base["event_id"] = data.event_ids[doc]
        scu_list = [{"index": q, "text": t} for q, t in sorted(data.scus.get(doc, {}).items())]
        records.append(Record(doc, reference, author=REFERENCE_AUTHOR, meta={**base, "scus": scu_list}))
        for system, text in sorted(data.summaries[doc].items()):
            meta: dict[str, Any] = {**base, "litepyramid": data.lite_pyramid(doc, system),
                                    "scores": data.scores[doc][system]}
            judged = data.judgments.get(doc, {}).get(system)
            if judged is not None:
                meta["scu_votes"] = {str(q): list(v) for q, v in sorted(judged.votes.items())}
                meta["scu_present"] = {str(q): v for q, v in sorted(judged.majority().items())}
                if _letters(judged.text) != _letters(text):
                    meta["annotated_text"] = judged.text
            records.append(Record(doc, text, author=system, meta=meta))
    return records


# ---------------------------------------------------------------------------------------------


def _option_path(given, default: Path, name: str, *, folder: bool) -> Path | None:
    if given is None:
        ok = default.is_dir() if folder else default.is_file()
        return default if ok else None
    given = Path(given)
    if not (given.is_dir() if folder else given.is_file()):
        what = "folder of annotation CSVs" if folder else "SCUs_list.csv file"
        raise FileNotFoundError(f"option {name!r}: {given} is not a {what}")
    return given


def _read_scores(path: Path) -> RealSumm:
    obj = read_json(path, fix=FIX)
    problems = Problems(path, FIX)
    if not isinstance(obj, dict) or not obj:
        problems.add("", f"expected an object with keys 'abs' and/or 'ext', got {type(obj).__name__}")
        problems.raise_if_any()
    if "questions" in obj or "data" in obj:
        problems.add("", "this looks like a SQuALITY or SQuAD file, not REALSumm's scores.json")
        problems.raise_if_any()
    refs: dict[str, str] = {}
    summaries: dict[str, dict[str, str]] = {}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for group, docs in obj.items():
        if not isinstance(docs, dict):
            problems.add(group, f"expected an object of articles, got {type(docs).__name__}")
            continue
        for doc, item in docs.items():
            where = f"{group}.{doc}"
            ref = problems.require(item, where, "ref_summ", str, "the reference summary")
            systems = problems.require(item, where, "system_summaries", dict, "the system summaries")
            if ref is None or systems is None:
                continue
            refs.setdefault(str(doc), _clean(ref))
            for name, entry in systems.items():
                where_s = f"{where}.system_summaries[{name!r}]"
                text = problems.require(entry, where_s, "system_summary", str, "the summary")
                metrics = problems.require(entry, where_s, "scores", dict, "the metric scores")
                if text is None or metrics is None:
                    continue
                if not isinstance(metrics.get("litepyramid_recall"), (int, float)):
                    problems.add(where_s, "scores lack a number 'litepyramid_recall' (the human score)")
                    continue
                system = f"{group}/{name.removesuffix('.txt')}"
                summaries.setdefault(str(doc), {})[system] = _clean(text)
                scores.setdefault(str(doc), {})[system] = {k: float(v) for k, v in metrics.items()
                                                          if isinstance(v, (int, float))}
    problems.raise_if_any()
    return RealSumm(refs, summaries, scores)


@dataclass
class _Row:
    folder: str  # "abs" or "ext": the annotation folder (a hint only, see the module docstring)
    event: str
    name: str
    text: str
    votes: dict[int, bool]


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    return [(reader.line_num, row) for row in reader]


def _read_annotations(folder: Path) -> list[_Row]:
    files = sorted(folder.rglob("*.csv"))
    if not files:
        raise FormatError(folder, [("", "no .csv files in this folder")], ANNOTATION_FIX)
    rows: list[_Row] = []
    for path in files:
        problems = Problems(path, ANNOTATION_FIX)
        kind = "ext" if "ext" in path.parent.name else "abs"
        for line, row in _read_csv(path):
            where = f"line {line}"
            missing = [c for c in ("Input.eventId", "Input.summaryId", "Input.qIdList", "Input.summary_text") if c not in row]
            if missing:
                problems.add(where, f"missing column(s) {', '.join(missing)}")
                break
            try:
                qids = [int(q) for q in ast.literal_eval(row["Input.qIdList"])]
            except (ValueError, SyntaxError, TypeError):
                problems.add(where, f"Input.qIdList must be a list of SCU ids, got {row['Input.qIdList'][:40]!r}")
                continue
            votes = {}
            for i, q in enumerate(qids, start=1):
                if row.get(f"Input.statement_{i}", "BLANK") == "BLANK":
                    continue
                answer = (row.get(f"Answer.S{i}Answer") or "").strip().lower()
                if answer not in ("p", "n"):
                    problems.add(where, f"Answer.S{i}Answer must be 'p' or 'n', got {answer!r}")
                    continue
                votes[q] = answer == "p"
            rows.append(_Row(kind, row["Input.eventId"], row["Input.summaryId"], row["Input.summary_text"], votes))
        problems.raise_if_any()
    return rows


def _read_scus(path: Path) -> dict[str, dict[int, str]]:
    problems = Problems(path, SCU_FIX)
    out: dict[str, dict[int, str]] = {}
    for line, row in _read_csv(path):
        if not {"eventId", "questionId", "questionText"} <= set(row):
            problems.add(f"line {line}", "missing column eventId, questionId or questionText")
            break
        if not row["questionId"].strip().isdigit():
            problems.add(f"line {line}", f"questionId must be an integer, got {row['questionId']!r}")
            continue
        out.setdefault(row["eventId"], {})[int(row["questionId"])] = row["questionText"].strip()
    problems.raise_if_any()
    return out


def _join(data: RealSumm, rows: list[_Row], folder: Path) -> None:
    """Map annotation articles to score articles and annotation files to systems, by text."""
    by_text: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (name, letters) -> [(doc, system)]
    for doc, systems in data.summaries.items():
        for system, text in systems.items():
            by_text.setdefault((system.split("/", 1)[1], _letters(text)), []).append((doc, system))
    votes_for_doc: dict[str, Counter] = {}
    for row in rows:
        for doc, _ in by_text.get((row.name, _letters(row.text)), []):
            votes_for_doc.setdefault(row.event, Counter())[doc] += 1
    data.event_ids = {}
    for event, counts in votes_for_doc.items():
        data.event_ids.setdefault(counts.most_common(1)[0][0], event)
    doc_of = {event: doc for doc, event in data.event_ids.items()}
    unmatched = sorted({r.event for r in rows} - set(doc_of))
    if unmatched:
        raise FormatError(folder, [("", f"article(s) {', '.join(unmatched[:5])} match no summary of scores.json")],
                          "Give the annotations of the same REALSumm release as scores.json.")
    grouped: dict[tuple[str, str], list[_Row]] = {}
    for row in rows:
        doc = doc_of[row.event]
        systems = [s for s in data.summaries[doc] if s.split("/", 1)[1] == row.name]
        same_text = [s for s in systems if _letters(data.summaries[doc][s]) == _letters(row.text)]
        # the group whose summary the annotators saw; when several (identical texts) or none
        # (abs/bart_out) match, the group of the annotation folder
        pick = same_text[0] if len(same_text) == 1 else f"{row.folder}/{row.name}"
        if pick not in data.summaries[doc]:
            pick = (same_text or systems or [None])[0]
        if pick is not None:
            grouped.setdefault((doc, pick), []).append(row)
    for (doc, system), group in grouped.items():
        votes: dict[int, list[bool]] = {}
        for row in group:
            for q, v in row.votes.items():
                votes.setdefault(q, []).append(v)
        data.judgments.setdefault(doc, {})[system] = SummaryJudgment(
            {q: tuple(v) for q, v in sorted(votes.items())}, _clean(group[0].text))
    _recase(data, rows)


def _recase(data: RealSumm, rows: list[_Row]) -> None:
    """Use the annotators' cased text where it has the same letters as a lower-cased summary."""
    cased: dict[str, str] = {}
    for row in rows:
        if row.text != row.text.lower():
            cased.setdefault(_letters(row.text), _clean(row.text))
    for systems in data.summaries.values():
        for system, text in systems.items():
            if text == text.lower():
                systems[system] = cased.get(_letters(text), text)
