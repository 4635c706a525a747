# mq-cutover: every command a developer, the README and CI use.
#   make demo   set up, then run a full ordered migration offline (embedded AWS emulator)
#   make test   set up, then every check: ruff, mypy, cfn-lint, sam validate --lint, ASL lint, pytest
#               (unit, lint, workflow, a headless-Chromium test of the approval page, and the
#               end-to-end tier with real ActiveMQ and RabbitMQ brokers, Java JMS, STOMP and
#               pika clients)
#   make e2e    only the end-to-end tier (installs Debian's activemq, Jolokia, Jetty, a JDK and
#               rabbitmq-server)
#   make pr     what a reviewer runs: the same as make test
#   make bench  the drain and scale benchmark (prints the README's figures; about an hour)

PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: setup setup-sam setup-node setup-browser setup-brokers e2e demo demo-unordered bench bench-quick test pr lint typecheck cfn-lint sam-validate unit workflow schema build clean

# The venvs are rebuilt when their pinned requirements change.
$(BIN)/.installed: requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(SAM_VENV)/bin/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

setup: $(BIN)/.installed
setup-sam: $(SAM_VENV)/bin/.installed

# The reference JavaScript JSONata (npm `jsonata`, the version package-lock.json pins) that the
# workflow tests check every JSONata result of the emulator against. Reinstalled when the lock
# changes; Node.js and npm come from Debian's packages when missing (needs root or sudo).
node_modules/.installed: package.json package-lock.json
	@if command -v node >/dev/null && command -v npm >/dev/null; then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	npm ci --no-audit --no-fund
	touch $@

setup-node: node_modules/.installed

# Headless Chromium and tesseract-ocr for the approval-page browser test, which opens the page
# at a phone's size and reads its screenshot with OCR (Debian packages; needs root or sudo).
setup-browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/tesseract ]; then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver tesseract-ocr >/dev/null; \
	fi

# Real brokers for the end-to-end tier (Debian packages; needs root or sudo). Nothing runs after
# install: the tests start each broker themselves and stop it by PID. rabbitmq-server's postinst
# starts the system service where policy-rc.d allows it (systemd machines): it is stopped and
# disabled again (the tier's nodes use their own ports, epmd and directories anyway).
# javac (default-jdk-headless) compiles the JMS reference client the tier runs.
BROKER_PACKAGES := activemq libjolokia-core-java libjetty9-java default-jdk-headless rabbitmq-server
setup-brokers:
	@if [ -f /usr/share/activemq/bin/activemq.jar ] && [ -f /usr/share/java/jolokia-core.jar ] \
		&& [ -f /usr/share/java/jetty9-server.jar ] && command -v javac >/dev/null \
		&& [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROKER_PACKAGES) >/dev/null && \
		if [ -d /run/systemd/system ]; then \
			$$SUDO systemctl disable --now rabbitmq-server.service >/dev/null 2>&1 || true; \
		else \
			$$SUDO invoke-rc.d rabbitmq-server stop >/dev/null 2>&1 || true; \
		fi; \
	fi

# -rP prints each scenario's figures (sent, received, lost, duplicated, out of order, gap).
e2e: setup setup-brokers
	$(BIN)/python -m pytest tests/e2e -m e2e -rP --show-capture=stdout

demo: setup
	$(BIN)/mq-cutover simulate --plan events/plan-ordered.json --world events/world-ordered.json \
		--pace 0.3 --report build/demo-report.json

demo-unordered: setup
	$(BIN)/mq-cutover simulate --plan events/plan-unordered.json --pace 0.3 \
		--report build/demo-unordered-report.json

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/benchmark.py

bench-quick: setup
	$(BIN)/python bench/benchmark.py --quick

typecheck: setup
	$(BIN)/mypy

cfn-lint: setup
	$(BIN)/cfn-lint template.yaml

sam-validate: setup-sam
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml

schema: setup
	$(BIN)/mq-cutover schema > schema/migration-plan.schema.json

unit: setup setup-node
	$(BIN)/python -m pytest tests/unit tests/lint

workflow: setup setup-node
	$(BIN)/python -m pytest tests/workflow

# Two workers: each test has its own moto (per process) and free ports; the e2e tier runs alone
# (real brokers on fixed ports).
test: lint typecheck cfn-lint sam-validate setup-browser setup-node
	$(BIN)/python -m pytest -m "not e2e" -n 2
	$(MAKE) e2e

pr: test

build: setup-sam
	$(SAM_VENV)/bin/sam build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam build .pytest_cache .mypy_cache .ruff_cache
