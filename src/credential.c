/*-------------------------------------------------------------------------
 *
 * credential.c
 *	  Credentials: named secrets, stored encrypted, usable by their owner,
 *	  the roles they are granted to and superusers, never shown again.
 *
 * Storage: batch_ops.credential, one row per (owner, name), which PUBLIC
 * cannot read.  As for the job tables (job_store.c), the SQL functions
 * are SECURITY INVOKER C functions: they decide as the caller what the
 * caller may do, and only then reach the table as its owner with a pinned
 * search_path (spi_util.c, role_switch_to_owner).  The view
 * batch_ops.credentials lists the credentials the caller may use, with
 * the names of their fields, never their values.
 *
 * Encryption: AES-256-GCM (OpenSSL's libcrypto) under the 32-byte key in
 * the file named by batch_ops.credential_key_file, a postmaster setting.
 * The file must be a regular file owned by the server's user, with no
 * group or world access, and hold exactly 32 bytes; anything else is
 * refused with a message that says what is wrong.  The key is read from
 * the file each time it is needed and wiped right after; nothing keeps it
 * in memory.  A sealed value is
 *
 *		version (1 byte, 1) | nonce (12 random bytes) | ciphertext | tag (16)
 *
 * with additional authenticated data that binds it to its place: a
 * credential's row is sealed with its owner and name, so a ciphertext
 * copied to another row does not open; inline secrets of a spec
 * (credential_seal) with a constant of their own, so that neither kind
 * opens as the other.
 *
 * The plaintext of a credential is its fields, each as (field number,
 * 4-byte length, bytes).  Plaintext buffers are wiped (explicit_bzero)
 * once sealed or parsed; the strings credential_fetch() returns are
 * wiped when the memory context they live in is reset or deleted.  No
 * message, log line or view shows a value: errors name the field or the
 * credential, never what was in it.
 *
 * Who may use a credential: its owner, a role with the privileges of a
 * grantee, a superuser; for anyone else it does not exist (42704), with
 * the very message a missing one gets.  Credential names have no ".", so
 * "owner.name" always means the credential "name" of the role "owner"
 * (split at the last ".": role names may have one).  A plain name means
 * the caller's own credential of that name, else the one credential of
 * that name the caller may use (two or more: ambiguous, 42P08).
 * Dropping, granting and revoking are for the owner (superusers may name
 * another owner's credential as "owner.name").
 *
 * Locking: the row is written with one INSERT ... ON CONFLICT, UPDATE or
 * DELETE; concurrent calls on one credential serialize on its row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "credential.h"
#include "spi_util.h"
#include "sql_quote.h"

#define KEY_LEN		32
#define NONCE_LEN	12
#define TAG_LEN		16
#define SEAL_VERSION 1
#define SEAL_OVERHEAD (1 + NONCE_LEN + TAG_LEN)
#define NAME_MAX_LEN 200

char	   *batch_ops_credential_key_file = NULL;

/* The secret keys a credential may have, and where they go. */
static const struct
{
	const char *key;
	size_t		offset;
}			secret_fields[] =
{
	{"username", offsetof(OutboundSecret, username)},
	{"password", offsetof(OutboundSecret, password)},
	{"enable_password", offsetof(OutboundSecret, enable_password)},
	{"token", offsetof(OutboundSecret, token)},
	{"api_key", offsetof(OutboundSecret, api_key)},
	{"ca_cert", offsetof(OutboundSecret, ca_cert)},
	{"client_cert", offsetof(OutboundSecret, client_cert)},
	{"client_key", offsetof(OutboundSecret, client_key)},
	{"private_key", offsetof(OutboundSecret, private_key)},
	{"hmac_secret", offsetof(OutboundSecret, hmac_secret)},
	{"known_hosts", offsetof(OutboundSecret, known_hosts)},
};

#define NUM_SECRET_FIELDS lengthof(secret_fields)
#define SECRET_KEY_LIST "username, password, enable_password, token, api_key, ca_cert, client_cert, client_key, private_key, hmac_secret, known_hosts"

/* additional authenticated data of the two kinds of sealed values */
#define AAD_CREDENTIAL	"batch_ops credential"
#define AAD_INLINE		"batch_ops inline secret"

static const char *key_read(unsigned char *key, const char **detail,
							const char **hint);

extern PGDLLEXPORT Datum batch_ops_credential_set(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_credential_drop(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_credential_grant(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_credential_revoke(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum batch_ops_credential_list(PG_FUNCTION_ARGS);

PG_FUNCTION_INFO_V1(batch_ops_credential_set);
PG_FUNCTION_INFO_V1(batch_ops_credential_drop);
PG_FUNCTION_INFO_V1(batch_ops_credential_grant);
PG_FUNCTION_INFO_V1(batch_ops_credential_revoke);
PG_FUNCTION_INFO_V1(batch_ops_credential_list);

/*
 * Define batch_ops.credential_key_file; called from _PG_init.  A
 * PGC_POSTMASTER setting can be defined only while preloading: a library
 * loaded later has no key file, and storing or using a secret is refused
 * as with none set.
 */
void
credential_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomStringVariable("batch_ops.credential_key_file",
							   "File holding the 32-byte key that credentials are encrypted with.",
							   "It must belong to the server's operating system user, have mode 0600, and is best kept outside the data directory.",
							   &batch_ops_credential_key_file,
							   "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/* say at start-up what is wrong with a key file that is set */
	if (batch_ops_credential_key_file[0] != '\0')
	{
		unsigned char key[KEY_LEN];
		const char *detail;
		const char *hint;
		const char *problem = key_read(key, &detail, &hint);

		explicit_bzero(key, KEY_LEN);
		if (problem != NULL)
			ereport(LOG,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s", problem),
					 detail ? errdetail("%s", detail) : 0,
					 hint ? errhint("%s", hint) : 0));
	}
}

/*
 * Wipe a buffer when its memory context is reset or deleted: secrets
 * handed to callers do not outlive their context in freed memory.
 */
typedef struct WipeCallback
{
	MemoryContextCallback cb;
	void	   *ptr;
	size_t		len;
} WipeCallback;

static void
wipe_callback(void *arg)
{
	WipeCallback *w = (WipeCallback *) arg;

	explicit_bzero(w->ptr, w->len);
}

static void
wipe_on_reset(void *ptr, size_t len)
{
	WipeCallback *w = palloc(sizeof(WipeCallback));

	w->ptr = ptr;
	w->len = len;
	w->cb.func = wipe_callback;
	w->cb.arg = w;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &w->cb);
}

/*
 * Read the key into key[]; NULL if that worked, else what is wrong with
 * the key file (its message; *detail and *hint may be set).  Never
 * throws, so credential_key_available() can ask.
 */
static const char *
key_read(unsigned char *key, const char **detail, const char **hint)
{
	const char *path = batch_ops_credential_key_file;
	struct stat st;
	int			fd;
	ssize_t		n;

	*detail = NULL;
	*hint = NULL;
	if (path == NULL || path[0] == '\0')
	{
		*detail = "Secrets are stored encrypted under the key in the file that batch_ops.credential_key_file names.";
		*hint = "As the server's operating system user, create a key file with \"head -c 32 /dev/urandom > /path/to/batch_ops.key; chmod 600 /path/to/batch_ops.key\" (best outside the data directory), set batch_ops.credential_key_file to its path and restart the server.";
		return "no credential key file is configured";
	}
	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		*detail = strerror(errno);
		*hint = "batch_ops.credential_key_file must name a file that the server's operating system user can read.";
		return psprintf("could not open credential key file \"%s\"", path);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		return psprintf("credential key file \"%s\" is not a regular file", path);
	}
	if (st.st_uid != geteuid())
	{
		close(fd);
		*detail = "It must belong to the operating system user that runs the server.";
		return psprintf("credential key file \"%s\" is not owned by the server's user", path);
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		*detail = psprintf("Its mode is %04o; group and others must have no access.",
						   (unsigned int) (st.st_mode & 07777));
		*hint = psprintf("Run \"chmod 600 %s\".", path);
		return psprintf("credential key file \"%s\" has group or world access", path);
	}
	if (st.st_size != KEY_LEN)
	{
		close(fd);
		*detail = psprintf("It holds %lld bytes.", (long long) st.st_size);
		*hint = "Create it with \"head -c 32 /dev/urandom > FILE\"; a new key cannot open secrets stored under the old one.";
		return psprintf("credential key file \"%s\" must hold exactly %d bytes", path, KEY_LEN);
	}
	n = read(fd, key, KEY_LEN);
	close(fd);
	if (n != KEY_LEN)
	{
		explicit_bzero(key, KEY_LEN);
		return psprintf("could not read credential key file \"%s\"", path);
	}
	return NULL;
}

/* Read the key, or ERROR 55000 saying what is wrong. */
static void
key_read_or_error(unsigned char *key)
{
	const char *detail;
	const char *hint;
	const char *problem = key_read(key, &detail, &hint);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s", problem),
				 detail ? errdetail("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
}

bool
credential_key_available(void)
{
	unsigned char key[KEY_LEN];
	const char *detail;
	const char *hint;
	bool		ok = key_read(key, &detail, &hint) == NULL;

	explicit_bzero(key, KEY_LEN);
	return ok;
}

/*
 * AES-256-GCM.  Each runs every OpenSSL call, frees the cipher context and
 * wipes the key before it reports a failure, so nothing leaks on ERROR.
 */
static bytea *
seal(const unsigned char *plain, size_t len, const unsigned char *aad,
	 size_t aadlen)
{
	unsigned char key[KEY_LEN];
	bytea	   *out = palloc(VARHDRSZ + SEAL_OVERHEAD + len);
	unsigned char *p = (unsigned char *) VARDATA(out);
	unsigned char *nonce = p + 1;
	unsigned char *ct = nonce + NONCE_LEN;
	EVP_CIPHER_CTX *ctx;
	int			outl;
	bool		ok;

	if (len > MaxAllocSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("secret is too large")));
	key_read_or_error(key);
	SET_VARSIZE(out, VARHDRSZ + SEAL_OVERHEAD + len);
	p[0] = SEAL_VERSION;
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		RAND_bytes(nonce, NONCE_LEN) == 1 &&
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
		EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1 &&
		EVP_EncryptUpdate(ctx, ct, &outl, plain, (int) len) == 1 &&
		(size_t) outl == len &&
		EVP_EncryptFinal_ex(ctx, ct + len, &outl) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, ct + len) == 1;
	if (ctx != NULL)
		EVP_CIPHER_CTX_free(ctx);
	explicit_bzero(key, KEY_LEN);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt secret")));
	return out;
}

/*
 * Open a sealed value; the plaintext is palloc'd (NUL-terminated, *len
 * without the NUL) and wiped when its memory context goes.  "what" names
 * the value in the error.
 */
static unsigned char *
unseal(const bytea *sealed, const unsigned char *aad, size_t aadlen,
	   size_t *len, const char *what)
{
	unsigned char key[KEY_LEN];
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(sealed);
	size_t		total = VARSIZE_ANY_EXHDR(sealed);
	size_t		ctlen;
	unsigned char *plain;
	EVP_CIPHER_CTX *ctx;
	int			outl;
	bool		ok;

	if (total < SEAL_OVERHEAD || p[0] != SEAL_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s is not a sealed value of this version of batch_ops", what)));
	ctlen = total - SEAL_OVERHEAD;
	key_read_or_error(key);
	plain = palloc(ctlen + 1);
	wipe_on_reset(plain, ctlen + 1);
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, p + 1) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1 &&
		EVP_DecryptUpdate(ctx, plain, &outl, p + 1 + NONCE_LEN, (int) ctlen) == 1 &&
		(size_t) outl == ctlen &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
							(void *) (p + 1 + NONCE_LEN + ctlen)) == 1 &&
		EVP_DecryptFinal_ex(ctx, plain + ctlen, &outl) == 1;
	if (ctx != NULL)
		EVP_CIPHER_CTX_free(ctx);
	explicit_bzero(key, KEY_LEN);
	if (!ok)
	{
		explicit_bzero(plain, ctlen + 1);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt %s", what),
				 errdetail("The key in batch_ops.credential_key_file is not the one it was stored with, or the stored value was altered.")));
	}
	plain[ctlen] = '\0';
	*len = ctlen;
	return plain;
}

bytea *
credential_seal(const char *plain, size_t len)
{
	return seal((const unsigned char *) plain, len,
				(const unsigned char *) AAD_INLINE, strlen(AAD_INLINE));
}

char *
credential_unseal(const bytea *sealed, size_t *len)
{
	return (char *) unseal(sealed, (const unsigned char *) AAD_INLINE,
						   strlen(AAD_INLINE), len, "inline secret");
}

/* A credential's AAD: the constant, its owner and its name. */
static StringInfo
credential_aad(Oid owner, const char *name)
{
	StringInfo	aad = makeStringInfo();
	uint32		o = pg_hton32(owner);

	appendBinaryStringInfo(aad, AAD_CREDENTIAL, strlen(AAD_CREDENTIAL) + 1);
	appendBinaryStringInfo(aad, (char *) &o, sizeof(o));
	appendStringInfoString(aad, name);
	return aad;
}

/* The message every credential the caller may not see gets. */
static void
credential_not_found(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("credential \"%s\" does not exist", name)));
}

static void
check_name(const char *name)
{
	const char *c;

	if (name[0] == '\0' || strlen(name) > NAME_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credential name must be 1 to %d bytes long", NAME_MAX_LEN)));
	for (c = name; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("credential name must not contain control characters")));
	if (strchr(name, '.') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("credential name must not contain \".\""),
				 errdetail("\"owner.name\" names the credential \"name\" of the role \"owner\".")));
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* The number of a secret field, or -1. */
static int
secret_field_number(const char *key, int len)
{
	int			i;

	for (i = 0; i < NUM_SECRET_FIELDS; i++)
		if (strlen(secret_fields[i].key) == len &&
			memcmp(secret_fields[i].key, key, len) == 0)
			return i;
	return -1;
}

/*
 * The plaintext of a secret object (see the file header) and the names of
 * its fields.  Only the keys are ever named in a message.
 */
static StringInfo
secret_plaintext(Jsonb *secret, List **fields)
{
	StringInfo	plain = makeStringInfo();
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			field = -1;

	*fields = NIL;
	if (!JB_ROOT_IS_OBJECT(secret) || JB_ROOT_IS_SCALAR(secret))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret must be a JSON object")));
	/*
	 * Room for everything at once: a buffer that grew would leave a copy of
	 * the plaintext behind in freed memory.  The values are shorter than
	 * the jsonb, and there are at most NUM_SECRET_FIELDS of them.
	 */
	enlargeStringInfo(plain, VARSIZE(secret) + NUM_SECRET_FIELDS * 5);
	/* wiped with its context, also when an ERROR ends the call midway */
	wipe_on_reset(plain->data, plain->maxlen);
	it = JsonbIteratorInit(&secret->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			field = secret_field_number(v.val.string.val, v.val.string.len);
			if (field < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown secret key \"%s\"",
								pnstrdup(v.val.string.val, v.val.string.len)),
						 errhint("The keys of a secret are: " SECRET_KEY_LIST ".")));
		}
		else if (tok == WJB_VALUE)
		{
			uint32		len;

			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("secret key \"%s\" must have a string value",
								secret_fields[field].key)));
			len = pg_hton32((uint32) v.val.string.len);
			appendStringInfoChar(plain, (char) field);
			appendBinaryStringInfo(plain, (char *) &len, sizeof(len));
			appendBinaryStringInfo(plain, v.val.string.val, v.val.string.len);
			*fields = lappend(*fields, (char *) secret_fields[field].key);
		}
	}
	if (*fields == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret must have at least one key"),
				 errhint("The keys of a secret are: " SECRET_KEY_LIST ".")));
	return plain;
}

/* Parse a credential's plaintext into *secret (strings wiped on reset). */
static void
secret_parse(const unsigned char *plain, size_t len, OutboundSecret *secret,
			 const char *name)
{
	size_t		pos = 0;

	while (pos < len)
	{
		uint32		flen;
		int			field = plain[pos];
		char	   *value;

		if (field >= NUM_SECRET_FIELDS || len - pos < 1 + sizeof(flen))
			break;
		memcpy(&flen, plain + pos + 1, sizeof(flen));
		flen = pg_ntoh32(flen);
		pos += 1 + sizeof(flen);
		if (flen > len - pos)
			break;
		value = pnstrdup((const char *) plain + pos, flen);
		wipe_on_reset(value, flen + 1);
		*(char **) ((char *) secret + secret_fields[field].offset) = value;
		pos += flen;
	}
	if (pos != len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("credential \"%s\" is malformed", name)));
}

/* The header name of options.header: an HTTP token, so no injection. */
static void
check_options(Jsonb *options, char **header)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		is_header = false;

	*header = NULL;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			is_header = v.val.string.len == 6 &&
				memcmp(v.val.string.val, "header", 6) == 0;
			if (!is_header)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown credential option \"%s\"",
								pnstrdup(v.val.string.val, v.val.string.len)),
						 errhint("The only option is \"header\", the HTTP header that carries api_key.")));
		}
		else if (tok == WJB_VALUE)
		{
			int			i;

			if (v.type != jbvString || v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("credential option \"header\" must be a non-empty string")));
			for (i = 0; i < v.val.string.len; i++)
			{
				char		c = v.val.string.val[i];

				if (!(isalnum((unsigned char) c) || strchr("!#$%&'*+-.^_`|~", c)))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("credential option \"header\" must be an HTTP header name")));
			}
			*header = pnstrdup(v.val.string.val, v.val.string.len);
		}
	}
}

/* ---- the table, reached as its owner ---- */

static void
credential_table_begin(RoleSwitch *sw)
{
	role_switch_to_owner(sw, extension_table_owner("credential", false), false);
	spi_connect();
}

static void
credential_table_end(RoleSwitch *sw)
{
	SPI_finish();
	role_switch_end(sw);
}

static SpiStmt set_stmt = {
	"INSERT INTO batch_ops.credential AS c (owner, name, fields, options, sealed)"
	" VALUES ($1, $2, $3, $4, $5)"
	" ON CONFLICT (owner, name) DO UPDATE SET fields = EXCLUDED.fields,"
	" options = EXCLUDED.options, sealed = EXCLUDED.sealed,"
	" updated_at = pg_catalog.now()",
	SPI_OK_INSERT, 5, {OIDOID, TEXTOID, TEXTARRAYOID, JSONBOID, BYTEAOID}
};

/* the credentials of a name, whoever owns them */
static SpiStmt find_stmt = {
	"SELECT c.owner, c.grantees, c.name, c.options, c.sealed"
	" FROM batch_ops.credential c WHERE c.name" SQL_EQ "$1",
	SPI_OK_SELECT, 1, {TEXTOID}
};

static SpiStmt exists_stmt = {
	"SELECT 1 FROM batch_ops.credential c"
	" WHERE c.owner" SQL_EQ "$1 AND c.name" SQL_EQ "$2 FOR UPDATE",
	SPI_OK_SELECT, 2, {OIDOID, TEXTOID}
};

static SpiStmt drop_stmt = {
	"DELETE FROM batch_ops.credential c"
	" WHERE c.owner" SQL_EQ "$1 AND c.name" SQL_EQ "$2",
	SPI_OK_DELETE, 2, {OIDOID, TEXTOID}
};

static SpiStmt grant_stmt = {
	"UPDATE batch_ops.credential c SET grantees = CASE"
	" WHEN $3" SQL_EQ "ANY (c.grantees) THEN c.grantees"
	" ELSE pg_catalog.array_append(c.grantees, $3) END"
	" WHERE c.owner" SQL_EQ "$1 AND c.name" SQL_EQ "$2",
	SPI_OK_UPDATE, 3, {OIDOID, TEXTOID, OIDOID}
};

static SpiStmt revoke_stmt = {
	"UPDATE batch_ops.credential c"
	" SET grantees = pg_catalog.array_remove(c.grantees, $3)"
	" WHERE c.owner" SQL_EQ "$1 AND c.name" SQL_EQ "$2",
	SPI_OK_UPDATE, 3, {OIDOID, TEXTOID, OIDOID}
};

/* the view's rows: $1 the caller, $2 the caller is a superuser */
static SpiStmt list_stmt = {
	"SELECT c.name, pg_catalog.pg_get_userbyid(c.owner), c.fields,"
	" CASE WHEN $2 OR c.owner" SQL_EQ "$1 THEN ARRAY("
	"   SELECT pg_catalog.pg_get_userbyid(g)"
	"   FROM pg_catalog.unnest(c.grantees) g ORDER BY 1) END,"
	" c.created_at, c.updated_at"
	" FROM batch_ops.credential c"
	" WHERE $2 OR c.owner" SQL_EQ "$1 OR EXISTS ("
	"   SELECT FROM pg_catalog.unnest(c.grantees) g"
	"   WHERE pg_catalog.pg_has_role($1, g, 'USAGE'))"
	" ORDER BY 2, 1",
	SPI_OK_SELECT, 2, {OIDOID, BOOLOID}
};

/*
 * "owner.name": the owner (InvalidOid if no such role, or no ".") and the
 * name.  Names have no ".", role names may: split at the last one.
 */
static Oid
split_qualified(const char *name, char **rest)
{
	const char *dot = strrchr(name, '.');
	Oid			owner;

	*rest = "";
	if (dot == NULL || dot == name || dot[1] == '\0')
		return InvalidOid;
	owner = get_role_oid(pnstrdup(name, dot - name), true);
	if (OidIsValid(owner))
		*rest = pstrdup(dot + 1);
	return owner;
}

/*
 * The credential the caller manages under this name: its own "name", or
 * "owner.name" if the caller is that owner or a superuser.  ERROR 42704
 * if there is none (run connected to SPI).
 */
static void
managed_credential(const char *name, Oid caller, Oid *owner, char **cname)
{
	Datum		values[2];

	if (strchr(name, '.') == NULL)
	{
		*owner = caller;
		*cname = pstrdup(name);
	}
	else
	{
		*owner = split_qualified(name, cname);
		if (*owner != caller && !superuser_arg(caller))
			credential_not_found(name);
	}
	values[0] = ObjectIdGetDatum(*owner);
	values[1] = CStringGetTextDatum(*cname);
	if (!OidIsValid(*owner) || spi_exec(&exists_stmt, values, NULL) != 1)
		credential_not_found(name);
}

/* May the role use a credential with this owner and these grantees? */
static bool
may_use(Oid role, Oid owner, Datum grantees)
{
	ArrayType  *arr = DatumGetArrayTypeP(grantees);
	Datum	   *elems;
	int			n;
	int			i;

	if (role == owner || superuser_arg(role))
		return true;
	deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, NULL, &n);
	for (i = 0; i < n; i++)
		if (has_privs_of_role(role, DatumGetObjectId(elems[i])))
			return true;
	return false;
}

/* credential_set(name, secret, options) */
Datum
batch_ops_credential_set(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg(fcinfo, 0, "name");
	Oid			caller = GetUserId();
	Jsonb	   *secret;
	Jsonb	   *options;
	char	   *header;
	List	   *fields;
	StringInfo	plain;
	StringInfo	aad;
	bytea	   *sealed;
	Datum	   *field_datums;
	ListCell   *lc;
	int			i = 0;
	RoleSwitch	sw;
	Datum		values[5];

	check_name(name);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secret must not be null")));
	secret = PG_GETARG_JSONB_P(1);
	options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	if (options != NULL)
		check_options(options, &header);
	plain = secret_plaintext(secret, &fields);
	aad = credential_aad(caller, name);
	sealed = seal((unsigned char *) plain->data, plain->len,
				  (unsigned char *) aad->data, aad->len);
	/* now, and again by its reset callback (so not pfree'd) */
	explicit_bzero(plain->data, plain->maxlen);

	field_datums = palloc(sizeof(Datum) * list_length(fields));
	foreach(lc, fields)
		field_datums[i++] = CStringGetTextDatum((char *) lfirst(lc));
	values[0] = ObjectIdGetDatum(caller);
	values[1] = CStringGetTextDatum(name);
	values[2] = PointerGetDatum(construct_array(field_datums, i, TEXTOID, -1,
												false, TYPALIGN_INT));
	values[3] = options ? JsonbPGetDatum(options) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	values[4] = PointerGetDatum(sealed);
	credential_table_begin(&sw);
	spi_exec(&set_stmt, values, NULL);
	credential_table_end(&sw);
	PG_RETURN_VOID();
}

/* credential_drop(name): true once dropped; 42704 if not the caller's. */
Datum
batch_ops_credential_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg(fcinfo, 0, "name");
	Oid			caller = GetUserId();	/* before the switch to the owner */
	Oid			owner;
	char	   *cname;
	RoleSwitch	sw;
	Datum		values[2];
	uint64		n;

	credential_table_begin(&sw);
	managed_credential(name, caller, &owner, &cname);
	values[0] = ObjectIdGetDatum(owner);
	values[1] = CStringGetTextDatum(cname);
	n = spi_exec(&drop_stmt, values, NULL);
	credential_table_end(&sw);
	PG_RETURN_BOOL(n > 0);
}

/* Grant or revoke: the same shape. */
static void
credential_acl(FunctionCallInfo fcinfo, SpiStmt *stmt)
{
	char	   *name = text_arg(fcinfo, 0, "name");
	Oid			caller = GetUserId();	/* before the switch to the owner */
	Oid			grantee;
	Oid			owner;
	char	   *cname;
	RoleSwitch	sw;
	Datum		values[3];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("grantee must not be null")));
	grantee = PG_GETARG_OID(1);
	credential_table_begin(&sw);
	managed_credential(name, caller, &owner, &cname);
	values[0] = ObjectIdGetDatum(owner);
	values[1] = CStringGetTextDatum(cname);
	values[2] = ObjectIdGetDatum(grantee);
	spi_exec(stmt, values, NULL);
	credential_table_end(&sw);
}

Datum
batch_ops_credential_grant(PG_FUNCTION_ARGS)
{
	credential_acl(fcinfo, &grant_stmt);
	PG_RETURN_VOID();
}

Datum
batch_ops_credential_revoke(PG_FUNCTION_ARGS)
{
	credential_acl(fcinfo, &revoke_stmt);
	PG_RETURN_VOID();
}

/* credential_list(): the rows of the view batch_ops.credentials. */
Datum
batch_ops_credential_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			caller = GetUserId();
	RoleSwitch	sw;
	Datum		args[2];
	Datum		values[6];
	bool		nulls[6];
	uint64		r;

	InitMaterializedSRF(fcinfo, 0);
	args[0] = ObjectIdGetDatum(caller);
	args[1] = BoolGetDatum(superuser_arg(caller));
	credential_table_begin(&sw);
	spi_exec(&list_stmt, args, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		int			a;

		for (a = 0; a < 6; a++)
			values[a] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
									  a + 1, &nulls[a]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	credential_table_end(&sw);
	return (Datum) 0;
}

/* One row of find_stmt's result, copied out of SPI. */
typedef struct FoundCredential
{
	Oid			owner;
	char	   *name;
	Jsonb	   *options;
	bytea	   *sealed;
} FoundCredential;

static void
found_copy(HeapTuple tup, TupleDesc desc, FoundCredential *f)
{
	bool		isnull;

	f->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	f->name = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	f->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	f->sealed = DatumGetByteaPCopy(SPI_getbinval(tup, desc, 5, &isnull));
}

/*
 * Find the credential the role means by name (see the file header), copied
 * into the caller's context; ERROR 42704 if there is none it may use.
 */
static void
find_usable(const char *name, Oid role, FoundCredential *result)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	RoleSwitch	sw;
	Datum		values[1];
	char	   *cname = (char *) name;
	Oid			only_owner = InvalidOid;
	int			own = -1;
	int			other = -1;
	int			n_other = 0;
	int			pick;
	uint64		r;

	if (strchr(name, '.') != NULL)
	{
		only_owner = split_qualified(name, &cname);
		if (!OidIsValid(only_owner))
			credential_not_found(name);
	}
	values[0] = CStringGetTextDatum(cname);
	credential_table_begin(&sw);
	spi_exec(&find_stmt, values, NULL);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		grantees = SPI_getbinval(tup, desc, 2, &isnull);

		if (OidIsValid(only_owner) && owner != only_owner)
			continue;
		if (owner == role)
			own = r;
		else if (may_use(role, owner, grantees))
		{
			other = r;
			n_other++;
		}
	}
	if (own < 0 && n_other > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
				 errmsg("credential name \"%s\" is ambiguous", name),
				 errdetail("More than one role has a credential of this name that you may use."),
				 errhint("Name it as owner.name.")));
	pick = own >= 0 ? own : other;
	if (pick < 0)
		credential_not_found(name);
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		found_copy(SPI_tuptable->vals[pick], SPI_tuptable->tupdesc, result);
		MemoryContextSwitchTo(spi_cxt);
	}
	credential_table_end(&sw);
}

OutboundSecret *
credential_fetch(const char *name, Oid role)
{
	FoundCredential f;
	OutboundSecret *secret = palloc0(sizeof(OutboundSecret));
	StringInfo	aad;
	unsigned char *plain;
	size_t		len;
	char	   *header;

	find_usable(name, role, &f);
	aad = credential_aad(f.owner, f.name);
	plain = unseal(f.sealed, (unsigned char *) aad->data, aad->len, &len,
				   psprintf("credential \"%s\"", name));
	secret_parse(plain, len, secret, name);
	/* not pfree'd: its reset callback wipes it (again) with the context */
	explicit_bzero(plain, len);
	check_options(f.options, &header);
	secret->api_key_header = header;
	return secret;
}
