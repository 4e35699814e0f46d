#!/usr/bin/env python3
"""The longest functions in the crate's sources, by lines from `fn` to its closing brace.

Reads every `.rs` file under `src/` (or the folders given), finds each `fn` with a body (trait
declarations ending in `;` are skipped) and measures it by matching braces, with strings, raw
strings, character literals and comments passed over. Test modules count like the rest unless
`--no-tests` (which skips everything after a file's `#[cfg(test)]`).

  longest-fns.py [--top N] [--no-tests] [DIR ...]     default: --top 15 src
"""
import os
import re
import sys

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|async|unsafe|extern\s+\"[^\"]*\")\s+)*fn\s+(\w+)")


def code_only(text):
    """`text` with comments, strings and char literals blanked (newlines kept), so braces and
    line numbers can be read off it."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])):
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path, no_tests):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    code = code_only(text)
    lines = code.split("\n")
    if no_tests:
        for k, line in enumerate(lines):
            if line.strip().startswith("#[cfg(test)]"):
                lines = lines[:k]
                break
    found = []
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for k in range(start, len(lines)):
            for ch in lines[k] if k > start else line[m.end():]:
                if not opened and ch == ";" and depth == 0:
                    break
                if ch == "{":
                    depth += 1
                    opened = True
                elif ch == "}":
                    depth -= 1
                    if opened and depth == 0:
                        found.append((k - start + 1, path, start + 1, m.group(1)))
                        break
            else:
                continue
            break
    return found


def main():
    args = sys.argv[1:]
    top, no_tests, dirs = 15, False, []
    while args:
        a = args.pop(0)
        if a == "--top":
            top = int(args.pop(0))
        elif a == "--no-tests":
            no_tests = True
        else:
            dirs.append(a)
    found = []
    for d in dirs or ["src"]:
        for dirpath, _, files in os.walk(d):
            for name in sorted(files):
                if name.endswith(".rs"):
                    found += functions(os.path.join(dirpath, name), no_tests)
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    for length, path, line, name in found[:top]:
        print(f"{length:5d}  {path}:{line}  {name}")
    print(f"({len(found)} functions)")


if __name__ == "__main__":
    main()
