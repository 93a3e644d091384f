"""Compose components into a :class:`Fitness`: weighted sums from Python, a one-line spec or TOML.

Spec grammar (one line)::

    spec   := term ("+" term)*
    term   := name ["(" param ("," param)* ")"] [":" weight]
    param  := key "=" value          # value: int, float, or a bare string

e.g. ``"f1_at_k(k=median):1 + js_facts:-0.5 + w1_depth:-0.25"``. A term without a weight gets
+1 for a score and -1 for a divergence. A weight whose sign would *reward* a divergence (or
punish a score) is refused, so the total is always higher-is-better; so is a weight of 0 (the term
would do nothing), a boolean or anything but a number. A component value that is not a finite
number (NaN, inf, a string from a plugin) becomes the component's worst value, with one
``RuntimeWarning`` per component naming it.

TOML::

    [components.f1]            # the table name is the label shown in reports
    component = "f1_at_k"      # optional when the label is a registered name
    weight = 1.0
    k = "median"               # every other key is a parameter of the component

or ``spec = "<one-line spec>"`` at the top level (optionally inside a ``[fitness]`` table).
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitness.components import COMPONENTS, PromptContext, make_component
from fitness.depth import informative
from infoextract import Extraction

__all__ = ["Term", "term", "Fitness", "FitnessResult", "build_fitness", "parse_spec", "DEFAULT_SPEC"]

# Recall of the references' distinct facts (kind-balanced; a fact found only as words of one sentence
# of the answer, not as a matched fact, counts 0.75) plus the precision side (kind-balanced F1@K: facts
# supported by the references, recall capped at their median depth) and a depth match (W1 of log
# supported depth). Chosen on REALSumm (system level) and SQuALITY (per response) together, from a
# grid (the words credit in {0.5, 0.625, 0.75, 0.875, 1}, F1@K in {1/8, ..., 3/8}, W1 in {0, -1/8,
# -1/4, -3/8}; README): the mix with the highest REALSumm tau among those no worse than any of their
# own components on either set (more F1@K ranks REALSumm's systems better and SQuALITY's responses
# worse). The agreement figures in the README are in-sample for these weights
# (benchmarks/realsumm_agreement.py, benchmarks/squality_agreement.py).
DEFAULT_SPEC = "recall(words=0.75):1.0 + f1_at_k:0.25 + w1_depth:-0.125"


@dataclass(frozen=True)
class Term:
    """One weighted component: ``weight * component(ctx)`` is added to the total."""

    label: str
    component: Callable[[PromptContext], float]
    weight: float
    higher_is_better: bool = True
    worst: float = 0.0  # the value used when the component has nothing to compare or returns no number
    needs_source: bool = False  # the component reads the source (support or positions)


@dataclass
class FitnessResult:
    """``total`` (higher is better) = sum of weight x component mean over prompts; ``components``
    holds each component's mean (its own direction); ``per_prompt[pid]`` has ``"total"`` and every
    component for that prompt."""

    total: float
    components: dict[str, float]
    per_prompt: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"fitness": self.total, "components": dict(self.components)}


class Fitness:
    """A weighted sum of components, applied prompt by prompt and averaged over prompts."""

    def __init__(self, terms: Sequence[Term]):
        terms = list(terms)
        if not terms:
            raise ValueError("a Fitness needs at least one term; e.g. build_fitness('f1_at_k')")
        labels = [t.label for t in terms]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dupes:
            raise ValueError(f"component labels must be unique, got {dupes} twice; give them distinct labels")
        self.terms = terms
        self._warned: set[str] = set()  # labels of components already reported as returning no number

    def __repr__(self) -> str:
        return "Fitness(" + " + ".join(f"{t.label}:{t.weight:g}" for t in self.terms) + ")"

    def __add__(self, other: Fitness | Term) -> Fitness:
        """``fit + term("w1_depth", -0.25)`` or ``fit_a + fit_b``: the terms of both, summed."""
        extra = [other] if isinstance(other, Term) else list(other.terms)
        return Fitness([*self.terms, *extra])

    @property
    def needs_source(self) -> bool:
        """Whether a component reads the source (source support or source positions)."""
        return any(t.needs_source for t in self.terms)

    @property
    def worst(self) -> float:
        """The total of a prompt where every component is at its worst value."""
        return float(sum(t.weight * t.worst for t in self.terms))

    def score_prompt(self, candidates: Sequence[Extraction], references: Sequence[Extraction], *,
                     source: Extraction | None = None, prompt: Extraction | None = None) -> dict[str, float]:
        """Components and ``"total"`` for one prompt. Candidates without any informative fact (or no
        candidates) get every component's worst value; a non-finite component value does too."""
        banned = prompt.keys if prompt is not None else frozenset()
        ctx = PromptContext(
            candidates=[informative(e, banned) for e in candidates],
            references=[informative(e, banned) for e in references],
            source=source,
            prompt=prompt,
        )
        out: dict[str, float] = {}
        total = 0.0
        # answers that say nothing informative (empty, or only the prompt's own facts) are the
        # worst on every component by definition, whatever a component would make of "no facts"
        silent = all(e.depth == 0 for e in ctx.candidates)
        for t in self.terms:
            value = t.worst if silent else self._value(t, t.component(ctx))
            out[t.label] = value
            total += t.weight * value
        out["total"] = total
        return out

    def _value(self, t: Term, raw: Any) -> float:
        """A component's value as a finite float; anything else (NaN, inf, a string, None) is its
        worst value, with one warning per component (the same rule as the trainer's Python fitness)."""
        if isinstance(raw, numbers.Real) and not isinstance(raw, bool) and math.isfinite(raw):
            return float(raw)
        if t.label not in self._warned:
            self._warned.add(t.label)
            warnings.warn(
                f"fitness component {t.label!r} returned {raw!r} ({type(raw).__name__}), not a finite number; "
                f"its worst value {t.worst:g} is used instead (warned once per component). Make the "
                "component return a float.", RuntimeWarning, stacklevel=3)
        return t.worst

    def score(self, candidates: Mapping[str, Sequence[Extraction]], references: Mapping[str, Sequence[Extraction]],
              *, sources: Mapping[str, Extraction] | None = None,
              prompts: Mapping[str, Extraction] | None = None) -> FitnessResult:
        """Score candidate answers against reference answers, prompt by prompt.

        Args:
            candidates: prompt id -> the candidate answers' extractions (several rollouts each).
            references: prompt id -> the reference answers' extractions; must cover every
                candidate prompt.
            sources: prompt id -> extraction of the source document (for source support).
            prompts: prompt id -> extraction of the prompt text (its facts do not count).
        """
        if not candidates:
            raise ValueError("candidates is empty: give at least one prompt id with its answers")
        missing = [p for p in candidates if p not in references]
        if missing:
            raise KeyError(f"no references for prompt id(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                           "every candidate prompt needs reference answers")
        sources, prompts = sources or {}, prompts or {}
        per_prompt = {
            pid: self.score_prompt(cands, references[pid], source=sources.get(pid), prompt=prompts.get(pid))
            for pid, cands in candidates.items()
        }
        comps = {t.label: float(sum(pp[t.label] for pp in per_prompt.values()) / len(per_prompt))
                 for t in self.terms}
        total = float(sum(t.weight * comps[t.label] for t in self.terms))
        return FitnessResult(total=total, components=comps, per_prompt=per_prompt)


# --- building from specs ----------------------------------------------------------------------

_TERM = re.compile(r"^\s*(?P<name>[A-Za-z_][\w]*)\s*(?:\((?P<params>[^()]*)\))?\s*(?::\s*(?P<w>[-+]?[\d.eE+-]+))?\s*$")


def _value(text: str) -> Any:
    text = text.strip().strip("'\"")
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> list[tuple[str, str, dict[str, Any], float | None]]:
    """Parse a one-line spec into ``(label, name, params, weight or None)`` terms."""
    if not spec or not spec.strip():
        raise ValueError("fitness spec is empty; e.g. 'f1_at_k:1 + js_facts:-0.5'")
    terms = []
    # split on '+' that separates terms (not the sign of a weight such as ':+1' or an exponent)
    parts = re.split(r"(?<![:eE(=,])\+", spec)
    for raw in parts:
        m = _TERM.match(raw)
        if not m:
            raise ValueError(
                f"cannot parse fitness term {raw.strip()!r} in spec {spec!r}; expected NAME, "
                "NAME:WEIGHT or NAME(key=value, ...):WEIGHT, terms joined by '+'"
            )
        params = {}
        if m.group("params"):
            for item in m.group("params").split(","):
                if "=" not in item:
                    raise ValueError(f"parameter {item.strip()!r} of term {raw.strip()!r} must be key=value")
                k, v = item.split("=", 1)
                params[k.strip()] = _value(v)
        try:
            weight = float(m.group("w")) if m.group("w") else None
        except ValueError:
            raise ValueError(f"weight {m.group('w')!r} of term {raw.strip()!r} is not a number; "
                             "write NAME:WEIGHT such as f1_at_k:0.5") from None
        label = raw.split(":")[0].strip() if m.group("w") else raw.strip()
        terms.append((label.replace(" ", ""), m.group("name"), params, weight))
    return terms


def term(name: str, weight: float | None = None, *, label: str | None = None, **params: Any) -> Term:
    """A weighted registered component for composing from Python, e.g.
    ``Fitness([term("f1_at_k", k=5), term("js_facts", -0.5)])``; weight defaults as in specs."""
    return _term(label or name, name, params, weight)


def _weight(label: str, weight: Any, sign: float) -> float:
    if weight is None:
        return sign
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise ValueError(f"weight of {label!r} must be a number such as {sign:g} or {sign / 2:g}, "
                         f"got {weight!r} ({type(weight).__name__}); write e.g. weight = {sign:g}")
    weight = float(weight)
    if not math.isfinite(weight):
        raise ValueError(f"weight of {label!r} must be a finite number, got {weight!r}")
    if weight == 0:
        raise ValueError(f"weight 0 of {label!r} makes the term do nothing; remove the term or give it a "
                         f"non-zero weight (e.g. {sign:g})")
    return weight


def _term(label: str, name: str, params: dict[str, Any], weight: Any) -> Term:
    component = make_component(name, **params)  # raises with the known names
    info = COMPONENTS[name]
    sign = 1.0 if info.higher_is_better else -1.0
    weight = _weight(label, weight, sign)
    if weight * sign < 0:
        kind = "a score (higher is better)" if info.higher_is_better else "a divergence (lower is better)"
        raise ValueError(
            f"weight {weight:g} of {label!r} would reward a worse value: {name} is {kind}; "
            f"use weight {abs(weight) * sign:g} so the total stays higher-is-better"
        )
    # declared at registration (fitness.register(..., worst=, needs_source=)), per parameters
    return Term(label, component, weight, info.higher_is_better, info.worst_for(params),
                bool(info.needs_source(params)))


def _from_mapping(obj: Mapping[str, Any]) -> Fitness:
    if "fitness" in obj and isinstance(obj["fitness"], Mapping):
        obj = obj["fitness"]
    if "spec" in obj:
        return build_fitness(str(obj["spec"]))
    comps = obj.get("components")
    if not isinstance(comps, Mapping) or not comps:
        raise ValueError("a fitness mapping/TOML needs 'spec = \"...\"' or a [components.LABEL] table per "
                         f"component; got keys {sorted(obj)}")
    terms = []
    for label, params in comps.items():
        if not isinstance(params, Mapping):
            raise ValueError(
                f"[components] entry {label!r} must be a table, got {params!r} ({type(params).__name__}); "
                f"write it as [components.{label}] with component = \"<name>\" and weight = <number>, "
                f"or use spec = \"{label}:{params!r}\" for a weight")
        params = dict(params)
        name = params.pop("component", label)
        if not isinstance(name, str):
            raise ValueError(f"[components.{label}] component must be a component name (a string), got {name!r}")
        weight = params.pop("weight", None)
        terms.append(_term(label, name, params, weight))
    return Fitness(terms)


def build_fitness(spec: str | Mapping[str, Any] | Path | Fitness | None = None) -> Fitness:
    """A :class:`Fitness` from a one-line spec, a mapping, a ``.toml`` file, or ``None`` for
    :data:`DEFAULT_SPEC` (see the module docstring for the grammar)."""
    if spec is None:
        spec = DEFAULT_SPEC
    if isinstance(spec, Fitness):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(".toml")):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"fitness TOML file not found: {path}")
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: invalid TOML ({err})") from None
        return _from_mapping(data)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string, mapping, Path or Fitness, got {type(spec).__name__}")
    return Fitness([_term(*t) for t in parse_spec(spec)])
