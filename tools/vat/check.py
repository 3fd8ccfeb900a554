#!/usr/bin/env python3
"""Independent reference checks for the EU VAT numbers of 13 member states.

BG CY CZ EE EL HR HU LT LV MT RO SI SK.  Written from the published descriptions
(EU Commission VIES "VAT number construction rules", national docs) and
cross-checked against python-stdnum as an oracle; no stdnum code is reused.

Each `xx(body)` takes the national part *after* the two-letter prefix, in compact
form (digits, plus the final letter for CY), and returns True/False.  The default
behaviour is meant to agree with `stdnum.eu.vat.is_valid` exactly; a few optional
`strict=True` rules (documented in REPORT.md) are tighter than stdnum.

`vat(s)` takes a whole number with prefix, drops the separators ' ', '-', '.', '/',
':' (a superset of what stdnum strips per country; see REPORT.md) and dispatches.
"""

import datetime

# ----------------------------------------------------------------------------- helpers


def _digits(s, n=None):
    """List of ints if `s` is all ASCII digits (and of length n when given)."""
    if not s or not all('0' <= c <= '9' for c in s):
        return None
    if n is not None and len(s) != n:
        return None
    return [ord(c) - 48 for c in s]


def _dot(ws, ds):
    return sum(w * d for w, d in zip(ws, ds))


def _is_date(y, m, d):
    try:
        datetime.date(y, m, d)
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- BG


def _bg_egn(d):
    """Bulgarian personal number (EGN): YYMMDD, month offset +20 -> 1800s, +40 -> 2000s."""
    yy, mm, dd = d[0] * 10 + d[1], d[2] * 10 + d[3], d[4] * 10 + d[5]
    if 1 <= mm <= 12:
        year = 1900 + yy
    elif 21 <= mm <= 32:
        year, mm = 1800 + yy, mm - 20
    elif 41 <= mm <= 52:
        year, mm = 2000 + yy, mm - 40
    else:
        return False
    if not _is_date(year, mm, dd):
        return False
    # weights are 2^k mod 11 for k = 1..9
    return _dot((2, 4, 8, 5, 10, 9, 7, 3, 6), d[:9]) % 11 % 10 == d[9]


def _bg_lnch(d):
    """Personal number of a foreigner (LNCh): weighted sum mod 10."""
    return _dot((21, 19, 17, 13, 11, 9, 7, 3, 1), d[:9]) % 10 == d[9]


def _bg_other(d):
    """Other 10-digit registrations: 11 - (sum mod 11); 11 -> 0, 10 -> never issued."""
    c = (11 - _dot((4, 3, 2, 7, 6, 5, 4, 3, 2), d[:9]) % 11) % 11
    return c == d[9]


def bg(body):
    d = _digits(body)
    if d is None:
        return False
    if len(d) == 9:  # legal entities (BULSTAT / UIC)
        r = _dot(range(1, 9), d[:8]) % 11
        if r == 10:
            r = _dot(range(3, 11), d[:8]) % 11
        return r % 10 == d[8]
    if len(d) == 10:  # persons, foreigners, others
        return _bg_egn(d) or _bg_lnch(d) or _bg_other(d)
    return False


# ----------------------------------------------------------------------------- CY

# value of a digit in the 1st, 3rd, 5th and 7th place
_CY_ODD = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21)


def cy(body, strict=False):
    if len(body) != 9 or not ('A' <= body[8] <= 'Z'):
        return False
    d = _digits(body[:8])
    if d is None or (d[0], d[1]) == (1, 2):
        return False
    # strict: valvat's first-digit set (0-6, 9). jsvat also refuses 6, ph-masterdata 2 and
    # 6, but CY60015676H (published on an invoice template, checksum-valid) starts with 6
    if strict and d[0] in (7, 8):
        return False
    s = sum(_CY_ODD[x] for x in d[0::2]) + sum(d[1::2])
    return body[8] == chr(65 + s % 26)


# ----------------------------------------------------------------------------- CZ / SK birth number


def _rc(d, strict=False):
    """Czech/Slovak birth number (rodné číslo), 9 or 10 digits; date and (10) mod 11.

    strict: only the month codes actually issued (01-12, 51-62; since 2004 also 21-32,
    71-82, for 10 digits only), and the 'remainder 10 -> check 0' exception only for
    years before 1985."""
    yy, mm, dd = d[0] * 10 + d[1], d[2] * 10 + d[3], d[4] * 10 + d[5]
    month = mm % 50 % 20  # women +50, overflow series +20 (stdnum's lax reduction)
    if strict:
        ok = (1 <= mm <= 12 or 51 <= mm <= 62 or
              (len(d) == 10 and (21 <= mm <= 32 or 71 <= mm <= 82)))
        if not ok:
            return False
    year = 1900 + yy
    if len(d) == 9:  # issued only up to the end of 1953, no check digit
        if year >= 1980:
            year -= 100
        if year > 1953:
            return False
    elif year < 1954:
        year += 100
    if not _is_date(year, month, dd):
        return False
    if len(d) == 10:
        n = 0
        for x in d[:9]:
            n = (n * 10 + x) % 11
        if strict and n == 10 and year >= 1985:
            return False
        return n % 10 == d[9]  # remainder 10 -> check 0 (pre-1985 numbers)
    return True


def cz(body, strict=False):
    """strict: no 9-digit birth numbers (they carry no check digit) and _rc(strict)."""
    d = _digits(body)
    if d is None:
        return False
    if len(d) == 8:  # legal entities: the IČO
        if d[0] == 9:
            return False
        r = _dot((8, 7, 6, 5, 4, 3, 2), d[:7]) % 11
        c = {0: 1, 1: 0}.get(r, 11 - r)
        return c == d[7]
    if len(d) == 9 and d[0] == 6:  # individuals without a birth number ("special")
        r = _dot((8, 7, 6, 5, 4, 3, 2), d[1:8]) % 11
        c = (8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8)[r]
        return c == d[8]
    if len(d) == 9 and strict:
        return False
    if len(d) in (9, 10):
        return _rc(d, strict)
    return False


# ----------------------------------------------------------------------------- EE


def ee(body, strict=False):
    d = _digits(body, 9)
    if d is None:
        return False
    if strict and (d[0], d[1]) != (1, 0):
        return False
    return _dot((3, 7, 1) * 3, d) % 10 == 0


# ----------------------------------------------------------------------------- EL


def el(body):
    d = _digits(body)
    if d is None:
        return False
    if len(d) == 8:  # old 8-digit numbers: read with a leading 0
        d = [0] + d
    if len(d) != 9:
        return False
    s = _dot((256, 128, 64, 32, 16, 8, 4, 2), d[:8])
    return s % 11 % 10 == d[8]


# ----------------------------------------------------------------------------- HR


def hr(body):
    d = _digits(body, 11)
    if d is None:
        return False
    # ISO 7064 MOD 11,10: carry p starts at 10; for each of the 10 data digits
    # s = (p + digit) mod 10, 0 read as 10, p = 2s mod 11; then the check digit
    # must make (p + check) mod 10 == 1.
    p = 10
    for x in d[:10]:
        s = (p + x) % 10 or 10
        p = (2 * s) % 11
    return (p + d[10]) % 10 == 1


# ----------------------------------------------------------------------------- HU


def hu(body):
    d = _digits(body, 8)
    return d is not None and _dot((9, 7, 3, 1) * 2, d) % 10 == 0


# ----------------------------------------------------------------------------- LT


def lt(body):
    d = _digits(body)
    if d is None or len(d) not in (9, 12):
        return False
    if d[-2] != 1:  # 8th of 9, 11th of 12 is always 1
        return False
    data = d[:-1]
    r = sum((1 + i % 9) * x for i, x in enumerate(data)) % 11
    if r == 10:
        r = sum((1 + (i + 2) % 9) * x for i, x in enumerate(data)) % 11
    return r % 10 == d[-1]


# ----------------------------------------------------------------------------- LV


def _lv_person_check(d):
    # = (1101 - sum(w'_i d_i)) mod 11 with w' = 1 6 3 7 9 10 5 8 4 2, 10 -> 0
    return (1 + _dot((10, 5, 8, 4, 2, 1, 6, 3, 7, 9), d[:10])) % 11 % 10 == d[10]


def lv(body, vies_minus45=False):
    d = _digits(body, 11)
    if d is None:
        return False
    if d[0] > 3:  # legal entities
        s = _dot((9, 1, 4, 8, 3, 10, 2, 5, 7, 6), d[:10])
        if vies_minus45 and d[0] == 9 and s % 11 == 4:
            s -= 45
        return (s + d[10]) % 11 == 3
    if d[0] == 3 and d[1] == 2:  # personal code without birth date (since 2017)
        return _lv_person_check(d)
    # old personal code: DDMMYY, 7th digit the century (0 = 1800s, 1 = 1900s, 2 = 2000s)
    day, month = d[0] * 10 + d[1], d[2] * 10 + d[3]
    year = 1800 + 100 * d[6] + d[4] * 10 + d[5]
    return _is_date(year, month, day) and _lv_person_check(d)


# ----------------------------------------------------------------------------- MT


def mt(body, strict=False):
    d = _digits(body, 8)
    if d is None or d[0] == 0:
        return False
    s6 = _dot((3, 4, 6, 7, 8, 9), d[:6])
    check = d[6] * 10 + d[7]
    if strict:  # as VIES states it: the last two digits are 37 - (s6 mod 37), 1..37
        return check == 37 - s6 % 37
    return (s6 + check) % 37 == 0  # stdnum: also accepts check + 37, check + 74


# ----------------------------------------------------------------------------- RO

_RO_COUNTIES = set(range(1, 49)) | {51, 52, 70, 80, 81, 82, 83}


def _ro_cnp(d):
    """13-digit personal code (CNP); stdnum's eu.vat accepts it for RO."""
    if d[0] == 0:
        return False
    century = {1: 1900, 2: 1900, 3: 1800, 4: 1800, 5: 2000, 6: 2000}.get(d[0], 1900)
    year = century + d[1] * 10 + d[2]
    if not _is_date(year, d[3] * 10 + d[4], d[5] * 10 + d[6]):
        return False
    if d[7] * 10 + d[8] not in _RO_COUNTIES:
        return False
    r = _dot((2, 7, 9, 1, 4, 6, 3, 5, 8, 2, 7, 9), d[:12]) % 11
    return (1 if r == 10 else r) == d[12]


def ro(body, allow_cnp=True):
    d = _digits(body)
    if d is None:
        return False
    if len(d) == 13:
        return allow_cnp and _ro_cnp(d)
    if not 2 <= len(d) <= 10 or d[0] == 0:
        return False
    data = d[:-1]
    ws = (7, 5, 3, 2, 1, 7, 5, 3, 2)[9 - len(data):]  # right-aligned weights
    return (10 * _dot(ws, data)) % 11 % 10 == d[-1]


# ----------------------------------------------------------------------------- SI


def si(body):
    d = _digits(body, 8)
    if d is None or d[0] == 0:
        return False
    r = _dot((8, 7, 6, 5, 4, 3, 2), d[:7]) % 11
    if r == 0:  # 11 - 0 = 11: no check digit, never issued
        return False
    return (11 - r) % 10 == d[7]  # remainder 1 -> 10 -> 0


# ----------------------------------------------------------------------------- SK


def sk(body, allow_rc=True):
    d = _digits(body, 10)
    if d is None:
        return False
    if allow_rc and _rc(d):
        return True
    if d[0] == 0 or d[2] not in (2, 3, 4, 7, 8, 9):
        return False
    n = 0
    for x in d:
        n = (n * 10 + x) % 11
    return n == 0


# ----------------------------------------------------------------------------- dispatch

CHECKS = {
    'BG': bg, 'CY': cy, 'CZ': cz, 'EE': ee, 'EL': el, 'HR': hr, 'HU': hu,
    'LT': lt, 'LV': lv, 'MT': mt, 'RO': ro, 'SI': si, 'SK': sk,
}


def vat(s):
    s = ''.join(c for c in s.strip().upper() if c not in ' -./:')
    f = CHECKS.get(s[:2])
    return bool(f and f(s[2:]))


if __name__ == '__main__':
    import sys
    for a in sys.argv[1:]:
        print(a, vat(a))
