# batch_ops — PGXS build.
#
#   make                  build (warnings are errors)
#   make install          install into the PostgreSQL found by pg_config
#   make installcheck     pg_regress + isolation specs against a running server
#                         that has shared_preload_libraries = 'batch_ops'
#   make prove            pgTAP suites (test/pgtap) with pg_prove
#   make bench            benchmarks (test/bench), ratios against SQL baselines
#
# scripts/test.sh does all of it on a throwaway cluster; see README.md.

EXTENSION  = batch_ops
EXTVERSION = 0.2.0

MODULE_big = batch_ops
OBJS = \
	src/batch_ops.o \
	src/target.o \
	src/item_convert.o \
	src/item_error.o \
	src/precheck.o \
	src/row_json.o \
	src/response.o \
	src/plan_cache.o \
	src/idempotency.o \
	src/ratelimit.o \
	src/crud.o \
	src/jobs.o \
	src/worker.o \
	src/source.o \
	src/url_policy.o \
	src/csv_import.o \
	src/copy_path.o \
	src/batch_job.o \
	src/drop_guard.o

SHLIB_LINK += -lcurl

# pgvector's scheme: sql/batch_ops.sql is the install script of the current
# version; the scripts of earlier versions and the upgrade scripts between
# them are kept as they were released.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = sql/$(EXTENSION)--0.1.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers

REGRESS = \
	create \
	update \
	delete \
	atomic \
	errors \
	limits \
	types \
	triggers \
	privileges \
	partitioned \
	idempotency \
	security_engine \
	value_errors \
	internal_names \
	ratelimit \
	jobs \
	job_options \
	sources

ISOLATION = concurrent_update deadlock idempotency ratelimit_shared
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# PGXS does not track header dependencies; every object depends on them all.
$(OBJS): $(wildcard src/*.h)

.PHONY: prove bench
prove:
	pg_prove --ext .sql -r test/pgtap

bench:
	test/bench/run.sh

.PHONY: bench-callgrind
bench-callgrind:
	test/bench/callgrind.sh
