//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put in front of a real registry to test a
//! client's retries: it forwards requests unchanged except where a [`Fault`] says to reset the
//! connection mid-body, answer an error status, or stall.
//!
//! Each client connection carries one request: the proxy reads it, forwards it upstream on a
//! fresh connection with `Connection: close`, relays the answer with `Connection: close`, and
//! closes. Closing after every answer is legal HTTP/1.1 and clients reconnect, and it keeps
//! "the Nth request" well defined however a client pools its connections.
//!
//! The `Host` header is forwarded unchanged. `docker-registry` builds the absolute `Location`
//! of an upload session from it, so upload URLs name the proxy and stay behind it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection may sit idle before the proxy gives up on it, so that a client that
/// went away does not leave a thread behind for the rest of the test run.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest request or response head accepted; registries and clients stay far below.
const MAX_HEAD: usize = 64 * 1024;

/// One misbehaviour: which requests it hits and what the proxy does to them.
///
/// Built as `Fault::on(METHOD, PATH).nth(N).ACTION()`, for example
/// `Fault::on("PATCH", "/blobs/uploads/").nth(1).reset()`. `METHOD` is matched exactly (`"*"`
/// matches any); `PATH` is a substring of the request target, query included (so
/// `"digest=sha256:"` finds the `PUT` that completes an upload). A fault fires on the Nth
/// matching request only (1-based, the default is the first), or on every one with
/// `.always()`. Matches are counted per fault, whether or not another fault fired on the same
/// request; when several would fire, the first in the list wins.
#[derive(Debug, Clone)]
pub struct Fault {
    on: Match,
    action: Action,
}

/// The request side of a [`Fault`] under construction; finish it with an action.
#[derive(Debug, Clone)]
pub struct Match {
    method: String,
    path: String,
    when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Nth(usize),
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Reset,
    Status(u16),
    Stall(Duration),
    LoseAnswer,
}

impl Fault {
    /// Starts a fault on requests with `method` (`"*"`: any) whose target contains `path`.
    pub fn on(method: &str, path: &str) -> Match {
        Match {
            method: method.to_string(),
            path: path.to_string(),
            when: When::Nth(1),
        }
    }
}

impl Match {
    /// Fires on the `n`th matching request (1-based) and on no other.
    pub fn nth(mut self, n: usize) -> Match {
        assert!(n >= 1, "requests are counted from 1");
        self.when = When::Nth(n);
        self
    }

    /// Fires on every matching request.
    pub fn always(mut self) -> Match {
        self.when = When::Always;
        self
    }

    /// Reads half of the request body (half of its first chunk when chunked), then drops the
    /// connection without answering, as when a server or middlebox dies mid-upload. Body bytes
    /// still unread in the socket make the kernel send a TCP reset; a request without a body,
    /// or one small enough to have been buffered whole, sees a plain close instead.
    pub fn reset(self) -> Fault {
        self.then(Action::Reset)
    }

    /// Reads the whole request, then answers `code` with a registry-style JSON error body
    /// and `Connection: close`, without forwarding. A 429 or 503 carries `Retry-After: 0`.
    pub fn status(self, code: u16) -> Fault {
        self.then(Action::Status(code))
    }

    /// Reads the whole request, then holds it unanswered for `duration` and drops the
    /// connection, as an overloaded server or a black-holing network does.
    pub fn stall(self, duration: Duration) -> Fault {
        self.then(Action::Stall(duration))
    }

    /// Forwards the whole request, lets upstream act on it, then drops the connection without
    /// relaying the answer: the server did the work, the client cannot know it did.
    pub fn lose_answer(self) -> Fault {
        self.then(Action::LoseAnswer)
    }

    fn then(self, action: Action) -> Fault {
        Fault { on: self, action }
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        (self.method == "*" || self.method == method) && target.contains(&self.path)
    }
}

/// A request the proxy saw, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `HEAD`, `POST`, `PATCH`, `PUT`, …
    pub method: String,
    /// The request target without its query.
    pub path: String,
    /// Whether a fault fired on it (it was then not forwarded).
    pub faulted: bool,
}

/// What the proxy threads share.
struct Shared {
    upstream: String,
    /// Each fault with the number of requests that matched it so far.
    faults: Mutex<Vec<(Fault, usize)>>,
    seen: Mutex<Vec<Seen>>,
    body_bytes: AtomicU64,
    fired: AtomicUsize,
    stop: AtomicBool,
}

/// A running proxy. Stops accepting when dropped; connections in flight finish on their own.
pub struct FaultProxy {
    /// `127.0.0.1:PORT`, to use in place of the upstream address.
    pub addr: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`HOST:PORT`) that applies `faults`.
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            faults: Mutex::new(faults.into_iter().map(|f| (f, 0)).collect()),
            seen: Mutex::new(Vec::new()),
            body_bytes: AtomicU64::new(0),
            fired: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(&shared, stream));
                }
            })
        };
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `(method, path)` of every request seen, in arrival order, faulted ones included.
    pub fn requests(&self) -> Vec<(String, String)> {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter()
            .map(|s| (s.method.clone(), s.path.clone()))
            .collect()
    }

    /// Every request seen, with whether a fault fired on it.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests seen had `method` (`"*"`: any) and a path containing `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter()
            .filter(|s| (method == "*" || s.method == method) && s.path.contains(path))
            .count()
    }

    /// Request body bytes forwarded upstream so far (payload only, without chunk framing).
    pub fn forwarded_body_bytes(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::SeqCst)
    }

    /// How many times a fault fired.
    pub fn faults_fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // `accept` has no timeout; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// How a message body is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// Handles one client connection: one request, then close.
fn serve(shared: &Shared, client: TcpStream) {
    let _ = client.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = client.set_write_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let head = match read_request_head(&mut reader) {
        Ok(Some(head)) => head,
        // An empty connection (the proxy waking itself on drop) or not HTTP, such as the TLS
        // handshake skopeo tries first with `--tls-verify=false`: closing makes it fall back.
        Ok(None) | Err(_) => return,
    };

    let action = decide(shared, &head);
    shared.seen.lock().unwrap().push(Seen {
        method: head.method.clone(),
        path: head.path().to_string(),
        faulted: action.is_some(),
    });
    if head
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        // Upstream never sees `Expect` (it is hop-by-hop here), so the proxy itself tells the
        // client to send the body.
        let _ = (&client).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    match action {
        Some(Action::Reset) => {
            let _ = relay_body(&mut reader, head.body, &mut std::io::sink(), true);
            // Dropping both halves with body bytes unread makes the kernel send a reset.
        }
        Some(Action::Status(code)) => {
            if relay_body(&mut reader, head.body, &mut std::io::sink(), false).is_ok() {
                let _ = (&client).write_all(&status_answer(code, &head.method));
                let _ = client.shutdown(Shutdown::Write);
            }
        }
        Some(Action::Stall(duration)) => {
            let _ = relay_body(&mut reader, head.body, &mut std::io::sink(), false);
            let step = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while waited < duration && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(step.min(duration - waited));
                waited += step;
            }
        }
        Some(Action::LoseAnswer) => {
            forward(shared, &head, &mut reader, &client, false);
        }
        None => forward(shared, &head, &mut reader, &client, true),
    }
}

/// The action of the first fault that fires on this request, counting the request against
/// every fault it matches.
fn decide(shared: &Shared, head: &Head) -> Option<Action> {
    let mut faults = shared.faults.lock().unwrap();
    let mut action = None;
    for (fault, matched) in faults.iter_mut() {
        if !fault.on.matches(&head.method, &head.target) {
            continue;
        }
        *matched += 1;
        let fires = match fault.on.when {
            When::Nth(n) => *matched == n,
            When::Always => true,
        };
        if fires && action.is_none() {
            action = Some(fault.action);
        }
    }
    if action.is_some() {
        shared.fired.fetch_add(1, Ordering::SeqCst);
    }
    action
}

/// Sends the request upstream on a fresh connection and relays the answer (or, when
/// `answer` is false, waits for it and drops it).
fn forward(
    shared: &Shared,
    head: &Head,
    reader: &mut BufReader<TcpStream>,
    client: &TcpStream,
    answer: bool,
) {
    let upstream = match TcpStream::connect(&shared.upstream) {
        Ok(upstream) => upstream,
        Err(_) => {
            let _ = relay_body(reader, head.body, &mut std::io::sink(), false);
            let _ = (&*client).write_all(&status_answer(502, &head.method));
            return;
        }
    };
    let _ = upstream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = upstream.set_write_timeout(Some(IDLE_TIMEOUT));

    // The head, with hop-by-hop headers replaced by `Connection: close`.
    let mut sink = Lenient::new(&upstream);
    let _ = sink.write_all(request_head_bytes(head).as_slice());

    // The body, streamed as it arrives. If upstream answers early and stops reading (a 401
    // before the body, say), the rest is still read from the client, so that the client gets
    // the answer rather than a reset.
    let Ok(bytes) = relay_body(reader, head.body, &mut sink, false) else {
        return;
    };
    if !sink.failed {
        shared.body_bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    if !answer {
        let _ = std::io::copy(&mut &upstream, &mut std::io::sink());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let _ = relay_response(&upstream, client);
    let _ = client.shutdown(Shutdown::Write);
}

fn request_head_bytes(head: &Head) -> Vec<u8> {
    let mut out = format!("{} {} {}\r\n", head.method, head.target, head.version);
    let hop_by_hop = hop_by_hop(&head.headers);
    for (name, value) in &head.headers {
        if !hop_by_hop.contains(&name.to_ascii_lowercase()) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Lowercase names of the headers that concern one connection only (RFC 9110 section 7.6.1):
/// the fixed ones and those a `Connection` header lists. `Transfer-Encoding` stays: the body
/// is relayed with its framing untouched.
fn hop_by_hop(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "expect",
        "te",
    ]
    .map(String::from)
    .to_vec();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("connection") {
            names.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
    }
    names.retain(|n| !n.is_empty() && n != "transfer-encoding");
    names
}

/// Relays upstream's answer with `Connection: close`, then everything up to upstream's close,
/// which ends the body whatever its framing (upstream was asked to close).
fn relay_response(upstream: &TcpStream, client: &TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(upstream);
    let mut client = client;
    loop {
        let lines = read_head_lines(&mut reader)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let status_line = &lines[0];
        let interim = status_line
            .split(' ')
            .nth(1)
            .is_some_and(|code| code.starts_with('1') && code != "101");
        let mut out = format!("{status_line}\r\n");
        let headers = parse_headers(&lines[1..])?;
        let hop_by_hop = hop_by_hop(&headers);
        for (name, value) in &headers {
            if !hop_by_hop.contains(&name.to_ascii_lowercase()) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !interim {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        client.write_all(out.as_bytes())?;
        if !interim {
            break;
        }
    }
    std::io::copy(&mut reader, &mut client)?;
    client.flush()
}

/// A complete answer for a status fault: JSON in the registry's error format, so a client
/// that reports the body has something to show.
fn status_answer(code: u16, method: &str) -> Vec<u8> {
    let (reason, error_code) = match code {
        400 => ("Bad Request", "UNSUPPORTED"),
        401 => ("Unauthorized", "UNAUTHORIZED"),
        403 => ("Forbidden", "DENIED"),
        404 => ("Not Found", "NAME_UNKNOWN"),
        408 => ("Request Timeout", "UNKNOWN"),
        429 => ("Too Many Requests", "TOOMANYREQUESTS"),
        500 => ("Internal Server Error", "UNKNOWN"),
        502 => ("Bad Gateway", "UNKNOWN"),
        503 => ("Service Unavailable", "UNAVAILABLE"),
        504 => ("Gateway Timeout", "UNKNOWN"),
        _ => ("Injected Fault", "UNKNOWN"),
    };
    let body = format!(
        r#"{{"errors":[{{"code":"{error_code}","message":"fault injected by the test proxy"}}]}}"#
    );
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 429 || code == 503 {
        out.push_str("Retry-After: 0\r\n");
    }
    out.push_str("\r\n");
    // A HEAD answer announces the length of the body it does not carry.
    if method != "HEAD" {
        out.push_str(&body);
    }
    out.into_bytes()
}

/// Reads a request head. `Ok(None)` when the connection closed before any byte or does not
/// start like an HTTP request.
fn read_request_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    // A TLS ClientHello starts with 0x16; HTTP methods are upper-case tokens. Without this
    // check the proxy would wait for a line end the TLS client never sends.
    let first = reader.fill_buf()?;
    if first.is_empty() || !first[0].is_ascii_uppercase() {
        return Ok(None);
    }
    let Some(lines) = read_head_lines(reader)? else {
        return Ok(None);
    };
    let mut parts = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {:?}", lines[0])));
    };
    let headers = parse_headers(&lines[1..])?;
    let body = request_body(&headers)?;
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        body,
    }))
}

/// The framing of a request body: chunked wins over a length; neither means no body.
fn request_body(headers: &[(String, String)]) -> std::io::Result<Body> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(te) = value("Transfer-Encoding") {
        let last = te.rsplit(',').next().unwrap_or_default().trim();
        if last.eq_ignore_ascii_case("chunked") {
            return Ok(Body::Chunked);
        }
        return Err(invalid(format!("unsupported Transfer-Encoding {te:?}")));
    }
    match value("Content-Length") {
        Some(length) => length
            .parse()
            .map(Body::Length)
            .map_err(|_| invalid(format!("bad Content-Length {length:?}"))),
        None => Ok(Body::None),
    }
}

/// Lines of a message head up to the empty line, without line ends. `Ok(None)` on a clean
/// close before the first byte.
fn read_head_lines(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        if total > MAX_HEAD {
            return Err(invalid("head too long".to_string()));
        }
        let line = String::from_utf8(line).map_err(|_| invalid("head not UTF-8".to_string()))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines.is_empty() {
                // RFC 9112 section 2.2: an empty line before the request line is ignored.
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(line.to_string());
    }
}

fn parse_headers(lines: &[String]) -> std::io::Result<Vec<(String, String)>> {
    lines
        .iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            Ok((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Copies a request body from `reader` to `out`, framing included, and returns its payload
/// size. With `half`, stops after half the payload (half of the first chunk when chunked).
fn relay_body(
    reader: &mut impl BufRead,
    body: Body,
    out: &mut impl Write,
    half: bool,
) -> std::io::Result<u64> {
    match body {
        Body::None => Ok(0),
        Body::Length(length) => {
            let want = if half { length / 2 } else { length };
            copy_exact(reader, out, want)?;
            Ok(want)
        }
        Body::Chunked => relay_chunked(reader, out, half),
    }
}

fn relay_chunked(
    reader: &mut impl BufRead,
    out: &mut impl Write,
    half: bool,
) -> std::io::Result<u64> {
    let mut payload = 0;
    loop {
        let mut size_line = Vec::new();
        if reader.read_until(b'\n', &mut size_line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.write_all(&size_line)?;
        let text = String::from_utf8_lossy(&size_line);
        // Chunk extensions follow a `;` and are relayed untouched.
        let hex = text.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| invalid(format!("bad chunk size line {text:?}")))?;
        if half {
            copy_exact(reader, out, size / 2)?;
            return Ok(payload + size / 2);
        }
        if size == 0 {
            // The trailer section, ended by an empty line.
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                out.write_all(&line)?;
                if line == b"\r\n" || line == b"\n" {
                    return Ok(payload);
                }
            }
        }
        copy_exact(reader, out, size)?;
        payload += size;
        let mut crlf = Vec::new();
        reader.read_until(b'\n', &mut crlf)?;
        if crlf != b"\r\n" && crlf != b"\n" {
            return Err(invalid("chunk not followed by a line end".to_string()));
        }
        out.write_all(&crlf)?;
    }
}

fn copy_exact(reader: &mut impl Read, out: &mut impl Write, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut reader.by_ref().take(n), out)?;
    if copied < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A writer that swallows errors after the first and remembers that one happened, so a body
/// can still be read to its end after upstream stopped taking it.
struct Lenient<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Lenient<W> {
    fn new(inner: W) -> Lenient<W> {
        Lenient {
            inner,
            failed: false,
        }
    }
}

impl<W: Write> Write for Lenient<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.failed && self.inner.write_all(buf).is_err() {
            self.failed = true;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.failed && self.inner.flush().is_err() {
            self.failed = true;
        }
        Ok(())
    }
}
