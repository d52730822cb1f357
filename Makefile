# reconpatch_nb developer commands. Run inside the venv (`. .venv/bin/activate`).
PYTHON ?= python
SPHINXOPTS ?= -W --keep-going -q

.PHONY: docs test readme fuzz

# Docs site into _docs/ (Sphinx + myst-nb, stored notebook outputs, MathJax bundled from npm once).
# Sphinx writes to build/docs/html first: myst-nb puts its jupyter_execute/ beside the output folder.
docs:
	$(PYTHON) docs/prepare.py
	rm -rf _docs build/docs
	$(PYTHON) -m sphinx -b html $(SPHINXOPTS) -c docs -d build/docs/doctrees _proc build/docs/html
	cp -a build/docs/html _docs
	@echo "docs: open _docs/index.html"

test:
	$(PYTHON) -m pytest tests

readme:
	$(PYTHON) .ci/readme.py

# Hostile input end to end through the CLI (tests/test_fuzz.py; also part of `make test`).
fuzz:
	$(PYTHON) -m pytest tests/test_fuzz.py -v
