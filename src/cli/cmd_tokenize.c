/* cmd_tokenize.c — `tanuki tokenize`: the token ids of a text under a GGUF
 * model's tokenizer (and, with --json, each token's piece of text). */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/err.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki tokenize --model M.gguf (--text TEXT | --file F)\n"
	"                       [--no-bos] [--parse-special] [--json]\n\n"
	"Prints the token ids of TEXT (or of the contents of file F; \"-\" reads\n"
	"standard input) under the model's tokenizer, space separated on one\n"
	"line. BOS is added when the model asks for it, unless --no-bos.\n"
	"--parse-special turns the text of special tokens (\"<s>\",\n"
	"\"<|im_start|>\", ...) into their ids. Input is capped at 4 MiB. --json\n"
	"prints {\"ids\":[...],\"pieces\":[...]} with each token's decoded text\n"
	"(invalid UTF-8 in a piece, e.g. one byte of a character, shows as U+FFFD).";

/* JSON string body: escapes, and U+FFFD for ill-formed UTF-8. */
static void put_json_str(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	putchar('"');
	for (size_t i = 0; i < n;) {
		int r = tk_utf8_check(u + i, n - i);
		if (r <= 0) {
			fputs("\\ufffd", stdout);
			i += r < 0 ? (size_t)-r : n - i;
			continue;
		}
		unsigned char c = u[i];
		if (r > 1)
			fwrite(u + i, 1, (size_t)r, stdout);
		else if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c < 0x20 || c == 0x7F)
			printf("\\u%04x", c);
		else
			putchar(c);
		i += (size_t)r;
	}
	putchar('"');
}

int cli_cmd_tokenize(int argc, char **argv)
{
	const char *model = NULL, *text = NULL, *file = NULL;
	bool json = false, no_bos = false, parse_special = false;
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "text", required_argument, NULL, 't' },
		{ "file", required_argument, NULL, 'f' },
		{ "no-bos", no_argument, NULL, 'B' },
		{ "parse-special", no_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+m:t:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 't': text = optarg; break;
		case 'f': file = optarg; break;
		case 'B': no_bos = true; break;
		case 'S': parse_special = true; break;
		case 'j': json = true; break;
		case 'h': puts(usage); return CLI_OK;
		default: return cli_usage_error("tokenize", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
	if (!model)
		return cli_usage_error("tokenize", "--model is required");
	if (!text == !file)
		return cli_usage_error("tokenize", "give exactly one of --text and --file");

	int ret = CLI_FAIL;
	struct tk_buf input = TK_BUF_INIT(TK_TOK_MAX_INPUT_BYTES);
	struct tk_gguf *g = NULL;
	struct tk_tokenizer *t = NULL;
	int32_t *ids = NULL;
	size_t n = 0;
	if (file && tk_buf_append_file(&input, file)) {
		cli_fail("tokenize", "reading the text");
		goto out;
	}
	const char *s = file ? tk_buf_str(&input) : text;
	size_t len = file ? input.len : strlen(text);

	g = tk_gguf_open(model);
	if (!g) {
		cli_fail("tokenize", "opening %s", model);
		goto out;
	}
	t = tk_tokenizer_from_gguf(g);
	if (!t) {
		cli_fail("tokenize", "loading the tokenizer of %s", model);
		goto out;
	}
	struct tk_tok_encode_opts eo = {
		.bos = no_bos ? TK_TOK_BOS_NONE : TK_TOK_BOS_DEFAULT,
		.parse_special = parse_special,
	};
	if (tk_tokenizer_encode(t, s, len, &eo, &ids, &n)) {
		cli_fail("tokenize", "tokenizing");
		goto out;
	}
	if (json) {
		fputs("{\"ids\":[", stdout);
		for (size_t i = 0; i < n; i++)
			printf("%s%d", i ? "," : "", (int)ids[i]);
		fputs("],\"pieces\":[", stdout);
		for (size_t i = 0; i < n; i++) {
			const char *p;
			size_t pl;
			tk_tokenizer_piece(t, ids[i], TK_TOK_DECODE_SPECIAL, &p, &pl);
			if (i)
				putchar(',');
			put_json_str(p, pl);
		}
		fputs("]}\n", stdout);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s%d", i ? " " : "", (int)ids[i]);
		putchar('\n');
	}
	ret = fflush(stdout) ? CLI_FAIL : CLI_OK;
out:
	free(ids);
	tk_tokenizer_free(t);
	tk_gguf_close(g);
	tk_buf_free(&input);
	return ret;
}
