"""The registry of fitness components: a dict of :class:`ComponentInfo` records and the
``register(name, ...)`` decorator that fills it (the catalogue/spaCy pattern: an unknown name lists
the known ones). Component metadata that composition needs, whether a component reads the source
and its worst value, is declared here at registration, as values or functions of the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Params", "ComponentInfo", "COMPONENTS", "register", "make_component"]

Component = Callable[[Any], float]  # PromptContext -> float (fitness.components)
Params = dict[str, Any]


@dataclass(frozen=True)
class ComponentInfo:
    """The registry record of one component factory.

    Attributes:
        factory: ``factory(**params) -> component``, a component being ``PromptContext -> float``.
        higher_is_better: a score (True) or a divergence (False).
        doc: the factory's docstring.
        needs_source: whether the component reads the source document (source support or
            positions), given its parameters.
        worst: the value used when there is nothing to compare or the component returns no finite
            number, given its parameters; ``None`` means 0 for a score, 1 for a divergence.
    """

    factory: Callable[..., Component]
    higher_is_better: bool
    doc: str
    needs_source: Callable[[Params], bool] = lambda params: False
    worst: Callable[[Params], float | None] = lambda params: None

    def worst_for(self, params: Params) -> float:
        """The worst value of the component built with ``params``."""
        value = self.worst(params)
        if value is None:
            return 0.0 if self.higher_is_better else 1.0
        return float(value)


COMPONENTS: dict[str, ComponentInfo] = {}


def _as_rule(value: Any, name: str, what: str) -> Callable[[Params], Any]:
    if callable(value):
        return value
    if what == "needs_source" and not isinstance(value, bool):
        raise TypeError(f"register({name!r}, needs_source=...) takes a bool or fn(params) -> bool, got {value!r}")
    if what == "worst" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"register({name!r}, worst=...) takes a number, None or fn(params) -> number, got {value!r}")
    return lambda params: value


def register(name: str, *, higher_is_better: bool, needs_source: bool | Callable[[Params], bool] = False,
             worst: float | Callable[[Params], float | None] | None = None):
    """Register a component factory under ``name`` (decorator).

    Args:
        name: the name used in specs.
        higher_is_better: a score (True) or a divergence (False).
        needs_source: whether the component reads the source; a bool, or ``fn(params) -> bool``
            when it depends on the parameters (``f1_at_k(support="source")``).
        worst: the component's worst value (see :class:`ComponentInfo`), or ``fn(params)``.
    """
    needs_rule = _as_rule(needs_source, name, "needs_source")
    worst_rule = _as_rule(worst, name, "worst")

    def deco(factory):
        if name in COMPONENTS:
            raise ValueError(f"fitness component {name!r} is already registered; pick another name")
        COMPONENTS[name] = ComponentInfo(factory, higher_is_better, (factory.__doc__ or "").strip(),
                                         needs_rule, worst_rule)
        return factory

    return deco


def make_component(name: str, **params) -> Component:
    """Build a registered component; an unknown name lists the known ones."""
    if name not in COMPONENTS:
        raise KeyError(f"unknown fitness component {name!r}; known components: {', '.join(sorted(COMPONENTS))}")
    try:
        return COMPONENTS[name].factory(**params)
    except TypeError as err:
        raise ValueError(f"bad parameters {params} for fitness component {name!r}: {err}") from None
