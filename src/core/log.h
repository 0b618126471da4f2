/*
 * log.h — structured log lines for AfterSMTP daemons:
 *
 *   2026-11-22T13:03:00.123Z aftersmtpd[812]: level=info session=3f2a peer=127.0.0.1 msg="connected"
 *
 * One line per event, written with a single write(2) (lines are capped at
 * LOG_LINE_MAX so they stay atomic on pipes), `key=value` after the level.
 * Text that came from a peer never goes into a line raw: log_quote() turns
 * it into a quoted, escaped, UTF-8-validated and truncated token
 * (STYLE.md "Logs").  Thread-safe: each line is built on the stack.
 */
#ifndef AMP_LOG_H
#define AMP_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define LOG_LINE_MAX 2048u
#define LOG_QUOTE_IN_MAX 200u /* peer bytes shown before truncation */
/* Worst case of log_quote: every byte as \xNN, quotes, the ellipsis. */
#define LOG_QUOTE_MAX (LOG_QUOTE_IN_MAX * 4u + 8u)

typedef enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_NOTICE,
	LOG_WARN,
	LOG_ERR,
	LOG_CRIT,
} log_level;

/* Where lines go (a file descriptor, e.g. 2), the least level written and
 * the program name.  Before log_init: stderr, info, "aftersmtp". */
void log_init(int fd, log_level min, const char *program);
void log_set_level(log_level min);
/* "debug", "info", "notice", "warn", "err", "crit" */
bool log_level_parse(const char *s, log_level *level_r);
const char *log_level_name(log_level level);

/* Write one line: the caller's text after "level=NAME ".  The text is
 * cut at LOG_LINE_MAX (marked with "…"); newlines in it become spaces so a
 * line is always one line. */
void log_msg(log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Quote len bytes of peer-supplied data into out (LOG_QUOTE_MAX bytes):
 * "…" with \" \\ escaped, control bytes and invalid UTF-8 as \xNN, valid
 * UTF-8 kept, at most LOG_QUOTE_IN_MAX input bytes then "...".  Returns
 * out, so it can be used as a printf argument. */
const char *log_quote(const void *data, size_t len, char out[LOG_QUOTE_MAX]);

#endif
