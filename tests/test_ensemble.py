"""Contract tests of `reconpatch_nb.ensemble` on tiny generated images (seconds on a CPU): the save/load round trip,
the modified z-score statistics coming from the held-out normal images, and the argument errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from reconpatch_nb.data import FolderDataset
from reconpatch_nb.detector import PatchCore
from reconpatch_nb.ensemble import Ensemble, split_normals
from reconpatch_nb.scoring import mad_standardize


def _images(folder, n, seed, defect=False):
    "n noisy grey-ish 72 px images (with a bright square when `defect`)."
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = (0.5 + 0.1 * rng.standard_normal((72, 72, 3))).clip(0, 1)
        if defect: arr[20:36, 30:46] = 1.0
        Image.fromarray((arr * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def _members():
    # two input sizes, one field of view (crop / resize about 0.875)
    return [PatchCore(resize=73, image_size=64, coreset_ratio=0.5, progress=False, device="cpu"),
            PatchCore(resize=55, image_size=48, coreset_ratio=0.5, progress=False, device="cpu")]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("ensemble")
    train = FolderDataset(_images(d / "normal", 10, 0))
    test = FolderDataset(_images(d / "good", 3, 1), abnormal_dir=_images(d / "bad", 3, 2, defect=True))
    return Ensemble(_members(), val_fraction=0.2, seed=0).fit(train), train, test


def test_round_trip(fitted, tmp_path):
    ens, _, test = fitted
    back = Ensemble.load(ens.save(tmp_path / "ens.pt"))
    assert [m.config for m in back.members] == [m.config for m in ens.members]
    assert torch.equal(back.predict(test).scores, ens.predict(test).scores)
    assert back.threshold == ens.threshold


def test_statistics_from_held_out_normals(fitted):
    ens, train, _ = fitted
    _, val = split_normals(train, 0.2, 0)  # the split `fit` made
    assert len(val) == 2
    for m, v in zip(ens.members, ens.val_scores):
        s = m.predict(val).patch_scores
        assert len(v) == s.numel()
        z = mad_standardize(s.reshape(-1), v)
        # the median of an even number of values is the mean of the two middle ones, as torch.quantile computes it
        assert abs(float(torch.quantile(z, 0.5))) < 1e-5
        assert abs(float(torch.quantile(z.abs(), 0.5)) - 1 / 1.4826) < 1e-5


def test_prediction_shapes(fitted):
    ens, _, test = fitted
    pred = ens.predict(test)
    assert pred.maps.shape == (len(test), 64, 64)          # the largest member's input size
    assert pred.patch_scores.shape == (len(test), 8, 8)    # the finest member grid
    assert 0 <= ens.evaluate(test, pred)["image_auroc"] <= 1


def test_errors(fitted):
    ens, _, _ = fitted
    with pytest.raises(ValueError, match="members is empty"): Ensemble([])
    with pytest.raises(ValueError, match="different fields of view"):
        Ensemble([PatchCore(resize=73, image_size=64), PatchCore(resize=128, image_size=64)])
    with pytest.raises(ValueError, match="val is empty"): ens.calibrate([])
    with pytest.raises(ValueError, match="same input size"): ens.member_predictions(torch.zeros(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match="not fitted"): Ensemble(_members()).predict(torch.zeros(1, 3, 64, 64))
