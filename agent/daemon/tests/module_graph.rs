//! The daemon's modules depend on one another one way only: sources →
//! decider → sinks, with the OS behind `platform` and the configuration
//! assembled at the top. A cycle (two modules each using the other, however
//! far round) fails this test, which names it.
//!
//! Read from the sources (`crate::…` paths, and `super::…` paths that leave
//! a top-level module, outside comments, strings and test code): the
//! compiler allows cycles inside a crate, so nothing else stops one from
//! coming back.

// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module a `crate::` path names: its first segment, or for the
/// crate root's re-exports (`crate::Config`), the module they come from.
fn module_of(segment: &str, reexports: &BTreeMap<String, String>) -> Option<String> {
    if segment.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(segment.to_owned());
    }
    reexports.get(segment).cloned()
}

/// The first path segment of each item of a `crate::{a::X, b, c::{…}}` group.
fn group_heads(group: &str) -> Vec<String> {
    let (mut heads, mut depth, mut item) = (Vec::new(), 0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(std::mem::take(&mut item)),
            _ if depth == 0 => item.push(c),
            _ => {}
        }
    }
    heads.push(item);
    heads
        .iter()
        .filter_map(|item| item.trim().split("::").next().map(str::trim).filter(|s| !s.is_empty()))
        .map(str::to_owned)
        .collect()
}

/// Every first segment of a `crate::` path in `source`.
fn crate_paths(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            found.extend(group_heads(&group[..end]));
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// `source` with its comments and the contents of its string and char
/// literals blanked out: a `crate::` written there is no use of a module.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match chars[i] {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
                out.push(' ');
                continue;
            }
            '"' => {
                out.push('"');
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                out.push('"');
            }
            // A char literal ('"', '\''); a lifetime ('a) is left as it is.
            '\'' if next == Some('\\') => {
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                out.push_str("' '");
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => {
                i += 2;
                out.push_str("' '");
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// `source` with each `super::` path that leaves the top-level module (as
/// many `super::` as the file is deep: one in `decider.rs` or
/// `console/mod.rs`, two in `console/handle.rs`) written as `crate::`.
fn super_as_crate(source: &str, depth: usize) -> String {
    let chain = "super::".repeat(depth);
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find(&chain) {
        let starts_path = !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
        let after = &rest[at + chain.len()..];
        out.push_str(&rest[..at]);
        if starts_path && !after.starts_with("super::") {
            out.push_str("crate::");
        } else {
            out.push_str(&chain);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The source without its unit tests (`#[cfg(test)] mod tests { … }` at the end).
fn without_tests(source: &str) -> &str {
    source.find("#[cfg(test)]\nmod tests {").map_or(source, |at| &source[..at])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// Each top-level module of `src` and the modules it uses.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    // `pub use config::Config;` and the like.
    let reexports: BTreeMap<String, String> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub use ")?.strip_suffix(';'))
        .filter_map(|path| path.split_once("::"))
        .map(|(module, name)| (name.to_owned(), module.to_owned()))
        .collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        // The root wires everything; the test helpers are test code.
        if module == "lib" || module == "testing" {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        // How deep the file's module is: `x.rs` and `x/mod.rs` one, `x/y.rs` two.
        let depth = relative.components().count() - usize::from(relative.ends_with("mod.rs"));
        let code = super_as_crate(&code_only(without_tests(&source)), depth);
        let uses = graph.entry(module.clone()).or_default();
        for segment in crate_paths(&code) {
            if let Some(used) = module_of(&segment, &reexports).filter(|used| *used != module) {
                uses.insert(used);
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one, as the modules round it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut round = path[at..].to_vec();
            round.push(module.to_owned());
            return Some(round);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for used in graph.get(module).into_iter().flatten() {
            if let Some(round) = visit(used, graph, path, done) {
                return Some(round);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_daemon_s_modules_use_one_another_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() >= 15, "the modules were not found: {graph:?}");
    // Edges the design needs, so that a reading that finds none fails.
    for (from, to) in
        [("verdict", "decider"), ("decider", "sink"), ("config", "resolver"), ("fleet", "verdict")]
    {
        assert!(graph[from].contains(to), "{from} → {to} not seen: {graph:#?}");
    }
    if let Some(round) = cycle(&graph) {
        panic!("the modules {} use one another in a cycle; graph: {graph:#?}", round.join(" → "));
    }
}

#[test]
fn the_reading_finds_a_cycle_where_there_is_one() {
    let paths =
        crate_paths("use crate::{decider::{Decider, Point}, platform::X};\nlet c = crate::Config::parse();");
    assert_eq!(paths, ["decider", "platform", "Config"]);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", &["b"][..]), ("b", &["c"][..]), ("c", &["a"][..]), ("d", &[][..])]
            .into_iter()
            .map(|(m, uses)| (m.to_owned(), uses.iter().map(|u| (*u).to_owned()).collect()))
            .collect();
    // Comments and strings are not uses; `super::` out of a top-level
    // module is one.
    let code = code_only(
        "// crate::a::X\nlet s = \"crate::b\"; /* crate::c */ let q = '\"'; let e = '\\''; crate::d::f();",
    );
    assert_eq!(crate_paths(&code), ["d"], "{code}");
    assert_eq!(crate_paths(&super_as_crate("use super::sink::EventSink;", 1)), ["sink"]);
    let nested = "use super::budget::Budget; use super::super::decider::Decider;";
    assert_eq!(crate_paths(&super_as_crate(nested, 2)), ["decider"]);
    let round = cycle(&graph).unwrap();
    assert_eq!(round.first(), round.last());
    assert_eq!(round.len(), 4, "{round:?}");
}
