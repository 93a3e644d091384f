"""How well does esfit's fact extraction + matching see the designed distribution of the mentions corpus?

    nice -n 5 python benchmarks/mentions_corpus_check.py [--corpus datasets/mentions] [--verbose]

Every reference of ``datasets/mentions`` states exactly the designed facts its ``meta.facts`` lists.
This script extracts every reference, every fact's canonical sentence and every question with
``infoextract.Extractor()`` (the default pipeline; cached in ``runs/mentions_check.sqlite``) and asks,
for each designed fact and each reference, whether esfit finds the fact there.

The rule: a designed fact is *found* in a reference when one of its **anchors** is supported by the
reference's facts (``fitness.SupportIndex.build(reference_facts).supports(anchors)``). The anchors are
the facts extracted from the fact's canonical sentence, minus those the question's facts support and
minus those the canonical facts of another fact of the same prompt support. The canonical sentence
"The Holmwick Lighthouse is 38 metres tall." extracts the lighthouse's name and concepts such as
"tower" besides "38 metre"; the name is in the question and in every other fact, so taking any
canonical fact as evidence would find every fact in every reference that names the subject (the
"any canonical fact" rule, printed for comparison, shows how much that inflates the shares).

Printed: the correlation and mean absolute error between found shares and designed rates (and the
realised shares, count / references) over all designed facts and per kind; recall and false
positives per (reference, fact) cell; the share of facts stated by two or more references (designed,
and as esfit's extracted facts show it, beside the same figure for ``datasets/demo``); designed facts
esfit never finds; and the reference phrasings whose facts esfit misses most.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # after PYTHONPATH, so another checkout of the packages can be measured
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_mentions_corpus as gen  # noqa: E402

from fitness import SupportIndex  # noqa: E402
from infoextract import Extractor, Fact, read_records  # noqa: E402

SPLITS = gen.SPLITS  # the corpus files, as the generator writes them


def load(corpus: Path) -> tuple[list[dict], dict[str, list]]:
    design = [json.loads(line) for line in (corpus / "design.jsonl").read_text(encoding="utf-8").splitlines()]
    records: dict[str, list] = defaultdict(list)
    for split in SPLITS:
        for r in read_records(corpus / f"{split}.jsonl"):
            records[r.prompt_id].append(r)
    return design, records


def anchors_of(canon: dict[str, list[Fact]], question: list[Fact]) -> dict[str, list[Fact]]:
    """Per fact id, the canonical facts that only this fact states (see the module docstring)."""
    q_index = SupportIndex.build(question)
    others = {f: SupportIndex.build([x for g, xs in canon.items() if g != f for x in xs]) for f in canon}
    out = {}
    for f, facts in canon.items():
        if not facts:
            out[f] = []
            continue
        keep = ~q_index.supports(facts) & ~others[f].supports(facts)
        out[f] = [x for x, k in zip(facts, keep) if k]
    return out


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def shared_share(extractions: list, question: list[Fact], *, support: bool) -> tuple[int, int]:
    """(facts stated by >= 2 references, distinct facts) for one prompt: distinct informative
    (kind, key) pairs of its references, counted in how many references they occur (exactly, or
    supported by the reference's facts when ``support``)."""
    qkeys = {(f.kind, f.key) for f in question}
    per_ref = [[f for f in e.unique_facts if (f.kind, f.key) not in qkeys] for e in extractions]
    distinct = {(f.kind, f.key): f for facts in per_ref for f in facts}
    if not distinct:
        return 0, 0
    facts = list(distinct.values())
    if support:
        counts = sum(SupportIndex.build(r).supports(facts).astype(int) for r in per_ref)
    else:
        counts = np.array([sum((f.kind, f.key) in {(g.kind, g.key) for g in r} for r in per_ref) for f in facts])
    return int((np.asarray(counts) >= 2).sum()), len(facts)


def demo_shared(ex: Extractor) -> tuple[float, float]:
    demo = REPO / "datasets" / "demo"
    groups: dict[str, list] = defaultdict(list)
    for name in ("train.jsonl", "heldout.jsonl"):
        for r in read_records(demo / name):
            groups[r.prompt_id].append(r)
    ids = sorted(groups)
    questions = ex.extract([groups[i][0].prompt or "" for i in ids])
    out = []
    for support in (False, True):
        k = n = 0
        for pid, q in zip(ids, questions):
            a, b = shared_share(ex.extract([r.text for r in groups[pid]]), list(q.unique_facts), support=support)
            k, n = k + a, n + b
        out.append(k / n)
    return out[0], out[1]


def form_misses(found: dict, design: list[dict]) -> list[tuple[float, int, str, str]]:
    """Recall per (topic, fact, form) from the generator's own record of which phrasing each
    reference used (the corpus is regenerated in memory; skipped if it differs from the files)."""
    prompts = {p.prompt_id: p for p in gen.build_corpus()}
    if sorted(prompts) != sorted(d["prompt_id"] for d in design):
        return []
    stats: dict[tuple[str, str, str], list] = defaultdict(list)
    examples: dict[tuple[str, str, str], str] = {}
    for pid, p in prompts.items():
        topic = next(t for t in gen.TOPICS if t.name == p.topic)
        for k, items in enumerate(p.reference_items):
            for item in items:
                forms = topic.joint[item.facts] if len(item.facts) > 1 else topic.fact(item.facts[0]).forms
                for f in item.facts:
                    key = (p.topic, f, forms[item.index])
                    stats[key].append(found[pid][f][k])
                    examples.setdefault(key, p.references[k])
    rows = [(float(np.mean(v)), len(v), f"{t}/{f}: {form}", examples[(t, f, form)])
            for (t, f, form), v in stats.items()]
    return sorted(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "datasets" / "mentions")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "mentions_check.sqlite")
    parser.add_argument("--verbose", action="store_true", help="print every prompt's facts")
    parser.add_argument("--misses", type=int, default=25, help="phrasings with the lowest recall to list")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo corpus comparison")
    args = parser.parse_args(argv)

    design, records = load(args.corpus)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    ex = Extractor(cache=args.cache)
    refs = [r.text for d in design for r in records[d["prompt_id"]]]
    canonicals = [f["canonical"] for d in design for f in d["facts"] + d["unmentioned"]]
    questions = [records[d["prompt_id"]][0].prompt for d in design]
    print(f"extracting {len(refs)} references, {len(canonicals)} canonical facts, {len(questions)} questions "
          f"with {ex!r}", flush=True)
    ref_ex = iter(ex.extract(refs, progress=True))
    canon_ex = iter(ex.extract(canonicals))
    q_ex = iter(ex.extract(questions))

    rows = []  # (prompt, fact id, kind, designed rate, realised share, found share, any-rule share, mentioned?)
    cells = defaultdict(lambda: np.zeros((2, 2), int))  # kind -> [designed mentioned][found]
    found_by: dict[str, dict[str, list[bool]]] = {}
    unanchored = []
    false_pos: dict[str, list[str]] = defaultdict(list)  # topic/fact -> found where not stated
    shared = {False: [0, 0], True: [0, 0]}
    for d in design:
        pid = d["prompt_id"]
        recs = records[pid]
        extractions = [next(ref_ex) for _ in recs]
        facts = d["facts"] + d["unmentioned"]
        canon = {f["id"]: list(next(canon_ex).unique_facts) for f in facts}
        question = list(next(q_ex).unique_facts)
        anchors = anchors_of(canon, question)
        indexes = [SupportIndex.build(e.unique_facts) for e in extractions]
        found_by[pid] = {}
        for f in facts:
            fid, designed = f["id"], f in d["facts"]
            if not anchors[fid]:
                unanchored.append((pid, fid, f["canonical"]))
            found = [bool(anchors[fid]) and bool(ix.supports(anchors[fid]).any()) for ix in indexes]
            loose = [bool(ix.supports(canon[fid]).any()) for ix in indexes]
            found_by[pid][fid] = found
            stated = [fid in r.meta["facts"] for r in recs]
            for s, g, r, ix in zip(stated, found, recs, indexes):
                cells[f["kind"]][int(s), int(g)] += 1
                if g and not s:
                    hit = [a.key for a, ok in zip(anchors[fid], ix.supports(anchors[fid])) if ok]
                    false_pos[f"{d['topic']}/{fid}"].append(f"{hit} in: {r.text}")
            rate = f["designed_rate"] if designed else 0.0
            rows.append((pid, fid, f["kind"], rate, sum(stated) / len(recs), float(np.mean(found)),
                         float(np.mean(loose)), designed))
            if args.verbose:
                print(f"{pid:<28} {fid:<11} {f['kind']:<9} design {rate:.2f} realised {sum(stated)}/{len(recs)} "
                      f"found {sum(found)}/{len(recs)}  anchors {[x.key for x in anchors[fid]]}")
        for support in (False, True):
            a, b = shared_share(extractions, question, support=support)
            shared[support][0] += a
            shared[support][1] += b

    designed = [r for r in rows if r[7]]
    unmentioned = [r for r in rows if not r[7]]
    print(f"\n{len(design)} prompts, {len(refs)} references, {len(designed)} designed facts, "
          f"{len(unmentioned)} unmentioned passage facts")
    print(f"{'facts':<12} {'n':>4} {'r(design)':>10} {'MAE':>6} {'r(realised)':>12} {'MAE':>6} "
          f"{'recall':>7} {'false+':>7}   any-fact rule: {'r':>5} {'MAE':>6}")
    for kind in ("all", "entity", "quantity", "date", "relation"):
        sel = [r for r in designed if kind in ("all", r[2])]
        if not sel:
            continue
        c = sum(cells.values()) if kind == "all" else cells[kind]
        design_r, real, got, loose = (np.array([r[i] for r in sel]) for i in (3, 4, 5, 6))
        print(f"{kind:<12} {len(sel):>4} {pearson(design_r, got):>10.3f} {np.abs(design_r - got).mean():>6.3f} "
              f"{pearson(real, got):>12.3f} {np.abs(real - got).mean():>6.3f} "
              f"{c[1, 1] / c[1].sum():>7.3f} {c[0, 1] / max(c[0].sum(), 1):>7.3f}   "
              f"{'':>14} {pearson(real, loose):>5.3f} {np.abs(real - loose).mean():>6.3f}")
    all_rows = designed + unmentioned
    print(f"with the unmentioned facts (rate 0): r(realised) {pearson([r[4] for r in all_rows], [r[5] for r in all_rows]):.3f}, "
          f"mean found share of unmentioned facts {np.mean([r[5] for r in unmentioned]):.3f}")
    never = [r for r in designed if r[5] == 0]
    print(f"designed facts esfit never finds: {len(never)} of {len(designed)} "
          f"({len(unanchored)} facts, designed or not, have no anchor left)")
    by_kind = defaultdict(int)
    for r in never:
        by_kind[r[2]] += 1
    if never:
        print("   by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    stated2 = sum(f["realised_count"] >= 2 for d in design for f in d["facts"])
    n_facts = sum(len(d["facts"]) for d in design)
    found2 = sum(sum(found_by[r[0]][r[1]]) >= 2 for r in designed)
    print(f"share of designed facts stated by >= 2 references: {stated2 / n_facts:.1%} (designed), "
          f"{found2 / n_facts:.1%} (found by esfit in >= 2)")
    line = (f"share of extracted facts in >= 2 references of their prompt: {shared[False][0] / shared[False][1]:.1%} "
            f"(same key), {shared[True][0] / shared[True][1]:.1%} (supported)")
    if not args.no_demo:
        exact, sup = demo_shared(ex)
        line += f"; datasets/demo: {exact:.1%} (same key), {sup:.1%} (supported)"
    print(line)
    if unanchored and args.verbose:
        for u in unanchored:
            print("   no anchor:", *u)
    if false_pos:
        print(f"\nfound where the design says not stated ({sum(map(len, false_pos.values()))} cells):")
        for key, hits in sorted(false_pos.items(), key=lambda kv: -len(kv[1]))[:10]:
            print(f"  {len(hits):>3} {key}: e.g. anchor {hits[0]}")
    misses = form_misses(found_by, design) if args.misses else []
    if misses:
        print(f"\nphrasings with the lowest recall (share of uses in which esfit finds the fact; {args.misses} shown):")
        for recall, n, form, example in misses[:args.misses]:
            print(f"  {recall:5.2f} n={n:<3} {form}\n        e.g. {example}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
