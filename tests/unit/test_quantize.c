/* test_quantize.c — engine/quantize.h: the scheme table, llama-quantize's
 * per-tensor type rules on model shapes we care about (a 32-layer GQA-8
 * llama, Qwen2.5-Coder-1.5B's 28 layers, tied embeddings, rows that do not
 * split into 256-element blocks), and tk_quantize_file() against
 * llama-quantize's fixture file (byte for byte) and on bad input.
 *
 * The expected layer lists are written out by hand from llama.cpp's rule
 * (the first and last eighth of the layers, and every third layer in
 * between counted from n/8, get Q6_K in the *_M mixes), not computed by the
 * code under test. */
#include "testutil.h"

#include "core/err.h"
#include "engine/quant.h"
#include "engine/quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ttype(const char *scheme, const struct tk_quant_model_info *mi, const char *name,
		 int64_t ne0, bool pure)
{
	const struct tk_quant_scheme *s = tk_quant_scheme_find(scheme);
	assert_non_null(s);
	const int64_t ne[2] = { ne0, 1024 };
	return tk_quant_tensor_type(s, mi, name, 2, ne, TK_TYPE_F16, pure);
}

static bool in_list(int i, const int *list, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (list[k] == i)
			return true;
	return false;
}

static void test_schemes(void **state)
{
	(void)state;
	const struct tk_quant_scheme *s = tk_quant_scheme_find("q4_k_m");
	assert_non_null(s);
	assert_string_equal(tk_quant_scheme_name(s), "Q4_K_M");
	assert_int_equal(tk_quant_scheme_file_type(s), 15);
	assert_int_equal(tk_quant_scheme_file_type(tk_quant_scheme_find("Q5_K_M")), 17);
	assert_int_equal(tk_quant_scheme_file_type(tk_quant_scheme_find("Q6_K")), 18);
	assert_int_equal(tk_quant_scheme_file_type(tk_quant_scheme_find("IQ4_NL")), 25);
	assert_int_equal(tk_quant_scheme_file_type(tk_quant_scheme_find("BF16")), 32);
	assert_null(tk_quant_scheme_find("Q4_K"));
	assert_null(tk_quant_scheme_find(""));
	assert_null(tk_quant_scheme_find(NULL));
	/* every listed name resolves */
	char names[512];
	snprintf(names, sizeof names, "%s", tk_quant_scheme_names());
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save), n++)
		assert_non_null(tk_quant_scheme_find(tok));
	assert_int_equal(n, 18);
}

/* A Llama-3-8B-shaped model: 32 layers, GQA 8, separate output. */
static void test_rules_llama32(void **state)
{
	(void)state;
	const struct tk_quant_model_info mi = { .n_layer = 32, .n_attn_v = 32, .n_gqa = 8,
						.has_output = true };
	static const int more[] = { 0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31 };
	char name[64];
	for (int i = 0; i < 32; i++) {
		const bool m = in_list(i, more, sizeof more / sizeof more[0]);
		snprintf(name, sizeof name, "blk.%d.attn_v.weight", i);
		assert_int_equal(ttype("Q4_K_M", &mi, name, 4096, false), m ? TK_TYPE_Q6_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q5_K_M", &mi, name, 4096, false), m ? TK_TYPE_Q6_K : TK_TYPE_Q5_K);
		assert_int_equal(ttype("Q4_K_S", &mi, name, 4096, false), i < 4 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q3_K_M", &mi, name, 4096, false), i < 2 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q2_K", &mi, name, 4096, false), TK_TYPE_Q4_K); /* GQA >= 4 */
		assert_int_equal(ttype("IQ4_NL", &mi, name, 4096, false), TK_TYPE_Q5_K);
		snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
		assert_int_equal(ttype("Q4_K_M", &mi, name, 14336, false), m ? TK_TYPE_Q6_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q5_K_M", &mi, name, 14336, false), m ? TK_TYPE_Q6_K : TK_TYPE_Q5_K);
		assert_int_equal(ttype("Q4_K_S", &mi, name, 14336, false), i < 4 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q3_K_M", &mi, name, 14336, false), i < 2 ? TK_TYPE_Q5_K : TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q2_K", &mi, name, 14336, false), TK_TYPE_Q3_K);
		assert_int_equal(ttype("IQ4_NL", &mi, name, 14336, false),
				 i < 4 ? TK_TYPE_Q5_K : TK_TYPE_IQ4_NL);
		/* the other matrices keep the default type */
		snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
		assert_int_equal(ttype("Q4_K_M", &mi, name, 4096, false), TK_TYPE_Q4_K);
		snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", i);
		assert_int_equal(ttype("Q5_K_M", &mi, name, 4096, false), TK_TYPE_Q5_K);
		snprintf(name, sizeof name, "blk.%d.attn_output.weight", i);
		assert_int_equal(ttype("Q4_K_M", &mi, name, 4096, false), TK_TYPE_Q4_K);
		assert_int_equal(ttype("Q2_K", &mi, name, 4096, false), TK_TYPE_Q3_K);
		assert_int_equal(ttype("Q3_K_L", &mi, name, 4096, false), TK_TYPE_Q5_K);
	}
	assert_int_equal(ttype("Q4_K_M", &mi, "output.weight", 4096, false), TK_TYPE_Q6_K);
	assert_int_equal(ttype("Q8_0", &mi, "output.weight", 4096, false), TK_TYPE_Q8_0);
	assert_int_equal(ttype("Q4_0", &mi, "output.weight", 4096, false), TK_TYPE_Q6_K);
	assert_int_equal(ttype("Q4_K_M", &mi, "token_embd.weight", 4096, false), TK_TYPE_Q4_K);
	/* --pure: the default type everywhere */
	assert_int_equal(ttype("Q4_K_M", &mi, "output.weight", 4096, true), TK_TYPE_Q4_K);
	assert_int_equal(ttype("Q4_K_M", &mi, "blk.0.attn_v.weight", 4096, true), TK_TYPE_Q4_K);
	/* float schemes have no rules */
	assert_int_equal(ttype("F16", &mi, "output.weight", 4096, false), TK_TYPE_F16);
	assert_int_equal(ttype("BF16", &mi, "blk.0.attn_v.weight", 4096, false), TK_TYPE_BF16);
}

/* Qwen2.5-Coder-1.5B: 28 layers, 12 heads / 2 KV heads (GQA 6). */
static void test_rules_qwen28(void **state)
{
	(void)state;
	const struct tk_quant_model_info mi = { .n_layer = 28, .n_attn_v = 28, .n_gqa = 6,
						.has_output = true };
	static const int more[] = { 0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27 };
	char name[64];
	int n6 = 0;
	for (int i = 0; i < 28; i++) {
		const bool m = in_list(i, more, sizeof more / sizeof more[0]);
		snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
		const int t = ttype("Q4_K_M", &mi, name, 8960, false);
		assert_int_equal(t, m ? TK_TYPE_Q6_K : TK_TYPE_Q4_K);
		n6 += t == TK_TYPE_Q6_K;
	}
	assert_int_equal(n6, 14);
}

/* Which tensors are weight matrices, tied embeddings, and rows that do not
 * split into the type's blocks. */
static void test_rules_special(void **state)
{
	(void)state;
	struct tk_quant_model_info mi = { .n_layer = 2, .n_attn_v = 2, .n_gqa = 2,
					  .has_output = true };
	const struct tk_quant_scheme *s = tk_quant_scheme_find("Q4_K_M");
	const int64_t ne1[1] = { 4096 }, ne2[2] = { 4096, 4096 };
	/* norms, biases and 1-D tensors are kept */
	assert_int_equal(tk_quant_tensor_type(s, &mi, "blk.0.attn_norm.weight", 1, ne1, TK_TYPE_F32, false),
			 TK_TYPE_F32);
	assert_int_equal(tk_quant_tensor_type(s, &mi, "blk.0.attn_q.bias", 1, ne1, TK_TYPE_F32, false),
			 TK_TYPE_F32);
	assert_int_equal(tk_quant_tensor_type(s, &mi, "output_norm.weight", 2, ne2, TK_TYPE_F32, false),
			 TK_TYPE_F32); /* a "_norm.weight" even if 2-D */
	assert_int_equal(tk_quant_tensor_type(s, &mi, "blk.0.ffn_gate_inp.weight", 2, ne2, TK_TYPE_F32,
					      false), TK_TYPE_F32);
	assert_int_equal(tk_quant_tensor_type(s, &mi, "rope_freqs", 2, ne2, TK_TYPE_F32, false),
			 TK_TYPE_F32);
	/* tied embeddings: token_embd plays the output's part */
	mi.has_output = false;
	assert_int_equal(ttype("Q4_K_M", &mi, "token_embd.weight", 4096, false), TK_TYPE_Q6_K);
	mi.has_output = true;
	/* rows of 320: not 256-blocks; llama-quantize's stand-ins */
	assert_int_equal(ttype("Q4_K_M", &mi, "blk.0.attn_q.weight", 320, false), TK_TYPE_Q5_0);
	assert_int_equal(ttype("Q5_K_M", &mi, "blk.0.attn_q.weight", 320, false), TK_TYPE_Q5_1);
	assert_int_equal(ttype("Q4_K_M", &mi, "blk.1.attn_v.weight", 320, false), TK_TYPE_Q8_0);
	assert_int_equal(ttype("Q2_K", &mi, "blk.0.attn_q.weight", 320, false), TK_TYPE_IQ4_NL);
	assert_int_equal(ttype("Q4_K_M", &mi, "output.weight", 320, false), TK_TYPE_Q8_0);
	/* rows of 48: not even 32-blocks: F16 */
	assert_int_equal(ttype("Q4_K_M", &mi, "blk.0.attn_q.weight", 48, false), TK_TYPE_F16);
	/* no stand-in exists for a 32-block type, or with --pure: an error */
	tk_err_clear();
	assert_int_equal(ttype("IQ4_NL", &mi, "blk.0.attn_q.weight", 48, false), -1);
	assert_int_equal(tk_err_last(), TK_EINVAL);
	assert_non_null(strstr(tk_err_detail(), "blk.0.attn_q.weight"));
	assert_int_equal(ttype("Q4_K_M", &mi, "blk.0.attn_q.weight", 320, true), -1);
}

/* tk_quantize_file on the f32 fixture: the same bytes as llama-quantize's
 * file; errors leave no output behind. */
static void test_file(void **state)
{
	(void)state;
	char dir[512], out[700], in[600], ref[600];
	tk_test_mkdtemp(dir, sizeof dir);
	snprintf(in, sizeof in, "%s/models/tiny-llama-f32.gguf", TK_FIXTURES);
	snprintf(out, sizeof out, "%s/q.gguf", dir);
	const struct tk_quantize_opts o = { .pure = false, .n_threads = 3 };
	const char *schemes[] = { "Q5_K_M", "Q4_0" };
	for (int k = 0; k < 2; k++) {
		assert_int_equal(tk_quantize_file(in, out, tk_quant_scheme_find(schemes[k]), &o), 0);
		snprintf(ref, sizeof ref, "%s/models/tiny-llama-%s.gguf", TK_FIXTURES, schemes[k]);
		size_t na, nb;
		char *a = tk_test_read_file(out, &na), *b = tk_test_read_file(ref, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na);
		free(a);
		free(b);
	}
	unlink(out);
	/* requantizing is refused */
	snprintf(in, sizeof in, "%s/models/tiny-llama-Q8_0.gguf", TK_FIXTURES);
	assert_int_equal(tk_quantize_file(in, out, tk_quant_scheme_find("Q4_K_M"), &o), TK_EUNSUPPORTED);
	assert_non_null(strstr(tk_err_detail(), "requantizing"));
	assert_int_equal(access(out, F_OK), -1);
	/* ... but the same scheme only copies */
	assert_int_equal(tk_quantize_file(in, out, tk_quant_scheme_find("Q8_0"), &o), 0);
	unlink(out);
	snprintf(in, sizeof in, "%s/nope.gguf", dir);
	assert_int_equal(tk_quantize_file(in, out, tk_quant_scheme_find("Q4_K_M"), &o), TK_ENOENT);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(tk_quantize_file(in, out, NULL, &o), TK_EINVAL);
	tk_test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schemes),
		cmocka_unit_test(test_rules_llama32),
		cmocka_unit_test(test_rules_qwen28),
		cmocka_unit_test(test_rules_special),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
