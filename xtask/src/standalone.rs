//! `new-filter NAME --out DIR` (`make new-filter NAME=x OUT=../my-filter`): the template as a
//! standalone crate in a repository of one's own, depending on this repository's sdk-ext.
//!
//! `DIR` gets the template's files renamed as the in-repo `new-filter` does (see
//! `new_filter::rename`), its hub manifest under `DIR/hub-manifest/` (sdk-ext's schema check
//! looks there for a standalone crate), this workspace's `Cargo.lock` (the versions this
//! repository tests), and a `Cargo.toml` with nothing taken from a workspace: every
//! `*.workspace = true` of the template is replaced by the workspace's value (package fields,
//! dependency specs, `[lints]`), `[profile.release]` is copied (the size settings), sdk-ext is
//! a path dependency on this checkout (a commented `git` alternative names the repository
//! URL), and an empty `[workspace]` makes the crate its own root wherever it is put.
//! `build-wasm.sh` builds `dist/NAME.wasm` with the same toolchain choice as `make build`
//! (rustup's wasm32-wasip1 when installed, else Debian's toolchain with `-Zbuild-std`).
//! `integration/tests/standalone.rs` generates one outside the workspace and runs its tests,
//! its wasm build and the module in Envoy.

use crate::new_filter::rename;
use crate::repo_root;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository URL, as in the workspace's `Cargo.toml` (a placeholder until the project
/// has its public home).
fn repository(workspace: &Workspace) -> String {
    workspace
        .package
        .get("repository")
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

/// What the template inherits from the workspace's `Cargo.toml`.
struct Workspace {
    package: BTreeMap<String, String>,
    dependencies: BTreeMap<String, String>,
    /// `[workspace.lints.<tool>]` sections, as `(tool, body lines)`.
    lints: Vec<(String, Vec<String>)>,
    /// The `[profile.release]` section's lines, header included.
    release_profile: Vec<String>,
}

/// A line-level reader of the workspace's `Cargo.toml` (simple `key = value` lines in the
/// sections above, which is how it is written).
fn read_workspace(root: &Path) -> Result<Workspace, String> {
    let path = root.join("Cargo.toml");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut ws = Workspace {
        package: BTreeMap::new(),
        dependencies: BTreeMap::new(),
        lints: Vec::new(),
        release_profile: Vec::new(),
    };
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_string();
            if let Some(tool) = section.strip_prefix("workspace.lints.") {
                ws.lints.push((tool.to_string(), Vec::new()));
            }
            if section == "profile.release" {
                ws.release_profile.push(line.to_string());
            }
            continue;
        }
        if section == "profile.release" {
            ws.release_profile.push(line.to_string());
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match section.as_str() {
            "workspace.package" => {
                ws.package.insert(k, v);
            }
            "workspace.dependencies" => {
                ws.dependencies.insert(k, v);
            }
            s if s.starts_with("workspace.lints.") => {
                if let Some((_, body)) = ws.lints.last_mut() {
                    body.push(format!("{k} = {v}"));
                }
            }
            _ => {}
        }
    }
    while ws
        .release_profile
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim().starts_with('#'))
    {
        ws.release_profile.pop();
    }
    Ok(ws)
}

/// A dependency spec with relative `path = "..."` made absolute (relative to `root`).
fn absolute_paths(spec: &str, root: &Path) -> String {
    match spec.split_once("path = \"") {
        Some((before, rest)) => match rest.split_once('"') {
            Some((p, after)) if !p.starts_with('/') => {
                format!("{before}path = \"{}\"{after}", root.join(p).display())
            }
            _ => spec.to_string(),
        },
        None => spec.to_string(),
    }
}

/// `spec` (a version string or an inline table) with `extra` (`features = [...]`, ...) added.
fn merge_spec(spec: &str, extra: &str) -> String {
    let extra = extra.trim().trim_start_matches(',').trim();
    if extra.is_empty() {
        return spec.to_string();
    }
    match spec.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some(inner) => format!("{{ {}, {extra} }}", inner.trim()),
        None => format!("{{ version = {spec}, {extra} }}"),
    }
}

/// The template's `Cargo.toml` with everything it inherits written out.
fn standalone_manifest(template: &str, ws: &Workspace, root: &Path) -> Result<String, String> {
    let mut out = Vec::new();
    let mut lines = template.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with('#') {
            // Advice about the workspace's own spelling reads as the standalone one.
            out.push(line.replace("{ workspace = true, ", "{ ..., "));
            continue;
        }
        if t == "[lints]" && lines.peek().map(|l| l.trim()) == Some("workspace = true") {
            lines.next();
            for (i, (tool, body)) in ws.lints.iter().enumerate() {
                if i > 0 {
                    out.push(String::new());
                }
                out.push(format!("[lints.{tool}]"));
                out.extend(body.iter().cloned());
            }
            continue;
        }
        if let Some(key) = t.strip_suffix(".workspace = true") {
            let value = ws
                .package
                .get(key)
                .or_else(|| ws.dependencies.get(key))
                .ok_or_else(|| format!("the workspace has no {key} to inherit"))?;
            out.push(format!("{key} = {}", absolute_paths(value, root)));
            continue;
        }
        if let Some((key, rest)) = t.split_once("= { workspace = true") {
            let key = key.trim();
            let spec = ws
                .dependencies
                .get(key)
                .ok_or_else(|| format!("the workspace has no dependency {key}"))?;
            let extra = rest.trim_end_matches('}');
            out.push(format!(
                "{key} = {}",
                merge_spec(&absolute_paths(spec, root), extra)
            ));
            continue;
        }
        out.push(line.to_string());
    }
    let mut text = out.join("\n");
    text.push('\n');
    text.push('\n');
    text.push_str(&ws.release_profile.join("\n"));
    text.push_str(&format!(
        "\n
# This crate is its own workspace, wherever it is put.
[workspace]

# sdk-ext comes from the envoy-wasm-filters checkout this crate was generated from. To depend on
# the repository instead, replace the sdk-ext lines above with (the URL is a placeholder until the
# project's public home is settled; see its Cargo.toml):
#   sdk-ext = {{ git = \"{}\", default-features = false }}
",
        repository(ws)
    ));
    Ok(text)
}

const BUILD_SCRIPT: &str = r#"#!/usr/bin/env bash
# Builds dist/NAME.wasm like envoy-wasm-filters' `make build`: rustup's wasm32-wasip1 target
# when installed, else Debian's toolchain building std for the target (-Zbuild-std; needs
# `apt-get install rustc-web cargo-web rust-web-src lld-22 wasi-libc`), then `wasm-opt -Oz`
# when binaryen is installed. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")"
name=NAME
lib=NAME_SNAKE
mkdir -p dist
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  target_dir="${CARGO_TARGET_DIR:-target}"
  cargo build --release --target wasm32-wasip1 --target-dir "$target_dir"
else
  target_dir="${CARGO_TARGET_DIR:-target-wasm}"
  env -u RUSTUP_TOOLCHAIN -u CARGO PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
    RUSTFLAGS="-C link-self-contained=no -L /usr/lib/wasm32-wasi -Zunstable-options -Cpanic=immediate-abort" \
    /usr/bin/cargo build --release --target wasm32-wasip1 --target-dir "$target_dir" \
      -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
fi
module="$target_dir/wasm32-wasip1/release/$lib.wasm"
if command -v wasm-opt >/dev/null 2>&1; then
  wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types \
    --strip-debug --strip-producers "$module" -o "dist/$name.wasm"
else
  cp "$module" "dist/$name.wasm"
fi
echo "build-wasm: dist/$name.wasm ($(wc -c < "dist/$name.wasm") bytes)"
"#;

fn copy_renamed(from: &Path, to: &Path, name: &str) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if src.is_dir() {
            copy_renamed(&src, &dst, name)?;
        } else if src.file_name().is_some_and(|n| n != "Cargo.toml") {
            let text =
                fs::read_to_string(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
            fs::write(&dst, rename(&text, name))
                .map_err(|e| format!("writing {}: {e}", dst.display()))?;
        }
    }
    Ok(())
}

/// Writes the standalone crate `name` into `out` (which must not exist or be empty).
pub fn create(name: &str, out: &Path) -> Result<PathBuf, String> {
    let root = repo_root();
    let out = if out.is_absolute() {
        out.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("current directory: {e}"))?
            .join(out)
    };
    if out.exists()
        && fs::read_dir(&out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!("{} exists and is not empty", out.display()));
    }
    let ws = read_workspace(&root)?;
    let template = root.join("filters/template");
    copy_renamed(&template, &out, name)?;
    copy_renamed(
        &root.join("hub-manifest/template"),
        &out.join("hub-manifest"),
        name,
    )?;
    let manifest_text = fs::read_to_string(template.join("Cargo.toml"))
        .map_err(|e| format!("reading the template's Cargo.toml: {e}"))?;
    let cargo = standalone_manifest(&rename(&manifest_text, name), &ws, &root)?;
    let write = |rel: &str, text: &str| {
        let p = out.join(rel);
        fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    write("Cargo.toml", &cargo)?;
    let lock = fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    write("Cargo.lock", &lock)?;
    write(".gitignore", "/target\n/target-wasm\n/dist\n")?;
    let script = BUILD_SCRIPT
        .replace("NAME_SNAKE", &name.replace('-', "_"))
        .replace("NAME", name);
    write("build-wasm.sh", &script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = out.join("build-wasm.sh");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_merge_and_paths_become_absolute() {
        assert_eq!(
            merge_spec(
                "{ path = \"sdk-ext\", default-features = false }",
                ", features = [\"testing\"] "
            ),
            "{ path = \"sdk-ext\", default-features = false, features = [\"testing\"] }"
        );
        assert_eq!(
            merge_spec("\"0.4\"", ", features = [\"std\"]"),
            "{ version = \"0.4\", features = [\"std\"] }"
        );
        assert_eq!(
            absolute_paths("{ path = \"sdk-ext\" }", Path::new("/r")),
            "{ path = \"/r/sdk-ext\" }"
        );
        assert_eq!(absolute_paths("\"1\"", Path::new("/r")), "\"1\"");
    }

    #[test]
    fn the_template_manifest_inherits_nothing() {
        let root = repo_root();
        let ws = read_workspace(&root).unwrap();
        let template = fs::read_to_string(root.join("filters/template/Cargo.toml")).unwrap();
        let m = standalone_manifest(&rename(&template, "my-f"), &ws, &root).unwrap();
        assert!(!m.contains("workspace = true"), "{m}");
        assert!(!m.contains(".workspace"), "{m}");
        assert!(m.contains("name = \"my-f\""), "{m}");
        assert!(m.contains("[lints.clippy]\nunwrap_used = \"deny\""), "{m}");
        assert!(m.contains("[profile.release]\n"), "{m}");
        assert!(m.contains("\n[workspace]\n"), "{m}");
        let sdk = format!("path = \"{}\"", root.join("sdk-ext").display());
        assert!(m.contains(&sdk), "{m}");
    }
}
