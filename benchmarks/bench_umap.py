"""Time one UMAP frame of the feature-evolution figure (notebook 14) on CPU and print a Markdown table.

Usage:  python benchmarks/bench_umap.py [--points 1000 5000] [--with-pynndescent] [--threads 2]

What is measured, per configuration, each in a fresh Python process (numba compiles UMAP's
kernels on the first call of every process, so "first frame" is what a reader waits for when
running the notebook once; "warm" is every later frame):
  - import:  `import umap` (numba and pynndescent are imported with it);
  - first:   the first `embed_frames` call (1 frame, spectral init): JIT compilation included;
  - warm:    the same call again (JIT cached in memory);
  - chained: frames 2.. of a 3-frame chain (init = previous layout + Procrustes), per frame.
The features are real PatchCore patch features p (tf_efficientnet_lite0, 1024-d) of the embedded
`brick` images, subsampled with `sample_patches` (seeded); the 512-d rows use a fixed random
linear map of them, like f(p). `knn=exact` is the package's path (exact k-NN from
`NearestNeighbourIndex`, passed to UMAP as `precomputed_knn`); `knn=pynndescent` is UMAP's own
default, for comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, loadavg  # noqa: E402


def worker(path:str, n:int, dim:int, knn:str, seed:int=0) -> dict:
    "Runs in a fresh process: import umap, then time the first, a warm and chained frames."
    t0 = time.perf_counter(); import umap  # noqa: F401
    t_import = time.perf_counter() - t0
    import torch
    from reconpatch_nb.viz import embed_frames
    X = np.load(path)[:n]
    if dim != X.shape[1]:
        W = torch.randn(X.shape[1], dim, generator=torch.Generator().manual_seed(seed)).numpy() / np.sqrt(X.shape[1])
        X = X @ W
    X = np.ascontiguousarray(X, dtype=np.float32)
    if knn == "pynndescent":  # UMAP's default neighbour search instead of our exact one
        import umap as U, warnings
        def run(frames):
            out = {}
            for k, v in frames.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[k] = U.UMAP(n_neighbors=15, min_dist=0.1, n_epochs=200, random_state=seed).fit_transform(v)
            return out
    else:
        run = lambda frames: embed_frames(frames, method="umap", seed=seed)
    t = time.perf_counter(); run({"a": X}); first = time.perf_counter() - t
    t = time.perf_counter(); run({"a": X}); warm = time.perf_counter() - t
    rng = np.random.default_rng(seed)
    frames = {f"e{i}": X + rng.normal(scale=0.05 * X.std(), size=X.shape).astype(np.float32) for i in range(3)}
    t = time.perf_counter(); run({"e0": frames["e0"]}); t_one = time.perf_counter() - t
    t = time.perf_counter(); run(frames); t_three = time.perf_counter() - t
    return dict(n=n, dim=dim, knn=knn, import_s=t_import, first_s=first, warm_s=warm,
                chained_s=(t_three - t_one) / 2 if knn == "exact" else float("nan"))


def real_features(n_max:int, seed:int=0) -> np.ndarray:
    "Patch features p of embedded brick train+test images, seeded subsample (defective patches kept)."
    import torch
    from reconpatch_nb.data import MVTecAD
    from reconpatch_nb.features import PatchFeatureExtractor, extract_features
    from reconpatch_nb.synthetic import embedded_data_root
    from reconpatch_nb.viz import patch_labels, sample_patches
    root = embedded_data_root()
    train, test = MVTecAD(root, "brick", "train"), MVTecAD(root, "brick", "test")
    ex = PatchFeatureExtractor("tf_efficientnet_lite0", device="cpu")
    from reconpatch_nb.detector import PatchCore
    train, test = train.subset(range(6)), test.subset(range(0, len(test), 3))
    model = PatchCore(progress=False, device="cpu")  # its pre-processing; the extractor above is the same backbone
    p = torch.cat([extract_features(ex, model.inputs(train), progress=False), extract_features(ex, model.inputs(test), progress=False)])
    masks = torch.cat([torch.zeros(len(train), 224, 224), model.masks(test).float()])
    keep = sample_patches(patch_labels(masks, p.shape[1:3]), max_points=n_max, seed=seed)
    X = p.reshape(-1, p.shape[-1])[keep].numpy()
    return X[np.random.default_rng(seed).permutation(len(X))]  # so that X[:n] is a uniform subsample too


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--with-pynndescent", action="store_true", help="also time UMAP's default k-NN (slow first call)")
    ap.add_argument("--threads", type=int, default=2, help="NUMBA_NUM_THREADS / OMP_NUM_THREADS of the workers")
    ap.add_argument("--worker", nargs=4, metavar=("NPY", "N", "DIM", "KNN"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), int(a.worker[2]), a.worker[3]))); return
    env = dict(os.environ, NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    configs = [(n, 1024, "exact") for n in a.points] + [(max(a.points), 512, "exact")]
    if a.with_pynndescent: configs.append((max(a.points), 1024, "pynndescent"))
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "p.npy"); np.save(path, real_features(max(a.points)))
        rows = []
        for n, dim, knn in configs:
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "--worker", path, str(n), str(dim), knn], env=env,
                                 capture_output=True, text=True, check=True)
            rows.append(dict(json.loads(out.stdout.strip().splitlines()[-1]), load=load))
            print(f"done: {rows[-1]}", file=sys.stderr)
    print(f"\n<!-- meta: command={' '.join(['python', 'benchmarks/bench_umap.py', *sys.argv[1:]])!r}; nproc={os.cpu_count()}; "
          f"cpu={cpu_model()!r}; threads={a.threads}; load={loadavg()} -->")
    print(f"\nCPU: {os.cpu_count()} cores ({cpu_model()}), {a.threads} threads per worker; load = 1-min load average before the run\n")
    print("| points | dim | k-NN | import umap (s) | first frame (s) | warm frame (s) | chained frame (s) | load |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        chained = "" if np.isnan(r["chained_s"]) else f"{r['chained_s']:.1f}"
        print(f"| {r['n']} | {r['dim']} | {r['knn']} | {r['import_s']:.1f} | {r['first_s']:.1f} | {r['warm_s']:.1f} | "
              f"{chained} | {r['load']:.1f} |")

if __name__ == "__main__":
    main()
