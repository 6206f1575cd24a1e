# Quick start: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The demo's run folder is its own: a new demo replaces it.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/gcnseg train --config configs/demo.yaml
	$(BIN)/gcnseg eval --checkpoint runs/demo --json runs/demo/eval.json
	@echo "demo: pictures of predictions in runs/demo/previews/, curves in runs/demo/curves.png"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/gcnseg bench

clean:
	rm -rf $(VENV) build *.egg-info
