#!/usr/bin/env python3
"""gen_corpus.py — writes the seed corpus for fuzz_gguf into corpus/gguf/.

Small hand-built GGUF files: valid ones named ok-*.gguf (the replay test
checks they open) and broken ones named bad-*.gguf (they must be refused).
Run from anywhere; (re)writes its own files deterministically and leaves the
others alone: ok-synth-*.gguf come from `tanuki model synth` (see
docs/engine.md), reproducers found by fuzzing are added by hand.
"""
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
       BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# (block elements, bytes per block) of ggml type ids used here
LAYOUT = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 12: (256, 144), 30: (1, 2)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += value(et, it)
        return out
    return struct.pack(FMT[t], v)


def gguf(kvs, tensors, version=3, align=32, seed=1):
    rng = random.Random(seed)
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + value(t, v)
    off, infos, sizes = 0, b"", []
    for name, typ, ne in tensors:
        be, bs = LAYOUT[typ]
        rows = 1
        for d in ne[1:]:
            rows *= d
        size = ne[0] // be * bs * rows
        off = (off + align - 1) // align * align
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", typ, off)
        sizes.append((off, size))
        off += size
    out += infos
    out += b"\0" * ((-len(out)) % align)
    data = bytearray(off)
    for o, s in sizes:
        for i in range(s):
            data[o + i] = rng.randrange(256)
        # keep half-precision scales finite and small in quantized blocks
    return out + bytes(data)


def base_kvs():
    return [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "fuzz-seed"),
        ("llama.block_count", U32, 1),
        ("llama.context_length", U64, 64),
        ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F64, 1e-5),
        ("t.u8", U8, 200), ("t.i8", I8, -3), ("t.u16", U16, 60000), ("t.i16", I16, -30000),
        ("t.i32", I32, -7), ("t.i64", I64, -(1 << 40)), ("t.bool", BOOL, True),
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>", "a", "b", "ab", ""])),
        ("tokenizer.ggml.scores", ARR, (F32, [0.0, 0.0, 0.0, -1.0, -1.5, -2.0, -9.0])),
        ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3, 1, 1, 1, 5])),
        ("t.arr_u8", ARR, (U8, [1, 2, 3])), ("t.arr_bool", ARR, (BOOL, [True, False])),
        ("t.arr_u64", ARR, (U64, [1 << 63])), ("t.arr_f64", ARR, (F64, [0.5, -2.0])),
        ("t.arr_empty", ARR, (I16, [])),
    ]


def base_tensors():
    return [
        ("token_embd.weight", 0, [8, 7]),
        ("blk.0.attn_norm.weight", 0, [8]),
        ("blk.0.f16", 1, [4, 2]),
        ("blk.0.bf16", 30, [16]),
        ("blk.0.q8_0", 8, [32, 2]),
        ("blk.0.q4_0", 2, [32]),
        ("blk.0.q4_1", 3, [32]),
        ("blk.0.q5_0", 6, [32, 1, 2]),
        ("blk.0.q5_1", 7, [32, 1, 1, 2]),
        ("blk.0.q4_K", 12, [256]),
    ]


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    tiny = gguf(base_kvs(), base_tensors())
    files["ok-tiny.gguf"] = tiny
    files["ok-v2.gguf"] = gguf(base_kvs(), base_tensors(), version=2, seed=2)
    files["ok-align64.gguf"] = gguf([("general.alignment", U32, 64)] + base_kvs(), base_tensors(),
                                    align=64, seed=3)
    files["ok-vocab-only.gguf"] = gguf(base_kvs(), [])
    files["ok-empty.gguf"] = gguf([], [])
    for n in (3, 8, 23, 24, 60, 200, len(tiny) // 2, len(tiny) - 1):
        files["bad-trunc-%d.gguf" % n] = tiny[:n]
    files["bad-v1.gguf"] = b"GGUF" + struct.pack("<IQQ", 1, 0, 0)
    files["bad-dup-key.gguf"] = gguf([("k", U32, 1), ("k", U32, 2)], [])
    files["bad-dup-tensor.gguf"] = gguf([], [("x", 0, [8]), ("x", 0, [8])])
    files["bad-nested.gguf"] = gguf([("k", ARR, (ARR, []))], [])
    files["bad-align.gguf"] = gguf([("general.alignment", U32, 48)], [])
    files["bad-type.gguf"] = tiny.replace(struct.pack("<QQI", 32, 2, 8), struct.pack("<QQI", 32, 2, 99), 1)
    files["bad-block.gguf"] = tiny.replace(struct.pack("<QI", 32, 2), struct.pack("<QI", 40, 2), 1)
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
