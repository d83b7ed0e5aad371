//! `new-filter NAME`: a new filter that builds, passes its tests and runs in a real Envoy at
//! once. From the template, whose one name is `template` everywhere (crate, root id, `.wasm`,
//! image, metric prefix), it writes, renamed where the name is a name (see [`rename`]; `NAME`
//! with `_` for the lib and the metric prefix):
//!
//! - `filters/NAME/` from `filters/template/`; its README's introduction (between the
//!   `<!-- new-filter: intro -->` markers) and its Cargo `description` describe `NAME`, not the
//!   template's own role;
//! - `hub-manifest/NAME/` from `hub-manifest/template/` (`name` = `NAME`, the same
//!   description, so the crate's schema test agrees with it);
//! - `envoy-configs/NAME.yaml` from `envoy-configs/template.yaml`: an Envoy config loading
//!   `dist/NAME.wasm` (validated with every other config by `integration/tests/configs.rs`),
//!   and `envoy-configs/native/NAME.yaml`, the same with `dist/libNAME.so` (the dynamic module);
//! - `integration/tests/NAME.rs` from `integration/tests/template.rs`: real-Envoy tests of the
//!   new filter through the harness.
//!
//! `new-filter-check` (run by `make test`) does all of it in a scratch copy of the repository
//! and then builds the new filter, runs its tests, validates its Envoy config with
//! `envoy --mode validate` and runs its integration test: the promise above, checked.
//!
//! `new-filter NAME --out DIR` writes a standalone crate outside this repository instead
//! (`standalone.rs`).

use crate::repo_root;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Where the template's pieces are, and where the copies go (`{}`: the new name).
const SOURCES: &[(&str, &str)] = &[
    ("filters/template", "filters/{}"),
    ("hub-manifest/template", "hub-manifest/{}"),
    ("envoy-configs/template.yaml", "envoy-configs/{}.yaml"),
    (
        "envoy-configs/native/template.yaml",
        "envoy-configs/native/{}.yaml",
    ),
    ("integration/tests/template.rs", "integration/tests/{}.rs"),
];

/// The README block the copy replaces with its own introduction.
const INTRO_START: &str = "<!-- new-filter: intro";
const INTRO_END: &str = "<!-- /new-filter -->\n";

fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    !name.is_empty()
        && name.len() <= 48
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The new filter's one-line description (Cargo `description` and the hub manifest's).
fn description(name: &str) -> String {
    format!("{name}: denies requests that match a rule with a JSON local response")
}

/// Renames the template's name where it is a name: the crate (`name = "template"`), the
/// root id (`NAME: &str = "template"`), paths into the crate (`template::`), metric names and
/// response details (`"template.…"`, `"template_…"`), log and config-error prefixes, the
/// wasm / config file names and the hub manifest's `name` and `rootId`.
pub(crate) fn rename(text: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    text.replace("name = \"template\"", &format!("name = \"{name}\""))
        .replace(
            "NAME: &str = \"template\"",
            &format!("NAME: &str = \"{name}\""),
        )
        .replace("template::", &format!("{snake}::"))
        .replace(&format!("sdk_ext::{snake}::"), "sdk_ext::template::")
        .replace("\"template.", &format!("\"{snake}."))
        .replace("wasmcustom.template.", &format!("wasmcustom.{snake}."))
        .replace("`template.", &format!("`{snake}."))
        .replace(
            "wasm log template template:",
            &format!("wasm log {name} {name}:"),
        )
        .replace("# template in front", &format!("# {name} in front"))
        .replace(
            "//! template in a real Envoy",
            &format!("//! {name} in a real Envoy"),
        )
        .replace("`template.*`", &format!("`{snake}.*`"))
        .replace("\"template_", &format!("\"{snake}_"))
        .replace("\"template: ", &format!("\"{name}: "))
        .replace("`template: ", &format!("`{name}: "))
        .replace("wasm log template:", &format!("wasm log {name}:"))
        .replace("//! template: ", &format!("//! {name}: "))
        .replace("# template\n", &format!("# {name}\n"))
        .replace("dist/template.wasm", &format!("dist/{name}.wasm"))
        .replace("dist/libtemplate.so", &format!("dist/lib{name}.so"))
        .replace(
            "envoy-configs/native/template.yaml",
            &format!("envoy-configs/native/{name}.yaml"),
        )
        .replace(
            "envoy-configs/template.yaml",
            &format!("envoy-configs/{name}.yaml"),
        )
        .replace("filters/template/", &format!("filters/{name}/"))
        .replace("hub-manifest/template/", &format!("hub-manifest/{name}/"))
        .replace("(\"template\"", &format!("(\"{name}\""))
        .replace("tests/template.rs", &format!("tests/{name}.rs"))
        .replace("root_id: template", &format!("root_id: {name}"))
        .replace("name: template", &format!("name: {name}"))
        // hub-manifest/<dir>/manifest.json names the image after the directory.
        .replace("\"name\": \"template\"", &format!("\"name\": \"{name}\""))
        .replace(
            "\"rootId\": \"template\"",
            &format!("\"rootId\": \"{name}\""),
        )
}

/// The parts that describe the template itself, rewritten to describe `name`.
fn describe(file: &Path, text: String, name: &str) -> String {
    let file_name = file.file_name().and_then(|f| f.to_str()).unwrap_or("");
    match file_name {
        "Cargo.toml" => replace_line(
            &text,
            "description = ",
            &format!("description = {:?}", description(name)),
        ),
        "manifest.json" => replace_line(
            &text,
            "\"description\": ",
            &format!("\"description\": {:?},", description(name)),
        ),
        "README.md" => {
            let (Some(start), Some(end)) = (text.find(INTRO_START), text.find(INTRO_END)) else {
                return text;
            };
            let intro = format!(
                "`{name}` **denies requests that match a rule** with a JSON local response. It was \
                 created by `make new-filter` and does exactly that until you change it: the decision \
                 in `src/policy.rs`, the configuration in `src/config.rs`, then this README, the \
                 `description` in `Cargo.toml` and `hub-manifest/{name}/manifest.json` (kept equal by \
                 `tests/schema.rs`).\n"
            );
            let (before, after) = (
                text.get(..start).unwrap_or(""),
                text.get(end + INTRO_END.len()..).unwrap_or(""),
            );
            format!("{before}{intro}{after}")
        }
        _ => text,
    }
}

/// `text` with the first line starting (after indentation) with `prefix` replaced by `line`
/// (indentation kept).
fn replace_line(text: &str, prefix: &str, line: &str) -> String {
    let mut done = false;
    let mut out: Vec<String> = Vec::new();
    for l in text.lines() {
        let trimmed = l.trim_start();
        if !done && trimmed.starts_with(prefix) {
            let indent = l.get(..l.len() - trimmed.len()).unwrap_or("");
            out.push(format!("{indent}{line}"));
            done = true;
        } else {
            out.push(l.to_string());
        }
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

fn copy(from: &Path, to: &Path, name: &str, written: &mut Vec<PathBuf>) -> Result<(), String> {
    if from.is_dir() {
        fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
        let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
        for entry in entries.flatten() {
            copy(&entry.path(), &to.join(entry.file_name()), name, written)?;
        }
        return Ok(());
    }
    let text = fs::read_to_string(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    let text = describe(to, rename(&text, name), name);
    fs::write(to, text).map_err(|e| format!("writing {}: {e}", to.display()))?;
    written.push(to.to_path_buf());
    Ok(())
}

/// Writes the new filter `name` under `root`; returns the files written.
pub fn create(root: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    if !valid(name) || name == "template" {
        return Err(format!(
            "{name:?} is not a usable filter name: lowercase letters, digits and single '-', starting with a letter"
        ));
    }
    let targets: Vec<(PathBuf, PathBuf)> = SOURCES
        .iter()
        .map(|(from, to)| (root.join(from), root.join(to.replace("{}", name))))
        .collect();
    for (from, to) in &targets {
        if !from.exists() {
            return Err(format!("{} is missing", from.display()));
        }
        if to.exists() {
            return Err(format!("{} already exists", to.display()));
        }
    }
    let mut written = Vec::new();
    for (from, to) in &targets {
        copy(from, to, name, &mut written)?;
    }
    Ok(written)
}

/// `xtask new-filter NAME`.
pub fn run(args: &[String]) -> Result<(), String> {
    let (name, out) = match args {
        [name] => (name, None),
        [name, flag, dir] if flag == "--out" => (name, Some(dir)),
        _ => return Err("usage: new-filter NAME [--out DIR] (e.g. my-filter)".into()),
    };
    // A standalone crate outside this repository: see standalone.rs.
    if let Some(dir) = out {
        if !valid(name) || name == "template" {
            return Err(format!(
                "{name:?} is not a usable filter name: lowercase letters, digits and single '-', starting with a letter"
            ));
        }
        let at = crate::standalone::create(name, Path::new(dir))?;
        println!(
            "new-filter: created {} (standalone crate {name}, sdk-ext from this checkout)",
            at.display()
        );
        println!(
            "  next: cd {} && ./build-wasm.sh && cargo test --all-features   (dist/{name}.wasm, then the suite natively and on it)",
            at.display()
        );
        return Ok(());
    }
    create(&repo_root(), name)?;
    println!("new-filter: created {name} (crate, root id and wasm name {name}):");
    for (_, to) in SOURCES {
        println!("  {}", to.replace("{}", name));
    }
    println!("next steps:");
    println!("  make build && cargo test -p {name} && cargo test -p integration --test {name}");
    println!(
        "  then make it yours: src/policy.rs, src/config.rs, README.md, and the description in"
    );
    println!(
        "  Cargo.toml and hub-manifest/{name}/manifest.json (equal, checked by tests/schema.rs)"
    );
    Ok(())
}

/// The name `new-filter-check` creates.
const CHECK_NAME: &str = "checked-filter";

fn run_step(what: &str, cmd: &mut Command) -> Result<(), String> {
    let started = Instant::now();
    println!("new-filter-check: {what}");
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    println!(
        "new-filter-check: {what}: {} in {:.0} s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Copies `from` to `to` with `from`'s modification time (see [`check`] for why).
fn copy_keeping_mtime(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to).map_err(|e| format!("copying {}: {e}", from.display()))?;
    let modified = fs::metadata(from)
        .and_then(|m| m.modified())
        .map_err(|e| format!("reading the time of {}: {e}", from.display()))?;
    fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| f.set_modified(modified))
        .map_err(|e| format!("setting the time of {}: {e}", to.display()))
}

/// The repository's files (tracked and untracked-but-not-ignored), relative to `root`.
fn repo_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|e| format!("git ls-files: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect())
}

/// `xtask new-filter-check`: `new-filter` in a scratch copy of the repository
/// (`$TMPDIR/new-filter-check-<hash of this checkout's path>`), then what its next steps promise: the new filter builds
/// to `dist/`, its own tests pass, its Envoy config passes `envoy --mode validate`, and its
/// generated integration test passes in a real Envoy.
///
/// The copy builds in this checkout's own `target/` and `target-wasm/`, so only the new crate
/// (and what links it) is compiled: everything else is already built by `make test`. That is
/// sound because the copy's files are byte-for-byte this checkout's, with their modification
/// times kept: cargo names a workspace member's artifacts by its workspace-relative path and
/// judges freshness by those times, so the copy's unchanged crates are the same units as
/// ours. (A copy with fresh times would rebuild every workspace crate, and leave this
/// checkout's artifacts looking newer than its sources.) The copy must not live inside
/// `target/`: cargo records a source file under the target dir by its target-relative path,
/// and this checkout's artifacts would then be judged fresh by the copy's files.
pub fn check(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: new-filter-check (no arguments)".into());
    }
    let root = repo_root();
    let started = Instant::now();
    let scratch = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        root.hash(&mut h);
        std::env::temp_dir().join(format!("new-filter-check-{:016x}", h.finish()))
    };
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(|e| format!("removing {}: {e}", scratch.display()))?;
    }
    for rel in repo_files(&root)? {
        let (from, to) = (root.join(&rel), scratch.join(&rel));
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        copy_keeping_mtime(&from, &to)?;
    }
    // This checkout's build directories (see above), and its Envoy.
    let target = root.join("target");
    let target_wasm = root.join("target-wasm");
    fs::create_dir_all(&target_wasm)
        .map_err(|e| format!("creating {}: {e}", target_wasm.display()))?;
    let links = [
        (root.join(".venv"), scratch.join(".venv")),
        (target_wasm, scratch.join("target-wasm")),
    ];
    for (from, to) in links {
        if from.exists() {
            std::os::unix::fs::symlink(&from, &to)
                .map_err(|e| format!("linking {}: {e}", to.display()))?;
        }
    }
    let written = create(&scratch, CHECK_NAME)?;
    println!(
        "new-filter-check: {} files written in {}",
        written.len(),
        scratch.display()
    );
    let leftovers = template_traces(&written);
    if !leftovers.is_empty() {
        return Err(format!(
            "the new filter still carries the template's names or self-description:\n{}",
            leftovers.join("\n")
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_step(
        &format!("build {CHECK_NAME}"),
        Command::new(&exe)
            .args(["build", CHECK_NAME])
            .env("XTASK_ROOT", &scratch)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&scratch),
    )?;
    run_step(
        &format!("cargo test -p {CHECK_NAME} --all-features"),
        Command::new(&cargo)
            .args(["test", "-q", "-p", CHECK_NAME, "--all-features"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&scratch),
    )?;
    let envoy = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/envoy"));
    run_step(
        &format!("envoy --mode validate -c envoy-configs/{CHECK_NAME}.yaml"),
        Command::new(&envoy)
            .args(["--mode", "validate", "-l", "warning", "-c"])
            .arg(format!("envoy-configs/{CHECK_NAME}.yaml"))
            .current_dir(&scratch),
    )?;
    run_step(
        &format!("cargo test -p integration --test {CHECK_NAME}"),
        Command::new(&cargo)
            .args(["test", "-q", "-p", "integration", "--test", CHECK_NAME])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&scratch),
    )?;
    println!(
        "new-filter-check: ok in {:.0} s (scratch copy left in {})",
        started.elapsed().as_secs_f64(),
        scratch.display()
    );
    Ok(())
}

/// Lines of generated files that still name the template or describe it.
fn template_traces(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            if lower.contains("template") || lower.contains("scaffold") {
                out.push(format!("{}:{}: {line}", f.display(), n + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid("my-filter"));
        assert!(valid("a1"));
        for bad in ["", "My", "1a", "a_b", "a-", "a--b", "a b", "../x"] {
            assert!(!valid(bad), "{bad}");
        }
        assert_eq!(
            rename(
                "name = \"template\" template::EXPORTS sdk_ext::template::Template \"template.denied\" dist/template.wasm",
                "my-f"
            ),
            "name = \"my-f\" my_f::EXPORTS sdk_ext::template::Template \"my_f.denied\" dist/my-f.wasm"
        );
        assert_eq!(
            rename(
                "{\"name\": \"template\", \"rootId\": \"template\"} The template is",
                "x"
            ),
            "{\"name\": \"x\", \"rootId\": \"x\"} The template is"
        );
        assert_eq!(
            replace_line(
                "a = 1\n  description = \"old\"\nb\n",
                "description = ",
                "description = \"new\""
            ),
            "a = 1\n  description = \"new\"\nb\n"
        );
    }

    /// `new-filter` into a scratch copy of the template's pieces: every file is renamed, none
    /// still names or describes the template, descriptions agree, paths point at the copy.
    #[test]
    fn generates_a_renamed_filter_with_its_own_description() {
        let real = repo_root();
        let scratch = std::env::temp_dir().join(format!("xtask-new-filter-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        for (from, _) in SOURCES {
            let mut ignored = Vec::new();
            copy_verbatim(&real.join(from), &scratch.join(from), &mut ignored);
        }
        let name = "acme-guard";
        let written = create(&scratch, name).unwrap();
        assert!(written.len() >= 10, "{written:?}");
        assert_eq!(template_traces(&written), Vec::<String>::new());

        let read = |rel: &str| fs::read_to_string(scratch.join(rel)).unwrap();
        let cargo = read("filters/acme-guard/Cargo.toml");
        assert!(cargo.contains("name = \"acme-guard\""));
        assert!(cargo.contains(&format!("description = {:?}", description(name))));
        let manifest: serde_json::Value =
            serde_json::from_str(&read("hub-manifest/acme-guard/manifest.json")).unwrap();
        assert_eq!(manifest["name"], name);
        assert_eq!(manifest["rootId"], name);
        assert_eq!(manifest["description"], description(name).as_str());
        let readme = read("filters/acme-guard/README.md");
        assert!(readme.starts_with("# acme-guard\n"), "{readme}");
        assert!(readme.contains("`acme-guard` **denies requests"));
        assert!(!readme.contains("<!--"));
        assert!(read("filters/acme-guard/src/lib.rs")
            .contains("pub const NAME: &str = \"acme-guard\";"));
        let yaml = read("envoy-configs/acme-guard.yaml");
        for want in ["filename: dist/acme-guard.wasm", "root_id: acme-guard"] {
            assert!(yaml.contains(want), "{want} not in {yaml}");
        }
        let test = read("integration/tests/acme-guard.rs");
        assert!(
            test.contains("include_str!(\"../../filters/acme-guard/examples/deny-admin.json\")")
        );
        assert!(test.contains("WasmFilter::new(\"acme-guard\", config).root_id(\"acme-guard\")"));
        assert!(test.contains("\"envoy-configs/acme-guard.yaml\""));
        assert!(test.contains("wasmcustom.acme_guard.denied"));

        assert!(create(&scratch, name).is_err(), "refuses to overwrite");
        assert!(create(&scratch, "template").is_err());
        fs::remove_dir_all(&scratch).unwrap();
    }

    fn copy_verbatim(from: &Path, to: &Path, written: &mut Vec<PathBuf>) {
        if from.is_dir() {
            fs::create_dir_all(to).unwrap();
            for e in fs::read_dir(from).unwrap().flatten() {
                copy_verbatim(&e.path(), &to.join(e.file_name()), written);
            }
        } else {
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(from, to).unwrap();
            written.push(to.to_path_buf());
        }
    }
}
