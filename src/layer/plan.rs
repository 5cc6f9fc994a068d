//! The entry rules: what makes a list of entries, in any order, one exact sequence of tar
//! members.

use std::collections::BTreeMap;

use super::{Entry, EntryKind, LayerError};

/// Validates and normalizes the entries, adds missing parents and returns them in tar order.
pub(crate) fn plan(entries: Vec<Entry>) -> Result<Vec<Entry>, LayerError> {
    // Trap: the caller's order depends on hash maps, thread timing and directory listings. A
    // BTreeMap keyed by the path string orders by path bytes, and a parent's path is a prefix
    // of its children's, so parents come first.
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in entries {
        let entry = normalize(entry)?;
        match by_path.get(&entry.path) {
            None => {
                by_path.insert(entry.path.clone(), entry);
            }
            // Two producers may both ask for `opt/venv/lib`: the same directory, merged.
            Some(seen) if seen.kind == EntryKind::Dir && entry.kind == EntryKind::Dir => {}
            // Anything else would make the result depend on which one came last.
            Some(_) => return Err(LayerError::Duplicate { path: entry.path }),
        }
    }

    // Trap: a tar without entries for parent folders is unpacked with whatever mode and
    // owner the unpacker picks. Every parent gets an explicit 0755 entry.
    // Not checked here: a parent that is a symbolic link in the base image (`lib` →
    // `usr/lib` on merged-/usr systems) would be replaced by this directory when the layer
    // is applied, so producers must name real paths (`usr/lib/...`).
    let mut missing = Vec::new();
    for path in by_path.keys() {
        for parent in ancestors(path) {
            match by_path.get(parent) {
                Some(e) if e.kind != EntryKind::Dir => {
                    return Err(LayerError::ParentNotDir {
                        path: path.clone(),
                        parent: parent.to_string(),
                    });
                }
                Some(_) => {}
                None => missing.push(parent.to_string()),
            }
        }
    }
    for parent in missing {
        by_path
            .entry(parent.clone())
            .or_insert_with(|| Entry::dir(parent));
    }

    Ok(by_path.into_values().collect())
}

/// The proper ancestors of a normalized path, nearest first (`a/b/c` → `a/b`, `a`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .rev()
        .filter(|&(_, c)| c == '/')
        .map(move |(i, _)| &path[..i])
}

/// Checks one entry and puts its path and mode in canonical form.
fn normalize(entry: Entry) -> Result<Entry, LayerError> {
    let path = normalize_path(&entry.path)?;

    // Trap: modes from archives carry setuid/setgid/sticky bits and the umask of whoever made
    // them; only "executable or not" survives.
    let mode = match &entry.kind {
        EntryKind::Dir => 0o755,
        EntryKind::File { .. } if entry.mode & 0o111 != 0 => 0o755,
        EntryKind::File { .. } => 0o644,
        EntryKind::Symlink { .. } => 0o777,
    };

    if let EntryKind::Symlink { target } = &entry.kind {
        check_link_target(&path, target)?;
    }

    Ok(Entry {
        path,
        mode,
        kind: entry.kind,
    })
}

/// `a//b/./c/` → `a/b/c`; refuses absolute paths, `..`, NUL and the root itself.
fn normalize_path(raw: &str) -> Result<String, LayerError> {
    let bad = |reason| LayerError::BadPath {
        path: raw.to_string(),
        reason,
    };
    if raw.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    // Trap: `/etc/passwd` in a layer is unpacked by some tools relative to the root of the
    // host, and a leading `./` makes the same file a different tar name.
    if raw.starts_with('/') {
        return Err(bad("it is absolute"));
    }

    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it contains a `..` component")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("it names the image root"));
    }
    Ok(parts.join("/"))
}

/// Refuses link targets that leave the image root when resolved from the link's folder.
/// Absolute targets are resolved by the runtime inside the image, so they are fine.
fn check_link_target(path: &str, target: &str) -> Result<(), LayerError> {
    let bad = |reason| LayerError::BadPath {
        path: path.to_string(),
        reason,
    };
    if target.is_empty() {
        return Err(bad("its link target is empty"));
    }
    if target.contains('\0') {
        return Err(bad("its link target contains a NUL byte"));
    }
    if target.starts_with('/') {
        return Ok(());
    }

    // Depth of the link's folder below the root: `a/b/link` lives at depth 2.
    let mut depth = path.matches('/').count();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => {
                return Err(LayerError::EscapingSymlink {
                    path: path.to_string(),
                    target: target.to_string(),
                });
            }
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize_path("a//b/./c/").unwrap(), "a/b/c");
        assert!(normalize_path("/etc").is_err());
        assert!(normalize_path("a/../b").is_err());
        assert!(normalize_path("./").is_err());
        assert!(normalize_path("a\0b").is_err());
    }

    #[test]
    fn checks_link_targets() {
        assert!(check_link_target("a/b/l", "../../x").is_ok());
        assert!(check_link_target("a/b/l", "../../../x").is_err());
        assert!(check_link_target("l", "../x").is_err());
        assert!(check_link_target("l", "/usr/bin/python3").is_ok());
        assert!(check_link_target("a/l", "x/../../y").is_ok());
        assert!(check_link_target("a/l", "x/../../../y").is_err());
    }

    #[test]
    fn adds_parents_and_sorts() {
        let got = plan(vec![
            Entry::bytes("a/b/c", 0o4755, "x"),
            Entry::bytes("a-b", 0o600, "y"),
            Entry::dir("a"),
            Entry::dir("a/"),
        ])
        .unwrap();
        let paths: Vec<_> = got.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(
            paths,
            [
                ("a", 0o755),
                ("a-b", 0o644),
                ("a/b", 0o755),
                ("a/b/c", 0o755)
            ]
        );
    }

    #[test]
    fn refuses_duplicates_and_files_as_parents() {
        let dup = plan(vec![
            Entry::bytes("x", 0o644, "1"),
            Entry::bytes("x", 0o644, "1"),
        ]);
        assert!(matches!(dup, Err(LayerError::Duplicate { path }) if path == "x"));
        let through = plan(vec![Entry::symlink("lib", "lib64"), Entry::dir("lib/x")]);
        assert!(matches!(through, Err(LayerError::ParentNotDir { .. })));
    }
}
