# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on a fresh machine, installs the project into it, then runs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# torch/torchvision as a matching pair first (PyPI's torchvision fails beside other torch builds)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[cpu,dev]'
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/dfd demo --folder demo_out

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_out .pytest_cache
