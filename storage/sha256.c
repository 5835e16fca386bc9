/* sha256.c - SHA-256 of request bodies (x-amz-content-sha256).
 *
 * Every byte uploaded to S3 is hashed, so the hash runs at upload speed.
 * libsodium's SHA-256 is portable C (about 270 MB/s on the development
 * machine); OpenSSL's uses the CPU's SHA extensions (about 1.5 GB/s there).
 * libcurl (Debian's OpenSSL flavour, which the project links) has already
 * loaded libcrypto into the process, so its one-shot SHA256() is looked up
 * there with dlopen(RTLD_NOLOAD): nothing new is loaded or linked, and when
 * it is not there libsodium does the work.  tests/test_storage.c checks the
 * two agree. */
#include <dlfcn.h>
#include <pthread.h>

#include <sodium.h>

#include "storage/internal.h"

typedef unsigned char *(*ossl_sha256_fn)(const unsigned char *d, size_t n, unsigned char *md);

static ossl_sha256_fn ossl_sha256;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void find(void) {
    const char *names[] = {"libcrypto.so.3", "libcrypto.so"};
    for (size_t i = 0; i < sizeof names / sizeof *names && !ossl_sha256; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
        if (h) ossl_sha256 = (ossl_sha256_fn)dlsym(h, "SHA256");
    }
}

void store_sha256(uint8_t out[32], const void *p, size_t n, bool portable) {
    pthread_once(&once, find);
    if (ossl_sha256 && !portable) ossl_sha256(p, n, out);
    else crypto_hash_sha256(out, p, n);
}

bool store_sha256_fast(void) {
    pthread_once(&once, find);
    return ossl_sha256 != NULL;
}
