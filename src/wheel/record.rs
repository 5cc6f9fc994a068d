//! `RECORD` (PEP 376, PEP 627, and the binary distribution format's "The .dist-info directory"):
//! reading the wheel's and writing the installed one.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One row of a wheel's `RECORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// The hash algorithm and value, e.g. `sha256` and its urlsafe base64; `None` when empty.
    pub hash: Option<(String, String)>,
    pub size: Option<u64>,
}

/// Parses `RECORD` text: CSV rows `path,algorithm=urlsafe-b64,size`. Returns path → row.
pub fn parse(text: &str) -> Result<BTreeMap<String, RecordRow>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(line).map_err(|m| format!("line {}: {m}", n + 1))?;
        let [path, hash, size] = fields.as_slice() else {
            return Err(format!(
                "line {}: expected 3 fields, found {}",
                n + 1,
                fields.len()
            ));
        };
        let hash = if hash.is_empty() {
            None
        } else {
            let (alg, value) = hash
                .split_once('=')
                .ok_or_else(|| format!("line {}: hash `{hash}` has no `=`", n + 1))?;
            Some((alg.to_string(), value.to_string()))
        };
        let size = if size.is_empty() {
            None
        } else {
            Some(
                size.parse()
                    .map_err(|_| format!("line {}: size `{size}` is not a number", n + 1))?,
            )
        };
        out.insert(path.clone(), RecordRow { hash, size });
    }
    Ok(out)
}

/// Decodes a `sha256=` RECORD value into the raw digest.
pub fn decode_sha256(value: &str) -> Option<[u8; 32]> {
    let bytes = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    bytes.try_into().ok()
}

/// The RECORD form of a sha256 digest.
pub fn encode_sha256(digest: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest)
}

/// Writes rows as CSV, sorted by path so the file is the same whatever order files came in.
pub fn write(rows: &BTreeMap<String, Option<(String, u64)>>) -> String {
    let mut out = String::new();
    for (path, row) in rows {
        out.push_str(&quote(path));
        match row {
            Some((hash, size)) => out.push_str(&format!(",sha256={hash},{size}\n")),
            None => out.push_str(",,\n"),
        }
    }
    out
}

/// CSV quoting as Python's `csv` module does it: only fields with `,`, `"` or line breaks.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(cur);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_rows_and_round_trips() {
        let text = "a/b.py,sha256=AAAA,3\n\"we,ird.py\",sha256=BBBB,4\npkg.dist-info/RECORD,,\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows["a/b.py"].size, Some(3));
        assert!(rows.contains_key("pkg.dist-info/RECORD"));
        let mut out = BTreeMap::new();
        out.insert("x,y".to_string(), Some(("h".to_string(), 1)));
        out.insert("R".to_string(), None);
        assert_eq!(write(&out), "R,,\n\"x,y\",sha256=h,1\n");
        assert!(parse("a,b\n").is_err());
    }
}
