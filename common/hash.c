/* SPDX-License-Identifier: Apache-2.0 */
#include "sk.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

void sk_sha256(const void *buf, size_t len, uint8_t out[SK_SHA256_LEN])
{
	/* SHA256() picks the SHA-NI path when the CPU has it. */
	SHA256(buf, len, out);
}

int sk_sha256_init(struct sk_sha256_ctx *c)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md)
		return -ENOMEM;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -EIO;
	}
	c->md = md;
	return 0;
}

void sk_sha256_update(struct sk_sha256_ctx *c, const void *buf, size_t len)
{
	EVP_DigestUpdate(c->md, buf, len);
}

void sk_sha256_final(struct sk_sha256_ctx *c, uint8_t out[SK_SHA256_LEN])
{
	unsigned int n = SK_SHA256_LEN;

	EVP_DigestFinal_ex(c->md, out, &n);
}

void sk_sha256_free(struct sk_sha256_ctx *c)
{
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}
