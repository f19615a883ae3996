# Harbor's commands. `make demo` and `make test` are all a newcomer needs; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup demo test lint format pytest docs clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)$$/  make \1\t\2/' | expand -t 22

setup: $(VENV)/.installed  ## create .venv and install the pinned dependencies

# Reinstalls whenever the pinned dependencies change.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

## The main job: create (or advance) the demo shop, ingest it, dbt build, dbt docs.
demo: setup  ## create or advance the demo shop, ingest, dbt build, quality score, docs, report
	$(BIN)/harbor demo run

# The sources alone (the PR workflow's fallback: production is then built from the base branch's project).
ingest: setup  ## create the demo sources when missing and load them into the warehouse, without dbt
	$(BIN)/harbor demo create --if-missing
	$(BIN)/harbor ingest

## The test suite: lint, then pytest (which runs the whole chain in temporary folders).
test: lint pytest  ## lint, then the test suite (what CI runs)

pytest: setup  ## the test suite alone
	$(BIN)/pytest

YAML := models snapshots seeds analyses tests integration_tests packages .github dbt_project.yml profiles.yml \
	packages.yml .pre-commit-config.yaml .yamllint.yml

lint: setup  ## ruff, yamllint and sqlfluff, checking only
	$(BIN)/ruff check ingestion bench
	$(BIN)/ruff format --check ingestion bench
	$(BIN)/yamllint --strict -c .yamllint.yml $(YAML)
	$(BIN)/dbt deps --quiet
	HARBOR_TARGET=ci HARBOR_WAREHOUSE=$(CURDIR)/target/lint.duckdb $(BIN)/sqlfluff lint models analyses tests snapshots

format: setup  ## ruff and sqlfluff, fixing what they can
	$(BIN)/ruff check --fix ingestion bench
	$(BIN)/ruff format ingestion bench
	$(BIN)/dbt deps --quiet
	HARBOR_TARGET=ci HARBOR_WAREHOUSE=$(CURDIR)/target/lint.duckdb $(BIN)/sqlfluff fix models analyses tests snapshots

## dbt docs as one self-contained file: target/static_index.html (`harbor docs` checks the warehouse first)
docs: setup  ## dbt docs as one file: target/static_index.html
	$(BIN)/harbor docs

clean:  ## delete the warehouse, demo data, dbt's output, reports and the saved production state
	rm -rf target logs dbt_packages warehouse data reports state

## Pull-request CI (README "Contributing / pull requests"): production state, then the slim PR check.
.PHONY: prod-state ci-pr ingest
# A git ref as one shell word, whatever quotes or spaces it holds (BASE="release/it's" is 'release/it'\''s').
shell_word = '$(subst ','\'',$(1))'
# REF=<git ref> builds production as of that commit (the PR workflow's, when no state of the base is cached);
# without REF, uncommitted changes to the dbt project are refused: production is built from a commit.
# UNLESS_SAVED=1 keeps a saved state that is already of that commit (the PR workflow's restored cache).
prod-state: setup  ## build production and keep its dbt state (REF=<git ref> for another commit)
	$(BIN)/python -m ingestion.slim_ci prod-state $(if $(REF),--ref $(call shell_word,$(REF))) $(if $(UNLESS_SAVED),--unless-saved)

# BASE=<git ref> compares with another base than origin/main (or main); CI_PR_ARGS=--no-pytest skips pytest.
ci-pr: setup  ## the slim pull-request check against production (BASE=<git ref>)
	$(BIN)/python -m ingestion.slim_ci pr $(if $(BASE),--base $(call shell_word,$(BASE))) $(CI_PR_ARGS)

## Benchmarks (README "Performance"; not part of `make test`): SCALES="100000 1000000 10000000" order items;
## PROFILE=1 samples every step with py-spy (profiles under bench/results/profile-<time>/).
.PHONY: bench
bench: setup  ## the benchmarks (SCALES="100000 1000000 10000000", PROFILE=1)
	$(BIN)/python -m bench.run $(if $(SCALES),--scales $(SCALES)) $(if $(PROFILE),--profile)

# The saved bench runs side by side, oldest first: how each figure moved from run to run.
.PHONY: bench-trend
bench-trend: setup  ## the saved bench runs side by side
	$(BIN)/python -m bench.trend
