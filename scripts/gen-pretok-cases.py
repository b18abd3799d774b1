#!/usr/bin/env python3
"""gen-pretok-cases.py - writes tests/fixtures/tok/pretok_cases.json.

Reference splits for Tanuki's byte-level BPE pre-tokenizers, computed by an
independent implementation: the third-party Python `regex` module (which
supports \\p{..} classes) running the pre-tokenizer regexes as published in the
models' tokenizer.json files and in llama.cpp's llama-vocab.cpp. Like
llama.cpp, every regex of a list is applied in turn to every piece left by the
previous one, and the text between matches becomes a piece too.

Strings are random (fixed seed) over an alphabet chosen to hit every rule:
contractions, digits, punctuation runs, spaces/tabs/newlines, CJK, Cyrillic,
emoji, combining marks, non-ASCII spaces. Only long-assigned characters are
used, so the Unicode version of the regex module does not matter.

Usage: python3 scripts/gen-pretok-cases.py > tests/fixtures/tok/pretok_cases.json
"""
import json
import random

import regex

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PRES = {
    "gpt-2": [GPT2],
    "llama-bpe": [LLAMA3],
    "qwen2": [QWEN2],
    "starcoder": [r"\p{N}", GPT2],
    "deepseek-coder": [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+",
                       "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}"],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
}

ALPHABET = (
    list("abcXYZsStTdDmMlLrReEvV") + list("0123456789") + ["'"] * 6 +
    [" "] * 12 + ["\t", "\n", "\n", "\r"] + list("!?.,;:-_()[]{}<>=+*/\\|~^$#@%&\"`") +
    ["\u00e9", "\u00fc", "\u00df",            # Latin-1 letters
     "\u043d", "\u0411", "\u044f",            # Cyrillic
     "\u6211", "\u5728", "\u5de5", "\u4f5c",  # CJK ideographs
     "\uac00", "\ud55c",                      # Hangul
     "\u3001", "\u3002", "\uff5e", "\uff01",  # CJK punctuation / fullwidth
     "\u0301", "\u0308",                      # combining marks (M)
     "\u00a0", "\u3000", "\u2003",            # non-ASCII spaces
     "\u00bd", "\u0663", "\uff13",            # other numbers
     "\U0001F680", "\U0001F601", "\u2705", "\u200d",  # emoji, ZWJ
     "\u20ac", "\u00a9"]                      # symbols
)


def split(regexes, text):
    pieces = [text]
    for rx in regexes:
        out = []
        for p in pieces:
            pos = 0
            for m in regex.finditer(rx, p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    return pieces


def main():
    rng = random.Random(20261128)
    cases = []
    for pre, rxs in PRES.items():
        for _ in range(120):
            n = rng.randint(1, 24)
            text = "".join(rng.choice(ALPHABET) for _ in range(n))
            cases.append({"pre": pre, "text": text, "pieces": split(rxs, text)})
    print(json.dumps(cases, ensure_ascii=True, indent=0))


if __name__ == "__main__":
    main()
