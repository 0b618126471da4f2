/*
 * mail-date.h — RFC 5322 §3.3 date-time: a parser (with the obsolete
 * forms of §4.3) and a formatter.  Pure: no I/O, no allocation, no locale,
 * no time zone database, no logging.
 *
 * Parsed: [day-of-week ","] day month year hour ":" minute [":" second]
 * zone, with comments and folding white space (CR, LF, blanks) allowed
 * between any two tokens (obs-FWS / CFWS).  Accepted obsolete forms (they
 * set MAIL_DATE_OBS):
 *  - 2-digit years (< 50: 20xx, else 19xx) and 3-digit years (+ 1900);
 *  - a 1-digit hour;
 *  - zones UT, GMT, EST, EDT, CST, CDT, MST, MDT, PST, PDT (any case);
 *  - military one-letter zones, and any other alphabetic zone of at most
 *    5 letters (CEST...), and no zone at all: taken as -0000, offset 0
 *    and MAIL_DATE_ZONE_UNKNOWN (RFC 5322 §4.3: the military letters were
 *    defined wrongly in RFC 822).
 * "-0000" itself gives offset 0 and MAIL_DATE_ZONE_UNKNOWN (§3.3: local
 * time, zone unknown).  Refused: a missing or misspelt month, a day that
 * the month does not have (30 Feb), hour > 23, minute > 59, second > 60
 * (60 is a leap second: it counts as 00 of the next minute), years before
 * 1900 or after 9999, a zone beyond +-99:59, anything but comments after
 * the zone.  The day of the week is not checked against the date.
 */
#ifndef AMP_MAIL_DATE_H
#define AMP_MAIL_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MAIL_DATE_OBS 0x1u          /* an obsolete form was used */
#define MAIL_DATE_ZONE_UNKNOWN 0x2u /* -0000, military, unknown, missing */

/* "Sun, 22 Nov 2026 10:00:00 +0000" and its NUL. */
#define MAIL_DATE_FORMAT_SIZE 32u

typedef struct mail_date {
	time_t t;        /* the instant, UTC unix seconds */
	int zone;        /* the zone as written, minutes east of UTC */
	unsigned flags;  /* MAIL_DATE_* */
} mail_date;

/* Parse s[0..len) (a Date: value, folded or not); false if it is not a
 * date-time. */
bool mail_date_parse(const uint8_t *s, size_t len, mail_date *date_r)
	__attribute__((warn_unused_result));

/* t as "Sun, 22 Nov 2026 10:00:00 +0000" (UTC, English names, no locale)
 * into out; false (out "" if out_size > 0) when out_size is below
 * MAIL_DATE_FORMAT_SIZE or the year is outside 1900..9999. */
bool mail_date_format(time_t t, char *out, size_t out_size)
	__attribute__((warn_unused_result));

#endif
