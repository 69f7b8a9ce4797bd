//! The crates depend on each other only as `docs/architecture.md` says:
//! its `deps` block is compared, edge for edge, with what `cargo metadata`
//! reports (normal and build dependencies on keyfed crates). A new edge,
//! or one removed, fails here until the document says so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The graph the document states.
fn documented() -> Graph {
    let doc = std::fs::read_to_string(workspace_root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find("```deps\n")
        .expect("a ```deps block in docs/architecture.md")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, deps) = line.split_once('→').expect("`crate → deps`");
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            (name.trim().to_owned(), deps)
        })
        .collect()
}

/// The graph cargo sees.
fn actual() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .filter_map(|d| d["name"].as_str())
                .filter(|n| n.starts_with("keyfed"))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_on_each_other_only_as_documented() {
    let (documented, actual) = (documented(), actual());
    for (name, deps) in &actual {
        let said = documented
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in docs/architecture.md's deps block"));
        assert_eq!(
            deps, said,
            "{name}'s keyfed dependencies differ from the document"
        );
    }
    for name in documented.keys() {
        assert!(
            actual.contains_key(name),
            "the document names {name}, which is no crate"
        );
    }
    // The rules the table must keep, whatever is added to it.
    let leaves = ["keyfed-shared", "keyfed-pki", "keyfed-directory"];
    for leaf in leaves {
        assert!(actual[leaf].is_empty(), "{leaf} depends on a keyfed crate");
    }
    assert!(!actual["keyfed-gateway"].contains("keyfed-shard"));
    assert!(!actual["keyfed-shard"].contains("keyfed-gateway"));
}
