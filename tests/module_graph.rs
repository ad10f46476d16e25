//! The crate's top-level modules import each other without a circle.
//!
//! Each stage of the data path may use the stages and the leaves below it
//! (`types`, `wire`, `config`, ...), never one above it: a circle means two
//! modules can only be understood, tested and changed together. This test
//! reads every `crate::…` path in `src/` (imports, inline paths, test code;
//! not comments), builds the graph of top-level modules and fails with the
//! circle it finds, naming the file of each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// module → (module it uses → first file that uses it)
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Removes `//` and `/* */` comments and the contents of string literals, so
/// a doc link such as ``[`crate::listen`]`` or a string is no dependency.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            // Skip a plain string literal (escapes included); raw strings
            // holding `crate::` do not occur in this crate.
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\'' (a lifetime has no closing quote).
            let close = if b[i + 1] == b'\\' { i + 3 } else { i + 2 };
            i = close + b[close..].iter().position(|&c| c == b'\'').unwrap_or(0) + 1;
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The first path segment after each `crate::`, including every top-level
/// name of a `crate::{a, b::c, …}` group.
fn used_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `dns64d_crate::` or `my_crate::` is not `crate::`.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            let mut depth = 1;
            let mut segment_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => segment_start = true,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && segment_start {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                    } else if !name.is_empty() {
                        out.push(std::mem::take(&mut name));
                        segment_start = false;
                    }
                }
            }
            if !name.is_empty() {
                out.push(name);
            }
        } else {
            let name: String = trimmed
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The graph of `src/`: `src/a.rs` and `src/a/**.rs` are module `a`;
/// `lib.rs` and `main.rs` (the roots) are left out.
fn graph_of(files: &[(String, String)]) -> Graph {
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let mut g = Graph::new();
    for (module, _) in files {
        g.entry(module.clone()).or_default();
    }
    for (module, file) in files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        for used in used_modules(&strip_comments(&text)) {
            if used != *module && modules.contains(used.as_str()) {
                g.get_mut(module)
                    .expect("every module has an entry")
                    .entry(used)
                    .or_insert_with(|| file.clone());
            }
        }
    }
    g
}

/// One circle of the graph (`a → b → … → a`), if it has any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        g: &Graph,
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::OnPath);
        path.push(node.to_owned());
        for next in g.get(node).into_iter().flat_map(|e| e.keys()) {
            match marks.get(next.as_str()).copied().unwrap_or(Mark::New) {
                Mark::OnPath => {
                    let from = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(g, next, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in g.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(g, node, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn describe(g: &Graph, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|w| format!("{} → {} (in {})", w[0], w[1], g[&w[0]][&w[1]]))
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn src_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").to_owned();
            let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
            let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
            (module != "lib" && module != "main").then(|| (module, p.display().to_string()))
        })
        .collect()
}

#[test]
fn the_top_level_modules_of_src_import_each_other_without_a_circle() {
    let files = src_files();
    assert!(files.len() > 10, "src/ was not found: {files:?}");
    let g = graph_of(&files);
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "import circle between top-level modules:\n  {}\nMove the shared item into a module both can use (e.g. `types`).",
            describe(&g, &cycle)
        );
    }
}

#[test]
fn the_leaf_module_types_imports_nothing_of_the_crate() {
    let g = graph_of(&src_files());
    let uses = g.get("types").expect("src/types.rs exists");
    assert!(uses.is_empty(), "types uses {uses:?}");
}

#[test]
fn a_circle_through_three_modules_is_found() {
    let dir = std::env::temp_dir().join(format!("module_graph_{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let files = vec![
        ("a".to_owned(), write("a.rs", "use crate::b::Thing;\n")),
        ("b".to_owned(), write("b.rs", "fn f() { crate::c::go() }\n")),
        (
            "c".to_owned(),
            write("c.rs", "use crate::{x::{self, Y}, a};\n"),
        ),
        (
            "x".to_owned(),
            write(
                "x.rs",
                "// see [`crate::a`]\nconst S: &str = \"crate::a\";\n",
            ),
        ),
    ];
    let g = graph_of(&files);
    let cycle = find_cycle(&g).expect("a → b → c → a is a circle");
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert_eq!(cycle.first(), cycle.last());
    assert!(
        g["x"].is_empty(),
        "comments and strings are no imports: {:?}",
        g["x"]
    );
    assert_eq!(g["c"].keys().collect::<Vec<_>>(), ["a", "x"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_graph_without_a_circle_passes() {
    let mut g = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("a", "c")] {
        g.entry(from.into())
            .or_default()
            .insert(to.into(), "f.rs".into());
        g.entry(to.into()).or_default();
    }
    assert_eq!(find_cycle(&g), None);
}
