//! One session with one repository of one registry: the authentication handshake (OCI
//! distribution spec, and the Docker token flow most registries follow) and the requests the
//! pull and push code make.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::Value;

use super::auth::{self, Credential, Found};
use super::reference::ImageRef;
use super::{RegistryError, RegistryOptions};
use crate::http;

/// What a session may do; the token scope asks for exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Access::Pull => "pull from",
            Access::Push => "push to",
        }
    }
}

/// An authenticated session with one repository.
pub struct Session {
    http: Client,
    pub image: ImageRef,
    base: String,
    found: Found,
    access: Access,
    /// Other repositories of the same registry this session may read (mount sources).
    also_pull: Vec<String>,
    /// The `Authorization` header value once the handshake is done. Never logged.
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("repository", &self.image.repo_name())
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// Sessions are reused within a process: a build pulls many blobs of one base.
type SessionKey = (String, String, Access, Vec<String>);
static SESSIONS: OnceLock<Mutex<HashMap<SessionKey, Arc<Session>>>> = OnceLock::new();

impl Session {
    /// A session for the repository of `image`, reused when one is open already.
    pub fn get(
        image: &ImageRef,
        opts: &RegistryOptions,
        access: Access,
        also_pull: &[String],
    ) -> Result<Arc<Session>, RegistryError> {
        let base = image.base_url(opts);
        let key = (
            base.clone(),
            image.repository.clone(),
            access,
            also_pull.to_vec(),
        );
        let sessions = SESSIONS.get_or_init(Default::default);
        if let Some(s) = sessions.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(s);
        }
        let session = Arc::new(Session::open(image, opts, access, also_pull)?);
        if let Ok(mut m) = sessions.lock() {
            m.insert(key, session.clone());
        }
        Ok(session)
    }

    /// Opens a session: `GET /v2/` tells whether and how the registry wants authentication
    /// (distribution spec, "determining support"), and the handshake happens before any
    /// upload, so a large body is never sent only to be refused.
    fn open(
        image: &ImageRef,
        opts: &RegistryOptions,
        access: Access,
        also_pull: &[String],
    ) -> Result<Session, RegistryError> {
        let client = http::client().map_err(|source| RegistryError::Network {
            registry: image.registry.clone(),
            hint: String::new(),
            source,
        })?;
        let session = Session {
            http: client,
            image: image.clone(),
            base: image.base_url(opts),
            found: auth::find(image, opts.credential.as_ref())?,
            access,
            also_pull: also_pull.to_vec(),
            authorization: Mutex::new(None),
        };

        let url = format!("{}/v2/", session.base);
        let resp = session.raw_send(&url, |c| c.get(&url))?;
        match resp.status() {
            s if s.is_success() => Ok(session),
            StatusCode::UNAUTHORIZED => {
                session.authenticate(&resp)?;
                Ok(session)
            }
            _ => Err(session.status_error("`GET /v2/`", resp)),
        }
    }

    /// `{base}/v2/{repository}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.image.repository)
    }

    /// An upload `Location`, which registries may give relative to the host.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Sends a request with the session's authorization, retrying transient faults. A 401
    /// (an expired token) is answered by one fresh handshake; a 401 or 403 after it is an
    /// authentication error naming the credential source.
    pub fn send(
        &self,
        what: &str,
        url: &str,
        make: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut resp = self.raw_send(url, &make)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            tracing::debug!("{what}: HTTP 401, authenticating again");
            self.authenticate(&resp)?;
            resp = self.raw_send(url, &make)?;
        }
        match resp.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.refused(resp.status())),
            _ => Ok(resp),
        }
    }

    fn raw_send(
        &self,
        url: &str,
        make: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let authorization = self.authorization.lock().ok().and_then(|a| a.clone());
        http::send(url, || {
            let rb = make(&self.http);
            match &authorization {
                Some(value) => rb.header(AUTHORIZATION, value),
                None => rb,
            }
        })
        .map_err(|source| self.network_error(source))
    }

    fn network_error(&self, source: http::HttpError) -> RegistryError {
        let hint = if self.base.starts_with("https://") {
            format!(
                "\nhint: if `{}` serves plain HTTP, pass `--insecure-registry {}` (or list it in \
                 `insecure-registries`)",
                self.image.api_host, self.image.api_host
            )
        } else {
            String::new()
        };
        RegistryError::Network {
            registry: self.image.registry.clone(),
            hint,
            source,
        }
    }

    /// The error for a refusal: no credential found, or the one found was not accepted.
    fn refused(&self, status: StatusCode) -> RegistryError {
        match &self.found.credential {
            None => RegistryError::AuthRequired {
                registry: self.image.registry.clone(),
                tried: self.found.source.clone(),
            },
            Some(_) => RegistryError::AuthRejected {
                registry: self.image.registry.clone(),
                repository: self.image.repository.clone(),
                source_name: self.found.source.clone(),
                status: status.as_u16(),
                action: self.access.verb().to_string(),
            },
        }
    }

    /// Answers a `WWW-Authenticate` challenge: `Basic` sends the credential with every
    /// request; `Bearer` trades it at the token endpoint for a token scoped to this repository.
    fn authenticate(&self, resp: &Response) -> Result<(), RegistryError> {
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let challenge = Challenge::parse(&header).ok_or_else(|| RegistryError::BadChallenge {
            registry: self.image.registry.clone(),
            message: if header.is_empty() {
                "a 401 without `WWW-Authenticate`".to_string()
            } else {
                format!("`{}`", header.split(' ').next().unwrap_or(""))
            },
        })?;

        let value = match challenge {
            Challenge::Basic => match &self.found.credential {
                Some(Credential::Basic { username, password }) => {
                    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
                }
                _ => return Err(self.refused(StatusCode::UNAUTHORIZED)),
            },
            Challenge::Bearer { realm, service } => {
                format!("Bearer {}", self.token(&realm, service.as_deref())?)
            }
        };
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(value);
        }
        Ok(())
    }

    /// The token flow: `GET realm?service=…&scope=…` with basic credentials (or none), or the
    /// OAuth2 refresh-token `POST` for an identity token.
    fn token(&self, realm: &str, service: Option<&str>) -> Result<String, RegistryError> {
        let mut scopes = vec![format!(
            "repository:{}:{}",
            self.image.repository,
            self.access.actions()
        )];
        scopes.extend(
            self.also_pull
                .iter()
                .map(|r| format!("repository:{r}:pull")),
        );
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in &scopes {
            query.push(("scope", s));
        }

        let what = "the token request";
        let resp = match &self.found.credential {
            Some(Credential::IdentityToken(refresh)) => {
                let scope = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "envbuild"),
                    ("scope", scope.as_str()),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                http::send(realm, || self.http.post(realm).form(&form))
            }
            Some(Credential::Basic { username, password }) => http::send(realm, || {
                self.http
                    .get(realm)
                    .query(&query)
                    .basic_auth(username, Some(password))
            }),
            None => http::send(realm, || self.http.get(realm).query(&query)),
        }
        .map_err(|source| self.network_error(source))?;

        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self.refused(resp.status()));
            }
            _ => return Err(self.status_error(what, resp)),
        }
        let v: Value = resp
            .json()
            .map_err(|e| self.malformed(what, &e.to_string()))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| self.malformed(what, "no `token` in the answer"))
    }

    /// An error for an unexpected status, with the registry's own error codes when it sent
    /// the JSON error body the spec describes.
    pub fn status_error(&self, what: &str, resp: Response) -> RegistryError {
        let status = resp.status().as_u16();
        let body: Option<Value> = resp.json().ok();
        let codes: Vec<String> = body
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        let code = e.get("code").and_then(Value::as_str).unwrap_or("?");
                        let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                        format!("{code}: {message}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        RegistryError::Status {
            registry: self.image.registry.clone(),
            what: what.to_string(),
            status,
            detail: if codes.is_empty() {
                String::new()
            } else {
                format!(" ({})", codes.join("; "))
            },
        }
    }

    /// An error for an answer that does not parse.
    pub fn malformed(&self, what: &str, message: &str) -> RegistryError {
        RegistryError::Malformed {
            registry: self.image.registry.clone(),
            what: what.to_string(),
            message: message.to_string(),
        }
    }
}

/// A `WWW-Authenticate` challenge (RFC 7235), of the two schemes registries use.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(params);
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        })
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and escaped quotes.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Some(Challenge::Basic)
        );
        let bearer =
            r#"Bearer realm="https://auth.example/token",service="reg, 1",scope="a:b:pull""#;
        assert_eq!(
            Challenge::parse(bearer),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg, 1".into()),
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse(""), None);
    }
}
