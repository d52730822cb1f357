"""What does ReConPatch buy? PatchCore vs ReConPatch on ELPV (real solar cells) and the embedded benchmark.

Every run appends one JSON line to benchmarks/results_evidence.jsonl (resumable: a run already there is
skipped): the per-image scores, the metrics, the training log, the timings. `90_results` reads that file
and computes the tables, the paired differences and their bootstrap intervals.

Usage:
    python benchmarks/evidence.py features                       # cache frozen features (once)
    python benchmarks/evidence.py run --split val --methods patchcore10 patchcore1 --seeds 0 1 2 3 4
    python benchmarks/evidence.py run --split val --methods reconpatch --recipe '{"lr": 1e-3}' --name short
    python benchmarks/evidence.py run --split test ...           # the reported table: test split, once
    # round 1's test runs came before the protocol file; they were repeated under it (90_results reports the repeat)
    python benchmarks/evidence.py run --split test --methods patchcore10 patchcore1 --repeat 2
    python benchmarks/evidence.py run --split test --methods reconpatch --recipe '{"epochs": 4, "lr": 0.001, "gamma": 0.99, "center": "batch"}' --name short+center --repeat 2
    # round 2 (protocol.json "round2"): the candidates named by 20_ablations, on validation data, seed 0
    python benchmarks/evidence.py run --split val --methods patchcore10 patchcore1 --recipe '{"layers": [3], "patch_size": 5}' --name L3s5 --seeds 0
    python benchmarks/evidence.py run --split val --methods reconpatch --name L3s5+a0 --seeds 0 \
        --recipe '{"epochs": 4, "lr": 0.001, "gamma": 0.99, "center": "batch", "layers": [3], "patch_size": 5, "alpha": 0.0}'

Protocol: choices (recipe, remedies) are made on the `val` split only; each reported table is computed once
on the `test` split. The rule and the recipe it chose are committed in benchmarks/protocol.json before a test
run: `run --split test` refuses to start without it, or with a ReConPatch recipe other than the one it names.
Every line appended carries the UTC time it was written (`time`). Features are extracted once per split with the detector's own extractor (lite0, 224 px)
and reused through `fit_features` / `predict_features`, which is what `fit` / `predict` run after extraction.
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

from reconpatch_nb.benchmark import ResultsFile  # noqa: E402
from reconpatch_nb.core import atomic_save, safe_load  # noqa: E402
from reconpatch_nb.data import MVTecAD  # noqa: E402
from reconpatch_nb.detector import PatchCore  # noqa: E402
from reconpatch_nb.elpv import ELPV, ELPV_TYPES  # noqa: E402
from reconpatch_nb.metrics import compute_metrics  # noqa: E402
from reconpatch_nb.reconpatch import ReConPatch  # noqa: E402
from reconpatch_nb.synthetic import EMBEDDED_CATEGORIES, embedded_benchmark_root  # noqa: E402

RESULTS = ResultsFile(HERE / "results_evidence.jsonl")   # one O_APPEND write per run, UTC-stamped; NaN refused (strict JSON)
PROTOCOL = HERE / "protocol.json"
CATEGORIES = {"elpv": ELPV_TYPES, "embedded": EMBEDDED_CATEGORIES}
RATIOS = {"patchcore10": 0.1, "patchcore1": 0.01}


def dataset(name: str, category: str, split: str):
    "The train / val / test split of one category of a benchmark."
    if name == "elpv": return ELPV(category, split)
    root = embedded_benchmark_root()
    if split == "train": return MVTecAD(root / "eval", category, "train")
    return MVTecAD(root / ("val" if split == "val" else "eval"), category, "test")


def features(cache: Path, name: str, category: str, split: str, layers=None, patch_size: int = 3) -> dict:
    "Frozen patch features of a split (cached as float16), its labels and (embedded) its masks; other levels / patch sizes for ablations."
    layers = None if layers in (None, [2, 3]) else layers   # [2, 3]: lite0's stride-8 and stride-16 levels, the default
    tag = "" if layers is None and patch_size == 3 else f"_L{''.join(map(str, layers or [2, 3]))}_s{patch_size}"
    f = cache / f"{name}_{category}_{split}{tag}.pt"
    if f.exists(): return safe_load(f)
    ds = dataset(name, category, split)
    model = PatchCore(layers=layers, patch_size=patch_size, progress=sys.stderr.isatty())
    t0 = time.perf_counter()
    p = model.features(ds)
    out = {"p": p.half(), "labels": torch.as_tensor(ds.labels), "seconds": time.perf_counter() - t0}
    if ds.has_masks: out["masks"] = model.masks(ds).to(torch.uint8)
    atomic_save(out, f)
    return out


FEATURE_KEYS = ("layers", "patch_size")   # recipe keys that choose the frozen features (cached per choice), for every method


def allowed_test_recipes(protocol: dict) -> dict:
    "{method family: [(name, recipe), ...]} that the protocol lets a test run use: round 1's choice and, once made, round 2's."
    allowed = {"patchcore": [("default", {})], "reconpatch": [(protocol["chosen"]["name"], protocol["chosen"]["recipe"])]}
    for family, pick in ((protocol.get("round2") or {}).get("chosen") or {}).items():
        allowed[family].append((pick["name"], pick["recipe"]))
    return allowed


def check_protocol(split: str, methods: list, name: str, recipe: dict, path: Path = PROTOCOL) -> None:
    "Refuse a test run unless the committed protocol file exists and names this recipe for every method run (one-line SystemExit)."
    if split != "test": return
    if not path.is_file():
        raise SystemExit(f"evidence: no protocol file {path}: write the selection rule and the chosen recipe there (from validation runs) before any test run")
    allowed = allowed_test_recipes(json.loads(path.read_text()))
    for method in methods:
        family = "reconpatch" if method == "reconpatch" else "patchcore"
        if (name, method_recipe(method, recipe)) not in [(n, method_recipe(method, r)) for n, r in allowed[family]]:
            names = ", ".join(repr(n) for n, _ in allowed[family])
            raise SystemExit(f"evidence: {path.name} allows {family} recipes {names} on the test split; "
                             f"refusing a test run of {name!r} {json.dumps(recipe)}")


def method_recipe(method: str, recipe: dict) -> dict:
    "The part of a recipe a method uses: ReConPatch all of it, PatchCore only the feature choice."
    return dict(recipe) if method == "reconpatch" else {k: v for k, v in recipe.items() if k in FEATURE_KEYS}


def method_label(method: str, name: str) -> str:
    "The method's name in the results: round 1's PatchCore runs are plain `patchcore10`; every other recipe is `method:name`."
    return f"{method}:{name}" if method == "reconpatch" or name != "default" else method


def evaluate(model: PatchCore, ev: dict) -> tuple[dict, list, float]:
    "Metrics, per-image scores and scoring seconds per image of `model` on cached evaluation features."
    t0 = time.perf_counter()
    pred = model.predict_features(ev["p"].float())
    sec = (time.perf_counter() - t0) / len(ev["labels"])
    masks = ev.get("masks")
    m = compute_metrics(ev["labels"].numpy(), pred.scores.numpy(), None if masks is None else masks.float(),
                        None if masks is None else pred.maps)
    return m, [round(float(s), 5) for s in pred.scores], sec


def epoch_metrics(model: ReConPatch, epoch: int, p: torch.Tensor, ev: dict, seed: int) -> dict:
    "Metrics of the representation f kept at `epoch`: PatchCore (1 % bank) on f(p), which is what ReConPatch scores."
    f_tr, f_ev = model.embed_at(p, epoch).cpu(), model.embed_at(ev["p"].float(), epoch).cpu()
    pc = PatchCore(coreset_ratio=model.config.coreset_ratio, seed=seed, progress=False).fit_features(f_tr, f_tr[:1])
    return evaluate(pc, {**ev, "p": f_ev})[0]


def run(args):
    cache = Path(args.cache)
    recipe = json.loads(args.recipe)
    check_protocol(args.split, args.methods, args.name, recipe)
    feat = {k: recipe[k] for k in FEATURE_KEYS if k in recipe}
    done = RESULTS.done(warn=True)   # keys as JSON text (keys hold lists); a line cut by a kill is skipped
    for name in args.datasets:
        for category in (args.categories or CATEGORIES[name]):
            tr = ev = None
            for method in args.methods:
                for seed in args.seeds:
                    label = method_label(method, args.name)
                    key = [name, category, args.split, label, seed] + ([args.repeat] if args.repeat > 1 else [])
                    if json.dumps(key) in done: continue
                    if tr is None: tr, ev = (features(cache, name, category, s, **feat) for s in ("train", args.split))
                    p = tr["p"].float()
                    t0 = time.perf_counter()
                    if method in RATIOS:
                        model = PatchCore(coreset_ratio=RATIOS[method], seed=seed, progress=False, **feat)
                    else:
                        epochs = recipe.get("epochs", ReConPatch().config.train.epochs)
                        model = ReConPatch(seed=seed, progress=False, checkpoint_epochs=tuple(range(epochs + 1)) if args.dynamics else (), **recipe)
                    model.fit_features(p, p[:1])  # normal-image scores (for a threshold) of one image only: not needed here
                    fit_s = time.perf_counter() - t0
                    m, scores, sec = evaluate(model, ev)
                    per_epoch = {e: epoch_metrics(model, e, p, ev, seed) for e in sorted(getattr(model, "checkpoints", {}))}
                    rec = {"key": key, "dataset": name, "category": category, "split": args.split, "method": label,
                           "recipe": method_recipe(method, recipe), "seed": seed, "repeat": args.repeat, "metrics": m,
                           "scores": scores, "labels": ev["labels"].tolist(), "fit_seconds": fit_s,
                           "score_ms_per_image": 1e3 * sec, "bank": list(model.bank.shape), "index": model.index.kind,
                           "train_log": [vars(r) if not isinstance(r, dict) else r for r in getattr(model, "train_log", [])],
                           "epoch_metrics": per_epoch, "threads": torch.get_num_threads()}
                    RESULTS.append(rec); done.add(json.dumps(key))
                    print(f"{name}/{category}/{args.split} {label} seed {seed}: image AUROC {m['image_auroc']:.4f}"
                          f" fit {fit_s:.0f} s", flush=True)
                    del model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["features", "run"])
    ap.add_argument("--cache", default=os.environ.get("RECONPATCH_CACHE", str(Path.home() / ".cache" / "reconpatch_nb" / "evidence")))
    ap.add_argument("--datasets", nargs="+", default=["elpv", "embedded"], choices=list(CATEGORIES))
    ap.add_argument("--categories", nargs="+")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--methods", nargs="+", default=["patchcore10", "patchcore1"], choices=[*RATIOS, "reconpatch"])
    ap.add_argument("--recipe", default="{}", help="JSON of ReConPatch arguments; its 'layers' and 'patch_size' choose the features of every method")
    ap.add_argument("--name", default="default", help="name of the recipe in the results (PatchCore runs are labelled method:name unless 'default')")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="run again what is already in the results (the key gains this number): round 1's test runs, repeated under the protocol, are --repeat 2")
    ap.add_argument("--dynamics", action="store_true", help="keep f after every epoch and score the split with it")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    if args.part == "features":
        for name in args.datasets:
            for category in (args.categories or CATEGORIES[name]):
                for split in ("train", "val", "test"):
                    t0 = time.perf_counter(); f = features(Path(args.cache), name, category, split)
                    print(f"{name}/{category}/{split}: {tuple(f['p'].shape)} in {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        run(args)


if __name__ == "__main__":
    main()
