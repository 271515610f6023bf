# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both install what they need: a pinned pnpm, the workspace's packages, and etcd.
PNPM_VERSION := 10.34.8
PNPM := pnpm

.PHONY: all tools deps build test test-unit test-integration demo bench clean

all: build

# corepack cannot fetch pnpm here (the registry serves no signatures), so npm installs the pinned one.
tools:
	@if [ "$$(pnpm --version 2>/dev/null)" != "$(PNPM_VERSION)" ]; then \
	  echo "installing pnpm@$(PNPM_VERSION)"; npm install -g --no-fund --no-audit pnpm@$(PNPM_VERSION); fi
	@bash scripts/ensure-etcd.sh

deps: tools
	@$(PNPM) install --frozen-lockfile --reporter=append-only

build: deps
	@$(PNPM) exec tsc -b

test: build
	@$(PNPM) exec vitest run

test-unit: build
	@$(PNPM) exec vitest run --project unit

test-integration: build
	@$(PNPM) exec vitest run --project integration

demo: build
	@node scripts/demo.mjs

bench: build
	@$(PNPM) bench

clean:
	rm -rf packages/*/dist packages/*/tsconfig.tsbuildinfo .data
