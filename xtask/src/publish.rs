//! `publish REGISTRY [TAG]`: packages every filter (see `package.rs`) and pushes both image
//! variants to an OCI registry with skopeo, then writes Istio `WasmPlugin` manifests.
//!
//! - `REGISTRY` is `host[:port][/prefix]`; images go to `REGISTRY/<filter>:<TAG>` (compat,
//!   what Istio / Envoy Gateway / Higress pull) and `REGISTRY/<filter>:<TAG>-oci` (the
//!   WebAssembly Hub variant). `TAG` defaults to each filter's version.
//! - Everything is checked before anything is pushed: every `dist/<filter>.wasm` exists,
//!   every manifest is complete, skopeo is installed, the registry answers. Within one
//!   image, skopeo uploads the blobs first and the manifest last, so a failure leaves no tag
//!   pointing at a partial image. `--preserve-digests` makes skopeo refuse to alter the
//!   image, and the digest the registry reports is compared with the local one.
//! - Plain HTTP and unverified TLS are used only for loopback registries (or with
//!   `--insecure`); credentials come from `skopeo login` / `~/.docker/config.json`.
//! - `envoy-configs/istio/<filter>.yaml` (or `--istio-dir DIR`): `url: oci://…:<TAG>`,
//!   `sha256:` the compat image's manifest digest, which is what Istio compares for an OCI
//!   URL (its image fetcher's manifest digest, hex without `sha256:`).
//!
//! `wasmplugins REGISTRY [TAG]` writes the same manifests without pushing (images are
//! reproducible, so the digests are the ones `publish` would push).

use crate::package::{self, Packaged, Variant, VARIANTS};
use crate::repo_root;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Debug)]
struct Opts {
    registry: Registry,
    tag: Option<String>,
    istio_dir: PathBuf,
    dist: Option<PathBuf>,
    insecure: bool,
}

/// `host[:port][/prefix]`.
#[derive(Debug, Clone)]
struct Registry {
    host: String,
    port: Option<u16>,
    prefix: String,
}

impl Registry {
    fn parse(s: &str) -> Result<Registry, String> {
        let s = s.trim().trim_end_matches('/');
        if s.is_empty() || s.contains("://") {
            return Err(format!(
                "registry {s:?}: expected host[:port][/prefix], without a scheme"
            ));
        }
        let (hostport, prefix) = s.split_once('/').unwrap_or((s, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("registry {s:?}: bad port {p:?}"))?,
                ),
            ),
            None => (hostport, None),
        };
        let ok_host = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let ok_prefix = prefix.split('/').all(|seg| {
            prefix.is_empty()
                || (!seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    }))
        });
        if !ok_host || !ok_prefix {
            return Err(format!(
                "registry {s:?}: expected host[:port][/prefix] (lowercase path)"
            ));
        }
        Ok(Registry {
            host: host.to_string(),
            port,
            prefix: prefix.to_string(),
        })
    }

    fn hostport(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            format!("{}/{name}", self.hostport())
        } else {
            format!("{}/{}/{name}", self.hostport(), self.prefix)
        }
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host == "::1" || self.host.starts_with("127.")
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 124 // room for "-oci"
        && b.first().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

fn parse_args(args: &[String], usage: &str) -> Result<Opts, String> {
    let mut positional = Vec::new();
    let mut istio_dir = repo_root().join("envoy-configs/istio");
    let mut dist = None;
    let mut insecure = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--istio-dir" => {
                istio_dir = PathBuf::from(it.next().ok_or("--istio-dir needs a directory")?)
            }
            "--dist" => dist = Some(PathBuf::from(it.next().ok_or("--dist needs a directory")?)),
            "--insecure" => insecure = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{usage}")),
            s => positional.push(s.to_string()),
        }
    }
    let (registry, tag) = match positional.as_slice() {
        [r] => (r, None),
        [r, t] if t.is_empty() => (r, None),
        [r, t] => (r, Some(t.clone())),
        _ => return Err(usage.to_string()),
    };
    if let Some(t) = &tag {
        if !valid_tag(t) {
            return Err(format!(
                "tag {t:?}: letters, digits, '.', '_', '-' (at most 124), not starting with '.' or '-'"
            ));
        }
    }
    let registry = Registry::parse(registry)?;
    let insecure = insecure || registry.is_loopback();
    Ok(Opts {
        registry,
        tag,
        istio_dir,
        dist,
        insecure,
    })
}

/// `GET /v2/` must answer (200, or 401 when credentials are needed). Plain HTTP for
/// insecure registries; a TCP connect for TLS ones (skopeo does the TLS handshake).
fn check_reachable(reg: &Registry, insecure: bool) -> Result<(), String> {
    let port = reg.port.unwrap_or(if insecure { 80 } else { 443 });
    let target = format!("{}:{port}", reg.host);
    let unreachable = |why: String| format!("registry {} is not reachable: {why}", reg.hostport());
    let addr = target
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("resolving {target}: {e}")))?
        .next()
        .ok_or_else(|| unreachable(format!("{target} resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| unreachable(format!("connecting to {addr}: {e}")))?;
    if !insecure {
        return Ok(());
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        reg.hostport()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| unreachable(format!("GET http://{target}/v2/: {e}")))?;
    let mut head = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut head);
    let head = String::from_utf8_lossy(&head);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    match status {
        "200" | "401" => Ok(()),
        "" => Err(unreachable(format!(
            "GET http://{target}/v2/ got no HTTP answer"
        ))),
        s => Err(unreachable(format!(
            "GET http://{target}/v2/ answered {s}, not an OCI registry (expected 200 or 401)"
        ))),
    }
}

fn skopeo_version() -> Result<String, String> {
    let out = Command::new("skopeo")
        .arg("--version")
        .output()
        .map_err(|e| format!("skopeo not found ({e}): run `make setup` (installs it)"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Pushes one layout; returns the digest the registry now has under the tag.
fn push(img: &package::Image, dest: &str, insecure: bool) -> Result<String, String> {
    let digest_file = img.layout.with_extension("pushed-digest");
    let _ = fs::remove_file(&digest_file);
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--quiet",
        "--preserve-digests",
        "--retry-times",
        "2",
    ])
    .arg("--digestfile")
    .arg(&digest_file);
    if insecure {
        cmd.arg("--dest-tls-verify=false");
    }
    cmd.arg(format!("oci:{}:{}", img.layout.display(), img.ref_name))
        .arg(format!("docker://{dest}"));
    let out = cmd.output().map_err(|e| format!("running skopeo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pushing {dest} failed (skopeo {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let pushed = fs::read_to_string(&digest_file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("skopeo wrote no digest file: {e}"))?;
    let _ = fs::remove_file(&digest_file);
    if pushed != img.manifest_digest {
        return Err(format!(
            "{dest}: the registry has {pushed}, but the local image is {}",
            img.manifest_digest
        ));
    }
    Ok(pushed)
}

/// A JSON value as block YAML at `indent` (strings are JSON-quoted, which YAML reads as-is).
fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let key = |k: &str| {
        if !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        {
            k.to_string()
        } else {
            Value::from(k).to_string()
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                match val {
                    Value::Object(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        yaml_value(val, indent + 2, out);
                    }
                    Value::Array(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        yaml_value(val, indent, out);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{}: {}", key(k), scalar(val));
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match item {
                    Value::Object(x) if !x.is_empty() => {
                        let mut inner = String::new();
                        yaml_value(item, indent + 2, &mut inner);
                        // "- " replaces the first line's indentation.
                        let first = inner.get(indent + 2..).unwrap_or("");
                        let _ = write!(out, "{pad}- {first}");
                    }
                    Value::Array(x) if !x.is_empty() => {
                        let _ = writeln!(out, "{pad}- {}", item);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}- {}", scalar(item));
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}{}", scalar(v));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

/// The `WasmPlugin` for one filter.
pub fn wasmplugin_yaml(
    meta: &package::FilterMeta,
    url: &str,
    manifest_digest: &str,
    generated_by: &str,
) -> String {
    let sha = manifest_digest.trim_start_matches("sha256:");
    let fail = if meta.failure_policy == "FAIL_OPEN" {
        "FAIL_OPEN"
    } else {
        "FAIL_CLOSE"
    };
    let kind = if meta.network { "NETWORK" } else { "HTTP" };
    let mut y = format!(
        "# {name} {version} from the hub. Generated by `{generated_by}` from
# hub-manifest/{name}/manifest.json; sha256 is the image manifest digest (Istio compares it
# with the pulled image's). Applies to every workload in the namespace it is applied to:
# add spec.selector.matchLabels (or spec.targetRefs) to narrow it.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: {name}
spec:
  url: oci://{url}
  sha256: {sha}
  imagePullPolicy: IfNotPresent
  pluginName: {root_id}
  type: {kind}
  phase: {phase}
  priority: {priority}
  failStrategy: {fail}
  pluginConfig:
",
        name = meta.name,
        version = meta.version,
        root_id = Value::from(meta.root_id.as_str()),
        phase = meta.phase,
        priority = meta.priority,
    );
    yaml_value(&meta.example, 4, &mut y);
    y
}

fn write_wasmplugins(
    packaged: &[Packaged],
    opts: &Opts,
    tags: &[String],
    generated_by: &str,
) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(&opts.istio_dir)
        .map_err(|e| format!("creating {}: {e}", opts.istio_dir.display()))?;
    let mut written = Vec::new();
    for (p, tag) in packaged.iter().zip(tags) {
        let compat = p
            .images
            .iter()
            .find(|i| i.variant == Variant::Compat)
            .ok_or("no compat image")?;
        let url = format!("{}:{tag}", opts.registry.repository(&p.meta.name));
        let path = opts.istio_dir.join(format!("{}.yaml", p.meta.name));
        fs::write(
            &path,
            wasmplugin_yaml(&p.meta, &url, &compat.manifest_digest, generated_by),
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn show(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn package_checked(opts: &Opts) -> Result<(Vec<Packaged>, Vec<String>), String> {
    let inputs = package::inputs_from(opts.dist.as_deref())?;
    let tags: Vec<String> = inputs
        .iter()
        .map(|(m, _, _)| opts.tag.clone().unwrap_or_else(|| m.version.clone()))
        .collect();
    for t in &tags {
        if !valid_tag(t) {
            return Err(format!("tag {t:?} (a filter version) is not a valid tag"));
        }
    }
    let out = package::layout_root();
    let packaged = inputs
        .into_iter()
        .map(|(meta, wasm, readme)| package::package_filter(meta, &wasm, &readme, &out))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((packaged, tags))
}

const PUBLISH_USAGE: &str =
    "usage: publish REGISTRY [TAG] [--istio-dir DIR] [--dist DIR] [--insecure]
  REGISTRY  host[:port][/prefix], e.g. registry.example.com/filters or 127.0.0.1:5000
  TAG       default: each filter's version";

/// `xtask publish`.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args, PUBLISH_USAGE)?;
    // Everything that can be checked is checked before the first push.
    let (packaged, tags) = package_checked(&opts)?;
    let skopeo = skopeo_version()?;
    check_reachable(&opts.registry, opts.insecure)?;
    println!(
        "publish: {} filter(s) to {} with {skopeo}{}",
        packaged.len(),
        opts.registry.repository("").trim_end_matches('/'),
        if opts.insecure {
            " (plain HTTP / no TLS verification)"
        } else {
            ""
        }
    );
    for (p, tag) in packaged.iter().zip(&tags) {
        for variant in VARIANTS {
            let img = p
                .images
                .iter()
                .find(|i| i.variant == variant)
                .ok_or("missing image variant")?;
            let dest = format!(
                "{}:{}",
                opts.registry.repository(&p.meta.name),
                variant.tag(tag)
            );
            let digest = push(img, &dest, opts.insecure)?;
            println!("publish: {dest:<50} {:<6} {digest}", variant.name());
        }
    }
    for path in write_wasmplugins(&packaged, &opts, &tags, "make publish")? {
        println!("publish: wrote {}", show(&path));
    }
    Ok(())
}

/// `xtask wasmplugins REGISTRY [TAG]`: the Istio manifests only, no push.
pub fn run_wasmplugins(args: &[String]) -> Result<(), String> {
    let opts = parse_args(
        args,
        "usage: wasmplugins REGISTRY [TAG] [--istio-dir DIR] [--dist DIR]",
    )?;
    let (packaged, tags) = package_checked(&opts)?;
    for path in write_wasmplugins(&packaged, &opts, &tags, "make wasmplugins")? {
        println!("wasmplugins: wrote {}", show(&path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_forms() {
        let r = Registry::parse("127.0.0.1:5000/team/filters").unwrap();
        assert_eq!(r.repository("x"), "127.0.0.1:5000/team/filters/x");
        assert!(r.is_loopback());
        let r = Registry::parse("registry.example.com").unwrap();
        assert_eq!(r.repository("x"), "registry.example.com/x");
        assert!(!r.is_loopback());
        for bad in ["", "http://a", "a:b", "a/B", "a//b", "a b"] {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
        assert!(valid_tag("0.1.0") && valid_tag("v1_rc-2"));
        assert!(!valid_tag("-x") && !valid_tag("a/b") && !valid_tag(""));
    }

    #[test]
    fn yaml_of_a_config() {
        let mut y = String::new();
        yaml_value(
            &json!({"rules": [{"name": "a", "match": {"prefix": "/x"}, "request": {"remove": ["x-a", "x-b"], "set": []}}], "n": 3, "odd key": true}),
            2,
            &mut y,
        );
        assert_eq!(
            y,
            "  n: 3\n  \"odd key\": true\n  rules:\n  - match:\n      prefix: \"/x\"\n    name: \"a\"\n    request:\n      remove:\n      - \"x-a\"\n      - \"x-b\"\n      set: []\n"
        );
    }
}
