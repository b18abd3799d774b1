/* test_pack_load.c — the load-time packers (pack_ref.h) against the
 * reference packers, byte for byte:
 *   fast        tk_pack_<type>_pack (what the engine calls), the portable
 *               tk_pack_<type>_pack_words and, where this CPU allows it,
 *               tk_pack_<type>_pack_avx512, each against
 *               tk_pack_<type>_pack_ref on the same
 *               random file rows (every byte value, so every scale, min,
 *               nibble and high-bit pattern) write identical groups, for
 *               each layout, on awkward shapes: one block, odd block
 *               counts, the model widths; rows padded to odd strides;
 *               source and destination at odd addresses; F16 lengths that
 *               are not a multiple of 4 (the tail);
 *   bounds      neither writes a byte outside its group_size(n) bytes
 *               (guard bytes before and after stay as filled);
 *   installed   the pack pointer of every layout's reference traits and
 *               of every ISA variant's table this CPU runs
 *               (tk_quant_isa_traits) writes the reference packer's bytes
 *               too: what the engine calls at load is what was checked.
 */
#include "testutil.h"

#include "engine/pack_f16.h"
#include "engine/pack_q4_k.h"
#include "engine/pack_q6_k.h"
#include "engine/pack_ref.h"
#include "engine/quant.h"
#include "engine/quant_pack.h"
#include "engine/quant_simd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS TK_PACK_ROWS
#define GUARD 67 /* bytes before and after each group, and a misalignment */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

struct layout {
	int type;
	const char *name;
	tk_pack_fn fast, words, avx512, ref;
	const int64_t *ns; /* element counts to try, 0-terminated */
};

#if defined(__x86_64__)
#define AVX512(f) f
#else
#define AVX512(f) NULL
#endif

static const int64_t ns_q8_0[] = { 32, 96, 160, 1536, 2048, 5632, 0 };
static const int64_t ns_k[] = { 256, 768, 1536, 2304, 0 };
static const int64_t ns_f16[] = { 1, 2, 3, 4, 5, 7, 13, 64, 67, 1536, 2050, 0 };

static const struct layout layouts[] = {
	{ TK_TYPE_Q8_0, "q8_0", tk_pack_q8_0_pack, tk_pack_q8_0_pack_words,
	  AVX512(tk_pack_q8_0_pack_avx512), tk_pack_q8_0_pack_ref, ns_q8_0 },
	{ TK_TYPE_Q4_K, "q4_k", tk_pack_q4_k_pack, tk_pack_q4_k_pack_words,
	  AVX512(tk_pack_q4_k_pack_avx512), tk_pack_q4_k_pack_ref, ns_k },
	{ TK_TYPE_Q6_K, "q6_k", tk_pack_q6_k_pack, tk_pack_q6_k_pack_words,
	  AVX512(tk_pack_q6_k_pack_avx512), tk_pack_q6_k_pack_ref, ns_k },
	{ TK_TYPE_F16, "f16", tk_pack_f16_pack, tk_pack_f16_pack_words,
	  AVX512(tk_pack_f16_pack_avx512), tk_pack_f16_pack_ref, ns_f16 },
};

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(tk_test_rng_u64(&rng_state) >> 56);
}

/* Packs 16 random rows of n elements (stride row_bytes, the source at
 * offset src_off of its buffer) with pack into a buffer whose group
 * starts at dst_off, the rest of the buffer 0xA5; returns the buffer
 * (GUARD + group + GUARD bytes past dst_off's start) for comparison. */
static unsigned char *pack_into(tk_pack_fn pack, const unsigned char *rows, size_t row_bytes,
				int64_t n, size_t gsize, size_t dst_off)
{
	const size_t len = dst_off + gsize + GUARD;
	unsigned char *buf = tk_test_xmalloc(len);
	memset(buf, 0xA5, len);
	pack(buf + dst_off, rows, row_bytes, n);
	return buf;
}

static void check_layout(const struct layout *L, tk_pack_fn other, const char *other_name)
{
	const struct tk_pack_traits *pt = tk_pack_traits_ref(L->type);
	assert_non_null(pt);
	for (const int64_t *np = L->ns; *np; np++) {
		const int64_t n = *np;
		size_t rb = 0;
		assert_int_equal(tk_type_row_size(L->type, n, &rb), 0);
		const size_t gsize = pt->group_size(n);
		assert_true(gsize > 0);
		/* strides: exact, padded by an odd count, padded by a page */
		const size_t strides[] = { rb, rb + 13, rb + 4096 + 1 };
		for (size_t si = 0; si < sizeof strides / sizeof strides[0]; si++) {
			const size_t stride = strides[si];
			for (size_t off = 0; off < 2; off++) {
				const size_t src_off = off ? 3 : 0, dst_off = GUARD + (off ? 1 : 0);
				const size_t src_len = src_off + (ROWS - 1) * stride + rb;
				unsigned char *src = tk_test_xmalloc(src_len);
				fill_random(src, src_len);
				unsigned char *want = pack_into(L->ref, src + src_off, stride, n, gsize, dst_off);
				unsigned char *got = pack_into(other, src + src_off, stride, n, gsize, dst_off);
				const size_t len = dst_off + gsize + GUARD;
				size_t bad = len;
				for (size_t i = 0; i < len && bad == len; i++)
					if (want[i] != got[i])
						bad = i;
				if (bad != len)
					fail_msg("%s %s: n %lld stride %zu src+%zu dst+%zu: byte %zu of the group "
						 "is %u, the reference wrote %u",
						 L->name, other_name, (long long)n, stride, src_off,
						 dst_off, bad - dst_off, got[bad], want[bad]);
				/* the guards: nothing written outside the group */
				for (size_t i = 0; i < dst_off; i++)
					assert_int_equal(got[i], 0xA5);
				for (size_t i = dst_off + gsize; i < len; i++)
					assert_int_equal(got[i], 0xA5);
				free(want);
				free(got);
				free(src);
			}
		}
	}
}

static void test_fast(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
		check_layout(&layouts[i], layouts[i].fast, "dispatched");
		check_layout(&layouts[i], layouts[i].words, "words");
	}
}

static void test_avx512(void **state)
{
	(void)state;
	if (!tk_pack_load_avx512(4096)) {
		print_message("avx512 packers not allowed here (CPU, build or TANUKI_NO_*): skipped\n");
		skip();
	}
	for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
		check_layout(&layouts[i], layouts[i].avx512, "avx512");
}

/* The packer each table hands the engine: the reference traits', then
 * each ISA variant's this CPU runs. */
static void test_installed(void **state)
{
	(void)state;
	static struct tk_type_traits tab[TK_TYPE_COUNT];
	for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
		const struct layout *L = &layouts[i];
		check_layout(L, tk_pack_traits_ref(L->type)->pack, "ref traits");
		for (int isa = 0; isa < TK_QUANT_ISA_COUNT; isa++) {
			if (tk_quant_isa_traits(isa, tab)) {
				printf("# %s: variant %s not supported here, skipped\n", L->name,
				       tk_quant_isa_name(isa));
				continue;
			}
			const struct tk_pack_traits *pt = tab[L->type].pack;
			if (!pt) /* that variant does not pack this type */
				continue;
			assert_non_null(pt->pack);
			check_layout(L, pt->pack, tk_quant_isa_name(isa));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast),
		cmocka_unit_test(test_avx512),
		cmocka_unit_test(test_installed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
