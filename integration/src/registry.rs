//! A real OCI registry (the CNCF distribution server, Debian's `docker-registry`) owned by
//! the test: loopback only, a port of its own, filesystem storage in a scratch dir that is
//! removed with it. The package's own service (`:5000`) is never used.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{http_request, try_send_raw, Response};
use crate::locations::free_port;
use crate::process::OwnedChild;

/// The registry binary: `$REGISTRY_BIN`, else `docker-registry` on PATH (`make setup`
/// installs it).
pub fn registry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("docker-registry"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("docker-registry not found on PATH: run `make setup` (apt package docker-registry)")
    })
}

/// A running registry on 127.0.0.1:<port>; stopped and its storage removed when dropped.
pub struct Registry {
    child: OwnedChild,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers 200 (panics after 30 s, with
    /// its log).
    pub fn start() -> Registry {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "integration-registry-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data")).expect("create registry scratch dir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            data = dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("create registry log");
        let mut cmd = Command::new(registry_bin());
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log));
        let mut child = OwnedChild::spawn(cmd).expect("spawn docker-registry");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_status() {
                panic!(
                    "docker-registry exited at start ({status}): {}",
                    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            let ready = try_send_raw(
                port,
                b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            );
            if matches!(ready, Ok(Response { status: 200, .. })) {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry not ready on 127.0.0.1:{port} after 30 s: {}",
                    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port, dir }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, the form `make publish REGISTRY=...` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /v2/<path>` with an `Accept` header.
    pub fn get(&self, path: &str, accept: &str) -> Response {
        http_request(
            self.port,
            "GET",
            &format!("/v2/{path}"),
            &[("accept", accept.as_bytes())],
            b"",
        )
    }

    /// The OCI manifest of `repo:reference` (status 200 asserted) and its
    /// `Docker-Content-Digest`.
    pub fn manifest(&self, repo: &str, reference: &str) -> (serde_json::Value, String) {
        let r = self.get(
            &format!("{repo}/manifests/{reference}"),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(r.status, 200, "manifest {repo}:{reference}: {}", r.text());
        let digest = r.header("docker-content-digest").unwrap_or_default();
        (r.json(), digest)
    }

    /// The bytes of blob `digest` (`sha256:...`) in `repo` (status 200 asserted).
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let r = self.get(&format!("{repo}/blobs/{digest}"), "*/*");
        assert_eq!(r.status, 200, "blob {repo}@{digest}: {}", r.text());
        r.body
    }

    /// The tags of `repo` (empty when the repository does not exist).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("{repo}/tags/list"), "application/json");
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "tags of {repo}: {}", r.text());
        r.json()["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where the registry stores blob `digest` on disk (to tamper with it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(""))
            .join(hex)
            .join("data")
    }

    /// The scratch dir (config, log, storage).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.child.terminate();
        if thread::panicking() {
            let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "----- registry log tail ({}) -----\n{}",
                self.dir.display(),
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
