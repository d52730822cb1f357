"""Export parity: the ONNX graph, run by onnxruntime in a fresh process that does not import reconpatch_nb,
gives the image scores, anomaly maps and image AUROC of `model.predict` on the embedded brick test images."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from reconpatch_nb.data import MVTecAD
from reconpatch_nb.detector import PatchCore
from reconpatch_nb.export import export_onnx, onnx_predict
from reconpatch_nb.metrics import image_auroc
from reconpatch_nb.reconpatch import ReConPatch
from reconpatch_nb.scoring import ExactSearch
from reconpatch_nb.synthetic import embedded_data_root


@pytest.fixture(scope="module")
def data():
    root = embedded_data_root()
    train, test = MVTecAD(root, "brick", "train"), MVTecAD(root, "brick", "test")
    patchcore = PatchCore(coreset_ratio=0.01, progress=False, device="cpu")
    p_train = patchcore.features(train)  # extracted once, shared by every model below
    patchcore.fit_features(p_train)
    inputs = patchcore.inputs(test)  # the test images as the model sees them
    images = torch.stack([inputs[i]["image"] for i in range(len(inputs))])
    return p_train, test, images


def _models(p_train):
    yield "patchcore", lambda: PatchCore(coreset_ratio=0.01, progress=False, device="cpu").fit_features(p_train)
    yield "patchcore_reweight", lambda: PatchCore(coreset_ratio=0.01, reweight=True, progress=False, device="cpu").fit_features(p_train)
    yield "reconpatch", lambda: ReConPatch(epochs=1, steps_per_epoch=2, progress=False, device="cpu").fit_features(p_train)


@pytest.mark.parametrize("name", ["patchcore", "patchcore_reweight", "reconpatch"])
def test_onnx_parity(data, name, tmp_path):
    p_train, test, images = data
    model = dict(_models(p_train))[name]()
    ref = model.predict(images)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    scores, maps = onnx_predict(path, images)  # a fresh, isolated process: numpy + onnxruntime only
    ref_scores, ref_maps = ref.scores.numpy(), ref.maps.numpy()
    assert scores.shape == ref_scores.shape and maps.shape == ref_maps.shape
    rel = np.max(np.abs(scores - ref_scores) / np.abs(ref_scores))
    assert rel <= 1e-4, f"image scores differ by {rel:.2e} (relative)"
    diff = np.abs(maps - ref_maps).max()
    assert diff <= 1e-3, f"anomaly maps differ by {diff:.2e}"
    assert image_auroc(test.labels, scores) == image_auroc(test.labels, ref_scores)


def test_dynamic_batch(data, tmp_path):
    p_train, _, images = data
    model = PatchCore(coreset_ratio=0.01, progress=False, device="cpu").fit_features(p_train)
    path = export_onnx(model, tmp_path / "m.onnx", example_batch=2)
    for b in (1, 3):
        scores, maps = onnx_predict(path, images[:b], fresh_process=False)
        assert scores.shape == (b,) and maps.shape == (b, *images.shape[-2:])
        np.testing.assert_allclose(scores, model.predict(images[:b]).scores.numpy(), rtol=1e-4)


def test_ivf_model_exports_exact_search(data, tmp_path):
    """The default index of a 10 % bank is IVF (chosen at fit time); the exported graph keeps exact search. Its scores
    are the exact ones: never above predict's (IVF can only miss a nearer bank row), and predict's patch scores equal
    the exact ones for at least 99 % of the test patches (its fit-time recall is >= 99.9 % on normal patches)."""
    p_train, test, images = data
    model = PatchCore(progress=False, device="cpu").fit_features(p_train)
    assert model.index.kind == "ivf" and model.index.recall >= 0.999, model.index
    ref = model.predict(images)
    scores, maps = onnx_predict(export_onnx(model, tmp_path / "ivf.onnx"), images, fresh_process=False)
    ref_scores = ref.scores.numpy()
    assert (scores <= ref_scores * (1 + 1e-5)).all()
    exact = model.scorer.with_search(ExactSearch(model.bank))  # the module the graph holds, in torch
    with torch.no_grad(): s_exact, _, patch_exact = exact(model.extractor(images))
    np.testing.assert_allclose(scores, s_exact.numpy(), rtol=1e-4)
    same = np.isclose(ref.patch_scores.numpy(), patch_exact.numpy(), rtol=1e-4).mean()
    assert same >= 0.99, f"IVF gave the exact patch score for only {100 * same:.2f} % of the test patches"
    assert abs(image_auroc(test.labels, scores) - image_auroc(test.labels, ref_scores)) <= 0.01


def test_unfitted_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must be a fitted detector"):
        export_onnx(PatchCore(progress=False, device="cpu"), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_export(data, tmp_path, capsys):
    "`reconpatch export` writes the same graph from a saved model, and refuses to replace a file without --overwrite."
    from reconpatch_nb.cli import main
    p_train, test, images = data
    model = PatchCore(coreset_ratio=0.01, progress=False, device="cpu").fit_features(p_train)
    saved, out = model.save(tmp_path / "model.pt"), tmp_path / "model.onnx"
    assert main(["export", "--model", str(saved), "--out", str(out)]) == 0 and out.is_file()
    scores, _ = onnx_predict(out, images[:2], fresh_process=False)
    np.testing.assert_allclose(scores, model.predict(images[:2]).scores.numpy(), rtol=1e-4)
    assert main(["export", "--model", str(saved), "--out", str(out)]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
