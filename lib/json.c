/*
 * JSON: one strict RFC 8259 pass over a webhook body that validates it and picks out
 * the few facts the queue indexes (update_id, the update's kind, its chat id).
 *
 * The body comes from the network, so the scanner never recurses (nesting is an
 * explicit stack of at most JSON_MAX_DEPTH frames), never allocates, never reads past
 * buf + len (the buffer is not NUL-terminated and may hold NUL bytes), does linear work
 * and keeps all of its state on the caller's stack so threads can share it freely.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tgq.h"

/* What an object is to us: where it sits decides which of its keys matter. */
enum role {
	ROLE_PLAIN,
	ROLE_TOP,		/* the update itself */
	ROLE_KIND,		/* update.<kind> */
	ROLE_CHAT,		/* update.<kind>.chat */
	ROLE_MSG,		/* update.<kind>.message */
	ROLE_MSG_CHAT,		/* update.<kind>.message.chat */
};

/* What the value about to be scanned is to us, decided by its parent and key. */
enum slot {
	SLOT_PLAIN,
	SLOT_TOP,		/* the document's single value */
	SLOT_UPDATE_ID,
	SLOT_TOP_MEMBER,	/* any other top-level member: a kind candidate */
	SLOT_KIND_CHAT,
	SLOT_KIND_MESSAGE,
	SLOT_CHAT_ID,
	SLOT_MSG_CHAT,
	SLOT_MSG_CHAT_ID,
};

enum update_id_state {
	UPDATE_ID_OK,
	UPDATE_ID_NOT_INTEGER,
	UPDATE_ID_OUT_OF_RANGE,
};

struct frame {
	unsigned char	 is_object;
	unsigned char	 role;		/* enum role */
};

struct number {
	int	 is_integer;		/* no fraction, no exponent */
	int	 in_range;		/* fits in int64_t (meaningful for integers) */
	int64_t	 value;
};

/*
 * Stands for a key byte that came from a non-ASCII character: no key we look for and
 * no valid kind contains it, and 0xff never occurs in UTF-8, so it cannot collide.
 */
#define KEY_NON_ASCII 0xff

struct scanner {
	const unsigned char	*buf;
	size_t			 len;
	size_t			 pos;
	int			 max_depth;
	int			 depth;
	struct frame		 stack[JSON_MAX_DEPTH];
	char			*err;
	size_t			 errlen;
	struct update_info	*info;

	/*
	 * The last object key, unescaped.  Every name we compare with and every valid
	 * kind is shorter than the buffer, so a key that fills it is just "too long"
	 * (key_len stays at sizeof(key)) and its tail need not be kept.
	 */
	unsigned char		 key[JSON_KIND_MAX];
	size_t			 key_len;

	int			 top_is_object;
	int			 update_id_count;
	enum update_id_state	 update_id_state;
	int			 kind_taken;
	/* Only the first occurrence of each key we look into counts. */
	int			 seen_kind_chat;
	int			 seen_kind_message;
	int			 seen_chat_id;
	int			 seen_msg_chat;
	int			 seen_msg_chat_id;
	int			 has_msg_chat_id;
	int64_t			 msg_chat_id;
};

static int	fail(struct scanner *, const char *, ...) TGQ_PRINTF(2, 3);

static int
fail(struct scanner *s, const char *fmt, ...)
{
	va_list ap;

	if (s->err != NULL && s->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
syntax_error(struct scanner *s)
{
	if (s->pos >= s->len)
		return fail(s, "invalid JSON: unexpected end at byte %zu", s->pos);
	return fail(s, "invalid JSON at byte %zu", s->pos);
}

/* The byte at pos, or -1 at the end: every read goes through here or checks len. */
static int
peek(const struct scanner *s)
{
	return s->pos < s->len ? s->buf[s->pos] : -1;
}

static void
skip_whitespace(struct scanner *s)
{
	int c;

	while ((c = peek(s)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		s->pos++;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
first_time(int *seen)
{
	if (*seen)
		return 0;
	*seen = 1;
	return 1;
}

static void
key_append(struct scanner *s, unsigned char c)
{
	if (s->key_len < sizeof(s->key))
		s->key[s->key_len++] = c;
}

static int
key_is(const struct scanner *s, const char *name)
{
	size_t n = strlen(name);

	return n < sizeof(s->key) && s->key_len == n && memcmp(s->key, name, n) == 0;
}

/* A kind is stored in the queue and shown to handlers, so it must be a plain name. */
static int
key_is_kind_name(const struct scanner *s)
{
	size_t i;

	if (s->key_len == 0 || s->key_len >= sizeof(s->key))
		return 0;
	for (i = 0; i < s->key_len; i++) {
		unsigned char c = s->key[i];

		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_'))
			return 0;
	}
	return 1;
}

/*
 * The length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or 0: this
 * rejects overlong forms, encoded surrogates, code points above U+10FFFF, stray
 * continuation bytes and sequences cut short by the end of the buffer.
 */
static size_t
utf8_sequence_length(const unsigned char *p, size_t avail)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

size_t
utf8_char_len(const char *p, size_t avail)
{
	const unsigned char *u = (const unsigned char *)p;

	if (avail == 0)
		return 0;
	if (u[0] < 0x80)
		return 1;
	return utf8_sequence_length(u, avail);
}

/* The one strict UTF-8 check: ASCII, or sequences of table 3-7. */
int
utf8_valid(const char *buf, size_t len)
{
	size_t at = 0, n;

	while (at < len) {
		if ((n = utf8_char_len(buf + at, len - at)) == 0)
			return 0;
		at += n;
	}
	return 1;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned	 v = 0;
	int		 i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * A \uXXXX escape at buf[at] (inside len): its code unit, or -1 when there is none.
 */
static long
escaped_unit(const char *buf, size_t len, size_t at)
{
	unsigned u;

	if (len - at < 6 || buf[at] != '\\' || buf[at + 1] != 'u' ||
	    hex4(buf + at + 2, &u) == -1)
		return -1;
	return (long)u;
}

size_t
json_replace_lone_surrogates(char *buf, size_t len)
{
	size_t	 at = 0, replaced = 0;
	long	 u, next;

	while (at < len) {
		if (buf[at] != '\\' || at + 1 >= len) {
			at++;
			continue;
		}
		if ((u = escaped_unit(buf, len, at)) == -1) {
			at += 2;	/* \" \\ \n ...: the next byte is not an escape */
			continue;
		}
		if (u >= 0xd800 && u <= 0xdbff) {
			next = escaped_unit(buf, len, at + 6);
			if (next >= 0xdc00 && next <= 0xdfff) {
				at += 12;	/* a pair: one character */
				continue;
			}
		} else if (u < 0xdc00 || u > 0xdfff) {
			at += 6;
			continue;
		}
		memcpy(buf + at, "\\ufffd", 6);
		replaced++;
		at += 6;
	}
	return replaced;
}

/*
 * The escape after a backslash.  Any four hex digits are accepted, lone surrogates
 * (\ud800 without its pair) included: SQLite's JSON functions accept them too, and
 * the body is stored as the bytes received, never decoded into UTF-8 by us.
 */
static int
scan_escape(struct scanner *s, int is_key)
{
	unsigned int	 code = 0;
	int		 c = peek(s), digit, i;

	switch (c) {
	case '"':
	case '\\':
	case '/':
		code = (unsigned int)c;
		break;
	case 'b':
		code = '\b';
		break;
	case 'f':
		code = '\f';
		break;
	case 'n':
		code = '\n';
		break;
	case 'r':
		code = '\r';
		break;
	case 't':
		code = '\t';
		break;
	case 'u':
		for (i = 0; i < 4; i++) {
			s->pos++;
			if ((digit = hex_value(peek(s))) < 0)
				return syntax_error(s);
			code = code * 16 + (unsigned int)digit;
		}
		break;
	default:
		return syntax_error(s);
	}
	s->pos++;
	if (is_key)
		key_append(s, code < 0x80 ? (unsigned char)code : KEY_NON_ASCII);
	return 0;
}

/* A string starting at pos (on its quote); a key is also unescaped into s->key. */
static int
scan_string(struct scanner *s, int is_key)
{
	size_t	 n;
	int	 c;

	s->pos++;
	if (is_key)
		s->key_len = 0;
	for (;;) {
		c = peek(s);
		if (c < 0)
			return syntax_error(s);
		if (c == '"') {
			s->pos++;
			return 0;
		}
		if (c == '\\') {
			s->pos++;
			if (scan_escape(s, is_key) == -1)
				return -1;
			continue;
		}
		if (c < 0x20)
			return syntax_error(s);
		if (c < 0x80) {
			if (is_key)
				key_append(s, (unsigned char)c);
			s->pos++;
			continue;
		}
		n = utf8_sequence_length(s->buf + s->pos, s->len - s->pos);
		if (n == 0)
			return fail(s, "invalid UTF-8 at byte %zu", s->pos);
		if (is_key)
			key_append(s, KEY_NON_ASCII);
		s->pos += n;
	}
}

static int
scan_digits(struct scanner *s)
{
	if (!is_digit(peek(s)))
		return syntax_error(s);
	while (is_digit(peek(s)))
		s->pos++;
	return 0;
}

/*
 * A number per the RFC grammar.  The integer part is accumulated as a magnitude
 * against the limit of its sign, so INT64_MIN is reachable and nothing overflows.
 */
static int
scan_number(struct scanner *s, struct number *num)
{
	uint64_t	 magnitude = 0, limit = INT64_MAX;
	int		 negative = 0, c;

	num->is_integer = 1;
	num->in_range = 1;
	num->value = 0;
	if (peek(s) == '-') {
		negative = 1;
		limit = (uint64_t)INT64_MAX + 1;
		s->pos++;
	}
	c = peek(s);
	if (c == '0')
		s->pos++;
	else if (c >= '1' && c <= '9') {
		while (is_digit(c = peek(s))) {
			unsigned int digit = (unsigned int)(c - '0');

			if (magnitude > (limit - digit) / 10)
				num->in_range = 0;
			else
				magnitude = magnitude * 10 + digit;
			s->pos++;
		}
	} else
		return syntax_error(s);
	if (peek(s) == '.') {
		num->is_integer = 0;
		s->pos++;
		if (scan_digits(s) == -1)
			return -1;
	}
	c = peek(s);
	if (c == 'e' || c == 'E') {
		num->is_integer = 0;
		s->pos++;
		c = peek(s);
		if (c == '+' || c == '-')
			s->pos++;
		if (scan_digits(s) == -1)
			return -1;
	}
	if (num->in_range) {
		if (!negative)
			num->value = (int64_t)magnitude;
		else if (magnitude == limit)
			num->value = INT64_MIN;
		else
			num->value = -(int64_t)magnitude;
	}
	return 0;
}

static int
scan_literal(struct scanner *s, const char *word)
{
	for (; *word != '\0'; word++) {
		if (peek(s) != (unsigned char)*word)
			return syntax_error(s);
		s->pos++;
	}
	return 0;
}

/* Records what a number means where it stands. */
static void
note_number(struct scanner *s, enum slot slot, const struct number *num)
{
	int usable = num->is_integer && num->in_range;

	switch (slot) {
	case SLOT_UPDATE_ID:
		if (!num->is_integer)
			s->update_id_state = UPDATE_ID_NOT_INTEGER;
		else if (!num->in_range)
			s->update_id_state = UPDATE_ID_OUT_OF_RANGE;
		else {
			s->update_id_state = UPDATE_ID_OK;
			s->info->update_id = num->value;
		}
		break;
	case SLOT_CHAT_ID:
		if (usable) {
			s->info->has_chat_id = 1;
			s->info->chat_id = num->value;
		}
		break;
	case SLOT_MSG_CHAT_ID:
		if (usable) {
			s->has_msg_chat_id = 1;
			s->msg_chat_id = num->value;
		}
		break;
	default:
		break;
	}
}

/* Records a value that is not a number (string, literal, array, object). */
static void
note_non_number(struct scanner *s, enum slot slot)
{
	if (slot == SLOT_UPDATE_ID)
		s->update_id_state = UPDATE_ID_NOT_INTEGER;
}

static int
scan_scalar(struct scanner *s, enum slot slot)
{
	struct number	 num;
	int		 c = peek(s), rc;

	if (c == '-' || is_digit(c)) {
		if (scan_number(s, &num) == -1)
			return -1;
		note_number(s, slot, &num);
		return 0;
	}
	if (c == '"')
		rc = scan_string(s, 0);
	else if (c == 't')
		rc = scan_literal(s, "true");
	else if (c == 'f')
		rc = scan_literal(s, "false");
	else if (c == 'n')
		rc = scan_literal(s, "null");
	else
		return syntax_error(s);
	if (rc == 0)
		note_non_number(s, slot);
	return rc;
}

/*
 * The kind is the first object-valued top-level member (other than update_id) and
 * only that one: a later member never replaces it, even when the first one's name is
 * not a valid kind.  Keys are compared after unescaping, so "mess\u0061ge" is the
 * kind "message".  An object whose name is not a valid kind is not looked into: the
 * chat id is <kind>.chat.id, and there is no <kind> to report it under.
 */
static enum role
take_kind(struct scanner *s)
{
	if (!first_time(&s->kind_taken) || !key_is_kind_name(s))
		return ROLE_PLAIN;
	memcpy(s->info->kind, s->key, s->key_len);
	s->info->kind[s->key_len] = '\0';
	return ROLE_KIND;
}

static enum role
object_role(struct scanner *s, enum slot slot)
{
	switch (slot) {
	case SLOT_TOP:
		return ROLE_TOP;
	case SLOT_TOP_MEMBER:
		return take_kind(s);
	case SLOT_KIND_CHAT:
		return ROLE_CHAT;
	case SLOT_KIND_MESSAGE:
		return ROLE_MSG;
	case SLOT_MSG_CHAT:
		return ROLE_MSG_CHAT;
	default:
		return ROLE_PLAIN;
	}
}

/* The depth check comes first, so "[[[[..." fails after max_depth bytes. */
static int
open_container(struct scanner *s, enum slot slot, int is_object)
{
	struct frame *f;

	if (s->depth >= s->max_depth)
		return fail(s, "nested deeper than %d", s->max_depth);
	if (slot == SLOT_TOP)
		s->top_is_object = is_object;
	note_non_number(s, slot);
	f = &s->stack[s->depth++];
	f->is_object = (unsigned char)is_object;
	f->role = (unsigned char)(is_object ? object_role(s, slot) : ROLE_PLAIN);
	s->pos++;
	return 0;
}

static enum slot
member_slot(struct scanner *s, enum role role)
{
	switch (role) {
	case ROLE_TOP:
		if (key_is(s, "update_id")) {
			s->update_id_count++;
			return SLOT_UPDATE_ID;
		}
		return SLOT_TOP_MEMBER;
	case ROLE_KIND:
		if (key_is(s, "chat") && first_time(&s->seen_kind_chat))
			return SLOT_KIND_CHAT;
		if (key_is(s, "message") && first_time(&s->seen_kind_message))
			return SLOT_KIND_MESSAGE;
		return SLOT_PLAIN;
	case ROLE_CHAT:
		if (key_is(s, "id") && first_time(&s->seen_chat_id))
			return SLOT_CHAT_ID;
		return SLOT_PLAIN;
	case ROLE_MSG:
		if (key_is(s, "chat") && first_time(&s->seen_msg_chat))
			return SLOT_MSG_CHAT;
		return SLOT_PLAIN;
	case ROLE_MSG_CHAT:
		if (key_is(s, "id") && first_time(&s->seen_msg_chat_id))
			return SLOT_MSG_CHAT_ID;
		return SLOT_PLAIN;
	default:
		return SLOT_PLAIN;
	}
}

/* Positions pos on the next element of the innermost container and says what it is. */
static int
begin_element(struct scanner *s, enum slot *slot)
{
	const struct frame *f = &s->stack[s->depth - 1];

	if (!f->is_object) {
		*slot = SLOT_PLAIN;
		return 0;
	}
	skip_whitespace(s);
	if (peek(s) != '"')
		return syntax_error(s);
	if (scan_string(s, 1) == -1)
		return -1;
	skip_whitespace(s);
	if (peek(s) != ':')
		return syntax_error(s);
	s->pos++;
	*slot = member_slot(s, (enum role)f->role);
	return 0;
}

/*
 * Starts the value at pos.  A scalar is consumed whole (*complete = 1); a container
 * is opened and, unless it is empty, left waiting for its first element.
 */
static int
begin_value(struct scanner *s, enum slot *slot, int *complete)
{
	int c, close;

	skip_whitespace(s);
	c = peek(s);
	if (c != '{' && c != '[') {
		*complete = 1;
		return scan_scalar(s, *slot);
	}
	if (open_container(s, *slot, c == '{') == -1)
		return -1;
	close = c == '{' ? '}' : ']';
	skip_whitespace(s);
	if (peek(s) == close) {
		s->pos++;
		s->depth--;
		*complete = 1;
		return 0;
	}
	*complete = 0;
	return begin_element(s, slot);
}

/*
 * After a value: closes every container that ends here.  Either another element
 * follows (*finished = 0, *slot says what it is) or the document is over.
 */
static int
end_value(struct scanner *s, enum slot *slot, int *finished)
{
	const struct frame	*f;
	int			 c;

	for (;;) {
		skip_whitespace(s);
		if (s->depth == 0) {
			if (s->pos != s->len)
				return syntax_error(s);
			*finished = 1;
			return 0;
		}
		f = &s->stack[s->depth - 1];
		c = peek(s);
		if (c == ',') {
			s->pos++;
			*finished = 0;
			return begin_element(s, slot);
		}
		if (c != (f->is_object ? '}' : ']'))
			return syntax_error(s);
		s->pos++;
		s->depth--;
	}
}

static int
scan_document(struct scanner *s)
{
	enum slot	 slot = SLOT_TOP;
	int		 complete, finished;

	for (;;) {
		if (begin_value(s, &slot, &complete) == -1)
			return -1;
		if (!complete)
			continue;
		if (end_value(s, &slot, &finished) == -1)
			return -1;
		if (finished)
			return 0;
	}
}

/* The update's own rules, checked once the whole body is known to be JSON. */
static int
check_update(struct scanner *s)
{
	if (!s->top_is_object)
		return fail(s, "top level is not an object");
	if (s->update_id_count == 0)
		return fail(s, "update_id missing");
	if (s->update_id_count > 1)
		return fail(s, "update_id given twice");
	if (s->update_id_state == UPDATE_ID_NOT_INTEGER)
		return fail(s, "update_id is not an integer");
	if (s->update_id_state == UPDATE_ID_OUT_OF_RANGE)
		return fail(s, "update_id out of range");
	/* <kind>.chat.id wins over <kind>.message.chat.id wherever each appears. */
	if (!s->info->has_chat_id && s->has_msg_chat_id) {
		s->info->has_chat_id = 1;
		s->info->chat_id = s->msg_chat_id;
	}
	return 0;
}

int
json_scan_update(const char *buf, size_t len, int max_depth,
    struct update_info *info, char *err, size_t errlen)
{
	struct scanner s;

	memset(&s, 0, sizeof(s));
	s.err = err;
	s.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (info == NULL)
		return fail(&s, "no update_info given");
	memset(info, 0, sizeof(*info));
	if (max_depth < 1 || max_depth > JSON_MAX_DEPTH)
		return fail(&s, "max_depth must be 1-%d", JSON_MAX_DEPTH);
	if (buf == NULL && len > 0)
		return fail(&s, "no buffer given");
	s.buf = (const unsigned char *)buf;
	s.len = len;
	s.max_depth = max_depth;
	s.info = info;
	if (scan_document(&s) == -1 || check_update(&s) == -1)
		return -1;
	return 0;
}
