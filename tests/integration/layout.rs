//! The source's layout, checked: no import circle inside any folder. For each module
//! with children (the crate, `bridge`, `endpoint`, `endpoint::ws`...), its own file and
//! its children are the nodes, and a `use crate::...` or `use super::...` line in one
//! of them (or anywhere below a child) that reaches another is an edge. A circle among
//! them means two rooms that cannot be read one without the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate: `["endpoint", "ws", "frames"]`.
type Module = Vec<String>;

/// Every module of the library, with its file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    let mut todo = vec![(src.to_path_buf(), Vec::new())];
    while let Some((dir, prefix)) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let mut module: Module = prefix.clone();
            if path.is_dir() {
                module.push(name);
                todo.push((path, module));
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") || name == "main" {
                continue;
            }
            if name != "mod" && name != "lib" {
                module.push(name);
            }
            found.insert(module, path);
        }
    }
    found
}

/// The `use` statements of a file's code before its tests, each as one string.
fn uses(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut open: Option<String> = None;
    for line in code.lines() {
        let line = line.trim();
        if let Some(so_far) = &mut open {
            so_far.push_str(line);
        } else if let Some(rest) = line.strip_prefix("use ").or(line.strip_prefix("pub use ")) {
            open = Some(rest.to_string());
        }
        if open.as_ref().is_some_and(|so_far| so_far.ends_with(';')) {
            found.push(open.take().unwrap().trim_end_matches(';').to_string());
        }
    }
    found
}

/// The paths a use tree names: `a::{b, c::{d}}` is `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.replace(' ', "");
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or_default().to_string()];
    };
    let head = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(|part| match part {
            "self" => vec![head.trim_end_matches("::").to_string()],
            part => expand(&format!("{head}{part}")),
        })
        .collect()
}

/// The module a path in `from` reaches: the longest prefix that is a module.
fn target(from: &Module, path: &str, all: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let segments: Vec<&str> = path.split("::").collect();
    let child = |name: &str| [&from[..], &[name.to_string()]].concat();
    let (mut module, rest) = match segments[0] {
        "crate" => (Vec::new(), &segments[1..]),
        "super" => (from[..from.len() - 1].to_vec(), &segments[1..]),
        "self" => (from.clone(), &segments[1..]),
        // A child module named without `self::`; anything else is another crate.
        name if all.contains_key(&child(name)) => (from.clone(), &segments[..]),
        _ => return None,
    };
    for segment in rest {
        if *segment == "super" {
            module.pop();
            continue;
        }
        let deeper = [&module[..], &[segment.to_string()]].concat();
        if !all.contains_key(&deeper) {
            break;
        }
        module = deeper;
    }
    Some(module)
}

/// Which node of `parent`'s level `module` is: the parent itself, or one of its
/// children (for anything below that child).
fn node(parent: &Module, module: &Module) -> Option<Module> {
    if module == parent {
        return Some(module.clone());
    }
    (module.len() > parent.len() && module.starts_with(parent))
        .then(|| module[..=parent.len()].to_vec())
}

/// A circle in `edges`, if any, as the nodes along it.
fn circle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        at: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|m| m == at) {
            return Some(path[i..].to_vec());
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_folder_has_an_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all = modules(&src);
    let mut reaches: Vec<(Module, Module)> = Vec::new();
    for (module, file) in &all {
        let text = std::fs::read_to_string(file).unwrap();
        for tree in uses(&text) {
            for path in expand(&tree) {
                if let Some(to) = target(module, &path, &all)
                    && to != *module
                {
                    reaches.push((module.clone(), to));
                }
            }
        }
    }
    let parents: BTreeSet<Module> = all
        .keys()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    let mut circles = Vec::new();
    for parent in &parents {
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, to) in &reaches {
            if let (Some(a), Some(b)) = (node(parent, from), node(parent, to))
                && a != b
            {
                edges.entry(a).or_default().insert(b);
            }
        }
        if let Some(found) = circle(&edges) {
            let names: Vec<String> = found
                .iter()
                .map(|m| format!("crate::{}", m.join("::")))
                .collect();
            circles.push(names.join(" -> "));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn use_trees_expand() {
    assert_eq!(
        expand("super::{a, b::{c, d}, self}"),
        ["super::a", "super::b::c", "super::b::d", "super"]
    );
}
