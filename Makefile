# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both install what they need: Node 24 when the machine's is older, a pinned pnpm, the
# workspace's packages, etcd, and Pebble (the ACME test server).
PNPM_VERSION := 10.34.8
PNPM := pnpm

# Node: the suite runs on the machine's `node` when it is 24 or newer, otherwise on this pinned 24
# (unpacked in .tools/ by scripts/ensure-node.sh). Every recipe, and so pnpm, tsc, vitest and the
# routers the tests spawn (process.execPath), finds it first on PATH.
NODE_VERSION := 24.22.3
# The other maintained lines: `make test` also runs NODE_COMPAT_TESTS on each.
NODE_EXTRA_VERSIONS := 22.23.5 26.12.1
# The native upstream client leans on node:_http_common internals; these files cover it end to end.
NODE_COMPAT_TESTS := packages/router/test/upstream-client.test.ts packages/router/test/proxy-forward.test.ts test/e2e/router-routing.test.ts

SYSTEM_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifeq ($(shell [ "$(SYSTEM_NODE_MAJOR)" -ge 24 ] 2>/dev/null && echo new),new)
NODE_DIR :=
else
NODE_DIR := $(CURDIR)/.tools/node-$(NODE_VERSION)/bin
export PATH := $(NODE_DIR):$(PATH)
endif

.PHONY: all env node node-extra tools deploy-tools browser deps build test test-unit test-integration demo bench clean

all: build

node:
ifneq ($(NODE_DIR),)
	@bash scripts/ensure-node.sh $(NODE_VERSION) >/dev/null
endif

node-extra:
	@for v in $(NODE_EXTRA_VERSIONS); do bash scripts/ensure-node.sh $$v >/dev/null || exit 1; done

# corepack cannot fetch pnpm here (the registry serves no signatures), so npm installs the pinned one.
tools: node
	@if [ "$$(pnpm --version 2>/dev/null)" != "$(PNPM_VERSION)" ]; then \
	  echo "installing pnpm@$(PNPM_VERSION)"; npm install -g --no-fund --no-audit pnpm@$(PNPM_VERSION); fi
	@bash scripts/ensure-etcd.sh
	@bash scripts/ensure-pebble.sh

# The offline checkers of deploy/ and docker-compose.yml (test/deploy/): docker-compose, promtool,
# systemd-analyze. Only the tests need them, so only the test targets install them.
deploy-tools:
	@bash scripts/ensure-deploy-tools.sh

# Debian's chromium, which test/e2e/deployer-ui.test.ts drives through playwright-core (the fleet
# page of `paas-deploy ui` in a real browser). Only the tests need it.
browser:
	@bash scripts/ensure-chromium.sh

deps: tools
	@$(PNPM) install --frozen-lockfile --reporter=append-only

# tsc -b, then the router's start bundled (scripts/bundle-router.mjs).
build: deps
	@$(PNPM) build

# Every run goes ahead even when one fails, so one CI run reports them all; any failure fails, and
# the failed tests are printed again last, where a log cut to its tail still shows them.
REPORT := --reporter=default --reporter=json
test: build node-extra deploy-tools browser
	@echo "== type-checking the tests (tsc -b builds only the packages' sources)"
	@$(PNPM) exec tsc -p tsconfig.tests.json
	@failed=""; reports=""; mkdir -p .data/reports; rm -f .data/reports/*.json; \
	echo "== the whole suite on Node $$(node --version)"; \
	r=.data/reports/$$(node --version).json; \
	$(PNPM) exec vitest run $(REPORT) --outputFile.json=$$r || { failed="$$failed $$(node --version)"; reports="$$reports $$(node --version)=$$r"; }; \
	for v in $(NODE_EXTRA_VERSIONS); do \
	  echo "== Node $$v: $(NODE_COMPAT_TESTS)"; \
	  r=.data/reports/v$$v.json; \
	  PATH="$(CURDIR)/.tools/node-$$v/bin:$$PATH" $(PNPM) exec vitest run $(REPORT) --outputFile.json=$$r $(NODE_COMPAT_TESTS) || { failed="$$failed v$$v"; reports="$$reports v$$v=$$r"; }; \
	done; \
	if [ -n "$$failed" ]; then node scripts/test-failures.mjs $$reports; echo "== failed on:$$failed"; exit 1; fi

test-unit: build
	@$(PNPM) exec vitest run --project unit

test-integration: build deploy-tools browser
	@$(PNPM) exec vitest run --project integration

demo: build
	@node scripts/demo.mjs

bench: build
	@$(PNPM) bench

clean:
	rm -rf packages/*/dist packages/*/tsconfig.tsbuildinfo .data

# What a shell needs to run pnpm and vitest by hand on the same Node: eval "$$(make -s env)"
env:
	@echo 'export PATH="$(if $(NODE_DIR),$(NODE_DIR):)$$PATH"'

