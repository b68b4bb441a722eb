# kenbun: the two commands of the README are `make demo` and `make test`.
.PHONY: setup install demo docs test test-unit test-pg test-regress test-docs test-live soak model bench cluster-start cluster-stop psql

setup:
	@bash scripts/setup.sh

install: setup
	@bash scripts/install.sh

demo: install
	@bash scripts/cluster.sh start
	@bash scripts/demo.sh

# regenerates what the documentation shows: docs/expected/, the outputs in README.md, docs/reference.md
docs: install
	@bash scripts/cluster.sh start >/dev/null
	@bash scripts/docs.sh

test: setup
	@bash scripts/test.sh all

test-unit: setup
	@bash scripts/test.sh unit

test-pg: setup
	@bash scripts/test.sh pg

test-regress: setup
	@bash scripts/test.sh regress

test-docs: setup
	@bash scripts/test.sh docs

test-live: setup
	@bash scripts/test.sh live

# 8 clients for 60 s (KENBUN_SOAK_SECS=300 make soak for longer); prints transactions, retries and
# errors by SQLSTATE, drift and change-log replay; fails on drift, a non-retryable error or a crash
soak: setup
	@bash scripts/test.sh soak

# 400 generated cases (KENBUN_MODEL_CASES=2000 make model for more): random segments over every rule
# shape and random transactions, drift checked after every statement; prints the failing case's seed
# (replay it with KENBUN_MODEL_SEED=<seed> cargo test --test model), transaction and drifting rows
model: setup
	@bash scripts/test.sh model

# make bench                      100,000 leads (default), writes bench/results/<date>.md and .json
# make bench ARGS="--leads 1000000 --only fill,bulk"
# make bench ARGS=--quick          a smoke run in under two minutes (also part of make test)
bench: install
	@bash scripts/cluster.sh start >/dev/null
	@python3 bench/bench.py $(ARGS)

cluster-start:
	@bash scripts/cluster.sh start

cluster-stop:
	@bash scripts/cluster.sh stop

psql:
	@bash scripts/cluster.sh psql -d kenbun_demo
