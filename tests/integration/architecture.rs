//! The crate's imports point one way: each top-level module imports only modules below it in
//! [`LAYERS`], and sibling files of a folder import each other without a cycle. Read from the
//! source: every `crate::`, `super::` and `self::` path outside comments, `use` trees expanded.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The top-level modules, bottom first. A module may import any module on an earlier line; the
/// modules of one line import none of each other.
const LAYERS: &[&[&str]] = &[
    &["mask", "sync", "metrics", "query"],
    &["ids"],
    &["config"],
    &["store"],
    &["error"],
    &["client"],
    &["delivery"],
    &["visitor"],
    &["extract"],
    &["layer"],
    &["sandbox", "console"],
];

/// A module's path inside the crate, e.g. `["store", "redis"]`.
type ModulePath = Vec<String>;

#[test]
fn top_level_modules_import_only_the_layers_below() {
    let graph = Graph::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let rank = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    let mut wrong = Vec::new();
    for (from, to) in graph.edges() {
        let (Some(from_top), Some(to_top)) = (from.first(), to.first()) else { continue };
        if from_top == to_top {
            continue;
        }
        match (rank(from_top), rank(to_top)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) | (_, None) => wrong.push(format!("{from_top} or {to_top} is missing from LAYERS")),
            _ => wrong.push(format!("{} imports {}", from.join("::"), to.join("::"))),
        }
    }
    assert!(wrong.is_empty(), "imports that point up or sideways:\n{}", wrong.join("\n"));
}

#[test]
fn sibling_files_import_each_other_without_a_cycle() {
    let graph = Graph::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // Edges between siblings: files with the same parent module, neither the parent itself.
    let mut siblings: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for (from, to) in graph.edges() {
        if from.len() == to.len() && from.len() > 1 && from[..from.len() - 1] == to[..to.len() - 1] {
            siblings.entry(from.clone()).or_default().insert(to.clone());
        }
    }
    // Top-level modules are siblings too.
    for (from, to) in graph.edges() {
        if let (Some(a), Some(b)) = (from.first(), to.first()) {
            if a != b {
                siblings.entry(vec![a.clone()]).or_default().insert(vec![b.clone()]);
            }
        }
    }
    if let Some(cycle) = find_cycle(&siblings) {
        let shown: Vec<String> = cycle.iter().map(|module| module.join("::")).collect();
        panic!("a cycle of imports: {}", shown.join(" -> "));
    }
}

/// The crate's files and the modules each one imports from.
struct Graph {
    imports: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let files = rust_files(src);
        let modules: BTreeMap<ModulePath, PathBuf> =
            files.iter().map(|file| (module_path(src, file), file.clone())).collect();
        let mut imports = BTreeMap::new();
        for (module, file) in &modules {
            let text = without_comments(&fs::read_to_string(file).expect("a source file"));
            let mut targets = BTreeSet::new();
            for path in paths(&text) {
                if let Some(target) = resolve(module, &path, &modules) {
                    if &target != module && !target.is_empty() {
                        targets.insert(target);
                    }
                }
            }
            imports.insert(module.clone(), targets);
        }
        Self { imports }
    }

    fn edges(&self) -> impl Iterator<Item = (&ModulePath, &ModulePath)> {
        self.imports.iter().flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// `src/store/redis/mod.rs` → `store::redis`; `src/lib.rs` → the root.
fn module_path(src: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> =
        relative.with_extension("").iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text with `//` comments (doc comments included) and string literals blanked out.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let code = line.find("//").map_or(line, |at| &line[..at]);
            if code.contains('"') {
                code.split('"').step_by(2).collect::<Vec<_>>().join("\"\"")
            } else {
                code.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts with `crate`, `super` or `self`, `use` trees expanded, as segments.
fn paths(text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let starts_word = at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':');
        let rest = &bytes[at..];
        let head =
            ["crate::", "super::", "self::"].into_iter().find(|head| rest.starts_with(head.as_bytes()));
        if let (true, Some(head)) = (starts_word, head) {
            let mut tree = Vec::new();
            let end = use_tree(text, at + head.len(), vec![head.trim_end_matches(':').to_owned()], &mut tree);
            found.extend(tree);
            at = end.max(at + 1);
        } else {
            at += 1;
        }
    }
    found
}

/// Reads the rest of a path (or a `{…}` group of them) from `at`, after `prefix`; returns where
/// it ends.
fn use_tree(text: &str, mut at: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let bytes = text.as_bytes();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
                if !(bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_' || bytes[at] == b'{') {
                    // A glob or a punctuation mark: no path starts here.
                    at += 1;
                    continue;
                }
                at = use_tree(text, at, prefix.clone(), out);
            }
        }
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            at += 1;
        }
        if start == at {
            out.push(prefix);
            return at;
        }
        prefix.push(text[start..at].to_owned());
        if bytes[at..].starts_with(b"::") {
            at += 2;
        } else {
            out.push(prefix);
            return at;
        }
    }
}

/// The deepest module of the crate that `path`, read inside `module`, names.
fn resolve(
    module: &ModulePath,
    path: &[String],
    modules: &BTreeMap<ModulePath, PathBuf>,
) -> Option<ModulePath> {
    let mut base = module.clone();
    let mut segments = path.iter().peekable();
    match segments.next()?.as_str() {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop();
            while segments.peek().is_some_and(|segment| *segment == "super") {
                segments.next();
                base.pop();
            }
        }
        _ => return None,
    }
    let mut deepest = base.clone();
    for segment in segments {
        base.push(segment.clone());
        if modules.contains_key(&base) {
            deepest = base.clone();
        } else {
            break;
        }
    }
    Some(deepest)
}

/// A cycle in `graph`, if it has one, as the modules along it.
fn find_cycle(graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Option<Vec<ModulePath>> {
    fn visit(
        node: &ModulePath,
        graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        done: &mut BTreeSet<ModulePath>,
        stack: &mut Vec<ModulePath>,
    ) -> Option<Vec<ModulePath>> {
        if let Some(at) = stack.iter().position(|on| on == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_reader_finds_use_trees_and_ignores_comments() {
    let text = without_comments(
        "use crate::{a::b, c::{d, e::F}, g::*};\n// use crate::hidden;\nlet x = super::g::h(); \"crate::s\"",
    );
    let found: Vec<String> = paths(&text).into_iter().map(|path| path.join("::")).collect();
    assert_eq!(found, ["crate::a::b", "crate::c::d", "crate::c::e::F", "crate::g", "super::g::h"]);
    let cycle = find_cycle(&BTreeMap::from([
        (vec!["a".to_owned()], BTreeSet::from([vec!["b".to_owned()]])),
        (vec!["b".to_owned()], BTreeSet::from([vec!["a".to_owned()]])),
    ]));
    assert!(cycle.is_some());
}
