"""What the README and the home page quote must be what the committed results and the code say."""
import json
import re
from pathlib import Path

from reconpatch_nb.config import TrainConfig
from reconpatch_nb.synthetic import DEFECT_TYPES, EMBEDDED_BENCHMARK

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "benchmarks" / "results_evidence.md").read_text(encoding="utf-8")


def markdown_outputs(nb_name, cell_id):
    nb = json.loads((ROOT / "nbs" / nb_name).read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c.get("id") == cell_id)
    return ["".join(o["data"]["text/markdown"]) for o in cell.get("outputs", []) if "text/markdown" in o.get("data", {})]


def body(md):  # the results file without its comment and heading, with links as the README writes them
    text = "\n".join(l for l in md.split("-->", 1)[1].strip().splitlines() if not l.startswith("# ")).strip()
    return re.sub(r"\]\((?!https?:|/|#)", "](nbs/", text)


def test_readme_quotes_the_committed_results():
    assert body(RESULTS) in README, "README.md does not show benchmarks/results_evidence.md: run nbs/index.ipynb and .ci/readme.py"


def test_results_file_is_what_90_results_computed():
    out = markdown_outputs("90_results.ipynb", "8d48aa1f")
    assert out and out[0].strip() in RESULTS, "benchmarks/results_evidence.md differs from the stored output of 90_results"


def test_results_table_has_the_three_comparisons_and_an_answer():
    for row in ("ReConPatch − PatchCore 1 %", "PatchCore 1 % − PatchCore 10 %", "ReConPatch − PatchCore 10 %"):
        assert re.search(rf"\| {re.escape(row)} \(95 % interval\) \|( [+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\] \|){{5}}", RESULTS), row
    assert "**The answer on this evidence.**" in RESULTS and "**Choose" in RESULTS


def test_readme_recipes_match_the_configs():
    d, p = TrainConfig(), TrainConfig.paper()
    assert f"default recipe ({d.epochs} epochs, lr $10^{{{round(__import__('math').log10(d.lr))}}}$, EMA rate {d.gamma}" in README
    assert f"the paper's\n({p.epochs} epochs, lr $10^{{{round(__import__('math').log10(p.lr))}}}$, EMA rate {p.gamma}" in README


def test_demo_test_set_size_quoted_in_readme():
    n = EMBEDDED_BENCHMARK["n_good"] + EMBEDDED_BENCHMARK["n_per_defect"] * len(DEFECT_TYPES)
    assert f"on {n} test images each" in README


def test_readme_shows_the_folder_layout_of_the_help():
    from reconpatch_nb.cli import LAYOUT
    assert LAYOUT in README, "README.md does not show the folder layout that `reconpatch evaluate --help` prints"
