/*-------------------------------------------------------------------------
 *
 * copy_path.h
 *	  The COPY fast path of imports (copy_path.c): runs of CSV records
 *	  written by COPY, split at failures.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_COPY_PATH_H
#define BATCH_OPS_COPY_PATH_H

#include "lib/stringinfo.h"

#include "import_job.h"

/* Records waiting for COPY, as in the file. */
typedef struct RecordRun
{
	StringInfoData data;		/* the records as in the file, each + '\n' */
	int			nrec;
	int			maxrec;
	int		   *start;			/* offset of record i in data; [nrec] = len */
	int64	   *line;			/* its (last) line in the file, COPY's count */
	int		   *nl;				/* line feeds inside its quoted fields */
} RecordRun;

typedef struct CopyPath CopyPath;

/* Write records [first, last) of a run some other way (the batch engine). */
typedef void (*CopyFallback) (void *arg, RecordRun *run, int first, int last,
							  ChunkResult *res);

extern void record_run_init(RecordRun *run);
extern void record_run_reset(RecordRun *run);
extern void record_run_add(RecordRun *run, const char *data, int len, int64 line,
						   int nl);
extern void record_run_close(RecordRun *run, int64 line, int nl);
extern bool copy_path_usable(CopyPath *cp);
extern CopyPath *copy_path_begin(Job *job, ImportOptions *o, char **cols, int ncols,
								 int run_records, CopyFallback fallback, void *arg);
extern void copy_path_apply(CopyPath *cp, RecordRun *run, ChunkResult *res);
extern int64 copy_path_subxacts(CopyPath *cp);

#endif							/* BATCH_OPS_COPY_PATH_H */
