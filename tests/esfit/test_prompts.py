"""esfit.prompts: the prompt template check."""

from __future__ import annotations

import pytest

from esfit.prompts import DEFAULT_PROMPT_TEMPLATE, TemplateError, check_prompt_template, format_user_message


@pytest.mark.parametrize("template", [DEFAULT_PROMPT_TEMPLATE, "{prompt}", "Q: {prompt}\nText: {source} {{literal}}"])
def test_good_templates_pass_unchanged(template):
    assert check_prompt_template(template) == template
    assert "question" in format_user_message(template, prompt="question", source="passage")


@pytest.mark.parametrize(("template", "message"), [
    ("{question}", r"prompt_template='\{question\}' has unknown placeholder\(s\) \{question\}"),
    ("{0} {prompt}", r"unknown placeholder\(s\) \{0\}"),
    ("{}{prompt}", r"unknown placeholder\(s\) \{\}"),
    ("{source}", r"has no \{prompt\} placeholder"),
    ("{prompt} {", r"is not a valid template \(Single '\{'"),
    ("{prompt!z}", r"cannot be filled \(ValueError"),
    ("{prompt:d}", r"cannot be filled"),
    ("{prompt.upper}", r"unknown placeholder\(s\) \{prompt\.upper\}"),
    (42, r"must be a string"),
])
def test_bad_templates_name_the_option_and_the_fix(template, message):
    with pytest.raises(TemplateError, match=message) as info:
        check_prompt_template(template)
    assert "{prompt} for the question" in str(info.value)
    with pytest.raises(TemplateError, match=r"^--prompt-template="):
        check_prompt_template(template, option="--prompt-template")


def test_shared_prompt_ids_names_the_first_pair_that_shares_prompts():
    from esfit.prompts import PromptSet, shared_prompt_ids

    def prompts(*ids):
        return PromptSet(list(ids), [f"q {i}" for i in ids], [None] * len(ids), {i: [] for i in ids}, [[] for _ in ids])

    assert shared_prompt_ids({"train": prompts("a", "b"), "eval": prompts("c")}) is None
    sets = {"train": prompts("a", "b"), "eval": prompts("c", "d"), "validation": prompts("d", "b", "e")}
    assert shared_prompt_ids(sets) == ("train", "validation", ["b"])
    assert shared_prompt_ids({"eval": sets["eval"], "validation": sets["validation"]}) == ("eval", "validation", ["d"])
