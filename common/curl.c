/* curl.c - libcurl's process-wide initialisation, done once for every module
 * that speaks HTTP (storage's S3 client, chain's JSON-RPC client):
 * curl_global_init is not thread-safe in older libcurl, so two modules each
 * guarding their own call could still race. */
#include <pthread.h>
#include <signal.h>

#include <curl/curl.h>

#include "common.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void init_curl(void) {
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Transfers run with CURLOPT_NOSIGNAL (threads); a peer closing a
     * connection must not kill the process with SIGPIPE. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int ts_curl_init(void) {
    pthread_once(&once, init_curl);
    return (int)init_rc;
}
