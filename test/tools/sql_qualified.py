#!/usr/bin/env python3
"""Check SQL statements (one per line on stdin) for names resolved through
the search_path: unqualified function calls, operators outside
OPERATOR(schema.op), :: casts, and CAST(... AS type) with an unqualified type."""
import re, sys

KEYWORDS_BEFORE_PAREN = {'AS', 'EXISTS', 'CAST', 'OPERATOR', 'VALUES', 'IN', 'SELECT',
                         'WHERE', 'AND', 'ON', 'CONFLICT', 'FROM', 'USING', 'INTO', 'ANY', 'ALL', 'OR', 'NOT'}
tok_re = re.compile(r'''
    (?P<ws>\s+) |
    (?P<param>\$\d+) |
    (?P<qident>"(?:[^"]|"")*") |
    (?P<ident>[A-Za-z_][A-Za-z0-9_$]*) |
    (?P<num>\d+) |
    (?P<str>'(?:[^']|'')*') |
    (?P<punct>[(),.;]) |
    (?P<op>[-+*/<>=~!@\#%^&|`?:]+)
''', re.X)

def tokens(sql):
    pos = 0
    out = []
    while pos < len(sql):
        m = tok_re.match(sql, pos)
        if not m:
            raise ValueError('cannot tokenize at %r' % sql[pos:pos+20])
        pos = m.end()
        if m.lastgroup != 'ws':
            out.append((m.lastgroup, m.group()))
    return out

def check(sql):
    problems = []
    t = tokens(sql)
    in_set = False          # the SET list of an UPDATE: "col = expr" is syntax
    depth = 0
    for i, (kind, text) in enumerate(t):
        if text == '(':
            depth += 1
        elif text == ')':
            depth -= 1
        elif kind == 'ident' and depth == 0 and text.upper() == 'SET':
            in_set = True
        elif kind == 'ident' and depth == 0 and text.upper() in ('FROM', 'WHERE', 'RETURNING'):
            in_set = False
        if kind == 'op' and text == '=' and in_set and depth == 0:
            continue
        prev = t[i-1] if i > 0 else (None, None)
        prev2 = t[i-2] if i > 1 else (None, None)
        nxt = t[i+1] if i + 1 < len(t) else (None, None)
        if kind == 'op':
            # allowed only as OPERATOR(schema.op)
            if not (prev == ('punct', '.') and i >= 4 and t[i-3] == ('punct', '(') and t[i-4][1].upper() == 'OPERATOR'):
                problems.append('operator %s outside OPERATOR(schema.op)' % text)
        if kind in ('ident', 'qident') and nxt == ('punct', '('):
            up = text.upper()
            if up in KEYWORDS_BEFORE_PAREN:
                pass
            # INSERT INTO [schema.]table (columns)
            elif prev[1] and prev[1].upper() == 'INTO':
                pass
            elif prev == ('punct', '.') and i >= 3 and t[i-3][1].upper() == 'INTO':
                pass
            # alias column lists: AS r( / AS t (
            elif prev[0] == 'ident' and prev[1].upper() == 'AS':
                pass
            elif prev == ('punct', '.') and prev2[1] in ('pg_catalog',):
                pass
            else:
                problems.append('call of %s not qualified with pg_catalog' % text)
        if kind == 'ident' and text.upper() == 'CAST':
            # CAST(expr AS schema.type): find the AS at depth 1
            d = 0
            for j in range(i + 1, len(t)):
                if t[j] == ('punct', '('):
                    d += 1
                elif t[j] == ('punct', ')'):
                    d -= 1
                    if d == 0:
                        break
                elif d == 1 and t[j][1].upper() == 'AS':
                    if not (t[j+2] == ('punct', '.')):
                        problems.append('CAST to unqualified type %s' % t[j+1][1])
    return problems

bad = 0
n = 0
for line in sys.stdin:
    sql = line.strip()
    if not sql:
        continue
    n += 1
    for p in check(sql):
        bad += 1
        print('%s\n    in: %s' % (p, sql))
print('%d statements checked, %d problems' % (n, bad))
sys.exit(1 if bad else 0)
