/*
 * cmd_model.c — `tanuki model info` (what a GGUF file holds and what it needs
 * in memory), `tanuki model synth` (write a random-weight model) and
 * `tanuki model quantize` (re-encode a model's weights; engine/quantize.h).
 *
 * The output forms of `model info` are an interface (docs/engine.md, "tanuki
 * model info"): text is one "key: value" line per field in a fixed order,
 * absent values printed as "-"; --json prints one object with the same keys
 * (absent values null). Numbers are plain integers or %g floats.
 */
#include "cli/cli.h"

#include "core/err.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "engine/synth.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki model info MODEL.gguf [--json] [--ctx N]\n"
	"       tanuki model synth --arch llama|qwen2 --type T [--n-embd N] [--n-layer N]\n"
	"                          [--n-head N] [--n-head-kv N] [--n-ff N] [--ctx N]\n"
	"                          [--vocab-from M.gguf] [--seed S] [--name NAME] -o OUT.gguf\n"
	"       tanuki model quantize [--pure] [-t THREADS] IN.gguf OUT.gguf SCHEME\n\n"
	"info   prints the architecture, name, parameter and tensor counts (by type),\n"
	"       file size, vocabulary, chat template (first line), hyperparameters and\n"
	"       the memory needed for a context of N tokens (default: the model's\n"
	"       context length): weights mapped + KV cache at f32 and at f16.\n"
	"       Text is one 'key: value' per line; --json prints one object.\n"
	"synth  writes a GGUF with random weights, normal(0, 0.02) (norms 1), of the\n"
	"       given architecture, shape and type (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0\n"
	"       q5_1; norms and biases stay f32). The tokenizer is copied from\n"
	"       --vocab-from, or is a minimal 259-token byte vocabulary.\n"
	"       Defaults: n-embd 256, n-layer 2, n-head 4, n-head-kv = n-head,\n"
	"       n-ff 2*n-embd, ctx 2048, seed 1.\n"
	"quantize writes IN's weight matrices re-encoded under SCHEME, one of\n"
	"       F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L\n"
	"       Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL, with llama-quantize's\n"
	"       per-tensor choices (e.g. Q4_K_M: output, and attn_v/ffn_down on some\n"
	"       layers, in Q6_K); --pure: every matrix in the scheme's type. Norms\n"
	"       and biases are copied. IN's matrices must be f32, f16 or bf16.\n"
	"       -t: threads (default: all CPUs).\n";

/* ---- info ---- */

struct info {
	const char *arch, *name, *tok_model, *tok_pre;
	char *template_line; /* owned */
	uint64_t params, weight_bytes, file_size;
	size_t n_tensors;
	size_t type_count[TK_TYPE_COUNT];
	int64_t vocab, ctx_len, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff; /* -1 absent */
	double rope_base, rms_eps;                                                  /* NAN absent */
	int64_t ctx;
	int64_t kv_f32, kv_f16; /* -1 when shapes are unknown */
};

static int64_t get_int(const struct tk_gguf *g, const char *arch, const char *suffix)
{
	char key[160];
	uint32_t v;
	snprintf(key, sizeof key, "%s.%s", arch ? arch : "", suffix);
	return arch && !tk_gguf_get_u32(g, key, &v) ? (int64_t)v : -1;
}

static double get_float(const struct tk_gguf *g, const char *arch, const char *suffix)
{
	char key[160];
	float v;
	snprintf(key, sizeof key, "%s.%s", arch ? arch : "", suffix);
	return arch && !tk_gguf_get_f32(g, key, &v) ? (double)v : NAN;
}

static const char *get_s(const struct tk_gguf *g, const char *key)
{
	const char *s;
	return tk_gguf_get_str(g, key, &s, NULL) ? NULL : s;
}

static int gather(const struct tk_gguf *g, long ctx_opt, struct info *in)
{
	memset(in, 0, sizeof *in);
	in->arch = get_s(g, "general.architecture");
	in->name = get_s(g, "general.name");
	in->tok_model = get_s(g, "tokenizer.ggml.model");
	in->tok_pre = get_s(g, "tokenizer.ggml.pre");
	const char *tmpl = get_s(g, "tokenizer.chat_template");
	if (tmpl) {
		size_t n = strcspn(tmpl, "\r\n");
		in->template_line = strndup(tmpl, n);
		if (!in->template_line)
			return tk_errf(TK_ENOMEM, "out of memory");
	}
	in->file_size = tk_gguf_file_size(g);
	in->n_tensors = tk_gguf_tensor_count(g);
	for (size_t i = 0; i < in->n_tensors; i++) {
		const struct tk_gguf_tensor *t = tk_gguf_tensor_at(g, i);
		in->params += (uint64_t)t->n_elements;
		in->weight_bytes += t->nbytes;
		in->type_count[t->type]++;
	}
	struct tk_gguf_arr tok;
	in->vocab = tk_gguf_get_arr(g, "tokenizer.ggml.tokens", &tok) ? get_int(g, in->arch, "vocab_size")
								       : (int64_t)tok.n;
	in->ctx_len = get_int(g, in->arch, "context_length");
	in->n_embd = get_int(g, in->arch, "embedding_length");
	in->n_layer = get_int(g, in->arch, "block_count");
	in->n_head = get_int(g, in->arch, "attention.head_count");
	in->n_head_kv = get_int(g, in->arch, "attention.head_count_kv");
	if (in->n_head_kv < 0)
		in->n_head_kv = in->n_head;
	in->n_ff = get_int(g, in->arch, "feed_forward_length");
	in->head_dim = get_int(g, in->arch, "attention.key_length");
	if (in->head_dim < 0 && in->n_embd > 0 && in->n_head > 0)
		in->head_dim = in->n_embd / in->n_head;
	in->rope_base = get_float(g, in->arch, "rope.freq_base");
	in->rms_eps = get_float(g, in->arch, "attention.layer_norm_rms_epsilon");
	in->ctx = ctx_opt > 0 ? ctx_opt : in->ctx_len;
	in->kv_f32 = in->kv_f16 = -1;
	if (in->ctx > 0 && in->n_layer > 0 && in->n_head_kv > 0 && in->head_dim > 0) {
		/* K and V: 2 * n_layer * n_ctx * n_kv_heads * head_dim elements */
		int64_t el = 2 * in->n_layer * in->ctx * in->n_head_kv * in->head_dim;
		in->kv_f32 = el * 4;
		in->kv_f16 = el * 2;
	}
	return 0;
}

static void types_text(const struct info *in, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (int t = 0; t < TK_TYPE_COUNT; t++) {
		if (!in->type_count[t])
			continue;
		int n = snprintf(out + len, cap - len, "%s%s=%zu", len ? " " : "", tk_type_name(t),
				 in->type_count[t]);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
}

/* Text values come from the file: control characters (a newline would break
 * the one-line-per-key form) print as '?'. */
static void S(const char *k, const char *v)
{
	printf("%s: ", k);
	if (!v)
		v = "-";
	for (; *v; v++)
		putchar((unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v);
	putchar('\n');
}

static void I(const char *k, int64_t v)
{
	if (v >= 0)
		printf("%s: %lld\n", k, (long long)v);
	else
		printf("%s: -\n", k);
}

/* Hyperparameters are stored as float32: print the shortest decimal that
 * reads back as the same float (1e-05, not 9.99999975e-06). */
static double float_shortest(double v, char *buf, size_t cap)
{
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, cap, "%.0f", v);
		return v;
	}
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(buf, cap, "%.*g", prec, v);
		if (strtof(buf, NULL) == (float)v)
			break;
	}
	return strtod(buf, NULL);
}

static void F(const char *k, double v)
{
	char buf[64];
	if (isnan(v)) {
		printf("%s: -\n", k);
		return;
	}
	float_shortest(v, buf, sizeof buf);
	printf("%s: %s\n", k, buf);
}

static void print_text(const char *path, const struct info *in, uint32_t version)
{
	char types[512];
	types_text(in, types, sizeof types);
	S("file", path);
	I("file_size", (int64_t)in->file_size);
	I("gguf_version", (int64_t)version);
	S("architecture", in->arch);
	S("name", in->name);
	I("parameters", (int64_t)in->params);
	I("tensors", (int64_t)in->n_tensors);
	S("tensor_types", types[0] ? types : NULL);
	I("vocab_size", in->vocab);
	S("tokenizer_model", in->tok_model);
	S("tokenizer_pre", in->tok_pre);
	S("chat_template", in->template_line ? "yes" : "no");
	S("chat_template_first_line", in->template_line);
	I("context_length", in->ctx_len);
	I("n_embd", in->n_embd);
	I("n_layer", in->n_layer);
	I("n_head", in->n_head);
	I("n_head_kv", in->n_head_kv);
	I("head_dim", in->head_dim);
	I("n_ff", in->n_ff);
	F("rope_freq_base", in->rope_base);
	F("rms_norm_eps", in->rms_eps);
	I("ctx", in->ctx);
	I("weights_bytes", (int64_t)in->weight_bytes);
	I("kv_cache_f32_bytes", in->kv_f32);
	I("kv_cache_f16_bytes", in->kv_f16);
	I("total_f32_bytes", in->kv_f32 >= 0 ? (int64_t)in->weight_bytes + in->kv_f32 : -1);
	I("total_f16_bytes", in->kv_f16 >= 0 ? (int64_t)in->weight_bytes + in->kv_f16 : -1);
}

static json_t *jint(int64_t v) { return v >= 0 ? json_integer(v) : json_null(); }
/* A JSON string, or null for NULL. Text from the file that is not valid
 * UTF-8 (which jansson refuses) is kept with its non-ASCII bytes shown as
 * '?', so every key is always present. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return json_null();
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_null();
}
static json_t *jreal(double v)
{
	char buf[64];
	return isnan(v) ? json_null() : json_real(float_shortest(v, buf, sizeof buf));
}

static int print_json(const char *path, const struct info *in, uint32_t version)
{
	json_t *o = json_object(), *types = json_object();
	if (!o || !types)
		goto oom;
	for (int t = 0; t < TK_TYPE_COUNT; t++)
		if (in->type_count[t])
			json_object_set_new(types, tk_type_name(t), json_integer((json_int_t)in->type_count[t]));
	json_object_set_new(o, "file", jstr(path));
	json_object_set_new(o, "file_size", jint((int64_t)in->file_size));
	json_object_set_new(o, "gguf_version", json_integer(version));
	json_object_set_new(o, "architecture", jstr(in->arch));
	json_object_set_new(o, "name", jstr(in->name));
	json_object_set_new(o, "parameters", jint((int64_t)in->params));
	json_object_set_new(o, "tensors", jint((int64_t)in->n_tensors));
	json_object_set_new(o, "tensor_types", types);
	json_object_set_new(o, "vocab_size", jint(in->vocab));
	json_object_set_new(o, "tokenizer_model", jstr(in->tok_model));
	json_object_set_new(o, "tokenizer_pre", jstr(in->tok_pre));
	json_object_set_new(o, "chat_template", json_boolean(in->template_line != NULL));
	json_object_set_new(o, "chat_template_first_line", jstr(in->template_line));
	json_object_set_new(o, "context_length", jint(in->ctx_len));
	json_object_set_new(o, "n_embd", jint(in->n_embd));
	json_object_set_new(o, "n_layer", jint(in->n_layer));
	json_object_set_new(o, "n_head", jint(in->n_head));
	json_object_set_new(o, "n_head_kv", jint(in->n_head_kv));
	json_object_set_new(o, "head_dim", jint(in->head_dim));
	json_object_set_new(o, "n_ff", jint(in->n_ff));
	json_object_set_new(o, "rope_freq_base", jreal(in->rope_base));
	json_object_set_new(o, "rms_norm_eps", jreal(in->rms_eps));
	json_object_set_new(o, "ctx", jint(in->ctx));
	json_object_set_new(o, "weights_bytes", jint((int64_t)in->weight_bytes));
	json_object_set_new(o, "kv_cache_f32_bytes", jint(in->kv_f32));
	json_object_set_new(o, "kv_cache_f16_bytes", jint(in->kv_f16));
	json_object_set_new(o, "total_f32_bytes",
			    jint(in->kv_f32 >= 0 ? (int64_t)in->weight_bytes + in->kv_f32 : -1));
	json_object_set_new(o, "total_f16_bytes",
			    jint(in->kv_f16 >= 0 ? (int64_t)in->weight_bytes + in->kv_f16 : -1));
	char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(o);
	if (!s)
		return cli_fail("model", "out of memory");
	puts(s);
	free(s);
	return CLI_OK;
oom:
	json_decref(o);
	json_decref(types);
	return cli_fail("model", "out of memory");
}

static int model_info(int argc, char **argv)
{
	bool json = false;
	long ctx = 0;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c, rc;
	while ((c = getopt_long(argc, argv, "+jc:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'c':
			if ((rc = cli_parse_long("model info", "--ctx", optarg, 1, 1L << 24, &ctx)))
				return rc;
			break;
		case 'h': fputs(usage, stdout); return CLI_OK;
		default: return cli_usage_error("model info", "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("model info", "expected exactly one MODEL.gguf");
	const char *path = argv[optind];
	struct tk_gguf *g = tk_gguf_open(path);
	if (!g)
		return cli_fail("model info", "cannot read %s", path);
	struct info in;
	if (gather(g, ctx, &in)) {
		tk_gguf_close(g);
		return cli_fail("model info", "%s", path);
	}
	if (json) {
		rc = print_json(path, &in, tk_gguf_version(g));
	} else {
		print_text(path, &in, tk_gguf_version(g));
		rc = CLI_OK;
	}
	free(in.template_line);
	tk_gguf_close(g);
	return rc;
}

/* ---- synth ---- */

static int model_synth(int argc, char **argv)
{
	struct tk_synth_opts o;
	tk_synth_opts_default(&o);
	const char *out = NULL;
	bool have_arch = false, have_type = false;
	long v;
	int rc;
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "type", required_argument, NULL, 't' },
		{ "n-embd", required_argument, NULL, 'E' },
		{ "n-layer", required_argument, NULL, 'L' },
		{ "n-head", required_argument, NULL, 'H' },
		{ "n-head-kv", required_argument, NULL, 'K' },
		{ "n-ff", required_argument, NULL, 'F' },
		{ "ctx", required_argument, NULL, 'C' },
		{ "vocab-from", required_argument, NULL, 'V' },
		{ "seed", required_argument, NULL, 'S' },
		{ "name", required_argument, NULL, 'N' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = "model synth";
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!strcmp(optarg, "llama"))
				o.arch = TK_SYNTH_LLAMA;
			else if (!strcmp(optarg, "qwen2"))
				o.arch = TK_SYNTH_QWEN2;
			else
				return cli_usage_error(cmd, "--arch: expected llama or qwen2, got '%s'", optarg);
			have_arch = true;
			break;
		case 't':
			o.type = tk_type_from_name(optarg);
			if (o.type < 0 || tk_synth_file_type(o.type) < 0)
				return cli_usage_error(cmd, "--type: expected one of f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1, got '%s'",
						       optarg);
			have_type = true;
			break;
#define NUM(ch, opt, field, max) \
		case ch: \
			if ((rc = cli_parse_long(cmd, opt, optarg, 1, max, &v))) \
				return rc; \
			o.field = (uint32_t)v; \
			break;
		NUM('E', "--n-embd", n_embd, 65536)
		NUM('L', "--n-layer", n_layer, 512)
		NUM('H', "--n-head", n_head, 1024)
		NUM('K', "--n-head-kv", n_head_kv, 1024)
		NUM('F', "--n-ff", n_ff, 262144)
		NUM('C', "--ctx", n_ctx, 1L << 24)
#undef NUM
		case 'S':
			if ((rc = cli_parse_long(cmd, "--seed", optarg, 0, 0x7fffffffffffffffL, &v)))
				return rc;
			o.seed = (uint64_t)v;
			break;
		case 'V': o.vocab_from = optarg; break;
		case 'N': o.name = optarg; break;
		case 'o': out = optarg; break;
		case 'h': fputs(usage, stdout); return CLI_OK;
		default: return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!have_arch || !have_type || !out)
		return cli_usage_error(cmd, "--arch, --type and -o are required");
	if (tk_synth_write(&o, out))
		return cli_fail(cmd, "cannot write %s", out);
	return CLI_OK;
}

/* ---- quantize ---- */

static int model_quantize(int argc, char **argv)
{
	const char *cmd = "model quantize";
	struct tk_quantize_opts o = { .pure = false, .n_threads = 0 };
	static const struct option opts[] = {
		{ "pure", no_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	optind = 1;
	int c, rc;
	long v;
	while ((c = getopt_long(argc, argv, "+t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.pure = true; break;
		case 't':
			if ((rc = cli_parse_long(cmd, "--threads", optarg, 1, 64, &v)))
				return rc;
			o.n_threads = (int)v;
			break;
		case 'h': fputs(usage, stdout); return CLI_OK;
		default: return cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind + 3 != argc)
		return cli_usage_error(cmd, "expected IN.gguf OUT.gguf SCHEME");
	const char *in = argv[optind], *out = argv[optind + 1];
	const struct tk_quant_scheme *s = tk_quant_scheme_find(argv[optind + 2]);
	if (!s)
		return cli_usage_error(cmd, "SCHEME: expected one of %s, got '%s'",
				       tk_quant_scheme_names(), argv[optind + 2]);
	if (tk_quantize_file(in, out, s, &o))
		return cli_fail(cmd, "%s -> %s", in, out);
	struct tk_gguf *g = tk_gguf_open(out);
	if (!g)
		return cli_fail(cmd, "cannot read back %s", out);
	size_t count[TK_TYPE_COUNT] = { 0 };
	for (size_t i = 0; i < tk_gguf_tensor_count(g); i++)
		count[tk_gguf_tensor_at(g, i)->type]++;
	printf("%s: %s, %llu bytes, tensors:", out, tk_quant_scheme_name(s),
	       (unsigned long long)tk_gguf_file_size(g));
	for (int t = 0; t < TK_TYPE_COUNT; t++)
		if (count[t])
			printf(" %s %zu", tk_type_name(t), count[t]);
	putchar('\n');
	tk_gguf_close(g);
	return CLI_OK;
}

int cli_cmd_model(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("model", "expected a subcommand: info, synth or quantize");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "info"))
		return model_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "synth"))
		return model_synth(argc - 1, argv + 1);
	if (!strcmp(argv[1], "quantize"))
		return model_quantize(argc - 1, argv + 1);
	return cli_usage_error("model", "unknown subcommand '%s' (expected info, synth or quantize)",
			       argv[1]);
}
