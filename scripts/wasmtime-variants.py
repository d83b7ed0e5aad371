#!/usr/bin/env python3
"""Checks that every crate's own test build (`xtask test-each`: `cargo test -p <crate>
--all-features`) compiles wasmtime exactly as the workspace build does, so wasmtime and
cranelift are compiled once per `make test`, not once per crate.

Reads cargo's unit graph (`--unit-graph`, nightly, nothing is compiled) for the workspace and for
each crate that has the wasm engine, takes wasmtime's dependency closure with each unit's
features, and prints every package whose features differ. The fix is a pin in sdk-ext's
`wasm-engine` feature (sdk-ext/Cargo.toml, sdk-ext/macros/Cargo.toml). Exit 0 without a nightly
toolchain (the check is skipped, saying so)."""
import json
import subprocess
import sys


def closure(args):
    run = subprocess.run(
        ["cargo", "+nightly", "test", "--no-run", "--unit-graph", "-Z", "unstable-options"] + args,
        capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"wasmtime-variants: cargo {' '.join(args)}: {run.stderr.strip()[-400:]}")
    units = json.loads(run.stdout)["units"]
    for i, u in enumerate(units):
        if "#wasmtime@" in u["pkg_id"] and u["target"]["kind"] == ["lib"]:
            seen, stack = set(), [i]
            while stack:
                j = stack.pop()
                if j not in seen:
                    seen.add(j)
                    stack += [d["index"] for d in units[j]["dependencies"]]
            return {(units[j]["pkg_id"].split("#")[-1], units[j]["target"]["kind"][0],
                     units[j].get("mode")): ",".join(units[j]["features"]) for j in seen}
    return None


def main():
    if subprocess.run(["cargo", "+nightly", "--version"], capture_output=True).returncode != 0:
        print("wasmtime-variants: SKIPPED: no nightly toolchain (cargo's unit graph needs it)")
        return 0
    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                                     capture_output=True, text=True, check=True).stdout)
    crates = [p["name"] for p in meta["packages"] if "/filters/" in p["manifest_path"]]
    workspace = closure(["--workspace", "--all-features"])
    bad = 0
    for c in crates:
        mine = closure(["-p", c, "--all-features"])
        if mine is None:
            continue
        for key in sorted(set(mine) | set(workspace)):
            if mine.get(key) != workspace.get(key):
                bad += 1
                print(f"wasmtime-variants: {c}: {key[0]} ({key[1]}, {key[2]}): features "
                      f"[{mine.get(key)}], workspace [{workspace.get(key)}]")
    if bad:
        print("wasmtime-variants: FAILED: these crates' test builds would compile wasmtime again; "
              "pin the features above in sdk-ext's `wasm-engine` (sdk-ext/Cargo.toml)")
        return 1
    print(f"wasmtime-variants: ok: {len(crates)} filter crates share the workspace's wasmtime build")
    return 0


sys.exit(main())
