"""Sphinx configuration for the reconpatch_nb docs site.

Build with `make docs` (runs docs/prepare.py, then
`sphinx-build -W --keep-going -c docs _proc _docs`). The source tree `_proc/` is generated:
see docs/prepare.py. Nothing here fetches anything from the network, and the built site loads
nothing from outside the machine (MathJax, fonts, icons and scripts are all under `_static/`).
"""
import configparser, inspect, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_cfg = configparser.ConfigParser()
_cfg.read(ROOT / "settings.ini", encoding="utf-8")
_s = _cfg["DEFAULT"]

project = _s.get("title", "reconpatch_nb")
author = _s.get("author", "")
copyright = _s.get("copyright", "")
release = version = _s.get("version", "")

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax"]
root_doc = "index"
exclude_patterns = ["_static", "_extra", "_assets", ".ipynb_checkpoints", "**/.ipynb_checkpoints"]

# -- notebooks: stored outputs only, never executed ------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"   # nbdev show_doc / Markdown outputs: tables, math, headings
nb_ipywidgets_js = {}                # the default loads require.js + html-manager from CDNs
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3             # [see](#a-heading) and [see](other.ipynb#a-heading) links work

# -- math: MathJax 3 bundled locally (docs/prepare.py puts it in _proc/_static/mathjax/) -------------
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = {"tex": {"tags": "ams"}, "svg": {"fontCache": "global"}}
mathjax4_config = None

# -- API reference (autodoc) -------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}

# -- HTML --------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = project
html_static_path = [str(ROOT / "_proc" / "_static"), "_static"]
html_css_files = ["custom.css"]
html_extra_path = [str(ROOT / "_proc" / "_extra")]
html_copy_source = False
html_show_sourcelink = False
html_show_sphinx = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "show_prev_next": True,
    "footer_start": ["copyright"],
    "footer_end": [],
    "icon_links": [{"name": "GitHub", "url": _s.get("git_url", ""), "icon": "fa-brands fa-github"}]
                  if _s.get("git_url") else [],
}
html_sidebars = {"index": [], "lessons": [], "api/index": []}


# -- nbdev docments → autodoc parameter lists --------------------------------------------------------
_CODE = re.compile(r"(`+)(.+?)\1")


def _rst_escape(text: str) -> str:
    "Markdown-ish text (nbdev docstrings/comments) → safe reST: `code` → ``code``, markup chars escaped."
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(re.sub(r"([\\*|_])", r"\\\1", text[last:m.start()]))
        lit = f"``{m.group(2).strip()}``" if "``" not in m.group(2) else m.group(0)
        if m.start() and text[m.start() - 1].isalnum(): lit = "\\ " + lit  # `Item`s → ``Item``\ s
        if m.end() < len(text) and text[m.end()].isalnum(): lit += "\\ "
        out.append(lit)
        last = m.end()
    out.append(re.sub(r"([\\*|_])", r"\\\1", text[last:]))
    return "".join(out)


def _docments(obj) -> dict:
    "Parameter comments written nbdev-style (`x:int, # what x is`), keyed by name ('return' too)."
    from fastcore.docments import docments
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        inspect.getsource(target)
    except (TypeError, OSError):  # builtins, C extensions, inherited object.__init__
        return {}
    return {k: v for k, v in docments(target, full=False).items() if v}


def process_docstring(app, what, name, obj, options, lines):
    "Make nbdev docstrings valid reST and list the docments comments as parameters."
    if what not in ("function", "method", "class", "module"): 
        lines[:] = [_rst_escape(l) for l in lines]
        return
    if what != "module" and any(":param" in l for l in lines): return  # already reST-style
    lines[:] = [_rst_escape(l) for l in lines]
    if what == "module" or not callable(obj): return
    docs = _docments(obj)
    if not docs: return
    lines.append("")
    for param, comment in docs.items():
        if param == "self": continue
        text = _rst_escape(" ".join(comment.split()))
        lines.append(f":returns: {text}" if param == "return" else f":param {param}: {text}")
    lines.append("")


def setup(app):
    app.connect("autodoc-process-docstring", process_docstring)
