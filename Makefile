# Two commands a new user needs: `make deploy` and `make test` (see README).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
# The newest Python 3.12+ of this machine (ansible-core 2.21 needs one); PYTHON=... names another.
PYTHON      ?= $(shell testbed/python.sh)
BIN         := $(CURDIR)/$(VENV)/bin
# The local cluster of cluster-up/-status/-down: kind (what deploy uses), or testbed (the API server as host
# processes with KWOK's simulated nodes, which the KWOK suite of `make test` runs on).
CLUSTER     ?= kind
COLLECTION  := $(CURDIR)/.collections/ansible_collections/toolhive/k8s
TESTBED_KUBECONFIG := $(CURDIR)/.cluster/kubeconfig

TESTBED_BIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/toolhive-k8s-testbed/bin
# The test bed's kubectl (same release as its API server) before any other.
export PATH := $(BIN):$(TESTBED_BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv collection collection-build galaxy-import ee cluster-build cluster-up cluster-status cluster-down deploy status test sanity lint unit integration bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { testbed/python.sh >/dev/null; exit 1; }
	@echo "Creating $(VENV) with $$($(PYTHON) -V) ($(PYTHON))"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

# A virtualenv made with an older Python (before ansible-core 2.21) is made again.
venv: ## Create the virtualenv with every Python requirement
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || rm -f $(BIN)/.installed
	@$(MAKE) --no-print-directory $(BIN)/.installed

collection: venv ## Make the checkout the installed toolhive.k8s collection
	@mkdir -p $(dir $(COLLECTION))
	@ln -sfn $(CURDIR) $(COLLECTION)

COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
COLLECTION_TARBALL := .build/collection/toolhive-k8s-$(COLLECTION_VERSION).tar.gz

collection-build: venv ## Build the collection tarball into .build/collection
	@rm -rf .build/collection && ansible-galaxy collection build --force --output-path .build/collection >/dev/null
	@echo $(COLLECTION_TARBALL)

# What Ansible Galaxy and Automation Hub run on an upload: docs, ansible-lint, flake8, the tags they require.
galaxy-import: collection-build ## Galaxy's and Automation Hub's import checks (galaxy-importer) on the built tarball
	@cd $(dir $(COLLECTION_TARBALL)) && GALAXY_IMPORTER_CHECK_REQUIRED_TAGS=true GALAXY_IMPORTER_RUN_FLAKE8=true \
	  python -m galaxy_importer.main $(notdir $(COLLECTION_TARBALL))  # its importer_result.json stays there

ee: collection-build ## Execution environment build context in .build/ee (then: podman build .build/ee)
	@ansible-builder create --file execution-environment.yml --context .build/ee --output-filename Containerfile >/dev/null
	@echo "Build context: .build/ee (podman build -t toolhive-k8s-ee:$(COLLECTION_VERSION) .build/ee)"

cluster-build: ## Build the test bed's binaries from Go modules (cached)
	@testbed/build.sh

CLUSTER_SCRIPT = $(if $(filter kind,$(CLUSTER)),testbed/kind.sh,testbed/cluster.sh)
cluster-up: ## Bring up the local kind cluster (CLUSTER=testbed: the process test bed); idempotent
	@$(CLUSTER_SCRIPT) up

cluster-status: ## Show the local cluster
	@$(CLUSTER_SCRIPT) status

cluster-down: ## Remove the local cluster and everything of its engine (CLUSTER=testbed: the process test bed)
	@$(CLUSTER_SCRIPT) down

# deploy: the example on the local kind cluster (testbed/kind.sh brings it up; the collection's operator role
# installs ToolHive's operator there). Another cluster only when named: CONTEXT=<context of your kubeconfig>.
KIND_KUBECONFIG := $(CURDIR)/.kind/kubeconfig
deploy: collection ## Install everything, bring up kind, install the operator, deploy the example, print status
	@set -e; if [ -n "$(CONTEXT)" ]; then \
	  operator="-e toolhive_context=$(CONTEXT)"; extra="$$operator"; \
	  echo "Deploying to context $(CONTEXT) of your kubeconfig"; \
	else \
	  testbed/kind.sh up >/dev/null; \
	  export KUBECONFIG=$(KIND_KUBECONFIG); \
	  release=$$(source testbed/versions.env && echo $$TOOLHIVE_VERSION); \
	  operator="-e operator_chart_repo=$$(testbed/kind.sh charts-dir $$release) -e operator_version=$${release#v}"; \
	  extra="-e @testbed/example-overrides.yml"; \
	  echo "Deploying to the local kind cluster ($$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'); make cluster-down removes it)"; \
	fi; \
	ansible-playbook playbooks/operator.yml $$operator; \
	ansible-playbook playbooks/deploy.yml -e @playbooks/vars/example.yml $$extra; \
	ansible-playbook playbooks/status.yml -e @playbooks/vars/example.yml $${CONTEXT:+-e toolhive_context=$(CONTEXT)}

status: collection ## Print the status of what deploy deployed
	@ansible-playbook playbooks/status.yml -e @playbooks/vars/example.yml

test: collection ## The whole test suite: sanity, lint, unit, integration (test bed), molecule
	@python tests/run_suite.py

sanity: collection ## ansible-test sanity
	@tests/sanity/run.sh

lint: collection ## ansible-lint, production profile
	@ansible-lint --profile production --offline

unit: collection ## Unit tests (no cluster)
	@python -m pytest -q tests/unit

# The KWOK suite, as make test runs it, on the process bed (make cluster-up CLUSTER=testbed); the tests on running
# pods need the kind bed (make test runs them there).
KWOK_ONLY := --ignore=tests/integration/realpods --ignore=tests/integration/kind
integration: collection ## The KWOK integration suite against the process test bed
	@export KUBECONFIG=$(TESTBED_KUBECONFIG) TESTBED_NODES=kwok; \
	  python -m pytest -q -n 2 -m "not serial" $(KWOK_ONLY) tests/integration && \
	  python -m pytest -q -m serial $(KWOK_ONLY) tests/integration

clean: ## Remove the virtualenv and build leftovers (not the Go caches)
	rm -rf $(VENV) .collections .build

BENCH_SIZES ?= 1 10 50
BENCH_RUNS  ?= 3
bench: collection ## Benchmarks on the test bed (BENCH_SIZES, BENCH_RUNS); results in bench/results/
	@KUBECONFIG=$${KUBECONFIG:-$(TESTBED_KUBECONFIG)} python bench/run.py --sizes $(BENCH_SIZES) --runs $(BENCH_RUNS) \
	  --markdown bench/results/latest.md
