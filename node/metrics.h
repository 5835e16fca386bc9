/* metrics.h - private to node/: a Prometheus text endpoint. */
#ifndef TESSERA_NODE_METRICS_H
#define TESSERA_NODE_METRICS_H

#include "common/common.h"

typedef struct node_metrics node_metrics;

/* Serves GET /metrics (and /healthz) on 127.0.0.1:port or, with bind_all,
 * on every interface, from a background thread.  port 0 picks a free port;
 * *port_out (optional) receives the port actually bound. */
int node_metrics_start(int port, bool bind_all, node_metrics **out, int *port_out, ts_err *e);
void node_metrics_stop(node_metrics *m);
/* Declares a metric family once (type "gauge" or "counter"). */
void node_metrics_declare(node_metrics *m, const char *name, const char *type, const char *help);
/* Sets a sample; labels is NULL or a Prometheus label body like uid="3". */
void node_metrics_set(node_metrics *m, const char *name, const char *labels, double value);
void node_metrics_add(node_metrics *m, const char *name, const char *labels, double delta);
/* Renders the exposition text (malloc'd). */
char *node_metrics_render(node_metrics *m);

#endif
