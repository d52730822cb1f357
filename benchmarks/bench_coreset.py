"""Coreset benchmark: time and peak memory of reconpatch_nb's samplers vs anomalib's KCenterGreedy.

Usage:
    python benchmarks/bench_coreset.py [--sizes 10000 50000 100000 200000] [--dim 1024] [--ratio 0.1]
        [--anomalib-path DIR] [--exact-max 10000] [--max-steps 0] [--data structured|gaussian]
        [--out benchmarks/results_coreset.md]

Every (method, N) runs in a fresh subprocess that builds the same seeded features chunk by chunk,
so that the peak resident memory of the method (RSS sampled every 2 ms during the call, minus RSS
before it) is not polluted by other runs. anomalib is never imported as a package (its __init__ pulls in lightning etc.): with
`--anomalib-path` pointing at a `pip install --no-deps --target DIR anomalib`, only the two files
KCenterGreedy needs (sampling/k_center_greedy.py, dimensionality_reduction/random_projection.py)
are loaded. If that fails, the script says so and reports the other methods.

`--max-steps M` (> 0) times anomalib's KCenterGreedy on its first M picks only and extrapolates
(projection time + k x time per pick; each of its picks costs the same O(N d) work). Our samplers
always run in full (their cost per pick is not constant: it falls as the coreset grows).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import threading
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DEFAULT_ANOMALIB = "/work/scratch/anomalib_pkgs"


def make_features(n: int, dim: int, kind: str, seed: int = 0, chunk: int = 16384) -> torch.Tensor:
    "Seeded (n, dim) features built in place chunk by chunk (no transient copy of the whole matrix)."
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim)
    if kind == "gaussian":
        for s in range(0, n, chunk): out[s:s + chunk] = torch.randn(min(chunk, n - s), dim, generator=gen)
        return out
    # "structured": patch-like features, 1000 modes in a 64-d latent space mapped to dim, plus noise
    modes, lift = torch.randn(1000, 64, generator=gen), torch.randn(64, dim, generator=gen) / 8
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        lat = modes[torch.randint(0, 1000, (m,), generator=gen)] + 0.3 * torch.randn(m, 64, generator=gen)
        out[s:s + m] = lat @ lift + 0.05 * torch.randn(m, dim, generator=gen)
    return out


def load_kcenter(path: str):
    "KCenterGreedy from an anomalib install at `path`, loading only the files it needs."
    base = Path(path) / "anomalib" / "models" / "components"
    def load(name, file):
        spec = importlib.util.spec_from_file_location(name, file)
        mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod; spec.loader.exec_module(mod)
        return mod
    for name in ("anomalib", "anomalib.models", "anomalib.models.components"):
        sys.modules.setdefault(name, types.ModuleType(name))
    load("anomalib.models.components.dimensionality_reduction", base / "dimensionality_reduction" / "random_projection.py")
    return load("anomalib.models.components.sampling.k_center_greedy", base / "sampling" / "k_center_greedy.py").KCenterGreedy


class PeakRSS:
    "Peak resident memory above the level at entry, sampled every 2 ms by a thread (catches short-lived buffers)."
    def __enter__(self):
        self.proc = psutil.Process(); self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event(); self.thread = threading.Thread(target=self._poll, daemon=True); self.thread.start()
        return self
    def _poll(self):
        while not self.done.wait(0.002): self.peak = max(self.peak, self.proc.memory_info().rss)
    def __exit__(self, *exc):
        self.done.set(); self.thread.join(); self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mb = (self.peak - self.base) / 2**20


def worker(method: str, n: int, dim: int, ratio: float, kind: str, anomalib_path: str, max_steps: int) -> dict:
    from reconpatch_nb.coreset import approximate_greedy_coreset, greedy_coreset
    feats = make_features(n, dim, kind)
    k = int(n * ratio)
    KCenterGreedy = load_kcenter(anomalib_path) if method == "anomalib" else None
    with PeakRSS() as mem:
        note = ""
        t0 = time.perf_counter()
        if method == "ours":
            idx = approximate_greedy_coreset(feats, ratio, device="cpu", progress=False)
        elif method == "exact":
            idx = greedy_coreset(feats, ratio, device="cpu", progress=False)
        elif method == "anomalib":
            torch.manual_seed(0)
            sampler = KCenterGreedy(feats, ratio)
            if max_steps and max_steps < k:  # first picks only, then extrapolate (same loop body as select_coreset_idxs)
                sampler.model.fit(feats); sampler.features = sampler.model.transform(feats); sampler.reset_distances()
                t_setup = time.perf_counter() - t0
                idx = torch.randint(high=n, size=(1,)).squeeze(); picks = [idx]
                t1 = time.perf_counter()
                for _ in range(max_steps - 1):
                    sampler.update_distances(cluster_center=idx)
                    idx = sampler.get_new_idx()
                    sampler.min_distances.scatter_(0, idx.unsqueeze(0).unsqueeze(1), 0.0)
                    picks.append(idx)
                per_pick = (time.perf_counter() - t1) / (max_steps - 1)
                seconds = t_setup + per_pick * (k - 1)
                note = f"extrapolated from {max_steps} picks ({per_pick * 1e3:.1f} ms/pick)"
                idx = torch.stack(picks)
            else:
                idx = torch.tensor(sampler.select_coreset_idxs())
        else:
            raise ValueError(f"unknown method {method!r}")
        if not note: seconds = time.perf_counter() - t0
    return dict(method=method, n=n, k=k, seconds=seconds, peak_mb=mem.mb,
                features_mb=feats.numel() * 4 / 2**20, picks=len(idx), note=note)


def run(method, n, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--n", str(n), "--dim", str(args.dim), "--ratio", str(args.ratio),
           "--data", args.data, "--anomalib-path", args.anomalib_path, "--max-steps", str(args.max_steps)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return dict(method=method, n=n, error=res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000, 200_000])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--ratio", type=float, default=0.1)
    p.add_argument("--data", choices=["structured", "gaussian"], default="structured")
    p.add_argument("--anomalib-path", default=DEFAULT_ANOMALIB, help="folder of `pip install --no-deps --target` anomalib")
    p.add_argument("--exact-max", type=int, default=10_000, help="run the exact greedy only up to this N")
    p.add_argument("--max-steps", type=int, default=0, help="time anomalib on this many picks and extrapolate (0: full run)")
    p.add_argument("--out", default=str(HERE / "results_coreset.md"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.dim, args.ratio, args.data, args.anomalib_path, args.max_steps)))
        return

    try:
        load_kcenter(args.anomalib_path); have_anomalib = True
    except Exception as e:  # report and carry on with our methods
        print(f"anomalib KCenterGreedy could not be imported from {args.anomalib_path!r} ({type(e).__name__}: {e}); "
              f"install it with `pip install --no-deps --target DIR anomalib` and pass --anomalib-path DIR", file=sys.stderr)
        have_anomalib = False

    rows = []
    for n in args.sizes:
        methods = ["ours"] + (["exact"] if n <= args.exact_max else []) + (["anomalib"] if have_anomalib else [])
        for m in methods:
            r = run(m, n, args); rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)

    names = {"ours": "ours: approximate_greedy_coreset (d*=128)", "exact": "ours: greedy_coreset (exact, no projection)",
             "anomalib": "anomalib KCenterGreedy (sparse JL projection, eps=0.9)"}
    lines = [f"# Coreset benchmark\n",
             f"{args.data} features, D = {args.dim}, ratio = {args.ratio:.0%}, CPU ({os.cpu_count()} cores, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads). Peak memory = peak RSS during the call minus RSS before it "
             f"(sampled every 2 ms; the features themselves are allocated before).\n",
             "| N | k | method | time (s) | peak extra memory (MB) | features (MB) | speed-up vs anomalib | note |",
             "|---|---|---|---|---|---|---|---|"]
    for n in args.sizes:
        ref = next((r for r in rows if r["n"] == n and r["method"] == "anomalib" and "seconds" in r), None)
        for r in (r for r in rows if r["n"] == n):
            if "error" in r:
                lines.append(f"| {n} | | {names[r['method']]} | failed | | | | {r['error']} |"); continue
            speed = f"{ref['seconds'] / r['seconds']:.1f}x" if ref else "n/a"
            lines.append(f"| {n} | {r['k']} | {names[r['method']]} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                         f"{r['features_mb']:.0f} | {speed} | {r['note']} |")
    if not have_anomalib: lines.append("\nanomalib was not available: its column is missing.")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
