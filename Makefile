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
	src/spi_util.o \
	src/job_shmem.o \
	src/job_store.o \
	src/job_runtime.o \
	src/job_kind.o \
	src/launcher.o \
	src/job_worker.o \
	src/jobs_api.o \
	src/source.o \
	src/url_policy.o \
	src/csv_reader.o \
	src/copy_path.o \
	src/kind_import.o \
	src/kind_batch.o \
	src/drop_guard.o

# make TEST_KINDS=1: also the test-only kinds of test/kinds (job_kind.c)
ifdef TEST_KINDS
OBJS += $(patsubst %.c,%.o,$(wildcard test/kinds/*.c))
PG_CPPFLAGS_TEST_KINDS = -DBATCH_OPS_TEST_KINDS
endif

SHLIB_LINK += -lcurl

# pgvector's scheme: sql/batch_ops.sql is the install script of the current
# version; the scripts of earlier versions and the upgrade scripts between
# them are kept as they were released.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = sql/$(EXTENSION)--0.1.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = $(PG_CPPFLAGS_TEST_KINDS) -I$(srcdir)/src -Wall -Wextra -Werror \
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

# job_kind.o differs with TEST_KINDS: src/.test_kinds holds the setting
# and changes (so the registry is rebuilt) only when the setting does.
# Written while the Makefile is read: PGXS marks every file .SECONDARY, so
# a missing stamp would not trigger a rule.
$(shell echo '$(TEST_KINDS)' | cmp -s - src/.test_kinds || echo '$(TEST_KINDS)' > src/.test_kinds)
src/job_kind.o src/job_kind.bc: src/.test_kinds
EXTRA_CLEAN = src/.test_kinds test/kinds/*.o test/kinds/*.bc


.PHONY: prove bench
prove:
	pg_prove --ext .sql -r test/pgtap

bench:
	test/bench/run.sh
