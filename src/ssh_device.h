/*-------------------------------------------------------------------------
 *
 * ssh_device.h
 *	  The ssh driver's device types (driver_ssh.c): how a CLI prompts, turns
 *	  paging off, enters and leaves enable and configuration mode, and
 *	  complains; and the text handling the ssh transport (ssh_engine.c)
 *	  applies to what a device prints.  Nothing here does I/O or throws for
 *	  anything a device sends.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BATCH_OPS_SSH_DEVICE_H
#define BATCH_OPS_SSH_DEVICE_H

#include "lib/stringinfo.h"

#include "outbound_driver.h"

typedef struct SshDeviceType
{
	const char *name;			/* connection_args.device_type */
	bool		shell;			/* an interactive shell; else exec channels */
	const char *paging_off;		/* sent once per session; NULL: none */
	const char *enable;			/* enters enable mode; NULL: none */
	const char *config_enter;
	const char *config_leave;
	const char *prompt_ends;	/* a prompt's last character is one of these */
	const char *const *errors;	/* a line starting so is a complaint */
} SshDeviceType;

#define SSH_DEFAULT_DEVICE_TYPE "cisco_ios"
#define SSH_MAX_PROMPT 128

/* The device type of a target (its connection_args.device_type). */
extern const SshDeviceType *ssh_device_type(const OutboundTarget *target);

/*
 * Does buf end with a prompt?  base: the prompt learned from the session's
 * first one ("sw1"), or "" before that.  Returns the offset where the
 * prompt's line starts, or -1.
 */
extern int	ssh_prompt_start(const SshDeviceType *dt, const char *buf, int len,
							 const char *base);

/* The base of a prompt line ("sw1(config)#" -> "sw1") into base. */
extern void ssh_prompt_base(const char *line, int len, char *base, int size);

/* The prompt's mode character ('>' user, '#' enable), 0 if none. */
extern char ssh_prompt_mode(const char *buf, int start, int len);

/* Does buf end in a password prompt ("Password:")? */
extern bool ssh_password_prompt(const char *buf, int len);

/*
 * A pager's marker (" --More-- ") at the end of buf: its offset, else -1.
 * ssh_erase_length: how many leading bytes of what follows a pager's
 * marker are the device erasing it (backspaces, blanks, CR).
 */
extern int	ssh_more_start(const char *buf, int len);
extern int	ssh_erase_length(const char *buf, int len);

/*
 * What a command printed, from what came back before the prompt: the echo
 * of the command (its first line) removed, CR LF as LF.  palloc'd.
 */
extern char *ssh_output_text(const char *buf, int len, const char *sent);

/* The first line of output the device type counts as a complaint, or NULL. */
extern char *ssh_device_complaint(const SshDeviceType *dt, const char *output);

/* Replace each occurrence of secret in s (in place) with '*'. */
extern void ssh_mask_secret(char *s, const char *secret);

#endif							/* BATCH_OPS_SSH_DEVICE_H */
