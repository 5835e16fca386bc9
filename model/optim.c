/* optim.c - the inner optimizer: gradient norm and clipping, AdamW, the
 * learning-rate schedule, and one training step (PROTOCOL.md section 6). */
#include <math.h>

#include "model_internal.h"

void model_adamw_defaults(model_adamw *h) {
    *h = (model_adamw){.lr = 1.3e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                       .clip = 1.0};
}

void model_zero_grad(model *m) {
    if (m->grads) m->be->fill(m->be, m->grads, 0.0f, m->nparams);
}

double model_grad_norm(model *m) {
    if (!m->grads) return 0.0;
    double s = 0.0;
    if (m->be->sumsq(m->be, m->grads, m->nparams, &s)) return NAN;
    return sqrt(s);
}

void model_scale_grads(model *m, float s) {
    if (m->grads) m->be->scale(m->be, m->grads, s, m->nparams);
}

double model_clip_grad(model *m, double max_norm) {
    double norm = model_grad_norm(m);
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6),
     * applied when below 1 */
    double coef = max_norm / (norm + 1e-6);
    if (max_norm > 0 && coef < 1.0) model_scale_grads(m, (float)coef);
    return norm;
}

void model_adam_reset(model *m) {
    if (m->mv) m->be->fill(m->be, m->mv, 0.0f, 2 * m->nparams);
    m->adam_t = 0;
}

int64_t model_adam_steps(const model *m) { return m->adam_t; }

float *model_adam_data(model *m, size_t *count) {
    if (count) *count = m->mv ? m->nparams : 0;
    return m->mv;
}

void model_adam_set_steps(model *m, int64_t steps) { m->adam_t = steps; }

int model_adamw_step(model *m, const model_adamw *h, double lr, ts_err *e) {
    if (!m->mv) return ts_fail(e, TS_ESTATE, "model: created for evaluation only (no optimizer state)");
    if (!(lr >= 0 && isfinite(lr)) || !(h->beta1 >= 0 && h->beta1 < 1) ||
        !(h->beta2 >= 0 && h->beta2 < 1) || !(h->eps > 0) || !(h->weight_decay >= 0))
        return ts_fail(e, TS_EINVAL, "AdamW: bad hyper-parameters (lr %g, betas %g/%g, eps %g, wd %g)", lr,
                       h->beta1, h->beta2, h->eps, h->weight_decay);
    int64_t t = m->adam_t + 1;
    double bc1 = 1.0 - pow(h->beta1, (double)t);
    double bc2 = 1.0 - pow(h->beta2, (double)t);
    kn_adamw_args a = {
        .lr = (float)lr,
        .beta1 = (float)h->beta1,
        .beta2 = (float)h->beta2,
        .eps = (float)h->eps,
        .weight_decay = (float)h->weight_decay,
        .step_size = (float)(lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
    };
    int rc = m->be->adamw(m->be, m->params, m->grads, m->mv, m->mv + m->nparams, m->nparams, &a);
    if (rc) return ts_fail(e, rc, "backend %s: AdamW failed", m->be->name);
    m->adam_t = t;
    return TS_OK;
}

void model_schedule_defaults(model_schedule *s, double lr, int64_t warmup, int64_t total) {
    *s = (model_schedule){.lr = lr, .min_ratio = 0.1, .warmup = warmup, .total = total};
}

double model_schedule_lr(const model_schedule *s, int64_t step) {
    double lr_min = s->min_ratio * s->lr;
    if (step < 0) step = 0;
    if (step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    if (step >= s->total) return lr_min;
    double p = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    return lr_min + (s->lr - lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}

int model_train_step(model *m, const model_adamw *h, double lr, const int32_t *tokens, int B, int T,
                     float *loss, double *grad_norm, ts_err *e) {
    model_zero_grad(m);
    int rc = model_forward_backward(m, tokens, B, T, loss, e);
    if (rc) return rc;
    double norm = h->clip > 0 ? model_clip_grad(m, h->clip) : model_grad_norm(m);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) return ts_fail(e, TS_ESTATE, "training diverged: the gradient norm is %g", norm);
    return model_adamw_step(m, h, lr, e);
}
