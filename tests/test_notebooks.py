"""Run every lesson notebook the way `nbdev_test` does (cells flagged `slow`/`notest` are skipped),
one pytest case per notebook so a failure names the notebook."""
from pathlib import Path

import pytest
from nbdev.test import test_nb as run_notebook

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    ok, seconds = run_notebook(nb, skip_flags=["notest", "slow"], basepath=NBS.parent)
    assert ok, f"{nb.name} failed (see the traceback above)"
