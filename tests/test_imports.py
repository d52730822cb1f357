"""Imports stay light and leave the process as they found it.

`reconpatch --help` must answer without importing torch, timm or faiss (the work modules are imported only after
the arguments are parsed), `import reconpatch_nb.core` must not pull in timm, faiss, scikit-image or matplotlib, and
importing or using the package must not leave a process-wide setting changed (torch's thread count, Pillow's
decompression-bomb limit, the warning filters). Each check runs in a fresh interpreter, so earlier imports of the
test session cannot hide a heavy import.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules_after(code: str) -> set:
    "The names in sys.modules after running `code` in a fresh interpreter (with the repository first on the path)."
    probe = f"import sys, json\nsys.path.insert(0, {str(REPO)!r})\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_help_imports_no_heavy_module():
    mods = modules_after("from reconpatch_nb.cli import main\n"
                         "import contextlib, io\n"
                         "with contextlib.redirect_stdout(io.StringIO()): rc = main(['evaluate', '--help'])\n"
                         "assert rc == 0, rc")
    assert not {"torch", "timm", "faiss", "skimage", "matplotlib", "numpy"} & mods, sorted({"torch", "timm", "faiss", "numpy"} & mods)


def test_core_imports_no_heavy_library():
    mods = modules_after("import reconpatch_nb.core")
    assert not {"timm", "faiss", "skimage", "matplotlib"} & mods


def test_top_level_names_are_lazy():
    mods = modules_after("import reconpatch_nb\nassert 'PatchCore' in dir(reconpatch_nb)")
    assert "torch" not in mods
    mods = modules_after("from reconpatch_nb import PatchCore, ReConPatch, Ensemble, load_model, make_detector")
    assert {"reconpatch_nb.detector", "reconpatch_nb.reconpatch", "reconpatch_nb.ensemble", "reconpatch_nb.registry"} <= mods


def test_no_process_wide_setting_left_changed():
    # third-party libraries register warning filters when they are imported: the snapshot is taken after the imports
    code = """
import warnings, torch
from PIL import Image
from reconpatch_nb import PatchCore, ReConPatch, load_model, make_detector
import reconpatch_nb.commands, reconpatch_nb.viz, reconpatch_nb.export, reconpatch_nb.widgets, reconpatch_nb.evolution
from reconpatch_nb.coreset import approximate_greedy_coreset
before = (torch.get_num_threads(), Image.MAX_IMAGE_PIXELS, list(warnings.filters))
approximate_greedy_coreset(torch.randn(500, 32), 0.1, device="cpu")
model = PatchCore(coreset_ratio=0.5, progress=False, device="cpu").fit_features(torch.randn(2, 4, 4, 16))
model.predict_features(torch.randn(1, 4, 4, 16))
after = (torch.get_num_threads(), Image.MAX_IMAGE_PIXELS, list(warnings.filters))
assert before == after, (before[:2], after[:2], len(before[2]), len(after[2]))
"""
    modules_after(code)


def test_no_blanket_warning_filter_in_the_package():
    "A warning is silenced only by category or message, inside `catch_warnings`, never for the whole process."
    for f in (REPO / "reconpatch_nb").glob("*.py"):
        text = f.read_text()
        assert 'simplefilter("ignore")' not in text and "filterwarnings(\"ignore\")" not in text, f.name
