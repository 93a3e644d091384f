"""Bias of the fact-distribution divergences at 3-10 answers per prompt (issue 3, section 2).

Answers are simulated as sets of facts: answer j mentions fact i with probability r_i (60 facts,
Zipf rates from 0.9 down). "same" draws both sides from one rate vector (the true divergence is 0);
"different" draws the candidates from the same rates reversed in popularity within the top 20
facts (people's favourite facts become rare, and the reverse). Printed: mean (std) over 300 trials.

    .venv/bin/python benchmarks/divergence_bias.py

Last line: ``null_js_plugin_n5=<mean JS in bits, same distribution, 5 answers each side>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitness.bias import null_divergence, zipf_rates  # noqa: E402


def main() -> None:
    same = zipf_rates(60)
    order = np.r_[np.arange(19, -1, -1), np.arange(20, 60)]
    diff = zipf_rates(60, order=order)
    settings = [("js", "plugin", "references"), ("tv", "plugin", "references"), ("hellinger", "plugin", "references"),
                ("js", "jeffreys", "references"), ("js", "jeffreys", "union"), ("kl", "jeffreys", "references"),
                ("kl", "jeffreys", "union")]
    print(f"{'divergence':<10} {'estimator':<9} {'support':<10} " + " ".join(
        f"{'n=' + str(n) + ' same':>14} {'n=' + str(n) + ' diff':>14}" for n in (3, 5, 10)))
    results = {}
    for div, est, sup in settings:
        cells = []
        for n in (3, 5, 10):
            m0, s0 = null_divergence(same, same, n, divergence=div, estimator=est, support=sup, n_trials=300)
            m1, s1 = null_divergence(same, diff, n, divergence=div, estimator=est, support=sup, n_trials=300)
            results[(div, est, sup, n)] = (m0, m1)
            cells.append(f"{m0:>7.3f} ({s0:.3f}) {m1:>7.3f} ({s1:.3f})")
        print(f"{div:<10} {est:<9} {sup:<10} " + " ".join(cells))
    print("ratio same/diff (1 = cannot tell a real difference from sampling noise):")
    for div, est, sup in settings:
        print(f"  {div:<10} {est:<9} {sup:<10} " + "  ".join(
            f"n={n}: {results[(div, est, sup, n)][0] / results[(div, est, sup, n)][1]:.2f}" for n in (3, 5, 10)))
    print(f"null_js_plugin_n5={results[('js', 'plugin', 'references', 5)][0]:.4f}")


if __name__ == "__main__":
    main()
