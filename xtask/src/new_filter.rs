//! `new-filter NAME`: copies `filters/template` to `filters/NAME`, renamed throughout. The
//! template has one name, `template`, everywhere (crate, root id, `.wasm`, image, metric
//! prefix); the copy gets `NAME` in each of those places (`NAME` with `_` for the lib and the
//! metric prefix). Only those places are renamed (see [`rename`]), so prose that says
//! "template" and `sdk_ext::template` stay as they are. The hub manifest and
//! config schema (`hub-manifest/template/`) are copied to `hub-manifest/NAME/` the same way,
//! with the manifest's `name` set to `NAME`, so the copy can be packaged and published. The
//! copy builds and passes its own tests (schema check included) as it is; `make build` then
//! writes `dist/NAME.wasm`.

use crate::repo_root;
use std::fs;
use std::path::Path;

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
        .replace("`template.*`", &format!("`{snake}.*`"))
        .replace("\"template_", &format!("\"{snake}_"))
        .replace("\"template: ", &format!("\"{name}: "))
        .replace("`template: ", &format!("`{name}: "))
        .replace("wasm log template:", &format!("wasm log {name}:"))
        .replace("//! template: ", &format!("//! {name}: "))
        .replace("# template\n", &format!("# {name}\n"))
        .replace("dist/template.wasm", &format!("dist/{name}.wasm"))
        .replace(
            "envoy-configs/template.yaml",
            &format!("envoy-configs/{name}.yaml"),
        )
        // hub-manifest/<dir>/manifest.json names the image after the directory.
        .replace("\"name\": \"template\"", &format!("\"name\": \"{name}\""))
        .replace(
            "\"rootId\": \"template\"",
            &format!("\"rootId\": \"{name}\""),
        )
}

fn copy_dir(from: &Path, to: &Path, name: &str) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if src.is_dir() {
            copy_dir(&src, &dst, name)?;
        } else {
            let text =
                fs::read_to_string(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
            fs::write(&dst, rename(&text, name))
                .map_err(|e| format!("writing {}: {e}", dst.display()))?;
        }
    }
    Ok(())
}

/// `xtask new-filter NAME`.
pub fn run(args: &[String]) -> Result<(), String> {
    let (name, out) = match args {
        [name] => (name, None),
        [name, flag, dir] if flag == "--out" => (name, Some(dir)),
        _ => return Err("usage: new-filter NAME [--out DIR] (e.g. my-filter)".into()),
    };
    if !valid(name) || name == "template" {
        return Err(format!(
            "{name:?} is not a usable filter name: lowercase letters, digits and single '-', starting with a letter"
        ));
    }
    // A standalone crate outside this repository: see standalone.rs.
    if let Some(dir) = out {
        let at = crate::standalone::create(name, Path::new(dir))?;
        println!(
            "new-filter: created {} (standalone crate {name}, sdk-ext from this checkout)",
            at.display()
        );
        println!(
            "  next: cd {} && cargo test --all-features && ./build-wasm.sh   → dist/{name}.wasm",
            at.display()
        );
        return Ok(());
    }
    let root = repo_root();
    let dest = root.join("filters").join(name);
    let hub = root.join("hub-manifest").join(name);
    if dest.exists() {
        return Err(format!("filters/{name} already exists"));
    }
    if hub.exists() {
        return Err(format!("hub-manifest/{name} already exists"));
    }
    copy_dir(&root.join("filters/template"), &dest, name)?;
    copy_dir(&root.join("hub-manifest/template"), &hub, name)?;
    println!(
        "new-filter: created filters/{name} (crate {name}, root id {name}) and hub-manifest/{name}"
    );
    println!(
        "  edit hub-manifest/{name}/manifest.json (description, category, istio phase) to match"
    );
    println!("  next: cargo test -p {name} && make build   → dist/{name}.wasm");
    Ok(())
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
    }
}
