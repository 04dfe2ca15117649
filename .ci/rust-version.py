"""Fails when a dependency needs a newer Rust than the crate's `rust-version`.

Reads `cargo metadata` on standard input; walks the normal and build dependencies of
tower-sovendus, all features on, and compares each package's `rust-version` with the crate's.
"""

import json
import sys


def version(text):
    """`1.85` and `1.85.0` alike, as (1, 85, 0)."""
    parts = [int(part) for part in (text or "0").split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.load(sys.stdin)
    packages = {package["id"]: package for package in metadata["packages"]}
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    root = next(id for id, package in packages.items() if package["name"] == "tower-sovendus")
    ours = version(packages[root]["rust_version"])
    seen, todo = set(), [root]
    while todo:
        id = todo.pop()
        if id in seen:
            continue
        seen.add(id)
        for dependency in nodes[id]["deps"]:
            kinds = {kind["kind"] for kind in dependency["dep_kinds"]}
            if kinds & {None, "build"}:
                todo.append(dependency["pkg"])
    newer = sorted(
        f"{packages[id]['name']} {packages[id]['version']} needs Rust {packages[id]['rust_version']}"
        for id in seen
        if version(packages[id].get("rust_version")) > ours
    )
    if newer:
        print(f"rust-version {packages[root]['rust_version']} is too old for:", *newer, sep="\n  ")
        sys.exit(1)
    print(f"every dependency builds with Rust {packages[root]['rust_version']} ({len(seen) - 1} packages)")


main()
