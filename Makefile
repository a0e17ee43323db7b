# Everything a fresh machine needs: a virtual environment with vmlab and its test tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vmlab-installed
# the browser test drives Debian's Chromium (Playwright cannot download its own browser here)
CHROMIUM := /usr/bin/chromium

.PHONY: test report bench data clean tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(VENV)/bin/vmlab kernel install    # the 'vmlab' Jupyter kernel the notebooks declare
	touch $(STAMP)

## make tools: valgrind, perf and a C compiler for the recording tests (apt-get, as root, when
## missing; without root or apt-get those tests are skipped and say what to install)
tools:
	@missing=""; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	{ command -v perf >/dev/null && perf --version >/dev/null 2>&1; } || missing="$$missing linux-perf"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not installing$$missing (needs root and apt-get): those tests will be skipped"; fi; \
	fi

# as root (CI, a fresh machine) install Chromium; otherwise say how (the test then skips)
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "make: $(CHROMIUM) is missing; the browser test needs it: sudo apt-get install chromium"; \
	fi

## make test: install into .venv (and Chromium and the recording tools, as root) and run
## the whole test suite on all cores
test: $(STAMP) $(CHROMIUM) tools
	$(PY) -m vmlab.engine    # compile the fault engine once, before the test workers start
	$(PY) -m pytest -q -n auto tests

## make report: install into .venv and run every notebook on data/ into report/ (open report/index.html)
report: $(STAMP)
	$(PY) -m vmlab.engine    # compile the fault engine once, before notebooks run side by side
	$(VENV)/bin/vmlab report --out report

## make bench: run the benchmarks (installs the benchmark-only extras)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_lackey.py --records 100000000
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_index.py --records 100000000
	$(PY) benchmarks/bench_large.py --records 1000000000
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_large.py --lackey --records 1000000000

clean:
	rm -rf $(VENV) report .pytest_cache
