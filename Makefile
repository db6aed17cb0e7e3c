# make test: everything CI runs (unit, integration, e2e with a private containerd, our conformance suite).
# Needs root and the Debian packages in .ci/run (busybox-static, gcc, libseccomp-dev, containerd, runc).
PY ?= python3
VENV ?= .venv
PYRUNC := $(abspath $(VENV))/bin/pyrunc
export PYRUNC_BIN := $(PYRUNC)

.PHONY: install test unit demo bench clean

install: $(PYRUNC)

$(PYRUNC): setup.py setup.cfg pyproject.toml $(wildcard csrc/*)
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(PYRUNC)

test: install
	$(VENV)/bin/python -m pytest tests -q -rs -p no:cacheprovider
	$(VENV)/bin/python conformance/spec_checks.py --runtime $(PYRUNC) --keep-going

unit: install
	$(VENV)/bin/python -m pytest tests/unit -q -rs -p no:cacheprovider

demo: install
	$(VENV)/bin/python -P -m pyrunc.demo

bench: install
	$(VENV)/bin/python bench/bench.py --pyrunc $(PYRUNC) --runc $$(command -v runc)

clean:
	rm -rf $(VENV) build *.egg-info pyrunc/*.so pyrunc/_helper.c pyrunc/_seccomp.c pyrunc/pyrunc-init
