/*-------------------------------------------------------------------------
 *
 * credential.h
 *	  Credentials: secrets stored encrypted under the key file named by
 *	  batch_ops.credential_key_file, usable by their owner and grantees.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_CREDENTIAL_H
#define BATCH_OPS_CREDENTIAL_H

#include "outbound_driver.h"

/* _PG_init: settings */
extern void credential_init(void);

/* Is a key file configured and readable?  (no ERROR) */
extern bool credential_key_available(void);

/*
 * The named credential, decrypted, if role may use it (owner, grantee,
 * superuser); else ERROR 42704 'credential "x" does not exist'.  Needs a
 * transaction; the strings are palloc'd in the current context.
 */
extern OutboundSecret *credential_fetch(const char *name, Oid role);

/*
 * Inline secrets of a spec: sealed before anything is stored (ERROR
 * 55000 with a hint if there is no key file), opened in the worker.
 */
extern bytea *credential_seal(const char *plain, size_t len);
extern char *credential_unseal(const bytea *sealed, size_t *len);

#endif							/* BATCH_OPS_CREDENTIAL_H */
