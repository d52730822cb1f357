"""Helpers shared by the benchmark scripts: seeded synthetic patch features, the machine's description, peak memory.

Import from a script in this folder with `from _common import synthetic_features, cpu_model, loadavg, PeakRSS`
(a script run as `python benchmarks/x.py` has this folder on `sys.path`).
"""
from __future__ import annotations

import os
import platform
import subprocess
import threading
from pathlib import Path

import torch


def synthetic_features(n: int, dim: int, seed: int = 0, modes: int = 500, latent: int = 64,
                       structure_seed: int | None = 1234, chunk: int = 16384) -> torch.Tensor:
    """Seeded (n, dim) patch-like features: `modes` clusters in a `latent`-d space lifted to `dim`, plus noise.

    The cluster centres and the lift come from `structure_seed` (the same for every call, so that banks and
    queries built with different `seed`s share their structure; None: drawn from `seed`'s generator, as the
    coreset benchmark did). Rows are written in place, `chunk` at a time: no transient copy of the whole matrix.
    """
    gen = torch.Generator().manual_seed(seed)
    g_struct = gen if structure_seed is None else torch.Generator().manual_seed(structure_seed)
    centres, lift = torch.randn(modes, latent, generator=g_struct), torch.randn(latent, dim, generator=g_struct) / 8
    out = torch.empty(n, dim)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        lat = centres[torch.randint(0, modes, (m,), generator=gen)] + 0.3 * torch.randn(m, latent, generator=gen)
        out[s:s + m] = lat @ lift + 0.05 * torch.randn(m, dim, generator=gen)
    return out


def gaussian_features(n: int, dim: int, seed: int = 0, chunk: int = 16384) -> torch.Tensor:
    "Seeded (n, dim) standard normal features, written in place `chunk` rows at a time."
    gen, out = torch.Generator().manual_seed(seed), torch.empty(n, dim)
    for s in range(0, n, chunk): out[s:s + chunk] = torch.randn(min(chunk, n - s), dim, generator=gen)
    return out


def cpu_model() -> str:
    "The CPU's model name (lscpu, else /proc/cpuinfo, else what `platform` knows)."
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"): return line.split(":", 1)[1].strip()
    except OSError: pass
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"): return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def loadavg() -> str:
    "The 1-, 5- and 15-minute load averages, as 'a / b / c'."
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class PeakRSS:
    "Peak resident memory (MiB, in `.mb`) above the level at entry, sampled every `every` s by a thread."
    def __init__(self, every: float = 0.002): self.every = every
    def __enter__(self):
        import psutil
        self.proc = psutil.Process(); self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event(); self.thread = threading.Thread(target=self._poll, daemon=True); self.thread.start()
        return self
    def _poll(self):
        while not self.done.wait(self.every): self.peak = max(self.peak, self.proc.memory_info().rss)
    def __exit__(self, *exc):
        self.done.set(); self.thread.join(); self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mb = (self.peak - self.base) / 2**20
