#!/usr/bin/env python3
"""Checks that every crate's own test build (`xtask test-each`: `cargo test -p <crate>
--all-features`) compiles the heavy test-only dependencies exactly as the workspace build does,
so each is compiled once per `make test`, not once per crate: wasmtime and cranelift (the
emulator's wasm engine), jsonschema with its regex engines (`schema-validate`), and regorus
(opa-policy).

Reads cargo's unit graph (`--unit-graph`, nightly, nothing is compiled) for the workspace and for
each crate, takes each heavy crate's dependency closure with each unit's features, and prints
every package whose features differ. The fix is a feature pin: in sdk-ext's `wasm-engine` or
`schema-validate` feature (sdk-ext/Cargo.toml, sdk-ext/macros/Cargo.toml), or in the crate's
own [dev-dependencies]. Exit 0 without a nightly toolchain (the check is skipped, saying so)."""
import json
import subprocess
import sys

HEAVY = ["wasmtime", "jsonschema", "regorus"]


def closures(args):
    """{heavy crate: {(package, target kind, mode): features}} for one `cargo test` build."""
    run = subprocess.run(
        ["cargo", "+nightly", "test", "--no-run", "--unit-graph", "-Z", "unstable-options"] + args,
        capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"test-dep-variants: cargo {' '.join(args)}: {run.stderr.strip()[-400:]}")
    units = json.loads(run.stdout)["units"]
    found = {}
    for i, u in enumerate(units):
        for heavy in HEAVY:
            if f"#{heavy}@" in u["pkg_id"] and u["target"]["kind"] == ["lib"]:
                seen, stack = set(), [i]
                while stack:
                    j = stack.pop()
                    if j not in seen:
                        seen.add(j)
                        stack += [d["index"] for d in units[j]["dependencies"]]
                found[heavy] = {
                    (units[j]["pkg_id"].split("#")[-1], units[j]["target"]["kind"][0],
                     units[j].get("mode")): ",".join(units[j]["features"]) for j in seen}
    return found


def main():
    if subprocess.run(["cargo", "+nightly", "--version"], capture_output=True).returncode != 0:
        print("test-dep-variants: SKIPPED: no nightly toolchain (cargo's unit graph needs it)")
        return 0
    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                                     capture_output=True, text=True, check=True).stdout)
    # The invocations of `xtask test-each` (xtask/src/test_each.rs).
    runs = [(p["name"], ["-p", p["name"], "--all-features"])
            for p in meta["packages"] if "/filters/" in p["manifest_path"]]
    runs.append(("sdk-ext", ["-p", "sdk-ext", "--features", "testing,schema-validate,wasm-engine"]))
    workspace = closures(["--workspace", "--all-features"])
    bad = 0
    for name, args in runs:
        mine = closures(args)
        for heavy, deps in mine.items():
            ws = workspace.get(heavy, {})
            for key in sorted(set(deps) | set(ws)):
                if deps.get(key) != ws.get(key):
                    bad += 1
                    print(f"test-dep-variants: {name}: {heavy}'s {key[0]} ({key[1]}, {key[2]}): "
                          f"features [{deps.get(key)}], workspace [{ws.get(key)}]")
    if bad:
        print("test-dep-variants: FAILED: these crates' test builds would compile the heavy "
              "crates above again; pin the features shown (see this script's docstring)")
        return 1
    print(f"test-dep-variants: ok: {len(runs)} test-each builds share the workspace's "
          f"{', '.join(HEAVY)} builds")
    return 0


sys.exit(main())
