#!/usr/bin/env python3
"""Check src/ for cycles between files: in the #include graph of the
headers, and in the call graph of the .c files (file A calls a function
defined in file B and B calls one defined in A, or a longer loop).

usage: test/tools/include_graph.py [--src DIR] [--allow A.c:B.c ...]

Prints every cycle (a strongly connected component of more than one
file) and exits 1 if there is one that is not allowed.  A function is
known by its name: the definitions are the non-static functions at the
start of a line (PostgreSQL style puts the name at column 0); calls are
those names followed by "(" outside comments and string literals."""
import os
import re
import sys

def strip(text):
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(?:\\.|[^'\\\n])*'", "''", text)
    return text

def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out

def main():
    args = sys.argv[1:]
    src = 'src'
    allow = set()
    while args:
        a = args.pop(0)
        if a == '--src':
            src = args.pop(0)
        elif a == '--allow':
            allow.add(frozenset(args.pop(0).split(':')))
        else:
            sys.exit(__doc__)
    files = {f: strip(open(os.path.join(src, f), encoding='utf-8', errors='replace').read())
             for f in os.listdir(src) if f.endswith(('.c', '.h'))}

    raw = {f: open(os.path.join(src, f), encoding='utf-8', errors='replace').read() for f in files}
    inc = {f: {h for h in re.findall(r'^\s*#\s*include\s+"([^"]+)"', raw[f], re.M) if h in files}
           for f in files}

    defs = {}
    for f, text in files.items():
        if not f.endswith('.c'):
            continue
        for m in re.finditer(r'^(?!static\b)[A-Za-z_][\w \t\*]*\n([A-Za-z_]\w*)\s*\(', text, re.M):
            defs.setdefault(m.group(1), f)
    calls = {}
    for f, text in files.items():
        if not f.endswith('.c'):
            continue
        for name in set(re.findall(r'\b([A-Za-z_]\w*)\s*\(', text)):
            g = defs.get(name)
            if g and g != f:
                calls.setdefault(f, set()).add(g)

    bad = 0
    for what, graph in (('include', inc), ('call', calls)):
        for comp in sccs(files.keys(), graph):
            allowed = frozenset(comp) in allow
            print('%s cycle%s: %s' % (what, ' (allowed)' if allowed else '', ' <-> '.join(comp)))
            bad += not allowed
    if bad == 0:
        print('no cycle between files in %s but those allowed' % src if allow else
              'no cycle between files in %s' % src)
    return 1 if bad else 0

if __name__ == '__main__':
    sys.exit(main())
