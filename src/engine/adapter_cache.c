/*
 * adapter_cache.c — registry, residency, LRU eviction, pinning, reference
 * counts and metrics of LoRA adapters (adapter_cache.h).
 *
 * Owns the entry table (sorted by name), each entry's path and loaded
 * adapter, and the metric handles (the registry is borrowed). One mutex
 * guards everything; the use clock is a counter bumped on every acquire.
 */
#include "engine/adapter_cache.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "obs/log.h"
#include "obs/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct entry {
	char name[ENGINE_ADAPTER_NAME_MAX + 1];
	char *path;
	char sha256[65];
	uint64_t file_bytes, load_bytes;
	struct engine_lora *lora; /* NULL: not resident */
	bool pinned;
	bool loading; /* a thread is loading it with the mutex released */
	int32_t refs;
	uint64_t last_used;
	uint64_t hits, loads;
};

struct engine_adapter_cache {
	pthread_mutex_t mu;
	pthread_cond_t loaded; /* broadcast when a load finishes (either way) */
	const struct engine_model *m;
	struct engine_adapter_cache_opts o;
	char *dir;
	struct entry *e;
	size_t n;
	uint64_t clock;
	uint64_t resident_bytes;
	uint64_t reserved; /* bytes of loads in progress, counted against the budget */
	size_t resident;
	uint64_t loads, evictions, hits, misses;
	struct tk_series *h_load, *h_unload, *c_loads, *c_evict, *c_hits, *c_miss;
	struct tk_series *g_resident, *g_bytes, *g_budget;
};

void engine_adapter_cache_opts_default(struct engine_adapter_cache_opts *o)
{
	*o = (struct engine_adapter_cache_opts){ 0 };
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > ENGINE_ADAPTER_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* SHA-256 of the file at path as lowercase hex, and its size. */
static int file_sha256(const char *path, char hex[65], uint64_t *size)
{
	int rc = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *buf = malloc(1 << 16);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*size = 0;
	if (!buf || !ctx) {
		rc = tk_errf(TK_ENOMEM, "adapters: out of memory");
		goto out;
	}
	if (fd < 0) {
		rc = tk_errf_sys(TK_EIO, errno, "adapters: open %s", path);
		goto out;
	}
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = tk_errf(TK_EINTERNAL, "adapters: SHA-256 init failed");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf, 1 << 16);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = tk_errf_sys(TK_EIO, errno, "adapters: read %s", path);
			goto out;
		}
		if (r == 0)
			break;
		*size += (uint64_t)r;
		if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) {
			rc = tk_errf(TK_EINTERNAL, "adapters: SHA-256 update failed");
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		rc = tk_errf(TK_EINTERNAL, "adapters: SHA-256 final failed");
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

/* Bytes engine_lora_load will hold for the file: 4 per element of every
 * .lora_a / .lora_b tensor. 0 when the file is not a readable GGUF. */
static uint64_t predicted_bytes(const char *path)
{
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g)
		return 0;
	uint64_t b = 0;
	for (size_t i = 0; i < tk_gguf_tensor_count(g); i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
		if (t->name_len > 7 && (strcmp(t->name + t->name_len - 7, ".lora_a") == 0 ||
					strcmp(t->name + t->name_len - 7, ".lora_b") == 0))
			b += (uint64_t)t->n_elements * sizeof(float);
	}
	tk_gguf_close(g);
	return b;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void update_gauges(struct engine_adapter_cache *c)
{
	tk_gauge_set(c->g_resident, (double)c->resident);
	tk_gauge_set(c->g_bytes, (double)c->resident_bytes);
}

static void register_metrics(struct engine_adapter_cache *c, struct tk_registry *r)
{
	static const double buckets[] = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
					  0.1, 0.5, 1, 5, 30 };
	const size_t nb = sizeof buckets / sizeof buckets[0];
	struct tk_metric *m;
	m = r ? tk_metric_histogram(r, "tanuki_adapter_load_seconds",
				    "Time to load and validate one LoRA adapter", NULL, 0, buckets, nb)
	      : NULL;
	c->h_load = tk_metric_solo(m);
	m = r ? tk_metric_histogram(r, "tanuki_adapter_unload_seconds",
				    "Time to free one LoRA adapter (unload or eviction)", NULL, 0,
				    buckets, nb)
	      : NULL;
	c->h_unload = tk_metric_solo(m);
	m = r ? tk_metric_counter(r, "tanuki_adapter_loads_total", "LoRA adapter loads", NULL, 0)
	      : NULL;
	c->c_loads = tk_metric_solo(m);
	m = r ? tk_metric_counter(r, "tanuki_adapter_evictions_total",
				  "LoRA adapters evicted to stay under the budget", NULL, 0)
	      : NULL;
	c->c_evict = tk_metric_solo(m);
	m = r ? tk_metric_counter(r, "tanuki_adapter_hits_total",
				  "Adapter requests served by a resident adapter", NULL, 0)
	      : NULL;
	c->c_hits = tk_metric_solo(m);
	m = r ? tk_metric_counter(r, "tanuki_adapter_misses_total",
				  "Adapter requests that had to load the adapter", NULL, 0)
	      : NULL;
	c->c_miss = tk_metric_solo(m);
	m = r ? tk_metric_gauge(r, "tanuki_adapter_resident", "LoRA adapters in memory", NULL, 0)
	      : NULL;
	c->g_resident = tk_metric_solo(m);
	m = r ? tk_metric_gauge(r, "tanuki_adapter_resident_bytes",
				"Bytes held by resident LoRA adapters", NULL, 0)
	      : NULL;
	c->g_bytes = tk_metric_solo(m);
	m = r ? tk_metric_gauge(r, "tanuki_adapter_budget_bytes",
				"Byte budget of the LoRA adapter cache (0: unlimited)", NULL, 0)
	      : NULL;
	c->g_budget = tk_metric_solo(m);
	tk_gauge_set(c->g_budget, (double)c->o.budget_bytes);
}

/* Frees a resident, unreferenced entry's adapter (mutex held). */
static void entry_drop(struct engine_adapter_cache *c, struct entry *e, const char *reason)
{
	const double t0 = now_s();
	const size_t bytes = engine_lora_bytes(e->lora);
	engine_lora_free(e->lora);
	e->lora = NULL;
	e->pinned = false;
	c->resident--;
	c->resident_bytes -= bytes;
	const double dt = now_s() - t0;
	tk_hist_observe(c->h_unload, dt);
	if (strcmp(reason, "evicted") == 0) {
		c->evictions++;
		tk_counter_inc(c->c_evict);
	}
	update_gauges(c);
	tk_logf(TK_LOG_INFO, "adapters",
		TK_FIELDS(TK_LF_S("name", e->name), TK_LF_I("bytes", (int64_t)bytes),
			  TK_LF_D("duration_ms", dt * 1e3), TK_LF_S("reason", reason),
			  TK_LF_I("resident_bytes", (int64_t)c->resident_bytes),
			  TK_LF_I("budget_bytes", (int64_t)c->o.budget_bytes)),
		"adapter %s", strcmp(reason, "evicted") == 0 ? "evicted" : "unloaded");
}

/* Loads e (mutex held on entry and on return), evicting LRU unpinned
 * unreferenced adapters first when the budget needs it. The file is read
 * with the mutex released: its bytes are reserved against the budget and the
 * entry is marked loading, so other threads wait for it (wait_loaded) instead
 * of loading it twice, and hits on other adapters proceed meanwhile. reason
 * goes to the log line. */
static int entry_load(struct engine_adapter_cache *c, struct entry *e, const char *reason)
{
	const uint64_t budget = c->o.budget_bytes;
	const uint64_t need = e->load_bytes;
	if (budget && need > budget)
		return tk_errf(TK_ELIMIT, "adapters: %s needs %llu bytes, more than the whole budget "
			       "of %llu bytes", e->name, (unsigned long long)need,
			       (unsigned long long)budget);
	if (budget && c->resident_bytes + c->reserved + need > budget) {
		/* can enough be evicted? */
		uint64_t freeable = 0;
		for (size_t i = 0; i < c->n; i++)
			if (c->e[i].lora && !c->e[i].pinned && c->e[i].refs == 0)
				freeable += engine_lora_bytes(c->e[i].lora);
		if (c->resident_bytes + c->reserved - freeable + need > budget)
			return tk_errf(TK_EBUSY, "adapters: no room for %s (%llu bytes): %llu of the "
				       "%llu-byte budget are held by pinned, in-use or loading "
				       "adapters", e->name, (unsigned long long)need,
				       (unsigned long long)(c->resident_bytes + c->reserved - freeable),
				       (unsigned long long)budget);
		while (c->resident_bytes + c->reserved + need > budget) {
			struct entry *lru = NULL;
			for (size_t i = 0; i < c->n; i++) {
				struct entry *x = &c->e[i];
				if (x->lora && !x->pinned && x->refs == 0 &&
				    (!lru || x->last_used < lru->last_used))
					lru = x;
			}
			if (!lru)
				return tk_errf(TK_EINTERNAL, "adapters: eviction found nothing");
			entry_drop(c, lru, "evicted");
		}
	}
	c->reserved += need;
	e->loading = true;
	pthread_mutex_unlock(&c->mu);
	const double t0 = now_s();
	struct engine_lora *a = engine_lora_load(e->path, c->m);
	pthread_mutex_lock(&c->mu);
	c->reserved -= need;
	e->loading = false;
	pthread_cond_broadcast(&c->loaded);
	if (!a) {
		int rc = tk_err_last() < 0 ? tk_err_last() : TK_EIO;
		tk_logf(TK_LOG_WARNING, "adapters",
			TK_FIELDS(TK_LF_S("name", e->name), TK_LF_S("error", tk_err_detail())),
			"adapter load failed");
		return rc;
	}
	const double dt = now_s() - t0;
	e->lora = a;
	e->loads++;
	c->resident++;
	c->resident_bytes += engine_lora_bytes(a);
	c->loads++;
	tk_counter_inc(c->c_loads);
	tk_hist_observe(c->h_load, dt);
	update_gauges(c);
	tk_logf(TK_LOG_INFO, "adapters",
		TK_FIELDS(TK_LF_S("name", e->name), TK_LF_I("bytes", (int64_t)engine_lora_bytes(a)),
			  TK_LF_I("file_bytes", (int64_t)e->file_bytes),
			  TK_LF_D("duration_ms", dt * 1e3), TK_LF_S("reason", reason),
			  TK_LF_I("resident_bytes", (int64_t)c->resident_bytes),
			  TK_LF_I("budget_bytes", (int64_t)budget)),
		"adapter loaded");
	return 0;
}

/* Waits (mutex held) until no thread is loading e. */
static void wait_loaded(struct engine_adapter_cache *c, const struct entry *e)
{
	while (e->loading)
		pthread_cond_wait(&c->loaded, &c->mu);
}

static struct entry *entry_find(struct engine_adapter_cache *c, const char *name)
{
	struct entry key;
	if (!name || strlen(name) > ENGINE_ADAPTER_NAME_MAX)
		return NULL;
	snprintf(key.name, sizeof key.name, "%s", name);
	return bsearch(&key, c->e, c->n, sizeof *c->e, entry_cmp);
}

void engine_adapter_cache_free(struct engine_adapter_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		engine_lora_free(c->e[i].lora);
		free(c->e[i].path);
	}
	if (c->resident) {
		c->resident = 0;
		c->resident_bytes = 0;
		update_gauges(c);
	}
	free(c->e);
	free(c->dir);
	pthread_cond_destroy(&c->loaded);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct engine_adapter_cache *engine_adapter_cache_new(const struct engine_model *m,
						      const struct engine_adapter_cache_opts *o)
{
	if (!o || !o->dir || !o->dir[0]) {
		tk_errf(TK_EINVAL, "adapters: no adapter directory given");
		return NULL;
	}
	struct engine_adapter_cache *c = calloc(1, sizeof *c);
	if (!c) {
		tk_errf(TK_ENOMEM, "adapters: out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->loaded, NULL);
	c->m = m;
	c->o = *o;
	DIR *d = NULL;
	if (!(c->dir = strdup(o->dir))) {
		tk_errf(TK_ENOMEM, "adapters: out of memory");
		goto fail;
	}
	c->o.dir = c->dir;
	d = opendir(o->dir);
	if (!d) {
		tk_errf_sys(errno == ENOENT ? TK_ENOENT : TK_EIO, errno, "adapters: directory %s",
			    o->dir);
		goto fail;
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".gguf") != 0 ||
		    !name_ok(de->d_name, len - 5))
			continue;
		char path[4096];
		if (snprintf(path, sizeof path, "%s/%s", o->dir, de->d_name) >= (int)sizeof path)
			continue;
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (c->n == ENGINE_ADAPTER_MAX_COUNT) {
			tk_errf(TK_ELIMIT, "adapters: %s holds more than %d adapters", o->dir,
				ENGINE_ADAPTER_MAX_COUNT);
			goto fail;
		}
		if (c->n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct entry *ne = realloc(c->e, nc * sizeof *ne);
			if (!ne) {
				tk_errf(TK_ENOMEM, "adapters: out of memory");
				goto fail;
			}
			c->e = ne;
			cap = nc;
		}
		struct entry *e = &c->e[c->n];
		memset(e, 0, sizeof *e);
		memcpy(e->name, de->d_name, len - 5);
		e->name[len - 5] = '\0';
		if (!(e->path = strdup(path))) {
			tk_errf(TK_ENOMEM, "adapters: out of memory");
			goto fail;
		}
		c->n++;
		if (file_sha256(path, e->sha256, &e->file_bytes) < 0) {
			tk_logf(TK_LOG_WARNING, "adapters",
				TK_FIELDS(TK_LF_S("name", e->name), TK_LF_S("error", tk_err_detail())),
				"cannot hash adapter file");
			e->sha256[0] = '\0';
		}
		e->load_bytes = predicted_bytes(path);
	}
	closedir(d);
	d = NULL;
	if (c->n)
		qsort(c->e, c->n, sizeof *c->e, entry_cmp);
	register_metrics(c, o->metrics);
	if (o->preload_all) {
		uint64_t total = 0;
		for (size_t i = 0; i < c->n; i++)
			total += c->e[i].load_bytes;
		if (o->budget_bytes && total > o->budget_bytes) {
			tk_errf(TK_ELIMIT, "adapters: preload-all needs %llu bytes for %zu adapters, "
				"over the budget of %llu bytes", (unsigned long long)total, c->n,
				(unsigned long long)o->budget_bytes);
			goto fail;
		}
		int rc = 0;
		pthread_mutex_lock(&c->mu); /* entry_load's contract; nobody else yet */
		for (size_t i = 0; i < c->n && rc == 0; i++)
			if ((rc = entry_load(c, &c->e[i], "preload")) < 0)
				tk_err_wrap(rc, "adapters: preload of %s", c->e[i].name);
		pthread_mutex_unlock(&c->mu);
		if (rc < 0)
			goto fail;
	}
	return c;
fail:
	if (d)
		closedir(d);
	engine_adapter_cache_free(c);
	return NULL;
}

int engine_adapter_cache_acquire(struct engine_adapter_cache *c, const char *name,
				 const struct engine_lora **out)
{
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct entry *e = entry_find(c, name);
	if (!e) {
		rc = tk_errf(TK_ENOENT, "adapters: no adapter named '%s' in %s", name ? name : "",
			     c->dir);
		goto out;
	}
	wait_loaded(c, e);
	if (e->lora) {
		e->hits++;
		c->hits++;
		tk_counter_inc(c->c_hits);
	} else {
		c->misses++;
		tk_counter_inc(c->c_miss);
		if ((rc = entry_load(c, e, "first use")) < 0)
			goto out;
	}
	e->refs++;
	e->last_used = ++c->clock;
	*out = e->lora;
out:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void engine_adapter_cache_release(struct engine_adapter_cache *c, const struct engine_lora *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].lora == a && c->e[i].refs > 0) {
			c->e[i].refs--;
			break;
		}
	pthread_mutex_unlock(&c->mu);
}

int engine_adapter_cache_load(struct engine_adapter_cache *c, const char *name)
{
	const struct engine_lora *a = NULL;
	int rc = engine_adapter_cache_acquire(c, name, &a);
	if (rc == 0)
		engine_adapter_cache_release(c, a);
	return rc;
}

int engine_adapter_cache_unload(struct engine_adapter_cache *c, const char *name)
{
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct entry *e = entry_find(c, name);
	if (e)
		wait_loaded(c, e);
	if (!e)
		rc = tk_errf(TK_ENOENT, "adapters: no adapter named '%s'", name ? name : "");
	else if (!e->lora)
		rc = tk_errf(TK_ESTATE, "adapters: %s is not loaded", e->name);
	else if (e->refs > 0)
		rc = tk_errf(TK_EBUSY, "adapters: %s is in use by %d sequence(s)", e->name, e->refs);
	else
		entry_drop(c, e, "unload");
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int engine_adapter_cache_pin(struct engine_adapter_cache *c, const char *name, bool pin)
{
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct entry *e = entry_find(c, name);
	if (!e) {
		rc = tk_errf(TK_ENOENT, "adapters: no adapter named '%s'", name ? name : "");
	} else if (!pin) {
		e->pinned = false;
	} else {
		wait_loaded(c, e);
		if (!e->lora) {
			c->misses++;
			tk_counter_inc(c->c_miss);
			rc = entry_load(c, e, "pin");
		}
		if (rc == 0) {
			e->pinned = true;
			e->last_used = ++c->clock;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void fill_info(const struct entry *e, struct engine_adapter_info *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->name, e->name, sizeof out->name);
	memcpy(out->sha256, e->sha256, sizeof out->sha256);
	out->file_bytes = e->file_bytes;
	out->load_bytes = e->lora ? engine_lora_bytes(e->lora) : e->load_bytes;
	out->resident = e->lora != NULL;
	out->pinned = e->pinned;
	out->refs = e->refs;
	out->max_rank = e->lora ? engine_lora_max_rank(e->lora) : 0;
	out->alpha = e->lora ? engine_lora_alpha(e->lora) : 0.0f;
	out->hits = e->hits;
	out->loads = e->loads;
}

size_t engine_adapter_cache_count(struct engine_adapter_cache *c)
{
	return c->n; /* fixed at creation */
}

int engine_adapter_cache_info(struct engine_adapter_cache *c, size_t i,
			      struct engine_adapter_info *out)
{
	if (i >= c->n)
		return tk_errf(TK_EINVAL, "adapters: index %zu out of range (%zu)", i, c->n);
	pthread_mutex_lock(&c->mu);
	fill_info(&c->e[i], out);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int engine_adapter_cache_find(struct engine_adapter_cache *c, const char *name,
			      struct engine_adapter_info *out)
{
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct entry *e = entry_find(c, name);
	if (e)
		fill_info(e, out);
	else
		rc = tk_errf(TK_ENOENT, "adapters: no adapter named '%s' in %s", name ? name : "",
			     c->dir);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void engine_adapter_cache_stats(struct engine_adapter_cache *c, struct engine_adapter_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = (struct engine_adapter_stats){ .registered = c->n, .resident = c->resident,
					      .resident_bytes = c->resident_bytes,
					      .budget_bytes = c->o.budget_bytes, .loads = c->loads,
					      .evictions = c->evictions, .hits = c->hits,
					      .misses = c->misses };
	pthread_mutex_unlock(&c->mu);
}
