"""Ablations of PatchCore and ReConPatch on validation data: bank size, dimension of f, feature levels, patch size, α, k, m.

Every run appends one JSON line to benchmarks/results_ablations.jsonl (resumable: a run already there is skipped);
`20_ablations` reads that file, draws the figures and writes benchmarks/results_ablations.md.

Usage (the runs committed in results_ablations.jsonl, in this order, each with --threads 1):
    python benchmarks/ablations.py --study bank --datasets embedded --seeds 0 1 2
    python benchmarks/ablations.py --study dim alpha --datasets embedded --seeds 0 1 2
    python benchmarks/ablations.py --study k margin levels patch --datasets embedded --seeds 0 1
    python benchmarks/ablations.py --study bank --datasets elpv --seeds 0
    python benchmarks/ablations.py --study alpha --datasets elpv --categories mono --settings '[0.0, 0.5, 1.0]' --seeds 0
    python benchmarks/ablations.py --study dim --datasets elpv --categories mono --settings '[128, 512, 1024]' --seeds 0

Protocol: every number comes from the validation split (the test split is never read here). One setting is
changed at a time, the rest is the default (`PatchCoreConfig()` / `TrainConfig()`). Features of the default
extractor are shared with `evidence.py` (same cache, `evidence.features`); other levels and patch sizes are extracted once
and cached there too.
In the `bank` study, ReConPatch trains f once per seed and builds every bank size from the same f(p).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from evidence import CATEGORIES, evaluate, features  # noqa: E402
from reconpatch_nb.benchmark import ResultsFile  # noqa: E402
from reconpatch_nb.detector import PatchCore  # noqa: E402
from reconpatch_nb.reconpatch import ReConPatch  # noqa: E402

RESULTS = ResultsFile(HERE / "results_ablations.jsonl")
RECONPATCH_BANK = ReConPatch().config.coreset_ratio   # 1 %: PatchCore runs with it wherever it is ReConPatch's reference
# study -> the settings tried; the default of each is among them (so every curve holds the default recipe)
STUDIES = {
    "bank": [0.001, 0.0025, 0.01, 0.025, 0.1, 0.25],   # coreset ratio, both methods (fit_seconds: bank + scoring only)
    "dim": [64, 128, 256, 512, 1024],                   # repr_dim of f (ReConPatch; PatchCore's p stays 1024)
    "alpha": [0.0, 0.25, 0.5, 0.75, 1.0],               # α of Eq. 6: 1 = pairwise only, 0 = contextual only
    "k": [2, 5, 10, 20],                                # k of Eq. 2
    "margin": [0.25, 0.5, 1.0, 2.0],                    # m of Eq. 7
    "levels": [[2], [3], [2, 3], [1, 2, 3]],            # backbone levels (stride 8 = 2, 16 = 3, 4 = 1), both methods
    "patch": [1, 3, 5],                                 # neighbourhood s of the aggregation, both methods
}
BOTH = {"bank", "levels", "patch"}    # studies where PatchCore (1 % bank, as ReConPatch) runs too
MAX_BANK = {"elpv": 0.025}            # ELPV has 156,800 training patches: larger coresets cost hours on 2 cores


def record(key, m, fit_s, model, extra=None):
    rec = {"key": key, "dataset": key[0], "category": key[1], "study": key[2], "method": key[3], "setting": key[4],
           "seed": key[5], "metrics": m, "fit_seconds": round(fit_s, 2), "bank": list(model.bank.shape),
           "threads": torch.get_num_threads(), **(extra or {})}
    RESULTS.append(rec)
    print(f"{key}: image AUROC {m['image_auroc']:.4f} fit {fit_s:.0f} s", flush=True)


def run_study(study: str, name: str, category: str, seeds, cache: Path, done: set, only=None):
    settings = [s for s in STUDIES[study] if (study != "bank" or s <= MAX_BANK.get(name, 1)) and (only is None or s in only)]
    for seed in seeds:
        if study == "bank":
            todo = [(m, r) for m in ("patchcore", "reconpatch") for r in settings
                    if json.dumps([name, category, study, m, r, seed]) not in done]
            if not todo: continue
            tr, ev = features(cache, name, category, "train"), features(cache, name, category, "val")
            p = tr["p"].float()
            rp, train_s = None, None
            for method, r in todo:
                if method == "reconpatch" and rp is None:  # f is trained once per seed; its time is recorded apart
                    t0 = time.perf_counter(); rp = ReConPatch(seed=seed, progress=False).fit_features(p, p[:1])
                    train_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                if method == "patchcore":
                    model = PatchCore(coreset_ratio=r, seed=seed, progress=False).fit_features(p, p[:1])
                else:
                    model = rp.rebank(p, r, p[:1])  # the same f, a bank of another size
                m = evaluate(model, ev)[0]
                key = [name, category, study, method, r, seed]
                record(key, m, time.perf_counter() - t0, model, {"train_seconds": round(train_s, 2)} if method == "reconpatch" else None)
                done.add(json.dumps(key))
            continue
        for s in settings:
            for method in (("patchcore", "reconpatch") if study in BOTH else ("reconpatch",)):
                key = [name, category, study, method, s, seed]
                if json.dumps(key) in done: continue
                kw = {"layers": s} if study == "levels" else {"patch_size": s} if study == "patch" else {}
                tr = features(cache, name, category, "train", **kw)
                ev = features(cache, name, category, "val", **kw)
                p = tr["p"].float()
                t0 = time.perf_counter()
                if method == "patchcore":  # the same bank size as ReConPatch's default
                    model = PatchCore(coreset_ratio=RECONPATCH_BANK, seed=seed, progress=False)
                else:
                    train = {"repr_dim": s} if study == "dim" else {study: s} if study in ("alpha", "k", "margin") else {}
                    model = ReConPatch(seed=seed, progress=False, **train)
                model.fit_features(p, p[:1])
                m = evaluate(model, ev)[0]
                record(key, m, time.perf_counter() - t0, model, {"patches": list(p.shape)})
                done.add(json.dumps(key))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", nargs="+", required=True, choices=list(STUDIES))
    ap.add_argument("--cache", default=os.environ.get("RECONPATCH_CACHE", str(Path.home() / ".cache" / "reconpatch_nb" / "evidence")))
    ap.add_argument("--datasets", nargs="+", default=["embedded"], choices=list(CATEGORIES))
    ap.add_argument("--categories", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", type=json.loads, default=None, help="JSON list: run only these settings of the studies")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache = Path(args.cache); cache.mkdir(parents=True, exist_ok=True)
    done = RESULTS.done(warn=True)
    for study in args.study:
        for name in args.datasets:
            for category in (args.categories or CATEGORIES[name]):
                run_study(study, name, category, args.seeds, cache, done, args.settings)


if __name__ == "__main__":
    main()
