"""Lesson `15_widgets` in a real JupyterLab, driven by headless Chromium (Debian's /usr/bin/chromium via
Playwright, launched as in test_docs.py; never `playwright install`).

A JupyterLab server (`python -m jupyter lab`, random free port, random token, its own config, data and
runtime folders) serves a temporary folder holding `15_widgets.ipynb` without its `slow` cells (they fit a
ReConPatch model on the embedded data: minutes of CPU, more than this test may take) and without the
closing `nbdev_export` cell (it would export from the temporary folder), and with a first cell that
prints where `reconpatch_nb` is imported from (must be this checkout). Chromium opens it, runs it with
the menu Run > Run All Cells and waits until every code cell has an execution count and the kernel is
idle, with no error output (a failing cell, such as the notebook's own widget tests, fails at once).
Then, for the toy `ThresholdWidget` (a FloatSlider) and the toy `FeatureEvolutionWidget` (a
SelectionSlider), it focuses the slider's handle, presses an arrow key, and
checks that the slider's readout and the PNG shown in the widget's output area both change: the widget
is live (the kernel redrew the figure), not a stored picture. The readout must show its whole value
(its text not clipped); the toy frames are named like the real ones ("f(p), epoch 1"), which a reader
saw cut to "f(p), epoch". Here (headless Chromium, 1400 px) the check also passes with the old 300 px
slider: it guards against a clipped readout, it did not reproduce that report.

The server and its kernel are stopped at the end (process group: SIGTERM, then SIGKILL). Without
Chromium or Playwright the test skips, except under CI=1/true where it fails. Screenshots go to artifacts/.
"""
from __future__ import annotations

import json, os, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB, ARTIFACTS = ROOT / "nbs" / "15_widgets.ipynb", ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RUN_TIMEOUT = 180  # s for Run All Cells (about 20 s with the non-slow cells on 2 busy cores)


def _missing(msg: str):
    if IN_CI: pytest.fail(msg)
    pytest.skip(msg)


def lab_notebook(src: Path, dst: Path) -> Path:
    "Copy of `src` without its `#| slow` cells and its `nbdev_export` cell, outputs cleared."
    nb = json.loads(src.read_text(encoding="utf-8"))
    keep = []
    for c in nb["cells"]:
        text = "".join(c["source"])
        if c["cell_type"] == "code":
            if text.lstrip().startswith("#| slow") or "nbdev_export()" in text: continue
            c["outputs"], c["execution_count"] = [], None
        keep.append(c)
    # first cell: which package the kernel imports (the checkout under test, not another install)
    keep.insert(0, {"cell_type": "code", "execution_count": None, "id": "whichpkg", "metadata": {}, "outputs": [],
                    "source": ["import reconpatch_nb; print('package at', reconpatch_nb.__file__)"]})
    nb["cells"] = keep
    dst.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dst


def test_lab_notebook_drops_slow_cells(tmp_path):
    nb = json.loads(lab_notebook(NB, tmp_path / NB.name).read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and not any(s.lstrip().startswith("#| slow") or "nbdev_export()" in s for s in code)
    assert any("ThresholdWidget(imgs" in s for s in code) and any("FeatureEvolutionWidget(layouts_toy" in s for s in code)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on 127.0.0.1 serving a folder with the lab copy of 15_widgets; yields (url, token, code cells)."
    tmp = tmp_path_factory.mktemp("jlab")
    work, home = tmp / "nbs", tmp / "home"
    work.mkdir(); home.mkdir()
    lab_notebook(NB, work / NB.name)
    labconfig = home / "config" / "labconfig"; labconfig.mkdir(parents=True)
    # no "would you like to receive Jupyter news?" toast over the notebook
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    # every cell in the DOM (no virtual scrolling), so the test sees all prompts and outputs
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"; tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "IPYTHONDIR": str(home / "ipython"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(tmp / "server.log", "wb")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0: cmd.append("--allow-root")  # CI containers run as root
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200: break
            except OSError: pass
            if proc.poll() is not None or time.time() - t0 > 120:
                pytest.fail(f"JupyterLab did not answer on {url}:\n{(tmp / 'server.log').read_text()[-4000:]}")
            time.sleep(0.5)
        print(f"JupyterLab answered after {time.time() - t0:.1f} s")
        yield url, token, sum(c["cell_type"] == "code" for c in json.loads((work / NB.name).read_text())["cells"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try: proc.wait(20)
            except subprocess.TimeoutExpired: pass
        try: os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group (a stuck kernel)
        except ProcessLookupError: pass
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium`")
    try: from playwright.sync_api import sync_playwright
    except ImportError: _missing("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _widget(page, text: str):
    "The outermost widget box whose slider's description is `text`."
    return page.locator(".jp-OutputArea-output .jupyter-widgets.widget-vbox").filter(
        has=page.locator(".widget-slider .widget-label", has_text=text)).first


def _state(box) -> tuple[str, str]:
    "(the slider's readout, the src of the figure PNG in the widget's output area)."
    return (box.locator(".widget-readout").first.inner_text().strip(),
            box.locator(".widget-output img").first.get_attribute("src") or "")


def _nudge(page, box, key: str, timeout: float = 60) -> tuple[tuple[str, str], tuple[str, str]]:
    "Press `key` on the slider handle; wait until readout and figure both changed; return (before, after)."
    before = _state(box)
    handle = box.locator(".widget-slider .noUi-handle").first
    handle.focus(); handle.press(key)
    t0 = time.time()
    while time.time() - t0 < timeout:
        after = _state(box)
        if after[0] != before[0] and after[1] and after[1] != before[1]: return before, after
        page.wait_for_timeout(250)
    return before, _state(box)


def test_widgets_live_in_jupyterlab(browser, lab):  # browser first: skip before starting a server
    url, token, n_code = lab
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{url}/lab/tree/{NB.name}?token={token}&reset", timeout=120_000)
        page.locator(f".jp-Notebook .jp-CodeCell >> nth={n_code - 1}").wait_for(timeout=120_000)
        assert page.locator(".jp-Notebook .jp-CodeCell").count() == n_code
        # the kernel connected: the status bar names it and says Idle (the toolbar's indicator says idle earlier,
        # and a Run All sent before the connection is dropped: no cell runs)
        page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
        page.wait_for_timeout(1000)

        t0 = time.time()
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
        errs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
                            ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        done = False
        while time.time() - t0 < RUN_TIMEOUT:
            texts = prompts.all_inner_texts()
            if errs.count() and not any("*" in t for t in texts):  # a cell failed: Run All stops there
                page.screenshot(path=str(ARTIFACTS / "jupyterlab_15_widgets_run.png"))
                pytest.fail(f"a cell failed in JupyterLab (prompts {texts}):\n{errs.first.inner_text()[:2000]}")
            if (len(texts) == n_code and all(t.strip().strip("[]:").isdigit() for t in texts)
                    and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count()):
                done = True; break
            page.wait_for_timeout(1000)
        run_s = time.time() - t0
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_15_widgets_run.png"))
        assert done, f"Run All Cells not finished after {run_s:.0f} s; prompts: {prompts.all_inner_texts()}"
        print(f"Run All Cells: {n_code} code cells in {run_s:.1f} s")
        first = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea-output").inner_text()
        assert f"package at {ROOT / 'reconpatch_nb' / '__init__.py'}" in first, f"the kernel imported another reconpatch_nb: {first}"
        assert errs.count() == 0, f"error output in JupyterLab:\n{errs.first.inner_text()[:2000]}"

        for label, key in [("τ", "ArrowRight"), ("frame", "ArrowLeft")]:
            box = _widget(page, label)
            box.wait_for(timeout=30_000)
            box.scroll_into_view_if_needed()
            assert box.locator(".widget-output img").count() == 1, f"no figure in the {label!r} widget"
            before, after = _nudge(page, box, key)
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab_15_widgets_{'tau' if label == 'τ' else label}.png"))
            assert after[0] != before[0], f"{label!r} slider did not move on {key}: readout stays {before[0]!r}"
            assert after[1].startswith("data:image/png"), f"{label!r} widget shows no PNG after the move"
            assert after[1] != before[1], f"{label!r} slider moved ({before[0]} -> {after[0]}) but the figure did not change"
            # the readout shows the whole value ("f(p), epoch 1", not "f(p), epoch"): its text is not clipped
            clip = box.locator(".widget-readout").first.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert clip[0] <= clip[1], f"{label!r} slider's readout {after[0]!r} is cut: {clip[0]} px of text in {clip[1]} px"
            print(f"{label}: {before[0]} -> {after[0]}, figure PNG changed ({len(before[1])} -> {len(after[1])} chars)")
        assert not errors, f"script errors in JupyterLab: {errors}"
    finally:
        page.close()
