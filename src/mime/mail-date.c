/*
 * mail-date.c — RFC 5322 date-time parser and formatter (mail-date.h).
 *
 * A hand-written scanner: tokens are runs of digits or of letters, and
 * single ',', ':', '+', '-'; comments and folding white space between
 * them are skipped.  Numbers are read digit by digit with a digit cap
 * (never more than 4), so no overflow is possible.  Calendar arithmetic
 * is the proleptic Gregorian days-from-civil of H. Hinnant, on int64_t,
 * so neither timegm() nor the process time zone is involved.
 */
#include "mail-date.h"

#include <stdio.h>
#include <string.h>

static const char months[12][4] = { "jan", "feb", "mar", "apr", "may", "jun",
				    "jul", "aug", "sep", "oct", "nov", "dec" };
static const char days[7][4] = { "sun", "mon", "tue", "wed", "thu", "fri",
				 "sat" };
static const char Months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char Days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
				 "Sat" };

typedef struct scan {
	const uint8_t *s;
	size_t len, i;
} scan;

static bool is_alpha(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

static uint8_t lower(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + ('a' - 'A')) : ch;
}

/* Skip FWS and comments (nested, quoted pairs).  An unterminated comment
 * makes the date invalid: returns false. */
static bool skip_cfws(scan *sc)
{
	while (sc->i < sc->len) {
		uint8_t ch = sc->s[sc->i];
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			sc->i++;
		} else if (ch == '(') {
			size_t depth = 0;
			for (;;) {
				if (sc->i >= sc->len)
					return false;
				ch = sc->s[sc->i];
				if (ch == '\\' && sc->i + 1 < sc->len) {
					sc->i += 2;
					continue;
				}
				sc->i++;
				if (ch == '(')
					depth++;
				else if (ch == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
	return true;
}

/* Up to max digits; *n_r how many (0: none). */
static unsigned read_num(scan *sc, unsigned max, unsigned *n_r)
{
	unsigned v = 0, n = 0;
	while (sc->i < sc->len && is_digit(sc->s[sc->i]) && n < max) {
		v = v * 10 + (unsigned)(sc->s[sc->i] - '0');
		sc->i++;
		n++;
	}
	*n_r = n;
	return v;
}

/* A run of letters, lower-cased into w (at most 5 kept); its length. */
static size_t read_word(scan *sc, char w[6])
{
	size_t n = 0;
	while (sc->i < sc->len && is_alpha(sc->s[sc->i])) {
		if (n < 5)
			w[n] = (char)lower(sc->s[sc->i]);
		n++;
		sc->i++;
	}
	w[n < 5 ? n : 5] = '\0';
	return n;
}

static bool expect(scan *sc, uint8_t ch)
{
	if (!skip_cfws(sc) || sc->i >= sc->len || sc->s[sc->i] != ch)
		return false;
	sc->i++;
	return true;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned mdays(int64_t y, unsigned m)
{
	static const unsigned d[12] = { 31, 28, 31, 30, 31, 30,
					31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r,
			    unsigned *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = yoe + era * 400 + (m <= 2);
	*m_r = m;
	*d_r = d;
}

/* The obsolete alphabetic zones with a meaning (§4.3), in minutes. */
static bool named_zone(const char *w, int *zone_r)
{
	static const struct {
		const char *name;
		int zone;
	} z[] = {
		{ "ut", 0 },       { "gmt", 0 },      { "est", -5 * 60 },
		{ "edt", -4 * 60 }, { "cst", -6 * 60 }, { "cdt", -5 * 60 },
		{ "mst", -7 * 60 }, { "mdt", -6 * 60 }, { "pst", -8 * 60 },
		{ "pdt", -7 * 60 },
	};
	for (size_t k = 0; k < sizeof(z) / sizeof(z[0]); k++) {
		if (strcmp(w, z[k].name) == 0) {
			*zone_r = z[k].zone;
			return true;
		}
	}
	return false;
}

bool mail_date_parse(const uint8_t *s, size_t len, mail_date *date_r)
{
	scan sc = { s, len, 0 };
	unsigned flags = 0, n;
	char w[6];

	/* [day-of-week ","] */
	if (!skip_cfws(&sc))
		return false;
	if (sc.i < len && is_alpha(s[sc.i])) {
		size_t wl = read_word(&sc, w);
		bool ok = false;
		for (size_t k = 0; k < 7; k++)
			ok = ok || (wl == 3 && strcmp(w, days[k]) == 0);
		if (!ok || !expect(&sc, ','))
			return false;
	}
	/* day */
	if (!skip_cfws(&sc))
		return false;
	unsigned day = read_num(&sc, 2, &n);
	if (n == 0 || (sc.i < len && is_digit(s[sc.i])))
		return false;
	/* month */
	if (!skip_cfws(&sc))
		return false;
	size_t wl = read_word(&sc, w);
	unsigned month = 0;
	for (unsigned k = 0; k < 12; k++)
		if (wl == 3 && strcmp(w, months[k]) == 0)
			month = k + 1;
	if (month == 0)
		return false;
	/* year */
	if (!skip_cfws(&sc))
		return false;
	unsigned yv = read_num(&sc, 4, &n);
	if (n < 2 || (sc.i < len && is_digit(s[sc.i])))
		return false;
	int64_t year = yv;
	if (n == 2) {
		year += yv < 50 ? 2000 : 1900;
		flags |= MAIL_DATE_OBS;
	} else if (n == 3) {
		year += 1900;
		flags |= MAIL_DATE_OBS;
	}
	if (year < 1900 || day < 1 || day > mdays(year, month))
		return false;
	/* time-of-day */
	if (!skip_cfws(&sc))
		return false;
	unsigned hour = read_num(&sc, 2, &n);
	if (n == 0 || (sc.i < len && is_digit(s[sc.i])))
		return false;
	if (n == 1)
		flags |= MAIL_DATE_OBS;
	if (!expect(&sc, ':') || !skip_cfws(&sc))
		return false;
	unsigned minute = read_num(&sc, 2, &n), second = 0;
	if (n != 2 || (sc.i < len && is_digit(s[sc.i])))
		return false;
	if (!skip_cfws(&sc))
		return false;
	if (sc.i < len && s[sc.i] == ':') {
		sc.i++;
		if (!skip_cfws(&sc))
			return false;
		second = read_num(&sc, 2, &n);
		if (n != 2 || (sc.i < len && is_digit(s[sc.i])))
			return false;
	}
	if (hour > 23 || minute > 59 || second > 60)
		return false;
	/* zone */
	if (!skip_cfws(&sc))
		return false;
	int zone = 0;
	if (sc.i < len && (s[sc.i] == '+' || s[sc.i] == '-')) {
		bool neg = s[sc.i] == '-';
		sc.i++;
		unsigned z = read_num(&sc, 4, &n);
		if (n != 4 || (sc.i < len && is_digit(s[sc.i])) || z % 100 > 59)
			return false;
		zone = (int)(z / 100 * 60 + z % 100);
		if (neg) {
			if (zone == 0)
				flags |= MAIL_DATE_ZONE_UNKNOWN;
			zone = -zone;
		}
	} else if (sc.i < len && is_alpha(s[sc.i])) {
		wl = read_word(&sc, w);
		if (wl > 5)
			return false;
		flags |= MAIL_DATE_OBS;
		if (!named_zone(w, &zone))
			flags |= MAIL_DATE_ZONE_UNKNOWN; /* military, other */
	} else {
		flags |= MAIL_DATE_OBS | MAIL_DATE_ZONE_UNKNOWN; /* none */
	}
	if (!skip_cfws(&sc) || sc.i != len)
		return false;

	int64_t t = days_from_civil(year, month, day) * 86400 +
		    (int64_t)hour * 3600 + (int64_t)minute * 60 + second -
		    (int64_t)zone * 60;
	if ((int64_t)(time_t)t != t)
		return false;
	date_r->t = (time_t)t;
	date_r->zone = zone;
	date_r->flags = flags;
	return true;
}

bool mail_date_format(time_t t, char *out, size_t out_size)
{
	if (out_size > 0)
		out[0] = '\0';
	if (out_size < MAIL_DATE_FORMAT_SIZE)
		return false;
	int64_t tt = (int64_t)t;
	int64_t dd = tt / 86400, sec = tt % 86400;
	if (sec < 0) {
		sec += 86400;
		dd--;
	}
	int64_t y;
	unsigned m, d;
	civil_from_days(dd, &y, &m, &d);
	if (y < 1900 || y > 9999)
		return false;
	int64_t wd = (dd + 4) % 7; /* 1970-01-01 was a Thursday */
	if (wd < 0)
		wd += 7;
	int r = snprintf(out, out_size, "%s, %02u %s %04d %02d:%02d:%02d +0000",
			 Days[wd], d, Months[m - 1], (int)y, (int)(sec / 3600),
			 (int)(sec / 60 % 60), (int)(sec % 60));
	if (r < 0 || (size_t)r >= out_size) {
		out[0] = '\0';
		return false;
	}
	return true;
}
