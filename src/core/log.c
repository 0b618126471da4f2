/*
 * log.c — see log.h.  Timestamps are UTC with milliseconds; a line is
 * assembled on the stack and written with one write(2).
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static log_level log_min = LOG_INFO;
static char log_program[32] = "aftersmtp";

static const char *const names[] = { "debug", "info", "notice",
				     "warn",  "err",  "crit" };

void log_init(int fd, log_level min, const char *program)
{
	log_fd = fd;
	log_min = min;
	snprintf(log_program, sizeof(log_program), "%s", program);
}

void log_set_level(log_level min)
{
	log_min = min;
}

bool log_level_parse(const char *s, log_level *level_r)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*level_r = (log_level)i;
			return true;
		}
	}
	return false;
}

const char *log_level_name(log_level level)
{
	return (unsigned)level < sizeof(names) / sizeof(names[0]) ? names[level]
								  : "?";
}

void log_msg(log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX + 8];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, LOG_LINE_MAX,
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: level=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, log_program,
			 (long)getpid(), log_level_name(level));
	if (n < 0)
		return;
	size_t len = (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(line + len, LOG_LINE_MAX - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= LOG_LINE_MAX - len) {
		len = LOG_LINE_MAX - 1;
		memcpy(line + len - 3, "\xe2\x80\xa6", 3); /* … */
	} else {
		len += (size_t)n;
	}
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[len++] = '\n';
	while (write(log_fd, line, len) < 0 && errno == EINTR)
		;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t avail)
{
	uint32_t cp;
	return util_utf8_seq(p, avail, &cp);
}

const char *log_quote(const void *data, size_t len, char out[LOG_QUOTE_MAX])
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = data;
	size_t n = len > LOG_QUOTE_IN_MAX ? LOG_QUOTE_IN_MAX : len, o = 0;
	out[o++] = '"';
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t u = utf8_len(p + i, n - i);
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
			i++;
		} else if (u == 1 && c >= 0x20 && c != 0x7f) {
			out[o++] = (char)c;
			i++;
		} else if (u > 1) {
			memcpy(out + o, p + i, u);
			o += u;
			i += u;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
			i++;
		}
	}
	if (len > n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
