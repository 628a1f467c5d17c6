# One command from a fresh clone to a passing suite: `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The machine's own CA certificates, if any: the image needs them to reach the package index when the
# machine's traffic to it goes through a proxy of its own (cog build reads COG_CA_CERT the same way).
COG_CA_CERT ?= $(if $(wildcard /usr/local/share/ca-certificates/*.crt),/usr/local/share/ca-certificates,)

.PHONY: test lint bench venv clean image-test

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Builds the image as `cog build` would (local base images, no registry), runs it with no network and
# posts predictions to it (tests/image/). Needs root and a Docker engine (started if none answers).
image-test: venv
	IMAGE_TEST=1 COG_CA_CERT="$(COG_CA_CERT)" IMAGE_TEST_REPORT=.cog/image-test-report.json \
		$(BIN)/python -m pytest -q -o timeout=3600 -rs tests/image

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
