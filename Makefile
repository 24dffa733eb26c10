# toolmesh — `make demo` runs the main job, `make test` the whole suite.
# Both set everything up first (idempotent): system libraries, the project venv,
# and a separate tool venv for perf_analyzer.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PERF_VENV := .venv-perf
BIN := $(VENV)/bin
# libpython3.11: the Triton python-backend stub embeds it. libb64-0d: perf_analyzer needs it.
# bubblewrap, libseccomp2: the codegen sandbox's jail (namespaces, read-only view, seccomp).
# iproute2: `ip netns`, the cluster rehearsal's hosts (toolmesh_local.netns).
SYSTEM_PACKAGES := libpython3.11 libb64-0d bubblewrap libseccomp2 iproute2
PROTOS := $(wildcard protos/toolmesh/v1/*.proto)

.PHONY: setup system-deps demo test lint protos crd perf wheels clean

setup: system-deps $(VENV)/.installed $(PERF_VENV)/.installed

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

PARTS := sdk gateway triton_models codegen planner local

# Every part editable (one requirements file), so the checkout is what runs.
$(VENV)/.installed: requirements-dev.txt $(foreach p,$(PARTS),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $@

# perf_analyzer ships in tritonclient 2.50.0 (newer wheels lack it or need glibc 2.38);
# it lives in its own venv so the project keeps a current tritonclient.
$(PERF_VENV)/.installed:
	@test -x $(PERF_VENV)/bin/python || $(PYTHON) -m venv $(PERF_VENV)
	$(PERF_VENV)/bin/python -m pip install -q 'tritonclient==2.50.0' 'nvidia-cuda-runtime-cu12'
	@touch $@

# Regenerate the protobuf/gRPC stubs (committed; tests/sdk/test_protos.py checks they are current).
protos: $(VENV)/.installed
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=sdk --pyi_out=sdk \
	  --grpc_python_out=sdk $(PROTOS)

# Regenerate the Function CRD from FUNCTION_RESOURCE_SCHEMA (committed; tests/deploy checks it).
crd: $(VENV)/.installed
	$(BIN)/python -m toolmesh_gateway.crd --out deploy/base/function-crd.yaml

demo: setup
	$(BIN)/toolmesh demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check sdk gateway triton_models tests perf codegen planner local
	$(BIN)/mypy
	$(BIN)/lint-imports

# One wheel per part into dist/ (what `pip install` and the images install).
wheels: $(VENV)/.installed
	rm -rf dist && for p in $(PARTS); do $(BIN)/python -m build --wheel --outdir dist $$p || exit 1; done

# pytest exits 5 when it collected nothing: a suite that ran no test is a failure here.
test: setup lint
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

perf: setup
	$(BIN)/python -m perf.gateway_overhead

clean:
	rm -rf $(VENV) $(PERF_VENV) .pytest_cache .mypy_cache .ruff_cache dist
