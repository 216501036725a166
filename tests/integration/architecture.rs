//! The server's layers, read from its source: which top-level module of
//! `server/src` uses which (every `crate::…` path, and `protokoll::…` in
//! the binary), checked against the table in `docs/architecture.md`. A
//! module may use the modules of its own layer and of the layers below it,
//! never one above, and no two modules may use each other, even through
//! others. Each file also opens with a comment that says its job and stays
//! a size one reader can hold.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The layers, from the top (callers) to the bottom (what everything uses);
/// the same table as `docs/architecture.md`. A new top-level module must be
/// placed here, or this test fails.
const LAYERS: &[(&str, &[&str])] = &[
    ("entry", &["main", "cli", "demo", "lib"]),
    ("http", &["http"]),
    ("services", &["meetings", "finalise"]),
    ("live connections", &["live"]),
    ("live sync", &["sync"]),
    ("cluster", &["cluster"]),
    ("guard", &["guard"]),
    ("sign-in", &["auth"]),
    ("storage", &["store"]),
    (
        "foundations",
        &[
            "meeting",
            "people",
            "document",
            "access",
            "secret",
            "config",
            "telemetry",
            "client_addr",
            "secrecy",
        ],
    ),
];

/// Lines a source file may have (a file of tests aside).
const MOST_LINES: usize = 620;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `sync/room/mod.rs` → `sync`,
/// `meeting.rs` → `meeting`, `lib.rs` → `lib`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_str().unwrap().trim_end_matches(".rs").to_string()
}

/// The text without comments and string literals, so that a path named in
/// prose or in a message is not counted as a use.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' or '{' (a lifetime passes through).
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let mut it = rest.chars();
                match (it.next(), it.next(), it.next()) {
                    (Some('\\'), _, _) => {
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                    }
                    (Some(_), Some('\''), _) => {
                        chars.next();
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules named right after each `prefix::` (`crate::` or
/// `protokoll::`), including every name in a `prefix::{a::X, b, …}` group.
fn used_modules(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut at = 0;
    while let Some(i) = code[at..].find(prefix) {
        let start = at + i;
        at = start + prefix.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_first_ident(&item, &mut found);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            push_first_ident(&item, &mut found);
        } else {
            push_first_ident(rest, &mut found);
        }
    }
    found
}

fn push_first_ident(text: &str, found: &mut BTreeSet<String>) {
    let name: String = text
        .trim_start()
        .chars()
        .take_while(|c| is_ident(*c))
        .collect();
    if !name.is_empty() && name != "self" {
        found.insert(name);
    }
}

/// Module → the other top-level modules it uses, with a file that does.
fn module_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // Top-level modules are the files and folders of src/; any other name
    // after `crate::` is an item of lib.rs itself (`crate::run`).
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&root, f)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&root, file);
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let mut used = used_modules(&code, "crate::");
        // The binary reaches the library by its crate name.
        used.extend(used_modules(&code, "protokoll::"));
        let edges = graph.entry(from.clone()).or_default();
        for to in used {
            let to = if modules.contains(&to) {
                to
            } else {
                "lib".to_string()
            };
            if to != from {
                let shown = file.strip_prefix(&root).unwrap().display().to_string();
                edges.entry(to).or_insert(shown);
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_has_a_layer_and_uses_none_above_it() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (from, edges) in &graph {
        let Some(own) = layer_of(from) else {
            wrong.push(format!("module `{from}` is in no layer of LAYERS"));
            continue;
        };
        for (to, file) in edges {
            match layer_of(to) {
                None => wrong.push(format!("{file} uses `{to}`, which is in no layer")),
                Some(other) if other < own => wrong.push(format!(
                    "{file} ({}) uses `{to}` ({}), a layer above it",
                    LAYERS[own].0, LAYERS[other].0
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_use_each_other() {
    let graph = module_graph();
    // Depth-first search for a cycle, reporting the circle it finds.
    fn visit(
        at: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|m| m == at) {
            let mut circle = path[i..].to_vec();
            circle.push(at.to_string());
            return Some(circle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flat_map(|e| e.keys()) {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(circle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            let steps: Vec<String> = circle
                .windows(2)
                .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!("an import circle:\n{}", steps.join("\n"));
        }
    }
}

#[test]
fn every_source_file_opens_with_its_job_and_stays_short() {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.trim_start().starts_with("//!") {
            wrong.push(format!("{shown} does not open with a `//!` comment"));
        }
        let tests = file.file_stem().is_some_and(|s| s == "tests");
        let lines = text.lines().count();
        if !tests && lines > MOST_LINES {
            wrong.push(format!("{shown} has {lines} lines (at most {MOST_LINES})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The checks above must see what they check: the parser finds uses in
/// every form the code writes them.
#[test]
fn the_reader_finds_uses_in_every_form() {
    let code = code_only(
        "use crate::{\n    auth::Key,\n    meeting::{MeetingId, Other},\n    self,\n};\n\
         // crate::http in a comment\n\
         let s = \"crate::cluster in a string\";\n\
         let c = '{';\n\
         fn f() -> crate::store::Seq { crate::sync::x() }\n\
         macro_rules! m { () => { $crate::guard::y() } }\n",
    );
    let used = used_modules(&code, "crate::");
    let expected: BTreeSet<String> = ["auth", "meeting", "store", "sync"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
    let graph = module_graph();
    assert!(graph.contains_key("sync") && graph.contains_key("main"));
    assert!(
        graph["http"].contains_key("sync"),
        "http uses sync: {:?}",
        graph["http"]
    );
}
