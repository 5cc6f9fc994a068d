//! The package index client: PEP 691/503 project pages and PEP 658 metadata, with an on-disk
//! cache, safe to share between threads so metadata can be fetched concurrently.

pub mod metadata;
pub mod simple;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError};
use crate::http::{self, HttpError};
pub use metadata::Metadata;
pub use simple::{IndexFile, ProjectPage};

/// Errors from the package indexes.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "Package `{name}` was not found in any index ({indexes})\n\
         hint: check the spelling, or add the index that serves it to `[[python.indexes]]`"
    )]
    NotFound { name: String, indexes: String },
    #[error(
        "Failed to fetch `{url}`\nhint: check the network and the index URL; \
         the request was retried {attempts} times"
    )]
    Unreachable {
        url: String,
        attempts: u32,
        #[source]
        source: HttpError,
    },
    #[error("The index answered HTTP {status} for `{url}`\nhint: check the index URL")]
    Status { url: String, status: StatusCode },
    #[error(
        "The index sent a malformed answer for `{url}`: {message}\n\
         hint: the index is not a PEP 691 or PEP 503 simple index, or it is broken"
    )]
    Malformed { url: String, message: String },
    #[error("Failed to read the metadata of `{file}`: {message}")]
    Metadata { file: String, message: String },
    #[error("The metadata file `{url}` hashes to sha256 `{actual}`, the index says `{expected}`")]
    MetadataHash {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "The index gives no sha256 for `{file}`\n\
         hint: envbuild pins every file by sha256; use an index that publishes hashes"
    )]
    NoHash { file: String },
    #[error("Failed to download `{file}` to read its metadata")]
    Download {
        file: String,
        #[source]
        source: CacheError,
    },
}

/// A project as served by the first index that has it.
#[derive(Debug, Clone)]
pub struct Project {
    /// Normalized name.
    pub name: String,
    /// The index URL that serves the project.
    pub index: String,
    pub files: Vec<IndexFile>,
}

type Shared<T> = Arc<OnceLock<Result<Arc<T>, Arc<IndexError>>>>;

/// A client for an ordered list of indexes. Each page and metadata file is fetched at most
/// once per client, however many threads ask for it at the same time.
pub struct IndexClient {
    http: Client,
    indexes: Vec<String>,
    store: store::Store,
    cache: Cache,
    projects: Mutex<HashMap<String, Shared<Project>>>,
    metadata: Mutex<HashMap<String, Shared<Metadata>>>,
}

impl IndexClient {
    /// A client over `indexes` (in order), caching under the cache root.
    pub fn new(indexes: Vec<String>, cache: &Cache) -> Result<IndexClient, HttpError> {
        Ok(IndexClient {
            http: http::client()?,
            indexes: indexes
                .into_iter()
                .map(|i| i.trim_end_matches('/').to_string())
                .collect(),
            store: store::Store::new(cache.root().join("index-v1")),
            cache: cache.clone(),
            projects: Mutex::new(HashMap::new()),
            metadata: Mutex::new(HashMap::new()),
        })
    }

    /// The project of a normalized name. The first index that knows the name serves it, and
    /// only it: mixing indexes would let a public name shadow a private one.
    pub fn project(&self, name: &str) -> Result<Arc<Project>, Arc<IndexError>> {
        let cell = shared(&self.projects, name);
        cell.get_or_init(|| self.fetch_project(name).map(Arc::new).map_err(Arc::new))
            .clone()
    }

    fn fetch_project(&self, name: &str) -> Result<Project, IndexError> {
        for index in &self.indexes {
            let url = format!("{index}/{name}/");
            if let Some(page) = self.page(&url)? {
                return Ok(Project {
                    name: name.to_string(),
                    index: index.clone(),
                    files: page.files,
                });
            }
        }
        Err(IndexError::NotFound {
            name: name.to_string(),
            indexes: self
                .indexes
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A project page, `None` when the index does not know the project.
    fn page(&self, url: &str) -> Result<Option<ProjectPage>, IndexError> {
        let cached = self.store.page(url);
        if let Some(c) = &cached
            && c.is_fresh()
        {
            return Ok(Some(c.page.clone()));
        }

        let resp = http::send(url, || {
            let mut req = self.http.get(url).header("Accept", simple::ACCEPT);
            if let Some(c) = &cached {
                if let Some(etag) = &c.etag {
                    req = req.header("If-None-Match", etag);
                }
                if let Some(lm) = &c.last_modified {
                    req = req.header("If-Modified-Since", lm);
                }
            }
            req
        })
        .map_err(|e| unreachable(url, e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == StatusCode::NOT_MODIFIED
            && let Some(mut c) = cached
        {
            c.refresh(resp.headers());
            self.store.put_page(url, &c);
            return Ok(Some(c.page));
        }
        if !status.is_success() {
            return Err(IndexError::Status {
                url: url.to_string(),
                status,
            });
        }

        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        let content_type = header(&headers, "content-type").unwrap_or_default();
        let body = resp.text().map_err(|source| IndexError::Unreachable {
            url: url.to_string(),
            attempts: 1,
            source: HttpError::Unreachable {
                url: url.to_string(),
                attempts: 1,
                source,
            },
        })?;
        // PEP 691: the content type of the answer says which format it is in.
        let parsed = if content_type.contains("json") {
            simple::parse_json(&body, &final_url)
        } else {
            simple::parse_html(&body, &final_url)
        };
        let page = parsed.map_err(|message| IndexError::Malformed {
            url: url.to_string(),
            message,
        })?;
        let entry = store::CachedPage::new(page, &headers);
        self.store.put_page(url, &entry);
        Ok(Some(entry.page))
    }

    /// The core metadata of one wheel: the PEP 658 metadata file when the index has it, else
    /// `METADATA` read out of the downloaded wheel (which then stays in the cache for builds).
    pub fn metadata(&self, file: &IndexFile) -> Result<Arc<Metadata>, Arc<IndexError>> {
        let cell = shared(&self.metadata, &file.url);
        cell.get_or_init(|| self.fetch_metadata(file).map(Arc::new).map_err(Arc::new))
            .clone()
    }

    fn fetch_metadata(&self, file: &IndexFile) -> Result<Metadata, IndexError> {
        let sha256 = file.sha256.as_deref().ok_or_else(|| IndexError::NoHash {
            file: file.filename.clone(),
        })?;
        let text = match self.store.metadata(sha256) {
            Some(text) => text,
            None => {
                let text = match &file.core_metadata {
                    Some(hash) => self.metadata_file(file, hash.as_deref())?,
                    None => self.metadata_from_wheel(file, sha256)?,
                };
                self.store.put_metadata(sha256, &text);
                text
            }
        };
        metadata::parse(&text).map_err(|message| IndexError::Metadata {
            file: file.filename.clone(),
            message,
        })
    }

    fn metadata_file(&self, file: &IndexFile, hash: Option<&str>) -> Result<String, IndexError> {
        // PEP 658: the metadata file lives at the file's URL with `.metadata` appended.
        let url = format!("{}.metadata", file.url);
        let resp = http::get_ok(&self.http, &url).map_err(|e| unreachable(&url, e))?;
        let bytes = resp.bytes().map_err(|source| {
            unreachable(
                &url,
                HttpError::Unreachable {
                    url: url.clone(),
                    attempts: 1,
                    source,
                },
            )
        })?;
        if let Some(expected) = hash {
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(IndexError::MetadataHash {
                    url,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| IndexError::Metadata {
            file: file.filename.clone(),
            message: "the metadata file is not UTF-8".into(),
        })
    }

    fn metadata_from_wheel(&self, file: &IndexFile, sha256: &str) -> Result<String, IndexError> {
        let download = |source| IndexError::Download {
            file: file.filename.clone(),
            source,
        };
        let path = match self.cache.get_verified(sha256).map_err(download)? {
            Some(path) => path,
            None => {
                let mut resp =
                    http::get_ok(&self.http, &file.url).map_err(|e| unreachable(&file.url, e))?;
                self.cache
                    .insert(&file.filename, sha256, &mut resp)
                    .map_err(download)?
            }
        };
        metadata::read_from_wheel(&path).map_err(|message| IndexError::Metadata {
            file: file.filename.clone(),
            message,
        })
    }
}

/// PEP 503 name normalization: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn shared<T>(map: &Mutex<HashMap<String, Shared<T>>>, key: &str) -> Shared<T> {
    // A poisoned lock only means another thread panicked while inserting; the map is intact.
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key.to_string()).or_default().clone()
}

fn unreachable(url: &str, err: HttpError) -> IndexError {
    match err {
        HttpError::Status { url, status } => IndexError::Status { url, status },
        other => IndexError::Unreachable {
            url: url.to_string(),
            attempts: http::ATTEMPTS,
            source: other,
        },
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
