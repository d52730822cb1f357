"""Render README.md from nbs/index.ipynb without Quarto (nbdev_readme needs Quarto).

Usage: python .ci/readme.py          # write README.md
       python .ci/readme.py --check  # exit 1 if README.md is out of date
Hidden/exported cells are dropped, `#|` directives removed, code shown as python blocks and
text outputs as plain blocks; an `#| echo: false` cell contributes only its markdown output (a
summary computed in the notebook). Image outputs are not embedded: the notebook refers to committed
PNGs from markdown instead.
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n"

def directives(src):
    return {m.group(1) for m in re.finditer(r"^#\|\s*([\w-]+)", src, re.M)}

def render(nb):
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":  # images are relative to nbs/, the README sits one level up
            parts.append(re.sub(r"\]\((?!https?:|/|#)", "](nbs/", src.strip())); continue
        if cell["cell_type"] != "code" or directives(src) & {"hide", "export", "exporti", "default_exp"}:
            continue
        code = "\n".join(l for l in src.split("\n") if not l.startswith("#|")).strip()
        if re.search(r"^#\|\s*echo:\s*false", src, re.M):  # only the output, as on the site: computed markdown
            parts += [re.sub(r"\]\((?!https?:|/|#)", "](nbs/", "".join(o["data"]["text/markdown"]).strip())
                      for o in cell.get("outputs", []) if "text/markdown" in o.get("data", {})]
            continue
        if code: parts.append(f"```python\n{code}\n```")
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain")
            if text and "image/png" not in out.get("data", {}):
                parts.append("```\n" + "".join(text).rstrip() + "\n```")
    return HEADER + "\n\n".join(p for p in parts if p) + "\n"

if __name__ == "__main__":
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))
    text, readme = render(nb), ROOT / "README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python .ci/readme.py`")
        print("README.md is in sync with nbs/index.ipynb")
    else:
        readme.write_text(text, encoding="utf-8"); print(f"wrote {readme}")
