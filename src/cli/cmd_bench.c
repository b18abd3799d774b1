/* cmd_bench.c — `tanuki bench`: the engine's speed on one GGUF file, in
 * llama-bench's terms (pp: prompt tokens per second, one batch from an empty
 * cache; tg: tokens per second decoded one at a time), plus what llama-bench
 * does not measure: the memory-bandwidth roofline of decode (--membw),
 * aggregate decode with several sequences in one pass (--seqs) and the
 * saving of prompt-prefix reuse (--prefix). Owns nothing beyond one call;
 * prints numbers and never fails on speed.
 *
 * --membw with tg: one membw_probe (cli_membw.h) is made before the timed
 * tg repetitions (its buffer filled there, outside any timing); a short
 * probe of --membw-passes passes runs right before each timed repetition
 * and once after the last, and each repetition is compared with the mean
 * of the two probes around it (membw_pair_reps) — the "paired" figure,
 * which follows this VM's bandwidth swings. The overall figure is as
 * before: --membw's 10 passes after every other test, against the mean tg,
 * on the same buffer. */
#include "cli/cli.h"

#include "cli/cli_membw.h"
#include "core/err.h"
#include "core/time.h"
#include "engine/context.h"
#include "engine/cpu.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki bench --model M.gguf [-p 512] [-n 128] [-t THREADS] [-r REPS]\n"
	"                    [--kv f16|f32] [--seqs 1,2,4] [--membw] [--prefix]\n"
	"                    [--prefix-tokens 1500] [--suffix-tokens 50] [--seed S]\n"
	"                    [--membw-mib MIB] [--membw-method streams|plain]\n"
	"                    [--membw-passes 3] [--json]\n"
	"       tanuki bench --membw [-t THREADS] [--membw-mib MIB]\n"
	"                    [--membw-method streams|plain] [--json]\n\n"
	"Measures the engine like llama.cpp's llama-bench, on random token ids\n"
	"(fixed seed): pp<P> evaluates P tokens as one batch from an empty cache;\n"
	"tg<N> decodes N tokens one at a time from an empty cache. Each is run once\n"
	"to warm up, then REPS times (default 5); the figure is the mean tokens/s\n"
	"with its standard deviation. -p 0 or -n 0 skips that test.\n\n"
	"  -t, --threads T    threads (default: the physical cores)\n"
	"  --kv f16|f32       KV cache type (default f16, as llama.cpp)\n"
	"  --seqs LIST        aggregate decode tokens/s with that many sequences\n"
	"                     decoded together, each N tokens (e.g. 1,2,4)\n"
	"  --membw            measure read bandwidth (STREAM-like: several prefetched\n"
	"                     streams per thread, after the model runs) and print the\n"
	"                     decode roofline: bandwidth / bytes read per token\n"
	"                     (weights + the KV cache read at the mean position),\n"
	"                     and the bandwidth tg achieved as a % of it; with tg,\n"
	"                     also a short probe right before each timed tg\n"
	"                     repetition and after the last, each repetition's %\n"
	"                     of the mean of the two probes around it (paired)\n"
	"  --membw-passes N   passes of each paired probe (default 3; 0: no paired\n"
	"                     probes, only the overall one)\n"
	"  --membw-mib MIB    its buffer (default: the bytes read per token with\n"
	"                     --model, else 4x the last-level cache; at least\n"
	"                     256 MiB, at most 2 GiB)\n"
	"  --membw-method M   streams (default) or plain (one stream per thread,\n"
	"                     the earlier probe, which decode can beat)\n"
	"  --prefix           prompt-prefix reuse: a prompt of --prefix-tokens +\n"
	"                     --suffix-tokens evaluated cold (empty cache) and warm\n"
	"                     (the prefix kept, only the suffix evaluated)\n"
	"  --json             one JSON object instead of the table\n";

#define BENCH_MAX_REPS 1000
#define BENCH_MAX_SEQS 64
#define BENCH_MAX_SEQ_LIST 16
#define BENCH_MAX_MEMBW_PASSES 100
#define BENCH_DEFAULT_MEMBW_PASSES 3

struct bench_opts {
	const char *model;
	long n_prompt, n_gen, threads, reps, prefix_tokens, suffix_tokens, membw_mib;
	long membw_passes; /* passes of each paired probe; 0: none */
	unsigned long long seed;
	enum engine_kv_type kv;
	int seqs[BENCH_MAX_SEQ_LIST];
	int n_seqs;
	bool json, membw, prefix, membw_passes_set;
	enum membw_method membw_method;
};

/* --membw with tg: the short probes around the timed tg repetitions.
 * Probe i runs just before repetition i, probe reps just after the last. */
struct bench_paired {
	int passes;                 /* passes per probe */
	int n_probes, n_reps;       /* reps + 1 and reps once measured */
	struct membw_result *probe; /* owned, reps + 1 */
	double *pass_gbps;          /* owned, (reps + 1) x passes: probe i's
				     * passes at [i * passes] */
	double *probe_ms;           /* owned, reps + 1: each probe's whole call */
	double *rep_ms;             /* owned, reps: each timed tg repetition */
};

/* mean and sample standard deviation of tokens/s over the reps */
struct bench_stat {
	double mean, sd;
	double *samples; /* owned, n */
	int n;
};

static void stat_of(struct bench_stat *s)
{
	double sum = 0, sq = 0;
	for (int i = 0; i < s->n; i++)
		sum += s->samples[i];
	s->mean = s->n ? sum / s->n : 0;
	for (int i = 0; i < s->n; i++)
		sq += (s->samples[i] - s->mean) * (s->samples[i] - s->mean);
	s->sd = s->n > 1 ? sqrt(sq / (s->n - 1)) : 0;
}

/* xorshift64*: the random token ids (as llama-bench uses random ids; the
 * speed does not depend on which tokens) */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static int32_t *random_tokens(size_t n, int32_t n_vocab, uint64_t seed)
{
	int32_t *t = malloc((n ? n : 1) * sizeof *t);
	if (!t)
		return NULL;
	uint64_t s = seed ? seed : 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < n; i++)
		t[i] = (int32_t)(rng_next(&s) % (uint64_t)n_vocab);
	return t;
}

struct model_info {
	uint64_t params;
	size_t file_bytes;   /* tensor bytes in the file */
	size_t read_bytes;   /* weight bytes one decode step reads */
	size_t kv_pos_bytes; /* K and V bytes of one position over all layers */
	char type[64];       /* the type holding most weight bytes */
	char arch[32];
	/* packed weights (model.h): how the load went */
	const char *repack;  /* the model's pack_mode: "auto", "env-off", ... */
	int32_t n_packed;    /* weights with a packed copy */
	size_t packed_bytes;
	double pack_ms, load_ms; /* packing alone; the whole engine_model_load */
	long rss_kib;        /* resident memory after the load, or -1 */
};

/* VmRSS of this process in KiB, or -1. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void describe(const struct engine_model *m, enum engine_kv_type kv, struct model_info *mi)
{
	memset(mi, 0, sizeof *mi);
	size_t by_type[64] = { 0 };
	size_t nt = tk_gguf_tensor_count(m->gguf);
	for (size_t i = 0; i < nt; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(m->gguf, i);
		mi->params += (uint64_t)t->n_elements;
		mi->file_bytes += t->nbytes;
		if (t->type >= 0 && t->type < 64 && t->n_dims >= 2)
			by_type[t->type] += t->nbytes;
	}
	int best = 0;
	for (int t = 1; t < 64; t++)
		if (by_type[t] > by_type[best])
			best = t;
	snprintf(mi->type, sizeof mi->type, "%s", tk_type_name(best) ? tk_type_name(best) : "?");
	snprintf(mi->arch, sizeof mi->arch, "%s", m->arch->name);
	/* Decode reads every bound weight once, except the embedding table,
	 * of which only one row is read — unless the output shares it. */
	size_t embd = (size_t)m->tok_embd.n_out * m->tok_embd.row_bytes;
	mi->read_bytes = m->weights_bytes;
	if (!m->hp.tied_output && m->weights_bytes > embd)
		mi->read_bytes = m->weights_bytes - embd + m->tok_embd.row_bytes;
	size_t esz = kv == ENGINE_KV_F32 ? 4 : 2;
	mi->kv_pos_bytes = 2 * (size_t)m->hp.n_layer * (size_t)m->hp.n_head_kv *
			   (size_t)m->hp.head_dim * esz;
}

static int stat_alloc(struct bench_stat *s, int n)
{
	s->samples = calloc((size_t)n, sizeof *s->samples);
	s->n = 0;
	return s->samples ? 0 : tk_errf(TK_ENOMEM, "bench: out of memory");
}

/* pp: n_prompt tokens as one batch from an empty cache. */
static int run_pp(struct engine_ctx *ctx, const int32_t *toks, int32_t n, int reps,
		  struct bench_stat *st)
{
	for (int r = -1; r < reps; r++) { /* r == -1: warm-up */
		int rc = engine_ctx_rewind(ctx, 0);
		int64_t t0 = tk_time_mono_ns();
		if (!rc)
			rc = engine_ctx_eval(ctx, toks, n, NULL);
		int64_t dt = tk_time_mono_ns() - t0;
		if (rc)
			return tk_err_wrap(rc, "bench: pp%d", n);
		if (r >= 0)
			st->samples[st->n++] = (double)n * 1e9 / (double)(dt > 0 ? dt : 1);
	}
	stat_of(st);
	return 0;
}

/* One short probe of the paired series, the next in turn. */
static int paired_probe(struct membw_probe *probe, struct bench_paired *pd)
{
	int i = pd->n_probes;
	int rc = membw_probe_run(probe, pd->passes, &pd->probe[i],
				 &pd->pass_gbps[(size_t)i * (size_t)pd->passes], &pd->probe_ms[i]);
	if (rc)
		return tk_err_wrap(rc, "bench: paired probe %d", i);
	pd->n_probes++;
	return 0;
}

/* tg: n tokens one at a time from an empty cache. With a probe (--membw),
 * a short probe runs right before each timed repetition (after the
 * warm-up) and once after the last; it is never inside a timing. */
static int run_tg(struct engine_ctx *ctx, const int32_t *toks, int32_t n, int reps,
		  struct bench_stat *st, struct membw_probe *probe, struct bench_paired *pd)
{
	for (int r = -1; r < reps; r++) {
		int32_t len = r < 0 ? (n < 8 ? n : 8) : n; /* a short warm-up */
		int rc = r >= 0 && probe ? paired_probe(probe, pd) : 0;
		if (rc)
			return rc;
		rc = engine_ctx_rewind(ctx, 0);
		int64_t t0 = tk_time_mono_ns();
		for (int32_t i = 0; i < len && !rc; i++)
			rc = engine_ctx_eval(ctx, &toks[i], 1, NULL);
		int64_t dt = tk_time_mono_ns() - t0;
		if (rc)
			return tk_err_wrap(rc, "bench: tg%d", n);
		if (r >= 0) {
			st->samples[st->n++] = (double)n * 1e9 / (double)(dt > 0 ? dt : 1);
			if (probe)
				pd->rep_ms[pd->n_reps++] = (double)dt / 1e6;
		}
	}
	if (probe) {
		int rc = paired_probe(probe, pd);
		if (rc)
			return rc;
	}
	stat_of(st);
	return 0;
}

/* prefix reuse: cold = the whole prompt from an empty cache; warm = the
 * cache rewound to the prefix, only the suffix evaluated (what the embedded
 * backend does for a request sharing a prefix). Times in ms. */
static int run_prefix(struct engine_ctx *ctx, const int32_t *toks, int32_t n_pre, int32_t n_suf,
		      int reps, struct bench_stat *cold, struct bench_stat *warm)
{
	int32_t n = n_pre + n_suf;
	for (int r = -1; r < reps; r++) {
		int rc = engine_ctx_rewind(ctx, 0);
		int64_t t0 = tk_time_mono_ns();
		if (!rc)
			rc = engine_ctx_eval(ctx, toks, n, NULL);
		int64_t t1 = tk_time_mono_ns();
		if (!rc)
			rc = engine_ctx_rewind(ctx, n_pre);
		int64_t t2 = tk_time_mono_ns();
		if (!rc)
			rc = engine_ctx_eval(ctx, toks + n_pre, n_suf, NULL);
		int64_t t3 = tk_time_mono_ns();
		if (rc)
			return tk_err_wrap(rc, "bench: prefix");
		if (r >= 0) {
			cold->samples[cold->n++] = (double)(t1 - t0) / 1e6;
			warm->samples[warm->n++] = (double)(t3 - t2) / 1e6;
		}
	}
	stat_of(cold);
	stat_of(warm);
	return 0;
}

/* The mean over repetitions of a[r] / b[r] (b: the first count's samples,
 * taken in the same round): the ratio with the host's drift between rounds
 * divided out; 0 when there is nothing to pair. */
static double seqs_ratio_paired(const struct bench_stat *a, const struct bench_stat *b)
{
	const int n = a->n < b->n ? a->n : b->n;
	double sum = 0;
	int k = 0;
	for (int i = 0; i < n; i++)
		if (b->samples[i] > 0) {
			sum += a->samples[i] / b->samples[i];
			k++;
		}
	return k ? sum / k : 0.0;
}

/* --seqs: s sequences decoded together, one token each per step (one pass
 * over the weights per step), n steps from empty caches; every sequence's
 * logits are computed, as serving needs them; aggregate tokens/s. One
 * runner per sequence count; the counts take turns repetition by
 * repetition (run_seqs_all) so a host that slows down for a minute slows
 * every count alike and the ratios between them stay meaningful. */
struct seq_runner {
	int s;
	struct engine_ctx *ctx;
	int32_t *bt, *bs;
	float *logits;
};

static void seq_runner_free(struct seq_runner *sr)
{
	free(sr->logits);
	free(sr->bs);
	free(sr->bt);
	engine_ctx_free(sr->ctx);
	memset(sr, 0, sizeof *sr);
}

static int seq_runner_init(struct seq_runner *sr, const struct engine_model *m,
			   const struct bench_opts *o, int s)
{
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = (int32_t)o->n_gen + 1;
	cp.n_batch = s;
	cp.n_threads = (int32_t)o->threads;
	cp.kv_type = o->kv;
	cp.n_seq_max = s;
	memset(sr, 0, sizeof *sr);
	sr->s = s;
	sr->ctx = engine_ctx_new(m, &cp);
	sr->bt = malloc((size_t)s * sizeof *sr->bt);
	sr->bs = malloc((size_t)s * sizeof *sr->bs);
	sr->logits = malloc((size_t)s * (size_t)m->hp.n_vocab * sizeof *sr->logits);
	if (!sr->ctx || !sr->bt || !sr->bs || !sr->logits) {
		const int rc = sr->ctx ? tk_errf(TK_ENOMEM, "bench: out of memory")
				       : tk_err_wrap(tk_err_last() ? tk_err_last() : TK_ENOMEM,
						     "bench: context for %d sequences", s);
		seq_runner_free(sr);
		return rc;
	}
	for (int i = 0; i < s; i++)
		sr->bs[i] = i;
	return 0;
}

/* One pass of `steps` decode steps from empty caches; *tps = aggregate
 * tokens/s. */
static int seq_runner_pass(struct seq_runner *sr, const int32_t *toks, int32_t n, int32_t steps,
			   double *tps)
{
	int rc = 0;
	const int s = sr->s;
	for (int i = 0; i < s && !rc; i++)
		rc = engine_ctx_seq_clear(sr->ctx, i);
	const int64_t t0 = tk_time_mono_ns();
	for (int32_t k = 0; k < steps && !rc; k++) {
		/* sequence i decodes its own stream of random ids */
		for (int i = 0; i < s; i++)
			sr->bt[i] = toks[((size_t)i * 7919u + (size_t)k) % (size_t)n];
		int8_t want[BENCH_MAX_SEQS];
		memset(want, 1, sizeof want);
		struct engine_batch b = { .n = s, .tokens = sr->bt, .seq = sr->bs, .want = want };
		rc = engine_ctx_decode(sr->ctx, &b, sr->logits);
	}
	const int64_t dt = tk_time_mono_ns() - t0;
	if (rc)
		return tk_err_wrap(rc, "bench: %d sequences", s);
	*tps = (double)s * steps * 1e9 / (double)(dt > 0 ? dt : 1);
	return 0;
}

/* Every count of o->seqs: one warm-up pass each (8 steps), then o->reps
 * rounds of one timed pass per count, in list order; st[i] gets count i's
 * samples. On failure *failed is the count that failed. */
static int run_seqs_all(const struct engine_model *m, const struct bench_opts *o,
			const int32_t *toks, struct bench_stat *st, int *failed)
{
	struct seq_runner sr[BENCH_MAX_SEQ_LIST];
	int rc = 0, made = 0;
	const int32_t n = (int32_t)o->n_gen;
	double tps;
	for (; made < o->n_seqs; made++)
		if ((rc = stat_alloc(&st[made], (int)o->reps)) ||
		    (rc = seq_runner_init(&sr[made], m, o, o->seqs[made]))) {
			*failed = o->seqs[made]; /* sr[made] is not made */
			goto out;
		}
	for (int i = 0; i < o->n_seqs && !rc; i++)
		if ((rc = seq_runner_pass(&sr[i], toks, n, n < 8 ? n : 8, &tps)))
			*failed = o->seqs[i];
	for (long r = 0; r < o->reps && !rc; r++)
		for (int i = 0; i < o->n_seqs && !rc; i++) {
			if ((rc = seq_runner_pass(&sr[i], toks, n, n, &tps)))
				*failed = o->seqs[i];
			else
				st[i].samples[st[i].n++] = tps;
		}
	for (int i = 0; i < o->n_seqs && !rc; i++)
		stat_of(&st[i]);
out:
	for (int i = 0; i < made; i++)
		seq_runner_free(&sr[i]);
	return rc;
}

static int parse_seqs(const char *arg, struct bench_opts *o)
{
	const char *p = arg;
	o->n_seqs = 0;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > BENCH_MAX_SEQS || o->n_seqs == BENCH_MAX_SEQ_LIST ||
		    (*end && *end != ','))
			return cli_usage_error("bench", "--seqs: expected up to %d counts in 1..%d "
					       "separated by commas, got '%s'",
					       BENCH_MAX_SEQ_LIST, BENCH_MAX_SEQS, arg);
		o->seqs[o->n_seqs++] = (int)v;
		p = *end ? end + 1 : end;
	}
	if (!o->n_seqs)
		return cli_usage_error("bench", "--seqs: empty list");
	return 0;
}

static json_t *stat_json(const struct bench_stat *s)
{
	json_t *a = json_array();
	for (int i = 0; i < s->n; i++)
		json_array_append_new(a, json_real(s->samples[i]));
	return json_pack("{s:f, s:f, s:o}", "mean", s->mean, "stddev", s->sd, "samples", a);
}

enum {
	OPT_KV = 256,
	OPT_SEQS,
	OPT_MEMBW,
	OPT_PREFIX,
	OPT_PREFIX_TOKENS,
	OPT_SUFFIX_TOKENS,
	OPT_SEED,
	OPT_JSON,
	OPT_MEMBW_MIB,
	OPT_MEMBW_METHOD,
	OPT_MEMBW_PASSES,
};

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "n-prompt", required_argument, NULL, 'p' },
		{ "n-gen", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "kv", required_argument, NULL, OPT_KV },
		{ "seqs", required_argument, NULL, OPT_SEQS },
		{ "membw", no_argument, NULL, OPT_MEMBW },
		{ "prefix", no_argument, NULL, OPT_PREFIX },
		{ "prefix-tokens", required_argument, NULL, OPT_PREFIX_TOKENS },
		{ "suffix-tokens", required_argument, NULL, OPT_SUFFIX_TOKENS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "membw-mib", required_argument, NULL, OPT_MEMBW_MIB },
		{ "membw-method", required_argument, NULL, OPT_MEMBW_METHOD },
		{ "membw-passes", required_argument, NULL, OPT_MEMBW_PASSES },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct bench_opts){ .n_prompt = 512, .n_gen = 128, .reps = 5,
				  .prefix_tokens = 1500, .suffix_tokens = 50, .seed = 1234,
				  .kv = ENGINE_KV_F16,
				  .membw_passes = BENCH_DEFAULT_MEMBW_PASSES };
	optind = 1;
	int c;
	long v;
	while ((c = getopt_long(argc, argv, "+m:p:n:t:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p':
			if (cli_parse_long("bench", "-p", optarg, 0, 1 << 20, &o->n_prompt))
				return CLI_USAGE;
			break;
		case 'n':
			if (cli_parse_long("bench", "-n", optarg, 0, 1 << 20, &o->n_gen))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_parse_long("bench", "--threads", optarg, 1, ENGINE_MAX_THREADS,
					   &o->threads))
				return CLI_USAGE;
			break;
		case 'r':
			if (cli_parse_long("bench", "--reps", optarg, 1, BENCH_MAX_REPS, &o->reps))
				return CLI_USAGE;
			break;
		case OPT_KV:
			if (!strcmp(optarg, "f16"))
				o->kv = ENGINE_KV_F16;
			else if (!strcmp(optarg, "f32"))
				o->kv = ENGINE_KV_F32;
			else
				return cli_usage_error("bench", "--kv: expected f16 or f32, got '%s'",
						       optarg);
			break;
		case OPT_SEQS:
			if (parse_seqs(optarg, o))
				return CLI_USAGE;
			break;
		case OPT_MEMBW: o->membw = true; break;
		case OPT_PREFIX: o->prefix = true; break;
		case OPT_PREFIX_TOKENS:
			if (cli_parse_long("bench", "--prefix-tokens", optarg, 1, 1 << 20,
					   &o->prefix_tokens))
				return CLI_USAGE;
			break;
		case OPT_SUFFIX_TOKENS:
			if (cli_parse_long("bench", "--suffix-tokens", optarg, 1, 1 << 20,
					   &o->suffix_tokens))
				return CLI_USAGE;
			break;
		case OPT_SEED:
			if (cli_parse_long("bench", "--seed", optarg, 0, 0x7fffffffL, &v))
				return CLI_USAGE;
			o->seed = (unsigned long long)v;
			break;
		case OPT_JSON: o->json = true; break;
		case OPT_MEMBW_MIB:
			if (cli_parse_long("bench", "--membw-mib", optarg, 2, 1L << 20, &o->membw_mib))
				return CLI_USAGE;
			break;
		case OPT_MEMBW_METHOD:
			if (membw_method_parse(optarg, &o->membw_method))
				return cli_usage_error("bench", "--membw-method: expected streams or "
						       "plain, got '%s'", optarg);
			break;
		case OPT_MEMBW_PASSES:
			if (cli_parse_long("bench", "--membw-passes", optarg, 0,
					   BENCH_MAX_MEMBW_PASSES, &o->membw_passes))
				return CLI_USAGE;
			o->membw_passes_set = true;
			break;
		case 'h': puts(usage); return -1;
		default: return cli_usage_error("bench", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (!o->model && !o->membw)
		return cli_usage_error("bench", "--model is required (or --membw alone)");
	if (o->model && o->n_seqs && !o->n_gen)
		return cli_usage_error("bench", "--seqs needs -n > 0");
	if (o->membw_passes_set && !o->membw)
		return cli_usage_error("bench", "--membw-passes needs --membw");
	if (!o->threads)
		o->threads = engine_default_threads();
	return 0;
}

struct bench_out {
	struct model_info mi;
	struct bench_stat pp, tg, cold, warm, seqs[BENCH_MAX_SEQ_LIST];
	struct membw_result bw;
	bool have_bw;
	struct bench_paired paired; /* n_probes 0: no paired probes ran */
	char cpu[160];
	const char *isa;
};

static void bench_out_free(struct bench_out *r)
{
	free(r->pp.samples);
	free(r->tg.samples);
	free(r->cold.samples);
	free(r->warm.samples);
	for (int i = 0; i < BENCH_MAX_SEQ_LIST; i++)
		free(r->seqs[i].samples);
	free(r->paired.probe);
	free(r->paired.pass_gbps);
	free(r->paired.probe_ms);
	free(r->paired.rep_ms);
}

static int paired_alloc(struct bench_paired *pd, int reps, int passes)
{
	pd->passes = passes;
	pd->probe = calloc((size_t)reps + 1, sizeof *pd->probe);
	pd->pass_gbps = calloc(((size_t)reps + 1) * (size_t)passes, sizeof *pd->pass_gbps);
	pd->probe_ms = calloc((size_t)reps + 1, sizeof *pd->probe_ms);
	pd->rep_ms = calloc((size_t)reps, sizeof *pd->rep_ms);
	if (!pd->probe || !pd->pass_gbps || !pd->probe_ms || !pd->rep_ms)
		return tk_errf(TK_ENOMEM, "bench: out of memory");
	return 0;
}

/* Bytes one tg token reads: the weights, and the KV cache at the mean
 * position of an n-token decode from empty ((n+1)/2 positions). */
static double bytes_per_token(const struct bench_opts *o, const struct model_info *mi)
{
	return (double)mi->read_bytes + (double)mi->kv_pos_bytes * (double)(o->n_gen + 1) / 2.0;
}

/* tg against the bandwidth measured in the same call: the roofline (t/s
 * if every byte a token reads came at the probe's best rate, and at its
 * mean rate), the bytes per second tg actually read, and that as a % of
 * the best and of the mean bandwidth. */
struct roofline {
	double bytes_per_token;
	double tps_best, tps_mean; /* roofline t/s */
	double decode_gbps;        /* tg mean t/s x bytes per token */
	double pct_best, pct_mean; /* decode_gbps / bandwidth, % */
};

static void roofline_of(const struct bench_opts *o, const struct bench_out *r,
			struct roofline *rl)
{
	rl->bytes_per_token = bytes_per_token(o, &r->mi);
	rl->tps_best = r->bw.best_gbps * 1e9 / rl->bytes_per_token;
	rl->tps_mean = r->bw.mean_gbps * 1e9 / rl->bytes_per_token;
	rl->decode_gbps = r->tg.mean * rl->bytes_per_token / 1e9;
	rl->pct_best = r->bw.best_gbps > 0 ? 100.0 * rl->decode_gbps / r->bw.best_gbps : 0;
	rl->pct_mean = r->bw.mean_gbps > 0 ? 100.0 * rl->decode_gbps / r->bw.mean_gbps : 0;
}

/* The paired figure: every timed tg repetition against the mean of the
 * short probes just before and just after it (membw_pair_reps), and what
 * those probes cost next to the tg time they bracket. */
struct paired_fig {
	struct membw_pair *pairs; /* owned, n */
	int n;
	struct membw_pair_stats st;
	double probe_best_gbps;   /* the best pass of any paired probe */
	double probe_ms_mean;     /* one probe's whole call */
	double rep_ms_mean;       /* one timed tg repetition */
	double cost_pct;          /* all probes' ms / all timed tg ms, % */
};

static void paired_fig_free(struct paired_fig *f)
{
	free(f->pairs);
	f->pairs = NULL;
}

/* 0 with *f filled (free with paired_fig_free), or a TK_E* code. */
static int paired_of(const struct bench_opts *o, const struct bench_out *r, struct paired_fig *f)
{
	memset(f, 0, sizeof *f);
	const struct bench_paired *pd = &r->paired;
	int n = pd->n_reps;
	if (n < 1 || pd->n_probes != n + 1 || r->tg.n != n)
		return tk_errf(TK_EINVAL, "bench: %d probes around %d repetitions (%d tg samples)",
			       pd->n_probes, n, r->tg.n);
	double bpt = bytes_per_token(o, &r->mi);
	double *probe = malloc((size_t)(n + 1) * sizeof *probe);
	double *decode = malloc((size_t)n * sizeof *decode);
	f->pairs = malloc((size_t)n * sizeof *f->pairs);
	int rc = 0;
	if (!probe || !decode || !f->pairs) {
		rc = tk_errf(TK_ENOMEM, "bench: out of memory");
		goto out;
	}
	double probe_ms = 0, rep_ms = 0;
	for (int i = 0; i <= n; i++) {
		probe[i] = pd->probe[i].best_gbps;
		probe_ms += pd->probe_ms[i];
		if (probe[i] > f->probe_best_gbps)
			f->probe_best_gbps = probe[i];
	}
	for (int i = 0; i < n; i++) {
		decode[i] = r->tg.samples[i] * bpt / 1e9;
		rep_ms += pd->rep_ms[i];
	}
	rc = membw_pair_reps(probe, decode, n, f->pairs, &f->st);
	if (rc)
		goto out;
	f->n = n;
	f->probe_ms_mean = probe_ms / (n + 1);
	f->rep_ms_mean = rep_ms / n;
	f->cost_pct = rep_ms > 0 ? 100.0 * probe_ms / rep_ms : 0;
out:
	free(decode);
	free(probe);
	if (rc)
		paired_fig_free(f);
	return rc;
}

static json_t *paired_json(const struct bench_out *r, const struct paired_fig *f)
{
	const struct bench_paired *pd = &r->paired;
	json_t *probes = json_array(), *reps = json_array();
	for (int i = 0; i < pd->n_probes; i++) {
		json_t *passes = json_array();
		for (int k = 0; k < pd->passes; k++)
			json_array_append_new(passes,
					      json_real(pd->pass_gbps[(size_t)i * (size_t)pd->passes +
								  (size_t)k]));
		json_array_append_new(probes, json_pack("{s:f, s:f, s:f, s:o}", "best_gbps",
							pd->probe[i].best_gbps, "mean_gbps",
							pd->probe[i].mean_gbps, "ms", pd->probe_ms[i],
							"passes_gbps", passes));
	}
	for (int i = 0; i < f->n; i++) {
		const struct membw_pair *q = &f->pairs[i];
		json_array_append_new(reps, json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
						      "tokens_per_s", r->tg.samples[i], "ms",
						      pd->rep_ms[i], "decode_gbps", q->decode_gbps,
						      "before_gbps", q->before_gbps, "after_gbps",
						      q->after_gbps, "ceiling_gbps", q->ceiling_gbps,
						      "achieved_pct", q->pct));
	}
	return json_pack("{s:i, s:o, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "passes",
			 pd->passes, "probes", probes, "reps", reps, "achieved_pct_mean",
			 f->st.pct_mean, "achieved_pct_min", f->st.pct_min, "achieved_pct_max",
			 f->st.pct_max, "ceiling_gbps_min", f->st.ceiling_min, "ceiling_gbps_max",
			 f->st.ceiling_max, "probe_best_gbps", f->probe_best_gbps, "probe_ms_mean",
			 f->probe_ms_mean, "tg_rep_ms_mean", f->rep_ms_mean, "probe_cost_pct",
			 f->cost_pct);
}

static int print_json(const struct bench_opts *o, const struct bench_out *r)
{
	json_t *j = json_pack("{s:s?, s:i, s:s, s:s, s:s, s:I, s:I, s:I}", "model", o->model,
			      "threads", (int)o->threads, "kv", o->kv == ENGINE_KV_F32 ? "f32" : "f16",
			      "cpu", r->cpu, "isa", r->isa, "n_prompt", (json_int_t)o->n_prompt,
			      "n_gen", (json_int_t)o->n_gen, "reps", (json_int_t)o->reps);
	if (!j)
		return tk_errf(TK_ENOMEM, "bench: out of memory");
	if (o->model) {
		json_object_set_new(j, "arch", json_string(r->mi.arch));
		json_object_set_new(j, "type", json_string(r->mi.type));
		json_object_set_new(j, "params", json_integer((json_int_t)r->mi.params));
		json_object_set_new(j, "size_bytes", json_integer((json_int_t)r->mi.file_bytes));
		json_object_set_new(j, "repack",
				    json_pack("{s:s, s:b, s:i, s:I, s:f, s:f, s:I}", "mode",
					      r->mi.repack ? r->mi.repack : "?", "packed",
					      r->mi.n_packed > 0, "weights", (int)r->mi.n_packed,
					      "bytes", (json_int_t)r->mi.packed_bytes, "pack_ms",
					      r->mi.pack_ms, "load_ms", r->mi.load_ms, "rss_kib",
					      (json_int_t)r->mi.rss_kib));
		json_object_set_new(j, "bytes_per_token",
				    json_integer((json_int_t)llround(bytes_per_token(o, &r->mi))));
	}
	if (r->pp.n)
		json_object_set_new(j, "pp", stat_json(&r->pp));
	if (r->tg.n)
		json_object_set_new(j, "tg", stat_json(&r->tg));
	if (r->have_bw) {
		json_object_set_new(j, "membw",
				    json_pack("{s:f, s:f, s:I, s:i, s:i, s:s, s:i, s:i, s:b, s:s}",
					      "best_gbps", r->bw.best_gbps, "mean_gbps",
					      r->bw.mean_gbps, "bytes", (json_int_t)r->bw.bytes,
					      "threads", r->bw.threads, "reps", r->bw.reps,
					      "method", membw_method_name(r->bw.method), "streams",
					      r->bw.streams, "prefetch_bytes", r->bw.prefetch_bytes,
					      "hugepages", (int)r->bw.hugepages, "isa", r->bw.isa));
		if (o->model && r->tg.n) {
			struct roofline rl;
			roofline_of(o, r, &rl);
			json_object_set_new(j, "roofline",
					    json_pack("{s:f, s:f, s:f, s:f, s:f}", "tokens_per_s",
						      rl.tps_best, "tokens_per_s_mean", rl.tps_mean,
						      "decode_gbps", rl.decode_gbps, "achieved_pct",
						      rl.pct_best, "achieved_pct_mean", rl.pct_mean));
		}
	}
	if (r->paired.n_probes) {
		struct paired_fig f;
		int prc = paired_of(o, r, &f);
		json_t *pj = prc ? NULL : paired_json(r, &f);
		paired_fig_free(&f);
		if (!pj) {
			json_decref(j);
			return prc ? prc : tk_errf(TK_ENOMEM, "bench: out of memory");
		}
		json_object_set_new(j, "roofline_paired", pj);
	}
	if (o->model && o->n_seqs) {
		json_t *a = json_array();
		for (int i = 0; i < o->n_seqs; i++) {
			json_t *e = stat_json(&r->seqs[i]);
			json_object_set_new(e, "n_seq", json_integer(o->seqs[i]));
			json_object_set_new(e, "ratio_paired",
					    json_real(seqs_ratio_paired(&r->seqs[i], &r->seqs[0])));
			json_array_append_new(a, e);
		}
		json_object_set_new(j, "seqs", a);
	}
	if (r->cold.n) {
		json_t *e = json_pack("{s:I, s:I, s:o, s:o}", "prefix_tokens",
				      (json_int_t)o->prefix_tokens, "suffix_tokens",
				      (json_int_t)o->suffix_tokens, "cold_ms", stat_json(&r->cold),
				      "warm_ms", stat_json(&r->warm));
		json_object_set_new(j, "prefix", e);
	}
	int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) ? TK_EIO : 0;
	json_decref(j);
	putchar('\n');
	return rc ? tk_errf(rc, "bench: cannot write the JSON") : 0;
}

static void print_table(const struct bench_opts *o, const struct bench_out *r)
{
	if (o->model) {
		bool big = r->mi.params >= 1000000000u;
		printf("model: %s (%s, %.2f %s params, %.2f MiB, %s)\n", o->model, r->mi.arch,
		       (double)r->mi.params / (big ? 1e9 : 1e6), big ? "B" : "M",
		       (double)r->mi.file_bytes / (1u << 20), r->mi.type);
		if (r->mi.n_packed)
			printf("weights repacked: %d (%.2f MiB) in %.0f ms of a %.0f ms load "
			       "(mode %s), rss %.0f MiB\n", (int)r->mi.n_packed,
			       (double)r->mi.packed_bytes / (1u << 20), r->mi.pack_ms, r->mi.load_ms,
			       r->mi.repack, (double)r->mi.rss_kib / 1024.0);
		else
			printf("weights repacked: no (mode %s), load %.0f ms, rss %.0f MiB\n",
			       r->mi.repack ? r->mi.repack : "?", r->mi.load_ms,
			       (double)r->mi.rss_kib / 1024.0);
	}
	printf("threads %ld, kv %s, isa %s, cpu: %s\n", o->threads,
	       o->kv == ENGINE_KV_F32 ? "f32" : "f16", r->isa, r->cpu);
	if (r->pp.n || r->tg.n || o->n_seqs)
		printf("| %-14s | %20s |\n|----------------|----------------------|\n", "test",
		       "t/s");
	if (r->pp.n)
		printf("| pp%-12ld | %11.2f ± %6.2f |\n", o->n_prompt, r->pp.mean, r->pp.sd);
	if (r->tg.n)
		printf("| tg%-12ld | %11.2f ± %6.2f |\n", o->n_gen, r->tg.mean, r->tg.sd);
	for (int i = 0; o->model && i < o->n_seqs; i++) {
		char name[32];
		snprintf(name, sizeof name, "tg%ld x%d seq", o->n_gen, o->seqs[i]);
		printf("| %-14s | %11.2f ± %6.2f |\n", name, r->seqs[i].mean, r->seqs[i].sd);
	}
	if (r->have_bw) {
		printf("membw: %.2f GB/s best, %.2f mean (%zu MiB, %d threads, %d reps, %s: %d "
		       "stream%s, prefetch %d, huge pages %s, %s loads)\n", r->bw.best_gbps,
		       r->bw.mean_gbps, r->bw.bytes >> 20, r->bw.threads, r->bw.reps,
		       membw_method_name(r->bw.method), r->bw.streams, r->bw.streams == 1 ? "" : "s",
		       r->bw.prefetch_bytes, r->bw.hugepages ? "advised" : "no", r->bw.isa);
		if (o->model && r->tg.n) {
			struct roofline rl;
			roofline_of(o, r, &rl);
			printf("roofline: %.1f MB read per token -> %.2f t/s at the best bandwidth "
			       "(%.2f at the mean); tg read %.2f GB/s: %.1f%% of the roofline "
			       "(%.1f%% of the mean)\n", rl.bytes_per_token / 1e6, rl.tps_best,
			       rl.tps_mean, rl.decode_gbps, rl.pct_best, rl.pct_mean);
		}
	}
	struct paired_fig f;
	if (r->paired.n_probes && !paired_of(o, r, &f)) {
		printf("roofline, paired (a %d-pass probe before each tg rep and after the last; "
		       "each rep against the mean of the two probes around it):\n",
		       r->paired.passes);
		for (int i = 0; i < f.n; i++)
			printf("  rep %d: %.2f t/s, tg read %.2f GB/s; probes %.2f | %.2f GB/s -> "
			       "%.1f%%\n", i + 1, r->tg.samples[i], f.pairs[i].decode_gbps,
			       f.pairs[i].before_gbps, f.pairs[i].after_gbps, f.pairs[i].pct);
		printf("  paired: %.1f%% of the roofline (mean; min %.1f%%, max %.1f%%), ceilings "
		       "%.2f-%.2f GB/s, best probe pass %.2f GB/s; probes cost %.1f ms each, "
		       "%.1f%% of the tg time\n", f.st.pct_mean, f.st.pct_min, f.st.pct_max,
		       f.st.ceiling_min, f.st.ceiling_max, f.probe_best_gbps, f.probe_ms_mean,
		       f.cost_pct);
		paired_fig_free(&f);
	}
	if (o->model && o->n_seqs > 1) {
		printf("seqs: the counts took turns, one timed pass each per round; each round's "
		       "t/s over x%d's in that round (mean):", o->seqs[0]);
		for (int i = 1; i < o->n_seqs; i++)
			printf(" x%d %.2f", o->seqs[i], seqs_ratio_paired(&r->seqs[i], &r->seqs[0]));
		printf("\n");
	}
	if (r->cold.n)
		printf("prefix reuse: %ld + %ld tokens: cold %.1f ± %.1f ms, warm (suffix only) "
		       "%.1f ± %.1f ms, %.1fx\n", o->prefix_tokens, o->suffix_tokens, r->cold.mean,
		       r->cold.sd, r->warm.mean, r->warm.sd,
		       r->warm.mean > 0 ? r->cold.mean / r->warm.mean : 0.0);
}

int cli_cmd_bench(int argc, char **argv)
{
	struct bench_opts o;
	int prc = parse_args(argc, argv, &o);
	if (prc)
		return prc < 0 ? CLI_OK : prc;
	int ret = CLI_FAIL;
	struct bench_out r;
	memset(&r, 0, sizeof r);
	tk_cpu_describe(r.cpu, sizeof r.cpu);
	r.isa = tk_quant_isa_name(tk_quant_isa_active());
	struct engine_model *m = NULL;
	struct engine_ctx *ctx = NULL;
	struct membw_probe *probe = NULL;
	int32_t *toks = NULL;
	const int reps = (int)o.reps;
	struct membw_opts mo = { .bytes = (size_t)o.membw_mib << 20, .threads = (int)o.threads,
				 .method = o.membw_method };

	if (o.model) {
		const int64_t t_load = tk_time_mono_ns();
		if (!(m = engine_model_load(o.model))) {
			cli_fail("bench", "cannot load the model");
			goto out;
		}
		const double load_ms = (double)(tk_time_mono_ns() - t_load) / 1e6;
		describe(m, o.kv, &r.mi);
		r.mi.repack = m->pack_mode;
		r.mi.n_packed = m->n_packed;
		r.mi.packed_bytes = m->packed_bytes;
		r.mi.pack_ms = m->pack_ms;
		r.mi.load_ms = load_ms;
		r.mi.rss_kib = rss_kib();
		long n_tok = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
		if (o.prefix && o.prefix_tokens + o.suffix_tokens > n_tok)
			n_tok = o.prefix_tokens + o.suffix_tokens;
		toks = random_tokens((size_t)n_tok, m->hp.n_vocab, o.seed);
		struct engine_ctx_params cp;
		engine_ctx_params_default(&cp);
		cp.n_ctx = (int32_t)(n_tok > 0 ? n_tok : 1);
		/* n_batch 0: min(n_ctx, 512), llama-bench's default micro-batch, so
		 * pp512 is one step and longer prompts go in steps of 512 */
		cp.n_batch = 0;
		cp.n_threads = (int32_t)o.threads;
		cp.kv_type = o.kv;
		if (!toks || !(ctx = engine_ctx_new(m, &cp))) {
			cli_fail("bench", "cannot make a context");
			goto out;
		}
		if (o.n_prompt && (stat_alloc(&r.pp, reps) ||
				   run_pp(ctx, toks, (int32_t)o.n_prompt, reps, &r.pp))) {
			cli_fail("bench", "prompt processing");
			goto out;
		}
		/* with a model: a probe buffer the size of what a token reads
		 * (membw_bytes_for) */
		if (!mo.bytes)
			mo.bytes = membw_bytes_for(bytes_per_token(&o, &r.mi));
		/* the paired probes: made (buffer filled) before any timing */
		if (o.membw && o.n_gen && o.membw_passes &&
		    (paired_alloc(&r.paired, reps, (int)o.membw_passes) ||
		     !(probe = membw_probe_new(&mo)))) {
			cli_fail("bench", "--membw");
			goto out;
		}
		if (o.n_gen && (stat_alloc(&r.tg, reps) ||
				run_tg(ctx, toks, (int32_t)o.n_gen, reps, &r.tg, probe, &r.paired))) {
			cli_fail("bench", "generation");
			goto out;
		}
		if (o.prefix && (stat_alloc(&r.cold, reps) || stat_alloc(&r.warm, reps) ||
				 run_prefix(ctx, toks, (int32_t)o.prefix_tokens,
					    (int32_t)o.suffix_tokens, reps, &r.cold, &r.warm))) {
			cli_fail("bench", "prefix reuse");
			goto out;
		}
		engine_ctx_free(ctx);
		ctx = NULL;
		int failed = 0;
		if (o.n_seqs && run_seqs_all(m, &o, toks, r.seqs, &failed)) {
			cli_fail("bench", "--seqs %d", failed);
			goto out;
		}
	}
	if (o.membw) {
		/* the overall figure: 10 passes after every other test, on the
		 * paired probes' buffer when there is one */
		if ((!probe && !(probe = membw_probe_new(&mo))) ||
		    membw_probe_run(probe, 0, &r.bw, NULL, NULL)) {
			cli_fail("bench", "--membw");
			goto out;
		}
		r.have_bw = true;
	}
	if (o.json) {
		if (print_json(&o, &r)) {
			cli_fail("bench", "output");
			goto out;
		}
	} else {
		print_table(&o, &r);
	}
	ret = fflush(stdout) ? CLI_FAIL : CLI_OK;
out:
	membw_probe_free(probe);
	bench_out_free(&r);
	engine_ctx_free(ctx);
	free(toks);
	engine_model_free(m);
	return ret;
}
