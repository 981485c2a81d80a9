# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: venv demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CPU build of torch from local disk when none is present; pyproject only sets a lower bound.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	# the peer simulator pins torch 2.13.0: only where that torch is installed (never changes torch)
	$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" \
		&& $(PY) -m pip install -q "aihwkit-lightning==2.1.0" || true
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/crossnas run demo --out runs/demo --force

test: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest tests

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
