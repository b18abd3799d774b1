/*
 * tokenizer_gguf.c — the glue from a GGUF file's tokenizer.ggml.* metadata
 * to the neutral description tk_tokenizer_new() takes.
 *
 * Keys read (all under tokenizer.ggml.):
 *   model (string, required: "llama" or "gpt2"), pre (string), tokens
 *   (string array, required), scores (float32 or int32 array), token_type
 *   (int32 array), merges (string array, required for gpt2), bos_token_id,
 *   eos_token_id, eot_token_id, unknown_token_id, padding_token_id,
 *   add_bos_token, add_eos_token, add_space_prefix; and general.name (the
 *   Phi-3 special-token quirk keys on it, as llama.cpp does).
 *
 * Owns nothing after return: the arrays built here are freed once the
 * tokenizer has copied them.
 */
#include "engine/tokenizer.h"

#include "core/err.h"
#include "engine/gguf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define K "tokenizer.ggml."

/* Optional u32 id: absent keeps *out; present must be an integer. */
static int get_id(const struct tk_gguf *g, const char *key, int64_t *out)
{
	uint32_t v;
	int rc = tk_gguf_get_u32(g, key, &v);
	if (rc == TK_ENOENT)
		return 0;
	if (rc)
		return rc;
	*out = v;
	return 0;
}

static int get_flag(const struct tk_gguf *g, const char *key, int *out)
{
	bool b;
	int rc = tk_gguf_get_bool(g, key, &b);
	if (rc == TK_ENOENT)
		return 0;
	if (rc)
		return rc;
	*out = b ? TK_TOK_FLAG_ON : TK_TOK_FLAG_OFF;
	return 0;
}

/* Fills strs/lens from a string array. */
static int get_strs(const struct tk_gguf *g, const char *key, const char ***strs,
		    size_t **lens, size_t *n)
{
	struct tk_gguf_arr a;
	int rc = tk_gguf_get_arr(g, key, &a);
	if (rc)
		return rc;
	if (a.type != TK_GGUF_STRING)
		return tk_errf(TK_EFORMAT, "tokenizer: %s: array of %s, expected strings", key,
			       tk_gguf_type_name(a.type));
	*strs = malloc((a.n ? a.n : 1) * sizeof **strs);
	*lens = malloc((a.n ? a.n : 1) * sizeof **lens);
	if (!*strs || !*lens)
		return tk_errf(TK_ENOMEM, "tokenizer: out of memory for %s", key);
	for (size_t i = 0; i < a.n; i++) {
		rc = tk_gguf_arr_get_str(&a, i, &(*strs)[i], &(*lens)[i]);
		if (rc)
			return tk_err_wrap(rc, "tokenizer: %s[%zu]", key, i);
	}
	*n = a.n;
	return 0;
}

static bool name_is_phi3(const struct tk_gguf *g)
{
	const char *name;
	size_t len;
	if (tk_gguf_get_str(g, "general.name", &name, &len))
		return false;
	char low[128];
	size_t n = len < sizeof low - 1 ? len : sizeof low - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[n] = '\0';
	return strstr(low, "phi-3") || strstr(low, "phi3");
}

struct tk_tokenizer *tk_tokenizer_from_gguf(const struct tk_gguf *g)
{
	struct tk_tok_desc d;
	tk_tok_desc_init(&d);
	struct tk_tokenizer *t = NULL;
	const char **tokens = NULL, **merges = NULL;
	size_t *token_lens = NULL, *merge_lens = NULL;
	float *scores = NULL;
	int32_t *types = NULL;
	size_t n = 0, n_merges = 0;
	int rc;

	const char *model;
	rc = tk_gguf_get_str(g, K "model", &model, NULL);
	if (rc == TK_ENOENT) {
		tk_errf(TK_EFORMAT, "tokenizer: no " K "model key");
		goto out;
	}
	if (rc)
		goto out;
	if (!strcmp(model, "llama")) {
		d.kind = TK_TOK_SPM;
	} else if (!strcmp(model, "gpt2")) {
		d.kind = TK_TOK_BPE;
	} else {
		tk_errf(TK_EUNSUPPORTED, "tokenizer: " K "model '%.64s' is not supported (llama, gpt2)",
			model);
		goto out;
	}
	rc = tk_gguf_get_str(g, K "pre", &d.pre, NULL);
	if (rc && rc != TK_ENOENT)
		goto out;

	rc = get_strs(g, K "tokens", &tokens, &token_lens, &n);
	if (rc == TK_ENOENT)
		tk_errf(TK_EFORMAT, "tokenizer: no " K "tokens key");
	if (rc)
		goto out;
	if (n == 0) {
		tk_errf(TK_EFORMAT, "tokenizer: " K "tokens is empty");
		goto out;
	}

	struct tk_gguf_arr a;
	rc = tk_gguf_get_arr(g, K "scores", &a);
	if (rc == 0) {
		if (a.n < n) {
			tk_errf(TK_EFORMAT, "tokenizer: " K "scores has %zu entries for %zu tokens", a.n, n);
			goto out;
		}
		scores = malloc(n * sizeof *scores);
		if (!scores) {
			tk_errf(TK_ENOMEM, "tokenizer: out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			int32_t iv;
			if (tk_gguf_arr_get_f32(&a, i, &scores[i]) == 0)
				continue;
			if (tk_gguf_arr_get_i32(&a, i, &iv)) {
				tk_errf(TK_EFORMAT, "tokenizer: " K "scores[%zu]: expected float32 or int32", i);
				goto out;
			}
			scores[i] = (float)iv;
		}
		d.scores = scores;
	} else if (rc != TK_ENOENT) {
		goto out;
	}

	rc = tk_gguf_get_arr(g, K "token_type", &a);
	if (rc == 0) {
		if (a.n < n) {
			tk_errf(TK_EFORMAT, "tokenizer: " K "token_type has %zu entries for %zu tokens",
				a.n, n);
			goto out;
		}
		types = malloc(n * sizeof *types);
		if (!types) {
			tk_errf(TK_ENOMEM, "tokenizer: out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (tk_gguf_arr_get_i32(&a, i, &types[i])) {
				tk_err_wrap(TK_EFORMAT, "tokenizer: " K "token_type[%zu]", i);
				goto out;
			}
		}
		d.types = types;
	} else if (rc != TK_ENOENT) {
		goto out;
	}

	if (d.kind == TK_TOK_BPE) {
		rc = get_strs(g, K "merges", &merges, &merge_lens, &n_merges);
		if (rc == TK_ENOENT)
			tk_errf(TK_EFORMAT, "tokenizer: no " K "merges key (required for gpt2)");
		if (rc)
			goto out;
		d.merges = merges;
		d.merge_lens = merge_lens;
		d.n_merges = n_merges;
	}

	if (get_id(g, K "bos_token_id", &d.bos_id) || get_id(g, K "eos_token_id", &d.eos_id) ||
	    get_id(g, K "eot_token_id", &d.eot_id) || get_id(g, K "unknown_token_id", &d.unk_id) ||
	    get_id(g, K "padding_token_id", &d.pad_id) ||
	    get_flag(g, K "add_bos_token", &d.add_bos) || get_flag(g, K "add_eos_token", &d.add_eos) ||
	    get_flag(g, K "add_space_prefix", &d.add_space_prefix))
		goto out;
	d.special_rstrip = name_is_phi3(g);
	d.n_tokens = n;
	d.tokens = tokens;
	d.token_lens = token_lens;
	t = tk_tokenizer_new(&d);
out:
	free(tokens);
	free(token_lens);
	free(merges);
	free(merge_lens);
	free(scores);
	free(types);
	return t;
}
