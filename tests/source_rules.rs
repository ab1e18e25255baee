//! Rules about the source itself that the compiler cannot check.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir` (relative to the repository root).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The protocol modules, compiled twice (here and by loom-tests): every file
/// in src/protocol/, and the region abstraction they run on.
fn protocol_files() -> Vec<PathBuf> {
    let mut files = rust_files("src/protocol");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/region.rs"));
    files
}

/// Atomics come from `crate::sync` only, or loom would not see them.
#[test]
fn protocol_uses_atomics_only_through_sync() {
    let files = protocol_files();
    assert!(files.len() >= 9, "{files:?}");
    for path in files {
        let f = path.display();
        let src = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::sync::atomic",
            "core::sync::atomic",
            "portable_atomic",
            "std::hint::spin_loop",
            "std::thread::yield_now",
        ] {
            assert!(!src.contains(banned), "{f} names {banned}: use crate::sync");
        }
    }
}

/// Every `unsafe` block and impl (library, CLI, benchmarks, examples, loom
/// harness) says why it is sound.
#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let dirs = ["src", "bin", "benches", "examples", "loom-tests/src"];
    for path in dirs.iter().flat_map(|d| rust_files(d)) {
        let src = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_unsafe_use =
                (t.contains("unsafe {") || t.starts_with("unsafe impl")) && !t.starts_with("//");
            if !is_unsafe_use {
                continue;
            }
            // Look back over the comment block (and attributes) above it.
            let documented = lines[..i]
                .iter()
                .rev()
                .take_while(|p| {
                    let p = p.trim_start();
                    p.starts_with("//")
                        || p.starts_with("#[")
                        || p.ends_with(':')
                        || p.ends_with("= ")
                })
                .any(|p| p.contains("SAFETY:"))
                || t.contains("SAFETY:");
            assert!(
                documented,
                "{}:{}: unsafe without a // SAFETY: comment",
                path.display(),
                i + 1
            );
        }
    }
}

/// The library's files depend one way: no cycle among the modules their
/// code names (`crate::…` paths and `use super::…`, comments aside; a name
/// the crate root re-exports counts as the module it comes from). The
/// layers are in src/lib.rs.
#[test]
fn library_modules_import_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let module_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        parts.join("::")
    };
    let files: Vec<PathBuf> = rust_files("src");
    let modules: std::collections::BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    // Names the crate root re-exports: `pub use a::b::{X, Y};` and `pub use a::b::X;`.
    let lib = read_to_string(&root.join("lib.rs"));
    let mut reexported = std::collections::HashMap::new();
    for line in lib
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pub use "))
    {
        let body = line["pub use ".len()..].trim_end_matches(';');
        if let Some((path, names)) = body.split_once("::{") {
            for n in names.trim_end_matches('}').split(',') {
                reexported.insert(n.trim().to_owned(), path.to_owned());
            }
        } else if let Some((path, name)) = body.rsplit_once("::") {
            reexported.insert(name.to_owned(), path.to_owned());
        }
    }
    // The longest module that is a prefix of `path`.
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|i| parts[..i].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut deps: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for f in &files {
        let me = module_of(f);
        let parent = me.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        let mut out = std::collections::BTreeSet::new();
        // Whole statements, comments dropped, so that a `use` over several
        // lines and its `{a, b}` groups are seen as one.
        let text: String = read_to_string(f)
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        for code in text.split(';') {
            let mut named: Vec<String> = Vec::new();
            for (i, _) in code.match_indices("crate::") {
                expand_path(&code[i + 7..], "", &mut named);
            }
            if let Some(rest) = code.trim().strip_prefix("use super::") {
                let m: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                named.push(if parent.is_empty() {
                    m
                } else {
                    format!("{parent}::{m}")
                });
            }
            for mut path in named {
                let first = path.split("::").next().unwrap().to_owned();
                if let Some(from) = reexported.get(&first) {
                    path = format!("{from}::{path}");
                }
                if let Some(m) = resolve(&path) {
                    if m != me && m != "lib" {
                        out.insert(m);
                    }
                }
            }
        }
        deps.insert(me, out);
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        deps: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        state: &mut std::collections::HashMap<String, u8>,
        stack: &mut Vec<String>,
    ) {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for d in deps.get(m).into_iter().flatten() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == d).unwrap();
                    panic!("import cycle: {} -> {d}", stack[at..].join(" -> "));
                }
                Some(_) => {}
                None => visit(d, deps, state, stack),
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
    }
    let mut state = std::collections::HashMap::new();
    for m in deps.keys() {
        if !state.contains_key(m.as_str()) {
            visit(m, &deps, &mut state, &mut Vec::new());
        }
    }
    assert!(deps.len() >= 25, "{:?}", deps.keys());
}

/// The paths a `use` tree starting at `code` names, each prefixed with
/// `prefix`: `a::b::{c, d::{e, f}}` gives `a::b::c`, `a::b::d::e` and
/// `a::b::d::f`.
fn expand_path(code: &str, prefix: &str, out: &mut Vec<String>) {
    let path: String = code
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let rest = code[path.len()..].trim_start();
    let full = format!("{prefix}{}", path.trim_end_matches(':'));
    if !path.ends_with("::") || !rest.starts_with('{') {
        out.push(full);
        return;
    }
    // The group's items, split at its top-level commas.
    let (mut depth, mut start) = (0, 1);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                let item = rest[start..i].trim();
                if item == "self" {
                    out.push(full.clone());
                } else if !item.is_empty() {
                    expand_path(item, &format!("{full}::"), out);
                }
                start = i + 1;
                if c == '}' {
                    return;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
}

fn read_to_string(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The x86_64 128-bit CAS swaps the new value's low half into rbx and
/// restores rbx afterwards: any operand left to the compiler's choice may be
/// given rbx (or bl) and be overwritten by the swap or the restore. So the
/// asm block names no compiler-chosen operand but the one swapped with rbx
/// (a success flag in `bl` once made a failed CAS count as done).
#[test]
fn cmpxchg16b_pins_every_operand_but_the_rbx_swap() {
    let src = read_to_string(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sync/atomic128.rs"));
    let start = src
        .find("\"xchg {new_lo}, rbx\"")
        .expect("the cmpxchg16b asm block");
    let block = &src[start..start + src[start..].find(");").unwrap()];
    let templates: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .collect();
    assert!(
        templates.iter().any(|l| l.contains("cmpxchg16b")),
        "{templates:?}"
    );
    for t in &templates {
        let named: Vec<&str> = t.match_indices('{').map(|(i, _)| &t[i..]).collect();
        assert!(
            named.iter().all(|n| n.starts_with("{new_lo}")),
            "compiler-chosen operand in {t:?}: pin it to a register"
        );
    }
    for l in block.lines().map(str::trim) {
        assert!(
            !(l.contains("out(reg") || l.contains("in(reg"))
                || l.starts_with("new_lo = inout(reg)"),
            "compiler-chosen register operand {l:?}"
        );
    }
}
