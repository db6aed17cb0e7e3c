# make test: everything CI runs (unit, integration, e2e with a private containerd, our conformance suite).
# Needs root and the Debian packages in .ci/run (busybox-static, gcc, musl-tools, libseccomp-dev, containerd, runc).
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

# make bench: pyrunc from a regular (not editable) install in its own venv -- the editable finder adds ~11 ms to
# every start -- with the `bench` extra (matplotlib for the chart).  pip reinstalls pyrunc from this tree on every
# run.  Writes bench/results.json, bench/waterfall.json, bench/instructions.json, bench/bench.svg and the marked
# blocks of README.md's "Speed" section (bench/readme.py); the raw markdown is left in bench/out/.  About 1-3
# minutes, plus ~30 s the first time to build $(BENCH_VENV).
BENCH_VENV ?= .venv-bench
BENCH_N ?= 31
BENCH_PYRUNC := $(abspath $(BENCH_VENV))/bin/pyrunc

bench:
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q '.[bench]'
	mkdir -p bench/out
	$(BENCH_VENV)/bin/python bench/bench.py --pyrunc $(BENCH_PYRUNC) --runc $$(command -v runc) -n $(BENCH_N) \
		--parallel 200 --jobs 16 --rounds 5 --shim $(BENCH_N) --json bench/results.json --markdown > bench/out/table.md
	cat bench/out/table.md
	$(BENCH_VENV)/bin/python bench/waterfall.py --pyrunc $(BENCH_PYRUNC) --runc $$(command -v runc) -n 11 \
		--json bench/waterfall.json --markdown > bench/out/waterfall.md
	cat bench/out/waterfall.md
	$(BENCH_VENV)/bin/python bench/instructions.py --pyrunc $(BENCH_PYRUNC) --json bench/instructions.json \
		> bench/out/instructions.md
	cat bench/out/instructions.md
	$(BENCH_VENV)/bin/python bench/chart.py bench/results.json bench/bench.svg
	$(BENCH_VENV)/bin/python bench/readme.py README.md table=bench/out/table.md waterfall=bench/out/waterfall.md \
		instructions=bench/out/instructions.md

clean:
	rm -rf $(VENV) $(BENCH_VENV) bench/out build *.egg-info pyrunc/*.so pyrunc/_helper.c pyrunc/_seccomp.c pyrunc/pyrunc-init
