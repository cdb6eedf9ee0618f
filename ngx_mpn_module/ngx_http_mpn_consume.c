/*
 * mpn_consume: metered benefits (spec section 12).  Once a request is
 * allowed, it takes `amount` units of a benefit from the partner's
 * allowance for the current period with FCALL mpn_consume on the usage
 * key, and waits (its own timer, a cleanup handler) for the answer: on,
 * or upgrade/quota.  The allowance and the period come from the record
 * (mpn_quota.c); the usage never comes from the cache.
 *
 * A consumption lives in malloc()ed memory until Redis answers (or its
 * connection goes), so a reply that comes after the request ended finds
 * nothing to wake.  What Redis did is counted then, whoever still waits:
 * a unit taken for a client that left is a unit taken.
 */

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_status.h"
#include "mpn_quota.h"


struct ngx_http_mpn_consumption_s {
    ngx_http_mpn_ctx_t        *ctx;          /* NULL once nobody waits */
    void                      *cmd;          /* the layer's handle */
    ngx_uint_t                 slot;         /* the benefit's counters */
};


static ngx_int_t ngx_http_mpn_consume_amount(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx, ngx_http_mpn_consume_conf_t *cc,
    int64_t *amount);
static ngx_int_t ngx_http_mpn_consume_send(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx, int64_t amount,
    mpn_quota_t *q);
static void ngx_http_mpn_consume_reply(void *data, void *reply);
static ngx_uint_t ngx_http_mpn_consume_result(redisReply *reply,
    int64_t *used);
static void ngx_http_mpn_consume_done(ngx_http_mpn_ctx_t *ctx,
    ngx_uint_t result, int64_t used, redisReply *reply);
static void ngx_http_mpn_consume_failed(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static void ngx_http_mpn_consume_timeout(ngx_event_t *ev);
static void ngx_http_mpn_consume_cleanup(void *data);


static ngx_str_t  ngx_http_mpn_fcall = ngx_string("FCALL");
static ngx_str_t  ngx_http_mpn_consume_fn = ngx_string("mpn_consume");

static ngx_http_mpn_limit_t  ngx_http_mpn_consume_error_limit;


/* mpn_consume BENEFIT [amount=N|$var] [per=term|month] [idempotency=$v] */

char *
ngx_http_mpn_consume_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t                         *value, *name, v;
    ngx_uint_t                         i;
    ngx_http_mpn_main_conf_t          *mcf;
    ngx_http_mpn_consume_conf_t       *cc;
    ngx_http_complex_value_t         **cv;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->consume != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* the name goes into the usage key and into metric labels */

    if (!mpn_partner_id_valid((char *) value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid benefit \"%V\" in \"mpn_consume\": "
                           "1 to 64 of A-Z a-z 0-9 . _ -", &value[1]);
        return NGX_CONF_ERROR;
    }

    cc = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_consume_conf_t));
    if (cc == NULL) {
        return NGX_CONF_ERROR;
    }

    cc->benefit = value[1];
    cc->amount = 1;
    cc->per = MPN_PER_TERM;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "per=", 4) == 0) {
            v.data = value[i].data + 4;
            v.len = value[i].len - 4;

            if (v.len == 4 && ngx_strncmp(v.data, "term", 4) == 0) {
                cc->per = MPN_PER_TERM;

            } else if (v.len == 5 && ngx_strncmp(v.data, "month", 5) == 0) {
                cc->per = MPN_PER_MONTH;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in \"mpn_consume\", it "
                                   "must be \"per=term\" or \"per=month\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "amount=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;
            cv = &cc->amount_cv;

        } else if (ngx_strncmp(value[i].data, "idempotency=", 12) == 0) {
            v.data = value[i].data + 12;
            v.len = value[i].len - 12;
            cv = &cc->idempotency;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"mpn_consume\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (cv == &cc->amount_cv
            && ngx_http_script_variables_count(&v) == 0)
        {
            cc->amount = mpn_quota_amount((char *) v.data, v.len);

            if (cc->amount == -1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\" in \"mpn_consume\": a "
                                   "whole number from 1 to %d",
                                   &value[i], MPN_AMOUNT_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (v.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty \"%V\" in \"mpn_consume\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (*cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &v;
        ccv.complex_value = *cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* one set of counters per benefit, however many locations consume it */

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpn_module);

    if (mcf->consumed == NULL) {
        mcf->consumed = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (mcf->consumed == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    name = mcf->consumed->elts;

    for (i = 0; i < mcf->consumed->nelts; i++) {
        if (name[i].len == cc->benefit.len
            && ngx_strncmp(name[i].data, cc->benefit.data, name[i].len) == 0)
        {
            break;
        }
    }

    if (i == mcf->consumed->nelts) {
        if (i == NGX_HTTP_MPN_CONSUMED_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"mpn_consume\" names more than %d benefits",
                               NGX_HTTP_MPN_CONSUMED_MAX);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(mcf->consumed);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = cc->benefit;
    }

    cc->index = i;
    lcf->consume = cc;

    return NGX_CONF_OK;
}


/*
 * Inherited like any location setting; the benefit consumed is required
 * too, after those mpn_require_benefit names (a copy: the array may be
 * an outer scope's).
 */

char *
ngx_http_mpn_consume_merge(ngx_conf_t *cf, ngx_http_mpn_loc_conf_t *prev,
    ngx_http_mpn_loc_conf_t *conf)
{
    mpn_str_t   *b;
    ngx_uint_t   i, n;

    ngx_conf_merge_ptr_value(conf->consume, prev->consume, NULL);

    if (conf->consume == NULL) {
        return NGX_CONF_OK;
    }

    n = conf->require_benefits ? conf->require_benefits->nelts : 0;
    b = n ? conf->require_benefits->elts : NULL;

    for (i = 0; i < n; i++) {
        if (b[i].len == conf->consume->benefit.len
            && ngx_strncmp(b[i].data, conf->consume->benefit.data, b[i].len)
               == 0)
        {
            return NGX_CONF_OK;
        }
    }

    conf->benefits_all = ngx_array_create(cf->pool, n + 1, sizeof(mpn_str_t));
    if (conf->benefits_all == NULL) {
        return NGX_CONF_ERROR;
    }

    if (n) {
        ngx_memcpy(conf->benefits_all->elts, b, n * sizeof(mpn_str_t));
        conf->benefits_all->nelts = n;
    }

    b = ngx_array_push(conf->benefits_all);
    if (b == NULL) {
        return NGX_CONF_ERROR;
    }

    b->data = (char *) conf->consume->benefit.data;
    b->len = conf->consume->benefit.len;

    conf->require.benefits = conf->benefits_all->elts;
    conf->require.nbenefits = conf->benefits_all->nelts;

    return NGX_CONF_OK;
}


/*
 * The request was allowed with a record: take the units.  Returns NGX_OK
 * with ctx->decision final (bad_amount, a failure decided by mpn_fail),
 * NGX_AGAIN while Redis is asked, NGX_ERROR.
 */

ngx_int_t
ngx_http_mpn_consume(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    int64_t                       amount;
    ngx_int_t                     rc;
    mpn_quota_t                   q;
    ngx_http_mpn_consume_conf_t  *cc;

    cc = lcf->consume;
    ctx->consumed = 1;

    rc = ngx_http_mpn_consume_amount(r, ctx, cc, &amount);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        mpn_decision_set(&ctx->decision, MPN_DENY, MPN_R_BAD_AMOUNT);
        return NGX_OK;
    }

    if (mpn_quota_period(ctx->record, (char *) cc->benefit.data,
                         cc->benefit.len, cc->per, ctx->now, lcf->grace, &q)
        != 0)
    {
        /* cannot be after an allow, which found the benefit held */
        mpn_decision_set(&ctx->decision, MPN_UPGRADE, MPN_R_BENEFIT);
        return NGX_OK;
    }

    ctx->quota_allowance = q.allowance;
    ctx->quota_reset = q.reset;
    ctx->quota_period = 1;

    return ngx_http_mpn_consume_send(r, lcf, ctx, amount, &q);
}


/* NGX_OK with *amount, NGX_DECLINED for a bad one (with the detail for
 * the refusal line), NGX_ERROR */

static ngx_int_t
ngx_http_mpn_consume_amount(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_consume_conf_t *cc, int64_t *amount)
{
    u_char     buf[160], *p;
    ngx_str_t  v;

    if (cc->amount_cv == NULL) {
        *amount = cc->amount;
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, cc->amount_cv, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    *amount = mpn_quota_amount((char *) v.data, v.len);

    if (*amount != -1) {
        return NGX_OK;
    }

    /* the value is the client's: its size only */

    p = ngx_snprintf(buf, sizeof(buf), "the amount of \"%V\" to consume "
                     "is no whole number from 1 to %d (%uz bytes)",
                     &cc->benefit, MPN_AMOUNT_MAX, v.len);
    (void) ngx_http_mpn_set_detail(r, ctx, buf, p - buf);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_mpn_consume_send(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx, int64_t amount, mpn_quota_t *q)
{
    int                          argc;
    long                         n;
    u_char                      *p;
    size_t                       argvlen[9];
    ngx_str_t                    key, idem;
    const char                  *argv[9], *tok;
    ngx_http_cleanup_t          *cln;
    ngx_http_mpn_main_conf_t    *mcf;
    ngx_http_mpn_consume_conf_t *cc;
    ngx_http_mpn_consumption_t  *c;
    u_char                       nums[3][NGX_INT64_LEN];
    char                         hashed[MPN_IDEM_HASHED];

    cc = lcf->consume;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);

    /* <prefix><id>:<benefit>:<period start> */

    key.len = mcf->usage_prefix.len + ctx->partner_id.len + 1
              + cc->benefit.len + 1 + NGX_INT64_LEN;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return NGX_ERROR;
    }

    key.len = ngx_sprintf(key.data, "%V%V:%V:%L", &mcf->usage_prefix,
                          &ctx->partner_id, &cc->benefit, q->start)
              - key.data;

    argv[0] = (char *) ngx_http_mpn_fcall.data;
    argvlen[0] = ngx_http_mpn_fcall.len;
    argv[1] = (char *) ngx_http_mpn_consume_fn.data;
    argvlen[1] = ngx_http_mpn_consume_fn.len;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) key.data;
    argvlen[3] = key.len;

    p = ngx_sprintf(nums[0], "%L", q->allowance);
    argv[4] = (char *) nums[0];
    argvlen[4] = p - nums[0];

    p = ngx_sprintf(nums[1], "%L", amount);
    argv[5] = (char *) nums[1];
    argvlen[5] = p - nums[1];

    p = ngx_sprintf(nums[2], "%L", q->period_end);
    argv[6] = (char *) nums[2];
    argvlen[6] = p - nums[2];

    argc = 7;

    if (cc->idempotency != NULL) {
        if (ngx_http_complex_value(r, cc->idempotency, &idem) != NGX_OK) {
            return NGX_ERROR;
        }

        n = mpn_quota_idem((char *) idem.data, idem.len, hashed, &tok);

        if (n < 0) {
            return NGX_ERROR;
        }

        if (n > 0) {
            argv[7] = "IDEM";
            argvlen[7] = 4;
            argv[8] = tok;
            argvlen[8] = n;
            argc = 9;
        }
    }

    c = ngx_alloc(sizeof(ngx_http_mpn_consumption_t), ngx_cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->ctx = NULL;
    c->slot = mcf->consumed_slots[cc->index];

    /* the command is copied (encoded) at once: argv can go */

    c->cmd = ngx_http_mpn_redis_command(&key, argc, argv, argvlen,
                                        ngx_http_mpn_consume_reply, c);

    if (c->cmd == NULL) {
        ngx_http_mpn_status_consumption(c->slot, NGX_HTTP_MPN_CONSUMED_ERROR);
        ngx_free(c);
        ngx_http_mpn_consume_failed(r, lcf, ctx);
        return NGX_OK;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        /* the reply will find nobody waiting */
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpn_consume_cleanup;
    cln->data = ctx;

    c->ctx = ctx;
    ctx->consumption = c;

    ngx_http_mpn_wait(r, ctx, ngx_http_mpn_consume_timeout);

    return NGX_AGAIN;
}


static void
ngx_http_mpn_consume_reply(void *data, void *reply)
{
    ngx_http_mpn_consumption_t *c = data;

    int64_t     used;
    ngx_uint_t  result;

    result = ngx_http_mpn_consume_result(reply, &used);

    ngx_http_mpn_status_consumption(c->slot, result);

    /* the layer left error replies to us: QUOTA is an answer, the rest
     * (NOPERM, no such function) are Redis errors */

    if (result == NGX_HTTP_MPN_CONSUMED_ERROR && reply != NULL
        && ((redisReply *) reply)->type == REDIS_REPLY_ERROR)
    {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
    }

    if (c->ctx != NULL) {
        ngx_http_mpn_consume_done(c->ctx, result, used, reply);
    }

    ngx_free(c);
}


/* what Redis did: NGX_HTTP_MPN_CONSUMED_*, and the usage when it says */

static ngx_uint_t
ngx_http_mpn_consume_result(redisReply *reply, int64_t *used)
{
    redisReply  *u, *s;

    *used = -1;

    if (reply == NULL) {
        return NGX_HTTP_MPN_CONSUMED_ERROR;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        *used = mpn_quota_refusal_used(reply->str, reply->len);

        return (*used >= 0) ? NGX_HTTP_MPN_CONSUMED_QUOTA
                            : NGX_HTTP_MPN_CONSUMED_ERROR;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return NGX_HTTP_MPN_CONSUMED_ERROR;
    }

    u = reply->element[0];
    s = reply->element[1];

    if (u->type != REDIS_REPLY_INTEGER || u->integer < 0
        || (s->type != REDIS_REPLY_STRING && s->type != REDIS_REPLY_STATUS))
    {
        return NGX_HTTP_MPN_CONSUMED_ERROR;
    }

    *used = u->integer;

    if (s->len == 2 && ngx_strncmp(s->str, "ok", 2) == 0) {
        return NGX_HTTP_MPN_CONSUMED_OK;
    }

    if (s->len == 6 && ngx_strncmp(s->str, "repeat", 6) == 0) {
        return NGX_HTTP_MPN_CONSUMED_REPEAT;
    }

    *used = -1;

    return NGX_HTTP_MPN_CONSUMED_ERROR;
}


/* the answer for the request still waiting: decides and wakes it */

static void
ngx_http_mpn_consume_done(ngx_http_mpn_ctx_t *ctx, ngx_uint_t result,
    int64_t used, redisReply *reply)
{
    u_char                    buf[160], *p;
    ngx_http_request_t       *r = ctx->request;
    ngx_http_mpn_loc_conf_t  *lcf = ctx->lcf;

    ctx->consumption = NULL;

    if (used >= 0) {
        ctx->quota_used = used;
        ctx->quota_answered = 1;
    }

    switch (result) {

    case NGX_HTTP_MPN_CONSUMED_OK:
    case NGX_HTTP_MPN_CONSUMED_REPEAT:
        break;

    case NGX_HTTP_MPN_CONSUMED_QUOTA:
        ctx->decision.decision = MPN_UPGRADE;
        ctx->decision.reason = MPN_R_QUOTA;

        p = ngx_snprintf(buf, sizeof(buf), "benefit \"%V\": %L of %L used",
                         &lcf->consume->benefit, used, ctx->quota_allowance);
        (void) ngx_http_mpn_set_detail(r, ctx, buf, p - buf);
        break;

    default: /* NGX_HTTP_MPN_CONSUMED_ERROR */

        if (reply != NULL) {
            ngx_http_mpn_log_limited(&ngx_http_mpn_consume_error_limit,
                                     r->connection->log,
                                     "mpn: consuming \"%V\": unexpected "
                                     "reply from redis (type %d): %*s",
                                     &lcf->consume->benefit, reply->type,
                                     (size_t) (reply->type
                                               == REDIS_REPLY_ERROR
                                               ? ngx_min(reply->len, 200)
                                               : 0),
                                     reply->str);
        }

        ngx_http_mpn_consume_failed(r, lcf, ctx);
    }

    ngx_http_mpn_wake(r, ctx);
}


/* Redis did not answer: mpn_fail decides, as for a lookup */

static void
ngx_http_mpn_consume_failed(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    u_char  buf[160], *p;

    if (lcf->fail == NGX_HTTP_MPN_FAIL_OPEN) {
        mpn_decision_set(&ctx->decision, MPN_ALLOW, MPN_R_FAIL_OPEN);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mpn: partner \"%V\" allowed without consuming "
                      "\"%V\": redis unavailable (mpn_fail open)",
                      &ctx->partner_id, &lcf->consume->benefit);
        return;
    }

    mpn_decision_set(&ctx->decision, MPN_ERROR, MPN_R_REDIS_UNAVAILABLE);

    p = ngx_snprintf(buf, sizeof(buf), "consuming \"%V\"",
                     &lcf->consume->benefit);
    (void) ngx_http_mpn_set_detail(r, ctx, buf, p - buf);
}


static void
ngx_http_mpn_consume_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_ctx_t  *ctx = ev->data;

    void                        *cmd;
    ngx_http_mpn_consumption_t  *c;

    c = ctx->consumption;
    c->ctx = NULL;
    cmd = c->cmd;

    ngx_http_mpn_consume_done(ctx, NGX_HTTP_MPN_CONSUMED_ERROR, -1, NULL);

    /* may answer the consumption (and free it): taken back if not sent
     * yet, or by dropping a stalled connection; the answer is counted,
     * nobody is woken */
    ngx_http_mpn_redis_command_timed_out(cmd);
}


/* the request ends, possibly while it still waits */

static void
ngx_http_mpn_consume_cleanup(void *data)
{
    ngx_http_mpn_ctx_t  *ctx = data;

    ngx_http_mpn_consumption_t  *c;

    c = ctx->consumption;

    if (c == NULL) {
        return;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (!ctx->counted) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_ABORTED);
    }

    c->ctx = NULL;
    ctx->consumption = NULL;

    /* the client left before the decision: a consumption not sent yet is
     * taken back (and c freed); one on its way may still take the units,
     * and that is counted when Redis answers */

    (void) ngx_http_mpn_redis_command_withdraw(c->cmd);
}
