//! `package`: every filter → two OCI image layouts (files on disk) under
//! `target/oci/<filter>/{compat,oci}/`, ready for `publish`.
//!
//! - **compat** (what Istio, Envoy Gateway and Higress pull; Istio's fetcher takes the last
//!   layer, requires `application/vnd.oci.image.layer.v1.tar+gzip` and reads the file named
//!   `plugin.wasm` from it): layers, in order,
//!   1. `application/vnd.module.wasm.spec.v1+json`: the hub manifest with the config schema
//!      inlined (`hub-manifest.json`),
//!   2. `application/vnd.module.wasm.doc.v1+markdown`: the filter's `README.md`,
//!   3. `application/vnd.oci.image.layer.v1.tar+gzip`: `plugin.wasm` + `runtime-config.json`;
//!
//!   manifest annotation `module.wasm.image/variant: compat` (Higress puts its spec and doc
//!   layers before the wasm layer the same way).
//! - **oci** (solo.io's WebAssembly Hub spec; Istio requires exactly two layers): config
//!   `application/vnd.module.wasm.config.v1+json` (= `runtime-config.json`), layers
//!   `runtime-config.json` (same media type) and `application/vnd.module.wasm.content.layer.v1+wasm`
//!   (the raw module). No room for extra layers.
//!
//! Reproducible: no timestamps anywhere (tar mtime 0, uid/gid 0, fixed modes, sorted
//! entries; gzip header mtime 0, fixed level), so the same `.wasm`, manifest and README give
//! the same digests. The inputs are checked first: the `.wasm` exists and exports the
//! manifest's ABI version, the manifest names the filter and carries every field.

use crate::repo_root;
use crate::wasm_build::filter_crates;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const MT_WASM_CONTENT: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const MT_SPEC: &str = "application/vnd.module.wasm.spec.v1+json";
pub const MT_DOC: &str = "application/vnd.module.wasm.doc.v1+markdown";

/// The two image variants, in the order they are built and pushed.
pub const VARIANTS: [Variant; 2] = [Variant::Compat, Variant::Oci];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Compat,
    Oci,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Compat => "compat",
            Variant::Oci => "oci",
        }
    }

    /// The tag this variant is pushed under: `TAG` for compat (what control planes pull by
    /// default), `TAG-oci` for the oci variant.
    pub fn tag(self, tag: &str) -> String {
        match self {
            Variant::Compat => tag.to_string(),
            Variant::Oci => format!("{tag}-oci"),
        }
    }
}

/// What one filter publishes, as read from its hub manifest.
#[derive(Clone, Debug)]
pub struct FilterMeta {
    /// Directory name = image name = `dist/<name>.wasm`.
    pub name: String,
    pub version: String,
    pub description: String,
    pub license: String,
    pub root_id: String,
    pub abi_version: String,
    /// The manifest's `contexts` has `http` (an HTTP filter: Istio `type: HTTP`).
    pub http: bool,
    /// The manifest's `contexts` has `network` (an L4 filter: Istio `type: NETWORK`). Both
    /// are checked against the module's exports when it is packaged.
    pub network: bool,
    /// The L4 plugin config (`network.example`, a file under `filters/<name>/examples/`):
    /// required when `network` is.
    pub network_config: Option<Value>,
    pub phase: String,
    pub priority: i64,
    pub failure_policy: String,
    /// Istio `match[].mode`: which traffic the plugin runs on (`SERVER`: inbound only).
    pub traffic_mode: String,
    /// The plugin config the Kubernetes manifests carry: `kubernetes.example` (a file under
    /// `filters/<name>/examples/`) when the manifest names one, else `example`.
    pub kubernetes_config: Value,
    /// What an operator must edit in that config before applying it (`kubernetes.note`).
    pub kubernetes_note: Option<String>,
    /// The manifest with `configSchema` replaced by the schema itself.
    pub spec_document: Value,
}

/// One packaged image.
#[derive(Clone, Debug)]
pub struct Image {
    pub variant: Variant,
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// The reference name inside the layout (`oci:<layout>:<ref_name>`).
    pub ref_name: String,
    /// `sha256:<hex>` of the image manifest (what a registry reports and Istio's `sha256`
    /// field compares, without the prefix).
    pub manifest_digest: String,
    /// Total bytes of config + layers.
    pub blob_bytes: usize,
}

/// A packaged filter.
#[derive(Clone, Debug)]
pub struct Packaged {
    pub meta: FilterMeta,
    pub wasm_sha256: String,
    pub images: Vec<Image>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn str_field<'a>(m: &'a Value, key: &str, file: &Path) -> Result<&'a str, String> {
    m.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("{}: field {key:?} missing or not a string", file.display()))
}

/// Reads `hub-manifest/<dir>/manifest.json` and its schema; checks what packaging relies on
/// (the filter's own test checks the rest against the crate).
pub fn load_meta(dir: &str) -> Result<FilterMeta, String> {
    let hub = repo_root().join("hub-manifest").join(dir);
    let file = hub.join("manifest.json");
    if !file.is_file() {
        return Err(format!(
            "filters/{dir} has no {}: every published filter needs one (copy \
             hub-manifest/template/, edit it, and run `cargo test --all-features -p <crate> --test schema`)",
            file.strip_prefix(repo_root()).unwrap_or(&file).display()
        ));
    }
    let m: Value = serde_json::from_slice(&read(&file)?)
        .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let name = str_field(&m, "name", &file)?;
    if name != dir {
        return Err(format!(
            "{}: name is {name:?}, expected {dir:?} (the filter's directory)",
            file.display()
        ));
    }
    for key in ["authors", "category"] {
        if m.get(key).is_none() {
            return Err(format!("{}: field {key:?} missing", file.display()));
        }
    }
    let contexts: Vec<&str> = m
        .get("contexts")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if contexts.is_empty() || contexts.iter().any(|c| *c != "http" && *c != "network") {
        return Err(format!(
            "{}: contexts must be a non-empty list of \"http\" / \"network\"",
            file.display()
        ));
    }
    let istio = m.get("istio").cloned().unwrap_or(Value::Null);
    let phase = istio
        .get("phase")
        .and_then(Value::as_str)
        .filter(|p| ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"].contains(p))
        .ok_or_else(|| format!("{}: istio.phase missing or invalid", file.display()))?;
    let priority = istio
        .get("priority")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("{}: istio.priority missing", file.display()))?;
    let traffic_mode = istio
        .get("mode")
        .and_then(Value::as_str)
        .filter(|p| ["SERVER", "CLIENT", "CLIENT_AND_SERVER"].contains(p))
        .ok_or_else(|| {
            format!(
                "{}: istio.mode missing or invalid (SERVER, CLIENT or CLIENT_AND_SERVER)",
                file.display()
            )
        })?;
    let failure_policy = str_field(&m, "failurePolicy", &file)?;
    if failure_policy != "FAIL_CLOSED" && failure_policy != "FAIL_OPEN" {
        return Err(format!(
            "{}: failurePolicy must be FAIL_CLOSED or FAIL_OPEN",
            file.display()
        ));
    }
    let example = m
        .get("example")
        .filter(|e| e.is_object())
        .cloned()
        .ok_or_else(|| format!("{}: example missing or not an object", file.display()))?;
    let kubernetes = m.get("kubernetes");
    let kubernetes_config = match kubernetes.and_then(|k| k.get("example")) {
        None => example,
        Some(rel) => example_file(dir, rel, "kubernetes.example", &file)?,
    };
    let network = contexts.contains(&"network");
    let network_config = match m.get("network").and_then(|n| n.get("example")) {
        None if network => {
            return Err(format!(
                "{}: contexts has \"network\": name the L4 config in network.example \
                 (a file under examples/)",
                file.display()
            ))
        }
        None => None,
        Some(_) if !network => {
            return Err(format!(
                "{}: network.example is set but contexts has no \"network\"",
                file.display()
            ))
        }
        Some(rel) => Some(example_file(dir, rel, "network.example", &file)?),
    };
    let kubernetes_note = kubernetes
        .and_then(|k| k.get("note"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let schema_file = hub.join(str_field(&m, "configSchema", &file)?);
    let schema: Value = serde_json::from_slice(&read(&schema_file)?)
        .map_err(|e| format!("{}: not JSON: {e}", schema_file.display()))?;
    let mut spec_document = m.clone();
    if let Some(obj) = spec_document.as_object_mut() {
        obj.insert("configSchema".into(), schema);
    }
    Ok(FilterMeta {
        name: name.to_string(),
        version: str_field(&m, "version", &file)?.to_string(),
        description: str_field(&m, "description", &file)?.to_string(),
        license: str_field(&m, "license", &file)?.to_string(),
        root_id: str_field(&m, "rootId", &file)?.to_string(),
        abi_version: str_field(&m, "abiVersion", &file)?.to_string(),
        http: contexts.contains(&"http"),
        network,
        network_config,
        phase: phase.to_string(),
        priority,
        failure_policy: failure_policy.to_string(),
        traffic_mode: traffic_mode.to_string(),
        kubernetes_config,
        kubernetes_note,
        spec_document,
    })
}

/// A JSON file named by the manifest field `what` (`examples/<file>` of `filters/<dir>/`).
fn example_file(dir: &str, rel: &Value, what: &str, manifest: &Path) -> Result<Value, String> {
    let rel = rel
        .as_str()
        .filter(|r| r.starts_with("examples/") && !r.contains(".."))
        .ok_or_else(|| {
            format!(
                "{}: {what} must name a file under examples/",
                manifest.display()
            )
        })?;
    let path = repo_root().join("filters").join(dir).join(rel);
    serde_json::from_slice(&read(&path)?).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// The export names of a wasm module (its export section, id 7).
pub fn wasm_exports(wasm: &[u8]) -> Result<Vec<String>, String> {
    fn leb(b: &[u8], i: &mut usize) -> Result<usize, String> {
        let (mut v, mut shift) = (0usize, 0u32);
        loop {
            let x = *b.get(*i).ok_or("truncated")?;
            *i += 1;
            if shift > 28 {
                return Err("LEB128 too long".into());
            }
            v |= usize::from(x & 0x7f) << shift;
            shift += 7;
            if x < 0x80 {
                return Ok(v);
            }
        }
    }
    if wasm.get(..4) != Some(b"\0asm".as_slice()) || wasm.len() < 8 {
        return Err("not a wasm module".into());
    }
    let mut i = 8;
    let mut names = Vec::new();
    while i < wasm.len() {
        let id = wasm.get(i).copied().ok_or("truncated")?;
        i += 1;
        let size = leb(wasm, &mut i)?;
        let end = i
            .checked_add(size)
            .filter(|e| *e <= wasm.len())
            .ok_or("truncated section")?;
        if id == 7 {
            let mut j = i;
            for _ in 0..leb(wasm, &mut j)? {
                let len = leb(wasm, &mut j)?;
                let name = wasm.get(j..j + len).ok_or("truncated export name")?;
                names.push(String::from_utf8_lossy(name).into_owned());
                j += len + 1; // the name, then the kind
                leb(wasm, &mut j)?; // the index
            }
        }
        i = end;
    }
    Ok(names)
}

/// The phases that make a module an HTTP filter / an L4 filter.
const HTTP_PHASES: [&str; 6] = [
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
];
const NETWORK_PHASES: [&str; 5] = [
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
];

/// Checks the module: wasm, it exports `proxy_abi_version_<abi with _>`, and the contexts its
/// phases serve (an HTTP phase: `http`; an L4 phase: `network`; sdk-ext exports exactly the
/// phases a filter implements) are the manifest's `contexts`, so the generated manifests
/// (one Istio `WasmPlugin` per context) follow the build.
fn check_wasm(wasm: &[u8], meta: &FilterMeta, path: &Path) -> Result<(), String> {
    let exports = wasm_exports(wasm).map_err(|e| format!("{}: {e}", path.display()))?;
    let export = format!("proxy_abi_version_{}", meta.abi_version.replace('.', "_"));
    if !exports.contains(&export) {
        return Err(format!(
            "{} does not export {export} (manifest abiVersion {})",
            path.display(),
            meta.abi_version
        ));
    }
    let serves = |phases: &[&str]| exports.iter().find(|e| phases.contains(&e.as_str()));
    for (context, declared, phase) in [
        ("http", meta.http, serves(&HTTP_PHASES)),
        ("network", meta.network, serves(&NETWORK_PHASES)),
    ] {
        match (declared, phase) {
            (true, None) => {
                return Err(format!(
                    "hub-manifest/{}/manifest.json: contexts has {context:?} but {} exports no \
                     {context} phase",
                    meta.name,
                    path.display()
                ))
            }
            (false, Some(p)) => {
                return Err(format!(
                    "hub-manifest/{}/manifest.json: contexts lacks {context:?} but {} exports {p}",
                    meta.name,
                    path.display()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `runtime-config.json` of the WebAssembly Hub spec.
fn runtime_config(meta: &FilterMeta) -> Vec<u8> {
    let v = json!({
        "type": "envoy_proxy",
        "abiVersions": [format!("v{}", meta.abi_version)],
        "config": { "rootIds": [meta.root_id] },
    });
    let mut out = serde_json::to_vec_pretty(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A tar of `(name, bytes)` entries: sorted, mtime 0, uid/gid 0, mode 0644, no user names.
pub fn deterministic_tar(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<&(&str, &[u8])> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in sorted {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| format!("tar path {name}: {e}"))?;
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        builder
            .append(&h, *data)
            .map_err(|e| format!("tar {name}: {e}"))?;
    }
    builder.into_inner().map_err(|e| format!("tar: {e}"))
}

/// gzip with no name and mtime 0 in the header, level 9.
pub fn deterministic_gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data).map_err(|e| format!("gzip: {e}"))?;
    enc.finish().map_err(|e| format!("gzip: {e}"))
}

/// Writes blobs, manifest, `index.json` and `oci-layout` of one image layout.
struct LayoutWriter {
    dir: PathBuf,
    blob_bytes: usize,
}

impl LayoutWriter {
    fn new(dir: &Path) -> Result<Self, String> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("clearing {}: {e}", dir.display()))?;
        }
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| format!("creating {}: {e}", blobs.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            blob_bytes: 0,
        })
    }

    /// Stores a blob; returns its descriptor.
    fn blob(
        &mut self,
        media_type: &str,
        bytes: &[u8],
        title: Option<&str>,
    ) -> Result<Value, String> {
        let hex = sha256_hex(bytes);
        let path = self.dir.join("blobs/sha256").join(&hex);
        fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
        self.blob_bytes += bytes.len();
        let mut d = json!({
            "mediaType": media_type,
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
        });
        if let (Some(t), Some(obj)) = (title, d.as_object_mut()) {
            obj.insert(
                "annotations".into(),
                json!({ "org.opencontainers.image.title": t }),
            );
        }
        Ok(d)
    }

    /// Stores the manifest and points `index.json` at it under `ref_name`.
    fn finish(
        mut self,
        variant: Variant,
        manifest: &Value,
        ref_name: &str,
    ) -> Result<Image, String> {
        let bytes = serde_json::to_vec(manifest).map_err(|e| format!("manifest: {e}"))?;
        let desc = self.blob(MT_OCI_MANIFEST, &bytes, None)?;
        self.blob_bytes -= bytes.len();
        let digest = desc["digest"].as_str().unwrap_or_default().to_string();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MT_OCI_MANIFEST,
                "digest": digest,
                "size": bytes.len(),
                "annotations": { "org.opencontainers.image.ref.name": ref_name },
            }],
        });
        let write = |name: &str, v: &Value| {
            let p = self.dir.join(name);
            fs::write(&p, serde_json::to_vec(v).unwrap_or_default())
                .map_err(|e| format!("writing {}: {e}", p.display()))
        };
        write("index.json", &index)?;
        write("oci-layout", &json!({ "imageLayoutVersion": "1.0.0" }))?;
        Ok(Image {
            variant,
            layout: self.dir.clone(),
            ref_name: ref_name.to_string(),
            manifest_digest: digest,
            blob_bytes: self.blob_bytes,
        })
    }
}

fn image_annotations(meta: &FilterMeta) -> serde_json::Map<String, Value> {
    let mut a = serde_json::Map::new();
    a.insert("org.opencontainers.image.title".into(), json!(meta.name));
    a.insert(
        "org.opencontainers.image.version".into(),
        json!(meta.version),
    );
    a.insert(
        "org.opencontainers.image.description".into(),
        json!(meta.description),
    );
    a.insert(
        "org.opencontainers.image.licenses".into(),
        json!(meta.license),
    );
    a
}

/// The compat image: spec layer, doc layer, then the tar+gzip with `plugin.wasm`.
fn write_compat(
    dir: &Path,
    meta: &FilterMeta,
    wasm: &[u8],
    readme: &[u8],
) -> Result<Image, String> {
    let mut w = LayoutWriter::new(dir)?;
    let mut spec = serde_json::to_vec_pretty(&meta.spec_document).map_err(|e| e.to_string())?;
    spec.push(b'\n');
    let rc = runtime_config(meta);
    let tar = deterministic_tar(&[("plugin.wasm", wasm), ("runtime-config.json", &rc)])?;
    let tgz = deterministic_gzip(&tar)?;
    let layers = vec![
        w.blob(MT_SPEC, &spec, Some("hub-manifest.json"))?,
        w.blob(MT_DOC, readme, Some("README.md"))?,
        w.blob(MT_TAR_GZIP, &tgz, Some("plugin.tar.gz"))?,
    ];
    // diff_ids: the uncompressed digests (the raw spec/doc blobs are their own).
    let diff_ids = vec![
        layers[0]["digest"].clone(),
        layers[1]["digest"].clone(),
        json!(format!("sha256:{}", sha256_hex(&tar))),
    ];
    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_desc = w.blob(MT_OCI_CONFIG, &config_bytes, None)?;
    let mut annotations = image_annotations(meta);
    annotations.insert("module.wasm.image/variant".into(), json!("compat"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
        "annotations": annotations,
    });
    w.finish(Variant::Compat, &manifest, &meta.version)
}

/// The oci (WebAssembly Hub) image: runtime config as config and first layer, raw wasm.
fn write_oci(dir: &Path, meta: &FilterMeta, wasm: &[u8]) -> Result<Image, String> {
    let mut w = LayoutWriter::new(dir)?;
    let rc = runtime_config(meta);
    let config_desc = w.blob(MT_WASM_CONFIG, &rc, None)?;
    let layers = vec![
        w.blob(MT_WASM_CONFIG, &rc, Some("runtime-config.json"))?,
        w.blob(MT_WASM_CONTENT, wasm, Some("plugin.wasm"))?,
    ];
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
        "annotations": image_annotations(meta),
    });
    w.finish(Variant::Oci, &manifest, &meta.version)
}

/// Where a filter's layouts go.
pub fn layout_root() -> PathBuf {
    repo_root().join("target/oci")
}

/// Packages one filter from its inputs into `out/<name>/{compat,oci}`.
pub fn package_filter(
    meta: FilterMeta,
    wasm_path: &Path,
    readme_path: &Path,
    out: &Path,
) -> Result<Packaged, String> {
    let wasm = read(wasm_path)?;
    check_wasm(&wasm, &meta, wasm_path)?;
    let readme = read(readme_path)?;
    let base = out.join(&meta.name);
    let compat = write_compat(&base.join("compat"), &meta, &wasm, &readme)?;
    let oci = write_oci(&base.join("oci"), &meta, &wasm)?;
    Ok(Packaged {
        wasm_sha256: sha256_hex(&wasm),
        meta,
        images: vec![compat, oci],
    })
}

/// Every filter's inputs, checked before anything is written: a missing `.wasm` or manifest
/// is an error naming all of them.
pub fn inputs() -> Result<Vec<(FilterMeta, PathBuf, PathBuf)>, String> {
    inputs_from(None)
}

/// [`inputs`] with the `.wasm` files taken from `dist` instead of `<repo>/dist`.
pub fn inputs_from(dist: Option<&Path>) -> Result<Vec<(FilterMeta, PathBuf, PathBuf)>, String> {
    let root = repo_root();
    let dist = dist
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("dist"));
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for c in filter_crates()? {
        let wasm = dist.join(format!("{}.wasm", c.dir));
        let readme = root.join("filters").join(&c.dir).join("README.md");
        if !wasm.is_file() {
            problems.push(format!(
                "{} is missing: run `make build` first",
                wasm.strip_prefix(&root).unwrap_or(&wasm).display()
            ));
        }
        if !readme.is_file() {
            problems.push(format!("filters/{}/README.md is missing", c.dir));
        }
        match load_meta(&c.dir) {
            Ok(meta) => out.push((meta, wasm, readme)),
            Err(e) => problems.push(e),
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("no filters under filters/".into());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("\n  "))
    }
}

/// Packages every filter into `target/oci/`.
pub fn package_all() -> Result<Vec<Packaged>, String> {
    let inputs = inputs()?;
    let out = layout_root();
    inputs
        .into_iter()
        .map(|(meta, wasm, readme)| package_filter(meta, &wasm, &readme, &out))
        .collect()
}

/// `xtask package`.
pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: package (packages every filter; run `make build` first)".into());
    }
    let packaged = package_all()?;
    let root = repo_root();
    for p in &packaged {
        println!(
            "package: {:<14} module sha256:{}",
            p.meta.name, p.wasm_sha256
        );
        for img in &p.images {
            println!(
                "package: {:<14} {:<6} {}  {:>7.1} KB  {}",
                p.meta.name,
                img.variant.name(),
                img.manifest_digest,
                img.blob_bytes as f64 / 1024.0,
                img.layout
                    .strip_prefix(&root)
                    .unwrap_or(&img.layout)
                    .display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FilterMeta {
        FilterMeta {
            name: "demo".into(),
            version: "1.2.3".into(),
            description: "d".into(),
            license: "Apache-2.0".into(),
            root_id: "demo-root".into(),
            abi_version: "0.2.1".into(),
            http: true,
            network: false,
            network_config: None,
            phase: "AUTHZ".into(),
            priority: 5,
            failure_policy: "FAIL_CLOSED".into(),
            traffic_mode: "SERVER".into(),
            kubernetes_config: json!({"a": 1}),
            kubernetes_note: None,
            spec_document: json!({"name": "demo"}),
        }
    }

    /// A module with an export section naming `exports` (function 0 each).
    fn module(exports: &[&str]) -> Vec<u8> {
        let mut section = vec![u8::try_from(exports.len()).unwrap()];
        for e in exports {
            section.push(u8::try_from(e.len()).unwrap());
            section.extend_from_slice(e.as_bytes());
            section.extend_from_slice(&[0, 0]);
        }
        let mut w = b"\0asm\x01\0\0\0".to_vec();
        w.push(7);
        w.push(u8::try_from(section.len()).unwrap());
        w.extend_from_slice(&section);
        w
    }

    fn fake_wasm() -> Vec<u8> {
        module(&["proxy_abi_version_0_2_1", "proxy_on_request_headers"])
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-pkg-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn blob(layout: &Path, digest: &str) -> Vec<u8> {
        fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    }

    #[test]
    fn same_inputs_same_digests_and_the_layouts_hold_the_module() {
        let dir = tmp("repro");
        fs::write(dir.join("m.wasm"), fake_wasm()).unwrap();
        fs::write(dir.join("README.md"), "# demo\n").unwrap();
        let a = package_filter(
            meta(),
            &dir.join("m.wasm"),
            &dir.join("README.md"),
            &dir.join("a"),
        )
        .unwrap();
        let b = package_filter(
            meta(),
            &dir.join("m.wasm"),
            &dir.join("README.md"),
            &dir.join("b"),
        )
        .unwrap();
        for (x, y) in a.images.iter().zip(&b.images) {
            assert_eq!(x.manifest_digest, y.manifest_digest);
        }
        // A different module gives a different image.
        let mut other = fake_wasm();
        other.extend_from_slice(&[0, 1, 0]); // an empty custom section
        fs::write(dir.join("m.wasm"), other).unwrap();
        let c = package_filter(
            meta(),
            &dir.join("m.wasm"),
            &dir.join("README.md"),
            &dir.join("c"),
        )
        .unwrap();
        assert_ne!(a.images[0].manifest_digest, c.images[0].manifest_digest);

        // compat: three layers, tar+gzip last, holding plugin.wasm first.
        let compat = &a.images[0].layout;
        let index: Value =
            serde_json::from_slice(&fs::read(compat.join("index.json")).unwrap()).unwrap();
        let md = index["manifests"][0]["digest"].as_str().unwrap();
        let m: Value = serde_json::from_slice(&blob(compat, md)).unwrap();
        assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
        let types: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(types, [MT_SPEC, MT_DOC, MT_TAR_GZIP]);
        let tgz = blob(compat, m["layers"][2]["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()));
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if name == "plugin.wasm" {
                assert_eq!(data, fake_wasm());
            }
            names.push(name);
        }
        assert_eq!(names, ["plugin.wasm", "runtime-config.json"]);

        // oci: wasm config + exactly two layers, raw wasm second.
        let oci = &a.images[1].layout;
        let index: Value =
            serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
        let m: Value = serde_json::from_slice(&blob(
            oci,
            index["manifests"][0]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(m["config"]["mediaType"], MT_WASM_CONFIG);
        let rc: Value =
            serde_json::from_slice(&blob(oci, m["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(rc["type"], "envoy_proxy");
        assert_eq!(rc["abiVersions"][0], "v0.2.1");
        assert_eq!(rc["config"]["rootIds"][0], "demo-root");
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        assert_eq!(m["layers"][1]["mediaType"], MT_WASM_CONTENT);
        assert_eq!(
            blob(oci, m["layers"][1]["digest"].as_str().unwrap()),
            fake_wasm()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_module_without_the_abi_export_is_refused() {
        let dir = tmp("abi");
        fs::write(dir.join("m.wasm"), module(&["proxy_on_request_headers"])).unwrap();
        fs::write(dir.join("README.md"), "x").unwrap();
        let err =
            package_filter(meta(), &dir.join("m.wasm"), &dir.join("README.md"), &dir).unwrap_err();
        assert!(err.contains("proxy_abi_version_0_2_1"), "{err}");
        fs::write(dir.join("m.wasm"), b"not wasm").unwrap();
        let err =
            package_filter(meta(), &dir.join("m.wasm"), &dir.join("README.md"), &dir).unwrap_err();
        assert!(err.contains("not a wasm module"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_manifest_contexts_must_be_what_the_module_serves() {
        let dir = tmp("contexts");
        fs::write(dir.join("README.md"), "x").unwrap();
        let pkg = |wasm: Vec<u8>, m: FilterMeta| {
            fs::write(dir.join("m.wasm"), wasm).unwrap();
            package_filter(
                m,
                &dir.join("m.wasm"),
                &dir.join("README.md"),
                &dir.join("o"),
            )
        };
        let abi = "proxy_abi_version_0_2_1";
        // An L4 phase the manifest does not declare.
        let err = pkg(
            module(&[abi, "proxy_on_request_headers", "proxy_on_new_connection"]),
            meta(),
        )
        .unwrap_err();
        assert!(
            err.contains("contexts lacks \"network\"") && err.contains("proxy_on_new_connection"),
            "{err}"
        );
        // A declared context the module does not serve.
        let mut both = meta();
        both.network = true;
        both.network_config = Some(json!({}));
        let err = pkg(module(&[abi, "proxy_on_request_headers"]), both.clone()).unwrap_err();
        assert!(err.contains("contexts has \"network\""), "{err}");
        // Both served, both declared.
        assert!(pkg(
            module(&[abi, "proxy_on_request_headers", "proxy_on_new_connection"]),
            both
        )
        .is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tar_is_sorted_and_stable() {
        let a = deterministic_tar(&[("b", b"2"), ("a", b"1")]).unwrap();
        let b = deterministic_tar(&[("a", b"1"), ("b", b"2")]).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            deterministic_gzip(&a).unwrap(),
            deterministic_gzip(&b).unwrap()
        );
    }
}
