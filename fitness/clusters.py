"""Group paraphrased facts: TF-IDF character n-grams + agglomerative clustering (scikit-learn).

Canonical keys match "Captain Steffens" with "captain steffens" but not with "Steffens" or
"the captain Steffens"; clustering the union of a prompt's reference and candidate facts lets the
distribution view treat such near-paraphrases as one outcome. The clustering is fitted per prompt
on both sides at once so that a cluster id means the same thing for humans and for the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["cluster_keys"]


def cluster_keys(keys: Sequence[str], *, distance_threshold: float = 0.5, ngram_range=(2, 4)) -> dict[str, int]:
    """Map each distinct key to a cluster id.

    Args:
        keys: fact keys (duplicates allowed; each distinct key is clustered once).
        distance_threshold: cosine distance under which average-linkage merges two clusters
            (0 merges only identical n-gram profiles, 1 merges almost everything).
        ngram_range: character n-gram lengths, within word boundaries (``char_wb``).

    Returns:
        ``{key: cluster_id}`` with ids ``0..C-1``.
    """
    if not 0.0 <= distance_threshold <= 1.0:
        raise ValueError(f"distance_threshold must be in [0, 1] (a cosine distance), got {distance_threshold!r}")
    distinct = sorted(set(keys))
    if len(distinct) < 2:
        return {k: 0 for k in distinct}
    # imported here: scikit-learn costs ~0.5 s to import and only this view needs it
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_distances

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=True)
    try:
        x = vec.fit_transform(distinct)
    except ValueError:  # keys with no letters at all (e.g. punctuation only): nothing to cluster on
        return {k: i for i, k in enumerate(distinct)}
    # rows with no n-gram get a zero vector; cosine is undefined there, so give them their own cluster
    ok = np.asarray(x.getnnz(axis=1)) > 0
    labels = np.arange(len(distinct)) + len(distinct)  # unique ids for the degenerate rows
    if ok.sum() >= 2:
        # distances from one sparse product are cheaper than letting the clusterer densify the rows
        dist = cosine_distances(x[ok])
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=distance_threshold, metric="precomputed", linkage="average"
        )
        labels[ok] = model.fit_predict(dist)
    elif ok.sum() == 1:
        labels[ok] = 0
    # renumber compactly in first-seen order so ids are stable across runs
    remap: dict[int, int] = {}
    return {k: remap.setdefault(int(lab), len(remap)) for k, lab in zip(distinct, labels)}
