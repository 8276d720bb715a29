# Two commands a new user needs: `make deploy` and `make test` (see README).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= python3
BIN         := $(CURDIR)/$(VENV)/bin
CLUSTER     ?= testbed
COLLECTION  := $(CURDIR)/.collections/ansible_collections/toolhive/k8s
TESTBED_KUBECONFIG := $(CURDIR)/.cluster/kubeconfig

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv collection cluster-build cluster-up cluster-status cluster-down deploy status test sanity lint unit integration bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed ## Create the virtualenv with every Python requirement

collection: venv ## Make the checkout the installed toolhive.k8s collection
	@mkdir -p $(dir $(COLLECTION))
	@ln -sfn $(CURDIR) $(COLLECTION)

cluster-build: ## Build the test bed's binaries from Go modules (cached)
	@testbed/build.sh

cluster-up: ## Bring up the test bed (or CLUSTER=kind); idempotent
	@testbed/cluster.sh up

cluster-status: ## Show the test bed's processes and nodes
	@testbed/cluster.sh status

cluster-down: ## Stop the test bed's processes and remove its state
	@testbed/cluster.sh down
