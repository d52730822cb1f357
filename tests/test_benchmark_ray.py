"""`reconpatch benchmark --executor ray` gives the numbers of the one-process run (a local Ray instance; skipped
where Ray, an optional extra, is not installed)."""
import numpy as np
import pytest

from reconpatch_nb.benchmark import ResultsFile, cmd_benchmark
from reconpatch_nb.cli import build_parser

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray)")


def args(results, *extra):
    return build_parser().parse_args(["benchmark", "--dataset", "embedded", "--categories", "brick", "--methods", "patchcore",
                                      "reconpatch", "--seeds", "0", "1", "--image-size", "64", "--epochs", "1", "--quiet",
                                      "--results", str(results), *extra])


def test_ray_matches_one_process(tmp_path):
    local = cmd_benchmark(args(tmp_path / "local.jsonl"))
    on_ray = cmd_benchmark(args(tmp_path / "ray.jsonl", "--executor", "ray"))
    assert on_ray == local
    key = lambda r: tuple(r["key"])
    a = {key(r): r["scores"] for r in ResultsFile(tmp_path / "local.jsonl").records()}
    b = {key(r): r["scores"] for r in ResultsFile(tmp_path / "ray.jsonl").records()}
    # Ray gives each task one CPU thread (OMP_NUM_THREADS=1), so float32 sums run in another order than in this
    # process: the scores agree to rounding, the table (what the command prints) exactly
    assert a.keys() == b.keys() and len(a) == 4
    for k in a: assert np.allclose(a[k], b[k], rtol=1e-5, atol=0), k
    assert not ray.is_initialized()   # the command shut down the instance it started
