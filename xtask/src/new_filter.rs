//! `new-filter NAME`: copies `filters/template` to `filters/NAME`, renamed throughout:
//! crate `filter-template` → `NAME`, lib `filter_template` → `NAME` with `_`, metric prefix
//! `filter_template.` → `NAME_.`, root id and wasm file name → `NAME`. The hub manifest and
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

fn rename(text: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    text.replace("filter-template", name)
        .replace("filter_template", &snake)
        .replace("dist/template.wasm", &format!("dist/{name}.wasm"))
        // hub-manifest/<dir>/manifest.json names the image after the directory.
        .replace("\"name\": \"template\"", &format!("\"name\": \"{name}\""))
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
    let [name] = args else {
        return Err("usage: new-filter NAME (e.g. my-filter)".into());
    };
    if !valid(name) || name == "template" {
        return Err(format!(
            "{name:?} is not a usable filter name: lowercase letters, digits and single '-', starting with a letter"
        ));
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
                "filter-template filter_template. dist/template.wasm",
                "my-f"
            ),
            "my-f my_f. dist/my-f.wasm"
        );
        assert_eq!(
            rename(
                "{\"name\": \"template\", \"rootId\": \"filter-template\"}",
                "x"
            ),
            "{\"name\": \"x\", \"rootId\": \"x\"}"
        );
    }
}
