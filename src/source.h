/*-------------------------------------------------------------------------
 *
 * source.h
 *	  The bytes of an import (source.c) and who may read which source
 *	  (url_policy.c): server files and http(s) URLs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_SOURCE_H
#define BATCH_OPS_SOURCE_H

#include "utils/jsonb.h"

struct Job;

/* GUC variables (source.c, url_policy.c) */
extern char *batch_ops_fetch_url_prefixes;
extern int	batch_ops_fetch_timeout;	/* seconds, 0 = none */
extern int	batch_ops_fetch_low_speed_limit;	/* bytes/s, 0 = off */
extern int	batch_ops_fetch_low_speed_time; /* seconds */
extern int	batch_ops_fetch_max_size;	/* kB, 0 = none */

/* The import options that belong to the source (listed in hints). */
#define SOURCE_OPTION_NAMES "timeout, low_speed_limit, low_speed_time, max_size"

/* Limits of one download, from the settings and the job's options. */
typedef struct SourceOptions
{
	int			timeout;		/* seconds, 0 = none */
	int			low_speed_limit;	/* bytes/s, 0 = off */
	int			low_speed_time; /* seconds */
	int64		max_size;		/* bytes, 0 = none */
} SourceOptions;

/*
 * source.c: a byte stream from a server file or an http(s) URL.  A Source
 * and what it holds open (descriptor, libcurl handles) belong to the
 * memory context source_open() was called in: resetting or deleting that
 * context releases them, so an ERROR leaks nothing; source_close()
 * releases them sooner.
 */
typedef struct Source Source;
extern void source_init(void);
extern bool source_option(const char *name, JsonbValue *val, SourceOptions *opts);
extern void source_options_parse(Jsonb *options, SourceOptions *opts);
extern Source *source_open(const char *location, int64 offset, struct Job *job);
extern int	source_read(Source *src, char *buf, int len);
extern int64 source_size(Source *src);	/* -1 if unknown */
extern void source_close(Source *src);

/* url_policy.c */
extern void url_policy_init(void);
extern char *url_normalize_host(const char *host);
extern const char *url_origin(const char *url, char **scheme, char **host,
							  int *port);
extern bool source_is_url(const char *location);
extern void source_check_access(const char *source, Oid role);
extern void job_check_source_access(const char *source, Oid role);
extern void source_check_file_type(const char *path, mode_t mode);
extern void *url_checked_handle(const char *url);	/* a CURLU * */

#endif							/* BATCH_OPS_SOURCE_H */
