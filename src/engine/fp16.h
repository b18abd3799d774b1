/*
 * fp16.h — IEEE half precision (binary16) and bfloat16 <-> float conversions.
 *
 * Pure functions, header-only, any thread. The storage type of both formats is
 * a uint16_t holding the bit pattern (little-endian in GGUF files).
 *
 * Rounding: float -> half and float -> bfloat16 round to nearest, ties to
 * even, the same as the F16C instruction (VCVTPS2PH with imm 0) and as
 * llama.cpp's conversions, so weights and F16-rounded activations come out
 * bit-identical to theirs.
 *   - half: overflow goes to +-inf; values below the smallest subnormal
 *     round to +-0; subnormals are produced exactly; NaN stays NaN (quiet,
 *     top payload bits kept).
 *   - bfloat16: the upper 16 bits of the float, rounded; NaN is kept quiet
 *     (bit 6 of the result forced on) so that rounding cannot turn it into
 *     inf; subnormals are kept, not flushed.
 * half -> float and bfloat16 -> float are exact.
 */
#ifndef TK_ENGINE_FP16_H
#define TK_ENGINE_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t tk_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float tk_f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* binary16 -> float, exact. */
static inline float tk_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t man = h & 0x3ffu;
	if (exp == 0x1f) /* inf or NaN: keep the payload */
		return tk_f32_from_bits(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return tk_f32_from_bits(sign);
		/* subnormal: man * 2^-24, exact in float */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return tk_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float -> binary16, round to nearest even. */
static inline uint16_t tk_fp32_to_fp16(float f)
{
	uint32_t u = tk_f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t abs = u & 0x7fffffffu;
	if (abs > 0x7f800000u) /* NaN: quiet, keep top payload bits */
		return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
	if (abs >= 0x477ff000u) /* >= 65520 rounds to inf (65504 is the max) */
		return (uint16_t)(sign | 0x7c00u);
	if (abs < 0x38800000u) {
		/* result is subnormal or zero: value / 2^-24, rounded to even.
		 * abs < 2^-14 so the scaled value is < 1024 and exact in float
		 * up to the rounding we want; do it in integers to be exact. */
		uint32_t e = abs >> 23; /* biased float exponent, <= 112 */
		if (e < 102)            /* < 2^-25: rounds to 0 (ties too) */
			return sign;
		uint32_t m = (abs & 0x7fffffu) | 0x800000u; /* 24-bit significand */
		/* value = m * 2^(e-150); in units of 2^-24: m * 2^(e-126) */
		uint32_t shift = 126 - e; /* 14..24 */
		uint32_t q = m >> shift;
		uint32_t rem = m & ((1u << shift) - 1);
		uint32_t half = 1u << (shift - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		return (uint16_t)(sign | q); /* q == 1024 becomes the smallest normal */
	}
	/* normal: rebias exponent, round the 13 dropped bits to even */
	uint32_t r = abs - 0x38000000u; /* exponent 127 -> 15 bias */
	uint32_t q = r >> 13;
	uint32_t rem = r & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (q & 1)))
		q++; /* may carry into the exponent, up to inf: correct */
	return (uint16_t)(sign | q);
}

/* bfloat16 -> float, exact. */
static inline float tk_bf16_to_fp32(uint16_t b)
{
	return tk_f32_from_bits((uint32_t)b << 16);
}

/* float -> bfloat16, round to nearest even. */
static inline uint16_t tk_fp32_to_bf16(float f)
{
	uint32_t u = tk_f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40u);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Round-trips: the nearest half / bfloat16 value, as a float. */
static inline float tk_round_fp16(float f)
{
	return tk_fp16_to_fp32(tk_fp32_to_fp16(f));
}

static inline float tk_round_bf16(float f)
{
	return tk_bf16_to_fp32(tk_fp32_to_bf16(f));
}

#endif
