"""PatchCore vs ReConPatch on the embedded categories: several seeds, mean ± std, and the evidence for why.

Usage (each part writes `<cache>/parts/<name>.json`; `report` merges them into
benchmarks/results_methods.json and benchmarks/results_methods.md):

    python benchmarks/compare_methods.py --part check       # fit-from-cached-features == Detector.fit
    python benchmarks/compare_methods.py --part sweep       # hyper-parameters on the VALIDATION set only
    python benchmarks/compare_methods.py --part paper120    # the paper's 120-epoch schedule, one category
    python benchmarks/compare_methods.py --part compare [--categories brick]   # committed test split
    python benchmarks/compare_methods.py --part report

Protocol (fixed before any test number was looked at):
- Validation data: `make_embedded_dataset(<cache>/val_seed1, seed=1)`: other training crops, other test
  crops and other defects than the committed `data/` (seed 0). Every choice of a setting is made on its test
  split; the committed test split is only used for the final table.
- Selection criterion: the sweep setting with the highest mean over the 3 categories of
  (image AUROC + pixel AUROC + AUPRO) / 3 on the validation test split is "ReConPatch (validated)".
- Methods on the test split: PatchCore 10 % coreset, PatchCore 1 % coreset (the fair control: ReConPatch's
  bank is 1 %), ReConPatch at the paper's recipe (lr 1e-5, γ 0.999, ...) for `--epochs` epochs, ReConPatch
  (validated), and "f at init": the same ReConPatch object with its untrained f (epoch-0 checkpoint), i.e.
  PatchCore 1 % on a random linear projection to 512-d.
- Features are extracted once per (dataset, category) with the detector's own extractor and reused: the
  detectors fit and score them with `fit_features` / `predict_features` (what `fit` / `predict` run after
  extraction); `--part check` verifies that this reproduces `Detector.fit` exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from reconpatch_nb.contextual import contextual_similarity  # noqa: E402
from reconpatch_nb.core import atomic_save, safe_load, set_seed  # noqa: E402
from reconpatch_nb.data import MVTecAD  # noqa: E402
from reconpatch_nb.detector import PatchCore  # noqa: E402
from reconpatch_nb.pairwise import pairwise_similarity  # noqa: E402
from reconpatch_nb.reconpatch import TRAIN_DEFAULTS, ReConPatch  # noqa: E402
from reconpatch_nb.synthetic import EMBEDDED_CATEGORIES, embedded_data_root, make_embedded_dataset  # noqa: E402
from reconpatch_nb.train import default_steps_per_epoch  # noqa: E402

METRICS = ("image_auroc", "pixel_auroc", "aupro")
SWEEP = {  # name -> overrides of the paper recipe (TRAIN_DEFAULTS); all at --epochs epochs
    "paper (lr 1e-5)": {},
    "lr 1e-4": {"lr": 1e-4},
    "lr 1e-3": {"lr": 1e-3},
    "lr 1e-3, γ 0.99": {"lr": 1e-3, "gamma": 0.99},
    "lr 1e-3, images batches": {"lr": 1e-3, "batch_mode": "images"},
}


# ---------------------------------------------------------------- data and features
def datasets(cache: Path) -> dict:
    "Roots of the committed data (test) and of the validation data (seed 1, generated once)."
    val = cache / "val_seed1"
    if not (val / "README.md").exists():
        make_embedded_dataset(val, seed=1, overwrite=True)
    return {"test": embedded_data_root(), "val": val}


def cached_features(cache: Path, which: str, category: str) -> dict:
    "Frozen patch features p of the train and test splits, extracted once with the detector's extractor."
    path = cache / f"feats_{which}_{category}.pt"
    if path.exists(): return safe_load(path)
    root = datasets(cache)[which]
    model, out = PatchCore(progress=False), {}
    for split in ("train", "test"):
        t0 = time.perf_counter()
        out[split] = model.features(MVTecAD(root, category, split))
        out[f"{split}_seconds"] = time.perf_counter() - t0
    atomic_save(out, path)
    return out


def test_dataset(cache: Path, which: str, category: str) -> MVTecAD:
    return MVTecAD(datasets(cache)[which], category, "test")


# ---------------------------------------------------------------- fitting from cached features
# `PatchCore.fit_features` / `build_bank` / `predict_features` are `fit` and `predict` minus the feature
# extraction, so every method below is fitted and scored by the detectors' own code.


def evaluate_features(model: PatchCore, p_test: torch.Tensor, test) -> dict:
    "`model.evaluate(test)` on cached test features."
    t0 = time.perf_counter()
    pred = model.predict_features(p_test, [str(it.image_path) for it in test.items])
    model.timings["predict_seconds"] = time.perf_counter() - t0
    m = model.evaluate(test, pred)
    return {k: float(m[k]) for k in (*METRICS, "f1_max")}


# ---------------------------------------------------------------- diagnostics of a trained ReConPatch
def f_change(model: ReConPatch) -> list:
    "Relative change ‖W_f(e) − W_f(0)‖ / ‖W_f(0)‖ of f's weight at every kept checkpoint."
    w0 = model.checkpoints[0]["f.weight"]
    return [{"epoch": e, "f_rel_change": float((s["f.weight"] - w0).norm() / w0.norm())}
            for e, s in sorted(model.checkpoints.items())]


def z_offset(model: ReConPatch, p_sample: torch.Tensor) -> list:
    "‖mean z‖ / rms‖z − mean z‖ of z = g(f(p)) per checkpoint: a common offset shrinks angles after L2 normalisation."
    out = []
    for e, s in sorted(model.checkpoints.items()):
        head = model._new_head(); head.load_state_dict(s)
        with torch.no_grad(): z = head(p_sample)[1]
        mu = z.mean(0)
        out.append({"epoch": e, "offset_ratio": float(mu.norm() / (z - mu).norm(dim=1).pow(2).mean().sqrt())})
    return out


def distance_agreement(model: ReConPatch, p_sample: torch.Tensor, k: int = 10) -> dict:
    "How much f changed the geometry: correlation of pairwise distances p vs f(p), and k-NN overlap."
    d_p = torch.cdist(p_sample, p_sample)
    res = {}
    for e in (min(model.checkpoints), max(model.checkpoints)):
        e_ = model.embed_at(p_sample, e)
        d_f = torch.cdist(e_, e_)
        iu = torch.triu_indices(len(p_sample), len(p_sample), 1)
        corr = float(np.corrcoef(d_p[iu[0], iu[1]].numpy(), d_f[iu[0], iu[1]].numpy())[0, 1])
        nn_p = d_p.topk(k + 1, largest=False).indices[:, 1:]
        nn_f = d_f.topk(k + 1, largest=False).indices[:, 1:]
        overlap = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(nn_p, nn_f)]))
        res[f"epoch{e}"] = {"dist_corr": corr, "knn_overlap": overlap}
    return res


def run_reconpatch(p_train, p_test, test, seed: int, epochs: int, overrides: dict, every: int = 1,
                   sample: torch.Tensor | None = None) -> dict:
    "Fit a real `ReConPatch` on cached features; metrics of the trained f and of f at init (epoch 0)."
    model = ReConPatch(epochs=epochs, seed=seed, progress=False, checkpoint_epochs=tuple(range(0, epochs + 1, every)),
                       **overrides)
    model.fit_features(p_train)
    rec = {"config": {k: model.config[k] for k in TRAIN_DEFAULTS}, "metrics": evaluate_features(model, p_test, test),
           "train_seconds": model.timings["train_seconds"], "seconds_per_epoch": model.train_summary["seconds_per_epoch"],
           "steps_per_epoch": None, "log": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in vars(r).items()}
                                            for r in model.train_log],
           "f_change": f_change(model)}
    rec["steps_per_epoch"] = model.config["steps_per_epoch"] or default_steps_per_epoch(
        len(p_train), p_train.shape[1] * p_train.shape[2], model.config["patches_per_step"], model.config["batch_mode"])
    if sample is not None:
        rec["z_offset"] = z_offset(model, sample)
        rec["distance_agreement"] = distance_agreement(model, sample[:1500])
    # control: the same object with f at its random initialisation
    trained = {k: v.clone() for k, v in model.head.state_dict().items()}
    model.head.load_state_dict(model.checkpoints[0]); model.build_bank(p_train)
    rec["metrics_f_init"] = evaluate_features(model, p_test, test)
    model.head.load_state_dict(trained); model.build_bank(p_train)
    rec["_model"] = model
    return rec


def run_patchcore(p_train, p_test, test, seed: int, ratio: float) -> dict:
    model = PatchCore(coreset_ratio=ratio, seed=seed, progress=False).fit_features(p_train)
    return {"metrics": evaluate_features(model, p_test, test), "bank_seconds": model.timings["bank_seconds"]}


def patch_sample(p_train, n=2000, seed=0):
    flat = p_train.reshape(-1, p_train.shape[-1])
    return flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:n]]


# ---------------------------------------------------------------- parts
def part_check(cache, args):
    "Fitting from cached features gives exactly what `Detector.fit` + `evaluate` give."
    root, cat = datasets(cache)["test"], "brick"
    f = cached_features(cache, "test", cat)
    train, test = MVTecAD(root, cat, "train"), MVTecAD(root, cat, "test")
    out = {}
    for name, make in [("PatchCore 1 %", lambda: PatchCore(coreset_ratio=0.01, progress=False)),
                       ("ReConPatch 1 epoch", lambda: ReConPatch(epochs=1, progress=False))]:
        a = make().fit(train); ma = a.evaluate(test)
        b = make().fit_features(f["train"]); mb = evaluate_features(b, f["test"], test)
        out[name] = {"fit": {k: float(ma[k]) for k in METRICS}, "cached": {k: mb[k] for k in METRICS},
                     "bank_max_abs_diff": float((a.bank - b.bank).abs().max())}
        print(name, out[name], flush=True)
    return out


def init_w_stats(cache, category, which="val", n=1024, seed=0):
    "w^P mean/std of the untrained similarity network on a real batch, for several σ, with and without L2 norm."
    from reconpatch_nb.ema import ReConPatchHead
    p = patch_sample(cached_features(cache, which, category)["train"], n, seed)
    set_seed(seed); head = ReConPatchHead(p.shape[1], 512, 128)
    with torch.no_grad(): z = head(p)[1]
    off = ~torch.eye(n, dtype=torch.bool)
    rows = []
    for normalize in (True, False):
        for sigma in (0.25, 0.5, 1.0, 2.0, 4.0):
            w = pairwise_similarity(z, sigma=sigma, normalize=normalize)[off]
            rows.append({"normalize": normalize, "sigma": sigma, "w_pair_mean": float(w.mean()), "w_pair_std": float(w.std())})
    for k in (5, 10, 20):
        w = contextual_similarity(z, k=k)[off]
        rows.append({"k": k, "w_ctx_mean": float(w.mean()), "w_ctx_nonzero": float((w > 0).float().mean())})
    return rows


def part_sweep(cache, args):
    "Every SWEEP setting + PatchCore baselines on the validation test split (seed 0 only)."
    out = {"epochs": args.epochs, "criterion": "mean over categories of (image AUROC + pixel AUROC + AUPRO) / 3 on the validation test split",
           "runs": [], "init_w": {}}
    for cat in args.categories:
        f = cached_features(cache, "val", cat); test = test_dataset(cache, "val", cat)
        out["init_w"][cat] = init_w_stats(cache, cat)
        for ratio in (0.1, 0.01):
            r = run_patchcore(f["train"], f["test"], test, 0, ratio)
            out["runs"].append({"category": cat, "method": f"PatchCore {ratio:.0%}", **r}); print(cat, ratio, r["metrics"], flush=True)
        sample = patch_sample(f["train"])
        for name, ov in SWEEP.items():
            if args.only and name not in args.only: continue
            r = run_reconpatch(f["train"], f["test"], test, 0, args.epochs, ov, sample=sample); r.pop("_model")
            out["runs"].append({"category": cat, "method": f"ReConPatch {name}", "setting": name, **r})
            print(cat, name, r["metrics"], "init:", r["metrics_f_init"], f"{r['seconds_per_epoch']:.1f}s/ep",
                  "f moved", r["f_change"][-1], flush=True)
    crit = lambda m: np.mean([m[k] for k in METRICS])
    score = {name: float(np.mean([crit(r["metrics"]) for r in out["runs"] if r.get("setting") == name]))
             for name in SWEEP if not args.only or name in args.only}
    out["criterion_values"] = score
    out["chosen"] = max(score, key=score.get)
    out["chosen_overrides"] = SWEEP[out["chosen"]]
    print("criterion", score, "chosen:", out["chosen"], flush=True)
    return out


def part_paper120(cache, args):
    "The paper's schedule (120 epochs) on one category: f movement per epoch, validation curve, final test metrics."
    cat = args.paper_category
    f, fv = cached_features(cache, "test", cat), cached_features(cache, "val", cat)
    test, val_test = test_dataset(cache, "test", cat), test_dataset(cache, "val", cat)
    sample = patch_sample(f["train"])
    E = args.paper_epochs
    rec = run_reconpatch(f["train"], f["test"], test, 0, E, {}, every=1, sample=sample)
    model = rec.pop("_model")
    # validation curve (bank from the committed training features, scored on the validation test split)
    trained = {k: v.clone() for k, v in model.head.state_dict().items()}
    curve = []
    for e in sorted(set(range(0, E + 1, 10)) | {E}):
        model.head.load_state_dict(model.checkpoints[e]); model.build_bank(f["train"])
        curve.append({"epoch": e, **evaluate_features(model, fv["test"], val_test)})
        print("val curve", curve[-1], flush=True)
    model.head.load_state_dict(trained)
    rec["val_curve"] = curve
    rec["patchcore"] = {f"{r:.0%}": run_patchcore(f["train"], f["test"], test, 0, r)["metrics"] for r in (0.1, 0.01)}
    rec["category"], rec["seed"] = cat, 0
    print("paper120", rec["metrics"], "init", rec["metrics_f_init"], rec["patchcore"], rec["f_change"][-1], flush=True)
    return rec


def part_compare(cache, args):
    "The final table on the committed test split: every category x seed x method."
    out = {"epochs": args.epochs, "seeds": args.seeds, "runs": []}
    settings = []
    if "base" in args.methods: settings.append(("paper", {}))
    if "validated" in args.methods:  # the setting chosen on the validation set by `part_sweep`
        sweep = json.loads((cache / "parts" / "sweep.json").read_text())
        out.update(chosen=sweep["chosen"], chosen_overrides=sweep["chosen_overrides"])
        settings.append(("validated", sweep["chosen_overrides"]))
    for cat in args.categories:
        f = cached_features(cache, "test", cat); test = test_dataset(cache, "test", cat)
        sample = patch_sample(f["train"])
        for seed in args.seeds:
            for ratio in ((0.1, 0.01) if "base" in args.methods else ()):
                r = run_patchcore(f["train"], f["test"], test, seed, ratio)
                out["runs"].append({"category": cat, "seed": seed, "method": f"PatchCore {ratio:.0%}", **r})
            for label, ov in settings:
                r = run_reconpatch(f["train"], f["test"], test, seed, args.epochs, ov, sample=sample); r.pop("_model")
                out["runs"].append({"category": cat, "seed": seed, "method": f"ReConPatch {label}", **r})
                if label == "paper":  # the untrained-f control, once per seed
                    out["runs"].append({"category": cat, "seed": seed, "method": "ReConPatch f at init",
                                        "metrics": r["metrics_f_init"]})
                print(cat, seed, label, r["metrics"], f"{r['seconds_per_epoch']:.1f}s/ep", flush=True)
            print(cat, seed, [(x["method"], round(x["metrics"]["image_auroc"], 3)) for x in out["runs"][-5:]], flush=True)
    return out


# ---------------------------------------------------------------- report
def fmt(vals):
    vals = [v * 100 for v in vals]
    return f"{np.mean(vals):.1f} ± {np.std(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}"


def part_report(cache, args):
    parts = {p.stem: json.loads(p.read_text()) for p in sorted((cache / "parts").glob("*.json"))}
    res = {"meta": parts.get("meta", {}), "check": parts.get("check"), "sweep": parts.get("sweep"),
           "paper120": parts.get("paper120")}
    cmp_runs = [r for k, v in parts.items() if k.startswith("compare") for r in v["runs"]]
    res["compare"] = {"runs": cmp_runs}
    for k, v in parts.items():
        if k.startswith("compare"): res["compare"].update({x: v[x] for x in ("epochs", "seeds", "chosen", "chosen_overrides") if x in v})
    # strip bulky per-run logs from the compare section except the per-epoch summary the notebook needs
    table = []
    methods = ["PatchCore 10%", "PatchCore 1%", "ReConPatch f at init", "ReConPatch paper", "ReConPatch validated"]
    cats = sorted({r["category"] for r in cmp_runs})
    for m in methods:
        for c in cats + ["mean"]:
            rs = [r for r in cmp_runs if r["method"] == m and (c == "mean" or r["category"] == c)]
            if not rs: continue
            if c == "mean":  # mean over categories per seed, then mean ± std over seeds
                seeds = sorted({r["seed"] for r in rs})
                vals = {k: [np.mean([r["metrics"][k] for r in rs if r["seed"] == s]) for s in seeds] for k in METRICS}
            else:
                vals = {k: [r["metrics"][k] for r in rs] for k in METRICS}
            row = {"method": m, "category": c, **{k: [float(x) for x in v] for k, v in vals.items()}}
            spe = [r["seconds_per_epoch"] for r in rs if "seconds_per_epoch" in r]
            row["seconds_per_epoch"] = float(np.mean(spe)) if spe else None
            table.append(row)
    res["table"] = table
    (HERE / "results_methods.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    # markdown
    md = ["# PatchCore vs ReConPatch on the embedded categories", "",
          "Generated by `benchmarks/compare_methods.py` (see its docstring for the protocol). Backbone "
          "tf_efficientnet_lite0 (offline ImageNet weights), 40 training / 30 test images per category, "
          "224 px crops → 28 × 28 patches, C' = 1024. Metrics in %, mean ± std over seeds "
          f"{res['compare'].get('seeds')} (the seed drives the coreset and, for ReConPatch, the initialisation "
          "and the batches). The committed test split was used only for this table.", ""]
    if cmp_runs:
        md += [f"ReConPatch epochs: {res['compare']['epochs']}; validated setting: "
               f"**{res['compare'].get('chosen')}** {res['compare'].get('chosen_overrides')} (chosen on the validation set, seed 1 data).", ""]
        md += ["| method | category | image AUROC | pixel AUROC | AUPRO | s / epoch |", "|---|---|---|---|---|---|"]
        for row in table:
            spe = f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] else ""
            md.append(f"| {row['method']} | {row['category']} | {fmt(row['image_auroc'])} | {fmt(row['pixel_auroc'])} | {fmt(row['aupro'])} | {spe} |")
        md.append("")
    if res["sweep"]:
        s = res["sweep"]
        md += [f"## Validation sweep ({s['epochs']} epochs, seed 0, validation data)", "", f"Criterion: {s['criterion']}.", "",
               "| setting | " + " | ".join(f"{c} img/pix/PRO" for c in EMBEDDED_CATEGORIES) + " | criterion | f moved |",
               "|---|" + "---|" * (len(EMBEDDED_CATEGORIES) + 2)]
        names = ["PatchCore 10%", "PatchCore 1%"] + [f"ReConPatch {n}" for n in SWEEP]
        for n in names:
            rs = {r["category"]: r for r in s["runs"] if r["method"] == n}
            if not rs: continue
            cells = [("/".join(f"{rs[c]['metrics'][k] * 100:.1f}" for k in METRICS) if c in rs else "") for c in EMBEDDED_CATEGORIES]
            crit = np.mean([np.mean([r["metrics"][k] for k in METRICS]) for r in rs.values()]) * 100
            moved = np.mean([r["f_change"][-1]["f_rel_change"] for r in rs.values()]) if "f_change" in next(iter(rs.values())) else None
            md.append(f"| {n} | " + " | ".join(cells) + f" | {crit:.1f} | " + (f"{moved:.3f}" if moved is not None else "") + " |")
        md += ["", f"Chosen: **{s['chosen']}**.", ""]
    if res["paper120"]:
        p = res["paper120"]
        md += [f"## The paper's schedule: {p['config']['epochs']} epochs, {p['category']}, seed 0", "",
               "| model | image AUROC | pixel AUROC | AUPRO |", "|---|---|---|---|"]
        for n, m in [("PatchCore 10%", p["patchcore"]["10%"]), ("PatchCore 1%", p["patchcore"]["1%"]),
                     ("ReConPatch f at init", p["metrics_f_init"]), (f"ReConPatch {p['config']['epochs']} epochs", p["metrics"])]:
            md.append(f"| {n} | " + " | ".join(f"{m[k] * 100:.1f}" for k in METRICS) + " |")
        md += ["", f"{p['seconds_per_epoch']:.1f} s per epoch ({p['steps_per_epoch']} steps of 1024 patches); "
               f"f moved by {p['f_change'][-1]['f_rel_change']:.3f} (relative Frobenius change of its weight).", ""]
    if not res["paper120"]:
        md += ["## The paper's schedule (120 epochs)", "", "Not run to the end on the shared 2-core machine (20–30 s per epoch "
               "under contention, about an hour); `--part paper120` runs it on one category and adds it here.", ""]
    if res["meta"]: md += ["## Machine", "", "```", json.dumps(res["meta"], indent=1), "```", ""]
    (HERE / "results_methods.md").write_text("\n".join(md))
    print("\n".join(md))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", required=True, choices=["check", "sweep", "paper120", "compare", "report"])
    ap.add_argument("--categories", nargs="+", default=list(EMBEDDED_CATEGORIES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4, help="ReConPatch epochs in sweep/compare (paper120 always uses 120)")
    ap.add_argument("--paper-category", default="brick")
    ap.add_argument("--paper-epochs", type=int, default=120, help="the paper's schedule (smaller only for a smoke test)")
    ap.add_argument("--only", nargs="+", default=None, help="sweep: only these SWEEP names (smoke test)")
    ap.add_argument("--threads", type=int, default=1, help="torch/faiss threads (1: fair on a shared machine)")
    ap.add_argument("--cache", default=os.environ.get("RECONPATCH_BENCH_CACHE", "/tmp/reconpatch_bench"))
    ap.add_argument("--methods", nargs="+", default=["base", "validated"], choices=["base", "validated"],
                    help="compare: base = PatchCore 10 %%/1 %%, ReConPatch paper recipe and f at init; validated = the sweep's choice")
    ap.add_argument("--tag", default="", help="suffix of the part file (to run compare in parallel by category)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faiss; faiss.omp_set_num_threads(args.threads)
    except ImportError: pass
    cache = Path(args.cache); (cache / "parts").mkdir(parents=True, exist_ok=True)
    meta_path = cache / "parts" / "meta.json"
    if not meta_path.exists():
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
        meta_path.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
                                         "cpus": os.cpu_count(), "commit": commit, "date": time.strftime("%Y-%m-%d")}))
    t0 = time.perf_counter()
    out = globals()[f"part_{args.part}"](cache, args)
    if out is not None:
        out["wall_seconds"] = time.perf_counter() - t0
        (cache / "parts" / f"{args.part}{args.tag}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"{args.part} done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
