/*
 * rpc.h - a JSON-RPC 2.0 client for Substrate nodes (subtensor), over HTTP.
 *
 * Substrate nodes and chopsticks answer JSON-RPC as a plain HTTP POST on the
 * same port as their WebSocket, and the subtensor backend only polls, so this
 * client speaks HTTP(S) alone: ws:// and wss:// URLs are taken as http:// and
 * https:// on the same host, port and path (Debian 12's libcurl has no
 * WebSocket support).
 *
 * What it guarantees:
 *   - One request at a time per client, on one reused connection (keep-alive);
 *     a client may be shared by threads (calls are serialised by a mutex).
 *   - Network failures (connection refused or reset, a timeout, a truncated
 *     answer, HTTP 5xx or 429) are retried with exponential backoff and
 *     jitter.  An answer, even an error object, is never retried: the node
 *     has spoken.  Note that a retried author_submitExtrinsic may reach the
 *     node twice; the second one is then refused as already imported.
 *   - Any answer that is not a well-formed JSON-RPC 2.0 response for this
 *     request (not JSON, HTML, empty, another id, no "jsonrpc":"2.0", both or
 *     neither of result/error, over the size cap) is one clear error, never a
 *     crash.
 *   - Every error message names the method and the node ("host:port"),
 *     never the URL's credentials.  A JSON-RPC error object reads
 *         METHOD (HOST): CODE MESSAGE (DATA)
 *     Chopsticks sends error objects without a code ({"message": ...});
 *     they read "METHOD (HOST): MESSAGE", report code 0, and are classified
 *     by their message ("Method not found...", a pool refusal such as
 *     {"invalid":{"stale":null}}, anything else).
 *
 * Error codes:
 *   TS_EINVAL       bad URL, method name or params (before anything is sent);
 *                   JSON-RPC -32700/-32600/-32602 (the node says our request
 *                   or its parameters are invalid)
 *   TS_EUNSUPPORTED JSON-RPC -32601 (no such method on this node)
 *   TS_EDENIED      JSON-RPC 1010..1019 (author_*: the transaction pool
 *                   refused the extrinsic: invalid, banned, already imported,
 *                   priority too low, ...) and chopsticks' {"invalid": ...}
 *                   refusals; HTTP 401/403
 *   TS_ESTATE       any other JSON-RPC error object (an execution failure of
 *                   state_call, unknown or pruned block, internal error)
 *   TS_ENET         connection failures after the retries, HTTP errors
 *   TS_ETIMEOUT     the per-call timeout passed on the last attempt
 *   TS_EFORMAT      an answer that is not a JSON-RPC 2.0 response for us
 *   TS_ETOOBIG      an answer over max_response bytes (not retried)
 *   TS_ENOTFOUND    rpc_call_hex: the result is null (no such storage key)
 *   TS_ENOMEM
 */
#ifndef TESSERA_CHAIN_RPC_H
#define TESSERA_CHAIN_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
typedef struct rpc_client rpc_client;

/* Zero fields take the defaults below (so a zeroed struct, or NULL, gives the
 * defaults). */
typedef struct rpc_opts {
    double timeout_s;          /* one attempt, connect to last byte; default 20 */
    double connect_timeout_s;  /* default 5 */
    int retries;               /* attempts after the first on network errors;
                                * 0: the default (3); negative: none */
    double backoff_s;          /* the first pause; it doubles each retry; default 0.25 */
    double backoff_max_s;      /* the longest pause; default 4 */
    size_t max_response;       /* bytes of one answer; default RPC_MAX_RESPONSE */
} rpc_opts;

#define RPC_DEFAULT_TIMEOUT_S 20.0
#define RPC_DEFAULT_CONNECT_TIMEOUT_S 5.0
#define RPC_DEFAULT_RETRIES 3
#define RPC_DEFAULT_BACKOFF_S 0.25
#define RPC_DEFAULT_BACKOFF_MAX_S 4.0
#define RPC_MAX_RESPONSE ((size_t)64 << 20) /* 64 MiB: metadata is ~0.5 MiB */

/* url: http://, https://, ws:// or wss:// (HOST[:PORT][/PATH]).  Nothing is
 * sent yet: a dead node shows on the first call.  opts may be NULL. */
int rpc_open(const char *url, const rpc_opts *opts, rpc_client **out, ts_err *e);
void rpc_close(rpc_client *c);

/* The HTTP(S) URL requests go to, and "host:port" as error messages name it
 * (owned by the client). */
const char *rpc_url(const rpc_client *c);
const char *rpc_host(const rpc_client *c);

/* Calls METHOD with params given as JSON text: an array ("[]", "[\"0x12\",
 * null]") or an object (by-name params); NULL means [].  On TS_OK *result is
 * the answer's "result" member (a cJSON the caller frees with cJSON_Delete;
 * a JSON null is a cJSON of type NULL, never a NULL pointer).  rpc_code, when
 * not NULL, receives the JSON-RPC error code of an error object (0 for any
 * other outcome). */
int rpc_call(rpc_client *c, const char *method, const char *params_json,
             struct cJSON **result, ts_err *e);
int rpc_call_ex(rpc_client *c, const char *method, const char *params_json,
                struct cJSON **result, long *rpc_code, ts_err *e);
/* The same with params as a cJSON array or object (not consumed; NULL: []). */
int rpc_call_json(rpc_client *c, const char *method, const struct cJSON *params,
                  struct cJSON **result, ts_err *e);

/* For methods whose result is a "0x..." hex string (state_getStorage,
 * state_call, state_getMetadata, chain_getBlockHash, ...): the decoded bytes
 * in *out (malloc'd, free(); never NULL on TS_OK, even when *len is 0).
 * A null result is TS_ENOTFOUND; anything but an even-length 0x-hex string
 * is TS_EFORMAT. */
int rpc_call_hex(rpc_client *c, const char *method, const char *params_json,
                 uint8_t **out, size_t *len, ts_err *e);

/* "0x" + lower-case hex of n bytes, malloc'd (NULL when out of memory): a
 * params helper for storage keys, call data and extrinsics. */
char *rpc_hex(const uint8_t *in, size_t n);
/* Decodes "0x..." (the prefix is required; even length) into malloc'd bytes. */
int rpc_unhex(const char *hex, uint8_t **out, size_t *len, ts_err *e);

/* Counters since rpc_open (for tests and logs). */
typedef struct rpc_stats {
    uint64_t calls;            /* rpc_call* invocations */
    uint64_t attempts;         /* HTTP requests sent (calls + retries) */
    uint64_t retries;
    uint64_t bytes_in;         /* answer bodies received */
} rpc_stats;
void rpc_get_stats(rpc_client *c, rpc_stats *out);

#ifdef __cplusplus
}
#endif

#endif
