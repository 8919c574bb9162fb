/*
 * A small JSON writer for --json output.  Every string goes through one escaping
 * routine that writes as it goes, so there is no size to compute that could drift
 * from what is written.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void
jw_init(struct jsonw *w, FILE *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
}

/* Before a value: the comma that separates it from the previous one. */
static void
jw_value(struct jsonw *w)
{
	if (w->need_comma[w->depth])
		fputc(',', w->out);
	w->need_comma[w->depth] = 1;
}

static void
jw_open(struct jsonw *w, char c)
{
	jw_value(w);
	fputc(c, w->out);
	if (w->depth < (int)(sizeof(w->need_comma) / sizeof(w->need_comma[0])) - 1)
		w->depth++;
	w->need_comma[w->depth] = 0;
	w->closer[w->depth] = c == '{' ? '}' : ']';
}

void
jw_object(struct jsonw *w)
{
	jw_open(w, '{');
}

void
jw_array(struct jsonw *w)
{
	jw_open(w, '[');
}

/* Closes the innermost container; the caller knows which kind it opened. */
void
jw_end(struct jsonw *w)
{
	if (w->depth == 0)
		return;
	fputc(w->closer[w->depth], w->out);
	w->depth--;
}

static void
jw_escaped(struct jsonw *w, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', w->out);
	for (; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", w->out);
			break;
		case '\\':
			fputs("\\\\", w->out);
			break;
		case '\n':
			fputs("\\n", w->out);
			break;
		case '\r':
			fputs("\\r", w->out);
			break;
		case '\t':
			fputs("\\t", w->out);
			break;
		default:
			if (*p < 0x20)
				fprintf(w->out, "\\u%04x", *p);
			else
				fputc(*p, w->out);
		}
	}
	fputc('"', w->out);
}

void
jw_key(struct jsonw *w, const char *key)
{
	jw_value(w);
	jw_escaped(w, key);
	fputc(':', w->out);
	/* The value that follows needs no comma of its own. */
	w->need_comma[w->depth] = 0;
}

void
jw_string(struct jsonw *w, const char *s)
{
	if (s == NULL) {
		jw_null(w);
		return;
	}
	jw_value(w);
	jw_escaped(w, s);
}

void
jw_int(struct jsonw *w, int64_t v)
{
	jw_value(w);
	fprintf(w->out, "%lld", (long long)v);
}

void
jw_bool(struct jsonw *w, int v)
{
	jw_value(w);
	fputs(v ? "true" : "false", w->out);
}

void
jw_null(struct jsonw *w)
{
	jw_value(w);
	fputs("null", w->out);
}

void
jw_raw(struct jsonw *w, const char *json)
{
	if (json == NULL) {
		jw_null(w);
		return;
	}
	jw_value(w);
	fputs(json, w->out);
}

void
jw_finish(struct jsonw *w)
{
	fputc('\n', w->out);
}
