# The two commands of a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench venv native kafka-start kafka-stop lint proto clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The apply path compiled by Cython beside its sources (setup.py, deploy/native_build.py), as the editable
# install does; only what changed is rebuilt. Then what is loaded compiled, per module.
native: venv
	$(PY) setup.py -q build_ext --inplace
	$(PY) -m reprise native | tail -1

# Starts a local Kafka, the engine and the example Greeter, registers it, invokes it, stops everything.
demo: native
	$(PY) examples/demo.py

# Starts one broker for the session, runs the whole suite (compiled apply path), stops the broker (even
# on failure); the unit tests also run once from the sources alone (REPRISE_NATIVE=0).
test: native
	$(VENV)/bin/ruff check reprise engine partitions ingress schemas deploy testing tests examples
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	REPRISE_NATIVE=0 $(PY) -m pytest -p no:cacheprovider -q tests/unit
	$(PY) -m reprise kafka start
	REPRISE_EXPECT_NATIVE=1 $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; $(PY) -m reprise kafka stop; exit $$rc

# Every workload against Restate 1.7.12 and Reprise in alternating windows, then split in two and embedded (~30 min).
bench: native
	$(PY) -m tests.bench.restate_peer install
	$(PY) tests/bench/run.py

kafka-start: venv
	$(PY) -m reprise kafka start

kafka-stop: venv
	$(PY) -m reprise kafka stop

lint: venv
	$(VENV)/bin/ruff check reprise engine partitions ingress schemas deploy testing tests examples
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

proto: venv
	bash scripts/gen-proto.sh

clean:
	rm -rf $(VENV) .reprise build reprise/native-build.json
	find engine partitions schemas -name '*.so' -delete
