//! A real Envoy process owned by the test.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{http_get, try_send_raw, Response};
use crate::locations::{envoy_bin, repo_root};
use crate::process::OwnedChild;

/// How long Envoy gets to become ready (`$ENVOY_START_TIMEOUT_SECS`, default 60: V8
/// compiles every wasm module at start, and CI machines have 2 busy cores).
fn start_timeout() -> Duration {
    let secs = std::env::var("ENVOY_START_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// A fresh scratch directory under the system temp dir.
fn scratch_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("integration-{kind}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Why [`Envoy::start`] failed, with everything Envoy logged. Its `Debug` prints the log
/// verbatim, so `Envoy::start(..).unwrap()` shows the reason in the test output.
pub struct StartError {
    /// What went wrong, in one line.
    pub message: String,
    /// Envoy's exit status if it exited (a refused config exits with status 1).
    pub exit_status: Option<ExitStatus>,
    /// Envoy's whole stdout+stderr.
    pub log: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n----- envoy log -----\n{}----- end of envoy log -----",
            self.message, self.log
        )
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for StartError {}

/// A running Envoy: `-c <tmp>/envoy.yaml --concurrency 1 --log-level info`, cwd = repo root,
/// its own process group, stdout+stderr in `<tmp>/envoy.log`. Dropping it terminates the
/// process group and removes the scratch dir (kept, with the log tail printed, when the
/// test is panicking).
pub struct Envoy {
    child: Mutex<OwnedChild>,
    dir: PathBuf,
    log_path: PathBuf,
    admin_port: u16,
    listeners: Vec<(String, u16)>,
}

impl Envoy {
    /// Starts Envoy on a bootstrap YAML and waits until admin `/ready` answers 200.
    pub fn start(yaml: &str) -> Result<Envoy, StartError> {
        Envoy::start_with_args(yaml, &[])
    }

    /// Like [`Envoy::start`], with extra command-line arguments (e.g.
    /// `["--component-log-level", "wasm:debug"]`).
    pub fn start_with_args(yaml: &str, extra_args: &[&str]) -> Result<Envoy, StartError> {
        let dir = scratch_dir("envoy");
        let config_path = dir.join("envoy.yaml");
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address");
        fs::write(&config_path, yaml)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        let log_file = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let err_file = log_file.try_clone().expect("clone log file handle");

        let mut cmd = Command::new(envoy_bin());
        cmd.current_dir(repo_root())
            // Where `dynamic_module_config.name: <name>` finds `lib<name>.so` (make build).
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                repo_root().join("dist"),
            )
            .arg("-c")
            .arg(&config_path)
            // One worker unless the caller asks for more (`--concurrency N` in extra_args;
            // Envoy refuses the option twice).
            .args(
                (!extra_args.contains(&"--concurrency"))
                    .then_some(["--concurrency", "1"])
                    .into_iter()
                    .flatten(),
            )
            .args(["--log-level", "info"])
            // No hot restart means no shared-memory region and no base id, so any number
            // of Envoys (from parallel tests, or other test binaries) can run at once.
            .arg("--disable-hot-restart")
            // The real admin address, which matters when the config says port 0.
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file));

        // The error carries the whole log, so the scratch dir can go.
        let fail = |message: String, exit_status: Option<ExitStatus>| {
            let log = read_lossy(&log_path);
            let _ = fs::remove_dir_all(&dir);
            StartError {
                message,
                exit_status,
                log,
            }
        };

        let mut child = OwnedChild::spawn(cmd).map_err(|e| {
            fail(
                format!("could not spawn {}: {e}", envoy_bin().display()),
                None,
            )
        })?;

        let timeout = start_timeout();
        let deadline = Instant::now() + timeout;
        let admin_port = loop {
            if let Some(status) = child.try_status() {
                return Err(fail(
                    format!("envoy exited during startup ({status})"),
                    Some(status),
                ));
            }
            if Instant::now() >= deadline {
                child.terminate();
                return Err(fail(
                    format!(
                        "envoy was not ready after {timeout:?} (admin /ready never answered 200)"
                    ),
                    None,
                ));
            }
            let port = fs::read_to_string(&admin_path)
                .ok()
                .and_then(|s| s.trim().rsplit(':').next()?.parse::<u16>().ok());
            if let Some(port) = port {
                let ready = try_send_raw(
                    port,
                    b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
                );
                if matches!(ready, Ok(Response { status: 200, .. })) {
                    break port;
                }
            }
            thread::sleep(Duration::from_millis(50));
        };

        let mut envoy = Envoy {
            child: Mutex::new(child),
            dir,
            log_path,
            admin_port,
            listeners: Vec::new(),
        };
        envoy.listeners = envoy.discover_listeners();
        Ok(envoy)
    }

    /// Starts Envoy on a checked-in config (path relative to the repo root, or absolute).
    ///
    /// The checked-in configs use listener port 10000, admin port 9901, upstream
    /// 127.0.0.1:8080 and `dist/<name>.wasm` relative to the repo root. This rewrites
    /// 10000 and 9901 to 0 (discovered after start; see [`Envoy::listener_port`]),
    /// `address: 0.0.0.0` to `127.0.0.1`, and applies `ports` (`(from, to)`, e.g.
    /// `(8080, echo.port())`; a `from` of 10000 or 9901 overrides the default).
    /// Panics with "run `make build` first" if a referenced `dist/*.wasm` is missing.
    pub fn start_file(path: impl AsRef<Path>, ports: &[(u16, u16)]) -> Result<Envoy, StartError> {
        let path = repo_root().join(path.as_ref());
        let yaml =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for wasm in referenced_wasm(&yaml) {
            if !repo_root().join(&wasm).is_file() {
                panic!(
                    "{} references {}, which does not exist: run `make build` first",
                    path.display(),
                    wasm.display()
                );
            }
        }
        let mut map: Vec<(u16, u16)> = vec![(10000, 0), (9901, 0)];
        for &(from, to) in ports {
            map.retain(|(f, _)| *f != from);
            map.push((from, to));
        }
        // Listen on loopback only (docker-oriented configs bind 0.0.0.0).
        let yaml = rewrite_ports(&yaml, &map)
            .replace("address: 0.0.0.0", "address: 127.0.0.1")
            .replace("address: \"0.0.0.0\"", "address: \"127.0.0.1\"");
        Envoy::start(&yaml)
    }

    fn discover_listeners(&self) -> Vec<(String, u16)> {
        let resp = self.admin_get("/listeners?format=json");
        let json = resp.json();
        json.get("listener_statuses")
            .and_then(|l| l.as_array())
            .map(|all| {
                all.iter()
                    .filter_map(|l| {
                        let name = l.get("name")?.as_str()?.to_string();
                        let port = l
                            .pointer("/local_address/socket_address/port_value")?
                            .as_u64()?;
                        Some((name, u16::try_from(port).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn child(&self) -> MutexGuard<'_, OwnedChild> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The (first) listener's port. Panics if the config has no listener.
    pub fn listener_port(&self) -> u16 {
        match self.listeners.first() {
            Some((_, port)) => *port,
            None => panic!("envoy has no listeners"),
        }
    }

    /// The port of the listener called `name`. Panics (listing the names) if absent.
    pub fn listener_port_named(&self, name: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no listener named {name:?}; have {:?}", self.listeners))
    }

    /// Every listener as `(name, port)`, in admin order.
    pub fn listeners(&self) -> &[(String, u16)] {
        &self.listeners
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The Envoy process id.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// `GET path` on the admin endpoint.
    pub fn admin_get(&self, path: &str) -> Response {
        http_get(self.admin_port, path, &[])
    }

    /// `GET path` on the (first) listener, with extra headers.
    pub fn get(&self, path: &str, headers: &[(&str, &[u8])]) -> Response {
        http_get(self.listener_port(), path, headers)
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Waits up to `timeout` for `needle` to appear in the log; returns whether it did.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Admin `/stats` (text, `name: value` per line).
    pub fn stats(&self) -> String {
        self.admin_get("/stats").text()
    }

    /// The value of the counter or gauge `name`, if present (histograms are `None`).
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().lines().find_map(|line| {
            let (n, v) = line.rsplit_once(": ")?;
            if n == name {
                v.trim().parse().ok()
            } else {
                None
            }
        })
    }

    /// Waits up to `timeout` for stat `name` to equal `value` (stats from worker threads
    /// can trail the response by a moment); returns the last value seen.
    pub fn wait_for_stat(&self, name: &str, value: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.stat(name);
            if now == Some(value) || Instant::now() >= deadline {
                return now;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.child().try_status().is_none()
    }

    /// The scratch directory (config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.child().terminate();
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "----- envoy log tail (full log and config kept in {}) -----\n{}\n----- end -----",
                self.dir.display(),
                tail.join("\n")
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Rewrites ports in a config: `port_value: N` and `127.0.0.1:N` / `localhost:N` for every
/// `(N, M)` in `map`.
pub fn rewrite_ports(yaml: &str, map: &[(u16, u16)]) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut rest = yaml;
    const PREFIXES: [&str; 3] = ["port_value:", "127.0.0.1:", "localhost:"];
    loop {
        let next = PREFIXES
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min_by_key(|(i, _)| *i);
        let Some((at, prefix)) = next else {
            out.push_str(rest);
            return out;
        };
        let after = at + prefix.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        // `port_value:` allows spaces before the number; `host:port` does not.
        let spaces = if prefix == "port_value:" {
            rest.len() - rest.trim_start_matches([' ', '\t']).len()
        } else {
            0
        };
        let digits = rest[spaces..]
            .bytes()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let number = &rest[spaces..spaces + digits];
        match number
            .parse::<u16>()
            .ok()
            .and_then(|n| map.iter().find(|(f, _)| *f == n))
        {
            Some((_, to)) => {
                out.push_str(&rest[..spaces]);
                out.push_str(&to.to_string());
            }
            None => out.push_str(&rest[..spaces + digits]),
        }
        rest = &rest[spaces + digits..];
    }
}

/// The `dist/<name>.wasm` paths (relative to the repo root) a config refers to.
pub fn referenced_wasm(yaml: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut rest = yaml;
    while let Some(i) = rest.find("dist/") {
        // Only a path start: not part of a longer path segment like `xdist/`.
        let at_start = i == 0
            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'/';
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.')))
            .unwrap_or(tail.len());
        let candidate = &tail[..len];
        if at_start && candidate.ends_with(".wasm") {
            let p = PathBuf::from(candidate);
            if !found.contains(&p) {
                found.push(p);
            }
        }
        rest = &rest[i + "dist/".len()..];
    }
    found
}

/// Runs `envoy --mode validate -c <path>` with cwd = repo root (relative paths are taken
/// relative to it). Returns whether it passed and the combined output. Validate mode
/// loads the wasm modules and runs their `on_configure`, so it needs `dist/` built.
pub fn validate_config(path: impl AsRef<Path>) -> (bool, String) {
    let path = repo_root().join(path.as_ref());
    let dir = scratch_dir("validate");
    let out_path = dir.join("output.log");
    let out = fs::File::create(&out_path).expect("create validate output file");
    let err = out.try_clone().expect("clone validate output handle");
    let mut cmd = Command::new(envoy_bin());
    cmd.current_dir(repo_root())
        .env(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            repo_root().join("dist"),
        )
        .args(["--mode", "validate", "--log-level", "info", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let mut child = OwnedChild::spawn(cmd)
        .unwrap_or_else(|e| panic!("could not spawn {}: {e}", envoy_bin().display()));
    let status = child.wait_timeout(Duration::from_secs(120));
    let timed_out = status.is_none();
    child.terminate();
    drop(child);
    let mut output = read_lossy(&out_path);
    if timed_out {
        output.push_str("\n[integration] envoy --mode validate timed out after 120 s\n");
    }
    let _ = fs::remove_dir_all(&dir);
    (status.map(|s| s.success()).unwrap_or(false), output)
}

/// [`validate_config`] on a YAML string (written to a scratch file).
pub fn validate_yaml(yaml: &str) -> (bool, String) {
    let dir = scratch_dir("validate-yaml");
    let path = dir.join("envoy.yaml");
    fs::write(&path, yaml).expect("write config to validate");
    let result = validate_config(&path);
    let _ = fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_ports_touches_only_mapped_ports() {
        let yaml = "port_value: 10000\nport_value:   8080\nport_value: 80800\n\
                    uri: http://127.0.0.1:8080/x\nhost: localhost:9901\nother: 8080\n";
        let out = rewrite_ports(yaml, &[(10000, 0), (8080, 4321), (9901, 0)]);
        assert_eq!(
            out,
            "port_value: 0\nport_value:   4321\nport_value: 80800\n\
             uri: http://127.0.0.1:4321/x\nhost: localhost:0\nother: 8080\n"
        );
    }

    #[test]
    fn referenced_wasm_finds_dist_paths() {
        let yaml = "filename: dist/header_rules.wasm\nfilename: \"dist/jwt-auth.wasm\"\n\
                    x: /abs/dist/other.wasm\ny: dist/header_rules.wasm\nz: dist/readme.md\n";
        assert_eq!(
            referenced_wasm(yaml),
            vec![
                PathBuf::from("dist/header_rules.wasm"),
                PathBuf::from("dist/jwt-auth.wasm")
            ]
        );
    }
}
