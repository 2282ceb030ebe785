# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on a fresh machine, installs the project into it, then runs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test chromium bench clean

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

# Two pytest-xdist workers, one test file each at a time (a file's module fixtures are made once):
# much of the suite is single-threaded Python (TensorFlow tracing, process start-up).
# `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

test: install chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The report's test opens a report in headless Chromium; installed where apt-get is there to do it
# (CI runs as root on Debian), else that one test skips with the reason.
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium (apt-get) for the report's browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
			|| echo "chromium could not be installed: the browser test will skip"; \
	fi

clean:
	rm -rf $(VENV) demo_out .pytest_cache
