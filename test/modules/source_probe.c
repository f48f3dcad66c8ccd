/*-------------------------------------------------------------------------
 *
 * source_probe.c
 *	  A test-only SQL function that reads an import source (src/source.c)
 *	  in the calling backend; linked into the test build of the library
 *	  (make TEST_MODULES=1) and bound by test/t/034_source_handles.pl.
 *
 * A job worker runs one job and exits, so it cannot show that a Source
 * whose import failed leaves nothing open behind it: the process is gone
 * before anything could pile up.  The phase-2 engine will open thousands
 * of sources in one process.  This function lets one backend open and fail
 * sources as often as a test likes: the Source is made in the function's
 * memory context, which PostgreSQL deletes at the end of the statement,
 * or when the statement fails.  When "close" is false the function never
 * calls source_close(): then only the Source's memory-context reset
 * callback can release its socket, libcurl handles or file descriptor.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "source.h"

extern PGDLLEXPORT Datum batch_ops_test_source_probe(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(batch_ops_test_source_probe);

/*
 * source_probe(location text, "offset" bigint, "close" bool) RETURNS bigint:
 * the number of bytes read from the offset to the end of the source.
 */
Datum
batch_ops_test_source_probe(PG_FUNCTION_ARGS)
{
	char	   *location = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Source	   *src = source_open(location, PG_GETARG_INT64(1), NULL);
	char		buf[8192];
	int64		total = 0;
	int			n;

	while ((n = source_read(src, buf, sizeof(buf))) > 0)
		total += n;
	if (PG_GETARG_BOOL(2))
		source_close(src);
	PG_RETURN_INT64(total);
}
