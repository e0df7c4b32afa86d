#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

A module (file) A depends on module B when A names a path into B: `crate::b::..`,
`super::b::..` (a sibling), `self::b::..` or `b::..` for a child module B.
Paths from a module to its ancestors (`super::Shared`, `crate::{Error,
Result}` at the root) do not count: a parent declaring what its children
share is the normal shape. Nor do comments and doc links. Each crate should
read top-down:
    scripts/check-module-cycles.py [CRATE_DIR ...]   (default: every workspace crate)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["storage", "index", "embed", "query", "rag", "ingest", "server", "clients/rust", "bench"]


def modules(src: Path):
    """Module path (tuple) -> file, and file -> its declared child names."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        if parts and f.name in ("lib.rs", "main.rs"):
            continue  # a second binary target
        mods[tuple(parts)] = f
    return mods


def strip(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


PATH = re.compile(r"\b(crate|super|self)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)(::\{([^;]*?)\})?")


def resolve(start, segs, mods):
    """The deepest module named by walking `segs` from `start`."""
    cur = list(start)
    best = None
    for s in segs:
        if s == "super":
            cur = cur[:-1]
            best = tuple(cur)
            continue
        if tuple(cur + [s]) in mods:
            cur = cur + [s]
            best = tuple(cur)
        else:
            break
    return best


def edges_of(path, f, mods):
    text = strip(f.read_text())
    out = set()
    for m in PATH.finditer(text):
        head, rest, group = m.group(1), m.group(2), m.group(4)
        segs = [s for s in rest.split("::") if s]
        if head == "crate":
            start = ()
        elif head == "super":
            start = path[:-1]
        else:
            start = path
        tails = [segs]
        if group is not None:
            tails = [segs + [item.strip().split("::")[0]] for item in re.split(r",(?![^{]*\})", group) if item.strip()]
        for t in tails:
            target = resolve(start, t, mods)
            if target is None and head == "super":
                target = tuple(path[:-1])
            # A module may use its ancestors' items (the shared types a parent
            # declares for its children); any other edge counts.
            if target is not None and target != () and target != path and tuple(path[: len(target)]) != target:
                out.add(target)
    # bare paths into declared child modules
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", text, flags=re.M):
        if re.search(r"(?<![:\w])" + child + r"::", text) and tuple(path + (child,)) in mods:
            out.add(tuple(path + (child,)))
    return out


def cycles(graph):
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return comps


def main():
    crates = sys.argv[1:] or CRATES
    bad = False
    for c in crates:
        src = ROOT / c / "src"
        mods = modules(src)
        graph = {p: edges_of(p, f, mods) for p, f in mods.items()}
        for comp in cycles(graph):
            bad = True
            names = sorted(str(mods[p].relative_to(ROOT)) for p in comp)
            print(f"{c}: modules import each other in a circle: {', '.join(names)}")
            for p in sorted(comp):
                inside = sorted(str(mods[q].relative_to(ROOT)) for q in graph[p] if q in comp)
                print(f"    {mods[p].relative_to(ROOT)} -> {', '.join(inside)}")
    if bad:
        sys.exit(1)
    print(f"no import circles in {len(crates)} crates")


if __name__ == "__main__":
    main()
