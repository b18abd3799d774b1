/*
 * adapter_cache.h — the LoRA adapters a server offers: a registry read from a
 * directory, loaded on first use (or preloaded), kept resident under a byte
 * budget with least-recently-used eviction, pinning, and reference counts so
 * an adapter a sequence is using is never freed.
 *
 * Registry. engine_adapter_cache_new() lists DIR/<name>.gguf (regular files;
 * names of 1..ENGINE_ADAPTER_NAME_MAX bytes of [A-Za-z0-9._-]); for each it
 * records the file size, its SHA-256 and the bytes the adapter will take once
 * loaded (float32 A and B, read from the tensor infos without decoding). A
 * file that is not a valid GGUF is still listed, with its error, and fails to
 * load. The registry is fixed at creation.
 *
 * Residency. acquire(name) returns the loaded adapter with one reference
 * held (a hit), or loads it first (a miss). A load that would take resident
 * bytes past the budget first evicts resident adapters that are neither
 * pinned nor referenced, least recently used first; if that cannot make room
 * the load fails with TK_EBUSY (everything resident is pinned or in use) and
 * nothing is evicted. An adapter bigger than the whole budget is TK_ELIMIT.
 * Budget 0 means unlimited. preload_all loads every registered adapter at
 * creation and fails creation (TK_ELIMIT) when they do not all fit: then every
 * switch is a pointer change. unload(name) frees an unreferenced adapter
 * (TK_EBUSY while referenced); pinned adapters are never evicted (unload
 * still unpins and frees them).
 *
 * Metrics (registered on opts->metrics, when given): histograms
 * tanuki_adapter_load_seconds, tanuki_adapter_unload_seconds; counters
 * tanuki_adapter_loads_total, _evictions_total, _hits_total, _misses_total;
 * gauges tanuki_adapter_resident, tanuki_adapter_resident_bytes,
 * tanuki_adapter_budget_bytes. A log line (component "adapters") for every
 * load, unload and eviction: name, bytes, duration and reason.
 *
 * Thread safety: every function may be called from any thread at once; one
 * mutex guards the state. A load reads its file with the mutex released (its
 * bytes reserved against the budget, the entry marked loading): hits on other
 * adapters go on meanwhile, and a second request for the adapter being loaded
 * waits for that load instead of starting another. The model is borrowed and
 * must outlive the cache; free the cache after every acquired adapter is
 * released and no call is in progress.
 */
#ifndef TK_ENGINE_ADAPTER_CACHE_H
#define TK_ENGINE_ADAPTER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/lora.h"
#include "engine/model.h"

#define ENGINE_ADAPTER_NAME_MAX 128
#define ENGINE_ADAPTER_MAX_COUNT 4096 /* registered adapters per directory */

struct tk_registry;

struct engine_adapter_cache_opts {
	const char *dir;            /* directory of <name>.gguf files; required */
	uint64_t budget_bytes;      /* resident cap; 0: unlimited (default) */
	bool preload_all;           /* load everything at creation (default false) */
	struct tk_registry *metrics; /* NULL: no metrics (default) */
};

struct engine_adapter_info {
	char name[ENGINE_ADAPTER_NAME_MAX + 1];
	char sha256[65];        /* lowercase hex; "" when the file could not be read */
	uint64_t file_bytes;
	uint64_t load_bytes;    /* resident bytes once loaded (0 when not a valid GGUF) */
	bool resident, pinned;
	int32_t refs;           /* references held by acquire() */
	int32_t max_rank;       /* when resident */
	float alpha;            /* when resident */
	uint64_t hits, loads;   /* acquires served from memory / loads of this adapter */
};

struct engine_adapter_stats {
	size_t registered, resident;
	uint64_t resident_bytes, budget_bytes;
	uint64_t loads, evictions, hits, misses;
};

struct engine_adapter_cache;

void engine_adapter_cache_opts_default(struct engine_adapter_cache_opts *o);

/* Builds the registry (and preloads with preload_all). NULL with the detail
 * set: TK_EINVAL (no dir), TK_ENOENT / TK_EIO (directory), TK_ELIMIT (too many
 * files, or preload_all over budget), a load error, TK_ENOMEM. m and
 * o->metrics are borrowed; o is copied. */
struct engine_adapter_cache *engine_adapter_cache_new(const struct engine_model *m,
						      const struct engine_adapter_cache_opts *o);

/* Frees every adapter; NULL ok. No reference may be held any more. */
void engine_adapter_cache_free(struct engine_adapter_cache *c);

/* The adapter called name, loaded if needed, with a reference held: *out is
 * borrowed until engine_adapter_cache_release(). 0, TK_ENOENT (not
 * registered), TK_ELIMIT (bigger than the budget), TK_EBUSY (no room: the
 * rest is pinned or in use), or the load's error. */
int engine_adapter_cache_acquire(struct engine_adapter_cache *c, const char *name,
				 const struct engine_lora **out);

/* Drops a reference taken by acquire. a must be one acquire returned. */
void engine_adapter_cache_release(struct engine_adapter_cache *c, const struct engine_lora *a);

/* Makes name resident (as acquire + release). 0 or acquire's errors. */
int engine_adapter_cache_load(struct engine_adapter_cache *c, const char *name);

/* Frees a resident adapter now (unpinning it). 0, TK_ENOENT, TK_ESTATE (not
 * resident), TK_EBUSY (references held). */
int engine_adapter_cache_unload(struct engine_adapter_cache *c, const char *name);

/* Pins (loading it if needed) or unpins name. 0 or acquire's errors. */
int engine_adapter_cache_pin(struct engine_adapter_cache *c, const char *name, bool pin);

/* Registered adapters, sorted by name: count and info by index or by name
 * (0, TK_EINVAL / TK_ENOENT). */
size_t engine_adapter_cache_count(struct engine_adapter_cache *c);
int engine_adapter_cache_info(struct engine_adapter_cache *c, size_t i,
			      struct engine_adapter_info *out);
int engine_adapter_cache_find(struct engine_adapter_cache *c, const char *name,
			      struct engine_adapter_info *out);

void engine_adapter_cache_stats(struct engine_adapter_cache *c, struct engine_adapter_stats *out);

#endif
