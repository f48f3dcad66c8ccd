#!/usr/bin/env bash
#
# Scheduled jobs: pg_cron calling batch_ops, on a throwaway cluster (port
# $BATCH_OPS_JOBS_CRON_PORT, 5484 by default) with the default test config,
# which preloads pg_cron with cron.database_name = 'postgres'.  Asserts:
#
#   1. a pg_cron job that calls batch_ops.submit_import() of a small file
#      (scheduled every 5 seconds when the installed pg_cron supports
#      second intervals -- 1.5 and later --, else every minute) submits an
#      import that completes, within a bounded time; its pg_cron run
#      succeeded;
#   2. a pg_cron job calling batch_ops.purge() runs without error;
#   3. after cron.unschedule() no new import is submitted (checked when
#      the schedule is in seconds; with a minute schedule that would cost
#      another minute).
#
# Skips (77) when pg_cron is not installed.  Exit 0 = pass.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/jobs_common.sh
source "$here/lib/jobs_common.sh"

port="${BATCH_OPS_JOBS_CRON_PORT:-5484}"
if [[ ! -f "$("$(bo_pg_config)" --sharedir)/extension/pg_cron.control" ]]; then
	echo "pg_cron is not installed (postgresql-15-cron): skipped"
	exit 77
fi
jt_start jobs_pg_cron "$port"
S="$BATCH_OPS_SCRATCH"

awk 'BEGIN { print "id,name"; for (i = 1; i <= 100; i++) print i ",n" i }' >"$S/cron.csv"
chmod 644 "$S/cron.csv"

jt_is "pg_cron is preloaded, for database postgres" \
	"$(jt_q "SELECT current_setting('shared_preload_libraries') ~ 'pg_cron' AND current_setting('cron.database_name') = 'postgres'")" t
jt_sql -c "CREATE EXTENSION pg_cron" >/dev/null
jt_sql -c "CREATE TABLE cron_target (id int PRIMARY KEY, name text NOT NULL)" >/dev/null
ver="$(jt_q "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")"
jt_log "pg_cron $ver"

import_cmd="SELECT batch_ops.submit_import('public.cron_target', '$S/cron.csv')"
# second intervals came with pg_cron 1.5; older versions reject them
if jid="$(jt_sql -c "SELECT cron.schedule('bo_import', '5 seconds', \$cron\$$import_cmd\$cron\$)" 2>/dev/null)"; then
	schedule='5 seconds'
	deadline=40
else
	schedule='* * * * *'
	deadline=90
	jid="$(jt_sql -c "SELECT cron.schedule('bo_import', '$schedule', \$cron\$$import_cmd\$cron\$)")"
fi
pid="$(jt_sql -c "SELECT cron.schedule('bo_purge', '$schedule', 'SELECT batch_ops.purge()')")"
jt_log "scheduled import (cron job $jid) and purge (cron job $pid) at '$schedule'; waiting up to ${deadline}s"

# 1. the first import submitted by pg_cron appears and completes
if jt_wait_ok "pg_cron submitted an import job" "$deadline" \
	"SELECT EXISTS (SELECT FROM batch_ops.jobs WHERE target::regclass = 'cron_target'::regclass)"; then
	first="$(jt_q "SELECT min(job_id) FROM batch_ops.jobs WHERE target::regclass = 'cron_target'::regclass")"
	jt_is "the import submitted by pg_cron completes (status created failed submitted_by)" \
		"$(jt_q "SELECT concat_ws(' ', w->>'status', w->'results'->'created', w->'results'->'failed', w->>'submitted_by')
		           FROM batch_ops.wait_job($first, '30 s') AS w")" "completed 100 0 postgres"
	jt_is "the imported rows are there" "$(jt_q "SELECT count(*) FROM cron_target")" 100
fi
jt_wait_ok "pg_cron recorded a successful run of the import command" 30 \
	"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jid AND status = 'succeeded')" || true

# 2. purge()
if jt_wait_ok "pg_cron ran batch_ops.purge()" "$deadline" \
	"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $pid AND status IN ('succeeded', 'failed'))"; then
	run="$(jt_q "SELECT status || ': ' || coalesce(return_message, '') FROM cron.job_run_details
	             WHERE jobid = $pid AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")"
	jt_log "purge() run: $run"
	jt_is "the purge() run succeeded" "${run%%:*}" succeeded
fi
failed_runs="$(jt_q "SELECT coalesce(string_agg(jobid || ': ' || return_message, '; '), '') FROM cron.job_run_details
                      WHERE jobid IN ($jid, $pid) AND status = 'failed'")"
jt_is "no pg_cron run failed" "$failed_runs" ""

# 3. unschedule
jt_is "cron.unschedule() of both" \
	"$(jt_q "SELECT cron.unschedule($jid) AND cron.unschedule($pid)")" t
jt_is "no pg_cron job is left" "$(jt_q "SELECT count(*) FROM cron.job")" 0
# a run that had already started may still submit: let it settle
sleep 2
n="$(jt_q "SELECT count(*) FROM batch_ops.jobs WHERE target::regclass = 'cron_target'::regclass")"
if [[ "$schedule" == '5 seconds' ]]; then
	sleep 8
	jt_is "no import is submitted after cron.unschedule()" \
		"$(jt_q "SELECT count(*) FROM batch_ops.jobs WHERE target::regclass = 'cron_target'::regclass")" "$n"
else
	jt_log "minute schedule: not waiting another minute to see that nothing runs after cron.unschedule()"
fi
# every import pg_cron submitted finished (the later ones find the rows there: conflicts)
jt_is "every import pg_cron submitted completed" \
	"$(jt_q "SELECT count(*) FROM batch_ops.jobs AS j, batch_ops.wait_job(j.job_id, '20 s') AS w
	          WHERE j.target::regclass = 'cron_target'::regclass AND w->>'status' <> 'completed'")" 0
jt_log "pg_cron submitted $n import job(s)"
jt_done
