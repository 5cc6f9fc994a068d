//! The HTTP client shared by index, gallery and download code: system trust roots, a user
//! agent, timeouts, and retries with backoff for the faults networks really have.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};

/// How many times a request is tried before giving up.
pub const ATTEMPTS: u32 = 4;

/// Errors from HTTP requests, after retries.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("Failed to reach `{url}` after {attempts} attempts")]
    Unreachable {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("`{url}` answered HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("Failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Seconds one request may take, headers and body, unless `ENVBUILD_HTTP_TIMEOUT` says
/// otherwise. Registry uploads above 64 MiB go in chunks, so one request stays well below.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// A blocking client. Trusts the system's certificate store (and `SSL_CERT_FILE`), since many
/// networks re-sign HTTPS with their own authority.
pub fn client() -> Result<Client, HttpError> {
    Client::builder()
        .user_agent(concat!("envbuild/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(request_timeout())
        .build()
        .map_err(HttpError::Client)
}

/// `ENVBUILD_HTTP_TIMEOUT` seconds, else [`DEFAULT_TIMEOUT_SECS`]; a stalled server costs
/// this long before the request is tried again.
fn request_timeout() -> Duration {
    let secs = std::env::var("ENVBUILD_HTTP_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

/// Whether a status is worth another try.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// Backoff before attempt `n` (1-based): 0.2s, 0.4s, 0.8s, … capped at 5s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5)).min(5_000) / 2)
}

/// Sends a request, retrying connection errors, timeouts, 429 and 5xx with backoff. Any
/// other status is returned to the caller as is (a 404 is an answer, not a fault).
pub fn send(url: &str, make: impl Fn() -> RequestBuilder) -> Result<Response, HttpError> {
    let mut attempt = 1;
    loop {
        match make().send() {
            Ok(resp) if is_transient(resp.status()) && attempt < ATTEMPTS => {
                tracing::debug!("{url}: HTTP {}, retrying", resp.status());
            }
            Ok(resp) => return Ok(resp),
            Err(err) if attempt < ATTEMPTS => {
                tracing::debug!("{url}: {err}, retrying");
            }
            Err(source) => {
                return Err(HttpError::Unreachable {
                    url: url.to_string(),
                    attempts: attempt,
                    source,
                });
            }
        }
        std::thread::sleep(backoff(attempt));
        attempt += 1;
    }
}

/// GET that must answer 2xx.
pub fn get_ok(client: &Client, url: &str) -> Result<Response, HttpError> {
    let resp = send(url, || client.get(url))?;
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(HttpError::Status {
            url: url.to_string(),
            status: resp.status(),
        })
    }
}
