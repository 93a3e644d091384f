"""The presence decision and each matching rule, on hand-checked sentences through the real extractor."""

from __future__ import annotations

import math

import pytest

from fitness import (
    MATCH_RULES,
    PRESENCE_THRESHOLD,
    ROLE_WEIGHTS,
    WEIGHTED_PRESENCE_THRESHOLD,
    Presence,
    SupportIndex,
    presence,
    presence_scores,
    statement_roles,
    statement_weights,
)
from fitness.presence import IDF_FLOOR
from fitness.support import fact_words, stem
from infoextract import Extraction, Fact

STORY = ("Kevin Carr set off from Haytor in July 2013. Carr has walked 16,000 miles since then. "
         "He paid £40 for a tent.")


@pytest.fixture(scope="module")
def ex(real_extractor):
    return real_extractor


def check(ex, statement: str, candidate: str = STORY) -> Presence:
    return presence(ex.extract([statement])[0], ex.extract([candidate])[0])


def how(p: Presence) -> dict[str, str]:
    return {m.fact.key: m.how for m in p.matches}


def test_a_paraphrase_with_a_short_name_is_present(ex):
    p = check(ex, "Carr paid £40 for a tent.")
    assert p.present and p.score == 1.0 and p.missing == ()
    assert how(p)["carr|pay|40 gbp"] == "triple"          # arguments match ("Carr" in "Kevin Carr"), same verb
    assert {m.by.key for m in p.matches if m.how == "triple"} == {"kevin carr|pay|40 gbp", "kevin carr|pay for|tent"}
    assert how(p)["carr"] == "words"                      # the name rule is off by default
    named = presence(ex.extract(["Carr paid £40."])[0],
                     SupportIndex.from_extractions(ex.extract([STORY]), rules=MATCH_RULES))
    assert how(named)["carr"] == "name"                   # "Carr" / "Kevin Carr"


def test_a_pronoun_resolved_in_the_candidate_makes_the_triple_match(ex):
    p = check(ex, "Kevin Carr paid £40.", "Kevin Carr set off from Haytor. He paid £40 for a tent.")
    assert p.present and how(p)["kevin carr|pay|40 gbp"] == "exact"


def test_dates_match_by_year_and_numbers_within_tolerance(ex):
    p = check(ex, "Kevin Carr set off in 2013.")
    assert p.present and how(p)["2013"] == "number"
    p = check(ex, "36,000 runners took part.", "About 35,500 runners took part in the race.")
    assert p.present and how(p)["36000 runner"] == "number"  # 1.4 % apart: approximately the same


def test_with_the_number_gate_a_contradicted_number_makes_a_statement_absent(ex):
    story = ex.extract([STORY])[0]
    wrong = ex.extract(["Kevin Carr walked 18,000 miles."])[0]
    p = presence(wrong, story, numbers=True, roles=None)
    assert p.score >= 0.75 and not p.present                 # most words agree, the number does not
    assert [f.key for f in p.contradicted] == ["18000 mile"]
    assert presence(wrong, story, roles=None).present        # the gate is off by default (measured: README)
    assert presence(ex.extract(["Kevin Carr walked 16,000 miles."])[0], story, numbers=True).present


# ---- the words' roles: a predicate's verb weighs less, a number more ----------------------------


def test_statement_roles_come_from_the_statements_facts(ex):
    roles = statement_roles(ex.extract(["Bayern Munich won 6 - 1."])[0])
    # the verb by its lemma and by the word the statement keeps ("won": its lemma "win" is too far)
    assert roles == {"win": "predicate", "won": "predicate", "6": "number", "1": "number"}
    roles = statement_roles(ex.extract(["Danilo agreed to join for 23 million."])[0])
    assert roles["23000000"] == "number" and roles["join"] == roles["agree"] == "predicate"
    assert "danil" not in roles                              # names have no role
    roles = statement_roles(ex.extract(["Kevin Carr paid £40 in the summer."])[0])
    assert roles["40"] == "number" and "gbp" not in roles and "summe" not in roles  # digits only
    assert statement_roles(Extraction((), (("kevin", "carr"),))) == {}


def test_a_paraphrased_verb_does_not_make_a_statement_absent(ex):
    # REALSumm: the SCU "Danilo agreed to join for 23 million" against "Danilo will move to Real
    # Madrid in a deal worth £23million" -- all three annotators: present
    scu = ex.extract(["Danilo agreed to join for 23 million."])[0]
    summary = ex.extract(["Danilo will move to Real Madrid in a deal worth £23million."])[0]
    p = presence(scu, summary)
    assert p.present and p.missing == ("agree", "join")      # who and how much: found; the verbs: not
    assert p.score == pytest.approx((1 + 3) / (1 + 0.75 + 0.75 + 3))
    flat = presence(scu, summary, roles=None)
    assert flat.score == pytest.approx(2 / 4) and not flat.present


def test_a_wrong_number_weighs_more_than_a_word(ex):
    # 18,000 miles is not 16,000: four of five words agree, but the one that differs is the number
    p = check(ex, "Kevin Carr walked 18,000 miles.")
    assert not p.present and p.missing == ("18000",)
    assert check(ex, "Kevin Carr walked 16,000 miles.").present
    assert presence(ex.extract(["Kevin Carr walked 18,000 miles."])[0], ex.extract([STORY])[0], roles=None).present


def test_role_weights_are_checked(ex):
    scu, story = ex.extract(["Kevin Carr walked 16,000 miles."])[0], ex.extract([STORY])[0]
    with pytest.raises(ValueError, match="roles"):
        presence(scu, story, roles={"verb": 0.5})
    with pytest.raises(ValueError, match="roles"):
        presence(scu, story, roles={"number": -1})
    assert ROLE_WEIGHTS["predicate"] < 1 < ROLE_WEIGHTS["number"]
    assert presence(scu, story, roles={"number": 1.0}).score == presence(scu, story, roles=None).score


def test_a_name_in_a_lower_cased_text_matches_across_kinds(ex):
    p = check(ex, "Kevin Carr walked 16,000 miles.", "kevin carr walked 16,000 miles across britain.")
    assert p.present and how(p)["kevin carr"] == "exact"


def test_words_of_one_sentence_support_a_triple(ex):
    p = check(ex, "The president signed the bill.", "The bill was signed by President Obama on Tuesday.")
    assert p.present and how(p)["president|sign|bill"] == "words"


def test_support_scores_give_a_words_only_match_partial_credit(ex):
    statement = ex.extract(["The president signed the bill."])[0]
    index = SupportIndex.from_extractions(ex.extract(["The bill was signed by President Obama on Tuesday."]))
    facts = statement.unique_facts
    by_key = dict(zip((f.key for f in facts), index.support_scores(facts, words=0.75)))
    assert by_key["president|sign|bill"] == 0.75          # found only as words of one sentence
    assert by_key["bill"] == 1.0                          # the concept, matched by key
    assert index.support_scores(facts).tolist() == index.supports(facts).astype(float).tolist()
    assert index.support_scores(facts, words=0)[[f.key for f in facts].index("president|sign|bill")] == 0
    with pytest.raises(ValueError, match="words"):
        index.support_scores(facts, words=1.5)


def test_unrelated_statements_are_absent(ex):
    p = check(ex, "The council closed the public library.")
    assert not p.present and p.score < 0.3 and p.found == ()
    assert not check(ex, "", STORY).present  # nothing to find is never present


def test_presence_scores_build_the_index_once_and_accept_an_index(ex):
    story = ex.extract([STORY])[0]
    statements = ex.extract(["Carr paid £40.", "The council closed the library."])
    index = SupportIndex.from_extractions([story])
    scores = presence_scores(statements, index)
    assert scores.tolist() == presence_scores(statements, story).tolist()
    assert scores[0] == 1.0 and scores[1] < 0.5
    with pytest.raises(ValueError, match="threshold must be in"):
        presence(statements[0], story, threshold=0)
    with pytest.raises(TypeError, match="Extraction or a SupportIndex"):
        presence(statements[0], "a text")


# ---- the rules one by one, on hand-built facts ---------------------------------------------------


def fact(key, kind="entity", label="PERSON"):
    return Fact(kind, key, key, (0, len(key)), label)


def test_each_rule_can_be_turned_off_and_is_named():
    refs = [fact("kevin carr"), fact("kevin carr|pay|40 gbp", "relation", "pay"), fact("16000 mile", "quantity", "mile")]
    queries = [fact("carr"), fact("carr|pay|40 gbp", "relation", "pay"), fact("16100 mile", "quantity", "mile")]
    full = SupportIndex.build(refs, rules=MATCH_RULES)
    assert [full.match(q).how for q in queries] == ["name", "triple", "number"]
    assert SupportIndex.build(refs).match(queries[0]) is None  # DEFAULT_RULES: no "name"
    assert SupportIndex.build(refs).match(fact("kevin carr", "concept", "")).how == "exact"  # across kinds
    bare = SupportIndex.build(refs, rules=("exact",), fuzzy_threshold=100)
    assert bare.supports(queries).tolist() == [False, False, False]
    with pytest.raises(ValueError, match="rules must be a subset"):
        SupportIndex.build(refs, rules=("exact", "magic"))
    assert MATCH_RULES[0] == "exact" and MATCH_RULES[-1] == "words"


def test_a_name_matches_a_longer_one_ending_in_the_same_word_only():
    index = SupportIndex.build([fact("manchester united"), fact("kevin carr")], rules=MATCH_RULES)
    assert index.supports([fact("united"), fact("manchester"), fact("carr"), fact("kevin")]).tolist() == [
        True, False, True, False]


def test_a_negated_or_reversed_triple_is_another_fact():
    index = SupportIndex.build([fact("council|raise|money", "relation", "raise")], fuzzy_threshold=100)
    assert index.supports([fact("council|not raise|money", "relation", "not raise"),
                           fact("money|raise|council", "relation", "raise"),
                           fact("city council|raise|money", "relation", "raise")]).tolist() == [False, False, True]


def test_quantities_without_a_unit_match_a_unit_and_dates_ignore_labels():
    index = SupportIndex.build([fact("3 ship", "quantity", "ship"), fact("1987-05-01", "date", "DATE")])
    q = [fact("3", "quantity", ""), fact("4 ship", "quantity", "ship"), fact("1987", "date", "DATE"),
         fact("1989", "date", "DATE")]
    assert index.supports(q).tolist() == [True, False, True, False]
    assert index.contradicts(q[1]) and not index.contradicts(fact("5 goal", "quantity", "goal"))


def test_fact_words_and_stems():
    assert fact_words(fact("obama|bear in|hawaii", "relation")) == {"obama", "bear", "hawai"}
    assert stem("competition") == stem("competitive") == "compe" and stem("16000") == "16000"
    words = SupportIndex.build([], sentences=[["kevin", "carr", "walk"]])
    assert words.match(fact("carr|walk|", "relation")).how == "words"
    assert Extraction().sentences == ()


# ---- words weighted by their idf over a set of statements (the SCUs of one reference) -----------


def said(*words):
    return Extraction((), (tuple(words),))


SCUS = [said("kevin", "carr", "set", "haytor"), said("kevin", "carr", "pay", "40", "tent"),
        said("kevin", "carr", "walk", "16000", "mile")]


def test_statement_weights_are_the_idf_over_the_set():
    w = statement_weights(SCUS)
    assert w["kevin"] == w["carr"] == pytest.approx(IDF_FLOOR)              # in all 3 statements
    assert w["tent"] == pytest.approx(math.log(4 / 2) + IDF_FLOOR)          # in one of 3
    assert w[stem("haytor")] == w["tent"] and "council" not in w
    assert statement_weights([]) == {}
    assert statement_weights(SCUS, floor=0)["carr"] == 0.0
    with pytest.raises(ValueError, match="floor"):
        statement_weights(SCUS, floor=-1)


def test_weighted_presence_counts_what_sets_a_statement_apart():
    w = statement_weights(SCUS)
    # the candidate names Carr but says nothing of the tent: 2 of 5 words (absent either way), and
    # weighted, the shared name is worth little
    only_name = SupportIndex.build([], sentences=[["kevin", "carr", "set", "off"]])
    plain, weighted = presence(SCUS[1], only_name), presence(SCUS[1], only_name, weights=w)
    assert plain.score == pytest.approx(2 / 5) and not plain.present
    assert weighted.score < 0.1 and not weighted.present
    # the candidate says what the statement adds but not who: 3 of 5 words, absent unweighted;
    # weighted, what sets the statement apart is found, so it is present
    no_name = SupportIndex.build([], sentences=[["he", "pay", "40", "tent"]])
    plain, weighted = presence(SCUS[1], no_name), presence(SCUS[1], no_name, weights=w)
    assert plain.score == pytest.approx(3 / 5) and not plain.present
    assert weighted.score > 0.9 and weighted.present                  # threshold WEIGHTED_PRESENCE_THRESHOLD
    assert WEIGHTED_PRESENCE_THRESHOLD < PRESENCE_THRESHOLD
    assert not presence(SCUS[1], no_name, weights=w, threshold=0.99).present
    # a word without a weight weighs 1; a statement of shared words only is decided on them
    assert presence(said("kevin", "carr"), only_name, weights=w).present
    assert presence_scores(SCUS, no_name, weighted=True)[1] == pytest.approx(weighted.score)
    assert presence_scores(SCUS, no_name)[1] == pytest.approx(plain.score)
