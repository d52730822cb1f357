"""Every `reconpatch` option a user can pass, run end to end through the command line on small data (4 training
images of 64 px), each asserting on what it should change."""
import json
import shutil

import pytest
import torch

from reconpatch_nb.cli import main
from reconpatch_nb.features import BACKBONES
from reconpatch_nb.ensemble import load_model
from reconpatch_nb.synthetic import embedded_data_root

from _data import CAT, make_category


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A small MVTec-layout copy of one embedded category: 4 training images, 2 good and 2 'hole' test images with masks."
    return make_category(tmp_path_factory.mktemp("tiny"), n_test=2)


def evaluate(tiny, out, *extra):
    rc = main(["evaluate", "--data-root", str(tiny), "--category", CAT, "--image-size", "64", "--quiet", "--out", str(out), *map(str, extra)])
    assert rc == 0, extra
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("backbone", sorted(b for b, spec in BACKBONES.items() if spec["weights_package"]))
def test_each_offline_backbone(tiny, tmp_path, backbone):
    m = evaluate(tiny, tmp_path / "ev", "--method", "patchcore", "--backbone", backbone, "--save-model", tmp_path / "m.pt")
    assert 0 <= m["image_auroc"] <= 1 and load_model(tmp_path / "m.pt").config.backbone == backbone


def test_checkpoint_loads_a_local_wide_resnet(tiny, tmp_path):
    "The paper's backbone offline: a torchvision-layout state dict (random weights here) passed with --checkpoint."
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.wide_resnet50_2(weights=None).state_dict(), tmp_path / "wrn.pth")
    evaluate(tiny, tmp_path / "ev", "--method", "patchcore", "--backbone", "wide_resnet50_2", "--checkpoint", tmp_path / "wrn.pth",
             "--save-model", tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").config.backbone == "wide_resnet50_2"


def test_layout_btad(tmp_path):
    "A BTAD-shaped folder (train/ok, test/ok, test/ko, ground_truth/ko) read with --layout btad."
    root, cat = embedded_data_root(), tmp_path / "btad" / "01"
    for sub, src, n in [("train/ok", "train/good", 4), ("test/ok", "test/good", 2), ("test/ko", "test/hole", 2)]:
        (cat / sub).mkdir(parents=True)
        for f in sorted((root / CAT / src).glob("*.png"))[:n]: shutil.copy(f, cat / sub / f.name)
    (cat / "ground_truth" / "ko").mkdir(parents=True)
    for f in sorted((cat / "test" / "ko").glob("*.png")):
        shutil.copy(root / CAT / "ground_truth" / "hole" / f"{f.stem}_mask.png", cat / "ground_truth" / "ko" / f.name)
    rc = main(["evaluate", "--data-root", str(tmp_path / "btad"), "--category", "01", "--layout", "btad", "--image-size", "64",
               "--quiet", "--method", "patchcore", "--out", str(tmp_path / "ev")])
    assert rc == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (m["n_train"], m["n_test"]) == (3, 4) and m["pixel_auroc"] is not None   # one of the 4 good images held out
    assert m["threshold_rule"].startswith("the largest image score of 1 held-out good training images")


def test_seed(tiny, tmp_path):
    "Same --seed: the same numbers; another seed: another memory bank."
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        evaluate(tiny, tmp_path / name, "--method", "patchcore", "--coreset-ratio", "0.2", "--seed", seed, "--save-model", tmp_path / f"{name}.pt")
        runs[name] = load_model(tmp_path / f"{name}.pt").bank
    assert torch.equal(runs["a"], runs["b"]) and not torch.equal(runs["a"], runs["c"])


def test_paper_schedule_and_lr(tiny, tmp_path):
    "--paper-schedule sets the paper's recipe (shortened here with --epochs); --lr overrides one field of it."
    evaluate(tiny, tmp_path / "p", "--method", "reconpatch", "--paper-schedule", "--epochs", 1, "--patches-per-step", 64,
             "--save-model", tmp_path / "p.pt")
    evaluate(tiny, tmp_path / "q", "--method", "reconpatch", "--paper-schedule", "--epochs", 1, "--lr", "0.003", "--patches-per-step", 64,
             "--save-model", tmp_path / "q.pt")
    from reconpatch_nb.config import TrainConfig
    paper, p, q = TrainConfig.paper(), load_model(tmp_path / "p.pt").config.train, load_model(tmp_path / "q.pt").config.train
    assert (p.lr, p.gamma, p.center, p.epochs) == (paper.lr, paper.gamma, paper.center, 1)
    assert (q.lr, q.gamma) == (0.003, paper.gamma)


@pytest.mark.parametrize("opset", [13, 17])
def test_export_opset_and_format(tiny, tmp_path, opset):
    onnx = pytest.importorskip("onnx")
    evaluate(tiny, tmp_path / "ev", "--method", "patchcore", "--save-model", tmp_path / "m.pt")
    rc = main(["export", "--model", str(tmp_path / "m.pt"), "--format", "onnx", "--opset", str(opset), "--out", str(tmp_path / "m.onnx")])
    assert rc == 0
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2


def test_device_cpu(tiny, tmp_path):
    m = evaluate(tiny, tmp_path / "ev", "--method", "patchcore", "--device", "cpu", "--save-model", tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").bank.device.type == "cpu" and 0 <= m["image_auroc"] <= 1
