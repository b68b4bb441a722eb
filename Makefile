# kenbun: the two commands of the README are `make demo` and `make test`.
.PHONY: setup install demo test test-unit test-pg test-regress test-live cluster-start cluster-stop psql

setup:
	@bash scripts/setup.sh

install: setup
	@bash scripts/install.sh

demo: install
	@bash scripts/cluster.sh start
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh all

test-unit: setup
	@bash scripts/test.sh unit

test-pg: setup
	@bash scripts/test.sh pg

test-regress: setup
	@bash scripts/test.sh regress

test-live: setup
	@bash scripts/test.sh live

cluster-start:
	@bash scripts/cluster.sh start

cluster-stop:
	@bash scripts/cluster.sh stop

psql:
	@bash scripts/cluster.sh psql -d kenbun_demo
