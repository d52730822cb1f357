"""The GPU lane: the same computations on CUDA and on the CPU. Skipped (with the reason) on machines without CUDA;
where a GPU is present, run with `pytest tests/test_gpu.py -v` (and `sh benchmarks/gpu_checks.sh` for the speed
targets). Tolerances are stated per check: float32 reductions run in another order on the GPU, so results agree
to rounding, not bit for bit; TF32 matmuls are switched off for the duration of each test (and restored)."""
import json
import tempfile
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine: the GPU lane runs where one is present")


@pytest.fixture(autouse=True)
def exact_float32():
    "Full float32 matmuls for the comparison; the process-wide setting is restored afterwards."
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module")
def data():
    from reconpatch_nb.data import MVTecAD
    from reconpatch_nb.synthetic import embedded_data_root
    root = embedded_data_root()
    return MVTecAD(root, "brick", "train"), MVTecAD(root, "brick", "test")


def small_features(n=6, h=8, w=8, c=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, h, w, c, generator=g)


def test_equations_on_cuda():
    from reconpatch_nb.contextual import contextual_similarity
    from reconpatch_nb.pairwise import pairwise_similarity
    z = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pairwise_similarity(z.cuda(), sigma=1.0).cpu(), pairwise_similarity(z, sigma=1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(contextual_similarity(z.cuda(), k=5).cpu(), contextual_similarity(z, k=5), atol=1e-6, rtol=0)


def test_training_on_cuda_matches_cpu():
    "Same seed, same features: the losses of every epoch agree to 1e-3 relative, f's weights to 1e-3 absolute."
    from reconpatch_nb.train import train_reconpatch
    p = small_features()
    kw = dict(seed=0, progress=False, epochs=2, patches_per_step=128, repr_dim=32, proj_dim=16)
    cpu, gpu = train_reconpatch(p, device="cpu", **kw), train_reconpatch(p, device="cuda", **kw)
    for a, b in zip(cpu.log[1:], gpu.log[1:]): assert abs(a.loss - b.loss) <= 1e-3 * abs(a.loss), (a.loss, b.loss)  # epoch 0: no loss
    torch.testing.assert_close(gpu.head.f.weight.detach().cpu(), cpu.head.f.weight.detach(), atol=1e-3, rtol=0)


def test_coreset_dense_on_cuda_picks_the_cpu_rows():
    "The GPU runs the dense farthest-point loop, the CPU the pruned one: the same picks (no ties in random data)."
    from reconpatch_nb.coreset import approximate_greedy_coreset
    x = torch.randn(4000, 256, generator=torch.Generator().manual_seed(1))
    gpu = approximate_greedy_coreset(x, 0.05, device="cuda")
    assert gpu.device.type == "cpu"
    torch.testing.assert_close(gpu, approximate_greedy_coreset(x, 0.05, device="cpu"))


def test_features_on_cuda(data):
    from reconpatch_nb.features import PatchFeatureExtractor, extract_features
    train, _ = data
    from reconpatch_nb.detector import PatchCore
    inputs = PatchCore(progress=False, device="cpu").inputs(train)  # the default model's pre-processing
    cpu = extract_features(PatchFeatureExtractor("tf_efficientnet_lite0", device="cpu"), inputs, progress=False)
    gpu = extract_features(PatchFeatureExtractor("tf_efficientnet_lite0", device="cuda"), inputs, progress=False)
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("method", ["patchcore", "reconpatch"])
def test_predict_parity(data, method):
    "Fitted on the CPU, moved to CUDA by saving and loading: image scores to 1e-3 relative, maps to 1e-3 of their range."
    from reconpatch_nb.ensemble import load_model
    from reconpatch_nb.registry import make_detector
    train, test = data
    kw = dict(epochs=1) if method == "reconpatch" else {}
    model = make_detector(method, progress=False, device="cpu", **kw).fit(train)
    with tempfile.TemporaryDirectory() as d:
        gpu = load_model(model.save(Path(d) / "m.pt"), device="cuda")
    assert gpu.bank.device.type == "cuda"
    a, b = model.predict(test), gpu.predict(test)
    torch.testing.assert_close(b.scores, a.scores, atol=0, rtol=1e-3)
    assert (b.maps - a.maps).abs().max() <= 1e-3 * (a.maps.max() - a.maps.min())


def test_ensemble_on_cuda(data):
    from reconpatch_nb.ensemble import make_ensemble
    train, test = data
    ens = make_ensemble(["patchcore@64", "reconpatch@64"], options={"reconpatch": {"epochs": 1}}, progress=False, device="cuda").fit(train)
    m = ens.evaluate(test)
    assert 0 <= m["image_auroc"] <= 1 and all(k.bank.device.type == "cuda" for k in ens.members)


def test_export_from_a_cuda_model(data):
    "A model fitted on CUDA exports an ONNX graph whose scores match its own predict (onnxruntime on the CPU)."
    np = pytest.importorskip("numpy"); ort = pytest.importorskip("onnxruntime")
    from reconpatch_nb.detector import PatchCore
    from reconpatch_nb.export import export_onnx
    train, test = data
    model = PatchCore(progress=False, device="cuda").fit(train)
    own = model.inputs(test)
    x = torch.stack([own[i]["image"] for i in range(4)])
    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(model, Path(d) / "m.onnx")
        scores, maps = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    want = model.predict(x)
    np.testing.assert_allclose(scores, want.scores.numpy(), rtol=1e-3)


def test_cli_device_cuda(tmp_path):
    from reconpatch_nb.cli import main
    from reconpatch_nb.synthetic import embedded_data_root
    rc = main(["evaluate", "--data-root", str(embedded_data_root()), "--category", "brick", "--method", "patchcore",
               "--image-size", "64", "--quiet", "--device", "cuda", "--out", str(tmp_path / "ev")])
    assert rc == 0 and "image_auroc" in json.loads((tmp_path / "ev" / "metrics.json").read_text())
