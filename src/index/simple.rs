//! Project pages of the simple repository API: PEP 691 JSON, PEP 503 HTML as fallback, with the
//! PEP 592 (yanked), PEP 658/714 (metadata files) and PEP 700 (size, upload time) fields.

use serde::{Deserialize, Serialize};

/// One file a project page lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute URL, without the fragment.
    pub url: String,
    /// Hex sha256, when the index gives one.
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    pub yanked: bool,
    /// PEP 658: the metadata file exists; the inner value is its sha256 when given.
    pub core_metadata: Option<Option<String>>,
    pub size: Option<u64>,
    /// PEP 700 upload time, seconds since the epoch.
    pub upload_time: Option<i64>,
}

/// A project page: the files of every version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPage {
    pub files: Vec<IndexFile>,
}

/// The `Accept` header of PEP 691: JSON first, HTML as fallback.
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
    application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Yanked,
    core_metadata: Option<MetadataField>,
    dist_info_metadata: Option<MetadataField>,
    size: Option<u64>,
    upload_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Yanked {
    #[default]
    No,
    Flag(bool),
    Reason(#[allow(dead_code)] String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MetadataField {
    Flag(bool),
    Hashes(std::collections::BTreeMap<String, String>),
}

impl MetadataField {
    fn into_option(self) -> Option<Option<String>> {
        match self {
            MetadataField::Flag(false) => None,
            MetadataField::Flag(true) => Some(None),
            MetadataField::Hashes(h) => Some(h.get("sha256").cloned()),
        }
    }
}

/// Parses a PEP 691 JSON project page fetched from `base`.
pub fn parse_json(body: &str, base: &url::Url) -> Result<ProjectPage, String> {
    let page: JsonPage = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut files = Vec::with_capacity(page.files.len());
    for f in page.files {
        let url = base
            .join(&f.url)
            .map_err(|e| format!("file URL `{}`: {e}", f.url))?;
        // PEP 714 renamed `dist-info-metadata` to `core-metadata`; read both.
        let core_metadata = f
            .core_metadata
            .or(f.dist_info_metadata)
            .and_then(MetadataField::into_option);
        let upload_time = match f.upload_time {
            Some(t) => Some(parse_time(&t)?),
            None => None,
        };
        files.push(IndexFile {
            filename: f.filename,
            url: strip_fragment(url),
            sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
            requires_python: f.requires_python.filter(|s| !s.trim().is_empty()),
            yanked: matches!(f.yanked, Yanked::Flag(true) | Yanked::Reason(_)),
            core_metadata,
            size: f.size,
            upload_time,
        });
    }
    Ok(ProjectPage { files })
}

fn parse_time(t: &str) -> Result<i64, String> {
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_second())
        .map_err(|e| format!("upload-time `{t}`: {e}"))
}

fn strip_fragment(mut url: url::Url) -> String {
    url.set_fragment(None);
    url.to_string()
}

/// Parses a PEP 503 HTML project page fetched from `base`.
pub fn parse_html(body: &str, base: &url::Url) -> Result<ProjectPage, String> {
    let mut base = base.clone();
    // PEP 503 pages may set their own base URL.
    if let Some(tag) = tags(body, "base").next()
        && let Some(href) = attr(tag, "href")
        && let Ok(b) = base.join(&href)
    {
        base = b;
    }
    let mut files = Vec::new();
    for (tag, text) in anchors(body) {
        let Some(href) = attr(tag, "href") else {
            continue;
        };
        let url = base
            .join(&href)
            .map_err(|e| format!("link `{href}`: {e}"))?;
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(str::to_string);
        let filename = unescape(text.trim());
        let filename = if filename.is_empty() {
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_default()
        } else {
            filename
        };
        let core_metadata = attr(tag, "data-core-metadata")
            .or_else(|| attr(tag, "data-dist-info-metadata"))
            .and_then(|v| match v.as_str() {
                "false" => None,
                v => Some(v.strip_prefix("sha256=").map(str::to_string)),
            });
        files.push(IndexFile {
            filename,
            url: strip_fragment(url),
            sha256,
            requires_python: attr(tag, "data-requires-python").filter(|s| !s.trim().is_empty()),
            yanked: attr(tag, "data-yanked").is_some(),
            core_metadata,
            size: None,
            upload_time: None,
        });
    }
    Ok(ProjectPage { files })
}

/// Start tags named `name` (the text between `<name` and `>`).
fn tags<'a>(body: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let lower = body.to_ascii_lowercase();
    let open = format!("<{name}");
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open) {
        let at = from + i;
        let after = at + open.len();
        let next = lower.as_bytes().get(after).copied().unwrap_or(b'>');
        if (next.is_ascii_whitespace() || next == b'>' || next == b'/')
            && let Some(end) = lower[after..].find('>')
        {
            starts.push((after, after + end));
        }
        from = after;
    }
    starts.into_iter().map(move |(a, b)| &body[a..b])
}

/// `(attributes, text)` of every `<a ...>text</a>`.
fn anchors(body: &str) -> Vec<(&str, &str)> {
    let lower = body.to_ascii_lowercase();
    let mut out = Vec::new();
    for tag in tags(body, "a") {
        let tag_end = tag.as_ptr() as usize - body.as_ptr() as usize + tag.len() + 1;
        let text_end = lower[tag_end..]
            .find("</a")
            .map(|i| tag_end + i)
            .unwrap_or(tag_end);
        out.push((tag, &body[tag_end.min(text_end)..text_end]));
    }
    out
}

/// The value of an attribute in a start tag, unescaped; `Some("")` for a bare attribute.
fn attr(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        let end = at + name.len();
        from = end;
        let before_ok = at == 0 || bytes[at - 1].is_ascii_whitespace();
        let rest = lower[end..].trim_start();
        let after_ok = rest.is_empty()
            || rest.starts_with('=')
            || rest.starts_with('/')
            || lower
                .as_bytes()
                .get(end)
                .is_some_and(|b| b.is_ascii_whitespace());
        if !before_ok || !after_ok {
            continue;
        }
        let Some(value) = rest.strip_prefix('=') else {
            return Some(String::new());
        };
        let offset = tag.len() - value.len();
        let value = tag[offset..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or(""),
        };
        return Some(unescape(raw));
    }
    None
}

/// Decodes the character references index pages use.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("http://127.0.0.1:1/simple/foo/").unwrap()
    }

    #[test]
    fn json_page() {
        let body = r#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
            {"filename":"foo-1.0-py3-none-any.whl","url":"../../files/foo-1.0-py3-none-any.whl",
             "hashes":{"sha256":"AB"},"requires-python":">=3.8","yanked":"bad",
             "core-metadata":{"sha256":"cd"},"size":12,"upload-time":"2024-01-02T03:04:05Z"},
            {"filename":"foo-0.9.tar.gz","url":"http://x/foo-0.9.tar.gz","hashes":{},
             "dist-info-metadata":true}]}"#;
        let page = parse_json(body, &base()).unwrap();
        let f = &page.files[0];
        assert_eq!(f.url, "http://127.0.0.1:1/files/foo-1.0-py3-none-any.whl");
        assert_eq!(f.sha256.as_deref(), Some("ab"));
        assert!(f.yanked);
        assert_eq!(f.core_metadata, Some(Some("cd".into())));
        assert_eq!(f.upload_time, Some(1704164645));
        assert_eq!(page.files[1].core_metadata, Some(None));
        assert!(parse_json("{\"files\": 3}", &base()).is_err());
    }

    #[test]
    fn html_page() {
        let body = r#"<!DOCTYPE html><html><body>
            <a href="../../files/foo-1.0-py3-none-any.whl#sha256=ab12"
               data-requires-python="&gt;=3.8" data-core-metadata="sha256=ee">foo-1.0-py3-none-any.whl</a>
            <A HREF='/f/foo-0.9-py3-none-any.whl#sha256=cd' data-yanked>foo-0.9-py3-none-any.whl</A>
            </body></html>"#;
        let page = parse_html(body, &base()).unwrap();
        assert_eq!(page.files.len(), 2);
        let f = &page.files[0];
        assert_eq!(f.filename, "foo-1.0-py3-none-any.whl");
        assert_eq!(f.url, "http://127.0.0.1:1/files/foo-1.0-py3-none-any.whl");
        assert_eq!(f.sha256.as_deref(), Some("ab12"));
        assert_eq!(f.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(f.core_metadata, Some(Some("ee".into())));
        assert!(!f.yanked);
        assert!(page.files[1].yanked);
        assert_eq!(
            page.files[1].url,
            "http://127.0.0.1:1/f/foo-0.9-py3-none-any.whl"
        );
    }
}
