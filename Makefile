# Set-up and the two everyday commands. Every target installs what it needs into .venv first.
#   make demo   - the offline demo (fine-tune MiniLM, distil 2-layer students with kd and full, print a table)
#   make test   - the test suite (about 6.5 minutes on 2 idle CPU cores, plus the first install)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned to a build that exists here; override for another machine, e.g. TORCH_SPEC="torch>=2.6".
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/dynakd demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) dynakd-demo .pytest_cache
