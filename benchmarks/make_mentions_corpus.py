"""Write the mentions corpus: prompts whose reference answers mention each fact at a designed rate.

    python benchmarks/make_mentions_corpus.py            # writes datasets/mentions/*.jsonl
    python benchmarks/make_mentions_corpus.py --check    # then measures how esfit sees the design

Every prompt is an invented passage (a lighthouse, a canal, a beetle, an expedition...), a question
and 6-8 simulated reference answers. Each prompt has 5-8 *designed facts*, each with a designed
mention rate (one core fact in nearly every answer, a few in about half, a tail in one or two, in
varied profiles), and 1-3 passage facts that no answer mentions. Reference k states exactly the
facts the design gives it, each in one of several paraphrases, combined into one to three
sentences, so the distribution "which facts each answer mentions" is known by construction
(``design.jsonl``). The texts come from templates written for this project (``TOPICS``, at the
end of this file); the names are made from syllables, and real places are settings only.

The output is a pure function of ``SEED``: running the script again rewrites the same bytes
(tests/test_mentions_corpus.py checks it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "datasets" / "mentions"
SEED = 20261110
SPLITS = ("train", "validation", "heldout", "test")
PROMPTS_PER_TOPIC = 12
VALIDATION_PER_TOPIC = 2
# held-out prompts per topic: 3 for the first ten topics, 2 for the other five, so 15 topics of 12
# prompts give 110 train, 30 validation and 40 held-out prompts
HELDOUT_PER_TOPIC = (3,) * 10 + (2,) * 5
# the test split: 4 more prompts per topic (60), added after the benchmark's ES settings had been
# chosen and the held-out prompts had been looked at (README, "Set-level training"); they are
# written after the 180 prompts above, so those stay byte for byte what they were
TEST_PER_TOPIC = 4
N_REFERENCES = (6, 7, 8)
MIN_WORDS, MAX_WORDS = 7, 45  # words per reference answer ("The Holmwick Lighthouse is 38 metres tall.")
MAX_FACTS_PER_REFERENCE = 5

# Mention-rate profiles: (number of facts at this level, lowest rate, highest rate), listed from the
# core down; the last level takes the remaining facts. A designed fact's count in the references is
# round_half_up(rate * n_references), never below 1.
PROFILES: dict[str, tuple[tuple[int, float, float], ...]] = {
    "peaked": ((1, 0.85, 1.0), (2, 0.40, 0.60), (99, 0.12, 0.30)),
    "two_core": ((2, 0.70, 0.90), (2, 0.35, 0.55), (99, 0.12, 0.30)),
    "flat": ((1, 0.55, 0.70), (99, 0.28, 0.55)),
    "long_tail": ((1, 0.85, 1.0), (1, 0.40, 0.55), (99, 0.12, 0.25)),
}


def realised_count(rate: float, n_references: int) -> int:
    """The number of references that state a fact of designed ``rate`` (half rounds up)."""
    return max(1, int(rate * n_references + 0.5))


# ---------------------------------------------------------------------------- the sentence writer


@dataclass
class Item:
    """One piece of a reference: the facts it states, its form (vp, s, pre) and its template."""

    facts: tuple[str, ...]
    form: str
    template: str
    index: int  # which of the fact's (or joint pair's) forms, for the instrument check


_SLOT = re.compile(r"\{(\w+)\}")
_MAIN = re.compile(r"\{(S|its|obj)\}")
_PARTICIPLE = re.compile(r"^(\w+ed|built|first|lit|led|known|made|sold|given|taken|bought|run|found|shut)\b")


def _pick(value, rng: random.Random | None):
    """A slot's surface form: the passage form (first) for rng None, else a random variant that
    favours the passage form (people often reuse the passage's wording)."""
    if isinstance(value, str):
        return value
    if rng is None or len(value) == 1:
        return value[0]
    weights = [2.0] + [1.0] * (len(value) - 1)
    return rng.choices(value, weights)[0]


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class Writer:
    """Fills templates for one text, tracking whether the main entity has been named yet.

    ``{S}`` is the subject (full or short name at first mention, then mostly the pronoun), ``{its}``
    the possessive, ``{obj}`` the object; other slots come from the prompt's values.
    """

    def __init__(self, values: dict, rng: random.Random | None):
        self.values = values
        self.rng = rng
        self.introduced = False
        self.last = ""
        self.stale = False
        self.pron = values["pron"][0] if rng is None else rng.choice(values["pron"])

    def _chance(self, p: float) -> bool:
        return self.rng is not None and self.rng.random() < p

    def _name(self) -> str:
        self.introduced = True
        return self.values["short"] if self._chance(0.35) else self.values["Name"]

    def subject(self) -> str:
        if not self.introduced or self.stale:
            # first mention, or right after a clause about something else ("X's Mill is now a
            # museum"), where a pronoun would point at the wrong thing
            self.last = self._name() if not self.introduced else self.values["short"]
        elif self.rng is None or self.rng.random() < 0.7 or self.last != self.pron[0]:
            self.last = self.pron[0]  # a noun again only right after a pronoun, as writers vary it
        else:
            alts = self.values.get("alt", [])
            self.last = self.rng.choice(alts) if alts and self._chance(0.3) else self.values["short"]
        self.stale = False
        return self.last

    def its(self) -> str:
        if self.introduced and not self.stale:
            return self.pron[1]
        self.stale = False
        return (self._name() if not self.introduced else self.values["short"]) + "'s"

    def obj(self) -> str:
        if self.introduced and not self.stale:
            return self.pron[2]
        self.stale = False
        return self._name() if not self.introduced else self.values["short"]

    def fill(self, template: str, *, clause: bool = False) -> str:
        """The template filled in; ``clause`` for a clause of its own, which, when it does not
        mention the main entity, makes the next mention a noun again."""
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key == "S":
                return self.subject()
            if key == "its":
                return self.its()
            if key == "obj":
                return self.obj()
            if key not in self.values:
                raise KeyError(f"template {template!r} uses slot {key!r}, which the topic does not define")
            return _pick(self.values[key], self.rng)

        text = _SLOT.sub(sub, template)
        if clause and not _MAIN.search(template):
            self.stale = self.introduced  # this clause was about something else
        return text


def _join_vps(vps: list[str], rng: random.Random) -> str:
    out = [vps[0]]
    for prev, vp in itertools.pairwise(vps):
        # "was designed by X and first lit in 1889": drop a repeated auxiliary before a participle
        if vp.startswith("was ") and prev.startswith("was ") and _PARTICIPLE.match(vp[4:]) and rng.random() < 0.6:
            vp = vp[4:]
        out.append(vp)
    if len(out) == 1:
        return out[0]
    return ", ".join(out[:-1]) + " and " + out[-1]


def _sentence(items: list[Item], w: Writer, rng: random.Random) -> str:
    """One sentence from items in order: runs of vps share the subject (a pre phrase leads its run),
    other clauses stand alone; clauses are joined with ', and' or ';'."""
    clauses: list[str] = []
    run: list[Item] = []
    pre: Item | None = None

    def flush() -> None:
        nonlocal pre
        if not run:
            return
        # a fronted phrase is written capitalised; inside a sentence ("...; opened in 1880, it...") it is not
        lead = w.fill(pre.template[:1].lower() + pre.template[1:]) + " " if pre else ""
        subject = w.subject()
        clauses.append(lead + subject + " " + _join_vps([w.fill(i.template) for i in run], rng))
        run.clear()
        pre = None

    for item in items:
        if item.form == "pre":
            flush()
            pre = item
        elif item.form == "vp":
            run.append(item)
        else:
            flush()
            clauses.append(w.fill(item.template, clause=True))
    flush()
    if len(clauses) == 1:
        text = clauses[0]
    elif len(clauses) == 2:
        text = clauses[0] + ("; " if ", and " in clauses[0] else rng.choice([", and ", ", and ", "; "])) + clauses[1]
    else:
        text = clauses[0] + "; " + ", ".join(clauses[1:-1]) + ", and " + clauses[-1]
    return capitalise(text) + "."


def _choose_forms(group: list[tuple[str, ...]], topic: Topic, rng: random.Random) -> list[Item] | None:
    """Pick a form per fact (or joint pair) of one sentence group; None when the picks do not fit
    (a pre phrase needs a vp to lead, and one sentence takes at most one)."""
    items = []
    for facts in group:
        forms = topic.joint[facts] if len(facts) > 1 else topic.fact(facts[0]).forms
        index = rng.randrange(len(forms))
        form, template = forms[index].split(":", 1)
        items.append(Item(facts, form, template, index))
    pres = [i for i in items if i.form == "pre"]
    if len(pres) > 1 or (pres and not any(i.form == "vp" for i in items)):
        return None
    if pres:  # the pre phrase opens the sentence, before its first vp
        items.remove(pres[0])
        if items[0].form != "vp":
            return None
        items.insert(0, pres[0])
    return items


def _groups(units: list[tuple[str, ...]], rng: random.Random) -> list[list[tuple[str, ...]]]:
    """Split the ordered units of one reference into one to three sentences."""
    n = len(units)
    if n == 1:
        k = 1
    elif n == 2:
        k = rng.choices([1, 2], [0.6, 0.4])[0]
    elif n == 3:
        k = rng.choices([1, 2, 3], [0.3, 0.55, 0.15])[0]
    else:
        k = rng.choices([2, 3], [0.55, 0.45])[0]
    cuts = sorted(rng.sample(range(1, n), k - 1))
    bounds = [0, *cuts, n]
    groups = [units[a:b] for a, b in itertools.pairwise(bounds)]
    return groups if all(len(g) <= 3 for g in groups) else _groups(units, rng)


# openings that say nothing about the topic, as people start answers about a text they were given
LEADS = ("According to the passage, ", "The passage says that ", "We are told that ", "From the passage, ")


def _decapitalise(text: str, values: dict) -> str:
    """Lower-case the first letter after a lead-in, unless the first word is a name."""
    first = text.split()[0]
    names = {t for v in values.values() for s in ([v] if isinstance(v, str) else v) if isinstance(s, str)
             for t in s.split() if t[:1].isupper()}
    return text if first in names else text[:1].lower() + text[1:]


_ABBREVIATION_END = re.compile(r"\d (m|km|kg|cm|mm)[.;]")


def _repeats(items: list[Item]) -> bool:
    """Two pieces opening with the same words ("set out with 18 men ... set out from Hobart"): a
    writer would vary one of them."""
    openings = [" ".join(i.template.removeprefix("was ").split()[:2]) for i in items]
    return len(set(openings)) < len(openings)


def write_reference(facts: list[str], topic: Topic, values: dict, rng: random.Random) -> tuple[str, list[Item]]:
    """A reference answer stating exactly ``facts`` (ids, in the order given) and the items used."""
    units: list[tuple[str, ...]] = []
    rest = list(facts)
    while rest:
        f = rest.pop(0)
        partner = next((g for g in rest if (f, g) in topic.joint or (g, f) in topic.joint), None)
        if partner is not None and rng.random() < 0.8:
            rest.remove(partner)
            units.append((f, partner) if (f, partner) in topic.joint else (partner, f))
        else:
            units.append((f,))
    lead = rng.choice(LEADS) if rng.random() < 0.05 else ""
    for attempt in range(200):
        w = Writer(values, rng)
        sentences, used = [], []
        for group in _groups(units, rng):
            items = None
            while items is None:
                items = _choose_forms(group, topic, rng)
            sentences.append(_sentence(items, w, rng))
            used.extend(items)
        text = " ".join(sentences)
        # "24 m." at a sentence end extracts the unit as "m." (no match with "24 metres"): rewrite
        if _repeats(used) or (lead and used[0].form == "pre") or _ABBREVIATION_END.search(text):
            continue
        if attempt >= 30 and not lead and len(text.split()) < MIN_WORDS:
            lead = rng.choice(LEADS)  # a one-fact answer as short as "Kelmere was founded in 1742."
        if lead:
            text = lead + _decapitalise(text, values)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            return text, used
    raise RuntimeError(f"{topic.name}: no reference of {MIN_WORDS}-{MAX_WORDS} words for facts {facts}")


# ---------------------------------------------------------------------------- the design


def design_rates(fact_ids: list[str], core: str, profile: str, rng: random.Random) -> dict[str, float]:
    """Designed mention rates: ``core`` gets the top level, the others are shuffled into the rest."""
    others = [f for f in fact_ids if f != core]
    rng.shuffle(others)
    order = [core, *others]
    rates: dict[str, float] = {}
    for size, lo, hi in PROFILES[profile]:
        for f in order[len(rates):len(rates) + size]:
            rates[f] = round(rng.uniform(lo, hi), 2)
    return rates


def assign(counts: list[int], n: int, rng: random.Random) -> list[list[int]]:
    """Which facts each of ``n`` references states, so fact j is in exactly ``counts[j]`` of them,
    every reference states at least one fact and none more than MAX_FACTS_PER_REFERENCE.

    References differ in how much they say (a drawn propensity per reference, as some people write
    one fact and others four); a reference already holding many facts is less likely to get more.
    """
    if sum(counts) > MAX_FACTS_PER_REFERENCE * n or any(not 1 <= c <= n for c in counts):
        raise ValueError(f"counts {counts} do not fit {n} references of at most {MAX_FACTS_PER_REFERENCE} facts")
    propensity = [rng.uniform(0.5, 1.6) for _ in range(n)]
    refs: list[set[int]] = [set() for _ in range(n)]
    for j in sorted(range(len(counts)), key=lambda j: (-counts[j], j)):
        pool = list(range(n))
        for _ in range(counts[j]):
            weights = [0.0 if len(refs[k]) >= MAX_FACTS_PER_REFERENCE else propensity[k] / (1 + len(refs[k])) ** 1.5
                       for k in pool]
            if not any(weights):
                weights = [1.0] * len(pool)
            k = rng.choices(pool, weights)[0]
            pool.remove(k)
            refs[k].add(j)
    # a reference with no fact takes one from a reference with several (counts are unchanged)
    for empty in [k for k in range(n) if not refs[k]]:
        donors = [(k, j) for k in range(n) if len(refs[k]) >= 2 for j in sorted(refs[k])]
        k, j = rng.choice(donors)
        refs[k].remove(j)
        refs[empty].add(j)
    over = [k for k in range(n) if len(refs[k]) > MAX_FACTS_PER_REFERENCE]
    if over:
        raise RuntimeError(f"assignment left references {over} with more than {MAX_FACTS_PER_REFERENCE} facts")
    return [sorted(r) for r in refs]


@dataclass
class Prompt:
    prompt_id: str
    topic: str
    split: str
    profile: str
    question: str
    source: str
    facts: list[dict]  # design entries, highest rate first
    unmentioned: list[dict]
    references: list[str]
    reference_facts: list[list[str]]
    reference_items: list[list[Item]]


def _paraphrases(topic: Topic, fact_id: str, values: dict) -> list[str]:
    """Every phrasing a reference may use for one fact, rendered with the short name as subject."""
    out: list[str] = []
    for form in topic.fact(fact_id).forms:
        kind, template = form.split(":", 1)
        slots = [s for s in dict.fromkeys(_SLOT.findall(template)) if s not in ("S", "its", "obj")]
        choices = [values[s] if isinstance(values[s], list) else [values[s]] for s in slots]
        for combo in itertools.product(*choices):
            fixed = dict(values, **dict(zip(slots, combo)))
            w = Writer(fixed, None)
            w.introduced = True
            body = w.fill(template)
            if kind == "vp":
                body = values["short"] + " " + body
            elif kind == "pre":
                body = body + " ..."
            text = capitalise(body) + ("" if kind == "pre" else ".")
            if text not in out:
                out.append(text)
    return out


def make_prompt(topic: Topic, index: int, split: str, profile: str, names, seed: int) -> Prompt:
    rng = random.Random(f"{seed}/{topic.name}/{index}")
    values = topic.make(rng, names)
    fact_ids = [f.id for f in topic.facts]
    question_template, core_candidates = rng.choice(topic.questions)
    core = rng.choice(core_candidates or fact_ids)
    n_unmentioned = rng.choice([k for k in (1, 2, 3) if 5 <= len(fact_ids) - k <= 8])
    unmentioned = rng.sample(sorted(set(fact_ids) - {core}), n_unmentioned)
    designed = [f for f in fact_ids if f not in unmentioned]
    n_refs = rng.choice(N_REFERENCES)
    while True:
        rates = design_rates(designed, core, profile, rng)
        counts = {f: realised_count(r, n_refs) for f, r in rates.items()}
        if sum(counts.values()) <= 4 * n_refs:  # keeps answers short enough to read naturally
            break
    order = sorted(designed, key=lambda f: (-rates[f], fact_ids.index(f)))
    assigned = assign([counts[f] for f in order], n_refs, rng)
    references, reference_facts, reference_items = [], [], []
    for js in assigned:
        ids = [order[j] for j in js]
        spoken = list(ids)
        rng.shuffle(spoken)
        if core in spoken and rng.random() < 0.5:  # many answers lead with the fact asked about most
            spoken.remove(core)
            spoken.insert(0, core)
        text, items = write_reference(spoken, topic, values, rng)
        for _ in range(50):  # two people may say the same thing, but not in the same words
            if text not in references:
                break
            text, items = write_reference(spoken, topic, values, rng)
        references.append(text)
        reference_facts.append(ids)
        reference_items.append(items)
    passage = sentence_case(Writer(values, None).fill(rng.choice(topic.passages)))
    question = sentence_case(Writer(values, None).fill(question_template))

    def entry(f: str) -> dict:
        return {"id": f, "kind": topic.fact(f).kind,
                "canonical": capitalise(Writer(values, None).fill(topic.fact(f).canonical))}

    facts = [dict(entry(f), paraphrases=_paraphrases(topic, f, values), designed_rate=rates[f],
                  realised_count=counts[f], n_references=n_refs) for f in order]
    return Prompt(f"mentions-{topic.name}-{index:02d}", topic.name, split, profile, question, passage, facts,
                  [entry(f) for f in fact_ids if f in unmentioned], references, reference_facts, reference_items)


def _profiles(topic_index: int, n: int, rng: random.Random) -> list[str]:
    """The rate profiles of ``n`` prompts of one topic: the profiles in turn from the topic's own
    offset (so every topic uses each about equally), in ``rng``'s order."""
    profiles = [list(PROFILES)[(topic_index + i) % len(PROFILES)] for i in range(n)]
    rng.shuffle(profiles)
    return profiles


def build_corpus(seed: int = SEED) -> list[Prompt]:
    """Every prompt of the corpus, in file order (split, then prompt id)."""
    names = Names(random.Random(f"{seed}/names"))
    prompts = []
    for t, topic in enumerate(TOPICS):
        rng = random.Random(f"{seed}/{topic.name}/split")
        order = list(range(1, PROMPTS_PER_TOPIC + 1))
        rng.shuffle(order)
        n_val, n_held = VALIDATION_PER_TOPIC, HELDOUT_PER_TOPIC[t]
        split_of = {i: "validation" for i in order[:n_val]}
        split_of.update({i: "heldout" for i in order[n_val:n_val + n_held]})
        profiles = _profiles(t, PROMPTS_PER_TOPIC, rng)
        for i in range(1, PROMPTS_PER_TOPIC + 1):
            prompts.append(make_prompt(topic, i, split_of.get(i, "train"), profiles[i - 1], names, seed))
    for t, topic in enumerate(TOPICS):
        profiles = _profiles(t, TEST_PER_TOPIC, random.Random(f"{seed}/{topic.name}/test-split"))
        for j, profile in enumerate(profiles):
            prompts.append(make_prompt(topic, PROMPTS_PER_TOPIC + 1 + j, "test", profile, names, seed))
    prompts.sort(key=lambda p: (SPLITS.index(p.split), p.prompt_id))
    return prompts


def render_files(prompts: list[Prompt]) -> dict[str, str]:
    """File name -> content, the exact bytes the corpus files hold."""
    files = {f"{s}.jsonl": [] for s in SPLITS}
    design = []
    for p in prompts:
        for text, ids in zip(p.references, p.reference_facts):
            record = {"prompt_id": p.prompt_id, "text": text, "author": "human", "prompt": p.question,
                      "source": p.source, "meta": {"facts": ids, "split": p.split}}
            files[f"{p.split}.jsonl"].append(json.dumps(record, ensure_ascii=False))
        design.append(json.dumps({"prompt_id": p.prompt_id, "split": p.split, "topic": p.topic,
                                  "profile": p.profile, "facts": p.facts, "unmentioned": p.unmentioned},
                                 ensure_ascii=False))
    files["design.jsonl"] = design
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}


def write_corpus(out_dir: Path = OUT_DIR, seed: int = SEED) -> list[Prompt]:
    prompts = build_corpus(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in render_files(prompts).items():
        (out_dir / name).write_text(content, encoding="utf-8")
    return prompts


def summary(prompts: list[Prompt]) -> str:
    refs = [r for p in prompts for r in p.references]
    words = [len(r.split()) for r in refs]
    passage_words = [len(p.source.split()) for p in prompts]
    lines = [f"{len(prompts)} prompts, {len(refs)} references "
             f"({min(words)}-{max(words)} words, mean {sum(words) / len(words):.1f}); "
             f"passages {min(passage_words)}-{max(passage_words)} words"]
    for s in SPLITS:
        ps = [p for p in prompts if p.split == s]
        lines.append(f"  {s:<10} {len(ps):>3} prompts {sum(len(p.references) for p in ps):>5} references")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- names, numbers, dates

FEMALE = ("Ilse", "Marta", "Edith", "Clara", "Hanna", "Rosa", "Ada", "Greta", "Lena", "Nora", "Ruth", "Vera",
          "Alma", "Ingrid", "Mabel", "Olive", "Freya", "Iris", "Selma", "Dora", "Elsa", "Maud", "Tilda", "Wenna")
MALE = ("Tomas", "Henrik", "Walter", "Emil", "Arthur", "Felix", "Jonas", "Magnus", "Albert", "Victor", "Anton",
        "Hugo", "Ewan", "Silas", "Oskar", "Rupert", "Cyril", "Bram", "Leopold", "Conrad", "Piet", "Aled", "Ivo")
# real cities and ports, used only as settings (where an invented firm was based, where a ship sailed)
CITIES = ("Leeds", "Bristol", "Lyon", "Bergen", "Rotterdam", "Gdansk", "Porto", "Trieste", "Hamburg", "Aberdeen",
          "Cork", "Antwerp", "Genoa", "Bordeaux", "Glasgow", "Liverpool", "Belfast", "Gothenburg", "Riga",
          "Copenhagen", "Edinburgh", "Nantes", "Bremen", "Turku", "Utrecht")
PORTS = ("Hobart", "Dunedin", "Tromso", "Reykjavik", "Aberdeen", "Valparaiso", "Punta Arenas", "Bergen", "Halifax",
         "Stanley", "Lerwick", "Ushuaia")
_HEAD = ("Ost", "Kel", "Mor", "Tal", "Hask", "Wen", "Ard", "Fen", "Lor", "Cal", "Dun", "Gar", "Hol", "Lin", "Mar",
         "Ner", "Pel", "Rav", "Sten", "Thorn", "Wick", "Yar", "Bel", "Cor", "Ell", "Grim", "Hal", "Ket", "Lud", "Mal",
         "Nor", "Pen", "Quen", "Rud", "Tor", "Ulm", "Vel", "Ash", "Brack", "Crom", "Dral", "Esk", "Fald", "Glen",
         "Hart", "Ing", "Kirr", "Lang", "Mist", "Oak", "Rook", "Sand", "Tarn", "Whin", "Byr", "Carr", "Hask")
_PLACE_TAIL = ("moor", "ley", "wick", "ford", "by", "ton", "stead", "holm", "mere", "dale", "thorpe", "well",
               "gate", "combe", "haven", "ness", "bury", "field", "worth", "hope", "shaw", "burn")
_SURNAME_TAIL = ("ett", "ing", "wood", "ridge", "low", "son", "er", "ick", "man", "ham", "ard", "ock", "ley", "en")
_SHORT_TAIL = ("a", "el", "en", "is", "o", "ra", "y", "an", "ey", "ith")
_LATIN_HEAD = ("Cor", "Hal", "Ves", "Mir", "Ser", "Or", "Tam", "Ly", "Ar", "Cal", "Ner", "Sol", "Vir", "Del", "Fal",
               "Gal", "Ist", "Lum", "Mar", "Pel", "Ros", "Tel", "Ul", "Zan", "Bel", "Cas", "Eld", "Lan")
_LATIN_TAIL = ("vina", "cyon", "essa", "enne", "ia", "ora", "ita", "ella", "ina", "ara", "issa", "ova", "anta")
# kept out: the invented names of the older demo corpus (the corpora share none), English words the
# syllables happen to spell, and well-known real towns they happen to spell
AVOID = frozenset({
    "Brenmoor", "Varra", "Selwick", "Ossel", "Kestrel", "Harwell", "Lindenfeld", "Whitlock",
    "Penis", "Mister", "Raven", "Hollow", "Mallow", "Callow", "Thorny", "Bracken", "Sandman", "Caly", "Gara",
    "Ludlow", "Cromer", "Hartford", "Langley", "Oakley", "Ashley", "Halstead", "Thornbury", "Norbury", "Malham",
    "Sandwell", "Wicken", "Ashford", "Halford", "Stanley", "Norman", "Ellis", "Asher", "Marley", "Morley",
})
_AWKWARD = re.compile(r"ck[io]ck|shsh|(.)\1\1")  # Brackick, Ashshaw, Ellley

IT = ("it", "its", "it")
SHE = ("she", "her", "her")
HE = ("he", "his", "him")


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    female: bool

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def pron(self) -> tuple[str, str, str]:
        return SHE if self.female else HE


class Names:
    """Invented names from syllables, each used once in the whole corpus."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set(AVOID)

    def _unique(self, make: Callable[[], str]) -> str:
        for _ in range(10_000):
            name = make()
            if name not in self.used and not _AWKWARD.search(name.lower()):
                self.used.add(name)
                return name
        raise RuntimeError("ran out of invented names; add syllables")

    def place(self) -> str:  # Dunmere, Holmwick
        return self._unique(lambda: self.rng.choice(_HEAD) + self.rng.choice(_PLACE_TAIL))

    def short(self) -> str:  # Tarna, Kelith: rivers, islands, mountains
        return self._unique(lambda: self.rng.choice(_HEAD) + self.rng.choice(_SHORT_TAIL))

    def surname(self) -> str:  # Fenwood, Halett
        return self._unique(lambda: self.rng.choice(_HEAD) + self.rng.choice(_SURNAME_TAIL))

    def latin(self) -> str:  # Corvina, Halcyon: ships, genera
        return self._unique(lambda: self.rng.choice(_LATIN_HEAD) + self.rng.choice(_LATIN_TAIL))

    def person(self) -> Person:
        female = self.rng.random() < 0.5
        return Person(self.rng.choice(FEMALE if female else MALE), self.surname(), female)


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str | None:
    """The number in words where people would write it so (14, 38, 300, 1,200, 20,000), else None."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        return f"{_ONES[n // 100]} hundred" if n % 100 == 0 else None
    if 1100 <= n < 2000 and n % 100 == 0:
        return f"{_ONES[n // 100]} hundred"  # twelve hundred
    if n % 1000 == 0 and n < 100_000:
        return f"{number_words(n // 1000)} thousand"
    return None


def exact(n: int, *, words: bool = True) -> list[str]:
    """Surface forms of an exact count, the passage form first: 1,200 / 1200 / twelve hundred."""
    out = [f"{n:,}"]
    if 1000 <= n < 10_000:  # "1200" is common, "20100" is not
        out.append(str(n))
    w = number_words(n)
    if words and w and "-" not in w:  # "twenty-three years" extracts as "20 3 year": left out
        out.append(w)
    return out


def about(n: int) -> list[str]:
    """Surface forms of a number the passage gives as approximate (every form stays approximate)."""
    out = [f"about {n:,}", f"around {n:,}", f"roughly {n:,}", f"some {n:,}"]
    w = number_words(n)
    if w and "-" not in w:
        out.append(f"about {w}")
    return out


def spelled(n: int) -> list[str]:
    """A small count the passage spells out (four years, two men): references spell it too."""
    return [number_words(n)]


def with_unit(forms: list[str], unit: str, short: str | None = None) -> list[str]:
    out = [f"{f} {unit}" for f in forms]
    if short:
        out.insert(1, f"{forms[0].replace(',', '')} {short}")
    return out


def money(n: int) -> list[str]:
    return [f"£{n:,}", f"{n:,} pounds"]


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


@dataclass(frozen=True)
class Day:
    d: int
    m: int
    y: int

    @property
    def full(self) -> str:
        return f"{self.d} {MONTHS[self.m - 1]} {self.y}"

    @property
    def month(self) -> str:
        return f"{MONTHS[self.m - 1]} {self.y}"

    def on(self) -> list[str]:
        """Forms with their preposition: on 3 March 1889 / in March 1889 / in 1889 / on March 3, 1889."""
        return [f"on {self.full}", f"in {self.month}", f"in {self.y}", f"on {MONTHS[self.m - 1]} {self.d}, {self.y}"]


def day(rng: random.Random, lo: int, hi: int) -> Day:
    return Day(rng.randint(1, 28), rng.randint(1, 12), rng.randint(lo, hi))


def sentence_case(text: str) -> str:
    """Capitalise the first letter of every sentence (slots such as 'the X Bridge' open sentences)."""
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


# ---------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class FactTemplate:
    """A fact slot of a topic: its kind, its canonical sentence and the forms a reference may use.

    A form is ``"vp:<predicate>"`` (shares the sentence subject), ``"s:<clause>"`` (a clause of its
    own) or ``"pre:<phrase>,"`` (a fronted phrase leading a vp run).
    """

    id: str
    kind: str
    canonical: str
    forms: tuple[str, ...]


def F(id: str, kind: str, canonical: str, *forms: str) -> FactTemplate:
    return FactTemplate(id, kind, canonical, forms)


@dataclass(frozen=True)
class Topic:
    """One kind of passage: how to draw its values, its questions (with the facts that may be the
    core), its passages (every one states every fact), its facts and forms stating two facts at once."""

    name: str
    make: Callable[[random.Random, Names], dict]
    questions: tuple[tuple[str, tuple[str, ...]], ...]
    passages: tuple[str, ...]
    facts: tuple[FactTemplate, ...]
    joint: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def fact(self, fact_id: str) -> FactTemplate:
        return next(f for f in self.facts if f.id == fact_id)


def _lighthouse(r: random.Random, nm: Names) -> dict:
    designer, keeper = nm.person(), nm.person()
    lit = day(r, 1842, 1904)
    height, reach, cost = r.randint(21, 49), r.randint(12, 28), r.randint(6, 29) * 1000
    return dict(
        Name=f"the {nm.place()} Lighthouse", short="the lighthouse", alt=["the tower"], pron=[IT],
        island=nm.short(), quarry=nm.place(), keeper=keeper.full,
        designer=designer.full, designer_v=[f"the engineer {designer.full}", designer.full],
        lit=lit.full, lit_on=lit.on(), auto=str(lit.y + r.randint(62, 94)),
        height=f"{height} metres", height_v=with_unit(exact(height), "metres", "m"),
        reach=f"{reach} nautical miles", reach_v=with_unit(exact(reach), "nautical miles"),
        cost=money(cost)[0], cost_v=money(cost),
    )


LIGHTHOUSE = Topic(
    "lighthouse", _lighthouse,
    (("What is known about {Name}?", ()), ("Describe {Name} and its history.", ()),
     ("What can you tell me about {Name}?", ())),
    ("{Name} stands on a headland on the northern coast of the island of {island}. Designed by the engineer "
     "{designer}, it was built of granite from the {quarry} quarry at a cost of {cost} and first lit on {lit}. "
     "The tower is {height} tall, and its light could be seen {reach} out to sea. It was automated in {auto}; "
     "its last keeper was {keeper}.",
     "On the northern coast of the island of {island}, {Name} was first lit on {lit}. The engineer {designer} "
     "designed it, and it was built for {cost} with granite from the {quarry} quarry. Its tower is {height} tall "
     "and its light reached {reach} out to sea. The light was automated in {auto}, and {keeper} was its last "
     "keeper."),
    (F("island", "entity", "{Name} stands on the island of {island}.",
       "vp:stands on the island of {island}", "vp:is on the northern coast of {island}",
       "vp:stands on a headland on {island}"),
     F("designer", "entity", "{Name} was designed by {designer}.",
       "vp:was designed by {designer_v}", "vp:was the work of {designer_v}", "s:{designer_v} designed {obj}",
       "pre:Designed by {designer_v},"),
     F("quarry", "entity", "{Name} was built of granite from the {quarry} quarry.",
       "vp:was built of granite from the {quarry} quarry", "vp:was built with granite from {quarry}",
       "s:{its} granite came from the {quarry} quarry"),
     F("cost", "quantity", "{Name} cost {cost} to build.",
       "vp:cost {cost_v} to build", "vp:was built for {cost_v}", "s:building {obj} cost {cost_v}"),
     F("lit", "date", "{Name} was first lit on {lit}.",
       "vp:was first lit {lit_on}", "vp:first shone {lit_on}", "pre:First lit {lit_on},",
       "s:{its} lamp was lit for the first time {lit_on}"),
     F("height", "quantity", "{Name} is {height} tall.",
       "vp:is {height_v} tall", "vp:stands {height_v} high", "s:the tower is {height_v} tall",
       "s:{its} tower rises {height_v}"),
     F("reach", "quantity", "The light of {Name} reached {reach} out to sea.",
       "s:{its} light could be seen {reach_v} out to sea", "s:{its} beam reached {reach_v}",
       "vp:could be seen {reach_v} away"),
     F("auto", "date", "{Name} was automated in {auto}.",
       "vp:was automated in {auto}", "s:{its} lamp was automated in {auto}", "vp:has been automatic since {auto}",
       "pre:Automated in {auto},"),
     F("keeper", "entity", "The last keeper of {Name} was {keeper}.",
       "s:{its} last keeper was {keeper}", "s:{keeper} was {its} last keeper", "vp:had {keeper} as its last keeper")),
)


def _bridge(r: random.Random, nm: Names) -> dict:
    eng = nm.person()
    opened = day(r, 1822, 1936)
    years, span, cost, workers = r.randint(2, 7), r.randint(6, 42) * 10, r.randint(18, 240) * 1000, r.randint(12, 90) * 10
    return dict(
        Name=f"the {nm.place()} Bridge", short="the bridge", alt=[], pron=[IT],
        river=f"the River {nm.short()}", eng=eng.full, eng_v=[f"the engineer {eng.full}", eng.full],
        opened=opened.full, opened_on=opened.on(), toll=str(opened.y + r.randint(18, 70)),
        years=spelled(years)[0], years_v=spelled(years),
        span=f"{span} metres", span_v=with_unit(exact(span), "metres", "m"),
        cost=money(cost)[0], cost_v=money(cost), workers=about(workers)[0], workers_v=about(workers),
    )


BRIDGE = Topic(
    "bridge", _bridge,
    (("What is known about {Name}?", ()), ("Describe {Name} and how it was built.", ()),
     ("What can you tell me about {Name}?", ())),
    ("{Name} carries a road across {river}. It was designed by the engineer {eng} and opened on {opened}, "
     "replacing an old ferry. Its main span is {span} long, and the whole bridge cost {cost}. {workers} men "
     "built it over {years} years. Tolls on the bridge were abolished in {toll}.",
     "Opened on {opened}, {Name} took {years} years to build and replaced an old ferry across {river}. The "
     "engineer {eng} designed it, and {workers} men worked on it. Its main span is {span} long, and it cost "
     "{cost}. The bridge has been free of tolls since {toll}."),
    (F("river", "entity", "{Name} crosses {river}.",
       "vp:crosses {river}", "vp:spans {river}", "vp:carries a road over {river}"),
     F("eng", "entity", "{Name} was designed by {eng}.",
       "vp:was designed by {eng_v}", "s:{eng_v} designed {obj}", "vp:was the work of {eng_v}",
       "pre:Designed by {eng_v},"),
     F("opened", "date", "{Name} opened on {opened}.",
       "vp:opened {opened_on}", "vp:was opened {opened_on}", "pre:Opened {opened_on},",
       "vp:opened to traffic {opened_on}"),
     F("ferry", "relation", "{Name} replaced an old ferry.",
       "vp:replaced an old ferry", "vp:took the place of an old ferry", "vp:replaced the ferry that used to cross there"),
     F("span", "quantity", "The main span of {Name} is {span} long.",
       "s:{its} main span is {span_v} long", "s:the main span measures {span_v}", "vp:has a main span of {span_v}"),
     F("cost", "quantity", "{Name} cost {cost}.",
       "vp:cost {cost_v}", "vp:was built for {cost_v}", "s:the whole bridge cost {cost_v}"),
     F("workers", "quantity", "{workers} men built {Name}.",
       "s:{workers_v} men built {obj}", "s:{workers_v} men worked on {obj}", "vp:was built by {workers_v} men"),
     F("years", "quantity", "{Name} took {years} years to build.",
       "vp:took {years_v} years to build", "s:building {obj} took {years_v} years",
       "s:construction lasted {years_v} years"),
     F("toll", "date", "Tolls on {Name} were abolished in {toll}.",
       "s:tolls on {obj} were abolished in {toll}", "vp:has been free of tolls since {toll}",
       "s:the tolls were scrapped in {toll}", "vp:became toll-free in {toll}")),
    {("workers", "years"): ("s:{workers_v} men built {obj} over {years_v} years",
                            "s:it took {workers_v} men {years_v} years to build {obj}")},
)

_FOUNDERS = ("wool merchants", "Flemish weavers", "salt traders", "fishing families", "cattle dealers", "tin miners",
             "Huguenot weavers", "timber merchants")
_GOODS = ("cloth", "cattle", "cheese", "fish", "wool", "horse", "grain", "leather")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _town(r: random.Random, nm: Names) -> dict:
    founded = r.randint(1610, 1785)
    rail = r.randint(max(1838, founded + 60), 1885)
    popyear = r.randint(rail + 12, rail + 30)
    pop = r.randint(21, 98) * 100
    river = nm.short()
    return dict(
        Name=nm.place(), short="the town", alt=[], pron=[IT],
        river=f"the River {river}", founded=str(founded), group=r.choice(_FOUNDERS), city=r.choice(CITIES),
        day=r.choice(_WEEKDAYS), goods=r.choice(_GOODS), rail=str(rail), popyear=str(popyear),
        pop=exact(pop)[0], pop_v=exact(pop), mill=str(r.randint(popyear + 15, 1979)),
        mill_name=f"{nm.surname()}'s Mill", museum=f"{river} Valley Museum",
    )


TOWN = Topic(
    "town", _town,
    (("Describe the history of {Name}.", ()), ("What is known about the town of {Name}?", ()),
     ("How did {Name} begin and grow?", ("founded", "founders", "railway", "population"))),
    ("{Name} is a market town on {river}, founded in {founded} by {group} from {city}. For its first century it "
     "was known for its {day} {goods} market. The railway reached {Name} in {rail}, and by {popyear} the town had "
     "{pop} people. The last mill, {mill_name}, closed in {mill} and is now the {museum}.",
     "Founded in {founded} by {group} from {city}, {Name} grew up on {river} around a {goods} market held every "
     "{day}. After the railway arrived in {rail}, the town grew to {pop} people by {popyear}. {mill_name}, the "
     "last mill, closed in {mill}; the building is now the {museum}."),
    (F("founded", "date", "{Name} was founded in {founded}.",
       "vp:was founded in {founded}", "vp:was established in {founded}", "vp:dates from {founded}",
       "pre:Founded in {founded},"),
     F("founders", "relation", "{Name} was founded by {group} from {city}.",
       "vp:was founded by {group} from {city}", "vp:was set up by {group} from {city}",
       "s:{group} from {city} founded {obj}", "s:{group} from {city} established {obj}"),
     F("river", "entity", "{Name} lies on {river}.",
       "vp:lies on {river}", "vp:stands on {river}", "vp:is a market town on {river}"),
     F("market", "relation", "{Name} was known for its {day} {goods} market.",
       "vp:was known for its {day} {goods} market", "vp:was famous for a {goods} market held every {day}",
       "s:{its} {goods} market was held every {day}"),
     F("railway", "date", "The railway reached {Name} in {rail}.",
       "s:the railway reached {obj} in {rail}", "s:the railway arrived in {rail}", "s:the railway came in {rail}"),
     F("population", "quantity", "{Name} had {pop} people by {popyear}.",
       "vp:had {pop_v} people by {popyear}", "s:by {popyear} {its} population had reached {pop_v}",
       "vp:grew to {pop_v} people by {popyear}", "s:{its} population was {pop_v} by {popyear}"),
     F("mill", "date", "{mill_name} closed in {mill}.",
       "s:the last mill, {mill_name}, closed in {mill}", "s:{mill_name} closed in {mill}",
       "s:{its} last mill shut in {mill}"),
     F("museum", "entity", "{mill_name} is now the {museum}.",
       "s:{mill_name} is now the {museum}", "s:the old mill is now the {museum}",
       "s:the last mill now houses the {museum}")),
    {("founded", "founders"): ("vp:was founded in {founded} by {group} from {city}",
                               "s:{group} from {city} founded {obj} in {founded}",
                               "pre:Founded by {group} from {city} in {founded},"),
     ("mill", "museum"): ("s:{mill_name} closed in {mill} and is now the {museum}",
                          "s:the last mill closed in {mill} and became the {museum}")},
)

_TRADES = (("Glass", "bottles and lamp glass"), ("Clock", "station clocks"), ("Rope", "ropes for sailing ships"),
           ("Lens", "lenses for lighthouses"), ("Pottery", "blue-glazed tableware"), ("Pencil", "drawing pencils"),
           ("Bicycle", "delivery bicycles"), ("Biscuit", "ship's biscuits"), ("Soap", "carbolic soap"),
           ("Brush", "paint brushes"))


def _company(r: random.Random, nm: Names) -> dict:
    trade, product = r.choice(_TRADES)
    founder = nm.person()
    founded = r.randint(1790, 1905)
    fire = day(r, founded + 5, founded + 40)
    workers, countries = r.randint(12, 190) * 10, r.randint(6, 31)
    buyer = r.choice([f"{nm.place()} Industries", f"the {nm.surname()} Group"])
    return dict(
        Name=f"the {nm.place()} {trade} Company", short="the company", alt=["the firm"], pron=[IT],
        founder=founder.full, founded=str(founded), city=r.choice(CITIES), product=product,
        workers=exact(workers)[0], workers_v=exact(workers), fire=fire.full, fire_on=fire.on(),
        countries=str(countries), countries_v=exact(countries), buyer=buyer,
        take=str(r.randint(fire.y + 10, min(fire.y + 60, 1995))),
    )


COMPANY = Topic(
    "company", _company,
    (("What is known about {Name}?", ()), ("Describe the history of {Name}.", ()), ("Tell me about {Name}.", ())),
    ("{Name} was founded in {city} in {founded} by {founder}. It made {product}, and at its peak it employed "
     "{workers} people. A fire destroyed its first works on {fire}. The company sold its goods in {countries} "
     "countries, and in {take} it was bought by {buyer}.",
     "{founder} founded {Name} in {city} in {founded} to make {product}. The firm employed {workers} people at its "
     "peak and sold its goods in {countries} countries. Its first works burned down on {fire}. {buyer} bought the "
     "company in {take}."),
    (F("founder", "entity", "{Name} was founded by {founder}.",
       "vp:was founded by {founder}", "vp:was started by {founder}", "s:{founder} founded {obj}",
       "s:{founder} established {obj}"),
     F("founded", "date", "{Name} was founded in {founded}.",
       "vp:was founded in {founded}", "vp:dates from {founded}", "pre:Founded in {founded},",
       "vp:was established in {founded}"),
     F("city", "entity", "{Name} was based in {city}.",
       "vp:was based in {city}", "vp:had its factory in {city}", "pre:Based in {city},"),
     F("product", "relation", "{Name} made {product}.",
       "vp:made {product}", "vp:produced {product}", "vp:was known for its {product}"),
     F("workers", "quantity", "{Name} employed {workers} people at its peak.",
       "vp:employed {workers_v} people at its peak", "s:at its peak {workers_v} people worked there",
       "vp:had {workers_v} people working for it at its peak"),
     F("fire", "date", "A fire destroyed the works of {Name} on {fire}.",
       "s:a fire destroyed {its} first works {fire_on}", "s:{its} first works burned down {fire_on}",
       "vp:lost its first works to a fire {fire_on}"),
     F("countries", "quantity", "{Name} exported to {countries} countries.",
       "vp:sold its goods in {countries_v} countries", "vp:exported to {countries_v} countries",
       "s:{its} goods were sold in {countries_v} countries"),
     F("takeover", "entity", "{Name} was bought by {buyer} in {take}.",
       "vp:was bought by {buyer} in {take}", "s:{buyer} bought {obj} in {take}",
       "vp:was taken over by {buyer} in {take}", "s:in {take} {buyer} took {obj} over")),
    {("founder", "founded"): ("vp:was founded by {founder} in {founded}", "s:{founder} founded {obj} in {founded}",
                              "s:{founder} started {obj} in {founded}", "s:in {founded} {founder} established {obj}")},
)

_GOALS = ("map the coast of {land}", "cross the {land} ice field", "find the source of the River {land}",
          "climb Mount {land}", "survey the {land} Islands", "reach the {land} Plateau")


def _expedition(r: random.Random, nm: Names) -> dict:
    leader = nm.person()
    title = r.choice(["Captain", "the geologist", "the surveyor"])
    dep = day(r, 1858, 1934)
    ret = Day(1, r.randint(1, 12), dep.y + 1)
    men, dist, deaths = r.randint(9, 31), r.randint(40, 240) * 10, r.randint(2, 4)
    return dict(
        Name=f"the {nm.latin()} expedition", short="the expedition", alt=["the party"], pron=[IT],
        leader=f"{title} {leader.full}", leader_v=[f"{title} {leader.full}", leader.full],
        port=r.choice(PORTS), dep=dep.full, dep_on=dep.on(), men=str(men), men_v=exact(men),
        goal=r.choice(_GOALS).format(land=nm.short()), dist=f"{dist:,}", dist_v=exact(dist),
        glacier=nm.surname(), deaths=spelled(deaths)[0], ret=ret.month, ret_in=[f"in {ret.month}", f"in {ret.y}"],
    )


EXPEDITION = Topic(
    "expedition", _expedition,
    (("What happened on {Name}?", ()), ("Describe {Name}.", ()), ("What is known about {Name}?", ())),
    ("{Name}, led by {leader}, left {port} on {dep} with {men} men. Its aim was to {goal}. Over the following "
     "months the party travelled {dist} kilometres and named the {glacier} Glacier. {deaths} men died on the way, "
     "and the survivors returned in {ret}.",
     "On {dep}, {men} men under {leader} sailed from {port} on {Name}, which set out to {goal}. They covered "
     "{dist} kilometres, naming the {glacier} Glacier along the way. The party lost {deaths} men before it "
     "returned in {ret}."),
    (F("leader", "entity", "{Name} was led by {leader}.",
       "vp:was led by {leader_v}", "s:{leader_v} led {obj}", "pre:Led by {leader_v},",
       "vp:was under the command of {leader_v}"),
     F("port", "entity", "{Name} left from {port}.",
       "vp:set out from {port}", "vp:sailed from {port}", "vp:left from {port}"),
     F("dep", "date", "{Name} set out on {dep}.",
       "vp:set out {dep_on}", "vp:left {dep_on}", "s:the party left {dep_on}"),
     F("men", "quantity", "{Name} had {men} men.",
       "vp:set out with {men_v} men", "s:there were {men_v} men in the party", "s:{men_v} men took part",
       "vp:had {men_v} men"),
     F("goal", "relation", "The aim of {Name} was to {goal}.",
       "vp:set out to {goal}", "s:{its} aim was to {goal}", "vp:was meant to {goal}", "s:{its} goal was to {goal}"),
     F("dist", "quantity", "{Name} travelled {dist} kilometres.",
       "vp:travelled {dist_v} kilometres", "vp:covered {dist_v} kilometres", "s:the party covered {dist_v} km"),
     F("glacier", "entity", "{Name} named the {glacier} Glacier.",
       "vp:named the {glacier} Glacier", "s:the party named the {glacier} Glacier",
       "vp:gave the {glacier} Glacier its name"),
     F("deaths", "quantity", "{deaths} men died on {Name}.",
       "s:{deaths} men died", "vp:lost {deaths} men", "s:{deaths} of the men died on the way"),
     F("ret", "date", "The survivors of {Name} returned in {ret}.",
       "s:the survivors returned {ret_in}", "vp:returned {ret_in}", "vp:came back {ret_in}", "vp:ended {ret_in}")),
    {("port", "dep"): ("vp:left {port} {dep_on}", "vp:sailed from {port} {dep_on}",
                       "s:the party set out from {port} {dep_on}")},
)

_FESTIVALS = (("Lantern", "a procession of paper lanterns to the harbour", "lantern"),
              ("Kite", "a kite race along the beach", "kite"),
              ("Cheese", "a cheese-rolling race down the church hill", "cheese"),
              ("Fiddle", "an all-night fiddle concert in the square", "new tune"),
              ("Boat", "a race of home-made boats across the bay", "boat"),
              ("Apple", "the crowning of an apple queen", "cider"),
              ("Bread", "a bread-baking contest in the market hall", "loaf"),
              ("Herring", "a fish supper on the quay", "herring dish"),
              ("Bonfire", "a torchlit walk to a bonfire on the hill", "torch"))
_ROLES = ("schoolteacher", "baker", "innkeeper", "shopkeeper", "farmer", "librarian", "vicar", "postmaster")
_ORIGINS = ("a harvest fair", "a school outing", "a church fete", "a market-day contest", "a fundraiser for the lifeboat")


def _festival(r: random.Random, nm: Names) -> dict:
    kind, finale, item = r.choice(_FESTIVALS)
    founder, role = nm.person(), r.choice(_ROLES)
    first = r.randint(1890, 1985)
    days, visitors, prize = r.randint(2, 5), r.randint(6, 80) * 500, r.randint(1, 18) * 50
    return dict(
        Name=f"the {nm.place()} {kind} Festival", short="the festival", alt=[], pron=[IT],
        first=str(first), founder=founder.full, role=role,
        founder_v=[f"the {role} {founder.full}", founder.full, f"a {role} called {founder.full}"],
        origin=r.choice(_ORIGINS), days=spelled(days)[0], days_v=spelled(days),
        visitors=about(visitors)[0], visitors_v=about(visitors), venue=f"{nm.surname()} Park",
        finale=finale, item=item, prize=money(prize)[0], prize_v=money(prize),
        cancel=str(r.randint(first + 5, 2019)),
    )


FESTIVAL = Topic(
    "festival", _festival,
    (("What is known about {Name}?", ()), ("Describe {Name}.", ()),
     ("How did {Name} begin, and what happens there?", ("first", "founder", "origin", "finale"))),
    ("{Name} was first held in {first}, when the {role} {founder} organised it. It began as {origin} and now "
     "lasts {days} days, drawing {visitors} visitors to {venue}. The festival ends with {finale}, and a prize "
     "of {prize} goes to the best {item}. It was cancelled in {cancel}.",
     "{founder}, a {role}, started {Name} in {first} as {origin}. Held in {venue} over {days} days, it now draws "
     "{visitors} visitors. Each year it ends with {finale}, and the best {item} wins a prize of {prize}. The "
     "festival was cancelled in {cancel}."),
    (F("first", "date", "{Name} began in {first}.",
       "vp:was first held in {first}", "vp:began in {first}", "vp:dates from {first}", "pre:First held in {first},"),
     F("founder", "entity", "{Name} was started by {founder}.",
       "vp:was started by {founder_v}", "s:{founder_v} started {obj}", "vp:was founded by {founder_v}",
       "s:the festival was the idea of {founder_v}"),
     F("origin", "relation", "{Name} began as {origin}.",
       "vp:began as {origin}", "vp:started out as {origin}", "s:originally {S} was {origin}"),
     F("days", "quantity", "{Name} lasts {days} days.",
       "vp:lasts {days_v} days", "vp:runs for {days_v} days", "vp:is held over {days_v} days"),
     F("visitors", "quantity", "{Name} draws {visitors} visitors.",
       "vp:draws {visitors_v} visitors", "vp:attracts {visitors_v} visitors", "s:{visitors_v} visitors come each year"),
     F("venue", "entity", "{Name} is held in {venue}.",
       "vp:is held in {venue}", "vp:takes place in {venue}", "pre:Held in {venue},"),
     F("finale", "relation", "{Name} ends with {finale}.",
       "vp:ends with {finale}", "vp:closes with {finale}", "s:the last day brings {finale}"),
     F("prize", "quantity", "A prize of {prize} goes to the best {item} at {Name}.",
       "s:the best {item} wins {prize_v}", "s:a prize of {prize_v} goes to the best {item}",
       "vp:awards {prize_v} to the best {item}"),
     F("cancel", "date", "{Name} was cancelled in {cancel}.",
       "vp:was cancelled in {cancel}", "vp:was called off in {cancel}", "s:in {cancel} the festival did not take place")),
    {("first", "founder"): ("s:{founder_v} started {obj} in {first}", "vp:was started in {first} by {founder_v}")},
)

_ANIMALS = (  # noun, short noun, food, unit, (lo, hi), colours, habitat pattern
    ("cave beetle", "beetle", "fungus growing on damp rock", "millimetres", (6, 19),
     ("pale yellow", "reddish brown", "almost white"), "the {X} Caves"),
    ("tree frog", "frog", "small ants", "millimetres", (21, 48), ("bright green", "olive brown", "lime green"),
     "the {X} Forest"),
    ("river snail", "snail", "algae on stones", "millimetres", (8, 31), ("dark brown", "striped grey"),
     "the upper River {X}"),
    ("gecko", "gecko", "night-flying moths", "centimetres", (5, 14), ("sandy grey", "pale orange"), "the {X} Hills"),
    ("freshwater crab", "crab", "fallen leaves", "centimetres", (4, 11), ("deep purple", "blue-grey"),
     "the {X} Valley"),
    ("salamander", "salamander", "insect larvae", "centimetres", (9, 19), ("black and yellow", "coppery red"),
     "the {X} Mountains"),
)


def _species(r: random.Random, nm: Names) -> dict:
    noun, short, food, unit, (lo, hi), colours, habitat = r.choice(_ANIMALS)
    place, desc = nm.place(), nm.person()
    dyear = r.randint(1840, 1985)
    length, pop = r.randint(lo, hi), r.randint(3, 18) * 50
    unit_short = {"millimetres": "mm", "centimetres": "cm"}[unit]
    return dict(
        Name=f"the {place} {noun}", short=f"the {short}", alt=["the species"], pron=[IT], noun=short,
        sci=f"{nm.latin()} {place.lower()}ensis", desc=desc.full,
        desc_v=[f"the naturalist {desc.full}", desc.full], dyear=str(dyear),
        where=habitat.format(X=nm.short()), length=f"{length} {unit}",
        length_v=with_unit(exact(length), unit, unit_short), food=food, colour=r.choice(colours),
        pop=about(pop)[0], pop_v=about(pop), prot=str(r.randint(dyear + 8, 2016)),
    )


SPECIES = Topic(
    "species", _species,
    (("What is known about {Name}?", ()), ("Describe {Name}.", ()), ("What can you tell me about {Name}?", ())),
    ("{Name} ({sci}) was first described by the naturalist {desc} in {dyear}. It lives only in {where} and grows "
     "to {length} long. The {noun} is {colour} and feeds on {food}. Only {pop} individuals are thought to remain, "
     "and the species has been protected by law since {prot}.",
     "Found only in {where}, {Name}, {sci}, is a {colour} animal that grows to {length} long and feeds on {food}. "
     "The naturalist {desc} first described it in {dyear}. It has been protected by law since {prot}, and only "
     "{pop} individuals are thought to survive."),
    (F("sci", "entity", "The scientific name of {Name} is {sci}.",
       "s:{its} scientific name is {sci}", "s:{sci} is {its} scientific name", "vp:is known to science as {sci}"),
     F("desc", "entity", "{Name} was first described by {desc}.",
       "vp:was first described by {desc_v}", "s:{desc_v} first described {obj}", "vp:was described by {desc_v}"),
     F("dyear", "date", "{Name} was first described in {dyear}.",
       "vp:was first described in {dyear}", "vp:has been known to science since {dyear}",
       "vp:was described in {dyear}"),
     F("where", "entity", "{Name} lives only in {where}.",
       "vp:lives only in {where}", "vp:is found only in {where}", "pre:Found only in {where},"),
     F("length", "quantity", "{Name} grows to {length} long.",
       "vp:grows to {length_v} long", "vp:reaches {length_v} in length", "s:adults grow to {length_v}"),
     F("food", "relation", "{Name} feeds on {food}.", "vp:feeds on {food}", "vp:eats {food}", "vp:lives on {food}"),
     F("colour", "relation", "{Name} is {colour}.", "vp:is {colour}", "vp:is {colour} in colour", "s:{its} body is {colour}"),
     F("pop", "quantity", "Only {pop} individuals of {Name} remain.",
       "s:only {pop_v} individuals are thought to remain", "s:only {pop_v} individuals survive",
       "s:there are thought to be {pop_v} left"),
     F("prot", "date", "{Name} has been protected by law since {prot}.",
       "vp:has been protected by law since {prot}", "vp:has been legally protected since {prot}",
       "vp:was given legal protection in {prot}")),
    {("desc", "dyear"): ("vp:was first described by {desc_v} in {dyear}", "s:{desc_v} described {obj} in {dyear}",
                         "s:in {dyear} {desc_v} first described {obj}")},
)

_DEVICES = (  # device, purpose, capacity phrase, capacity range (lo, hi, step)
    ("pump", "to drain water from tin mines", "move {cap} litres of water a minute", (20, 95, 10)),
    ("loom", "to weave carpets", "weave {cap} metres of carpet a day", (12, 90, 1)),
    ("printing press", "to print newspapers", "print {cap} sheets an hour", (8, 40, 100)),
    ("threshing machine", "to thresh grain on small farms", "thresh {cap} sheaves an hour", (10, 60, 10)),
    ("ice machine", "to make ice for fishing boats", "make {cap} kilograms of ice a day", (10, 50, 100)),
    ("bread oven", "to feed army camps", "bake {cap} loaves an hour", (12, 80, 5)),
)
_CRAFTS = ("blacksmith", "clockmaker", "millwright", "mechanic", "locksmith", "instrument maker")


def _invention(r: random.Random, nm: Names) -> dict:
    device, purpose, cap_phrase, (lo, hi, step) = r.choice(_DEVICES)
    inventor, craft = nm.person(), r.choice(_CRAFTS)
    pat = day(r, 1815, 1930)
    cap, weight, price, sold = r.randint(lo, hi) * step, r.randint(12, 95) * 10, r.randint(12, 180), r.randint(15, 250) * 10
    return dict(
        Name=f"the {nm.place()} {device}", short=f"the {device}", alt=["the machine"], pron=[IT],
        inventor=inventor.full, inventor_v=[f"the {craft} {inventor.full}", inventor.full], craft=craft,
        city=r.choice(CITIES), pat=pat.full, pat_on=pat.on(), purpose=purpose,
        cap_phrase=cap_phrase.format(cap=f"{cap:,}"), cap_v=[cap_phrase.format(cap=c) for c in exact(cap)],
        weight=f"{weight} kilograms", weight_v=with_unit(exact(weight), "kilograms", "kg"),
        price=money(price)[0], price_v=money(price), sold=about(sold)[0], sold_v=about(sold),
    )


INVENTION = Topic(
    "invention", _invention,
    (("What is known about {Name}?", ()), ("Describe {Name}.", ()),
     ("Who invented {Name}, and what could it do?", ("inventor", "cap"))),
    ("{Name} was invented by the {craft} {inventor} in {city} and patented on {pat}. It was built {purpose}, and "
     "it could {cap_phrase}. The machine weighed {weight} and sold for {price}. {sold} were made before it was "
     "replaced by electric models.",
     "In {city}, the {craft} {inventor} built {Name} {purpose}; it was patented on {pat}. Weighing {weight}, it "
     "could {cap_phrase}. It sold for {price}, and {sold} were made until electric models replaced it."),
    (F("inventor", "entity", "{Name} was invented by {inventor}.",
       "vp:was invented by {inventor_v}", "s:{inventor_v} invented {obj}", "vp:was the invention of {inventor_v}",
       "s:{inventor_v} built the first one"),
     F("city", "entity", "{Name} was invented in {city}.",
       "vp:was invented in {city}", "vp:was first built in {city}", "pre:Invented in {city},"),
     F("pat", "date", "{Name} was patented on {pat}.",
       "vp:was patented {pat_on}", "pre:Patented {pat_on},", "s:the patent was granted {pat_on}"),
     F("purpose", "relation", "{Name} was built {purpose}.",
       "vp:was built {purpose}", "vp:was designed {purpose}", "vp:was meant {purpose}"),
     F("cap", "quantity", "{Name} could {cap_phrase}.",
       "vp:could {cap_v}", "vp:was able to {cap_v}", "s:at full speed {S} could {cap_v}"),
     F("weight", "quantity", "{Name} weighed {weight}.",
       "vp:weighed {weight_v}", "s:the machine weighed {weight_v}", "vp:had a weight of {weight_v}"),
     F("price", "quantity", "{Name} sold for {price}.",
       "vp:sold for {price_v}", "vp:cost {price_v}", "s:each one cost {price_v}"),
     F("sold", "quantity", "{sold} were made.",
       "s:{sold_v} were made", "s:{sold_v} were built", "s:{sold_v} of them were made"),
     F("replaced", "relation", "{Name} was replaced by electric models.",
       "vp:was replaced by electric models", "s:electric models replaced {obj}",
       "s:electric models later took {its} place")),
    {("inventor", "city"): ("vp:was invented by {inventor_v} in {city}", "s:{inventor_v} invented {obj} in {city}",
                            "s:{inventor_v} built {obj} in {city}")},
)

_SHIPS = ("steamer", "schooner", "paddle steamer", "mail steamer", "coastal steamer", "brigantine")


def _ship(r: random.Random, nm: Names) -> dict:
    kind = r.choice(_SHIPS)
    captain = nm.person()
    launch = day(r, 1850, 1925)
    wreck = day(r, launch.y + 5, launch.y + 30)
    a, b = r.sample(PORTS, 2)
    length, crew, saved = r.randint(38, 96), r.randint(12, 46), r.randint(52, 140)
    return dict(
        Name=f"the {nm.latin()}", short="the ship", alt=[f"the {kind}"], pron=[SHE, IT], kind=kind,
        yard=f"{nm.surname()} & Sons", launch=launch.full, launch_on=launch.on(),
        length=f"{length} metres", length_v=with_unit(exact(length), "metres", "m"), a=a, b=b,
        crew=str(crew), crew_v=exact(crew), captain=captain.full, wreck=wreck.full, wreck_on=wreck.on(),
        reef=nm.place(), saved=str(saved), saved_v=exact(saved),
    )


SHIP = Topic(
    "ship", _ship,
    (("What is known about {Name}?", ()), ("What happened to {Name}?", ("wreck", "reef", "saved")),
     ("Describe the history of {Name}.", ())),
    ("{Name} was a {kind} built by {yard} and launched on {launch}. She was {length} long and carried mail between "
     "{a} and {b} with a crew of {crew}. Under Captain {captain} she ran aground on the {reef} Reef on {wreck}. All "
     "{saved} people on board were saved.",
     "Launched on {launch}, {Name} was a {kind} built by {yard}. The ship, {length} long, carried mail between {a} "
     "and {b} and had a crew of {crew}. On {wreck}, with Captain {captain} in command, she ran aground on the "
     "{reef} Reef, but all {saved} people on board were saved."),
    (F("yard", "entity", "{Name} was built by {yard}.",
       "vp:was built by {yard}", "s:{yard} built {obj}", "vp:came from the yard of {yard}"),
     F("launch", "date", "{Name} was launched on {launch}.",
       "vp:was launched {launch_on}", "pre:Launched {launch_on},", "vp:went into the water {launch_on}"),
     F("length", "quantity", "{Name} was {length} long.",
       "vp:was {length_v} long", "vp:measured {length_v}", "s:{its} hull was {length_v} long"),
     F("route", "relation", "{Name} carried mail between {a} and {b}.",
       "vp:carried mail between {a} and {b}", "vp:ran the mail route between {a} and {b}",
       "vp:sailed between {a} and {b} with the mail"),
     F("crew", "quantity", "{Name} had a crew of {crew}.",
       "vp:had a crew of {crew_v}", "s:{its} crew numbered {crew_v}", "vp:sailed with a crew of {crew_v}"),
     F("captain", "entity", "The captain of {Name} was {captain}.",
       "s:{its} captain was {captain}", "s:Captain {captain} commanded {obj}", "vp:was commanded by Captain {captain}"),
     F("wreck", "date", "{Name} ran aground on {wreck}.",
       "vp:ran aground {wreck_on}", "vp:was wrecked {wreck_on}", "vp:went aground {wreck_on}"),
     F("reef", "entity", "{Name} ran aground on the {reef} Reef.",
       "vp:ran aground on the {reef} Reef", "vp:was lost on the {reef} Reef", "vp:struck the {reef} Reef"),
     F("saved", "quantity", "All {saved} people on board {Name} were saved.",
       "s:all {saved_v} people on board were saved", "s:everyone on board, {saved_v} people, survived",
       "s:all {saved_v} people aboard were rescued")),
    {("wreck", "reef"): ("vp:ran aground on the {reef} Reef {wreck_on}", "vp:struck the {reef} Reef {wreck_on}")},
)

_NOW = ("holds public star nights", "is a science museum", "trains student astronomers", "runs a weather station")


def _observatory(r: random.Random, nm: Names) -> dict:
    founder = nm.person()
    founded = r.randint(1850, 1935)
    alt, lens, ast = r.randint(120, 290) * 10, r.randint(30, 120), r.randint(3, 40)
    return dict(
        Name=f"the {nm.place()} Observatory", short="the observatory", alt=[], pron=[IT],
        mount=f"Mount {nm.short()}", founded=str(founded), founder=founder.full,
        founder_v=[f"the astronomer {founder.full}", founder.full], altitude=f"{alt:,}", altitude_v=exact(alt),
        lens=f"{lens} centimetres", lens_v=with_unit(exact(lens), "centimetres", "cm"), ast=str(ast),
        ast_v=exact(ast), comet=f"Comet {nm.surname()}", closed=str(r.randint(founded + 40, 1995)), now=r.choice(_NOW),
    )


OBSERVATORY = Topic(
    "observatory", _observatory,
    (("What is known about {Name}?", ()), ("Describe {Name}.", ()), ("What can you tell me about {Name}?", ())),
    ("{Name} was founded in {founded} by the astronomer {founder} on {mount}, {altitude} metres above sea level. "
     "Its main telescope has a lens {lens} across. Astronomers there discovered {ast} asteroids and {comet}. It "
     "closed to research in {closed} and now {now}.",
     "The astronomer {founder} founded {Name} in {founded}. It stands on {mount}, {altitude} metres above sea "
     "level, and its main telescope has a lens {lens} across. Its staff found {ast} asteroids as well as "
     "{comet}. Research there ended in {closed}; the observatory now {now}."),
    (F("founded", "date", "{Name} was founded in {founded}.",
       "vp:was founded in {founded}", "vp:opened in {founded}", "vp:dates from {founded}", "pre:Founded in {founded},"),
     F("founder", "entity", "{Name} was founded by {founder}.",
       "vp:was founded by {founder_v}", "s:{founder_v} founded {obj}", "vp:was set up by {founder_v}"),
     F("mount", "entity", "{Name} stands on {mount}.", "vp:stands on {mount}", "vp:is on {mount}", "vp:was built on {mount}"),
     F("altitude", "quantity", "{Name} is {altitude} metres above sea level.",
       "vp:is {altitude_v} metres above sea level", "vp:stands at {altitude_v} metres",
       "s:{its} site is {altitude_v} metres above the sea"),
     F("lens", "quantity", "The main telescope of {Name} has a lens {lens} across.",
       "s:{its} main telescope has a lens {lens_v} across", "s:the main telescope's lens is {lens_v} wide",
       "vp:has a telescope whose lens is {lens_v} across"),
     F("ast", "quantity", "Astronomers at {Name} discovered {ast} asteroids.",
       "s:astronomers there discovered {ast_v} asteroids", "s:{its} staff found {ast_v} asteroids",
       "vp:is where {ast_v} asteroids were discovered"),
     F("comet", "entity", "Astronomers at {Name} discovered {comet}.",
       "s:astronomers there discovered {comet}", "s:{comet} was discovered there", "vp:is where {comet} was found"),
     F("closed", "date", "Research at {Name} ended in {closed}.",
       "vp:closed to research in {closed}", "s:research there ended in {closed}", "vp:stopped research in {closed}"),
     F("now", "relation", "{Name} now {now}.", "vp:now {now}", "s:today {S} {now}", "s:these days {S} {now}")),
    {("founded", "founder"): ("vp:was founded by {founder_v} in {founded}", "s:{founder_v} founded {obj} in {founded}",
                              "s:in {founded} {founder_v} established {obj}")},
)

_CARGO = ("coal", "limestone", "slate", "grain", "timber", "china clay")


def _canal(r: random.Random, nm: Names) -> dict:
    eng = nm.person()
    opened = day(r, 1760, 1860)
    closed = r.randint(opened.y + 60, 1965)
    cost, length, locks = r.randint(30, 600) * 1000, r.randint(9, 68), r.randint(8, 46)
    return dict(
        Name=f"the {nm.place()} Canal", short="the canal", alt=[], pron=[IT],
        town=nm.place(), river=f"the River {nm.short()}", eng=eng.full, eng_v=[f"the engineer {eng.full}", eng.full],
        opened=opened.full, opened_on=opened.on(), cost=money(cost)[0], cost_v=money(cost),
        length=f"{length} kilometres", length_v=with_unit(exact(length), "kilometres", "km"),
        locks=str(locks), locks_v=exact(locks), cargo=r.choice(_CARGO), closed=str(closed),
        reopen=str(r.randint(closed + 20, 2015)),
    )


CANAL = Topic(
    "canal", _canal,
    (("What is known about {Name}?", ()), ("Describe the history of {Name}.", ()), ("Tell me about {Name}.", ())),
    ("{Name} links {town} with {river}. Designed by the engineer {eng}, it opened on {opened} and cost {cost}. It "
     "is {length} long and has {locks} locks. Built to carry {cargo}, it closed to traffic in {closed}, but "
     "volunteers restored it and it reopened in {reopen}.",
     "The engineer {eng} designed {Name}, which opened on {opened} and links {town} with {river}. It cost {cost}, "
     "runs for {length} and has {locks} locks. The canal was built to carry {cargo}. It closed to traffic in "
     "{closed}; after volunteers restored it, it reopened in {reopen}."),
    (F("links", "entity", "{Name} links {town} with {river}.",
       "vp:links {town} with {river}", "vp:joins {town} to {river}", "vp:runs from {town} to {river}"),
     F("eng", "entity", "{Name} was designed by {eng}.",
       "vp:was designed by {eng_v}", "s:{eng_v} designed {obj}", "pre:Designed by {eng_v},"),
     F("opened", "date", "{Name} opened on {opened}.",
       "vp:opened {opened_on}", "vp:was opened {opened_on}", "pre:Opened {opened_on},"),
     F("cost", "quantity", "{Name} cost {cost}.", "vp:cost {cost_v}", "vp:was built for {cost_v}",
       "s:building {obj} cost {cost_v}"),
     F("length", "quantity", "{Name} is {length} long.",
       "vp:is {length_v} long", "vp:runs for {length_v}", "s:{its} length is {length_v}"),
     F("locks", "quantity", "{Name} has {locks} locks.",
       "vp:has {locks_v} locks", "s:there are {locks_v} locks along {obj}", "vp:climbs through {locks_v} locks"),
     F("cargo", "relation", "{Name} was built to carry {cargo}.",
       "vp:was built to carry {cargo}", "vp:was dug to carry {cargo}", "vp:was built for {cargo} traffic"),
     F("closed", "date", "{Name} closed in {closed}.",
       "vp:closed to traffic in {closed}", "s:traffic on {obj} ended in {closed}", "vp:was closed in {closed}"),
     F("restored", "relation", "{Name} was restored by volunteers.",
       "vp:was restored by volunteers", "s:volunteers restored {obj}", "vp:was brought back by volunteers"),
     F("reopen", "date", "{Name} reopened in {reopen}.", "vp:reopened in {reopen}", "vp:was reopened in {reopen}",
       "vp:opened again in {reopen}")),
    {("restored", "reopen"): ("vp:was restored by volunteers and reopened in {reopen}",
                              "s:volunteers restored {obj}, and it reopened in {reopen}")},
)

_FIELDS = (  # field, what the discovery is, the book's first word
    ("geology", "the mineral {surname_l}ite", "Stones"),
    ("botany", "the orchid {latin} {place_l}ensis", "Flowers"),
    ("entomology", "the beetle {latin} {place_l}ensis", "Insects"),
    ("chemistry", "the dye {surname} blue", "Colours"),
)


def _scientist(r: random.Random, nm: Names) -> dict:
    p = nm.person()
    field_, thing, book_word = r.choice(_FIELDS)
    surname, place = nm.surname(), nm.place()
    thing = thing.format(surname_l=surname.lower(), latin=nm.latin(), place_l=place.lower(), surname=surname)
    born = r.randint(1820, 1900)
    city, uni = r.sample(CITIES, 2)
    years = r.randint(8, 40)
    return dict(
        Name=p.full, short=p.last, alt=[], pron=[p.pron], she=p.pron[0], her=p.pron[1],
        city=city, born=str(born), field=field_, uni=f"the University of {uni}", years=str(years),
        years_v=exact(years), thing=thing, book=f"{book_word} of the {place} Hills",
        medal=f"the {nm.surname()} Medal", died=str(born + r.randint(55, 94)),
    )


SCIENTIST = Topic(
    "scientist", _scientist,
    (("What is known about {Name}?", ()), ("Describe the life and work of {Name}.", ()), ("Who was {Name}?", ())),
    ("{Name} was born in {city} in {born}. {she} studied {field} and taught at {uni} for {years} years. {she} "
     "discovered {thing} and wrote a book, {book}. {she} won {medal} and died in {died}.",
     "Born in {city} in {born}, {Name} spent {years} years teaching {field} at {uni}. {her} best-known work was "
     "the discovery of {thing}, and {she} also wrote {book}. {she} was awarded {medal} and died in {died}."),
    (F("birthplace", "entity", "{Name} was born in {city}.",
       "vp:was born in {city}", "vp:came from {city}", "pre:Born in {city},"),
     F("born", "date", "{Name} was born in {born}.", "vp:was born in {born}", "pre:Born in {born},",
       "s:{S} was born in the year {born}"),
     F("field", "relation", "{Name} studied {field}.",
       "vp:studied {field}", "vp:worked in {field}", "vp:was a specialist in {field}"),
     F("uni", "entity", "{Name} taught at {uni}.", "vp:taught at {uni}", "vp:worked at {uni}", "vp:lectured at {uni}"),
     F("years", "quantity", "{Name} taught for {years} years.",
       "vp:taught for {years_v} years", "vp:spent {years_v} years teaching",
       "s:{its} teaching career lasted {years_v} years"),
     F("thing", "entity", "{Name} discovered {thing}.",
       "vp:discovered {thing}", "vp:found {thing}", "s:{thing} was discovered by {obj}"),
     F("book", "entity", "{Name} wrote {book}.",
       "vp:wrote {book}", "vp:wrote a book called {book}", "vp:was the author of {book}"),
     F("medal", "entity", "{Name} won {medal}.", "vp:won {medal}", "vp:was awarded {medal}", "vp:received {medal}"),
     F("died", "date", "{Name} died in {died}.", "vp:died in {died}", "vp:passed away in {died}",
       "vp:lived until {died}")),
    {("birthplace", "born"): ("vp:was born in {city} in {born}", "pre:Born in {city} in {born},",
                              "vp:was born in {born} in {city}"),
     ("uni", "years"): ("vp:taught at {uni} for {years_v} years", "vp:spent {years_v} years teaching at {uni}")},
)

_MINERALS = ("tin", "copper", "lead", "coal", "iron ore", "slate")


def _mine(r: random.Random, nm: Names) -> dict:
    opened = r.randint(1780, 1880)
    flood = day(r, opened + 20, opened + 70)
    depth, miners, deaths = r.randint(12, 68) * 10, r.randint(20, 180) * 10, r.randint(5, 48)
    return dict(
        Name=f"the {nm.place()} mine", short="the mine", alt=[], pron=[IT], opened=str(opened),
        mineral=r.choice(_MINERALS), depth=f"{depth} metres", depth_v=with_unit(exact(depth), "metres", "m"),
        miners=exact(miners)[0], miners_v=exact(miners), owner=f"the {nm.place()} Mining Company",
        flood=flood.full, flood_on=flood.on(), deaths=str(deaths), deaths_v=exact(deaths),
        closed=str(r.randint(flood.y + 5, 1985)),
    )


MINE = Topic(
    "mine", _mine,
    (("What is known about {Name}?", ()), ("Describe the history of {Name}.", ()),
     ("What happened at {Name}?", ("flood", "deaths"))),
    ("{Name} opened in {opened} and produced {mineral}. Its main shaft reached {depth}, and at its peak {miners} "
     "miners worked there for {owner}. A flood on {flood} killed {deaths} men. The mine closed in {closed}; its "
     "engine house is now a museum.",
     "Owned by {owner}, {Name} produced {mineral} from {opened} until it closed in {closed}. At its peak it "
     "employed {miners} miners, and its main shaft went down {depth}. On {flood} a flood in the workings killed "
     "{deaths} men. The mine's engine house is now a museum."),
    (F("opened", "date", "{Name} opened in {opened}.",
       "vp:opened in {opened}", "vp:was opened in {opened}", "vp:began working in {opened}"),
     F("mineral", "relation", "{Name} produced {mineral}.", "vp:produced {mineral}", "vp:was a {mineral} mine",
       "vp:mined {mineral}"),
     F("depth", "quantity", "The main shaft of {Name} reached {depth}.",
       "s:{its} main shaft reached {depth_v}", "s:the main shaft went down {depth_v}", "vp:was {depth_v} deep"),
     F("miners", "quantity", "{miners} miners worked at {Name} at its peak.",
       "s:at its peak {miners_v} miners worked there", "vp:employed {miners_v} miners at its peak",
       "s:{miners_v} miners worked there at its height"),
     F("owner", "entity", "{Name} was owned by {owner}.",
       "vp:was owned by {owner}", "vp:belonged to {owner}", "s:{owner} ran {obj}"),
     F("flood", "date", "A flood hit {Name} on {flood}.",
       "s:a flood struck {obj} {flood_on}", "s:there was a flood {flood_on}", "vp:flooded {flood_on}"),
     F("deaths", "quantity", "The flood at {Name} killed {deaths} men.",
       "s:the flood killed {deaths_v} men", "s:{deaths_v} men died in the flood", "s:{deaths_v} men were killed"),
     F("closed", "date", "{Name} closed in {closed}.",
       "vp:closed in {closed}", "vp:shut down in {closed}", "vp:was closed in {closed}"),
     F("museum", "relation", "The engine house of {Name} is now a museum.",
       "s:{its} engine house is now a museum", "s:the old engine house is now a museum",
       "s:{its} engine house has become a museum")),
    {("flood", "deaths"): ("s:a flood {flood_on} killed {deaths_v} men",
                           "s:{deaths_v} men died when {S} flooded {flood_on}")},
)

_BENEFACTORS = ("the shipowner", "the brewer", "the mill owner", "the banker", "the merchant")
_TREASURES = ("Psalter", "Atlas", "Herbal", "Chronicle", "Gospels", "Book of Hours")
_EXTRAS = ("lends books free of charge", "opens every day of the year", "keeps a room of old sea charts",
           "runs a bookbinding school")


def _library(r: random.Random, nm: Names) -> dict:
    benefactor, architect = nm.person(), nm.person()
    role = r.choice(_BENEFACTORS)
    opened = day(r, 1840, 1935)
    volumes, lost, seats = r.randint(120, 900) * 100, r.randint(9, 80) * 100, r.randint(4, 26) * 10
    return dict(
        Name=f"the {nm.place()} Library", short="the library", alt=[], pron=[IT],
        opened=opened.full, opened_on=opened.on(), role=role, benefactor=benefactor.full,
        benefactor_v=[f"{role} {benefactor.full}", benefactor.full], architect=architect.full,
        architect_v=[f"the architect {architect.full}", architect.full], volumes=f"{volumes:,}",
        volumes_v=exact(volumes), treasure=f"the {nm.place()} {r.choice(_TREASURES)}",
        fire=str(r.randint(opened.y + 10, 1990)), lost=f"{lost:,}", lost_v=exact(lost), seats=str(seats),
        seats_v=exact(seats), extra=r.choice(_EXTRAS),
    )


LIBRARY = Topic(
    "library", _library,
    (("What is known about {Name}?", ()), ("Describe {Name}.", ()), ("Tell me about {Name}.", ())),
    ("{Name} opened on {opened}, paid for by {role} {benefactor} and designed by the architect {architect}. It "
     "holds {volumes} books, and its best-known item is {treasure}. A fire in {fire} destroyed {lost} books. Its "
     "reading room seats {seats} people, and it {extra}.",
     "{role} {benefactor} paid for {Name}, which the architect {architect} designed and which opened on "
     "{opened}. Its {volumes} books include {treasure}, its best-known item. In {fire} a fire destroyed {lost} "
     "books. The reading room seats {seats} people, and the library {extra}."),
    (F("opened", "date", "{Name} opened on {opened}.",
       "vp:opened {opened_on}", "vp:was opened {opened_on}", "pre:Opened {opened_on},"),
     F("benefactor", "entity", "{Name} was paid for by {benefactor}.",
       "vp:was paid for by {benefactor_v}", "s:{benefactor_v} paid for {obj}", "vp:was funded by {benefactor_v}"),
     F("architect", "entity", "{Name} was designed by {architect}.",
       "vp:was designed by {architect_v}", "s:{architect_v} designed {obj}", "pre:Designed by {architect_v},"),
     F("volumes", "quantity", "{Name} holds {volumes} books.",
       "vp:holds {volumes_v} books", "vp:has {volumes_v} books", "s:{its} collection numbers {volumes_v} books"),
     F("treasure", "entity", "The best-known item in {Name} is {treasure}.",
       "s:{its} best-known item is {treasure}", "s:{its} most treasured item is {treasure}",
       "vp:is best known for {treasure}"),
     F("fire", "date", "There was a fire at {Name} in {fire}.",
       "s:a fire broke out there in {fire}", "s:there was a fire in {fire}", "vp:had a fire in {fire}"),
     F("lost", "quantity", "A fire destroyed {lost} books at {Name}.",
       "s:a fire destroyed {lost_v} books", "s:{lost_v} books were lost in a fire", "vp:lost {lost_v} books in a fire"),
     F("seats", "quantity", "The reading room of {Name} seats {seats} people.",
       "s:{its} reading room seats {seats_v} people", "s:the reading room has seats for {seats_v} people",
       "vp:has a reading room for {seats_v} people"),
     F("extra", "relation", "{Name} {extra}.", "vp:{extra}", "vp:also {extra}", "s:today the library {extra}")),
    {("fire", "lost"): ("s:a fire in {fire} destroyed {lost_v} books", "vp:lost {lost_v} books in a fire in {fire}",
                        "s:in {fire} a fire destroyed {lost_v} books")},
)


def _railway(r: random.Random, nm: Names) -> dict:
    eng = nm.person()
    opened = day(r, 1835, 1905)
    length, stations, tlen, passengers = r.randint(8, 64), r.randint(4, 19), r.randint(30, 290) * 10, r.randint(20, 150)
    return dict(
        Name=f"the {nm.place()} Railway", short="the railway", alt=[], pron=[IT],
        opened=opened.full, opened_on=opened.on(), length=f"{length} kilometres",
        length_v=with_unit(exact(length), "kilometres", "km"), stations=str(stations), stations_v=exact(stations),
        eng=eng.full, eng_v=[f"the engineer {eng.full}", eng.full], terminus=f"{nm.place()} Junction",
        tlen=f"{tlen:,} metres", tlen_v=with_unit(exact(tlen), "metres", "m"),
        closed=str(r.randint(opened.y + 50, 1975)), passengers=about(passengers * 1000)[0],
        passengers_v=about(passengers * 1000),
    )


RAILWAY = Topic(
    "railway", _railway,
    (("What is known about {Name}?", ()), ("Describe the history of {Name}.", ()), ("Tell me about {Name}.", ())),
    ("{Name} opened on {opened} and runs for {length} through {stations} stations to {terminus}. The engineer "
     "{eng} built it, including a tunnel {tlen} long. It closed in {closed}, but it now runs steam trains as a "
     "heritage line and carries {passengers} passengers a year.",
     "Built by the engineer {eng}, {Name} opened on {opened}. The line is {length} long, ends at {terminus}, has "
     "{stations} stations and passes through a tunnel {tlen} long. It closed in {closed} and today runs steam "
     "trains as a heritage line, carrying {passengers} passengers a year."),
    (F("opened", "date", "{Name} opened on {opened}.",
       "vp:opened {opened_on}", "vp:was opened {opened_on}", "pre:Opened {opened_on},"),
     F("length", "quantity", "{Name} runs for {length}.",
       "vp:runs for {length_v}", "vp:is {length_v} long", "s:the whole route is {length_v} long"),
     F("stations", "quantity", "{Name} has {stations} stations.",
       "vp:has {stations_v} stations", "vp:serves {stations_v} stations", "s:there are {stations_v} stations on {obj}"),
     F("terminus", "entity", "{Name} ends at {terminus}.",
       "vp:ends at {terminus}", "vp:goes to {terminus}", "s:{its} last stop is {terminus}"),
     F("eng", "entity", "{Name} was built by {eng}.",
       "vp:was built by {eng_v}", "s:{eng_v} built {obj}", "vp:was the work of {eng_v}"),
     F("tlen", "quantity", "{Name} has a tunnel {tlen} long.",
       "vp:has a tunnel {tlen_v} long", "vp:passes through a tunnel {tlen_v} long", "s:{its} tunnel is {tlen_v} long"),
     F("closed", "date", "{Name} closed in {closed}.", "vp:closed in {closed}", "vp:was closed in {closed}",
       "s:regular trains stopped running in {closed}"),
     F("heritage", "relation", "{Name} now runs steam trains as a heritage line.",
       "vp:now runs steam trains as a heritage line", "vp:has become a heritage line with steam trains",
       "s:today steam trains run on {obj} again"),
     F("passengers", "quantity", "{Name} carries {passengers} passengers a year.",
       "vp:carries {passengers_v} passengers a year", "s:{passengers_v} passengers use {obj} each year",
       "vp:is used by {passengers_v} passengers a year")),
)

TOPICS: tuple[Topic, ...] = (LIGHTHOUSE, BRIDGE, TOWN, COMPANY, EXPEDITION, FESTIVAL, SPECIES, INVENTION, SHIP,
                             OBSERVATORY, CANAL, SCIENTIST, MINE, LIBRARY, RAILWAY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default datasets/mentions)")
    parser.add_argument("--check", action="store_true", help="then run the instrument check (needs spaCy)")
    args, rest = parser.parse_known_args(argv)
    prompts = write_corpus(args.out)
    print(summary(prompts))
    print(f"wrote {', '.join(sorted(render_files(prompts)))} to {args.out}")
    if args.check:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import mentions_corpus_check

        return mentions_corpus_check.main(["--corpus", str(args.out), *rest])
    return 0


if __name__ == "__main__":
    sys.exit(main())
