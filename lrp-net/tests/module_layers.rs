//! The shape of lrp-net's source: dependencies between modules run one way (no import
//! cycle), and no file holds more than 800 lines of non-test code.
//!
//! The graph is read from the source: every `crate::m` path (and `super::m` from a
//! top-level module) in a file of module `m0` is an edge `m0 -> m`; a root re-export
//! (`crate::Nic`) counts as an edge to the module it comes from (`nic`). Inside a module
//! directory (`nic/`, `sim/`, `backend/`, ...) the files are checked the same way among
//! siblings (`super::x`). Test modules (`#[cfg(test)]` to the end of a file) are left out:
//! tests may use anything. Run with `--nocapture` to print the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module and without comments.
fn code(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        lines.push(line);
    }
    lines
}

/// Identifiers following `prefix` in `line` (e.g. `m` in `crate::m::x` or
/// `crate::{m, n}`).
fn after(line: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        // `prefix` must start an identifier path, not end one (`lrp_crate::`).
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Root re-exports: item name -> the crate module it comes from.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in code(lib) {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let items = items.trim_end_matches(';');
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    map
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_depend_one_way_and_files_stay_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let rel = |p: &Path| -> Vec<String> {
        p.strip_prefix(&src)
            .expect("under src")
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| rel(p)[0].clone())
        .filter(|m| m != "lib")
        .collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexported = reexports(&lib, &modules);

    let mut top = Graph::new();
    let mut inner: BTreeMap<String, Graph> = BTreeMap::new();
    let mut too_long = Vec::new();
    for path in &files {
        let parts = rel(path);
        if parts == ["lib"] {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read");
        let code = code(&text);
        // Non-test lines, comments included (what a reader reads).
        let lines = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        if lines > MAX_LINES {
            too_long.push(format!("{} ({lines} lines)", parts.join("/")));
        }
        let module = parts[0].clone();
        // `super::` means the crate root from a top-level module's own file.
        let top_level = parts.len() == 1 || parts[1..] == ["mod"];
        // The sibling graph of a module directory (`nic/rules.rs` is `rules` in `nic`).
        let sibling = (parts.len() == 2 && parts[1] != "mod").then(|| parts[1].clone());
        for line in &code {
            let mut targets = after(line, "crate::");
            if top_level {
                targets.extend(after(line, "super::"));
            }
            for t in targets {
                let t = if modules.contains(&t) {
                    t
                } else if let Some(m) = reexported.get(&t) {
                    m.clone()
                } else {
                    continue;
                };
                if t != module {
                    top.entry(module.clone()).or_default().insert(t);
                }
            }
            if let Some(me) = &sibling {
                for t in after(line, "super::") {
                    let exists = src.join(&module).join(format!("{t}.rs")).exists()
                        || src.join(&module).join(&t).join("mod.rs").exists();
                    if exists && &t != me {
                        inner
                            .entry(module.clone())
                            .or_default()
                            .entry(me.clone())
                            .or_default()
                            .insert(t);
                    }
                }
            }
        }
        top.entry(module).or_default();
    }
    for (m, deps) in &top {
        eprintln!(
            "{m} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for (dir, graph) in &inner {
        for (m, deps) in graph {
            let deps: Vec<_> = deps.iter().cloned().collect();
            eprintln!("  {dir}/{m} -> {}", deps.join(", "));
        }
    }
    assert!(
        top.contains_key("nic") && top["nic"].contains("backend"),
        "the graph was not read (nic -> backend expected): {top:?}"
    );
    if let Some(cycle) = find_cycle(&top) {
        panic!(
            "import cycle among lrp-net's modules: {}",
            cycle.join(" -> ")
        );
    }
    for (dir, graph) in &inner {
        if let Some(cycle) = find_cycle(graph) {
            panic!("import cycle inside {dir}/: {}", cycle.join(" -> "));
        }
    }
    assert!(
        too_long.is_empty(),
        "files over {MAX_LINES} lines of non-test code: {too_long:?}"
    );
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        after("use crate::{nic::Channel, rule::Rule};", "crate::"),
        vec!["nic", "rule"]
    );
    assert_eq!(after("x::crate::y lrp_crate::z", "crate::"), vec!["y"]);
}
