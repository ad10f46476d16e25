#!/usr/bin/env python3
"""Fail when `use crate::` imports form a cycle among src/ top-level modules.

Why: issue #18 — circular imports made the query path unreadable and forced
unrelated rebuild/merge churn. Edges come from `use crate::X` / `crate::X::`
paths in every file under src/X (or src/X.rs); a module referring to itself is
ignored. Prints each cycle found and exits 1; exits 0 when the graph is a DAG.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def top_modules():
    mods = {}
    for name in os.listdir(ROOT):
        path = os.path.join(ROOT, name)
        if name.endswith(".rs") and name not in ("lib.rs", "main.rs"):
            mods[name[:-3]] = [path]
        elif os.path.isdir(path):
            files = []
            for d, _, fs in os.walk(path):
                files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
            mods[name] = files
    return mods


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def edges(mods):
    graph = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            with open(f, encoding="utf-8") as fh:
                text = strip_comments(fh.read())
            # drop #[cfg(test)] modules' influence: tests may reach anywhere
            text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
            found = set(REF.findall(text))
            for g in GROUP.findall(text):
                found |= {p.strip().split("::")[0] for p in g.split(",")}
            graph[m] |= {t for t in found if t in mods and t != m}
    return graph


def cycles(graph):
    """Tarjan's strongly connected components; any SCC > 1 is a cycle."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    graph = edges(top_modules())
    found = cycles(graph)
    if "-v" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '-'}")
    for comp in found:
        print("import cycle among src/ modules: " + " <-> ".join(comp))
        for m in comp:
            print(f"  {m} uses {', '.join(sorted(graph[m] & set(comp)))}")
    if found:
        return 1
    print(f"import graph: {len(graph)} top-level modules, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
