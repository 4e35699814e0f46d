#!/usr/bin/env python3
"""Import cycles between the crate's top-level modules.

Builds the graph "module A uses module B" from the library's sources (`src/`, not `main.rs`,
which is the binary and uses the library by name): every `use crate::b...`, every
`use crate::{b::..., c}` and every inline `crate::b::` path in a file under module `a` (a file
`src/a.rs` or a folder `src/a/`) is an edge a -> b. Comments are ignored (intra-doc links are no
dependency); test modules count like the rest. Prints the strongly connected components with more
than one module, each with the edges inside it and the files that make them, and exits 1 when
there is any, else prints `no cycles` and exits 0.

  module-cycles.py [REPO_ROOT]            check
  module-cycles.py [REPO_ROOT] --graph    also print every edge
"""
import os
import re
import sys

ROOT = next((a for a in sys.argv[1:] if not a.startswith("--")), ".")
SRC = os.path.join(ROOT, "src")
SKIP = {"main.rs", "lib.rs"}


def strip_comments(text):
    """Removes `//` and `/* */` comments (string literals are rare enough here to ignore, except
    that `//` inside a string on the same line is kept by skipping quoted spans)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        in_str = False
        cut = len(line)
        i = 0
        while i < len(line):
            c = line[i]
            if c == "\\" and in_str:
                i += 2
                continue
            if c == '"':
                in_str = not in_str
            elif not in_str and line.startswith("//", i):
                cut = i
                break
            i += 1
        out.append(line[:cut])
    return "\n".join(out)


def braced_heads(body):
    """The first path segment of each item of a `{...}` use list, at depth 1."""
    heads, depth, item = [], 0, ""
    for c in body:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            heads.append(item)
            item = ""
            continue
        if depth == 0:
            item += c
    heads.append(item)
    names = []
    for h in heads:
        m = re.match(r"\s*(\w+)", h)
        if m and m.group(1) != "self":
            names.append(m.group(1))
    return names


def module_of(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def edges():
    found = {}  # (a, b) -> set of files
    modules = set()
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, SRC)
            if rel in SKIP or rel.startswith("bin" + os.sep):
                continue
            a = module_of(path)
            modules.add(a)
            with open(path, encoding="utf-8") as fh:
                text = strip_comments(fh.read())
            targets = set()
            for m in re.finditer(r"\bcrate::\{", text):
                # The matching brace of a grouped use.
                depth, i = 1, m.end()
                while i < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[i], 0)
                    i += 1
                targets.update(braced_heads(text[m.end():i - 1]))
            targets.update(re.findall(r"\bcrate::(\w+)", text))
            for b in targets:
                if b != a:
                    found.setdefault((a, b), set()).add(rel)
    return modules, found


def sccs(nodes, adj):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
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
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    modules, found = edges()
    modules = {m for m in modules} | {b for _, b in found}
    adj = {}
    for a, b in found:
        adj.setdefault(a, set()).add(b)
    if "--graph" in sys.argv:
        for (a, b), files in sorted(found.items()):
            print(f"{a} -> {b}  ({', '.join(sorted(files))})")
        print()
    cycles = [c for c in sccs(modules, adj) if len(c) > 1]
    if not cycles:
        print(f"no cycles among {len(modules)} top-level modules ({len(found)} edges)")
        return 0
    for comp in cycles:
        print(f"cycle: {' <-> '.join(comp)}")
        for (a, b), files in sorted(found.items()):
            if a in comp and b in comp:
                print(f"  {a} -> {b}: {', '.join(sorted(files))}")
    print(f"{len(cycles)} cycle(s) among {len(modules)} top-level modules ({len(found)} edges)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
