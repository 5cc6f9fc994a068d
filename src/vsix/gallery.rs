//! A client for Open VSX compatible galleries, through their REST API.
//!
//! The endpoints used are `/api/{namespace}/{name}/latest` (what exists, and the newest
//! version) and `/api/{namespace}/{name}/{targetPlatform}/{version}` (one build). A version
//! is chosen once per extension, then each platform asks for its own build of that version
//! and falls back to the `universal` build, as VS Code does when it installs from a gallery.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde::Deserialize;

use super::{ExtRequest, VsixError};
use crate::http;
use crate::platform::Platform;

/// The build of an extension version that a platform installs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GalleryBuild {
    pub target_platform: String,
    pub download: String,
    pub sha256_url: Option<String>,
}

/// One answer of `/api/{namespace}/{name}/...`; only the fields envbuild reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionJson {
    version: String,
    #[serde(default)]
    target_platform: Option<String>,
    files: FilesJson,
    #[serde(default)]
    all_versions: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    all_target_platform_versions: Option<Vec<TargetVersionsJson>>,
    #[serde(default)]
    downloads: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct FilesJson {
    download: String,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetVersionsJson {
    version: String,
    #[serde(default)]
    target_platforms: Vec<String>,
}

/// A gallery at a base URL such as `https://open-vsx.org`.
pub(crate) struct Gallery<'a> {
    base: url::Url,
    client: &'a Client,
}

impl<'a> Gallery<'a> {
    /// A client for the gallery at `base`.
    pub fn new(base: &str, client: &'a Client) -> Result<Gallery<'a>, VsixError> {
        // A trailing slash makes relative links in answers resolve under the base's path.
        let with_slash = format!("{}/", base.trim_end_matches('/'));
        let base = url::Url::parse(&with_slash).map_err(|e| VsixError::GalleryUrl {
            url: base.to_string(),
            message: e.to_string(),
        })?;
        Ok(Gallery { base, client })
    }

    /// The version to lock and, for each platform, the build it installs.
    pub fn resolve(
        &self,
        req: &ExtRequest,
        platforms: &[Platform],
    ) -> Result<(String, Vec<(Platform, GalleryBuild)>), VsixError> {
        let latest = self
            .get(req, &["latest"])?
            .ok_or_else(|| VsixError::UnknownExtension {
                id: req.id(),
                gallery: self.base.to_string(),
            })?;
        let version = req
            .version
            .clone()
            .unwrap_or_else(|| latest.version.clone());
        if let Some(all) = &latest.all_versions
            && !all.is_empty()
            && !all.contains_key(&version)
        {
            return Err(VsixError::VersionNotFound {
                id: req.id(),
                version,
                available: list(all.keys().filter(|v| !is_alias(v))),
            });
        }

        // Several platforms usually share the universal build: ask for each target once.
        let mut answers: BTreeMap<&str, Option<GalleryBuild>> = BTreeMap::new();
        let mut builds = Vec::new();
        for &platform in platforms {
            let mut chosen = None;
            for target in [platform.vscode_target(), "universal"] {
                if !answers.contains_key(target) {
                    let answer = self.build(req, target, &version)?;
                    answers.insert(target, answer);
                }
                if let Some(Some(build)) = answers.get(target) {
                    chosen = Some(build.clone());
                    break;
                }
            }
            let build = chosen.ok_or_else(|| VsixError::NoBuild {
                id: req.id(),
                version: version.clone(),
                platform,
                available: list(existing_targets(&latest, &version)),
            })?;
            builds.push((platform, build));
        }
        Ok((version, builds))
    }

    /// The build of `version` for `target`, or `None` when the gallery has none.
    fn build(
        &self,
        req: &ExtRequest,
        target: &str,
        version: &str,
    ) -> Result<Option<GalleryBuild>, VsixError> {
        let Some(answer) = self.get(req, &[target, version])? else {
            return Ok(None);
        };
        let url = self.api_url(req, &[target, version]);
        if answer.version != version {
            return Err(malformed(
                req,
                &url,
                format!("it describes version `{}`", answer.version),
            ));
        }
        let target_platform = answer
            .target_platform
            .unwrap_or_else(|| "universal".to_string());
        if target_platform != target {
            // Some galleries answer a platform request with the universal build; that is
            // only right when asking for universal, which the caller does next.
            tracing::debug!("{url}: answered with target platform {target_platform}");
            return Ok(None);
        }
        Ok(Some(GalleryBuild {
            target_platform,
            download: self.absolute(req, &url, &answer.files.download)?,
            sha256_url: match &answer.files.sha256 {
                Some(link) => Some(self.absolute(req, &url, link)?),
                None => None,
            },
        }))
    }

    /// The hex sha256 the gallery publishes at `url`, or `None` when it publishes none.
    pub fn sha256(&self, req: &ExtRequest, url: &str) -> Result<Option<String>, VsixError> {
        let resp =
            http::send(url, || self.client.get(url)).map_err(|source| http_err(req, source))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(http_err(
                req,
                http::HttpError::Status {
                    url: url.to_string(),
                    status: resp.status(),
                },
            ));
        }
        let text = resp
            .text()
            .map_err(|e| malformed(req, url, e.to_string()))?;
        // The file holds the hex digest, sometimes followed by the file name.
        let hex = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(req, url, "it is not a hex sha256".to_string()));
        }
        Ok(Some(hex))
    }

    /// GET `/api/{namespace}/{name}/{rest...}`; `None` on 404.
    fn get(&self, req: &ExtRequest, rest: &[&str]) -> Result<Option<ExtensionJson>, VsixError> {
        let url = self.api_url(req, rest);
        let resp =
            http::send(&url, || self.client.get(&url)).map_err(|source| http_err(req, source))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(http_err(
                req,
                http::HttpError::Status {
                    url,
                    status: resp.status(),
                },
            ));
        }
        let body = resp
            .bytes()
            .map_err(|e| malformed(req, &url, e.to_string()))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| malformed(req, &url, e.to_string()))
    }

    fn api_url(&self, req: &ExtRequest, rest: &[&str]) -> String {
        let mut url = format!("{}api/{}/{}", self.base, req.publisher, req.name);
        for part in rest {
            url.push('/');
            url.push_str(part);
        }
        url
    }

    fn absolute(&self, req: &ExtRequest, from: &str, link: &str) -> Result<String, VsixError> {
        self.base
            .join(link)
            .map(|u| u.to_string())
            .map_err(|e| malformed(req, from, format!("bad link `{link}`: {e}")))
    }
}

/// Target platforms the gallery lists for `version`, or for the extension as a whole.
fn existing_targets(latest: &ExtensionJson, version: &str) -> Vec<String> {
    if let Some(all) = &latest.all_target_platform_versions
        && let Some(entry) = all.iter().find(|e| e.version == version)
    {
        return entry.target_platforms.clone();
    }
    if let Some(downloads) = &latest.downloads {
        return downloads.keys().cloned().collect();
    }
    latest.target_platform.iter().cloned().collect()
}

/// `latest` and `pre-release` are names Open VSX adds to `allVersions`, not versions.
fn is_alias(v: &str) -> bool {
    v == "latest" || v == "pre-release"
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn malformed(req: &ExtRequest, url: &str, message: String) -> VsixError {
    VsixError::Malformed {
        id: req.id(),
        url: url.to_string(),
        message,
    }
}

fn http_err(req: &ExtRequest, source: http::HttpError) -> VsixError {
    VsixError::Http {
        id: req.id(),
        source,
    }
}
