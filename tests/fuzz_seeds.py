#!/usr/bin/env python3
"""Writes fuzz seeds for the decode_inspect target from the realistic corpus.

  fuzz_seeds.py OUT_DIR [MAX_BODY_BYTES]

Input layout of the target: byte 0 selects the content-encoding, byte 1 the content type and
policy, the rest is the body as it arrives. Every 5th corpus body (up to MAX_BODY_BYTES,
default 12 KB, so seeds stay under the fuzzer's max_len) is written plain (encoding "") and
compressed: gzip, zlib deflate, raw deflate, and br / zstd when those Python modules exist.
"""

import gzip
import json
import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "data", "corpus", "api-bodies.jsonl")

# Indices into ENCODINGS of fuzz/fuzz_targets/decode_inspect.rs.
GZIP, DEFLATE, BR, ZSTD, PLAIN = 0, 1, 2, 3, 9
# Indices into TYPES (json, ndjson, text) combined with the policy (type_sel / 16).
TYPE_SELECTORS = [0, 16 + 0, 32 + 2]


def encoders():
    out = {GZIP: lambda b: gzip.compress(b, 6), DEFLATE: zlib.compress}
    try:
        import brotli
        out[BR] = brotli.compress
    except ImportError:
        pass
    try:
        import zstandard
        out[ZSTD] = zstandard.ZstdCompressor().compress
    except ImportError:
        pass
    return out


def main(argv):
    out_dir = argv[1]
    limit = int(argv[2]) if len(argv) > 2 else 12 * 1024
    os.makedirs(out_dir, exist_ok=True)
    enc = encoders()
    n = 0
    with open(CORPUS) as f:
        for i, line in enumerate(f):
            if i % 5:
                continue
            body = json.loads(line)["body"].encode()
            if len(body) > limit:
                continue
            type_sel = TYPE_SELECTORS[(i // 5) % len(TYPE_SELECTORS)]
            forms = [(PLAIN, body)] + [(sel, fn(body)) for sel, fn in enc.items()]
            forms.append((DEFLATE, zlib.compress(body)[2:-4]))  # raw deflate, no zlib header
            for k, (sel, data) in enumerate(forms):
                with open(os.path.join(out_dir, "corpus-%04d-%d" % (i, k)), "wb") as out:
                    out.write(bytes([sel, type_sel]) + data)
                n += 1
    print("fuzz_seeds: %d seeds in %s (encoders: %s)" % (n, out_dir, sorted(enc)))


if __name__ == "__main__":
    main(sys.argv)
