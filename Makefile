# The two entry points of the README: `make demo` and `make test`. Both set up first.
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo-out

.PHONY: setup demo test test-fast bench clean

setup:
	./scripts/setup.sh

# The end-to-end demo. Until the firmware side lands it is the model half: train on digits,
# shrink to 12 KiB flash / 6 KiB RAM, and inspect the chosen int8 model.
demo: setup
	$(BIN)/tinyeff train dscnn --data digits --out $(DEMO)/run --force
	$(BIN)/tinyeff shrink $(DEMO)/run --flash-kib 12 --ram-kib 6 --out $(DEMO)/small --force
	$(BIN)/tinyeff inspect $(DEMO)/small/model.int8.tflite

# Everything that needs no real board (hardware tests skip without --tinyeff-port).
test: setup
	$(BIN)/python -m pytest

# Seconds, not minutes: leaves out the slow end-to-end acceptance tests.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/python benchmarks/pipeline_digits.py

clean:
	rm -rf $(DEMO) .pytest_cache
