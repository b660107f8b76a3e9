# The two entry points of the README: `make demo` and `make test`. Both set up first.
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo-out
# make test runs the suite on one worker per core (pytest-xdist); TEST_JOBS=0 runs it in this process
TEST_JOBS ?= $(shell nproc)

.PHONY: setup demo test test-fast bench mutation kernel-mutation clean

setup:
	./scripts/setup.sh

# The end-to-end demo: train on digits, shrink to 12 KiB flash / 6 KiB RAM, full-int8, generate
# the compiled-runtime firmware for the emulated Cortex-M4F board, build it, bench it in QEMU.
demo: setup
	$(BIN)/tinyeff demo --out $(DEMO)

# Everything that needs no real board (hardware tests skip without --tinyeff-port).
test: setup
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

# Seconds, not minutes: leaves out the slow end-to-end acceptance tests.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/runtimes.py

# How many planted bugs the tests catch, per module (scripts/mutation.py). It goes on from the verdicts
# in tests/mutation_record.json (a whole pass is about a day on 2 cores) and writes back what it
# reaches; MINUTES=N bounds a run. Needs the mutation extra.
MINUTES ?=
mutation: setup
	$(BIN)/python -m pip install -q -e ".[test,mutation]"
	$(BIN)/python scripts/mutation.py $(if $(MINUTES),--minutes $(MINUTES))

# The same question for the C kernels: hand-planted bugs against the host op grid (~40 min).
kernel-mutation: setup
	$(BIN)/python scripts/kernel_mutation.py

clean:
	rm -rf $(DEMO) .pytest_cache
