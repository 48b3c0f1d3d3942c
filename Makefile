# The two Quick start commands: `make demo` and `make test`; `make docs` / `make serve` for the site.
# .venv is created with pip when missing and re-installed when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: demo test lint format bench docs serve clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,cloud,docs,course]' --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shakyo demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m sitegen build
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The study site: docs/ + pages generated from the code -> site/ (see sitegen/build.py).
docs: $(STAMP)
	$(BIN)/python -m sitegen build

serve: docs
	$(BIN)/python -m sitegen serve --port $(or $(PORT),8000)

bench: $(STAMP)
	$(BIN)/python benchmarks/prepare.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache site build/site-src
