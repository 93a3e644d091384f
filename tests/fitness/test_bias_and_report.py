"""Small-sample bias behaves as documented; the HTML report is one self-contained page."""

from __future__ import annotations

import re

import numpy as np

from fitness import DEFAULT_SPEC, score_corpus
from fitness.bias import null_divergence, zipf_rates
from fitness.report import write_report
from infoextract import Record


def test_null_value_is_below_a_real_difference_and_shrinks_with_more_answers():
    same = zipf_rates(60)
    diff = zipf_rates(60, order=np.r_[np.arange(19, -1, -1), np.arange(20, 60)])
    null3 = null_divergence(same, same, 3, n_trials=100)[0]
    null10 = null_divergence(same, same, 10, n_trials=100)[0]
    real5 = null_divergence(same, diff, 5, n_trials=100)[0]
    null5 = null_divergence(same, same, 5, n_trials=100)[0]
    assert null10 < null3
    assert null5 < real5
    assert 0 < null5 < 1


def test_report_is_self_contained(tmp_path, word_extractor):
    refs = [Record("q1", "Alice met Bob in Paris."), Record("q1", "Bob met Alice in Rome."),
            Record("q2", "The river floods in spring."), Record("q2", "Spring floods reach the village.")]
    cands = [Record("q1", "Alice saw Carol in Paris.", author="m"), Record("q2", "Rivers <b>flood</b>.", author="m")]
    report = score_corpus(refs, cands, DEFAULT_SPEC, extractor=word_extractor, by_author=True, n_boot=20,
                          progress=False)
    path = write_report(report, tmp_path / "r.html", spec=DEFAULT_SPEC)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3  # distributions, depth, scatter
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    assert "<b>flood</b>" not in page  # texts are escaped
    assert "carol" in page.lower()  # a fact the model says that people do not
