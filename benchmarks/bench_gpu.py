"""GPU checks in one run: coreset picks per second (against a loop that reads every pick back), and predict ms per image.

Usage (on a machine with a GPU; the training step is `bench_train.py --device cuda`):
    python benchmarks/bench_gpu.py [--device cuda] [--out benchmarks/results_gpu.md]
    python benchmarks/bench_gpu.py --device cpu --quick --out /tmp/gpu.md      # a smoke test of this script on CPU

1. **Coreset**: `approximate_greedy_coreset` (every pick stays on the device; one read-back at the end) on N seeded
   patch-like features of 1024 dimensions at 10 %, against the same greedy loop written the obvious way, which
   reads each pick back to the host (`int(argmax)`); both pick the same rows (checked), timed one after the other
   with a device synchronisation around each. Target: ≥ 10× the 1,700 picks/s measured before the change.
2. **Predict**: PatchCore and ReConPatch (their defaults, lite0 at 224 px) fitted on embedded `brick`, then
   (a) `predict(batch)` on a pre-processed batch of 32 images already on the device (backbone, aggregation,
   f, search, maps), and (b) the backbone forward alone on the same batch, as its floor; medians of `--reps`.
   Target: ≤ 3 ms per image at batch 32.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import cpu_model, synthetic_features  # noqa: E402
from reconpatch_nb.coreset import approximate_greedy_coreset  # noqa: E402
from reconpatch_nb.core import squared_distances  # noqa: E402
from reconpatch_nb.data import MVTecAD  # noqa: E402
from reconpatch_nb.detector import PatchCore  # noqa: E402
from reconpatch_nb.reconpatch import ReConPatch  # noqa: E402
from reconpatch_nb.synthetic import embedded_data_root  # noqa: E402


def timed(fn, sync):
    sync(); t0 = time.perf_counter(); out = fn(); sync()
    return time.perf_counter() - t0, out


def readback_coreset(features, ratio, dev, proj_dim=128, n_starts=10, seed=0):
    "The same greedy picks, each read back to the host: the loop before the change (reference for speed and result)."
    gen = torch.Generator().manual_seed(seed)
    n, d = features.shape
    k = max(1, int(n * ratio))
    W = (torch.randn(d, proj_dim, generator=gen) / proj_dim ** 0.5).to(dev)
    z = features.to(dev) @ W
    starts = torch.randperm(n, generator=gen)[:min(n_starts, n)].to(dev)
    delta = torch.cat([squared_distances(zc, z[starts]).sqrt().mean(1) for zc in z.split(65536)])
    sq, picks = z.pow(2).sum(1), []
    for _ in range(k):
        c = int(torch.argmax(delta))                                     # host round-trip every pick
        picks.append(c)
        delta = torch.minimum(delta, (sq - 2 * (z @ z[c]) + sq[c]).clamp_min(0).sqrt()); delta[c] = -1
    return torch.tensor(picks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=156_800, help="coreset rows (default: 200 images x 784 patches)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="small sizes, to check the script on CPU")
    ap.add_argument("--out", default=str(HERE / "results_gpu.md"))
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    n, reps = (4000, 2) if a.quick else (a.n, a.reps)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({cpu_model()})"
    cmd = "python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:])
    md = ["# GPU checks", "", f"Command: `{cmd}`  ",
          f"Device: {name}; torch {torch.__version__}; {dt.datetime.now().isoformat(timespec='seconds')}.", ""]

    # 1. coreset
    feats = synthetic_features(n, 1024, seed=0)
    approximate_greedy_coreset(feats[:2000], 0.1, device=dev, progress=False)          # warm-up
    t_new, new = timed(lambda: approximate_greedy_coreset(feats, 0.1, device=dev, progress=False), sync)
    t_old, old = timed(lambda: readback_coreset(feats, 0.1, dev), sync)
    k = len(new)
    same = (new == old).float().mean().item()
    md += ["## 1. Coreset, 10 % of N patches (1024-d, projected to 128)", "",
           "| N | picks | `approximate_greedy_coreset` s | picks/s | read-back loop s | picks/s | speed-up | same picks |",
           "|---|---|---|---|---|---|---|---|",
           f"| {n:,} | {k:,} | {t_new:.2f} | {k / t_new:,.0f} | {t_old:.2f} | {k / t_old:,.0f} | {t_old / t_new:.1f}× | {100 * same:.1f} % |", ""]
    print("\n".join(md[-4:]), flush=True)

    # 2. predict at batch 32
    root = embedded_data_root()
    train, test = MVTecAD(root, "brick", "train"), MVTecAD(root, "brick", "test")
    if a.quick: train = train.subset(range(4))
    rows = []
    batch = None
    for klass in (PatchCore, ReConPatch):
        m = klass(progress=False, device=dev, batch_size=a.batch, **({"epochs": 1} if a.quick and klass is ReConPatch else {}))
        t_fit, _ = timed(lambda: m.fit(train), sync)
        if batch is None:
            own = m.inputs(test)
            imgs = [own[i % len(own)]["image"] for i in range(a.batch)]
            batch = torch.stack(imgs).to(dev)
            with torch.no_grad(): m.extractor.backbone(batch)                          # warm-up
            floor = [timed(lambda: m.extractor.backbone(batch), sync)[0] for _ in range(reps)]
        with torch.no_grad(): m.predict(batch)                                           # warm-up
        pred = [timed(lambda: m.predict(batch), sync)[0] for _ in range(reps)]
        med = statistics.median
        rows.append(f"| {klass.__name__} | {tuple(m.bank.shape)} | {t_fit:.1f} | {1e3 * med(pred) / a.batch:.2f} | "
                    f"{1e3 * med(floor) / a.batch:.2f} | {med(pred) / med(floor):.2f} | "
                    f"{'PASS' if 1e3 * med(pred) / a.batch <= 3 else 'FAIL'} |")
    md += [f"## 2. `predict` on a pre-processed batch of {a.batch} images on the device (lite0, 224 px, embedded brick)", "",
           f"Medians of {reps} calls after a warm-up; the floor is the backbone forward of the same batch.", "",
           "| model | bank | fit s | predict ms/image | backbone ms/image | ratio | target ≤ 3 ms |", "|---|---|---|---|---|---|---|",
           *rows, ""]
    print("\n".join(md[-len(rows) - 2:]), flush=True)
    Path(a.out).write_text("\n".join(md))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
