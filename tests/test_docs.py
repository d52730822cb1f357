"""The docs site as a reader sees it: build `_docs/` (`make docs`), serve it on 127.0.0.1 and open it
in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; never `playwright install`).

Checks the home page, the lesson with the most `$`-math and a lesson with a stored figure: equations
typeset by the bundled MathJax (no raw `$$` left, no TeX errors), every <img> loaded, every same-origin
link answers 200, no script error, and no request leaves the machine (all are routed; any whose host
is not 127.0.0.1/localhost is recorded, aborted and fails the test). Screenshots go to artifacts/.

A build is reused when it was made from the current inputs (docs/prepare.py's fingerprint of nbs/,
docs/, the modules, settings.ini, Makefile); set DOCS_REBUILD=1 to force a rebuild.
Without Chromium the browser tests skip, except under CI=true where they fail.
"""
from __future__ import annotations

import functools, http.server, json, os, re, shutil, subprocess, sys, threading, time, urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE, NBS, ARTIFACTS = ROOT / "_docs", ROOT / "nbs", ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

sys.path.insert(0, str(ROOT / "docs"))
import prepare  # noqa: E402  docs/prepare.py: which notebooks and modules the site holds


# -- which pages to open -------------------------------------------------------------------------------
def _load(nb: Path) -> dict:
    return json.loads(nb.read_text(encoding="utf-8"))


def math_count(nb: Path) -> int:
    "Number of `$`-math spans in the markdown cells (`$$...$$` counts once, as does `$...$`)."
    text = "\n".join("".join(c["source"]) for c in _load(nb)["cells"] if c["cell_type"] == "markdown")
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code spans hold no math
    display = re.findall(r"\$\$.+?\$\$", text, flags=re.S)
    inline = re.findall(r"(?<![\\$])\$[^$\n]+?\$", re.sub(r"\$\$.+?\$\$", "", text, flags=re.S))
    return len(display) + len(inline)


def has_png(nb: Path) -> bool:
    "Whether a code cell that the docs keep has a stored image/png output."
    for cell in _load(nb)["cells"]:
        if cell["cell_type"] == "code" and prepare.clean_cell(cell) is not None:
            if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])): return True
    return False


LESSONS = prepare.lesson_notebooks()
_MATHY = max(LESSONS, key=math_count, default=None)
MATH_NB = _MATHY if _MATHY is not None and math_count(_MATHY) else None
FIGURE_NB = next((nb for nb in LESSONS if has_png(nb)), None)


# -- build ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site() -> Path:
    "The built site: rebuilt with `make docs` unless the last build was made from the current inputs."
    stamp, inputs = SITE / ".buildinfo", prepare.OUT / ".inputs"
    fresh = (stamp.exists() and inputs.exists() and stamp.stat().st_mtime >= inputs.stat().st_mtime
             and inputs.read_text().strip() == prepare.fingerprint() and not os.environ.get("DOCS_REBUILD"))
    if not fresh:
        if shutil.which("make") is None: pytest.fail("`make` is needed to build the docs (apt-get install make)")
        t0 = time.time()
        r = subprocess.run(["make", "docs", f"PYTHON={sys.executable}"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"`make docs` failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
        print(f"docs built in {time.time() - t0:.1f} s")
    return SITE


@pytest.fixture(scope="module")
def base_url(site):
    "An http.server on 127.0.0.1 (random free port) serving the site from a thread."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown(); server.server_close(); thread.join(5)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium`"
        if IN_CI: pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


# -- static checks on the whole site -------------------------------------------------------------------
class _Refs(HTMLParser):
    "Resources a page loads by itself (not plain <a> links): script/img/iframe src, <link href>."
    def __init__(self):
        super().__init__(); self.refs = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in {"script", "img", "iframe", "source", "video", "audio", "embed"} and a.get("src"): self.refs.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") not in {"canonical"}: self.refs.append(a["href"])


def test_every_notebook_and_module_has_a_page(site):
    missing = [nb.stem for nb in LESSONS if not (site / f"{nb.stem}.html").exists()]
    missing += [f"api/{m}" for m in prepare.modules() if not (site / "api" / f"{m}.html").exists()]
    assert (site / "index.html").exists() and not missing, f"pages missing from the site: {missing}"
    lessons = (site / "lessons.html").read_text(encoding="utf-8")
    positions = [lessons.find(f'href="{nb.stem}.html"') for nb in LESSONS]
    assert -1 not in positions and positions == sorted(positions), "lessons page not in notebook order"


def test_no_page_loads_anything_from_outside(site):
    remote = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)
    bad = []
    for page in site.rglob("*.html"):
        p = _Refs(); p.feed(page.read_text(encoding="utf-8"))
        bad += [f"{page.relative_to(site)}: {r}" for r in p.refs if remote.match(r)]
    for css in site.rglob("*.css"):
        bad += [f"{css.relative_to(site)}: {u}" for u in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(encoding="utf-8"))]
        bad += [f"{css.relative_to(site)}: {u}" for u in re.findall(r"@import\s+(?:url\()?['\"]?((?:https?:)?//[^'\")]+)", css.read_text(encoding="utf-8"))]
    assert not bad, "the site loads resources from outside the machine:\n" + "\n".join(bad[:30])


def test_nbdev_directives_do_not_leak(site):
    "Hidden and default_exp cells are gone; export cells are shown without their `#|` lines."
    for nb in [*LESSONS, NBS / "index.ipynb"]:
        page = site / f"{nb.stem}.html"
        if not page.exists(): continue
        code = "\n".join(re.sub(r"<[^>]+>", "", pre) for pre in
                         re.findall(r"<pre\b.*?</pre>", page.read_text(encoding="utf-8"), flags=re.S))
        for leak in ("#| hide", "#|hide", "#| export", "#|export", "#| default_exp", "#|default_exp",
                     "import nbdev; nbdev.nbdev_export()"):
            assert leak not in code, f"{page.name} shows the nbdev directive/cell {leak!r}"


# -- the browser checks --------------------------------------------------------------------------------
PAGES = [pytest.param("index.html", id="home"),
         pytest.param(f"{MATH_NB.stem}.html" if MATH_NB else None, id="math",
                      marks=pytest.mark.skipif(MATH_NB is None, reason="no lesson notebook has $-math yet")),
         pytest.param(f"{FIGURE_NB.stem}.html" if FIGURE_NB else None, id="figure",
                      marks=pytest.mark.skipif(FIGURE_NB is None, reason="no lesson notebook has a stored PNG yet"))]

_WAIT_IMAGES = """() => Promise.all([...document.images].map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })))"""
_WAIT_MATH = """async () => {
    if (!window.MathJax) return 'no-mathjax';
    for (let i = 0; i < 200 && !(MathJax.startup && MathJax.startup.promise); i++) await new Promise(r => setTimeout(r, 50));
    await MathJax.startup.promise; return 'done'; }"""
_MATH_STATE = """() => {
    const body = document.querySelector('article') || document.body;
    const math = [...body.querySelectorAll('.math')];
    const clone = body.cloneNode(true);
    clone.querySelectorAll('pre, code, script, mjx-container, .math').forEach(e => e.remove());
    return {math: math.length, typeset: math.filter(e => e.querySelector('mjx-container')).length,
            containers: body.querySelectorAll('mjx-container').length,
            errors: [...body.querySelectorAll('mjx-merror, [data-mjx-error]')].map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
            raw: (clone.textContent.match(/\\$\\$[^$]{0,60}/g) || []).slice(0, 5)}; }"""


@pytest.mark.parametrize("page_name", PAGES)
def test_page_in_browser(page_name, base_url, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    outside, page_errors = [], []

    def route(r):
        host = urlparse(r.request.url).hostname or ""
        if urlparse(r.request.url).scheme in {"http", "https", "ws", "wss"} and host not in LOCAL_HOSTS:
            outside.append(r.request.url); r.abort()
        else: r.continue_()

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    try:
        page.route("**/*", route)
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        resp = page.goto(urljoin(base_url, page_name), wait_until="load")
        assert resp is not None and resp.status == 200, f"{page_name}: HTTP {resp and resp.status}"
        page.wait_for_load_state("networkidle")
        mj = page.evaluate(_WAIT_MATH)
        page.evaluate(_WAIT_IMAGES)
        stem = Path(page_name).stem
        page.screenshot(path=str(ARTIFACTS / f"docs_{stem}.png"))

        # equations: every math element typeset by the local MathJax, no TeX error, no raw $$ left
        state = page.evaluate(_MATH_STATE)
        if MATH_NB is not None and page_name == f"{MATH_NB.stem}.html":
            assert mj == "done" and state["math"] > 0 and state["containers"] > 0, f"{page_name}: math not typeset {state}"
            display = page.locator("article div.math")  # a display equation makes the better picture
            first = (display if display.count() else page.locator("article .math")).first
            first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"docs_{stem}_equation.png"))
        assert state["typeset"] == state["math"], f"{page_name}: {state['math'] - state['typeset']} math elements not typeset"
        assert not state["errors"], f"{page_name}: MathJax TeX errors {state['errors']}"
        assert not state["raw"], f"{page_name}: raw $$ left in the text: {state['raw']}"

        # images: all loaded
        imgs = page.evaluate("() => [...document.images].map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth}))")
        broken = [i["src"] for i in imgs if not i["w"]]
        assert not broken, f"{page_name}: images that did not load: {broken}"
        if FIGURE_NB is not None and page_name == f"{FIGURE_NB.stem}.html":
            figs = page.locator("article .cell_output img")
            assert figs.count() > 0, f"{page_name}: no figure output on the page"
            figs.first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"docs_{stem}_figure.png"))

        # links: every same-origin href answers 200 (fragments ignored)
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        local = sorted({urldefrag(h)[0] for h in hrefs if urlparse(h).netloc == urlparse(base_url).netloc})
        assert local, f"{page_name}: no internal links found"
        dead = []
        for url in local:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    if r.status != 200: dead.append(f"{url} → {r.status}")
            except urllib.error.HTTPError as e:
                dead.append(f"{url} → {e.code}")
        assert not dead, f"{page_name}: broken internal links:\n" + "\n".join(dead)

        assert not page_errors, f"{page_name}: JavaScript errors: {page_errors}"
        assert not outside, f"{page_name}: requests left the machine (aborted): {outside}"
    finally:
        ctx.close()
