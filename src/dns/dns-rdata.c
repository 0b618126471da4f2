/*
 * dns-rdata.c — see dns-rdata.h.  Every decoder reads only within
 * [rd, rd + len) and writes only within the buffer it is given; a name
 * is read label by label with its wire length counted against
 * DNS_NAME_WIRE_MAX, so no input makes it loop or overrun.
 */
#include "dns-rdata.h"

#include <netinet/in.h>
#include <string.h>

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

static int fail(const char **why_r, const char *why)
{
	if (why_r != NULL)
		*why_r = why;
	return -1;
}

/* ------------------------------------------------------------ names */

bool dns_name_ok(const char *name, bool service, const char **why_r)
{
	const char *why = NULL;
	size_t total = 0, label = 0;
	char prev = '.';

	if (name == NULL || name[0] == '\0') {
		why = "empty name";
		goto bad;
	}
	for (const char *p = name;; p++) {
		char c = *p;
		if (c == '.' || c == '\0') {
			if (label == 0) {
				why = c == '\0' ? "trailing dot" : "empty label";
				goto bad;
			}
			if (prev == '-') {
				why = "label ends with '-'";
				goto bad;
			}
			if (c == '\0')
				break;
			label = 0;
			prev = '.';
			total++;
			continue;
		}
		if (c == '-') {
			if (label == 0) {
				why = "label starts with '-'";
				goto bad;
			}
		} else if (!(is_alnum(c) || (service && c == '_'))) {
			why = "character not allowed in a host name";
			goto bad;
		}
		if (++label > DNS_LABEL_MAX) {
			why = "label over 63 characters";
			goto bad;
		}
		if (++total > DNS_NAME_MAX) {
			why = "name over 253 characters";
			goto bad;
		}
		prev = c;
	}
	return true;
bad:
	if (why_r != NULL)
		*why_r = why;
	return false;
}

int dns_name_decode(const uint8_t *wire, size_t len, size_t *used_r,
		    char out[DNS_NAME_BUF], const char **why_r)
{
	size_t pos = 0, o = 0;
	const char *why = NULL;

	for (;;) {
		if (pos >= len) {
			why = "name runs past the data";
			goto bad;
		}
		uint8_t l = wire[pos++];
		if ((l & 0xc0) == 0xc0) {
			why = "compression pointer in a name";
			goto bad;
		}
		if ((l & 0xc0) != 0) {
			why = "reserved label type";
			goto bad;
		}
		if (l == 0)
			break;
		/* the wire length with this label and the root label */
		if (pos + l + 1u > DNS_NAME_WIRE_MAX) {
			why = "name over 255 octets";
			goto bad;
		}
		if (l > len - pos) {
			why = "label runs past the data";
			goto bad;
		}
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			char c = (char)wire[pos + i];
			if (!(is_alnum(c) || c == '-' || c == '_')) {
				why = "octet not allowed in a host name";
				goto bad;
			}
			out[o++] = lower(c);
		}
		pos += l;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	*used_r = pos;
	return 0;
bad:
	out[0] = '\0';
	return fail(why_r, why);
}

/* -------------------------------------------------------------- MX */

int dns_mx_decode(const uint8_t *rd, size_t len, unsigned *pref_r,
		  char host[DNS_NAME_BUF], const char **why_r)
{
	size_t used;

	host[0] = '\0';
	if (len < 3)
		return fail(why_r, "MX rdata too short");
	if (dns_name_decode(rd + 2, len - 2, &used, host, why_r) != 0)
		return -1;
	if (used != len - 2) {
		host[0] = '\0';
		return fail(why_r, "bytes after the MX exchange");
	}
	*pref_r = (unsigned)rd[0] << 8 | rd[1];
	return 0;
}

/* ------------------------------------------------------------ TLSA */

int dns_tlsa_decode(const uint8_t *rd, size_t len, uint8_t *usage_r,
		    uint8_t *selector_r, uint8_t *mtype_r,
		    const uint8_t **data_r, size_t *data_len_r,
		    const char **why_r)
{
	if (len < 4)
		return fail(why_r, "TLSA rdata too short");
	if (len - 3 > DNS_TLSA_DATA_MAX)
		return fail(why_r, "TLSA association data over 1024 octets");
	*usage_r = rd[0];
	*selector_r = rd[1];
	*mtype_r = rd[2];
	*data_r = rd + 3;
	*data_len_r = len - 3;
	return 0;
}

/* ------------------------------------------------------------- TXT */

int dns_txt_decode(const uint8_t *rd, size_t len, char *out, size_t out_size,
		   size_t *out_len_r, const char **why_r)
{
	size_t pos = 0, o = 0;
	const char *why = NULL;

	if (len == 0) {
		why = "empty TXT rdata";
		goto bad;
	}
	while (pos < len) {
		size_t l = rd[pos++];
		if (l > len - pos) {
			why = "TXT string runs past the data";
			goto bad;
		}
		if (memchr(rd + pos, '\0', l) != NULL) {
			why = "NUL octet in TXT";
			goto bad;
		}
		/* room for the string and the final NUL */
		if (out_size == 0 || l >= out_size - o) {
			why = "TXT longer than the buffer";
			goto bad;
		}
		memcpy(out + o, rd + pos, l);
		o += l;
		pos += l;
	}
	out[o] = '\0';
	*out_len_r = o;
	return 0;
bad:
	if (out_size > 0)
		out[0] = '\0';
	return fail(why_r, why);
}

/* ---------------------------------------------------------- A, AAAA */

int dns_addr_decode(int type, const uint8_t *rd, size_t len,
		    struct sockaddr_storage *ss_r, const char **why_r)
{
	memset(ss_r, 0, sizeof(*ss_r));
	if (type == DNS_TYPE_A) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss_r;
		if (len != 4)
			return fail(why_r, "A rdata not 4 octets");
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, rd, 4);
		return 0;
	}
	if (type == DNS_TYPE_AAAA) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss_r;
		if (len != 16)
			return fail(why_r, "AAAA rdata not 16 octets");
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, rd, 16);
		return 0;
	}
	return fail(why_r, "not an address type");
}
