"""Prepare the Sphinx source tree for the docs site in `_proc/` (never touches `nbs/`).

Usage: python docs/prepare.py

Writes, from scratch each time:
- `_proc/index.ipynb`   the home page, from nbs/index.ipynb (or a stub when it does not exist yet),
                        with a hidden toctree appended: Lessons, API reference;
- `_proc/NN_*.ipynb`    every lesson notebook (nbs/*.ipynb not starting with `_`), cleaned of nbdev
                        directives: `#| hide` and `#| default_exp` cells dropped, `#| export` cells kept
                        with their directive lines stripped, `#| echo: false` / `#| output: false` /
                        `#| include: false` honoured; stored outputs kept (nothing is executed),
                        except that progress-bar widgets (tqdm) are dropped and other widget outputs
                        become a short note (no widget JavaScript); setup cells (only imports,
                        rcParams, seeds) are dropped, bare `show_doc(...)` inputs hidden (their
                        output kept) and `.savefig(...)` statements removed from the code shown;
- `_proc/lessons.md`    the lesson list (title and one-line summary of each notebook) + its toctree;
- `_proc/api/*.md`      one autodoc page per module in reconpatch_nb/*.py (new modules appear by
                        themselves), and an index listing each with its docstring's first line;
- `_proc/_assets/...`   images that markdown cells refer to by relative path (and `_proc/_extra/` for
                        raw HTML <img>, which Sphinx does not collect);
- `_proc/_static/mathjax/tex-svg-full.js`  MathJax 3 (self-contained SVG build, no web fonts), taken
                        from the npm registry once with `npm pack` and cached in `build/docs_cache/`
                        (gitignored), so the built site renders equations without a network.
"""
from __future__ import annotations

import ast, configparser, hashlib, json, re, shutil, subprocess, sys, tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, LIB, OUT = ROOT / "nbs", ROOT / "reconpatch_nb", ROOT / "_proc"
CACHE = ROOT / "build" / "docs_cache"
MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"  # of the npm tarball
MATHJAX_MEMBER = "package/es5/tex-svg-full.js"

_DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_FALSE = {"false", "no", "0"}
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "*(An interactive widget: run the notebook in Jupyter to use it.)*"


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


def lesson_notebooks() -> list[Path]:
    "Lesson notebooks in teaching (file name) order: nbs/*.ipynb except `_` sketches and index."
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_") and p.name != "index.ipynb")


def modules() -> list[str]:
    "Public modules of the package: reconpatch_nb/*.py not starting with `_`."
    return sorted(p.stem for p in LIB.glob("*.py") if not p.name.startswith("_"))


def fingerprint() -> str:
    "Hash of the names, sizes and times of everything the site is built from (to reuse a fresh build)."
    files = [ROOT / "settings.ini", ROOT / "Makefile", *NBS.rglob("*"), *(ROOT / "docs").rglob("*"), *LIB.glob("*.py")]
    h = hashlib.sha256()
    for f in sorted(f for f in files if f.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(f.parts)):
        st = f.stat()
        h.update(f"{f.relative_to(ROOT)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def directives(source: str) -> dict[str, str]:
    "nbdev/quarto `#|` directives at the top of a code cell, e.g. {'export': '', 'echo': 'false'}."
    found = {}
    for line in source.splitlines():
        m = _DIRECTIVE.match(line)
        if m: found[m.group(1).lower()] = m.group(2).lower()
        elif line.strip(): break  # directives only count before the first real line
    return found


# -- what a reader does not need to see ---------------------------------------------------------------
# Setup statements: figure defaults, seeds, thread counts, warning filters. A code cell made only of
# these (and imports) is scaffolding for the notebook, not part of the lesson.
_SETUP_CALLS = {"set_seed", "manual_seed", "set_num_threads", "filterwarnings", "simplefilter", "set_printoptions"}
_SETUP_FUNCS = {"np.random.seed", "random.seed", "plt.style.use", "matplotlib.use", "mpl.use", "plt.rc", "mpl.rc"}
_PROGRESS_TEXT = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\|\s*\d+/\d+\s*\[[\d:<?]+|\d+(?:\.\d+)?\s*(?:it|s)/(?:s|it)\]")


def _statements(source: str) -> list[ast.stmt] | None:
    "Top-level statements of a code cell, or None when it is not plain Python (magics, syntax errors)."
    try: return ast.parse(source).body
    except SyntaxError: return None


def _call_name(node) -> str | None:
    "`f` for `f(...)`, `m.f(...)`, `_ = f(...)`; None otherwise."
    if isinstance(node, ast.Expr): node = node.value
    elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id == "_" for t in node.targets): node = node.value
    if not isinstance(node, ast.Call): return None
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _call_func(node) -> str | None:
    "The called expression as written (`plt.style.use`) for a bare call statement."
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call): return ast.unparse(node.value.func)
    return None


def _is_rcparams(node) -> bool:
    "`plt.rcParams[...] = ...` / `mpl.rcParams.update(...)`-style statements."
    if isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(isinstance(t, ast.Subscript) and "rcParams" in ast.unparse(t.value) for t in targets)
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and "rcParams" in ast.unparse(node.value.func)


def is_setup_cell(source: str) -> bool:
    """True for a cell made only of imports and setup statements (rcParams, seeds, thread counts,
    warning filters, `%matplotlib ...`), with at least one setup statement: a cell of imports alone
    still teaches where the names come from and stays."""
    lines = [l for l in source.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    magics = [l for l in lines if l.lstrip().startswith("%matplotlib")]
    stmts = _statements("\n".join(l for l in lines if l not in magics))
    if stmts is None: return False
    setup = [s for s in stmts if _is_rcparams(s) or _call_name(s) in _SETUP_CALLS or _call_func(s) in _SETUP_FUNCS]
    others = [s for s in stmts if s not in setup and not isinstance(s, (ast.Import, ast.ImportFrom))]
    return bool(setup or magics) and not others


def is_show_doc_cell(source: str) -> bool:
    "True for a cell that only calls `show_doc(...)` (one or more times): its output is the documentation."
    stmts = _statements(source)
    return bool(stmts) and all(_call_name(s) == "show_doc" for s in stmts)


def drop_savefig(source: str) -> str:
    "The source without its top-level `....savefig(...)` statements (saving a figure is for the repo, not the reader)."
    stmts = _statements(source)
    if not stmts or not any(_call_name(st) == "savefig" for st in stmts): return source
    lines, out, done = source.splitlines(), [], set()
    for i, line in enumerate(lines):
        on_line = [st for st in stmts if st.lineno - 1 <= i < st.end_lineno]
        if not any(_call_name(st) == "savefig" for st in on_line): out.append(line); continue
        # `fig.savefig(...); plt.close(fig)`: keep the other statements that start on this line
        rest = [ast.get_source_segment(source, st) for st in on_line
                if _call_name(st) != "savefig" and st.lineno - 1 == i and id(st) not in done]
        done.update(id(st) for st in on_line)
        if rest: out.append(line[:len(line) - len(line.lstrip())] + "; ".join(rest))
    return "\n".join(out)


def widget_state(nb: dict) -> dict:
    "model_id → model of the widget state the notebook stored (empty when nbdev_clean dropped it)."
    w = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return w.get("state", {}) if isinstance(w, dict) else {}


def is_progress_bar(out: dict, state: dict | None = None) -> bool:
    """Whether a stored output is a progress bar (tqdm): a widget whose model holds a Float/IntProgress
    (from the notebook's widget state), or whose text fallback reads like `50%|███  | 1/2 [00:01<...]`;
    a stderr stream of tqdm's text bar counts too. Real widgets (sliders, dropdowns) are not progress bars."""
    data = out.get("data", {})
    if WIDGET in data:
        state, seen, todo = state or {}, set(), [data[WIDGET].get("model_id")]
        while todo:
            mid = todo.pop()
            if mid in seen or mid not in state: continue
            seen.add(mid)
            model = state[mid]
            if model.get("model_name") in {"FloatProgressModel", "IntProgressModel"}: return True
            todo += [c.removeprefix("IPY_MODEL_") for c in model.get("state", {}).get("children", []) if isinstance(c, str)]
        return bool(_PROGRESS_TEXT.search("".join(data.get("text/plain", ""))))
    if out.get("output_type") == "stream" and out.get("name") == "stderr":
        text = "".join(out.get("text", ""))
        return bool(text.strip()) and all(_PROGRESS_TEXT.search(l) for l in re.split(r"[\r\n]+", text) if l.strip())
    return False


def clean_cell(cell: dict, state: dict | None = None) -> dict | None:
    "The cell as the docs show it, or None when it must not appear (`state`: the notebook's widget state)."
    if cell["cell_type"] != "code": return cell
    source = "".join(cell["source"])
    d = directives(source)
    if "hide" in d or "default_exp" in d or d.get("include") in _FALSE: return None
    if d.get("output") in _FALSE: cell["outputs"] = []
    outputs = []
    for out in cell.get("outputs", []):
        if is_progress_bar(out, state): continue  # a finished tqdm bar says nothing on a static page
        data = out.get("data", {})
        if WIDGET in data:  # the site ships no widget JavaScript (it would come from a CDN): say so instead
            out["data"] = {k: v for k, v in data.items() if k.startswith("image/")} or {"text/markdown": WIDGET_NOTE}
        md = out.get("data", {}).get("text/markdown")  # nbdev show_doc Markdown starts with a `---` rule: not valid there
        if md is not None and md != WIDGET_NOTE:
            out["data"]["text/markdown"] = re.sub(r"\A\s*(?:---\s*\n)+|(?:\n\s*---)+\s*\Z", "", "".join(md))
        outputs.append(out)
    if "outputs" in cell: cell["outputs"] = outputs
    lines = source.splitlines()
    n_dir = next((i for i, l in enumerate(lines) if l.strip() and not _DIRECTIVE.match(l)), len(lines))
    body = "\n".join(lines[n_dir:]).strip("\n")
    if is_setup_cell(body) and "export" not in d and "exports" not in d:
        body = ""  # scaffolding: rcParams, seeds and their imports
    body = drop_savefig(body).strip("\n")
    cell["source"] = body
    tags = set(cell.setdefault("metadata", {}).get("tags", []))
    if d.get("echo") in _FALSE or not body.strip() or is_show_doc_cell(body): tags.add("remove-input")
    if tags: cell["metadata"]["tags"] = sorted(tags)
    if not body.strip() and not cell.get("outputs"): return None
    return cell


_MD_IMG = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_HTML_IMG = re.compile(r"(<img\b[^>]*?\bsrc=[\"'])([^\"']+)([\"'])", re.I)


def copy_assets(text: str) -> str:
    """Copy images that markdown refers to by a relative path into _proc/_assets and point at the copy.
    Markdown images are collected by Sphinx; raw HTML <img> are not, so those also go to _proc/_extra
    (html_extra_path), which lands them at the same `_assets/...` path in the site."""
    def fix(m, html):
        target = m.group(2)
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|/|#)", target, re.I): return m.group(0)  # URL, absolute, attachment
        for base in (NBS, ROOT):  # relative to the notebook, or to the repo root (as README.md sees it)
            src = (base / target).resolve()
            if src.is_file() and ROOT in src.parents:
                rel = Path("_assets") / src.relative_to(ROOT)
                for dst in [OUT / rel] + ([OUT / "_extra" / rel] if html else []):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                return m.group(1) + rel.as_posix() + m.group(3)
        return m.group(0)  # leave it: Sphinx (or the browser test) reports the missing image
    text = _MD_IMG.sub(lambda m: fix(m, False), text)
    return _HTML_IMG.sub(lambda m: fix(m, True), text)


def clean_notebook(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells, state = [], widget_state(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = copy_assets("".join(cell["source"]))
        cell = clean_cell(cell, state)
        if cell is not None: cells.append(cell)
    nb["cells"] = cells
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):  # nbformat 4.5 wants cell ids
        for i, cell in enumerate(cells): cell.setdefault("id", f"{path.stem}-{i}")
    meta = nb.setdefault("metadata", {})  # code highlighting needs a language; nbdev_clean may strip it
    meta.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    meta.setdefault("language_info", {"name": "python"})
    return nb


def title_and_summary(nb: dict, fallback: str) -> tuple[str, str]:
    "The notebook's `# Title` and `> summary` (first markdown cell that has a title)."
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown": continue
        text = "".join(cell["source"])
        m = re.search(r"^#\s+(.+?)\s*$", text, re.M)
        if m:
            s = re.search(r"^>\s*(.+?)\s*$", text, re.M)
            return m.group(1), (s.group(1) if s else "")
    return fallback, ""


def write_nb(nb: dict, dst: Path):
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def md_cell(text: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


ROOT_TOCTREE = "```{toctree}\n:hidden:\n:maxdepth: 2\n\nlessons\napi/index\n```\n"


def write_index(cfg):
    src = NBS / "index.ipynb"
    if src.exists():
        nb = clean_notebook(src)
        nb["cells"].append(md_cell(ROOT_TOCTREE, "docs-toctree"))
        write_nb(nb, OUT / "index.ipynb")
    else:  # the home page notebook has not been written yet: a stub keeps the site buildable
        (OUT / "index.md").write_text(
            f"# {cfg.get('title', 'reconpatch_nb')}\n\n{cfg.get('description', '')}\n\n"
            "See the [lessons](lessons.md) and the [API reference](api/index.md).\n\n" + ROOT_TOCTREE,
            encoding="utf-8")


def write_lessons(lessons: list[tuple[str, str, str]]):
    rows = [f"- [{title}]({stem}.ipynb){': ' + summary if summary else ''}" for stem, title, summary in lessons]
    toc = "\n".join(stem for stem, _, _ in lessons)
    (OUT / "lessons.md").write_text(
        "# Lessons\n\nThe notebooks in teaching order. Each one builds one idea, from the equation to a "
        "naive loop to the exported, vectorised version.\n\n" + "\n".join(rows) +
        f"\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toc}\n```\n", encoding="utf-8")


def default_exp(path: Path) -> str | None:
    "The module a notebook exports to (`#| default_exp name`), if any."
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            d = directives("".join(cell["source"]))
            if "default_exp" in d: return d["default_exp"] or None
    return None


def module_summary(mod: str) -> str:
    "First line of a module's docstring (read with `ast`, without importing the module)."
    doc = ast.get_docstring(ast.parse((LIB / f"{mod}.py").read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def write_api(mods: list[str], lib: str, taught_in: dict[str, tuple[str, str]]):
    api = OUT / "api"
    api.mkdir()
    toc = "\n".join(mods)
    rows = [f"- [`{lib}.{m}`]({m}.md){': ' + module_summary(m) if module_summary(m) else ''}" for m in mods]
    (api / "index.md").write_text(
        "# API reference\n\nEverything the package exports (each module's `__all__`), one page per module, "
        "generated from the docstrings and parameter comments.\n\n" + "\n".join(rows) +
        f"\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toc}\n```\n", encoding="utf-8")
    for mod in mods:
        stem, title = taught_in.get(mod, (None, None))
        lesson = f"Taught in the lesson [{title}](../{stem}.ipynb).\n\n" if stem else ""
        (api / f"{mod}.md").write_text(
            f"# `{lib}.{mod}`\n\n{lesson}```{{eval-rst}}\n.. automodule:: {lib}.{mod}\n   :members:\n"
            f"   :show-inheritance:\n```\n", encoding="utf-8")


def mathjax() -> Path:
    "Path to the cached MathJax npm tarball, fetched with `npm pack` the first time."
    tgz = CACHE / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("docs: MathJax is bundled from the npm registry, but `npm` was not found "
                     "(install Node.js/npm, e.g. `apt-get install -y npm`)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent", "--pack-destination", str(CACHE)],
                       check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != MATHJAX_SHA256:
        tgz.unlink()
        sys.exit(f"docs: {tgz.name} has sha256 {digest}, expected {MATHJAX_SHA256}; removed it, run again")
    return tgz


def install_mathjax():
    dst = OUT / "_static" / "mathjax" / Path(MATHJAX_MEMBER).name
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(mathjax()) as tar:
        dst.write_bytes(tar.extractfile(MATHJAX_MEMBER).read())


def main():
    cfg = settings()
    if OUT.exists(): shutil.rmtree(OUT)
    OUT.mkdir()
    (OUT / ".inputs").write_text(fingerprint() + "\n")  # what this build is made from (tests/test_docs.py)
    (OUT / "_extra").mkdir()  # html_extra_path: files copied as they are into the site root
    install_mathjax()
    write_index(cfg)
    lessons, taught_in = [], {}
    for path in lesson_notebooks():
        nb = clean_notebook(path)
        write_nb(nb, OUT / path.name)
        lessons.append((path.stem, *title_and_summary(nb, path.stem)))
        mod = default_exp(path)
        if mod: taught_in.setdefault(mod.split(".")[-1], (path.stem, lessons[-1][1]))
    write_lessons(lessons)
    mods = modules()
    write_api(mods, cfg.get("lib_name", "reconpatch_nb"), taught_in)
    print(f"docs: prepared {len(lessons)} lesson notebooks, {len(mods)} API modules in {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
