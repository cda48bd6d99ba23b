
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The per-node session cache: identity_session_cache zone=NAME:SIZE
 * [ttl=TIME].  A shared-memory zone, the workers of one nginx share it:
 * a slab pool, an rbtree keyed by the session's key (the hex SHA-256 of
 * its cookie) and an LRU queue, as limit_req and ssl_session_cache keep
 * theirs.  A value is whatever the store puts there, opaque here.
 *
 * The cache is only as good as its invalidation, which node.c runs: it is
 * trusted while its lease (renewed by node.c when its own ping comes back
 * on its subscription) runs, and not at all otherwise: then get() answers
 * NGX_BUSY and the store asks Redis.  Every eviction bumps a sequence
 * number; a value read from Redis is only put if no eviction happened
 * since the get() that missed, so a lookup that raced a revocation cannot
 * put back what was just revoked.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_cache.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_metrics.h"


typedef struct {
    ngx_rbtree_node_t                node;        /* key: crc32 of key */
    ngx_queue_t                      queue;       /* LRU, newest first */
    u_char                           key[NGX_HTTP_IDENTITY_CACHE_KEY_LEN];
    time_t                           deadline;
    time_t                           last_active;
    size_t                           len;
    u_char                           value[1];
} ngx_http_identity_cache_node_t;


typedef struct {
    ngx_rbtree_t                     rbtree;
    ngx_rbtree_node_t                sentinel;
    ngx_queue_t                      queue;
    ngx_uint_t                       seq;         /* evictions so far */
    ngx_msec_t                       lease;       /* trusted until, or 0 */
    ngx_pid_t                        owner;       /* subscribed worker */
    ngx_msec_t                       owner_beat;
    ngx_uint_t                       generation;  /* of the configuration */
    u_char                           node[NGX_HTTP_IDENTITY_NODE_ID_LEN];
} ngx_http_identity_cache_sh_t;


struct ngx_http_identity_cache_s {
    ngx_http_identity_cache_sh_t    *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_shm_zone_t                  *shm_zone;
    time_t                           ttl;
    ngx_uint_t                       generation;  /* this cycle's */
    ngx_str_t                        node_id;
};


static ngx_int_t ngx_http_identity_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_identity_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_identity_cache_node_t *ngx_http_identity_cache_find(
    ngx_http_identity_cache_t *cache, u_char *key);
static void ngx_http_identity_cache_delete(ngx_http_identity_cache_t *cache,
    ngx_http_identity_cache_node_t *n);
static ngx_uint_t ngx_http_identity_cache_trusted(
    ngx_http_identity_cache_sh_t *sh);
static ngx_rbtree_key_t ngx_http_identity_cache_hash(u_char *key);


/* identity_session_cache zone=NAME:SIZE [ttl=TIME] */

char *
ngx_http_identity_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    u_char                     *p;
    ssize_t                     size;
    ngx_str_t                  *value, name, s;
    ngx_uint_t                  i;
    ngx_http_identity_cache_t  *cache;

    if (imcf->cache) {
        return "is duplicate";
    }

    value = cf->args->elts;

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = 60;
    size = 0;
    ngx_str_null(&name);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;
            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (name.len == 0 || size == NGX_ERROR) {
                goto invalid;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            cache->ttl = ngx_parse_time(&s, 1);

            if (cache->ttl == (time_t) NGX_ERROR || cache->ttl == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    cache->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                            &ngx_http_identity_module);
    if (cache->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cache->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    cache->shm_zone->init = ngx_http_identity_cache_init_zone;
    cache->shm_zone->data = cache;

    imcf->cache = cache;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_identity_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_identity_cache_t  *ocache = data;

    size_t                      len;
    ngx_str_t                   id;
    ngx_http_identity_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /*
         * A reload keeps the zone and the node, not what it trusted: the
         * new configuration may name another Redis or prefix.  The old
         * workers can no longer lease, own the subscription or put; the
         * new ones subscribe again, which empties it anyway.
         */

        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;

        ngx_shmtx_lock(&cache->shpool->mutex);

        cache->sh->generation++;
        cache->sh->lease = 0;
        cache->sh->owner = 0;

        ngx_shmtx_unlock(&cache->shpool->mutex);

        ngx_http_identity_cache_flush(cache);

        goto done;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        goto done;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_identity_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_identity_cache_insert);
    ngx_queue_init(&cache->sh->queue);

    if (ngx_http_identity_random_hex(ngx_cycle->pool,
                                     NGX_HTTP_IDENTITY_NODE_ID_LEN / 2, &id)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(cache->sh->node, id.data, NGX_HTTP_IDENTITY_NODE_ID_LEN);

    len = sizeof(" in identity_session_cache zone \"\"")
          + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx,
                " in identity_session_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

done:

    cache->generation = cache->sh->generation;
    cache->node_id.data = cache->sh->node;
    cache->node_id.len = NGX_HTTP_IDENTITY_NODE_ID_LEN;

    return NGX_OK;
}


/*
 * A hit copies the value into the pool.  NGX_DECLINED: a miss, e->seq is
 * for the put that follows; NGX_BUSY: the cache is not trusted now.
 */

ngx_int_t
ngx_http_identity_cache_get(ngx_http_identity_cache_t *cache,
    ngx_pool_t *pool, u_char *key, ngx_http_identity_cache_entry_t *e)
{
    ngx_int_t                        rc;
    ngx_http_identity_cache_node_t  *n;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (!ngx_http_identity_cache_trusted(cache->sh)) {
        rc = NGX_BUSY;
        goto done;
    }

    e->seq = cache->sh->seq;

    n = ngx_http_identity_cache_find(cache, key);

    if (n == NULL) {
        rc = NGX_DECLINED;
        goto done;
    }

    if (n->deadline <= ngx_time()) {
        ngx_http_identity_cache_delete(cache, n);
        rc = NGX_DECLINED;
        goto done;
    }

    e->value.data = ngx_pnalloc(pool, n->len);
    if (e->value.data == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_memcpy(e->value.data, n->value, n->len);
    e->value.len = n->len;
    e->last_active = n->last_active;

    ngx_queue_remove(&n->queue);
    ngx_queue_insert_head(&cache->sh->queue, &n->queue);

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (rc != NGX_ERROR) {
        ngx_http_identity_metrics_cache(rc == NGX_OK);
    }

    return rc;
}


/* kept until the deadline at most; the oldest entries make room */

void
ngx_http_identity_cache_put(ngx_http_identity_cache_t *cache, u_char *key,
    ngx_str_t *value, time_t deadline, time_t last_active, ngx_uint_t seq)
{
    size_t                           size;
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_http_identity_cache_node_t  *n;

    deadline = ngx_min(deadline, ngx_time() + cache->ttl);

    if (deadline <= ngx_time()) {
        return;
    }

    size = offsetof(ngx_http_identity_cache_node_t, value) + value->len;

    /* what could only fit by emptying a small zone is not cached */

    if (size > cache->shm_zone->shm.size / 8) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* an eviction since the miss: what Redis said may be revoked by now */

    if (seq != cache->sh->seq
        || cache->generation != cache->sh->generation
        || !ngx_http_identity_cache_trusted(cache->sh))
    {
        goto done;
    }

    n = ngx_http_identity_cache_find(cache, key);
    if (n) {
        ngx_http_identity_cache_delete(cache, n);
    }

    n = ngx_slab_alloc_locked(cache->shpool, size);

    for (i = 0; n == NULL && i < 16; i++) {
        if (ngx_queue_empty(&cache->sh->queue)) {
            break;
        }

        q = ngx_queue_last(&cache->sh->queue);
        ngx_http_identity_cache_delete(cache,
            ngx_queue_data(q, ngx_http_identity_cache_node_t, queue));

        n = ngx_slab_alloc_locked(cache->shpool, size);
    }

    if (n == NULL) {
        goto done;
    }

    ngx_memcpy(n->key, key, NGX_HTTP_IDENTITY_CACHE_KEY_LEN);
    n->node.key = ngx_http_identity_cache_hash(key);
    n->deadline = deadline;
    n->last_active = last_active;
    n->len = value->len;
    ngx_memcpy(n->value, value->data, value->len);

    ngx_rbtree_insert(&cache->sh->rbtree, &n->node);
    ngx_queue_insert_head(&cache->sh->queue, &n->queue);

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* last_active was written to Redis: the node's other workers need not */

void
ngx_http_identity_cache_touch(ngx_http_identity_cache_t *cache, u_char *key,
    time_t last_active)
{
    ngx_http_identity_cache_node_t  *n;

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_http_identity_cache_find(cache, key);
    if (n) {
        n->last_active = last_active;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_http_identity_cache_evict(ngx_http_identity_cache_t *cache, u_char *key)
{
    ngx_http_identity_cache_node_t  *n;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cache->sh->seq++;

    n = ngx_http_identity_cache_find(cache, key);
    if (n) {
        ngx_http_identity_cache_delete(cache, n);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_http_identity_cache_flush(ngx_http_identity_cache_t *cache)
{
    ngx_queue_t  *q;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cache->sh->seq++;

    while (!ngx_queue_empty(&cache->sh->queue)) {
        q = ngx_queue_head(&cache->sh->queue);
        ngx_http_identity_cache_delete(cache,
            ngx_queue_data(q, ngx_http_identity_cache_node_t, queue));
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* trusted until "until" (ngx_current_msec, monotonic); 0: not at all */

void
ngx_http_identity_cache_lease(ngx_http_identity_cache_t *cache,
    ngx_msec_t until)
{
    ngx_shmtx_lock(&cache->shpool->mutex);

    /* a worker of an earlier configuration may distrust, not lease */

    if (until != 0 && cache->generation != cache->sh->generation) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    if (until == 0
        || cache->sh->lease == 0
        || (ngx_msec_int_t) (until - cache->sh->lease) > 0)
    {
        cache->sh->lease = until;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * One worker per node holds the subscription: this one, if no other has
 * said so within "stale" ms.  Answers whether this worker holds it now.
 */

ngx_uint_t
ngx_http_identity_cache_owner(ngx_http_identity_cache_t *cache,
    ngx_msec_t stale, ngx_uint_t release)
{
    ngx_uint_t                     mine;
    ngx_http_identity_cache_sh_t  *sh;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (release || cache->generation != sh->generation) {
        if (sh->owner == ngx_pid) {
            sh->owner = 0;
        }

        mine = 0;

    } else if (sh->owner == ngx_pid || sh->owner == 0
               || (ngx_msec_int_t) (ngx_current_msec - sh->owner_beat)
                  > (ngx_msec_int_t) stale)
    {
        sh->owner = ngx_pid;
        sh->owner_beat = ngx_current_msec;
        mine = 1;

    } else {
        mine = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return mine;
}


ngx_str_t *
ngx_http_identity_cache_node_id(ngx_http_identity_cache_t *cache)
{
    return &cache->node_id;
}


/*
 * ngx_current_msec as it is now, not as the event loop read it when its
 * turn began: a worker held up within one turn (a slow disk, a burst of
 * handshakes) would otherwise trust a lease that ran out meanwhile.
 */

ngx_msec_t
ngx_http_identity_cache_clock(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

#if defined(CLOCK_MONOTONIC_FAST)
    clock_gettime(CLOCK_MONOTONIC_FAST, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif

    return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

#else
    struct timeval   tv;

    ngx_gettimeofday(&tv);

    return (ngx_msec_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
#endif
}


static ngx_uint_t
ngx_http_identity_cache_trusted(ngx_http_identity_cache_sh_t *sh)
{
    return sh->lease != 0
           && (ngx_msec_int_t) (sh->lease - ngx_http_identity_cache_clock())
              > 0;
}


/*
 * The key is a SHA-256 in hex: its first 8 digits are as good a tree key
 * as any hash of it.  Not hex (a forged eviction): the same -1 both ways.
 */

static ngx_rbtree_key_t
ngx_http_identity_cache_hash(u_char *key)
{
    return (ngx_rbtree_key_t) ngx_hextoi(key, 8);
}


static void
ngx_http_identity_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_identity_cache_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            n = (ngx_http_identity_cache_node_t *) node;
            t = (ngx_http_identity_cache_node_t *) temp;

            p = ngx_memcmp(n->key, t->key, NGX_HTTP_IDENTITY_CACHE_KEY_LEN)
                < 0 ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_identity_cache_node_t *
ngx_http_identity_cache_find(ngx_http_identity_cache_t *cache, u_char *key)
{
    ngx_int_t                        rc;
    ngx_rbtree_key_t                 hash;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_identity_cache_node_t  *n;

    hash = ngx_http_identity_cache_hash(key);

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_http_identity_cache_node_t *) node;

        rc = ngx_memcmp(key, n->key, NGX_HTTP_IDENTITY_CACHE_KEY_LEN);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_identity_cache_delete(ngx_http_identity_cache_t *cache,
    ngx_http_identity_cache_node_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &n->node);
    ngx_slab_free_locked(cache->shpool, n);
}
