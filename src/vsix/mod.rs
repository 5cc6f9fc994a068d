//! VS Code extensions: resolved to exact, hash-pinned VSIX files at lock time, unpacked into
//! an extensions directory outside `$HOME` at build time.
//!
//! An extension comes from an Open VSX compatible gallery ([`gallery`]), from a URL with a
//! sha256 given in the spec, or from a local `.vsix` file. Every VSIX is downloaded at lock
//! time, checked against its sha256 and kept in the cache, so a build after a lock needs no
//! network for it.

mod gallery;
mod ide;
mod install;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use reqwest::blocking::Client;
use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError};
use crate::http::{self, HttpError};
use crate::lock::{ExtensionArtifact, ExtensionLock};
use crate::platform::Platform;
use crate::spec::{DEFAULT_GALLERY, ExtensionSpec, VscodeSpec};

pub use ide::{
    DEFAULT_DATA_DIR, DEFAULT_EXTENSIONS_DIR, Flavour, data_dir, extensions_dir, ide_env,
    settings_entry, settings_path,
};
pub use install::{extension_entries, extensions_json, folder_name};

/// Errors met while locking or installing VS Code extensions.
#[derive(Debug, thiserror::Error)]
pub enum VsixError {
    #[error(
        "Invalid extension `{id}`: {message}\n\
         hint: write `publisher.name`, `publisher.name@version`, or a table with `id` and one \
         of `url` + `sha256` or `path`"
    )]
    InvalidSpec { id: String, message: String },
    #[error(
        "Unknown VS Code flavour `{0}`\n\
         hint: use one of `code-server`, `openvscode-server`, `vscode-server`"
    )]
    UnknownFlavour(String),
    #[error("Invalid gallery URL `{url}`: {message}")]
    GalleryUrl { url: String, message: String },
    #[error(
        "Extension `{id}` is not in the gallery `{gallery}`\n\
         hint: check the id (`publisher.name`) on the gallery's web site"
    )]
    UnknownExtension { id: String, gallery: String },
    #[error("Extension `{id}` has no version `{version}` in the gallery; it has {available}")]
    VersionNotFound {
        id: String,
        version: String,
        available: String,
    },
    #[error(
        "Extension `{id}` {version} has no build for `{platform}` and no universal one; \
         it has builds for {available}\n\
         hint: pin a version that has one, or drop `{platform}` from the platforms"
    )]
    NoBuild {
        id: String,
        version: String,
        platform: Platform,
        available: String,
    },
    #[error(
        "Hash mismatch for extension `{id}` from `{url}`: expected sha256 `{expected}`, the \
         bytes are `{actual}`\n\
         hint: the file changed upstream or in transit; nothing was kept in the cache"
    )]
    HashMismatch {
        id: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error("Malformed gallery answer for extension `{id}` at `{url}`: {message}")]
    Malformed {
        id: String,
        url: String,
        message: String,
    },
    #[error("Failed to ask the gallery about extension `{id}`")]
    Http {
        id: String,
        #[source]
        source: HttpError,
    },
    #[error("Failed to download extension `{id}` from `{url}`")]
    Download {
        id: String,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("VSIX `{vsix}` does not match the spec: {message}")]
    Mismatch { vsix: String, message: String },
    #[error("Invalid VSIX `{path}`: {message}")]
    BadVsix { path: PathBuf, message: String },
    #[error(
        "Unsafe entry `{entry}` in the VSIX of extension `{id}` (`{path}`): {reason}\n\
         hint: the archive is refused as a whole; report it to the extension's publisher"
    )]
    UnsafeEntry {
        id: String,
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("Invalid `[vscode]` setting `{key}`: {message}\nhint: write it as a string or drop it")]
    Setting { key: String, message: String },
    #[error("I/O failed at `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Client(HttpError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// An extension the spec asks for.
#[derive(Debug, Clone)]
pub(crate) struct ExtRequest {
    pub publisher: String,
    pub name: String,
    pub version: Option<String>,
    pub origin: Origin,
}

/// Where the VSIX of a requested extension comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Gallery,
    Url { url: String, sha256: String },
    Local(String),
}

impl ExtRequest {
    /// `publisher.name`, lower case, as the lock and VS Code name it.
    pub fn id(&self) -> String {
        format!("{}.{}", self.publisher, self.name).to_ascii_lowercase()
    }

    fn from_spec(spec: &ExtensionSpec) -> Result<ExtRequest, VsixError> {
        let (id, version, origin) = match spec {
            ExtensionSpec::Id(text) => match text.split_once('@') {
                Some((id, v)) => (id, Some(v.to_string()), Origin::Gallery),
                None => (text.as_str(), None, Origin::Gallery),
            },
            ExtensionSpec::Detailed(d) => {
                let invalid = |message: &str| VsixError::InvalidSpec {
                    id: d.id.clone(),
                    message: message.to_string(),
                };
                let origin = match (&d.url, &d.sha256, &d.path) {
                    (None, None, None) => Origin::Gallery,
                    (Some(url), Some(sha), None) => Origin::Url {
                        url: url.clone(),
                        sha256: normalize_sha256(sha)
                            .ok_or_else(|| invalid("`sha256` is not 64 hex digits"))?,
                    },
                    (Some(_), None, None) => return Err(invalid("`url` needs a `sha256`")),
                    (None, None, Some(path)) => Origin::Local(path.clone()),
                    _ => return Err(invalid("give either `url` with `sha256`, or `path`")),
                };
                (d.id.as_str(), d.version.clone(), origin)
            }
        };
        let invalid = |message: &str| VsixError::InvalidSpec {
            id: id.to_string(),
            message: message.to_string(),
        };
        let (publisher, name) = id
            .split_once('.')
            .ok_or_else(|| invalid("the id is not `publisher.name`"))?;
        let part_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '$' | '~'))
        };
        if !part_ok(publisher) || !part_ok(name) {
            return Err(invalid("the id is not `publisher.name`"));
        }
        if version
            .as_deref()
            .is_some_and(|v| !part_ok(&v.replace('.', "")))
        {
            return Err(invalid(
                "the version is not a plain version such as `1.2.3`",
            ));
        }
        Ok(ExtRequest {
            publisher: publisher.to_string(),
            name: name.to_string(),
            version,
            origin,
        })
    }
}

/// Resolves every extension of the spec for every platform, downloading each VSIX once into
/// the cache (sha256 checked), and returns the lock entries sorted by id.
pub fn lock_extensions(
    spec: &VscodeSpec,
    spec_dir: &Path,
    platforms: &[Platform],
    targets: &[String],
    cache: &Cache,
) -> Result<Vec<ExtensionLock>, VsixError> {
    Flavour::of(spec)?;
    let client = http::client().map_err(VsixError::Client)?;
    let mut platforms = platforms.to_vec();
    platforms.sort();
    platforms.dedup();
    let mut targets = targets.to_vec();
    targets.sort();
    targets.dedup();

    let mut seen = BTreeSet::new();
    let mut locks = Vec::new();
    for ext in &spec.extensions {
        let req = ExtRequest::from_spec(ext)?;
        if !seen.insert(req.id()) {
            return Err(VsixError::InvalidSpec {
                id: req.id(),
                message: "it is listed twice".to_string(),
            });
        }
        let (version, artifacts) = match &req.origin {
            Origin::Gallery => {
                let base = spec.gallery.as_deref().unwrap_or(DEFAULT_GALLERY);
                lock_gallery(&req, base, &platforms, &client, cache)?
            }
            Origin::Url { url, sha256 } => {
                let path = download(&req.id(), url, Some(sha256), &client, cache)?;
                lock_file(&req, &path, url, sha256, &platforms)?
            }
            Origin::Local(rel) => {
                let source = spec_dir.join(rel);
                let sha256 =
                    crate::cache::sha256_file(&source).map_err(|source_err| VsixError::Io {
                        path: source.clone(),
                        source: source_err,
                    })?;
                let path = cache.insert_file(&source, &sha256)?;
                lock_file(&req, &path, &local_url(spec_dir, rel), &sha256, &platforms)?
            }
        };
        let lock = ExtensionLock {
            id: req.id(),
            version,
            targets: targets.clone(),
            artifacts,
        };
        // An archive the build would refuse is refused now, before it enters a lock.
        for artifact in &lock.artifacts {
            let path = cache.path_for(&artifact.sha256);
            extension_entries(&lock, artifact, &path, DEFAULT_EXTENSIONS_DIR)?;
        }
        locks.push(lock);
    }
    locks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(locks)
}

/// The spec with every unpinned gallery extension pinned to its version in `previous`, except
/// those `upgrade` names (by lower-case id): re-locking keeps versions unless asked not to.
pub fn keep_locked_versions(
    spec: &VscodeSpec,
    previous: &[ExtensionLock],
    upgrade: impl Fn(&str) -> bool,
) -> VscodeSpec {
    let locked = |id: &str| {
        let id = id.to_ascii_lowercase();
        if upgrade(&id) {
            return None;
        }
        previous
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.version.clone())
    };
    let mut out = spec.clone();
    for ext in &mut out.extensions {
        match ext {
            ExtensionSpec::Id(text) if !text.contains('@') => {
                if let Some(version) = locked(text) {
                    *text = format!("{text}@{version}");
                }
            }
            ExtensionSpec::Detailed(d)
                if d.version.is_none() && d.url.is_none() && d.path.is_none() =>
            {
                d.version = locked(&d.id);
            }
            _ => {}
        }
    }
    out
}

/// Resolves a gallery extension: one version, one artifact per distinct build.
fn lock_gallery(
    req: &ExtRequest,
    base: &str,
    platforms: &[Platform],
    client: &Client,
    cache: &Cache,
) -> Result<(String, Vec<ExtensionArtifact>), VsixError> {
    let gallery = gallery::Gallery::new(base, client)?;
    let (version, builds) = gallery.resolve(req, platforms)?;
    let mut grouped: BTreeMap<gallery::GalleryBuild, Vec<Platform>> = BTreeMap::new();
    for (platform, build) in builds {
        grouped.entry(build).or_default().push(platform);
    }

    let mut artifacts = Vec::new();
    for (build, platforms) in grouped {
        let expected = match &build.sha256_url {
            Some(url) => gallery.sha256(req, url)?,
            None => None,
        };
        let path = download(
            &req.id(),
            &build.download,
            expected.as_deref(),
            client,
            cache,
        )?;
        let sha256 = match expected {
            Some(sha) => sha,
            None => crate::cache::sha256_file(&path).map_err(|source| VsixError::Io {
                path: path.clone(),
                source,
            })?,
        };
        let identity = install::read_identity(&path)?;
        check_identity(req, &identity, &version, &build.download)?;
        artifacts.push(ExtensionArtifact {
            platforms,
            target_platform: build.target_platform,
            url: build.download,
            sha256,
            size: file_size(&path)?,
        });
    }
    artifacts.sort_by(|a, b| a.platforms.cmp(&b.platforms));
    Ok((version, artifacts))
}

/// The lock entry of a VSIX named directly (URL or local file): its own manifest says the
/// version and target platform.
fn lock_file(
    req: &ExtRequest,
    path: &Path,
    url: &str,
    sha256: &str,
    platforms: &[Platform],
) -> Result<(String, Vec<ExtensionArtifact>), VsixError> {
    let identity = install::read_identity(path)?;
    let version = req
        .version
        .clone()
        .unwrap_or_else(|| identity.version.clone());
    check_identity(req, &identity, &version, url)?;
    let target_platform = identity
        .target_platform
        .clone()
        .unwrap_or_else(|| "universal".to_string());
    if target_platform != "universal"
        && let Some(&platform) = platforms
            .iter()
            .find(|p| p.vscode_target() != target_platform)
    {
        return Err(VsixError::NoBuild {
            id: req.id(),
            version,
            platform,
            available: format!("`{target_platform}` only"),
        });
    }
    let artifact = ExtensionArtifact {
        platforms: platforms.to_vec(),
        target_platform,
        url: url.to_string(),
        sha256: sha256.to_string(),
        size: file_size(path)?,
    };
    Ok((version, vec![artifact]))
}

/// The VSIX must be the extension and version the lock will name.
fn check_identity(
    req: &ExtRequest,
    identity: &install::VsixIdentity,
    version: &str,
    vsix: &str,
) -> Result<(), VsixError> {
    let mismatch = |message: String| VsixError::Mismatch {
        vsix: vsix.to_string(),
        message,
    };
    if identity.id() != req.id() {
        return Err(mismatch(format!(
            "it is extension `{}`, the spec names `{}`",
            identity.id(),
            req.id()
        )));
    }
    if identity.version != version {
        return Err(mismatch(format!(
            "it is version `{}` of `{}`, expected `{version}`",
            identity.version,
            req.id()
        )));
    }
    Ok(())
}

/// Ensures the VSIX of an artifact is in the cache (sha256 verified) and returns its path.
pub fn fetch_artifact(
    artifact: &ExtensionArtifact,
    spec_dir: &Path,
    cache: &Cache,
) -> Result<PathBuf, VsixError> {
    if let Some(path) = fetch_local(artifact, spec_dir, cache)? {
        return Ok(path);
    }
    let download_err = |source: HttpError| CacheError::Download {
        what: artifact.url.clone(),
        source: Box::new(source),
    };
    let client = http::client().map_err(download_err)?;
    let mut resp = http::get_ok(&client, &artifact.url).map_err(download_err)?;
    Ok(cache.insert(&artifact.url, &artifact.sha256, &mut resp)?)
}

/// Like [`fetch_artifact`] without the network: a VSIX that is neither cached nor a local
/// file is a `Missing` cache error.
pub fn fetch_artifact_offline(
    artifact: &ExtensionArtifact,
    spec_dir: &Path,
    cache: &Cache,
) -> Result<PathBuf, VsixError> {
    match fetch_local(artifact, spec_dir, cache)? {
        Some(path) => Ok(path),
        None => Err(VsixError::Cache(CacheError::Missing {
            what: artifact.url.clone(),
            sha256: artifact.sha256.clone(),
            cache: cache.root().to_path_buf(),
        })),
    }
}

/// The artifact from the cache, or copied in from a local file; `None` when it must be
/// downloaded.
fn fetch_local(
    artifact: &ExtensionArtifact,
    spec_dir: &Path,
    cache: &Cache,
) -> Result<Option<PathBuf>, VsixError> {
    if let Some(path) = cache.get_verified(&artifact.sha256)? {
        return Ok(Some(path));
    }
    match artifact.url.strip_prefix("file:") {
        Some(rel) => Ok(Some(
            cache.insert_file(&spec_dir.join(rel), &artifact.sha256)?,
        )),
        None => Ok(None),
    }
}

/// Downloads `url` into the cache. With an expected hash the bytes must match it; without
/// one they are hashed on the way, and the hash becomes the cache key.
fn download(
    id: &str,
    url: &str,
    expected: Option<&str>,
    client: &Client,
    cache: &Cache,
) -> Result<PathBuf, VsixError> {
    if let Some(sha) = expected
        && let Some(path) = cache.get_verified(sha)?
    {
        return Ok(path);
    }
    let download_err = |source: Box<dyn std::error::Error + Send + Sync>| VsixError::Download {
        id: id.to_string(),
        url: url.to_string(),
        source,
    };
    let mut resp = http::get_ok(client, url).map_err(|e| download_err(Box::new(e)))?;

    if let Some(sha) = expected {
        return cache.insert(url, sha, &mut resp).map_err(|e| match e {
            CacheError::HashMismatch {
                expected, actual, ..
            } => VsixError::HashMismatch {
                id: id.to_string(),
                url: url.to_string(),
                expected,
                actual,
            },
            other => VsixError::Cache(other),
        });
    }

    // No published hash: hash a temporary copy, then store it under that hash.
    let root = cache.root().to_path_buf();
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VsixError::Io { path, source }
    };
    std::fs::create_dir_all(&root).map_err(io_err(&root))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(&root)
        .map_err(io_err(&root))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(download_err(Box::new(e))),
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
    }
    tmp.flush().map_err(io_err(tmp.path()))?;
    let sha = hex::encode(hasher.finalize());
    let mut file = File::open(tmp.path()).map_err(io_err(tmp.path()))?;
    Ok(cache.insert(url, &sha, &mut file)?)
}

/// `file:` URL of a local VSIX, relative to the spec folder so the lock does not depend on
/// where the project is checked out.
fn local_url(spec_dir: &Path, path: &str) -> String {
    let rel = Path::new(path)
        .strip_prefix(spec_dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string());
    format!("file:{}", rel.replace('\\', "/"))
}

fn normalize_sha256(s: &str) -> Option<String> {
    let hex = s.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn file_size(path: &Path) -> Result<Option<u64>, VsixError> {
    let meta = std::fs::metadata(path).map_err(|source| VsixError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_versions_are_kept_unless_upgraded() {
        let spec: VscodeSpec = toml::from_str(
            r#"extensions = ["Acme.One", "acme.two@1.0.0", { id = "acme.three" }, "acme.four"]"#,
        )
        .unwrap();
        let lock = |id: &str, version: &str| ExtensionLock {
            id: id.into(),
            version: version.into(),
            targets: vec![],
            artifacts: vec![],
        };
        let previous = [
            lock("acme.one", "0.9.0"),
            lock("acme.two", "0.5.0"),
            lock("acme.three", "3.0.0"),
            lock("acme.four", "4.0.0"),
        ];
        let kept = keep_locked_versions(&spec, &previous, |id| id == "acme.four");
        let requests: Vec<(String, Option<String>)> = kept
            .extensions
            .iter()
            .map(|e| {
                let r = ExtRequest::from_spec(e).unwrap();
                (r.id(), r.version)
            })
            .collect();
        let want = [
            ("acme.one", Some("0.9.0")),
            ("acme.two", Some("1.0.0")),
            ("acme.three", Some("3.0.0")),
            ("acme.four", None),
        ];
        let want: Vec<(String, Option<String>)> = want
            .iter()
            .map(|(id, v)| (id.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(requests, want);
    }
}
