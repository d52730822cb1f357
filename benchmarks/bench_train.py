"""Training benchmark: ReConPatch time per epoch and peak memory on a realistic category of cached features.

Usage:
    python benchmarks/bench_train.py [--images 200] [--steps 10] [--threads 1 2] [--modes random images]
        [--reps 2] [--out benchmarks/results_train.md]

Features: (images, 28, 28, 1024) seeded synthetic patch features with cluster structure (500 modes in a
64-d latent space lifted to 1024-d, plus noise), i.e. what `extract_features` caches for 200 training
images at 224 px. Recipe: `train_reconpatch` defaults (patches_per_step 1024, lr 1e-5, AdamP, k = 5,
alpha = 0.5, paper contextual variant) with batch_mode "random" (153 steps of 1024 patches per epoch)
or "images" (1024 // 784 = 1 whole image per step: 200 steps of 784 patches per epoch).

Every (threads, batch_mode) runs in its own subprocess (`--worker`), so that its peak memory is its
own: the worker builds the features in place, then runs `train_reconpatch` for 2 epochs of `--steps`
steps each (steps_per_epoch=--steps; the schedule changes, the cost per step does not). Epoch 1 is a
warm-up; the time per step is epoch 2's time / steps (the epoch time includes the end-of-epoch
pseudo-label statistics on one monitor batch), and the time per default epoch is extrapolated as
time per step x default steps per epoch. `--steps 0` runs 2 full default epochs instead (slow).
Memory: RSS sampled every 5 ms by a thread (psutil) during training minus RSS before it, and the
process's high-water mark `ru_maxrss`. Repetitions alternate the order of the configurations;
medians are reported.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def worker(threads: int, mode: str, n_images: int, steps: int) -> dict:
    import psutil
    import torch
    torch.set_num_threads(threads)
    from reconpatch_nb.train import default_steps_per_epoch, train_reconpatch

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    # features built in place, image by image (no transient copy of the whole tensor)
    g = torch.Generator().manual_seed(1234)
    centres, lift = torch.randn(500, 64, generator=g), torch.randn(64, 1024, generator=g) / 8
    feats = torch.empty(n_images, 28, 28, 1024)
    g = torch.Generator().manual_seed(0)
    for i in range(n_images):
        lat = centres[torch.randint(0, 500, (784,), generator=g)] + 0.3 * torch.randn(784, 64, generator=g)
        feats[i] = (lat @ lift + 0.05 * torch.randn(784, 1024, generator=g)).view(28, 28, 1024)
    default_steps = default_steps_per_epoch(n_images, 784, 1024, mode)
    spe = steps or default_steps
    rss_before, peak, stop = proc.memory_info().rss, [0], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.005)
    th = threading.Thread(target=sample, daemon=True); th.start()
    t0 = time.perf_counter()
    res = train_reconpatch(feats, epochs=2, steps_per_epoch=spe, batch_mode=mode, device="cpu", progress=False)
    wall = time.perf_counter() - t0
    stop.set(); th.join()
    per_step = res.log[2].seconds / spe
    return dict(threads=threads, mode=mode, n_images=n_images, steps=spe, default_steps=default_steps,
                patches_per_step=1024 if mode == "random" else 784 * max(1, 1024 // 784),
                epoch1_s=res.log[1].seconds, epoch2_s=res.log[2].seconds, wall_s=wall, per_step_s=per_step,
                epoch_s=per_step * default_steps, features_mb=feats.numel() * 4 / 2**20,
                rss_start_mb=rss0 / 2**20, rss_before_mb=rss_before / 2**20,
                train_extra_mb=(peak[0] - rss_before) / 2**20,
                maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed epoch (0: the default full epoch)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=["random", "images"])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results_train.md"))
    ap.add_argument("--worker", nargs=2, metavar=("THREADS", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(int(a.worker[0]), a.worker[1], a.images, a.steps)), flush=True); return

    import torch
    from bench_pipeline import cpu_model, loadavg
    cmd = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    load0, t0, date = loadavg(), time.perf_counter(), dt.datetime.now().isoformat(timespec="seconds")
    print(f"load average at start: {load0}", flush=True)
    configs = [(t, m) for m in a.modes for t in a.threads]
    runs = {c: [] for c in configs}
    for r in range(a.reps):
        for t, m in (configs if r % 2 == 0 else configs[::-1]):
            out = subprocess.run([sys.executable, __file__, "--worker", str(t), m, "--images", str(a.images),
                                  "--steps", str(a.steps)], capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t)})
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if not line: sys.exit(f"worker {t} {m} failed:\n{out.stderr[-3000:]}")
            res = json.loads(line[0][7:]); runs[(t, m)].append(res)
            print(f"rep {r} threads {t} {m}: {res['per_step_s'] * 1000:.0f} ms/step, epoch ≈ {res['epoch_s']:.0f} s, "
                  f"train extra {res['train_extra_mb']:.0f} MB, maxrss {res['maxrss_mb']:.0f} MB", flush=True)
    med = statistics.median
    rows = []
    for (t, m), rs in runs.items():
        x = rs[0]
        rows.append([m, t, x["patches_per_step"], x["default_steps"], x["steps"],
                     f"{1000 * med(r['per_step_s'] for r in rs):.0f} (" + ", ".join(f"{1000 * r['per_step_s']:.0f}" for r in rs) + ")",
                     f"{med(r['epoch_s'] for r in rs):.0f}", f"{120 * med(r['epoch_s'] for r in rs) / 3600:.1f}",
                     f"{med(r['train_extra_mb'] for r in rs):.0f}", f"{med(r['maxrss_mb'] for r in rs):.0f}",
                     f"{x['features_mb']:.0f}"])
    base = {m: med(r["epoch_s"] for r in runs[(a.threads[0], m)]) for m in a.modes}
    speed = [f"{m}: {a.threads[0]} → {t} threads ×{base[m] / med(r['epoch_s'] for r in runs[(t, m)]):.2f}"
             for (t, m) in configs if t != a.threads[0]]
    extrap = "extrapolated from epoch 2 of 2 epochs of --steps steps" if a.steps else "measured (epoch 2 of 2 full epochs)"
    md = ["# ReConPatch training benchmark", "",
          f"<!-- meta: command={cmd!r}; nproc={os.cpu_count()}; cpu={cpu_model()!r}; torch={torch.__version__}; "
          f"threads={','.join(map(str, a.threads))}; date={date} -->",
          f"Command: `{cmd}`  ",
          f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), torch {torch.__version__}, torch threads "
          f"{', '.join(map(str, a.threads))} (one subprocess per run), {date}.  ",
          f"Load average (1/5/15 min) at start {load0}, at end {loadavg()}; wall time {time.perf_counter() - t0:.0f} s. "
          "The machine is shared: absolute times are noisy; configurations alternate, medians of "
          f"{a.reps} runs.", "",
          f"Features: {a.images} images × 28 × 28 patches × 1024-d synthetic cached features with cluster structure "
          f"({a.images * 784:,} patches, {rows[0][-1]} MB float32). Default recipe of `train_reconpatch` "
          "(AdamP, k = 5, α = 0.5, paper contextual variant, patches_per_step 1024, repr 512 / proj 128). "
          f"Epoch time {extrap}: time per step × default steps per epoch. 120 epochs = the paper's schedule.", "",
          "| batch_mode | threads | patches / step | steps / epoch (default) | steps timed | ms / step (median; runs) | "
          "s / epoch | h / 120 epochs | training peak extra RSS (MB) | process max RSS (MB) | features (MB) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    md += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    md += ["", "Thread scaling (epoch time ratio): " + "; ".join(speed) + ".",
           "Peak extra RSS = RSS high-water (sampled every 5 ms) during `train_reconpatch` minus RSS just before it "
           "(features already built); process max RSS = `ru_maxrss` (interpreter + torch + features + training)."]
    Path(a.out).write_text("\n".join(md) + "\n")
    print("\n".join(md)); print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
