"""Training benchmark: ms per step of `train_reconpatch` against the dense floor, side by side in one run.

Usage:
    python benchmarks/bench_train.py [--reps 5] [--steps 8] [--whole-steps 12] [--images 200] [--threads 1]
        [--device cpu] [--code ROOT] [--out benchmarks/results_train.md]

What is timed, in one process, alternating (train, floor) `--reps` times, medians reported:

- **train step**: `train_reconpatch` with its default `TrainConfig` (N = 1024 patches per step, C' = 1024,
  f: 1024 → 512, g: 512 → 128, k = 5, α = 0.5, AdamP, EMA) on cached features, 2 epochs of `--steps`
  steps; the time per step is epoch 2's `seconds` / steps (the end-of-epoch statistics are not in it).
- **dense floor**: the matrix products one step cannot avoid, written as plain `torch.mm` on tensors of
  the same shapes: f and g forward (2), the EMA copy's forward (2), the N × N Gram matrices of
  Eq. 1-5 and of Eq. 7 (2), the loss's backward product (N × N) · (N × 128) (1), g's backward
  (weight and input gradient, 2) and f's weight gradient (1; p needs no gradient).
- **whole call**: `train_reconpatch` from entry to return, 1 epoch of `--whole-steps` steps (set-up, the
  epoch-0 and epoch-1 log rows and every step included), against `--whole-steps` floor steps, timed in the
  order call, floor, floor, call within each repetition (the mean of each pair): what a short run costs
  beyond the steps themselves (`--whole-steps 0` skips it).
- **epoch of a 200-image category**: one full default epoch (156,800 patches of 28 × 28 × 200 images,
  153 steps of 1024) measured once at the end (`--images 0` skips it).

`torch.set_num_threads(--threads)` is set here, in the benchmark only. `--code ROOT` times the
`reconpatch_nb` package found under ROOT instead of this checkout (for a before/after table).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

from _common import cpu_model, loadavg, synthetic_features

HERE = Path(__file__).resolve().parent


def features(n_images: int, seed: int = 0):
    "Seeded synthetic cached features (n_images, 28, 28, 1024) with cluster structure."
    return synthetic_features(n_images * 784, 1024, seed).view(n_images, 28, 28, 1024)


def floor_step(t: dict):
    "The unavoidable matrix products of one training step, as plain torch.mm."
    import torch
    mm = torch.mm
    h = mm(t["p"], t["wf_t"])            # f forward: (N, C') (C', 512)
    z = mm(h, t["wg_t"])                 # g forward: (N, 512) (512, 128)
    hb = mm(t["p"], t["wf_t"])           # f̄ forward
    zb = mm(hb, t["wg_t"])               # ḡ forward
    mm(zb, zb.T)                         # Gram of Eq. 1-5 (N, N)
    mm(z, z.T)                           # Gram of Eq. 7 (N, N)
    gz = mm(t["s"], z)                   # loss backward: (N, N) (N, 128)
    mm(gz.T, h)                          # g weight gradient (128, 512)
    gh = mm(gz, t["wg"])                 # g input gradient (N, 512)
    mm(gh.T, t["p"])                     # f weight gradient (512, C')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="alternating (train, floor) repetitions")
    ap.add_argument("--steps", type=int, default=8, help="steps per timed epoch of train_reconpatch")
    ap.add_argument("--floor-iters", type=int, default=8, help="floor steps per repetition")
    ap.add_argument("--whole-steps", type=int, default=12, help="steps of the timed whole call (0: skip)")
    ap.add_argument("--images", type=int, default=200, help="images of the full-epoch measurement (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--code", default=str(HERE.parent), help="root of the reconpatch_nb package to time")
    ap.add_argument("--out", default=str(HERE / "results_train.md"))
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.code).resolve()))
    import torch
    torch.set_num_threads(a.threads)
    from reconpatch_nb.train import default_steps_per_epoch, train_reconpatch

    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    N, C, R, P = 1024, 1024, 512, 128
    cmd = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    load0, t_start, date = loadavg(), time.perf_counter(), dt.datetime.now().isoformat(timespec="seconds")
    print(f"load average at start: {load0}", flush=True)

    small = features(2, seed=1)                                  # 1,568 patches: more than one batch
    g = torch.Generator().manual_seed(0)
    tens = dict(p=torch.randn(N, C, generator=g), wf_t=torch.randn(C, R, generator=g) / 32,
                wg_t=torch.randn(R, P, generator=g) / 23, wg=torch.randn(P, R, generator=g) / 23,
                s=torch.randn(N, N, generator=g))
    tens = {k: v.to(dev) for k, v in tens.items()}
    train_ms, floor_ms, whole_ms, whole_floor_ms = [], [], [], []
    train_reconpatch(small, epochs=1, steps_per_epoch=2, device=dev, progress=False)   # warm-up
    floor_step(tens); sync()
    for r in range(a.reps):
        res = train_reconpatch(small, epochs=2, steps_per_epoch=a.steps, device=dev, progress=False, seed=r)
        train_ms.append(1000 * res.log[2].seconds / a.steps)
        sync(); t0 = time.perf_counter()
        for _ in range(a.floor_iters): floor_step(tens)
        sync(); floor_ms.append(1000 * (time.perf_counter() - t0) / a.floor_iters)
        print(f"rep {r}: train {train_ms[-1]:.1f} ms/step, floor {floor_ms[-1]:.1f} ms/step, "
              f"ratio {train_ms[-1] / floor_ms[-1]:.2f}", flush=True)
        if a.whole_steps:   # whole call, floor, floor, whole call (ABBA: a steady drift of the load cancels)
            def whole():
                sync(); t0 = time.perf_counter()
                train_reconpatch(small, epochs=1, steps_per_epoch=a.whole_steps, device=dev, progress=False, seed=r)
                sync(); return time.perf_counter() - t0
            def floor():
                sync(); t0 = time.perf_counter()
                for _ in range(a.whole_steps): floor_step(tens)
                sync(); return time.perf_counter() - t0
            w1, f1, f2, w2 = whole(), floor(), floor(), whole()
            whole_ms.append(1000 * (w1 + w2) / 2 / a.whole_steps)              # per step, so that the column reads alike
            whole_floor_ms.append(1000 * (f1 + f2) / 2 / a.whole_steps)
            print(f"rep {r}: whole call {a.whole_steps * whole_ms[-1]:.0f} ms, {a.whole_steps} floor steps "
                  f"{a.whole_steps * whole_floor_ms[-1]:.0f} ms, ratio {whole_ms[-1] / whole_floor_ms[-1]:.2f}", flush=True)
    med = statistics.median
    ratios = [t / f for t, f in zip(train_ms, floor_ms)]
    whole_ratios = [t / f for t, f in zip(whole_ms, whole_floor_ms)]
    epoch = None
    if a.images:
        del small
        big = features(a.images)
        steps = default_steps_per_epoch(a.images, 784, N)
        res = train_reconpatch(big, epochs=1, device=dev, progress=False)
        epoch = dict(images=a.images, patches=a.images * 784, steps=steps, seconds=res.log[1].seconds)
        print(f"full epoch, {a.images} images: {epoch['seconds']:.1f} s ({steps} steps)", flush=True)

    fmt = lambda xs: f"{med(xs):.1f} ({', '.join(f'{x:.1f}' for x in xs)})"
    md = ["# ReConPatch training benchmark", "",
          f"<!-- meta: command={cmd!r}; nproc={os.cpu_count()}; cpu={cpu_model()!r}; torch={torch.__version__}; "
          f"threads={a.threads}; device={dev}; date={date} -->",
          f"Command: `{cmd}`  ",
          f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), torch {torch.__version__}, {a.threads} torch thread(s) "
          f"(set in the benchmark), device {dev}, {date}.  ",
          f"Load average (1/5/15 min) at start {load0}, at end {loadavg()}; wall time {time.perf_counter() - t_start:.0f} s. "
          f"The machine is shared: train and floor alternate in one process, medians of {a.reps} repetitions.", "",
          f"One step: N = {N} patches, C' = {C}, f: {C} → {R}, g: {R} → {P}, the default recipe of `train_reconpatch` "
          "(k = 5, α = 0.5, σ = 1, paper contextual variant, AdamP, EMA). Floor: the 10 matrix products a step cannot avoid "
          "(f, g, f̄, ḡ forward; the Gram matrices of Eq. 1-5 and Eq. 7; the loss's backward product; g's two and f's one "
          "backward product) as plain `torch.mm`.", "",
          "| | ms / step, median (runs) |", "|---|---|",
          f"| `train_reconpatch` step | {fmt(train_ms)} |",
          f"| dense floor (`torch.mm` only) | {fmt(floor_ms)} |",
          f"| ratio step / floor | {med(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) |"]
    if whole_ms:
        md += [f"| whole `train_reconpatch` call, 1 epoch of {a.whole_steps} steps, per step | {fmt(whole_ms)} |",
               f"| {a.whole_steps} floor steps timed beside it, per step | {fmt(whole_floor_ms)} |",
               f"| **ratio whole call / {a.whole_steps} floor steps** | **{med(whole_ratios):.2f}** "
               f"({', '.join(f'{x:.2f}' for x in whole_ratios)}) |",
               "", f"The whole call runs from entry to return: set-up (head, EMA copy, optimiser, monitor batch), the "
               f"log rows of epochs 0 and 1 (the monitor batch's w^P, w^C, w statistics, EMA gap, change of f) and the "
               f"{a.whole_steps} steps; on a short run these are not amortised. Each repetition times call, floor, floor, call "
               "and takes the mean of each pair."]
    if epoch:
        md += ["", f"Full default epoch of a {epoch['images']}-image category ({epoch['patches']:,} patches, "
                   f"{epoch['steps']} steps of {N}), measured once: **{epoch['seconds']:.1f} s**; "
                   f"the paper's 120 epochs ≈ {120 * epoch['seconds'] / 60:.0f} min at this rate."]
    elif Path(a.out).exists():   # --images 0: keep the earlier run's full-epoch line, marked as kept
        prev = Path(a.out).read_text().splitlines()
        line = next((l for l in prev if l.startswith("Full default epoch")), None)
        if line:
            note = next((l for l in prev if l.startswith("_(Section kept from an earlier run")), None)
            if note is None:
                head = " ".join(l.rstrip() for l in prev if l.startswith(("Command:", "Load average")))
                note = f"_(Section kept from an earlier run; its header said: {head})_"
            md += ["", line, "", note]
    Path(a.out).write_text("\n".join(md) + "\n")
    print("\n".join(md)); print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
