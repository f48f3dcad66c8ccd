# batch_ops — PGXS build.
#
#   make                  build (warnings are errors)
#   make install          install into the PostgreSQL found by pg_config
#   make installcheck     pg_regress (sql/, expected/) and isolation specs
#                         (test/isolation), each on a throwaway cluster
#   make pgtap            pgTAP suites (test/pgtap) on a throwaway cluster
#   make prove_installcheck  cluster-level TAP tests (test/t/*.pl), each file
#                         starts its own clusters (PostgreSQL::Test::Cluster)
#   make bench            benchmarks (test/bench), ratios against SQL baselines
#
# The test targets need the extension installed (make install) and run as
# the OS user postgres: initdb refuses root, and the expected outputs name
# the bootstrap superuser "postgres".  scripts/test.sh runs them all,
# started as root or not; see README.md "Running the tests".

EXTENSION  = batch_ops
EXTVERSION = 0.4.0

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
	src/batch.o \
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
	src/resource.o \
	src/action_batch.o \
	src/kind_action_batch.o \
	src/drop_guard.o \
	src/citus_table.o \
	src/row_match.o \
	src/copy_citus.o

# Outbound drivers (issue #10 item 4)
OBJS += \
	src/outbound_driver.o \
	src/driver_http.o \
	src/driver_eapi.o \
	src/driver_nxapi.o \
	src/driver_restconf.o \
	src/driver_meraki.o \
	src/meraki_pack.o

# Outbound engine, job kind and SQL API (issue #10 items 3 and 5)
OBJS += \
	src/outbound_spec.o \
	src/outbound_engine.o \
	src/http_engine.o \
	src/kind_outbound.o

# issue #10: credentials and the outbound policy (helper cred)
OBJS += \
	src/credential.o \
	src/outbound_policy.o

# issue #11: action batch callbacks, sent through the outbound engine
OBJS += \
	src/driver_callback.o

# issue #12: the ssh driver.  Its transport (ssh_engine.c) needs libssh2,
# found by pkg-config; without it (or with WITH_SSH=0) the driver answers
# 0A000 and everything else builds.
OBJS += src/driver_ssh.o
WITH_SSH ?= $(shell pkg-config --exists libssh2 2>/dev/null && echo 1 || echo 0)
ifeq ($(WITH_SSH),1)
OBJS += src/ssh_engine.o
PG_CPPFLAGS_SSH = -DWITH_SSH $(shell pkg-config --cflags libssh2)
SHLIB_LINK += $(shell pkg-config --libs libssh2)
endif

# make TEST_MODULES=1: the test build (scripts/test.sh), with the test-only
# code of test/kinds (job kinds, registered in job_kind.c) and test/modules
# (SQL functions that the TAP tests bind with CREATE FUNCTION) linked in.
ifdef TEST_MODULES
OBJS += $(patsubst %.c,%.o,$(wildcard test/kinds/*.c test/modules/*.c))
PG_CPPFLAGS_TEST_KINDS = -DBATCH_OPS_TEST_KINDS
endif

SHLIB_LINK += -lcurl
# credentials: AES-256-GCM
SHLIB_LINK += -lcrypto

# pgvector's scheme: sql/batch_ops.sql is the install script of the current
# version; the scripts of earlier versions and the upgrade scripts between
# them are kept as they were released.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.3.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = $(PG_CPPFLAGS_TEST_KINDS) $(PG_CPPFLAGS_SSH) -DBATCH_OPS_VERSION='"$(EXTVERSION)"' -I$(srcdir)/src -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers

# Hidden visibility: PG15 loads modules RTLD_GLOBAL, so every non-static
# symbol would otherwise land in the backend's namespace.  Only what is
# declared PGDLLEXPORT is exported (c.h defines PGDLLEXPORT only if it is
# not defined); test/tools/exported_symbols.sh checks the result.
PG_CFLAGS += -fvisibility=hidden
PG_CPPFLAGS += -DPGDLLEXPORT='__attribute__((visibility("default")))'

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
	sources \
	jobs_resume \
	action_batches
# issue #10 (helper cred)
REGRESS += credentials
# outbound engine: spec validation (issue #10 items 3 and 5)
REGRESS += outbound_spec

ISOLATION = concurrent_update deadlock idempotency ratelimit_shared action_batch_confirm \
	outbound_idempotency

# Every suite runs on a throwaway cluster of its own that preloads batch_ops
# (pg_cron's way): pg_regress's --temp-instance initdbs it with the installed
# binaries and appends test/regress.conf to its postgresql.conf.
BO_TEMP_CONFIG = --temp-config=$(srcdir)/test/regress.conf
REGRESS_OPTS = --temp-instance=./tmp_check $(BO_TEMP_CONFIG)
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso \
	--temp-instance=./tmp_check_iso $(BO_TEMP_CONFIG)

# pgTAP files run under pg_regress as the pgTAP documentation shows: the
# expected output is the TAP stream (test/pgtap/expected/*.out), so a failed
# assertion, a wrong plan or an error is a difference.
PGTAP_TESTS = $(patsubst $(srcdir)/test/pgtap/sql/%.sql,%,\
	$(sort $(wildcard $(srcdir)/test/pgtap/sql/*.sql)))

EXTRA_CLEAN = output_pgtap tmp_check_pgtap

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# PGXS does not track header dependencies; every object depends on them all.
$(OBJS): $(wildcard src/*.h)

# job_kind.o differs with TEST_MODULES: src/.test_kinds holds the setting
# and changes (so the registry is rebuilt) only when the setting does.
# Written while the Makefile is read: PGXS marks every file .SECONDARY, so
# a missing stamp would not trigger a rule.
$(shell echo '$(TEST_MODULES)' | cmp -s - src/.test_kinds || echo '$(TEST_MODULES)' > src/.test_kinds)
src/job_kind.o src/job_kind.bc: src/.test_kinds
# the same for WITH_SSH, which the engine and the spec check read
$(shell echo '$(WITH_SSH)' | cmp -s - src/.with_ssh || echo '$(WITH_SSH)' > src/.with_ssh)
src/outbound_engine.o src/outbound_spec.o src/outbound_engine.bc src/outbound_spec.bc: src/.with_ssh
EXTRA_CLEAN = src/.with_ssh src/.test_kinds test/kinds/*.o test/kinds/*.bc test/modules/*.o test/modules/*.bc


.PHONY: pgtap prove_installcheck bench
pgtap:
	$(pg_regress_installcheck) --inputdir=test/pgtap --outputdir=output_pgtap \
		--temp-instance=./tmp_check_pgtap $(BO_TEMP_CONFIG) \
		--dbname=$(CONTRIB_TESTDB) $(PGTAP_TESTS)

# PGXS's $(prove_installcheck) runs t/*.pl next to the Makefile with only
# that directory added to @INC, and only from installcheck when TAP_TESTS
# is set (installcheck stays pg_regress here).  As pgvector does, the
# target is spelled out: test/t/*.pl, with test/t (BatchOpsTest.pm) on @INC.
# Choose files with PROVE_TESTS='test/t/050_upgrade.pl'.
prove_installcheck:
	rm -rf '$(CURDIR)'/tmp_check
	$(MKDIR_P) '$(CURDIR)'/tmp_check
	cd $(srcdir) && TESTDIR='$(CURDIR)' PATH="$(bindir):$$PATH" \
		PGPORT='6$(DEF_PGPORT)' \
		PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
		$(PROVE) $(PG_PROVE_FLAGS) -I $(srcdir)/test/t $(PROVE_FLAGS) \
		$(if $(PROVE_TESTS),$(PROVE_TESTS),test/t/*.pl)

bench:
	test/bench/run.sh

.PHONY: bench-callgrind
bench-callgrind:
	test/bench/callgrind.sh
