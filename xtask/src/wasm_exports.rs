//! Trims the proxy-wasm callbacks a filter does not implement from its module's exports.
//!
//! The proxy-wasm SDK exports every `proxy_on_*` callback, and the host calls each exported
//! one for every stream (`proxy_on_response_body`, `proxy_on_log`, `proxy_on_done`, ...), even
//! when the filter's implementation is the SDK's empty default. A host only calls the callbacks
//! a module exports and treats a missing one as "continue" (`proxy_on_done`: done), so a filter
//! that declares which callbacks it implements, in its `Cargo.toml`,
//!
//! ```toml
//! [package.metadata.proxy-wasm]
//! callbacks = ["request_headers", "response_headers"]
//! ```
//!
//! gets a module exporting only those (plus the core lifecycle exports, always kept), which
//! saves the host one VM entry per stream and callback (measured: ~8 µs per request for the
//! five callbacks an HTTP stream triggers needlessly, see README) and lets `wasm-opt` drop the
//! code behind them. Without the key nothing is trimmed.

use std::fs;
use std::path::Path;

/// Exports every module keeps: memory, initialisation, ABI version, allocation, the context
/// lifecycle and configuration.
const ALWAYS_KEPT: &[&str] = &[
    "memory",
    "_initialize",
    "_start",
    "proxy_abi_version_0_2_0",
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_delete",
];

/// Every `proxy_on_*` callback a filter may declare (name without the `proxy_on_` prefix).
pub const DECLARABLE: &[&str] = &[
    "request_headers",
    "request_body",
    "request_trailers",
    "response_headers",
    "response_body",
    "response_trailers",
    "log",
    "done",
    "tick",
    "queue_ready",
    "http_call_response",
    "grpc_receive_initial_metadata",
    "grpc_receive",
    "grpc_receive_trailing_metadata",
    "grpc_close",
    "foreign_function",
    "new_connection",
    "downstream_data",
    "upstream_data",
    "downstream_connection_close",
    "upstream_connection_close",
];

/// The `callbacks` list of `[package.metadata.proxy-wasm]` in a `Cargo.toml`, if present.
/// (A deliberately small reader: one line, `callbacks = ["a", "b"]`, in that table.)
pub fn declared_callbacks(manifest: &Path) -> Result<Option<Vec<String>>, String> {
    let text =
        fs::read_to_string(manifest).map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    let mut in_table = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == "[package.metadata.proxy-wasm]";
            continue;
        }
        let Some(list) = in_table
            .then(|| line.strip_prefix("callbacks"))
            .flatten()
            .and_then(|r| r.trim_start().strip_prefix('='))
        else {
            continue;
        };
        let inner = list
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| format!("{}: callbacks must be a one-line list", manifest.display()))?;
        let names: Vec<String> = inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for n in &names {
            if !DECLARABLE.contains(&n.as_str()) {
                return Err(format!(
                    "{}: unknown callback {n:?} in [package.metadata.proxy-wasm] callbacks (known: {})",
                    manifest.display(),
                    DECLARABLE.join(", ")
                ));
            }
        }
        return Ok(Some(names));
    }
    Ok(None)
}

fn read_leb(bytes: &[u8], at: &mut usize) -> Result<u32, String> {
    let mut result: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*at).ok_or("truncated LEB128")?;
        *at += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(result).map_err(|_| "LEB128 overflow".to_string());
        }
    }
    Err("LEB128 too long".into())
}

fn write_leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Rewrites `module` so that of the `proxy_on_*` callbacks only `keep` (plus [`ALWAYS_KEPT`])
/// stay exported. Returns the new module and the names removed.
pub fn trim_exports(module: &[u8], keep: &[String]) -> Result<(Vec<u8>, Vec<String>), String> {
    if module.get(..4) != Some(b"\0asm") || module.len() < 8 {
        return Err("not a wasm module".into());
    }
    let kept = |name: &str| {
        ALWAYS_KEPT.contains(&name)
            || !name.starts_with("proxy_on_")
            || name
                .strip_prefix("proxy_on_")
                .is_some_and(|n| keep.iter().any(|k| k == n))
    };
    let mut out = module.get(..8).unwrap_or_default().to_vec();
    let mut removed = Vec::new();
    let mut at = 8;
    while at < module.len() {
        let id = *module.get(at).ok_or("truncated section")?;
        at += 1;
        let size = read_leb(module, &mut at)? as usize;
        let body = module
            .get(at..at + size)
            .ok_or("section runs past the end")?;
        at += size;
        if id != 7 {
            out.push(id);
            write_leb(&mut out, size as u32);
            out.extend_from_slice(body);
            continue;
        }
        // Export section: vec(name: vec(u8), kind: u8, index: leb).
        let mut p = 0;
        let count = read_leb(body, &mut p)?;
        let mut entries = Vec::new();
        let mut n_kept = 0u32;
        for _ in 0..count {
            let start = p;
            let len = read_leb(body, &mut p)? as usize;
            let name = body.get(p..p + len).ok_or("truncated export name")?;
            let name = String::from_utf8_lossy(name).into_owned();
            p += len + 1; // name, kind
            read_leb(body, &mut p)?; // index
            let entry = body.get(start..p).ok_or("truncated export")?;
            if kept(&name) {
                entries.extend_from_slice(entry);
                n_kept += 1;
            } else {
                removed.push(name);
            }
        }
        let mut section = Vec::new();
        write_leb(&mut section, n_kept);
        section.extend_from_slice(&entries);
        out.push(7);
        write_leb(&mut out, section.len() as u32);
        out.extend_from_slice(&section);
    }
    Ok((out, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one function exported under three names.
    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type section: () -> ()
        m.extend_from_slice(&[3, 2, 1, 0]); // function section
        let mut exports = vec![3];
        for name in [
            "proxy_on_log",
            "proxy_on_request_headers",
            "proxy_on_delete",
        ] {
            exports.push(name.len() as u8);
            exports.extend_from_slice(name.as_bytes());
            exports.extend_from_slice(&[0, 0]);
        }
        m.push(7);
        m.push(exports.len() as u8);
        m.extend_from_slice(&exports);
        m.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // code section
        m
    }

    #[test]
    fn keeps_declared_and_core_exports() {
        let (out, removed) = trim_exports(&module(), &["request_headers".to_string()]).unwrap();
        assert_eq!(removed, vec!["proxy_on_log"]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("proxy_on_request_headers") && text.contains("proxy_on_delete"));
        assert!(!text.contains("proxy_on_log"));
        // Trimming again changes nothing.
        let (again, removed) = trim_exports(&out, &["request_headers".to_string()]).unwrap();
        assert!(removed.is_empty());
        assert_eq!(again, out);
    }

    #[test]
    fn reads_the_declaration() {
        let dir = std::env::temp_dir().join(format!("xtask-exports-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        fs::write(&manifest, "[package]\nname = \"x\"\n\n[package.metadata.proxy-wasm]\ncallbacks = [\"request_headers\", \"log\"]\n").unwrap();
        assert_eq!(
            declared_callbacks(&manifest).unwrap(),
            Some(vec!["request_headers".into(), "log".into()])
        );
        fs::write(&manifest, "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(declared_callbacks(&manifest).unwrap(), None);
        fs::write(
            &manifest,
            "[package.metadata.proxy-wasm]\ncallbacks = [\"request_header\"]\n",
        )
        .unwrap();
        assert!(declared_callbacks(&manifest).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
