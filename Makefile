# django-arc developer entry points. Two commands from a fresh clone:
#   make test    # venv + browser + PostgreSQL/Redis + pytest on SQLite and PostgreSQL
#   make demo    # venv + migrate + seed + runserver on 127.0.0.1:$(PORT)
# `make help` lists the rest.

SHELL := /bin/bash
# Every recipe line fails the target on any error, including inside pipes.
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Re-install only when the packaging metadata changes.
STAMP := $(VENV)/.installed-stamp
# The supported floor (Django 4.2 LTS), which `make test` runs too: its own virtualenv, since
# one environment holds one Django. django-filter 25 needs Django 5.2, hence its cap.
VENV42 := .venv-django42
STAMP42 := $(VENV42)/.installed-stamp
# mkdocs and its theme only (docs/requirements.txt): building the site needs no Django.
VENVDOCS := .venv-docs
STAMPDOCS := $(VENVDOCS)/.installed-stamp
PORT ?= 8000
PYTEST_ARGS ?=
export PYTEST_ARGS

.PHONY: help .venv venv test demo worker lint format services-start services-stop clean docs

help:
	@echo "make test            venv, Chromium, PostgreSQL+Redis, pytest on SQLite then PostgreSQL,"
	@echo "                     then both again under Django 4.2 (.venv-django42), up to one run"
	@echo "                     per CPU side by side (ARC_TEST_JOBS=1: one after another)"
	@echo "                     (PYTEST_ARGS='-k outbox -x' passes arguments to both runs)"
	@echo "make demo [PORT=8000] migrate + seed_demo + runserver for example_project"
	@echo "                     (starts a throwaway Redis for its query cache if ARC_REDIS_URL is unset)"
	@echo "make worker          celery worker for the example (starts Redis if ARC_REDIS_URL unset)"
	@echo "make lint | format   ruff check + format check | apply ruff fixes and formatting"
	@echo "make services-start  throwaway PostgreSQL+Redis; env in .services/env"
	@echo "make services-stop   stop them"
	@echo "make docs            mkdocs build --strict (its own .venv-docs from docs/requirements.txt)"
	@echo "make clean           stop services, remove .venv, .venv-django42, .venv-docs and .services"

$(STAMP): setup.cfg pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -e ".[test,dev]"
	@touch $@

$(STAMP42): setup.cfg pyproject.toml
	@test -x $(VENV42)/bin/python || $(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --disable-pip-version-check -q \
		"Django>=4.2,<5.0" "django-filter>=24,<25" -e ".[test]"
	@touch $@

$(STAMPDOCS): docs/requirements.txt
	@test -x $(VENVDOCS)/bin/python || $(PYTHON) -m venv $(VENVDOCS)
	$(VENVDOCS)/bin/python -m pip install --disable-pip-version-check -q -r docs/requirements.txt
	@touch $@

.venv venv: $(STAMP)

test: $(STAMP) $(STAMP42)
	scripts/ensure-browser.sh
	scripts/run-tests.sh

demo: $(STAMP)
	PORT=$(PORT) scripts/demo.sh

worker: $(STAMP)
	scripts/worker.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

services-start:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

docs: $(STAMPDOCS)
	$(VENVDOCS)/bin/mkdocs build --strict

# Every state directory's services are stopped before .services goes: the default one (even
# with ARC_SERVICES_DIR exported), then make demo's (.services/demo-$PORT), make worker's,
# make test's and the benchmarks', which are its subdirectories.
clean:
	ARC_SERVICES_DIR= scripts/services.sh stop
	for dir in .services/*/; do \
		if [ -d "$${dir}pg" ] || [ -d "$${dir}redis" ]; then \
			ARC_SERVICES_DIR="$${dir%/}" scripts/services.sh stop || exit 1; \
		fi; \
	done
	rm -rf $(VENV) $(VENV42) $(VENVDOCS) .services
