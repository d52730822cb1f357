"""Small data sets built by the tests from the committed embedded images (not a test module: pytest collects test_*.py)."""
import shutil
from pathlib import Path

from reconpatch_nb.synthetic import embedded_data_root

CAT = "brick"


def make_category(root: Path, defects=("hole",), n_train=4, n_test=1) -> Path:
    "A small MVTec-layout copy of the embedded `brick` under `root`: `n_train` good training images, `n_test` per test folder, masks; returns `root` (the --data-root)."
    src = embedded_data_root() / CAT
    for sub, n in [("train/good", n_train), ("test/good", n_test)] + [(f"test/{d}", n_test) for d in defects]:
        (root / CAT / sub).mkdir(parents=True)
        for f in sorted((src / sub).glob("*.png"))[:n]:
            shutil.copy(f, root / CAT / sub / f.name)
    for d in defects:
        (root / CAT / "ground_truth" / d).mkdir(parents=True)
        for f in sorted((root / CAT / "test" / d).glob("*.png")):
            shutil.copy(src / "ground_truth" / d / f"{f.stem}_mask.png", root / CAT / "ground_truth" / d)
    return root
