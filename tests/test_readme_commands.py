"""The README's own-data commands, run as written (only the placeholder folders are filled), offline.

A practitioner copies these two lines first; they must work on a machine without internet with the
default backbone, and say where they wrote.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BRICK = REPO / "data" / "brick"


def test_own_data_commands_run_as_written(tmp_path):
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "reconpatch fit" in b)
    assert "reconpatch predict" in block and "path/to/good_images" in block and "path/to/new/*.png" in block, block
    good, new = tmp_path / "path" / "to" / "good_images", tmp_path / "path" / "to" / "new"
    for i, f in enumerate(sorted((BRICK / "train" / "good").glob("*.png"))[:10]):   # two sub-folders: the search is recursive
        (good / f"line{i % 2}").mkdir(parents=True, exist_ok=True); shutil.copy(f, good / f"line{i % 2}" / f.name)
    new.mkdir(parents=True)
    for d in ("good", "hole"):
        for f in sorted((BRICK / "test" / d).glob("*.png"))[:2]: shutil.copy(f, new / f"{d}_{f.name}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}  # no network
    p = subprocess.run(["bash", "-eo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "parts.pt").is_file() and (tmp_path / "checks" / "scores.csv").is_file()
    lines = p.stdout.strip().splitlines()
    assert any("fitted patchcore on 8 of 10 good images" in line for line in lines), p.stdout
    assert lines[-1].startswith("flagged ") and "of 4 images" in lines[-1] and "checks" in lines[-1], p.stdout
    rows = (tmp_path / "checks" / "scores.csv").read_text().splitlines()
    assert len(rows) == 5 and all(("normal" in r) or ("anomalous" in r) for r in rows[1:]), rows
