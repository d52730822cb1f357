#!/bin/sh
# The GPU checks of issue "Fast on CPU and GPU" in one run, for a machine with one CUDA GPU (run from the repository
# root, inside the venv). Writes results_train_gpu.md and results_gpu.md, then regenerates BENCHMARKS.md.
set -e
python benchmarks/bench_train.py --device cuda --threads 8 --reps 5 --steps 50 --images 200 --out benchmarks/results_train_gpu.md
python benchmarks/bench_gpu.py --device cuda
python benchmarks/make_report.py
