"""Spec/TOML/mapping composition, the registry, and scoring on hand-built extractions."""

from __future__ import annotations

import math

import pytest

import fitness
from fitness import DEFAULT_SPEC, Fitness, build_fitness, parse_spec, register
from infoextract import Extraction, Fact


def ext(*keys, kind="entity"):
    return Extraction(tuple(Fact(kind, k, k, (0, 1), "X") for k in keys))


REFS = {"p": [ext("a", "b", "c"), ext("a", "b", "d"), ext("a", "c", "e")]}


def test_parse_spec_terms_params_and_weights():
    terms = parse_spec("f1_at_k(k=median, balance=none):1.5 + js_facts:-0.5 + w1_depth + divergence(view=kind):-2e-1")
    assert terms[0] == ("f1_at_k(k=median,balance=none)", "f1_at_k", {"k": "median", "balance": None}, 1.5)
    assert terms[1] == ("js_facts", "js_facts", {}, -0.5)
    assert terms[2] == ("w1_depth", "w1_depth", {}, None)
    assert terms[3][2] == {"view": "kind"} and terms[3][3] == pytest.approx(-0.2)


def test_default_weights_follow_direction_and_wrong_sign_is_refused():
    f = build_fitness("f1_at_k + js_facts")
    assert [t.weight for t in f.terms] == [1.0, -1.0]
    with pytest.raises(ValueError, match="reward a worse value"):
        build_fitness("js_facts:0.5")
    with pytest.raises(ValueError, match="reward a worse value"):
        build_fitness("f1_at_k:-1")


def test_unknown_component_lists_known_ones():
    with pytest.raises(KeyError, match="known components: .*f1_at_k.*js_facts"):
        build_fitness("f1_at_k + bleu")


@pytest.mark.parametrize("bad", ["", "f1_at_k:", "f1_at_k(k)", "f1_at_k((k=1))", "js_facts:abc"])
def test_bad_specs_raise_clear_errors(bad):
    with pytest.raises((ValueError, KeyError)):
        build_fitness(bad)


def test_bad_component_parameters_name_them():
    with pytest.raises(ValueError, match="view"):
        build_fitness("divergence(view=colour)")
    with pytest.raises(ValueError, match="bad parameters"):
        build_fitness("js_facts(nope=1)")
    with pytest.raises(ValueError, match="labels must be unique"):
        build_fitness("js_facts + js_facts:-2")


def test_toml_and_mapping(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text('[components.f1]\ncomponent = "f1_at_k"\nweight = 2.0\nk = 3\n\n[components.js_facts]\nweight = -0.5\n')
    f = build_fitness(path)
    assert [(t.label, t.weight) for t in f.terms] == [("f1", 2.0), ("js_facts", -0.5)]
    assert repr(build_fitness({"fitness": {"spec": "f1_at_k"}})) == "Fitness(f1_at_k:1)"
    (tmp_path / "bad.toml").write_text("[components\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        build_fitness(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="components"):
        build_fitness({"weights": 1})


def test_default_spec_builds_and_mixes_recall_precision_and_depth():
    f = build_fitness(None)
    assert repr(f) == repr(build_fitness(DEFAULT_SPEC))
    assert {t.label for t in f.terms} == {"recall(words=0.75)", "f1_at_k", "w1_depth"}


def test_score_reports_components_and_is_higher_for_a_better_answer():
    f = build_fitness(DEFAULT_SPEC)
    good = {"p": [ext("a", "b", "c")]}
    poor = {"p": [ext("a", "x", "y", "z")]}
    rg, rp = f.score(good, REFS), f.score(poor, REFS)
    assert set(rg.components) == {t.label for t in f.terms}
    assert rg.total > rp.total
    assert rg.per_prompt["p"]["total"] == pytest.approx(rg.total)
    expected = sum(t.weight * rg.components[t.label] for t in f.terms)
    assert rg.total == pytest.approx(expected)


def test_empty_and_prompt_copies_get_the_worst_value_never_nan():
    f = build_fitness(DEFAULT_SPEC)
    for cands in ({"p": []}, {"p": [ext()]}, {"p": [ext("q")]}):
        r = f.score(cands, REFS, prompts={"p": ext("q")})
        assert math.isfinite(r.total) and r.total == pytest.approx(f.worst)
    with pytest.raises(KeyError, match="no references"):
        f.score({"other": [ext("a")]}, REFS)
    with pytest.raises(ValueError, match="empty"):
        f.score({}, REFS)


def test_repeating_a_fact_does_not_raise_the_score():
    f = build_fitness(DEFAULT_SPEC)
    once = Extraction((Fact("entity", "a", "a", (0, 1)), Fact("entity", "b", "b", (2, 3))))
    twice = Extraction(once.facts + (Fact("entity", "a", "a", (4, 5), duplicate=True),))
    assert f.score({"p": [twice]}, REFS).total == pytest.approx(f.score({"p": [once]}, REFS).total)


def test_register_a_custom_component_and_nan_becomes_worst():
    name = "test_nan_component"
    if name not in fitness.COMPONENTS:
        @register(name, higher_is_better=True)
        def factory():
            return lambda ctx: float("nan")

    f = build_fitness(f"{name} + f1_at_k")
    with pytest.warns(RuntimeWarning, match=name):
        r = f.score({"p": [ext("a", "b")]}, REFS)
    assert r.components[name] == 0.0 and math.isfinite(r.total)
    with pytest.raises(ValueError, match="already registered"):
        register(name, higher_is_better=True)(lambda: None)
    assert isinstance(f, Fitness)


def test_compose_from_python():
    from fitness import term

    fit = Fitness([term("f1_at_k", k=5), term("js_facts", -0.5)]) + term("w1_depth", -0.25, label="depth")
    assert repr(fit) == "Fitness(f1_at_k:1 + js_facts:-0.5 + depth:-0.25)"
    both = build_fitness("f1_at_k") + build_fitness("tv_facts")
    assert [t.label for t in both.terms] == ["f1_at_k", "tv_facts"]
    r = fit.score({"p": [ext("a", "b")]}, REFS)
    assert set(r.components) == {"f1_at_k", "js_facts", "depth"}


# ---- issue 12: component metadata declared at registration ---------------------------------------


def test_metadata_is_declared_in_the_registry_not_on_closures():
    info = fitness.COMPONENTS["f1_at_k"]
    assert info.needs_source({"support": "source"}) and not info.needs_source({})
    assert fitness.COMPONENTS["divergence"].worst_for({"divergence": "kl"}) == fitness.KL_CAP
    assert fitness.COMPONENTS["js_facts"].worst_for({}) == 1.0 and info.worst_for({}) == 0.0
    assert build_fitness("f1_at_k(support=both)").needs_source and not build_fitness("f1_at_k").needs_source
    assert build_fitness("divergence(divergence=kl)").worst == -fitness.KL_CAP
    for name in ("f1_at_k", "js_facts", "w1_depth", "recall", "divergence"):
        component = fitness.make_component(name)
        assert not hasattr(component, "worst") and not hasattr(component, "needs_source")


def test_register_takes_needs_source_and_worst():
    name = "test_declared_component"
    if name not in fitness.COMPONENTS:
        register(name, higher_is_better=False, needs_source=True, worst=5.0)(lambda: (lambda ctx: 1.0))
    term = build_fitness(name).terms[0]
    assert term.needs_source and term.worst == 5.0
    with pytest.raises(TypeError, match="needs_source"):
        register("test_bad_meta", higher_is_better=True, needs_source="yes")
    with pytest.raises(TypeError, match="worst"):
        register("test_bad_meta", higher_is_better=True, worst="1")


# ---- issue 13: clear errors for bad TOML/spec entries, and plugin values that are not numbers -----


@pytest.mark.parametrize(("mapping", "message"), [
    ({"components": {"f1": 3}}, r"\[components\] entry 'f1' must be a table.*\[components.f1\]"),
    ({"components": {"f1_at_k": {"weight": [1]}}}, r"weight of 'f1_at_k' must be a number.*got \[1\] \(list\)"),
    ({"components": {"f1_at_k": {"weight": True}}}, r"weight of 'f1_at_k' must be a number.*got True \(bool\)"),
    ({"components": {"f1_at_k": {"weight": 0}}}, r"weight 0 of 'f1_at_k' makes the term do nothing"),
    ({"components": {"f1": {"component": 7}}}, r"\[components.f1\] component must be a component name"),
])
def test_bad_toml_entries_give_one_clear_value_error(mapping, message):
    with pytest.raises(ValueError, match=message):
        build_fitness(mapping)


def test_bad_toml_file_and_spec_weights(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text("[components]\nf1 = 3\n")
    with pytest.raises(ValueError, match="entry 'f1' must be a table"):
        build_fitness(path)
    with pytest.raises(ValueError, match="weight 0 of 'f1_at_k'"):
        build_fitness("f1_at_k:0")
    with pytest.raises(ValueError, match="weight '1e' of term 'f1_at_k:1e' is not a number"):
        build_fitness("f1_at_k:1e")


@pytest.mark.parametrize(("tag", "bad"), [("nan", float("nan")), ("inf", float("inf")), ("str", "0.5"),
                                         ("none", None), ("bool", True)])
def test_a_plugin_value_that_is_not_a_finite_number_is_its_worst_with_one_warning(tag, bad):
    name = f"test_plugin_returns_{tag}"
    if name not in fitness.COMPONENTS:
        register(name, higher_is_better=False, worst=2.0)(lambda: (lambda ctx: bad))
    fit = build_fitness(f"{name} + f1_at_k")
    with pytest.warns(RuntimeWarning, match=f"fitness component '{name}' returned .*worst value 2") as caught:
        first = fit.score({"p": [ext("a", "b")]}, REFS)
        fit.score({"p": [ext("a", "c")], "q": [ext("b")]}, {**REFS, "q": REFS["p"]})
    assert len([w for w in caught if name in str(w.message)]) == 1  # once per component
    assert first.components[name] == 2.0 and math.isfinite(first.total)
