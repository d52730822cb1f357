"""`reconpatch benchmark` killed with SIGKILL in the middle of its tasks, then run again: the rerun keeps the finished
lines, runs only the rest, and prints the table an uninterrupted run prints."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconpatch_nb.benchmark import ResultsFile, cmd_benchmark
from reconpatch_nb.cli import build_parser

from _data import make_category

REPO = Path(__file__).resolve().parents[1]
SEEDS = [str(s) for s in range(4)]


def test_resume_after_sigkill(tmp_path):
    ARGV = ["benchmark", "--dataset", "mvtec", "--data-root", str(make_category(tmp_path / "data")), "--methods", "patchcore",
            "--seeds", *SEEDS, "--image-size", "64", "--quiet"]
    killed = tmp_path / "killed.jsonl"
    code = "import sys; from reconpatch_nb.cli import main; sys.exit(main(sys.argv[1:]))"
    p = subprocess.Popen([sys.executable, "-c", code, *ARGV, "--results", str(killed)], cwd=tmp_path, start_new_session=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and p.poll() is None:
        if killed.exists() and killed.read_bytes().count(b"\n") >= 1: break   # one task finished: kill during the next
        time.sleep(0.2)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    first = killed.read_bytes()
    done = [json.loads(line)["key"] for line in first.decode().splitlines() if line.strip()]
    assert 1 <= len(done) < len(SEEDS), done

    resumed = cmd_benchmark(build_parser().parse_args([*ARGV, "--results", str(killed)]))
    assert killed.read_bytes().startswith(first), "the finished lines are kept as they were"
    keys = [tuple(r["key"]) for r in ResultsFile(killed).records()]
    assert len(keys) == len(set(keys)) == len(SEEDS), keys            # each task once: the finished ones were not run again

    clean = cmd_benchmark(build_parser().parse_args([*ARGV, "--results", str(tmp_path / "clean.jsonl")]))
    assert resumed == clean
