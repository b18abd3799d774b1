/*
 * store_key.c — API key text, hashing and constant-time comparison
 * (helpers declared in store_backend.h). Owns no state.
 *
 * A key is "tk_<16 hex id>_<64 hex secret>". The id is a lookup handle and
 * is not secret; the 32-byte secret is. The store keeps SHA-256(salt ||
 * secret) with a per-key random 16-byte salt. A plain (fast) hash is enough
 * here because the secret is 256 random bits, not a password a person chose:
 * there is no dictionary to try, and a slow KDF would only slow every
 * request down.
 */
#include "store/store_backend.h"

#include "core/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

int store_key_hash(const uint8_t salt[TK_KEY_SALT_BYTES], const uint8_t *secret,
		   size_t secret_len, uint8_t out[TK_KEY_HASH_BYTES])
{
	int rc = TK_EINTERNAL;
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return tk_errf(TK_ENOMEM, "api key: hash context");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt, TK_KEY_SALT_BYTES) != 1 ||
	    EVP_DigestUpdate(ctx, secret, secret_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != TK_KEY_HASH_BYTES) {
		rc = tk_errf(TK_EINTERNAL, "api key: SHA-256 failed in libcrypto");
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool store_ct_equal(const void *a, const void *b, size_t n)
{
	/* CRYPTO_memcmp reads all n bytes whatever they hold: the time taken
	 * does not tell an attacker how long a matching prefix was. */
	return CRYPTO_memcmp(a, b, n) == 0;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int store_key_parse(const char *text, char id_out[TK_KEY_ID_LEN], uint8_t secret_out[32])
{
	if (!tk_key_text_valid(text))
		return tk_errf(TK_EINVAL, "api key: expected tk_<16 hex>_<64 hex>");
	memcpy(id_out, text + 3, TK_KEY_ID_LEN - 1);
	id_out[TK_KEY_ID_LEN - 1] = '\0';
	const char *h = text + 3 + (TK_KEY_ID_LEN - 1) + 1;
	for (size_t i = 0; i < 32; i++)
		secret_out[i] = (uint8_t)(hex_val(h[2 * i]) << 4 | hex_val(h[2 * i + 1]));
	return 0;
}

bool tk_key_text_valid(const char *s)
{
	if (!s || strlen(s) != TK_KEY_TEXT_LEN - 1 || strncmp(s, "tk_", 3))
		return false;
	for (size_t i = 3; i < TK_KEY_TEXT_LEN - 1; i++) {
		if (i == 3 + TK_KEY_ID_LEN - 1) {
			if (s[i] != '_')
				return false;
		} else if (hex_val(s[i]) < 0) {
			return false;
		}
	}
	return true;
}
