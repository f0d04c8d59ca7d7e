//! A small HTTP/1.1 registry on loopback that serves the read API from
//! memory and misbehaves on request: what no honest registry serves.
//!
//! One thread per connection, `Connection: close`. `GET`/`HEAD` of `/v2/` is
//! 200; manifests and blobs are served from what [`Hostile::add`] put there,
//! with `Content-Type`, `Content-Length` and `Docker-Content-Digest`. Every
//! request is counted by path.

use crate::fixture::{Blob, Tagged};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How a path misbehaves.
#[derive(Debug, Clone)]
pub enum Misbehave {
    /// Serve these bytes instead (200, honest headers otherwise).
    Body(Vec<u8>),
    /// Announce the full `Content-Length`, send only this many bytes, close.
    Truncate(usize),
    /// Answer the first N requests with 503, then behave.
    FailFirst(usize),
    /// Always answer with this status (and a registry error body).
    Status(u16),
    /// Send `chunk` bytes, then sleep `delay`, until done.
    Trickle {
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        delay: Duration,
    },
}

#[derive(Debug, Clone)]
struct Route {
    content_type: String,
    digest: String,
    body: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    /// With [`Hostile::require_token`]: the user and password `/token`
    /// accepts (HTTP Basic), and the tokens it has handed out.
    token_auth: Option<(String, String)>,
    tokens: Vec<String>,
    /// The port served on (for the token realm's URL).
    port: u16,
    routes: HashMap<String, Route>,
    misbehave: HashMap<String, Misbehave>,
    counts: HashMap<String, usize>,
    sent: HashMap<String, usize>,
}

/// The hostile registry; stops accepting on drop.
#[derive(Debug)]
pub struct Hostile {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hostile {
    /// Starts serving on a free loopback port.
    pub fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile registry");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(Mutex::new(State {
            port,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, &state);
                    });
                }
            });
        }
        Hostile { port, state, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<name>`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// From now on, every `/v2/` request needs a Bearer token, as Docker
    /// Hub's registry does: without one it is answered 401 with a
    /// `WWW-Authenticate: Bearer realm=…/token` challenge, and `/token`
    /// hands tokens out only to HTTP Basic `user`:`password`.
    pub fn require_token(&self, user: &str, password: &str) {
        lock(&self.state).token_auth = Some((user.to_string(), password.to_string()));
    }

    /// The path of a manifest.
    pub fn manifest_path(repo: &str, reference: &str) -> String {
        format!("/v2/{repo}/manifests/{reference}")
    }

    /// The path of a blob.
    pub fn blob_path(repo: &str, digest: &str) -> String {
        format!("/v2/{repo}/blobs/{digest}")
    }

    /// Serves `content` in `repo` under `tag` and by digest: manifests
    /// (the index's images too) and blobs.
    pub fn add(&self, repo: &str, tag: &str, content: Tagged<'_>) {
        let top = content.top();
        self.add_manifest(repo, tag, top);
        for b in content.blobs() {
            if b.media_type.contains("manifest") || b.media_type.contains("index") {
                self.add_manifest(repo, &b.digest, b);
            } else {
                self.add_blob(repo, b);
            }
        }
    }

    /// Serves `blob` as the manifest `repo:reference`.
    pub fn add_manifest(&self, repo: &str, reference: &str, blob: &Blob) {
        lock(&self.state).routes.insert(
            Self::manifest_path(repo, reference),
            Route {
                content_type: blob.media_type.clone(),
                digest: blob.digest.clone(),
                body: blob.bytes.clone(),
            },
        );
    }

    /// Serves `bytes` with this content type as manifest `repo:reference`,
    /// claiming `digest` in `Docker-Content-Digest`.
    pub fn add_raw_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        digest: &str,
        bytes: &[u8],
    ) {
        lock(&self.state).routes.insert(
            Self::manifest_path(repo, reference),
            Route {
                content_type: content_type.into(),
                digest: digest.into(),
                body: bytes.to_vec(),
            },
        );
    }

    /// Serves `blob` in `repo`.
    pub fn add_blob(&self, repo: &str, blob: &Blob) {
        lock(&self.state).routes.insert(
            Self::blob_path(repo, &blob.digest),
            Route {
                content_type: "application/octet-stream".into(),
                digest: blob.digest.clone(),
                body: blob.bytes.clone(),
            },
        );
    }

    /// Makes `path` misbehave.
    pub fn misbehave(&self, path: &str, how: Misbehave) {
        lock(&self.state).misbehave.insert(path.to_string(), how);
    }

    /// Makes `path` behave again.
    pub fn behave(&self, path: &str) {
        lock(&self.state).misbehave.remove(path);
    }

    /// Requests (any method) made for `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state).counts.get(path).copied().unwrap_or(0)
    }

    /// Every path requested, with its count.
    pub fn counts(&self) -> HashMap<String, usize> {
        lock(&self.state).counts.clone()
    }

    /// Body bytes sent so far for `path`.
    pub fn sent(&self, path: &str) -> usize {
        lock(&self.state).sent.get(path).copied().unwrap_or(0)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = value.trim().to_string();
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let full = parts.next().unwrap_or_default();
    let path = full.split('?').next().unwrap_or_default().to_string();
    let head = method == "HEAD";
    let mut out = conn;

    let (route, how) = {
        let mut s = lock(state);
        let n = {
            let c = s.counts.entry(path.clone()).or_insert(0);
            *c += 1;
            *c
        };
        let how = s.misbehave.get(&path).cloned();
        let how = match how {
            Some(Misbehave::FailFirst(k)) if n > k => None,
            other => other,
        };
        (s.routes.get(&path).cloned(), how)
    };

    if let Some(denied) = token_auth(state, &path, &authorization) {
        return match denied {
            Gate::Token(token) => respond(
                &mut out,
                200,
                "application/json",
                None,
                format!(r#"{{"token":"{token}","access_token":"{token}"}}"#).as_bytes(),
                head,
            ),
            Gate::Challenge(challenge) => {
                let body =
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                write_head_with(
                    &mut out,
                    401,
                    "application/json",
                    &[("WWW-Authenticate", challenge)],
                    body.len(),
                )?;
                if !head {
                    out.write_all(body)?;
                }
                out.flush()?;
                let _ = out.shutdown(std::net::Shutdown::Write);
                Ok(())
            }
        };
    }
    if path == "/v2/" || path == "/v2" {
        return respond(&mut out, 200, "application/json", None, b"{}", head);
    }
    match how {
        Some(Misbehave::FailFirst(_)) => {
            return respond(&mut out, 503, "text/plain", None, b"try again later", head);
        }
        Some(Misbehave::Status(code)) => {
            return respond(
                &mut out,
                code,
                "application/json",
                None,
                &error_body(&path),
                head,
            );
        }
        _ => {}
    }
    let Some(route) = route else {
        return respond(
            &mut out,
            404,
            "application/json",
            None,
            &error_body(&path),
            head,
        );
    };
    match how {
        Some(Misbehave::Body(bytes)) => respond(
            &mut out,
            200,
            &route.content_type,
            Some(&route.digest),
            &bytes,
            head,
        ),
        Some(Misbehave::Truncate(n)) => {
            write_head(
                &mut out,
                200,
                &route.content_type,
                Some(&route.digest),
                route.body.len(),
            )?;
            if !head {
                let n = n.min(route.body.len());
                out.write_all(&route.body[..n])?;
                add_sent(state, &path, n);
            }
            out.flush()?;
            let _ = out.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Some(Misbehave::Trickle { chunk, delay }) => {
            write_head(
                &mut out,
                200,
                &route.content_type,
                Some(&route.digest),
                route.body.len(),
            )?;
            if !head {
                for c in route.body.chunks(chunk.max(1)) {
                    out.write_all(c)?;
                    out.flush()?;
                    add_sent(state, &path, c.len());
                    std::thread::sleep(delay);
                }
            }
            Ok(())
        }
        _ => {
            respond(
                &mut out,
                200,
                &route.content_type,
                Some(&route.digest),
                &route.body,
                head,
            )?;
            if !head {
                add_sent(state, &path, route.body.len());
            }
            Ok(())
        }
    }
}

/// What the token gate says about a request it does not let through.
enum Gate {
    /// `/token` with the right credentials: this token.
    Token(String),
    /// No (valid) credentials: 401 with this `WWW-Authenticate`.
    Challenge(String),
}

/// `None`: no token auth, or a request with a token handed out before.
fn token_auth(state: &Mutex<State>, path: &str, authorization: &str) -> Option<Gate> {
    use base64::Engine as _;
    let mut s = lock(state);
    let (user, password) = s.token_auth.clone()?;
    let realm = format!(
        "realm=\"http://127.0.0.1:{}/token\",service=\"hostile\"",
        s.port
    );
    if path == "/token" {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if authorization == expected {
            let token = format!("token-{}", s.tokens.len() + 1);
            s.tokens.push(token.clone());
            return Some(Gate::Token(token));
        }
        return Some(Gate::Challenge(format!("Basic {realm}")));
    }
    let bearer = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if !bearer.is_empty() && s.tokens.iter().any(|t| t == bearer) {
        return None;
    }
    let scope = path
        .strip_prefix("/v2/")
        .and_then(|p| p.split("/manifests/").next())
        .and_then(|p| p.split("/blobs/").next())
        .filter(|p| !p.is_empty())
        .map(|p| format!(",scope=\"repository:{p}:pull\""))
        .unwrap_or_default();
    Some(Gate::Challenge(format!("Bearer {realm}{scope}")))
}

fn add_sent(state: &Mutex<State>, path: &str, n: usize) {
    *lock(state).sent.entry(path.to_string()).or_insert(0) += n;
}

fn error_body(path: &str) -> Vec<u8> {
    let code = if path.contains("/manifests/") {
        "MANIFEST_UNKNOWN"
    } else {
        "BLOB_UNKNOWN"
    };
    format!(r#"{{"errors":[{{"code":"{code}","message":"unknown: {path}"}}]}}"#).into_bytes()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_head(
    out: &mut TcpStream,
    code: u16,
    content_type: &str,
    digest: Option<&str>,
    len: usize,
) -> std::io::Result<()> {
    match digest {
        Some(d) => write_head_with(
            out,
            code,
            content_type,
            &[("Docker-Content-Digest", d.to_string())],
            len,
        ),
        None => write_head_with(out, code, content_type, &[], len),
    }
}

fn write_head_with(
    out: &mut TcpStream,
    code: u16,
    content_type: &str,
    headers: &[(&str, String)],
    len: usize,
) -> std::io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n",
        reason(code)
    );
    for (name, value) in headers {
        h.push_str(&format!("{name}: {value}\r\n"));
    }
    h.push_str("\r\n");
    out.write_all(h.as_bytes())
}

fn respond(
    out: &mut TcpStream,
    code: u16,
    content_type: &str,
    digest: Option<&str>,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    write_head(out, code, content_type, digest, body.len())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Write);
    Ok(())
}
