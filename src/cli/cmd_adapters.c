/* cmd_adapters.c — `tanuki adapters list|info|load|unload|merge`: the LoRA
 * adapter cache (engine/adapter_cache.h) and merging (engine/lora.h) from
 * the command line. Owns nothing beyond one invocation. */
#include "cli/cli.h"
#include "cli/cli_adapter.h"

#include "core/err.h"
#include "engine/adapter_cache.h"
#include "engine/lora.h"
#include "engine/model.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"usage: tanuki adapters list   --model M.gguf --dir DIR\n"
	"       tanuki adapters info   --model M.gguf --dir DIR NAME\n"
	"       tanuki adapters load   --model M.gguf --dir DIR [--budget BYTES] [--pin] NAME...\n"
	"       tanuki adapters unload --model M.gguf --dir DIR NAME...\n"
	"       tanuki adapters merge  --model M.gguf --adapter FILE[:SCALE]... -o OUT.gguf\n\n"
	"LoRA adapters registered from DIR/<name>.gguf (docs/lora.md).\n"
	"list: name, file bytes, bytes once loaded, sha256 of every registered adapter.\n"
	"info: the same for NAME, then loads and validates it against the model and\n"
	"  prints its rank, alpha, pairs and load time.\n"
	"load: loads the NAMEs in order into a cache with the byte budget (0 or absent:\n"
	"  unlimited; --pin pins each), printing each load and eviction, then the\n"
	"  resident set. A one-shot process keeps nothing afterwards: this is the\n"
	"  cache the server's admin endpoints drive.\n"
	"unload: loads each NAME, then unloads it, printing both times.\n"
	"merge: writes the model with the adapters merged into its weights (adapted\n"
	"  weights in f32, everything else copied).";

struct ad_opts {
	const char *model, *dir, *out;
	long long budget;
	bool pin;
	struct cli_adapters adapters;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void print_info(const struct engine_adapter_info *i)
{
	printf("%-24s file %10llu B  loaded %10llu B  sha256 %s%s%s\n", i->name,
	       (unsigned long long)i->file_bytes, (unsigned long long)i->load_bytes,
	       i->sha256[0] ? i->sha256 : "-", i->resident ? "  resident" : "",
	       i->pinned ? " pinned" : "");
}

static int print_resident(struct engine_adapter_cache *c)
{
	struct engine_adapter_stats st;
	engine_adapter_cache_stats(c, &st);
	printf("resident: %zu adapters, %llu of %llu budget bytes (0: unlimited); loads %llu, "
	       "evictions %llu, hits %llu, misses %llu\n", st.resident,
	       (unsigned long long)st.resident_bytes, (unsigned long long)st.budget_bytes,
	       (unsigned long long)st.loads, (unsigned long long)st.evictions,
	       (unsigned long long)st.hits, (unsigned long long)st.misses);
	for (size_t i = 0; i < engine_adapter_cache_count(c); i++) {
		struct engine_adapter_info info;
		if (engine_adapter_cache_info(c, i, &info) == 0 && info.resident)
			print_info(&info);
	}
	return CLI_OK;
}

static int run_cache(const char *sub, const struct ad_opts *o, char **names, int n_names)
{
	const char *cmd = "adapters";
	int ret = CLI_FAIL;
	struct engine_adapter_cache *c = NULL;
	struct engine_model *m = engine_model_load(o->model);
	if (!m) {
		cli_fail(cmd, "cannot load the model");
		goto out;
	}
	struct engine_adapter_cache_opts co;
	engine_adapter_cache_opts_default(&co);
	co.dir = o->dir;
	co.budget_bytes = (uint64_t)o->budget;
	c = engine_adapter_cache_new(m, &co);
	if (!c) {
		cli_fail(cmd, "cannot read the adapter directory");
		goto out;
	}
	if (strcmp(sub, "list") == 0) {
		if (n_names) {
			ret = cli_usage_error(cmd, "list takes no names");
			goto out;
		}
		for (size_t i = 0; i < engine_adapter_cache_count(c); i++) {
			struct engine_adapter_info info;
			if (engine_adapter_cache_info(c, i, &info) == 0)
				print_info(&info);
		}
		ret = CLI_OK;
		goto out;
	}
	if (n_names == 0 || (strcmp(sub, "info") == 0 && n_names != 1)) {
		ret = cli_usage_error(cmd, "%s needs %s", sub,
				      strcmp(sub, "info") == 0 ? "one NAME" : "NAMEs");
		goto out;
	}
	for (int k = 0; k < n_names; k++) {
		struct engine_adapter_stats before, after;
		engine_adapter_cache_stats(c, &before);
		double t0 = now_ms();
		int rc = o->pin ? engine_adapter_cache_pin(c, names[k], true)
				: engine_adapter_cache_load(c, names[k]);
		double t1 = now_ms();
		if (rc < 0) {
			cli_fail(cmd, "%s", names[k]);
			goto out;
		}
		engine_adapter_cache_stats(c, &after);
		struct engine_adapter_info info;
		if (engine_adapter_cache_find(c, names[k], &info) < 0) {
			cli_fail(cmd, "%s", names[k]);
			goto out;
		}
		if (strcmp(sub, "info") == 0) {
			print_info(&info);
			const struct engine_lora *a = NULL;
			if (engine_adapter_cache_acquire(c, names[k], &a) == 0) {
				printf("rank %d  alpha %g  pairs %zu  load %.3f ms  (%.1f MB/s)\n",
				       info.max_rank, (double)info.alpha, engine_lora_n_pairs(a),
				       t1 - t0, t1 > t0 ? (double)info.file_bytes / 1e3 / (t1 - t0) : 0.0);
				engine_adapter_cache_release(c, a);
			}
			continue;
		}
		printf("loaded %s: %llu bytes in %.3f ms%s (evicted %llu)\n", names[k],
		       (unsigned long long)info.load_bytes, t1 - t0, o->pin ? ", pinned" : "",
		       (unsigned long long)(after.evictions - before.evictions));
		if (strcmp(sub, "unload") == 0) {
			t0 = now_ms();
			if (engine_adapter_cache_unload(c, names[k]) < 0) {
				cli_fail(cmd, "unload %s", names[k]);
				goto out;
			}
			printf("unloaded %s in %.3f ms\n", names[k], now_ms() - t0);
		}
	}
	ret = strcmp(sub, "info") == 0 ? CLI_OK : print_resident(c);
out:
	engine_adapter_cache_free(c);
	engine_model_free(m);
	return ret;
}

static int run_merge(struct ad_opts *o)
{
	const char *cmd = "adapters";
	if (!o->out)
		return cli_usage_error(cmd, "merge needs -o OUT.gguf");
	if (o->adapters.n == 0)
		return cli_usage_error(cmd, "merge needs at least one --adapter");
	int ret = CLI_FAIL;
	struct engine_model *m = engine_model_load(o->model);
	struct engine_ctx *ctx = NULL;
	if (!m) {
		cli_fail(cmd, "cannot load the model");
		goto out;
	}
	struct engine_ctx_params cp;
	engine_ctx_params_default(&cp);
	cp.n_ctx = 1;
	ctx = engine_ctx_new(m, &cp);
	if (!ctx) {
		cli_fail(cmd, "cannot make a context");
		goto out;
	}
	/* loads and validates every adapter (the context is only the checker) */
	int rc = cli_adapters_apply(cmd, &o->adapters, m, ctx);
	if (rc) {
		ret = rc;
		goto out;
	}
	double t0 = now_ms();
	if (engine_lora_merge_write(o->model, o->adapters.use, o->adapters.n, o->out) < 0) {
		cli_fail(cmd, "merge into %s", o->out);
		goto out;
	}
	printf("wrote %s (%zu adapter%s merged) in %.1f ms\n", o->out, o->adapters.n,
	       o->adapters.n == 1 ? "" : "s", now_ms() - t0);
	ret = CLI_OK;
out:
	engine_ctx_free(ctx);
	cli_adapters_free(&o->adapters);
	engine_model_free(m);
	return ret;
}

int cli_cmd_adapters(int argc, char **argv)
{
	const char *cmd = "adapters";
	if (argc < 2 || cli_wants_help(argc, argv)) {
		puts(usage);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *sub = argv[1];
	static const char *const subs[] = { "list", "info", "load", "unload", "merge" };
	bool known = false;
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		known = known || strcmp(sub, subs[i]) == 0;
	if (!known)
		return cli_usage_error(cmd, "unknown subcommand '%s' (list, info, load, unload, "
				       "merge)", sub);
	struct ad_opts o = { 0 };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "dir", required_argument, NULL, 'd' },
		{ "budget", required_argument, NULL, 'b' },
		{ "pin", no_argument, NULL, 'p' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c;
	long budget = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "m:d:b:pa:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o.model = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'b':
			if (cli_parse_long(cmd, "--budget", optarg, 0, INT64_MAX, &budget))
				return CLI_USAGE;
			o.budget = budget;
			break;
		case 'p': o.pin = true; break;
		case 'a':
			if (cli_adapters_add(cmd, &o.adapters, optarg))
				return CLI_USAGE;
			break;
		case 'o': o.out = optarg; break;
		case 'h': puts(usage); return CLI_OK;
		default: return cli_usage_error(cmd, "unknown option");
		}
	}
	if (!o.model)
		return cli_usage_error(cmd, "--model is required");
	if (strcmp(sub, "merge") == 0) {
		if (optind < argc - 1)
			return cli_usage_error(cmd, "unexpected argument '%s'", argv[1 + optind]);
		return run_merge(&o);
	}
	if (!o.dir)
		return cli_usage_error(cmd, "--dir is required");
	return run_cache(sub, &o, argv + 1 + optind, argc - 1 - optind);
}
