#!/usr/bin/env python3
"""Writes the gazetteer the engine ships (src/detect/names/*.txt) from build.py's output.

Usage: NAMES_OUT=/tmp/names-out GIVEN_TOP=1500 SURNAME_TOP=3000 \
           NAMES_EXCLUDE=ch-bfs,it-dg python3 build.py
       python3 export.py /tmp/names-out ../../src/detect/names

given.txt / surnames.txt: Latin-script names, lower-cased (Unicode), one word each (a
multi-word surname gives its last word: `de Vries` -> `vries`), sorted by UTF-8 bytes, so the
engine binary-searches the file as it is. cjk_surnames.txt: surnames in Han script (IPADIC,
the Hundred Family Surnames), sorted the same way.
"""
import re, sys, unicodedata

src, dst = sys.argv[1], sys.argv[2]
HAN = re.compile(r'^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$')
LATIN = re.compile(r"^[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*$")


def read(path):
    for line in open(path, encoding='utf-8'):
        yield line.split('\t')[0]


def latin(names, last_word):
    out = set()
    for n in names:
        n = unicodedata.normalize('NFC', n).replace('’', "'")
        words = n.split(' ')
        if len(words) > 1:
            if not last_word:
                continue
            n = words[-1]
        if len(n) < 2 or not LATIN.match(n) or any(ord(c) >= 0x2000 for c in n):
            continue
        out.add(n.lower())
    return out


def write(path, names):
    with open(path, 'wb') as f:
        for n in sorted(names, key=lambda s: s.encode('utf-8')):
            f.write(n.encode('utf-8') + b'\n')
    print(path, len(names))


write(dst + '/given.txt', latin(read(src + '/given.tsv'), last_word=False))
write(dst + '/surnames.txt', latin(read(src + '/surnames.tsv'), last_word=True))
write(dst + '/cjk_surnames.txt', {n for n in read(src + '/surnames.tsv') if HAN.match(n) and len(n) <= 3})
