"""The docs site as a reader sees it: build `_docs/` (`make docs`), serve it on 127.0.0.1 and open it
in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; never `playwright install`).

Checks the home page, the lesson with the most `$`-math and a lesson with a stored figure: equations
typeset by the bundled MathJax (no raw `$$` left, no TeX errors), every <img> loaded, every same-origin
link answers 200, no script error, and no request leaves the machine (all are routed; any whose host
is not 127.0.0.1/localhost is recorded, aborted and fails the test), and every image on the home page
is at least 500 px wide (naturalWidth). Screenshots go to artifacts/.

Static checks on every built page (what a reader of the site must never meet):
- an absolute path of the building machine (its checkout, the main checkout of a git worktree, the
  virtual environment, the temporary folder, a home folder such as /root/ or /home/NAME/);
- a reference to a file that is not on the site: a relative link whose target the site lacks, a
  repository document named in the text (`METHOD.md`, `STYLE.md`, `BENCHMARKS.md`...) or a path into
  `benchmarks/` in the text, unless it is a link to an absolute URL, and a relative `../benchmarks/`
  path in code;
- a progress-bar widget placeholder (the note left for a widget when its notebook output is a tqdm
  bar) or a tqdm bar rendered as text;
- a sentence ending with a colon directly before a heading (what it announced is missing);
- TeX shown as text: `$...$`, a TeX command (`\\frac`, `\\lVert`...) or `x_{...}` outside code and math.
At a laptop's width (1280 px), every lesson page in Chromium: notebook figures shown large enough for
9-pt text at their dpi to be >= 9 px, no table wider than the text column, no code cell scrolling sideways.
Each checker is a plain function of a page's HTML, tested on a small deliberately broken page too.

A build is reused when it was made from the current inputs (docs/prepare.py's fingerprint of nbs/,
docs/, the modules, settings.ini, Makefile); set DOCS_REBUILD=1 to force a rebuild.
Without Chromium the browser tests skip, except under CI=true where they fail.
"""
from __future__ import annotations

import functools, html, http.server, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.error
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


# -- content checks: one function per rule, each a plain function of a page's HTML ------------------
class _Page(HTMLParser):
    """A page read the way a reader meets it: `blocks` is the flat sequence of headings, paragraphs and
    other block content (code, figures, math, tables) of the article; `text` its visible text (no
    scripts/styles), `prose` the part outside <pre>; `attrs` the href/src values; `links` (href, text)
    pairs; `pre` the text of each code block."""
    BLOCKS = {"pre", "img", "table", "ul", "ol", "dl", "blockquote", "figure", "svg"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.text, self.prose, self.attrs, self.links, self.pre = [], [], [], [], [], []
        self._skip, self._p, self._h, self._a, self._pre, self._in_article = 0, None, None, None, 0, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs += [v for k, v in attrs if k in {"href", "src"} and v]
        if tag in {"script", "style"}: self._skip += 1
        if tag == "article": self._in_article += 1
        if tag == "a": self._a = [a.get("href") or "", ""]
        if tag == "pre": self._pre += 1; self.pre.append("")
        if re.fullmatch(r"h[1-6]", tag): self._h = ""
        elif tag == "p": self._p = ["", False]
        elif tag in self.BLOCKS or (tag == "div" and re.search(r"\b(math|cell_output)\b", a.get("class") or "")):
            if self._p is not None: self._p[1] = True  # a paragraph holding an image is not a sentence
            elif self._in_article: self.blocks.append(("other", tag))

    def handle_endtag(self, tag):
        if tag in {"script", "style"}: self._skip = max(0, self._skip - 1)
        if tag == "article": self._in_article -= 1
        if tag == "a" and self._a is not None: self.links.append(tuple(self._a)); self._a = None
        if tag == "pre": self._pre = max(0, self._pre - 1)
        if re.fullmatch(r"h[1-6]", tag) and self._h is not None:
            if self._in_article: self.blocks.append(("h", self._h.strip()))
            self._h = None
        if tag == "p" and self._p is not None:
            if self._in_article: self.blocks.append(("other", "p") if self._p[1] else ("p", " ".join(self._p[0].split())))
            self._p = None

    def handle_data(self, data):
        if self._skip: return
        self.text.append(data)
        if self._pre: self.pre[-1] += data
        else: self.prose.append(data)
        if self._a is not None: self._a[1] += data
        if self._h is not None: self._h += data
        if self._p is not None: self._p[0] += data


def read_page(page_html: str) -> _Page:
    p = _Page(); p.feed(page_html); p.close()
    return p


def _git_main_checkout(root: Path) -> Path | None:
    "The main checkout when `root` is a git worktree (its `.git` common dir's parent), else None."
    try:
        common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    path = (root / common.stdout.strip()).resolve() if common.returncode == 0 and common.stdout.strip() else None
    return path.parent if path is not None and path.name == ".git" else None


def machine_paths() -> list[str]:
    "Absolute folders of the machine that builds the site, which no page may show."
    paths = {ROOT, ROOT.resolve(), Path(sys.prefix), Path(tempfile.gettempdir()), Path.home()}
    main = _git_main_checkout(ROOT)
    if main is not None: paths.add(main)
    return sorted({str(p).rstrip("/") for p in paths if str(p) not in {"", "/"}}, key=len, reverse=True)


# generic forms too, for a page built on another machine: temporary folders and home folders
_GENERIC_PATHS = re.compile(r"(?<![\w.~-])(?:/tmp/|/var/folders/|/private/var/|/root/|/home/[\w.-]+/|/Users/[\w.-]+/|[A-Z]:\\Users\\)")


def absolute_paths(page_html: str, paths: list[str]) -> list[str]:
    "Machine paths (`paths`, or a temp/home folder) in the page's visible text or its href/src attributes."
    p = read_page(page_html)
    found = []
    for where in ["".join(p.text), *p.attrs]:
        where = html.unescape(where)
        for path in paths:
            for m in re.finditer(re.escape(path) + r"(?=[/\\\s'\"]|$)", where):
                found.append(where[m.start():m.start() + len(path) + 40].split("\n")[0])
        found += [where[m.start():m.start() + 50].split("\n")[0] for m in _GENERIC_PATHS.finditer(where)]
    return sorted(set(found))


_REPO_DOC = re.compile(r"(?<![\w/.-])(?:[\w.-]+/)*[A-Z][A-Z0-9_-]*\.md\b")           # METHOD.md, STYLE.md, BENCHMARKS.md
_BENCH_PATH = re.compile(r"(?<![\w/.-])(?:\.{1,2}/)*benchmarks/[\w./-]*\w\.\w+")      # benchmarks/results.json
_BENCH_CODE = re.compile(r"""["'](?:\.{1,2}/)+benchmarks/""")                        # "../benchmarks/x" in code


def missing_file_refs(page_html: str, page: Path | None = None, site_root: Path | None = None) -> list[str]:
    """References a reader cannot follow on the site: a repository file named in the prose (outside a
    link to an absolute URL; code may name files it writes), a `../benchmarks/` path in code, and (with `page` and `site_root`) a
    relative link whose target file the site does not have."""
    p = read_page(page_html)
    text = "".join(p.prose)
    for href, label in p.links:  # a name that is a link to the file elsewhere (e.g. on GitHub) can be followed
        if re.match(r"^https?://", href) and label.strip(): text = text.replace(label, " ")
    found = [m.group(0) for rx in (_REPO_DOC, _BENCH_PATH) for m in rx.finditer(text)]
    found += [f"code: {m.group(0)}..." for code in p.pre for m in _BENCH_CODE.finditer(code)]
    if page is not None and site_root is not None:
        for href in p.attrs:
            target = urldefrag(href)[0].split("?")[0]
            if not target or re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", target, re.I): continue
            dst = (page.parent / target) if not target.startswith("/") else site_root / target.lstrip("/")
            if dst.is_dir(): dst = dst / "index.html"
            if not dst.exists(): found.append(f"link: {href}")
    return sorted(set(found))


_TQDM_TEXT = re.compile(r"\d+%\|.{0,60}\|\s*\d+/\d+")


def progress_placeholders(page_html: str, nb: dict | None = None) -> list[str]:
    """Progress bars on a page: tqdm's text bar, or more widget placeholders than the notebook has real
    widgets (outputs that are widgets but not progress bars, as docs/prepare.py tells them apart)."""
    text = "".join(read_page(page_html).text)
    found = [f"tqdm text: {m.group(0)}" for m in _TQDM_TEXT.finditer(text)]
    note = prepare.WIDGET_NOTE.strip("*")
    shown = text.count(note)
    real = 0
    if nb is not None:
        state = prepare.widget_state(nb)
        for cell in nb["cells"]:
            for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
                data = out.get("data", {})
                real += prepare.WIDGET in data and not prepare.is_progress_bar(out, state) and not any(k.startswith("image/") for k in data)
    if shown > real: found.append(f"{shown - real} widget placeholder(s) for progress bars ({shown} shown, {real} real widgets)")
    return found


def colon_before_heading(page_html: str) -> list[str]:
    "Paragraphs that end with ':' and are directly followed by a heading (what they announce is missing)."
    blocks = read_page(page_html).blocks
    return [f"{a[1][-70:]!r} → heading {b[1]!r}" for a, b in zip(blocks, blocks[1:])
            if a[0] == "p" and a[1].rstrip().endswith(":") and b[0] == "h"]


def narrow_images(images: list[dict], min_width: int = 500) -> list[str]:
    "Images (`{'src', 'w'}` with w = naturalWidth) narrower than `min_width` pixels."
    return [f"{i['src'].split('/')[-1]}: {i['w']} px" for i in images if i["w"] and i["w"] < min_width]


class _Rendered(HTMLParser):
    """The text a reader sees as prose: everything outside code (<pre>, <code>, <kbd>, <samp>),
    scripts, styles, and MathJax's input or output (elements of class `math`, <mjx-container>, <math>)."""
    SKIP = {"pre", "code", "kbd", "samp", "script", "style", "mjx-container", "math", "textarea"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self._stack, self._skip = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID: return
        skip = tag in self.SKIP or re.search(r"(?:^|\s)math(?:\s|$)", dict(attrs).get("class") or "") is not None
        self._stack.append((tag, skip)); self._skip += skip

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):  # close up to the matching open tag (HTML is lenient)
            if self._stack[i][0] == tag:
                self._skip -= sum(s for _, s in self._stack[i:]); del self._stack[i:]
                return

    def handle_data(self, data):
        if not self._skip: self.parts.append(data)


# a TeX command (\frac, \lVert, \bar, ...), `$...$` with math inside, or a sub/superscript with braces (n_{in})
_TEX_COMMAND = re.compile(r"\\(?:frac|d?frac|lVert|rVert|lvert|rvert|Vert|bar|hat|tilde|mathbf|mathrm|mathcal|"
                          r"operatorname|sum|prod|sqrt|cdot|times|lfloor|rfloor|lceil|rceil|left|right|big|alpha|"
                          r"beta|gamma|sigma|lambda|mu|tau|epsilon|in|le|ge|leq|geq|approx|propto|text|top|quad)"
                          r"(?![A-Za-z])")
_TEX_DOLLAR = re.compile(r"\$\$?[^$\s][^$\n]{0,120}?\$")
_TEX_SCRIPT = re.compile(r"[A-Za-z0-9)\]}][_^]\{[^}\s]{1,20}\}")


def raw_tex(page_html: str) -> list[str]:
    """TeX a reader sees as text: `$...$`, a TeX command or `x_{...}` left in the rendered prose (math that
    did not become a MathJax element: a `$` that MyST did not take as a delimiter, e.g. `$ x$` or a
    `$` run into a word)."""
    p = _Rendered(); p.feed(page_html); p.close()
    text = " ".join("".join(p.parts).split())
    found = []
    for rx in (_TEX_DOLLAR, _TEX_COMMAND, _TEX_SCRIPT):
        found += [text[max(0, m.start() - 25):m.end() + 25] for m in rx.finditer(text)]
    return sorted(set(found))


# Figures, code and tables at a laptop's width (measured in the browser; the checkers take the numbers).
# The smallest text of a stored PNG cannot be read from its pixels. Its size on screen is
#   (displayed width / natural width) x (font size in pt) x (dpi / 72) px,
# with the dpi from the PNG's pHYs chunk (matplotlib writes it; 110 when absent) and the font size taken as
# FIGURE_TEXT_PT, the smallest size a lesson figure should use. 9 pt at 110 dpi is 13.75 px, so a figure
# shown at 65 % of its width has 8.9 px text: it must be shown at >= 9 / 13.75 = 65.5 % (60 % at 120 dpi).
# Labels set smaller than FIGURE_TEXT_PT in a notebook are not seen by this check.
FIGURE_TEXT_PT, MIN_TEXT_PX = 9, 9
LAPTOP = {"width": 1280, "height": 800}


def png_dpi(data: bytes) -> float | None:
    "The dpi a PNG declares in its pHYs chunk (None when it has none or gives no unit)."
    import struct
    if data[:8] != b"\x89PNG\r\n\x1a\n": return None
    i = 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I", data[i:i + 4])[0], data[i + 4:i + 8]
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", data[i + 8:i + 17])
            return x * 0.0254 if unit == 1 else None
        if kind in {b"IDAT", b"IEND"}: return None
        i += 12 + n
    return None


def small_figure_text(images: list[dict], text_pt: float = FIGURE_TEXT_PT, min_px: float = MIN_TEXT_PX) -> list[str]:
    """Figures (`{'src', 'natural', 'shown', 'dpi'}`: natural and displayed width in px) whose `text_pt`
    text is displayed under `min_px` px."""
    bad = []
    for i in images:
        if not i["natural"]: continue
        scale, dpi = min(1.0, i["shown"] / i["natural"]), i.get("dpi") or 110
        px = scale * text_pt * dpi / 72
        if px < min_px - 1e-9:
            bad.append(f"{i['src'].split('/')[-1][:16]}: {i['natural']} px at {dpi:.0f} dpi shown at {i['shown']:.0f} px "
                       f"({100 * scale:.0f} %): {text_pt} pt text is {px:.1f} px")
    return bad


def scrolling_code(blocks: list[dict]) -> list[str]:
    "Code cells (`{'scroll', 'client', 'line'}` of their <pre>) whose longest line does not fit: scrollWidth > clientWidth + 1."
    return [f"{b['scroll'] - b['client']} px too wide ({len(b['line'])} chars): {b['line'][:60]}..."
            for b in blocks if b["scroll"] > b["client"] + 1]


def cut_off_tables(tables: list[dict]) -> list[str]:
    """Tables (`{'width', 'column', 'head'}`: the table's full width and the text column's content width)
    wider than the column. A table in the theme's scrollable wrapper counts too: its right-hand columns
    are out of sight until the reader scrolls, which on a laptop is a cut-off table."""
    return [f"{t['width']} px in a {t['column']:.0f} px column: {t['head'][:50]}" for t in tables if t["width"] > t["column"] + 1]


# -- the checkers fail on deliberately broken pages ----------------------------------------------------
_BROKEN = """<html><head><script>var x = "/tmp/in-a-script-is-fine";</script></head><body><article>
<h1>Title</h1><p>Read METHOD.md §3 and <code>../benchmarks/results_methods.json</code>; see
<a href="missing.html">this</a> and <a href="https://example.org/x/BENCHMARKS.md">BENCHMARKS.md</a>.</p>
<p>The four highest-scoring images:</p>
<section><h2>Next section</h2>
<div class="cell_output"><pre>wrote /tmp/tmpab12cd/demo/metrics.json
rows = json.loads(Path("../benchmarks/results_methods.json").read_text())
error: not found in {root}/data
(root / "README.md").write_text(notes)</pre></div>
<p><em>(An interactive widget: run the notebook in Jupyter to use it.)</em></p>
<p>patch features: 100%|██████████| 1/1 [00:00&lt;00:00, 4.87it/s]</p>
<p>Eq. 1:</p><div class="math">x</div><h2>Fine: math after the colon</h2>
<p>A figure:</p><p><img src="a.png"></p><h2>Fine too</h2>
</section></article></body></html>"""
_PROGRESS_NB = {"metadata": {}, "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
    {"output_type": "display_data", "data": {prepare.WIDGET: {"model_id": "x"}, "text/plain": "patch features:   0%|          | 0/1 [00:00<?, ?it/s]"}}]}]}


def test_checkers_fail_on_a_broken_page(tmp_path):
    page = _BROKEN.replace("{root}", str(ROOT))
    paths = absolute_paths(page, machine_paths())
    assert any(str(ROOT) in p for p in paths) and any(p.startswith("/tmp/tmpab12cd") for p in paths), paths
    assert not any("in-a-script" in p for p in paths), paths
    refs = missing_file_refs(page, tmp_path / "x.html", tmp_path)
    assert "METHOD.md" in refs and "../benchmarks/results_methods.json" in refs and "link: missing.html" in refs, refs
    assert "BENCHMARKS.md" not in refs, "a link to an absolute URL is a reference the reader can follow"
    assert "README.md" not in refs, "code may name the files it writes"
    assert any(r.startswith("code: ") for r in refs), refs
    prog = progress_placeholders(page, _PROGRESS_NB)
    assert any("tqdm text" in p for p in prog) and any("placeholder" in p for p in prog), prog
    real = {"metadata": {}, "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
        {"output_type": "display_data", "data": {prepare.WIDGET: {"model_id": "y"}, "text/plain": "VBox(children=(Dropdown(...),))"}}]}]}
    assert not [p for p in progress_placeholders(page, real) if "placeholder" in p], "a real widget keeps its note"
    colon = colon_before_heading(page)
    assert len(colon) == 1 and "highest-scoring" in colon[0], colon
    assert narrow_images([{"src": "x/small.png", "w": 432}, {"src": "big.png", "w": 1100}]) == ["small.png: 432 px"]
    tex = raw_tex('<p>pooled from $n_{in}$ to n_{out} numbers, *x*$\\lVert z\\rVert$ and \\frac{1}{2}</p>'
                  '<p><span class="math notranslate">\\(\\bar{x} = \\frac{1}{n}\\)</span> and <code>$HOME \\frac</code></p>'
                  '<pre>cost = $5 \\bar</pre><script>var t = "$x$ \\frac";</script>')
    assert any("$n_{in}$" in t for t in tex) and any("\\lVert" in t for t in tex) and any("\\frac{1}{2}" in t for t in tex), tex
    assert any("n_{out}" in t for t in tex) and not any("bar{x}" in t or "HOME" in t or "cost" in t or "var t" in t for t in tex), tex
    # 9 pt at 110 dpi = 13.75 px: at 768 / 1309 = 59 % it is 8.1 px; a 120-dpi figure at 60 % is 9.0 px
    figs = small_figure_text([{"src": "_images/wide.png", "natural": 1309, "shown": 768, "dpi": 110},
                              {"src": "ok.png", "natural": 1600, "shown": 960, "dpi": 120},
                              {"src": "small.png", "natural": 518, "shown": 518, "dpi": 72}])
    assert len(figs) == 1 and figs[0].startswith("wide.png") and "8.1 px" in figs[0], figs
    assert small_figure_text([{"src": "low.png", "natural": 691, "shown": 691, "dpi": 60}]), "9 pt at 60 dpi is 7.5 px"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(13) + bytes(4) + b"\x00\x00\x00\x09pHYs" + (4331).to_bytes(4, "big") * 2 + b"\x01" + bytes(4)
    assert round(png_dpi(png)) == 110 and png_dpi(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x00IEND" + bytes(4)) is None
    code = scrolling_code([{"scroll": 1235, "client": 1212, "line": "x" * 156}, {"scroll": 1213, "client": 1212, "line": "y"}])
    assert len(code) == 1 and "23 px too wide (156 chars)" in code[0], code
    tables = cut_off_tables([{"width": 913, "column": 768, "head": "batch k"}, {"width": 768, "column": 768, "head": "fits"}])
    assert tables == ["913 px in a 768 px column: batch k"], tables
    clean = "<html><body><article><h1>T</h1><p>Fine.</p><h2>S</h2><p>See <a href='x.html'>x</a>.</p></article></body></html>"
    (tmp_path / "x.html").write_text(clean)
    assert not (absolute_paths(clean, machine_paths()) or missing_file_refs(clean, tmp_path / "x.html", tmp_path)
                or progress_placeholders(clean, real) or colon_before_heading(clean) or raw_tex(clean))


def test_prepare_drops_progress_bars_keeps_real_widgets():
    nb = json.loads(json.dumps(_PROGRESS_NB))
    assert prepare.clean_cell(nb["cells"][0]) is None, "an empty cell whose only output is a progress bar disappears"
    state = {"h": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_b"]}}, "b": {"model_name": "FloatProgressModel", "state": {}}}
    assert prepare.is_progress_bar({"data": {prepare.WIDGET: {"model_id": "h"}, "text/plain": "HBox(children=...)"}}, state)
    assert not prepare.is_progress_bar({"data": {prepare.WIDGET: {"model_id": "v"}, "text/plain": "VBox(children=(SelectionSlider(...),))"}}, state)
    assert prepare.is_setup_cell("import matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 72\nset_seed(0);")
    assert not prepare.is_setup_cell("set_seed(0)\nx = torch.randn(3)") and not prepare.is_setup_cell("from x import y")
    assert prepare.drop_savefig('fig = plot()\nfig.savefig("images/a.png", dpi=120)') == "fig = plot()"


# -- content checks on the real site --------------------------------------------------------------------
def _pages(site: Path) -> list[Path]:
    "The site's pages (not the theme's templates under _static/)."
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")


def _report(problems: dict) -> str:
    return "\n".join(f"{page}: {items}" for page, items in problems.items())


def test_no_machine_paths(site):
    paths = machine_paths()
    bad = {p.relative_to(site).as_posix(): found for p in _pages(site) if (found := absolute_paths(p.read_text(encoding="utf-8"), paths))}
    assert not bad, "pages show absolute paths of the building machine:\n" + _report(bad)


def test_no_references_to_files_not_on_the_site(site):
    bad = {p.relative_to(site).as_posix(): found for p in _pages(site)
           if (found := missing_file_refs(p.read_text(encoding="utf-8"), p, site))}
    assert not bad, "pages refer to files that are not on the site:\n" + _report(bad)


def test_no_progress_bar_placeholders(site):
    bad = {}
    for nb in [*LESSONS, NBS / "index.ipynb"]:
        page = site / f"{nb.stem}.html"
        if page.exists() and (found := progress_placeholders(page.read_text(encoding="utf-8"), _load(nb))):
            bad[page.name] = found
    assert not bad, "progress bars on the site:\n" + _report(bad)


def test_no_colon_before_a_heading(site):
    bad = {p.relative_to(site).as_posix(): found for p in _pages(site) if (found := colon_before_heading(p.read_text(encoding="utf-8")))}
    assert not bad, "a sentence ending with ':' is followed directly by a heading:\n" + _report(bad)


def test_no_raw_tex_in_rendered_text(site):
    bad = {p.relative_to(site).as_posix(): found for p in _pages(site) if (found := raw_tex(p.read_text(encoding="utf-8")))}
    assert not bad, "TeX shown as text (not typeset):\n" + _report(bad)


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
        if page_name == "index.html":  # the front page's figures must be readable (checked last: the rest still runs)
            narrow = narrow_images(imgs)
            assert not narrow, f"{page_name}: images narrower than 500 px: {narrow}"
    finally:
        ctx.close()


_LAYOUT = """() => {
    const col = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
    const cs = getComputedStyle(col);
    const column = col.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const longest = t => t.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '');
    return {column,
        images: [...col.querySelectorAll('.cell_output img')].map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth,
                                                                       shown: i.getBoundingClientRect().width})),
        code: [...col.querySelectorAll('.cell_input pre')].map(p => ({scroll: p.scrollWidth, client: p.clientWidth, line: longest(p.textContent)})),
        tables: [...col.querySelectorAll('table')].filter(t => t.getClientRects().length).map(t => ({
            width: Math.ceil(t.getBoundingClientRect().width), column, head: t.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60)}))}; }"""


@pytest.fixture(scope="module")
def laptop_layout(site, base_url, browser) -> dict:
    """Every lesson page and the home page measured at 1280 px (the narrowest common laptop width): per page
    the text column's width, its notebook figures (with the dpi their PNG declares), code cells and tables."""
    ctx = browser.new_context(viewport=LAPTOP)
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if (urlparse(r.request.url).hostname or "") in LOCAL_HOSTS else r.abort())
    pages = {}
    try:
        for name in ["index.html", *[f"{nb.stem}.html" for nb in LESSONS]]:
            if not (site / name).exists(): continue
            page.goto(urljoin(base_url, name), wait_until="load")
            page.evaluate(_WAIT_MATH); page.evaluate(_WAIT_IMAGES)
            m = page.evaluate(_LAYOUT)
            for img in m["images"]:
                f = site / urlparse(urljoin(name, img["src"])).path.lstrip("/")
                img["dpi"] = png_dpi(f.read_bytes()) if f.suffix.lower() == ".png" and f.exists() else None
            pages[name] = m
    finally:
        ctx.close()
    return pages


def _layout_problems(pages: dict, checks: dict) -> tuple[dict, dict]:
    problems, seen = {}, {}
    for name, m in pages.items():
        found = []
        for what, (key, check) in checks.items():
            seen[what] = seen.get(what, 0) + len(m[key])
            found += [f"{what}: {x}" for x in check(m[key])]
        if found: problems[f"{name} (column {m['column']:.0f} px)"] = found
    return problems, seen


def _layout_report(problems: dict, seen: dict) -> str:
    return (f"{sum(map(len, problems.values()))} problems at {LAPTOP['width']} px (measured: {seen}):\n"
            + "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items()))


def test_figures_and_tables_fit_a_laptop_screen(laptop_layout):
    "Notebook figures shown large enough for FIGURE_TEXT_PT text to be >= 9 px; no table wider than the column."
    problems, seen = _layout_problems(laptop_layout, {"figure": ("images", small_figure_text), "table": ("tables", cut_off_tables)})
    assert seen.get("figure") and seen.get("table"), f"nothing measured: {seen}"
    assert not problems, _layout_report(problems, seen)


def test_code_cells_fit_a_laptop_screen(laptop_layout):
    "No code cell scrolls sideways: its longest line fits the column at the site's 0.8rem monospace."
    problems, seen = _layout_problems(laptop_layout, {"code": ("code", scrolling_code)})
    assert seen.get("code"), f"nothing measured: {seen}"
    assert not problems, _layout_report(problems, seen)
