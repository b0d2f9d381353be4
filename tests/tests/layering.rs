//! The shim's layers, checked on its sources: every `crate::<module>` a bare-metal file names
//! is collected into an import graph of the top-level modules, which must follow
//!   hw -> (nothing of ours)          bare metal, no policy
//!   clock -> hw;  console -> hw, clock
//!   vcpus -> hw, clock               the shim lock and the stop for a suspend
//!   platform -> hw, clock, console, vcpus   (never kernel: only the kernel decides to crash)
//!   kernel -> anything;  main's entry -> anything
//! and must have no cycle. The host library (`xshim_shim`) imports nothing bare-metal.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 6] = ["hw", "clock", "console", "vcpus", "platform", "kernel"];

fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "hw" => &[],
        "clock" => &["hw"],
        "console" => &["hw", "clock"],
        "vcpus" => &["hw", "clock"],
        "platform" => &["hw", "clock", "console", "vcpus"],
        _ => &["hw", "clock", "console", "vcpus", "platform", "kernel"],
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of shim/src belongs to (None: the host library).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
    if first == "main" {
        return Some("entry".into());
    }
    LAYERS.contains(&first.as_str()).then_some(first)
}

/// The top-level modules named as `crate::X` in `text`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        if text[..i].ends_with(char::is_alphanumeric) || text[..i].ends_with('_') {
            continue; // xshim_shim::... or another crate's path
        }
        let rest = &text[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
        // `use crate::{a, b::c}`
        if let Some(list) = rest.strip_prefix('{') {
            for part in list.split('}').next().unwrap_or("").split(',') {
                let n: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

#[test]
fn shim_layers_import_only_downwards_and_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shim/src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let refs = crate_refs(&text);
        match module_of(&src, f) {
            Some(from) => {
                for to in refs.iter().filter(|r| LAYERS.contains(&r.as_str()) && **r != from) {
                    if !allowed(&from).contains(&to.as_str()) {
                        violations.push(format!("{} ({from}) imports {to}", f.strip_prefix(&src).unwrap().display()));
                    }
                    graph.entry(from.clone()).or_default().insert(to.clone());
                }
            }
            None => {
                // The host library: no bare-metal module may appear.
                for to in refs.iter().filter(|r| LAYERS.contains(&r.as_str())) {
                    violations.push(format!("{} (host library) imports bare-metal {to}", f.strip_prefix(&src).unwrap().display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
    // No cycle: repeatedly remove modules with no outgoing edge inside the graph.
    let mut g = graph.clone();
    loop {
        let leaves: Vec<String> = LAYERS.iter().chain(["entry"].iter()).map(|s| s.to_string()).filter(|m| g.get(m).is_none_or(|e| e.is_empty())).collect();
        let before: usize = g.values().map(|e| e.len()).sum();
        for e in g.values_mut() {
            e.retain(|t| !leaves.contains(t));
        }
        let after: usize = g.values().map(|e| e.len()).sum();
        if after == 0 {
            break;
        }
        assert!(after < before, "import cycle among {:?}", g.iter().filter(|(_, e)| !e.is_empty()).map(|(k, _)| k).collect::<Vec<_>>());
    }
    let edges: Vec<String> = graph.iter().map(|(k, v)| format!("{k} -> {}", v.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
    println!("checked: {} files; {}; no cycle", all.len(), edges.join("; "));
}

#[test]
fn the_checker_sees_a_violation() {
    let refs = crate_refs("use crate::{console, hw::cpu};\nfn f() { crate::kernel::fatal::crash(\"x\") }\nuse xshim_shim::crate_like;");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["console", "hw", "kernel"]);
    assert!(!allowed("platform").contains(&"kernel"));
    assert!(allowed("hw").is_empty());
}
