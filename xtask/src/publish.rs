//! `publish REGISTRY [TAG]`: packages every filter (see `package.rs`) and pushes both image
//! variants to an OCI registry with skopeo, then writes the Kubernetes manifests that load
//! them (Istio, Envoy Gateway, Higress; see `manifests.rs`).
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
//! - The manifests go to `target/manifests/{istio,envoy-gateway,higress}/` (or `--out-dir DIR`):
//!   `url: oci://…:<TAG>`, `sha256:` the compat image's manifest digest, which is what Istio
//!   compares for an OCI URL (its image fetcher's manifest digest, hex without `sha256:`).
//!
//! `wasmplugins REGISTRY [TAG]` writes the same manifests without pushing (images are
//! reproducible, so the digests are the ones `publish` would push), by default to
//! `envoy-configs/`: the checked-in copies, for the placeholder registry the Makefile passes,
//! which `integration/tests/hub.rs` regenerates and compares byte for byte.

use crate::manifests;
use crate::package::{self, Packaged, VARIANTS};
use crate::repo_root;
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
    out_dir: PathBuf,
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

/// `default_out`: where the manifests go without `--out-dir` (relative to the repo root).
fn parse_args(args: &[String], usage: &str, default_out: &str) -> Result<Opts, String> {
    let mut positional = Vec::new();
    let mut out_dir = repo_root().join(default_out);
    let mut dist = None;
    let mut insecure = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out-dir" => out_dir = PathBuf::from(it.next().ok_or("--out-dir needs a directory")?),
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
        out_dir,
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

fn write_manifests(
    packaged: &[Packaged],
    opts: &Opts,
    tags: &[String],
) -> Result<Vec<PathBuf>, String> {
    let registry = opts.registry.clone();
    manifests::write_all(
        packaged,
        tags,
        &|name, tag| format!("{}:{tag}", registry.repository(name)),
        &opts.out_dir,
    )
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
    "usage: publish REGISTRY [TAG] [--out-dir DIR] [--dist DIR] [--insecure]
  REGISTRY  host[:port][/prefix], e.g. registry.example.com/filters or 127.0.0.1:5000
  TAG       default: each filter's version";

/// `xtask publish`.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args, PUBLISH_USAGE, "target/manifests")?;
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
    for path in write_manifests(&packaged, &opts, &tags)? {
        println!("publish: wrote {}", show(&path));
    }
    Ok(())
}

/// `xtask wasmplugins REGISTRY [TAG]`: the Kubernetes manifests only, no push.
pub fn run_wasmplugins(args: &[String]) -> Result<(), String> {
    let opts = parse_args(
        args,
        "usage: wasmplugins REGISTRY [TAG] [--out-dir DIR] [--dist DIR]",
        "envoy-configs",
    )?;
    let (packaged, tags) = package_checked(&opts)?;
    for path in write_manifests(&packaged, &opts, &tags)? {
        println!("wasmplugins: wrote {}", show(&path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
