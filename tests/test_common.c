/* test_common.c - the common core: config, files, hashing, signatures, zstd,
 * safetensors. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "harness.h"

TEST(sign_verify_domain_tags) {
    ts_err e = {0};
    REQUIRE(ts_init(&e) == TS_OK);
    ts_keypair a, b;
    ts_keypair_generate(&a);
    ts_keypair_generate(&b);
    const char msg[] = "window 7 gradient";
    uint8_t sig[TS_SIG_BYTES];
    REQUIRE(ts_sign(&a, "gradient", msg, sizeof msg, sig, &e) == TS_OK);
    CHECK_EQ_INT(ts_verify(a.pk, "gradient", msg, sizeof msg, sig, &e), TS_OK);
    CHECK_EQ_INT(ts_verify(b.pk, "gradient", msg, sizeof msg, sig, &e), TS_ESIG);
    CHECK_EQ_INT(ts_verify(a.pk, "manifest", msg, sizeof msg, sig, &e), TS_ESIG);
}
