/*
 * tokenizer.h — text <-> token ids, the way llama.cpp does it.
 *
 * Two vocabulary kinds (GGUF key tokenizer.ggml.model):
 *   "llama"  SentencePiece-style (SPM): spaces become U+2581, an optional space
 *            is prefixed, adjacent pieces are merged best-score-first, and
 *            characters no token covers fall back to <0xNN> byte tokens.
 *   "gpt2"   byte-level BPE: the text is split by a pre-tokenizer (named by
 *            tokenizer.ggml.pre: default, gpt-2, llama-bpe, qwen2,
 *            deepseek-coder, starcoder and their aliases), each piece's bytes
 *            are mapped to printable code points, and merges are applied
 *            lowest-rank-first (ranks from tokenizer.ggml.merges).
 *
 * A tokenizer is built from a neutral in-memory description (struct
 * tk_tok_desc: arrays of token strings, scores, types, merges, special ids,
 * flags), so nothing here depends on GGUF; tk_tokenizer_from_gguf() is the
 * thin glue that fills one from a GGUF file. The constructor copies
 * everything it needs: the description and the GGUF handle may be freed
 * afterwards.
 *
 * Invariants of a built tokenizer: n_vocab >= 1; every token text is valid
 * UTF-8 without NUL bytes, at most TK_TOK_MAX_TOKEN_BYTES long, and unique
 * (an empty text is tolerated, as llama.cpp does, and never matches); a BYTE
 * token's text is "<0xNN>"; every merge is two non-empty strings around a
 * space; special ids are < n_vocab or -1. Every id passed in is checked
 * against n_vocab (TK_EINVAL otherwise).
 *
 * Special tokens: control, unknown and user-defined tokens. When encoding,
 * their text inside the input is turned into their id only when the caller
 * asks (parse_special), except user-defined tokens, which are always matched
 * (as llama.cpp and Hugging Face do). When decoding, control and unknown
 * tokens produce no text unless TK_TOK_DECODE_SPECIAL is given.
 *
 * Threads: a tk_tokenizer is immutable after construction; any number of
 * threads may encode/decode with it concurrently. A tk_tok_stream belongs to
 * one thread at a time.
 */
#ifndef TK_ENGINE_TOKENIZER_H
#define TK_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tk_buf;
struct tk_gguf;

/* Caps on what the outside can feed in. Hitting one is TK_ELIMIT. */
#define TK_TOK_MAX_VOCAB (4u << 20)          /* tokens in a vocabulary */
#define TK_TOK_MAX_MERGES (4u << 20)         /* merges in a vocabulary */
#define TK_TOK_MAX_TOKEN_BYTES 1024u         /* bytes in one token text */
/* Bytes of text per encode call. Encoding needs transient memory of about
 * 12 bytes (pre-tokenizer) to 60 bytes (SPM merge queue) per input byte, so
 * this bounds one call to roughly 250 MiB in the worst case. */
#define TK_TOK_MAX_INPUT_BYTES (4u << 20)
#define TK_TOK_MAX_OUTPUT_TOKENS (4u << 20) /* default cap on ids per encode */

enum tk_tok_kind {
	TK_TOK_SPM = 1, /* "llama" */
	TK_TOK_BPE = 2, /* "gpt2" */
};

/* Pre-tokenizers of byte-level BPE (tokenizer.ggml.pre). */
enum tk_tok_pre {
	TK_PRE_DEFAULT = 0,     /* "default" or absent: llama.cpp's fallback rules */
	TK_PRE_GPT2,            /* "gpt-2", "phi-2", "mpt", "olmo", ... */
	TK_PRE_LLAMA3,          /* "llama-bpe", "llama3", "llama-v3", ... */
	TK_PRE_QWEN2,           /* "qwen2", "deepseek-r1-qwen" */
	TK_PRE_DEEPSEEK_CODER,  /* "deepseek-coder" */
	TK_PRE_STARCODER,       /* "starcoder", "refact", "smollm", ... */
};

/* Token types as stored in tokenizer.ggml.token_type. */
enum tk_tok_type {
	TK_TOKTYPE_UNDEFINED = 0,
	TK_TOKTYPE_NORMAL = 1,
	TK_TOKTYPE_UNKNOWN = 2,
	TK_TOKTYPE_CONTROL = 3,
	TK_TOKTYPE_USER_DEFINED = 4,
	TK_TOKTYPE_UNUSED = 5,
	TK_TOKTYPE_BYTE = 6,
};

/* Tri-state flags of the description: take the kind's default or force. */
enum { TK_TOK_FLAG_DEFAULT = -1, TK_TOK_FLAG_OFF = 0, TK_TOK_FLAG_ON = 1 };

/* The neutral description a tokenizer is built from. Everything is borrowed
 * for the duration of tk_tokenizer_new() only. */
struct tk_tok_desc {
	enum tk_tok_kind kind;
	const char *pre;             /* BPE pre-tokenizer name; NULL = "default" */

	size_t n_tokens;
	const char *const *tokens;   /* n_tokens texts */
	const size_t *token_lens;    /* NULL: strlen(tokens[i]) */
	const float *scores;         /* NULL: all 0 (SPM merge priority) */
	const int32_t *types;        /* NULL: all NORMAL (enum tk_tok_type) */

	size_t n_merges;             /* BPE only: "left right", rank = index */
	const char *const *merges;
	const size_t *merge_lens;    /* NULL: strlen(merges[i]) */

	/* Special ids; -1 = none. TK_TOK_ID_DEFAULT takes the kind's default
	 * (SPM: bos 1, eos 2, unk 0; BPE: bos 11, eos 11, as llama.cpp). */
	int64_t bos_id, eos_id, eot_id, unk_id, pad_id;

	int add_bos;          /* TK_TOK_FLAG_*: default SPM on, BPE off (llama-bpe on) */
	int add_eos;          /* default off */
	int add_space_prefix; /* SPM: default on; ignored for BPE */
	bool special_rstrip;  /* eat whitespace after special tokens (Phi-3 quirk) */
};
#define TK_TOK_ID_DEFAULT (-2)

/* Fills d with defaults: every id TK_TOK_ID_DEFAULT, flags DEFAULT, the rest
 * zero/NULL. Set kind and the arrays afterwards. */
void tk_tok_desc_init(struct tk_tok_desc *d);

struct tk_tokenizer;

/* Builds a tokenizer from d (copied). NULL on error with TK_EINVAL /
 * TK_EFORMAT (malformed vocabulary: the detail names the token or merge index
 * and what is wrong), TK_EUNSUPPORTED (unknown pre-tokenizer), TK_ELIMIT or
 * TK_ENOMEM. */
struct tk_tokenizer *tk_tokenizer_new(const struct tk_tok_desc *d);

/* Reads tokenizer.ggml.* from an open GGUF file (borrowed; the tokenizer
 * does not keep pointers into it). NULL on error, detail set (missing or
 * mistyped keys are named). */
struct tk_tokenizer *tk_tokenizer_from_gguf(const struct tk_gguf *g);

/* Frees. NULL ok. */
void tk_tokenizer_free(struct tk_tokenizer *t);

/* ---- properties ---- */

size_t tk_tokenizer_n_vocab(const struct tk_tokenizer *t);
enum tk_tok_kind tk_tokenizer_kind(const struct tk_tokenizer *t);
enum tk_tok_pre tk_tokenizer_pre(const struct tk_tokenizer *t);
const char *tk_tok_pre_name(enum tk_tok_pre pre); /* "gpt-2", ... */

/* Special ids, -1 when the vocabulary has none. eot is the end-of-turn token
 * (from tokenizer.ggml.eot_token_id, or found by its text: <|eot_id|>,
 * <|im_end|>, <|end|>, <|EOT|>, <|endoftext|>, ...). */
int32_t tk_tokenizer_bos(const struct tk_tokenizer *t);
int32_t tk_tokenizer_eos(const struct tk_tokenizer *t);
int32_t tk_tokenizer_eot(const struct tk_tokenizer *t);
int32_t tk_tokenizer_unk(const struct tk_tokenizer *t);
bool tk_tokenizer_add_bos(const struct tk_tokenizer *t);

/* End of generation: eos, eot, and the other end-of-turn tokens found. */
bool tk_tokenizer_is_eog(const struct tk_tokenizer *t, int32_t id);
/* True for control and unknown tokens (those decode to "" by default). */
bool tk_tokenizer_is_control(const struct tk_tokenizer *t, int32_t id);

/* Looks a token up by its exact vocabulary text; -1 when absent. */
int32_t tk_tokenizer_find(const struct tk_tokenizer *t, const char *text, size_t len);

/* The vocabulary text of a token (borrowed, NUL-terminated), or NULL when id
 * is out of range. */
const char *tk_tokenizer_token_text(const struct tk_tokenizer *t, int32_t id, size_t *len_out);

/* ---- encode ---- */

enum tk_tok_bos_mode {
	TK_TOK_BOS_DEFAULT = 0, /* BOS (and EOS) as the vocabulary says */
	TK_TOK_BOS_NONE,        /* add no BOS/EOS (llama.cpp add_special=false) */
	TK_TOK_BOS_ALWAYS,      /* add BOS even if the vocabulary says not to */
};

struct tk_tok_encode_opts {
	enum tk_tok_bos_mode bos;
	bool parse_special;   /* turn control-token text into ids */
	bool no_space_prefix; /* SPM: do not prefix the text with a space */
	size_t max_tokens;    /* 0: TK_TOK_MAX_OUTPUT_TOKENS */
};

/* Tokenizes text[0..len) (any bytes; invalid UTF-8 is kept byte for byte).
 * opts NULL means all defaults. On success *ids_out is a malloc'd array the
 * caller frees (non-NULL even when *n_out is 0). 0, TK_ELIMIT (input longer
 * than TK_TOK_MAX_INPUT_BYTES or more than max_tokens ids), TK_EINVAL,
 * TK_EFORMAT (a byte the vocabulary cannot represent) or TK_ENOMEM. */
int tk_tokenizer_encode(const struct tk_tokenizer *t, const char *text, size_t len,
			const struct tk_tok_encode_opts *opts, int32_t **ids_out, size_t *n_out);

/* ---- decode ---- */

enum {
	TK_TOK_DECODE_SPECIAL = 1u << 0,      /* render control/unknown tokens' text */
	TK_TOK_DECODE_STRIP_SPACE = 1u << 1,  /* SPM with space prefix: drop one
					       * leading space of the first piece
					       * (undoes what encode added) */
	TK_TOK_DECODE_SKIP_BOS = 1u << 2,     /* drop a leading BOS id */
};

/* The bytes one token decodes to (borrowed; valid for the tokenizer's
 * lifetime; may be partial UTF-8, e.g. a byte token). flags: DECODE_SPECIAL
 * only. 0 or TK_EINVAL (id out of range). */
int tk_tokenizer_piece(const struct tk_tokenizer *t, int32_t id, unsigned flags,
		       const char **piece, size_t *len);

/* Appends the text of ids[0..n) to out (raw bytes: the concatenation of the
 * pieces; no clean-up of spaces). 0, TK_EINVAL (an id out of range; out is
 * unchanged), TK_ELIMIT (out's cap), TK_ENOMEM. */
int tk_tokenizer_decode(const struct tk_tokenizer *t, const int32_t *ids, size_t n,
			unsigned flags, struct tk_buf *out);

/* ---- incremental decode (streaming) ----
 *
 * Push one id at a time; each push appends only complete, well-formed UTF-8
 * to out and holds back an incomplete sequence (at most 3 bytes) until the
 * bytes that complete it arrive, e.g. across <0xF0><0x9F><0xA6><0x99>.
 * Bytes that can never become well-formed are replaced by U+FFFD (one per
 * maximal ill-formed subpart), so out never receives invalid UTF-8. flush
 * emits what is held (as U+FFFD when incomplete) and resets the state.
 * Concatenating every push and the flush equals tk_tokenizer_decode() of the
 * same ids whenever that decode is valid UTF-8. */
struct tk_tok_stream;

/* t is borrowed and must outlive the stream. flags: TK_TOK_DECODE_*. NULL on
 * allocation failure. */
struct tk_tok_stream *tk_tok_stream_new(const struct tk_tokenizer *t, unsigned flags);
void tk_tok_stream_free(struct tk_tok_stream *s); /* NULL ok */

/* 0, TK_EINVAL (id out of range; state unchanged), TK_ELIMIT, TK_ENOMEM. */
int tk_tok_stream_push(struct tk_tok_stream *s, int32_t id, struct tk_buf *out);
int tk_tok_stream_flush(struct tk_tok_stream *s, struct tk_buf *out);

/* Bytes currently held back (0..3). */
size_t tk_tok_stream_pending(const struct tk_tok_stream *s);

/* ---- pre-tokenizer (exposed for tests and tools) ----
 *
 * Splits text[0..len) into pieces the way byte-level BPE pre-tokenizer `pre`
 * does, before byte mapping and merges. Calls cb(piece offset, piece length,
 * ctx) for each piece in order; the pieces tile the input exactly. cb returns
 * 0 to go on or a negative code to stop (returned). 0, TK_ELIMIT, TK_ENOMEM. */
typedef int (*tk_pretok_cb)(size_t off, size_t len, void *ctx);
int tk_pretokenize(enum tk_tok_pre pre, const char *text, size_t len, tk_pretok_cb cb, void *ctx);

/* Parses a tokenizer.ggml.pre name (aliases included). 0 or TK_EUNSUPPORTED. */
int tk_tok_pre_parse(const char *name, enum tk_tok_pre *out);

#endif
