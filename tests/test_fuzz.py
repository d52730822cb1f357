"""Hostile but fair input, end to end through the `reconpatch` command line.

Every case builds a small MVTec-layout folder from the committed `data/brick` (4 training images,
1 normal and 1 defective test image per defect type, `--image-size 64`, so a run takes seconds), runs the command
line, and checks three things:

1. the exit status, and for a failure exactly one line on stderr, naming the problem, no traceback;
2. the result (files written, scores, metrics) when the run succeeds;
3. that no file the package did not write has changed anywhere in the case's folder: every file
   present before the run, except those listed in a `.reconpatch_manifest.json`, has the same
   sha256 afterwards, and new files appear only in `--out` (or at `--save-model`).

Run with `make fuzz` (it is also part of `make test`: the table takes well under a minute).
"""
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconpatch_nb.cli import main
from reconpatch_nb.outputs import MANIFEST, read_manifest

from _data import CAT, make_category

REPO = Path(__file__).resolve().parents[1]
FAST = ["--image-size", "64", "--quiet"]


def run_cli(*argv, subprocess_=False):
    "Run `reconpatch *argv`; (exit status, stdout, stderr)."
    argv = [str(a) for a in argv]
    if subprocess_:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8:strict",  # a strict UTF-8 terminal
               "HF_HUB_OFFLINE": "1"}  # no downloads: the package promises to work offline
        code = "import sys; from reconpatch_nb.cli import main; sys.exit(main(sys.argv[1:]))"
        p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=600)
        return p.returncode, p.stdout, p.stderr
    with contextlib.redirect_stdout(io.StringIO()) as so, contextlib.redirect_stderr(io.StringIO()) as se:
        rc = main(argv)
    return rc, so.getvalue(), se.getvalue()


def snapshot(ws: Path) -> dict:
    "sha256 of every file under `ws` that no manifest claims as written by the package."
    ours = set()
    for m in ws.rglob(MANIFEST):
        found = read_manifest(m.parent)
        listed = (found.files | found.models) if found is not None else ()
        ours |= {(m.parent / r).resolve() for r in listed} | {m.resolve()}
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in ws.rglob("*")
            if p.is_file() and not p.is_symlink() and p.resolve() not in ours}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    "One fitted model and the metrics of a clean run, shared by the cases."
    d = tmp_path_factory.mktemp("shared")
    data = make_category(d / "data")
    rc, _, err = run_cli("evaluate", "--data-root", data, "--category", CAT, *FAST,
                         "--out", d / "out", "--save-model", d / "model.pt")
    assert rc == 0, err
    return {"model": d / "model.pt", "metrics": json.loads((d / "out" / "metrics.json").read_text())}


# --- the cases: setup(ws, shared) -> (argv, {"out": [...], "model": path}); check(ws, shared, rc, out, err) ------
def ev(ws, *extra, out="out"):
    return ["evaluate", "--data-root", ws / "data", "--category", CAT, *FAST, "--out", ws / out, *extra]


def pred(ws, shared, *images, out="out", extra=()):
    shutil.copy(shared["model"], ws / "model.pt")
    return ["predict", "--model", ws / "model.pt", "--out", ws / out, *extra, *images]


def a_train_image(ws): return sorted((ws / "data" / CAT / "train" / "good").glob("*.png"))[0]
def a_test_image(ws, d="hole", i=0): return sorted((ws / "data" / CAT / "test" / d).glob("*.png"))[i]


def _user_folder(ws, *names):
    (ws / "out").mkdir()
    for n in names: (ws / "out" / n).write_text("the user's own file")


def _rerun_setup(ws, shared):
    make_category(ws / "data", defects=("hole", "cut"))
    rc, _, err = run_cli(*ev(ws))
    assert rc == 0, err
    first = read_manifest(ws / "out")
    shutil.rmtree(ws / "data" / CAT / "test" / "cut"); shutil.rmtree(ws / "data" / CAT / "ground_truth" / "cut")
    (ws / "first.json").write_text(json.dumps(sorted(first.files)))
    return ev(ws)


def _rerun_check(ws, shared, rc, out, err):
    now = read_manifest(ws / "out").files
    on_disk = {p.relative_to(ws / "out").as_posix() for p in (ws / "out").rglob("*") if p.is_file()} - {MANIFEST}
    assert now == on_disk, "the folder holds exactly the files of the latest run"
    assert any("_cut_" in f for f in json.loads((ws / "first.json").read_text())), "the first run drew a 'cut' overlay"
    assert not any("_cut_" in f for f in on_disk), "its stale overlays are gone"
    return True


def _recolour_masks(ws, colour):
    for m in (ws / "data" / CAT / "ground_truth").rglob("*.png"):
        a = np.asarray(Image.open(m).convert("L")) > 0
        rgb = np.zeros(a.shape + (3,), np.uint8); rgb[a] = colour
        Image.fromarray(rgb).save(m)


def _blank_first_mask(ws):
    m = sorted((ws / "data" / CAT / "ground_truth" / "hole").glob("*.png"))[0]
    Image.new("L", Image.open(m).size).save(m)


def _float_tiff(ws):
    f = a_train_image(ws)
    grey = np.asarray(Image.open(f).convert("L"), np.float32) / 255
    Image.fromarray(grey, mode="F").save(f.with_suffix(".tif")); f.unlink()


def _damaged_model(ws, shared, change):
    state = torch.load(shared["model"], weights_only=True)
    torch.save(change(state), ws / "damaged.pt")
    return ["predict", "--model", ws / "damaged.pt", "--out", ws / "out", a_test_image(ws)]


def _hostile_manifest(ws):
    (ws / "out").mkdir()
    victim = os.path.relpath(a_train_image(ws), ws / "out")
    (ws / "out" / MANIFEST).write_text(json.dumps({"written_by": "reconpatch_nb", "files": [victim, str(a_train_image(ws))]}))


def _two_same_names(ws, shared):
    for d, kind in (("a", "hole"), ("b", "good")):
        (ws / d).mkdir(); shutil.copy(a_test_image(ws, d=kind), ws / d / "001.png")
    return pred(ws, shared, ws / "a" / "001.png", ws / "b" / "001.png")


def _scores(ws): return json.loads((ws / "out" / "scores.json").read_text())


def _alpha_masks(ws):
    "Masks drawn only in the alpha channel: black RGB, the defect opaque."
    for m in (ws / "data" / CAT / "ground_truth").rglob("*.png"):
        a = (np.asarray(Image.open(m).convert("L")) > 0).astype(np.uint8) * 255
        Image.fromarray(np.dstack([np.zeros(a.shape + (3,), np.uint8), a]), "RGBA").save(m)


def _jpeg_masks(ws):
    "Masks saved as JPEG (under their .png names, as a careless export does): ringing around every edge."
    for m in (ws / "data" / CAT / "ground_truth").rglob("*.png"):
        Image.open(m).convert("L").save(m, format="JPEG", quality=75)


def _metric_close(ws, s, key, tol):
    return abs(json.loads((ws / "out" / "metrics.json").read_text())[key] - s["metrics"][key]) < tol


def _odd_names(ws, shared, *names):
    "Test images copied under odd names; predict them all."
    paths = []
    for i, n in enumerate(names):
        shutil.copy(a_test_image(ws, d=("hole", "good")[i % 2]), ws / n); paths.append(ws / n)
    return pred(ws, shared, *paths)


def _one_line_per_image(ws, s, rc, out, err, n):
    lines = out.strip().splitlines()
    return len(lines) == n + 1 and lines[-1].startswith("flagged ") and len(_scores(ws)["scores"]) == n


def _umask_check(ws, s, rc, out, err):
    u = os.umask(0); os.umask(u)
    return all((p.stat().st_mode & 0o777) == (0o666 & ~u) for p in (ws / "out").iterdir() if p.is_file())


_ENSEMBLE = {}


def _ensemble_file(ws):
    "An ensemble of two PatchCore members, fitted once and saved; returns its state."
    if not _ENSEMBLE:
        rc, _, err = run_cli("evaluate", "--data-root", ws / "data", "--category", CAT, "--quiet", "--out", ws / "ens_out",
                             "--ensemble", "patchcore@64", "patchcore@72", "--save-model", ws / "ens.pt")
        assert rc == 0, err
        _ENSEMBLE.update(torch.load(ws / "ens.pt", weights_only=True))
        shutil.rmtree(ws / "ens_out"); (ws / "ens.pt").unlink()
    return dict(_ENSEMBLE)


def _ensemble_damaged(ws, shared, change):
    state = _ensemble_file(ws)
    torch.save(change(state), ws / "damaged.pt")
    return ["predict", "--model", ws / "damaged.pt", "--out", ws / "out", a_test_image(ws)]


def _drop_member(st):
    return {**st, "members": st["members"][:1], "member_digests": st["member_digests"][:1]}


def _alter_member(st):
    m = dict(st["members"][1]); m["bank"] = m["bank"] * 1.01
    return {**st, "members": [st["members"][0], m]}


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _evaluate_with_model(ws):
    "A first evaluate run that saves its model inside --out; its files' hashes go to ws/before.json."
    rc, _, err = run_cli(*ev(ws, "--save-model", ws / "out" / "model.pt"))
    assert rc == 0, err
    (ws / "before.json").write_text(json.dumps(_hashes(ws / "out")))


def _unchanged(ws, *names):
    "Are these files of the first run (all of them when no names are given) still there, byte for byte?"
    before, now = json.loads((ws / "before.json").read_text()), _hashes(ws / "out")
    return all(now.get(n) == before[n] for n in (names or before))


def _phone_test_images(ws):
    "Store every test image as a phone does: pixels turned on their side plus EXIF orientation 6; masks stay upright."
    exif = Image.Exif(); exif[0x0112] = 6
    for f in (ws / "data" / CAT / "test").rglob("*.png"):
        Image.open(f).transpose(Image.Transpose.ROTATE_90).save(f, exif=exif.tobytes())


def _metrics(ws): return json.loads((ws / "out" / "metrics.json").read_text())


CASES = {
    # data loss
    "save-model onto a training image": dict(
        setup=lambda ws, s: ev(ws, "--save-model", a_train_image(ws)), rc=2, err="is not a reconpatch_nb model file"),
    "save-model onto a folder": dict(
        setup=lambda ws, s: ev(ws, "--save-model", ws / "data"), rc=2, err="is a folder"),
    "save-model onto the run's own metrics.json": dict(
        setup=lambda ws, s: ev(ws, "--save-model", ws / "out" / "metrics.json"), rc=2, err="would overwrite this run's own"),
    "save-model inside --out (listed in the manifest)": dict(
        setup=lambda ws, s: ev(ws, "--save-model", ws / "out" / "model.pt"), rc=0,
        check=lambda ws, s, rc, o, e: "model.pt" in read_manifest(ws / "out")),
    "out is an existing file": dict(
        setup=lambda ws, s: ev(ws, out="data/brick/train/good/000.png"), rc=2, err="is an existing file"),
    "out below an existing file": dict(
        setup=lambda ws, s: ev(ws, out="data/brick/train/good/000.png/sub"), rc=2, err="is a file, not a folder"),
    "out holds the user's files": dict(
        setup=lambda ws, s: (_user_folder(ws, "notes.txt"), ev(ws))[1], rc=2, err="not written by reconpatch"),
    "out holds the user's files, --overwrite": dict(
        setup=lambda ws, s: (_user_folder(ws, "notes.txt"), ev(ws, "--overwrite"))[1], rc=0,
        check=lambda ws, s, rc, o, e: (ws / "out" / "metrics.json").is_file() and "notes.txt" not in read_manifest(ws / "out")),
    "out holds the user's metrics.json, --overwrite": dict(
        setup=lambda ws, s: (_user_folder(ws, "metrics.json"), ev(ws, "--overwrite"))[1], rc=2, err="refusing to replace"),
    "predict into a folder with someone's scores.json": dict(
        setup=lambda ws, s: (_user_folder(ws, "scores.json"), pred(ws, s, a_test_image(ws)))[1], rc=2, err="not written by reconpatch"),
    "predict over someone's scores.json, --overwrite": dict(
        setup=lambda ws, s: (_user_folder(ws, "scores.json"), pred(ws, s, a_test_image(ws), extra=["--overwrite"]))[1],
        rc=2, err="refusing to replace"),
    "user's metrics.json, --overwrite: refused before the data is read": dict(
        setup=lambda ws, s: (_user_folder(ws, "metrics.json"), ["evaluate", "--data-root", ws / "nowhere", "--category", CAT,
                                                                *FAST, "--out", ws / "out", "--overwrite"])[1],
        rc=2, err="refusing to replace"),
    "user's heat-map name, --overwrite: refused before any image is read": dict(
        setup=lambda ws, s: (_user_folder(ws, "000_missing_heatmap.png"),
                             pred(ws, s, ws / "missing.png", extra=["--overwrite"]))[1], rc=2, err="refusing to replace"),
    "another run holds the lock on --out": dict(
        setup=lambda ws, s: (_user_folder(ws, ".reconpatch.lock"), ev(ws))[1], rc=2, err="in use by another reconpatch run"),
    "rerun into our folder removes stale outputs": dict(setup=_rerun_setup, rc=0, check=_rerun_check, data=False),
    "predict into an evaluate folder (the model inside)": dict(
        setup=lambda ws, s: (_evaluate_with_model(ws), ["predict", "--model", ws / "out" / "model.pt", "--out", ws / "out",
                                                         a_test_image(ws)])[1],
        rc=2, err="holds the output of `reconpatch evaluate`", check=lambda ws, s, rc, o, e: _unchanged(ws)),
    "evaluate again without --save-model keeps the model": dict(
        setup=lambda ws, s: (_evaluate_with_model(ws), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: _unchanged(ws, "model.pt") and "model.pt" in read_manifest(ws / "out").models),
    "manifest pointing outside --out": dict(
        setup=lambda ws, s: (_hostile_manifest(ws), ev(ws))[1], rc=0),
    "two inputs named 001.png": dict(
        setup=_two_same_names, rc=0,
        check=lambda ws, s, rc, o, e: len({v["heatmap"] for v in _scores(ws)["scores"].values()}) == 2
        and len(list((ws / "out").glob("*_heatmap.png"))) == 2),
    # silent wrong results
    "red masks": dict(
        setup=lambda ws, s: (_recolour_masks(ws, (255, 0, 0)), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: abs(json.loads((ws / "out" / "metrics.json").read_text())["pixel_auroc"]
                                          - s["metrics"]["pixel_auroc"]) < 1e-9),
    "EXIF-rotated test images, upright masks": dict(
        setup=lambda ws, s: (_phone_test_images(ws), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: all(abs(_metrics(ws)[k] - s["metrics"][k]) < 1e-9 for k in ("image_auroc", "pixel_auroc", "aupro"))),
    "empty mask of a defective image": dict(
        setup=lambda ws, s: (make_category(ws / "data", n_test=2), _blank_first_mask(ws), ev(ws))[2], rc=0, data=False,
        check=lambda ws, s, rc, o, e: "warning: the mask" in e and "is empty" in e),
    "empty mask, --strict": dict(
        setup=lambda ws, s: (_blank_first_mask(ws), ev(ws, "--strict"))[1], rc=2, err="is empty"),
    "float TIFF in [0, 1]": dict(
        setup=lambda ws, s: (_float_tiff(ws), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: (lambda m: m["n_train"] + m["n_held_out"] == 4)(json.loads((ws / "out" / "metrics.json").read_text()))),
    "1x1 image": dict(
        setup=lambda ws, s: (Image.new("RGB", (1, 1)).save(ws / "data" / CAT / "test" / "good" / "dot.png"), ev(ws))[1],
        rc=2, err="dot.png is 1x1 pixels"),
    "--image-size 100000": dict(setup=lambda ws, s: ev(ws, "--image-size", "100000"), rc=2, err="--image-size"),
    "--epochs -1 with patchcore": dict(setup=lambda ws, s: ev(ws, "--epochs", "-1"), rc=2, err="--epochs"),
    "--epochs 3 with patchcore": dict(setup=lambda ws, s: ev(ws, "--epochs", "3"), rc=2, err="--epochs applies to reconpatch only"),
    # crashes without a cause
    "--gamma 2": dict(setup=lambda ws, s: ev(ws, "--method", "reconpatch", "--gamma", "2"), rc=2, err="--gamma"),
    "reconpatch on 4 images with --patches-per-step": dict(
        setup=lambda ws, s: ev(ws, "--method", "reconpatch", "--epochs", "1", "--patches-per-step", "64"), rc=0),
    "decompression bomb (subprocess)": dict(
        setup=lambda ws, s: (Image.new("1", (13_500, 13_500)).save(ws / "data" / CAT / "test" / "good" / "bomb.png"), ev(ws))[1],
        rc=2, err="bomb.png is too large to open safely", subprocess=True),
    "model file without method": dict(
        setup=lambda ws, s: _damaged_model(ws, s, lambda st: {k: v for k, v in st.items() if k != "method"}), rc=2, err="damaged.pt"),
    "model file with an unknown config key": dict(
        setup=lambda ws, s: _damaged_model(ws, s, lambda st: {**st, "config": {**st["config"], "colour": "red"}}), rc=2, err="damaged.pt"),
    "predict: one unreadable image among good ones": dict(
        setup=lambda ws, s: ((ws / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a PNG"),
                             pred(ws, s, a_test_image(ws), ws / "broken.png", a_test_image(ws, d="good")))[1], rc=0,
        check=lambda ws, s, rc, o, e: len(_scores(ws)["scores"]) == 2 and list(_scores(ws)["unreadable"]) == [str(ws / "broken.png")]),
    "predict: nothing readable": dict(
        setup=lambda ws, s: ((ws / "broken.png").write_bytes(b"not an image"), pred(ws, s, ws / "broken.png", ws / "missing.png"))[1],
        rc=2, err="none of the 2 images could be scored"),
    "alpha-only masks (black RGB)": dict(
        setup=lambda ws, s: (_alpha_masks(ws), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: _metric_close(ws, s, "pixel_auroc", 1e-9) and "no pixel above" not in e),
    "JPEG masks": dict(
        setup=lambda ws, s: (_jpeg_masks(ws), ev(ws))[1], rc=0,
        check=lambda ws, s, rc, o, e: _metric_close(ws, s, "aupro", 0.01) and "JPEG" in e),
    "predict: a 230-byte image name": dict(
        setup=lambda ws, s: _odd_names(ws, s, "n" * 226 + ".png", "ok.png"), rc=0,
        check=lambda ws, s, rc, o, e: _one_line_per_image(ws, s, rc, o, e, 2)),
    "predict: a newline in a name": dict(
        setup=lambda ws, s: _odd_names(ws, s, "two\nlines.png", "ok.png"), rc=0,
        check=lambda ws, s, rc, o, e: _one_line_per_image(ws, s, rc, o, e, 2) and "'" in o),
    "predict: a non-UTF-8 name, strict UTF-8 output (subprocess)": dict(
        setup=lambda ws, s: _odd_names(ws, s, os.fsdecode(b"bad\xffname.png"), "ok.png"), rc=0, subprocess=True,
        check=lambda ws, s, rc, o, e: _one_line_per_image(ws, s, rc, o, e, 2) and "\\udcff" in o),
    "output files follow the umask": dict(
        setup=lambda ws, s: pred(ws, s, a_test_image(ws)), rc=0, check=_umask_check),
    "the paper's backbone offline, without --checkpoint (subprocess)": dict(
        setup=lambda ws, s: ev(ws, "--backbone", "wide_resnet50_2"), rc=2, err="--checkpoint PATH", subprocess=True),
    "model with NaN normal scores": dict(
        setup=lambda ws, s: _damaged_model(ws, s, lambda st: {**st, "train_scores": torch.full_like(st["train_scores"], float("nan"))}),
        rc=2, err="NaN"),
    "ensemble file with a member removed": dict(
        setup=lambda ws, s: _ensemble_damaged(ws, s, _drop_member), rc=2, err="damaged.pt"),
    "ensemble file with a member altered": dict(
        setup=lambda ws, s: _ensemble_damaged(ws, s, _alter_member), rc=2, err="damaged.pt"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, shared, tmp_path):
    case = CASES[name]
    ws = tmp_path
    if case.get("data", True): make_category(ws / "data")
    argv = case["setup"](ws, shared)
    before = snapshot(ws)
    rc, out, err = run_cli(*argv, subprocess_=case.get("subprocess", False))
    assert rc == case["rc"], f"{name}: exit {rc}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err, err
    if rc != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and case["err"] in lines[0] and ": error: " in lines[0], err
        assert not (ws / "out").exists() or any((ws / "out").iterdir()), "a failed run created an empty --out"
    if "check" in case: assert case["check"](ws, shared, rc, out, err), f"{name}: result check failed\nstderr: {err}"
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before if p.is_file()}
    changed = sorted(str(p.relative_to(ws)) for p in before if after.get(p) != before[p])
    assert not changed, f"{name}: files the package did not write changed or vanished: {changed}"
    out_dir, model = (ws / "out").resolve(), Path(str(argv[argv.index("--save-model") + 1])).resolve() if "--save-model" in argv else None
    new = [p for p in ws.rglob("*") if p.is_file() and p not in before and p.resolve() != model
           and out_dir not in p.resolve().parents]
    assert not new, f"{name}: files written outside --out: {new}"


def test_elpv_without_its_package(monkeypatch, tmp_path):
    "`evaluate --dataset elpv` without elpv-dataset installed: one line that says what to install, no traceback."
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)  # find_spec then reports the package as absent
    rc, out, err = run_cli("evaluate", "--dataset", "elpv", "--category", "mono", *FAST, "--out", tmp_path / "out")
    assert rc == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "pip install elpv-dataset" in lines[0], err
    assert not (tmp_path / "out").exists()


def test_predict_interrupted_keeps_finished(shared, tmp_path, monkeypatch):
    "Ctrl-C while `predict` scores its second chunk: exit 130, and the first chunk's scores are committed, the rest listed."
    from reconpatch_nb import commands
    make_category(tmp_path / "data", defects=("hole",), n_test=3)
    images = sorted((tmp_path / "data" / CAT / "test").rglob("*.png"))  # 3 good, 3 hole
    load = commands.load_model
    def interrupting_model(*a, **k):
        model, calls = load(*a, **k), []
        score = model.predict
        def predict(imgs, **options):  # options: keep_images (the overlays are drawn from the kept crops)
            calls.append(len(imgs))
            if len(calls) == 2: raise KeyboardInterrupt
            return score(imgs, **options)
        model.predict = predict
        return model
    monkeypatch.setattr(commands, "load_model", interrupting_model)
    monkeypatch.setattr(commands, "PREDICT_CHUNK", 2)
    rc, out, err = run_cli(*pred(tmp_path, shared, *images))
    assert rc == 130 and "Traceback" not in err, err
    assert "interrupted after 2 of 6 images" in err, err
    rep = _scores(tmp_path)
    assert rep["interrupted"] is True and list(rep["scores"]) == [str(p) for p in images[:2]]
    assert rep["not_scored"] == [str(p) for p in images[2:]]
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert len(rows) == 7 and sum("not scored" in r for r in rows) == 4
    assert read_manifest(tmp_path / "out").files == {"scores.json", "scores.csv"} | {
        v[k] for v in rep["scores"].values() for k in ("heatmap", "overlay")}, "the committed files are the finished ones"
