//! A small HTTP/1.0 and HTTP/1.1 server and client, generic over `Read + Write`.
//!
//! The server answers `GET` (and `HEAD`) for generated objects, `/obj/<size>` (see
//! [`crate::object`]), keeps connections alive per the protocol version and the
//! `Connection` header, and refuses anything else with a precise status: `400` for a
//! malformed request, `404` for an unknown path or an object over the size limit,
//! `405` for another method, `431` for a request head that is too large, `501` for a
//! request body in chunked transfer coding, `505` for another HTTP version. Every error
//! response closes the connection.
//!
//! Request and response heads are parsed by `httparse` (strict: no obsolete line
//! folding, no spaces around tokens); this module adds what HTTP/1.1 asks of a server
//! on top: one `Host`, a consistent `Content-Length`, no `Transfer-Encoding` body, the
//! `Connection` tokens. Input is attacker input: parsing works on a byte buffer, never
//! panics, bounds the head length ([`MAX_HEAD`]) and the number of header fields, and
//! reports "incomplete" until the whole head is there. While a head arrives, it is
//! parsed again only after a read that brought a line end (a head can only be complete
//! at a `\n`), not after every read.
//!
//! The client ([`fetch`]) sends one `GET` and reads a response with `Content-Length`, or
//! one delimited by the server closing the connection (HTTP/1.0 style).

use std::io::{self, Read, Write};

use crate::object::{self, ObjectSource};

/// The largest request head the server accepts (request line and headers).
pub const MAX_HEAD: usize = 8192;

/// The largest request body the server reads and discards (a `GET` with a body).
pub const MAX_DISCARDED_BODY: usize = 64 * 1024;

/// HTTP version of a request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless `keep-alive` is asked.
    Http10,
    /// HTTP/1.1: the connection stays open unless `close` is asked.
    Http11,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method token, as sent (methods are case-sensitive).
    pub method: String,
    /// The request target (origin form, e.g. `/obj/1024`).
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// Length of the request body that follows the head (from `Content-Length`).
    pub body_len: usize,
}

/// Why a request was refused before routing; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request line or a header is malformed (400).
    #[error("malformed request")]
    Malformed,
    /// The head is longer than [`MAX_HEAD`] (431).
    #[error("request head too large")]
    HeadTooLarge,
    /// A version other than HTTP/1.0 or HTTP/1.1 (505).
    #[error("HTTP version not supported")]
    BadVersion,
    /// A request body in `Transfer-Encoding` (501).
    #[error("transfer coding not implemented")]
    TransferEncoding,
    /// A request body larger than [`MAX_DISCARDED_BODY`] (400).
    #[error("request body too large")]
    BodyTooLarge,
}

impl RequestError {
    /// The status code and reason phrase of the response.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RequestError::Malformed | RequestError::BodyTooLarge => (400, "Bad Request"),
            RequestError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            RequestError::BadVersion => (505, "HTTP Version Not Supported"),
            RequestError::TransferEncoding => (501, "Not Implemented"),
        }
    }
}

/// The most header fields a head may have; more is refused like a head over
/// [`MAX_HEAD`].
pub const MAX_HEADERS: usize = 64;

/// Whether a `Connection` header value holds the token `token` (comma-separated,
/// case-insensitive).
fn has_connection_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Update a keep-alive decision with a `Connection` header value.
fn apply_connection(value: &[u8], keep_alive: &mut bool) {
    if has_connection_token(value, "close") {
        *keep_alive = false;
    } else if has_connection_token(value, "keep-alive") {
        *keep_alive = true;
    }
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces inside, no list),
/// at most 19 of them so it fits a `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether the request line at the start of `buf` (after blank lines) names an
/// `HTTP/...` version that httparse refused: that is a version we do not support
/// (505); anything else in that place is a malformed request (400).
fn names_other_http_version(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = buf[start..]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    line.split(|&b| b == b' ')
        .nth(2)
        .is_some_and(|v| v.starts_with(b"HTTP/"))
}

/// Parse a request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, `Ok(Some((request, head_len)))` when
/// it is complete (the body, if any, starts at `head_len`), or the reason for refusing it.
/// Empty lines before the request line are skipped, as RFC 9112 §2.2 recommends.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // A head longer than MAX_HEAD is never complete within its first MAX_HEAD bytes.
    let used = match req.parse(&buf[..buf.len().min(MAX_HEAD)]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(RequestError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::Version) if names_other_http_version(buf) => {
            return Err(RequestError::BadVersion)
        }
        Err(_) => return Err(RequestError::Malformed),
    };
    // A complete parse has all three; httparse accepts only HTTP/1.0 and HTTP/1.1.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed);
    };
    // httparse admits non-ASCII bytes in the target; this server does not.
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Malformed);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };

    let mut keep_alive = version == Version::Http11;
    let mut body_len: Option<usize> = None;
    let mut host_seen = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            apply_connection(h.value, &mut keep_alive);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or(RequestError::Malformed)?;
            let n = usize::try_from(n).map_err(|_| RequestError::BodyTooLarge)?;
            // Two different Content-Length values are a smuggling attempt.
            if body_len.is_some_and(|prev| prev != n) {
                return Err(RequestError::Malformed);
            }
            body_len = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        } else if h.name.eq_ignore_ascii_case("host") {
            if host_seen {
                return Err(RequestError::Malformed);
            }
            host_seen = true;
        }
    }
    // HTTP/1.1 requires exactly one Host header (RFC 9112 §3.2).
    if version == Version::Http11 && !host_seen {
        return Err(RequestError::Malformed);
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > MAX_DISCARDED_BODY {
        return Err(RequestError::BodyTooLarge);
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        keep_alive,
        body_len,
    };
    Ok(Some((request, used)))
}

/// Read from `stream` into `buf` until `parse` finds a complete message head at the
/// start of `buf`, or refuses it. `parse` runs on what `buf` already holds (pipelined
/// requests), then only after a read that brought a `\n` (a head is complete only once
/// its last line end is there) or when `buf` is over [`MAX_HEAD`] (to refuse it), so a
/// head trickling in over many small reads is not parsed again for every read.
///
/// Returns `Ok(None)` when the stream ends before a complete head.
fn read_head<S: Read, T, E>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
    parse: impl Fn(&[u8]) -> Result<Option<T>, E>,
) -> io::Result<Option<Result<T, E>>> {
    let mut may_be_complete = true;
    loop {
        if may_be_complete || buf.len() > MAX_HEAD {
            match parse(buf) {
                Ok(None) => {}
                Ok(Some(head)) => return Ok(Some(Ok(head))),
                Err(e) => return Ok(Some(Err(e))),
            }
        }
        let n = stream.read(scratch)?;
        if n == 0 {
            return Ok(None);
        }
        may_be_complete = scratch[..n].contains(&b'\n');
        buf.extend_from_slice(&scratch[..n]);
    }
}

/// What the server answers to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// The body.
    pub body: Body,
    /// Whether to send only the head (a `HEAD` request).
    pub head_only: bool,
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A generated object of this many bytes ([`crate::object`]).
    Object(usize),
    /// A short text.
    Text(&'static str),
}

impl Body {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Object(n) => *n,
            Body::Text(t) => t.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest object `/obj/<size>` serves; larger sizes get 404.
    pub max_object: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_object: 64 << 20,
        }
    }
}

const INDEX: &str = "lrp http-server: GET /obj/<bytes>[k|m] returns a generated object\n";

/// Route a parsed request to its response.
pub fn route(req: &Request, cfg: &ServerConfig) -> Response {
    let head_only = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Response {
                status: 405,
                reason: "Method Not Allowed",
                body: Body::Text("method not allowed\n"),
                head_only: false,
            }
        }
    };
    let not_found = Response {
        status: 404,
        reason: "Not Found",
        body: Body::Text("not found\n"),
        head_only,
    };
    // Ignore a query string.
    let path = req.target.split('?').next().unwrap_or("");
    if path == "/" {
        return Response {
            status: 200,
            reason: "OK",
            body: Body::Text(INDEX),
            head_only,
        };
    }
    match path.strip_prefix("/obj/") {
        Some(size) => match object::parse_size(size, cfg.max_object) {
            Ok(n) => Response {
                status: 200,
                reason: "OK",
                body: Body::Object(n),
                head_only,
            },
            Err(_) => not_found,
        },
        None => not_found,
    }
}

/// Write a response head into `out`.
pub fn write_head(out: &mut Vec<u8>, version: Version, resp: &Response, keep_alive: bool) {
    let ctype = match resp.body {
        Body::Object(_) => "application/octet-stream",
        Body::Text(_) => "text/plain",
    };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{} {} {}\r\nServer: lrp\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        version.as_str(),
        resp.status,
        resp.reason,
        ctype,
        resp.body.len(),
        conn
    );
}

/// What one connection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnSummary {
    /// Requests answered (including error responses).
    pub requests: u64,
    /// Response bytes written (heads and bodies).
    pub bytes_out: u64,
}

/// Serve one connection until the client closes it, a response says `close`, or an
/// error response is sent. Pipelined requests are answered in order.
pub fn serve_connection<S: Read + Write>(
    stream: &mut S,
    cfg: &ServerConfig,
    src: &ObjectSource,
) -> io::Result<ConnSummary> {
    let mut summary = ConnSummary::default();
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut scratch = [0u8; 4096];
    let mut head = Vec::with_capacity(256);
    loop {
        let (req, used) = match read_head(stream, &mut buf, &mut scratch, parse_request)? {
            Some(Ok(r)) => r,
            None => return Ok(summary), // client closed (possibly mid-request)
            Some(Err(e)) => {
                let (status, reason) = e.status();
                let resp = Response {
                    status,
                    reason,
                    body: Body::Text("bad request\n"),
                    head_only: false,
                };
                head.clear();
                write_head(&mut head, Version::Http11, &resp, false);
                head.extend_from_slice(b"bad request\n");
                stream.write_all(&head)?;
                stream.flush()?;
                summary.requests += 1;
                summary.bytes_out += head.len() as u64;
                return Ok(summary);
            }
        };
        // Read and discard a request body, if any.
        let mut have = buf.len() - used;
        while have < req.body_len {
            let n = stream.read(&mut scratch)?;
            if n == 0 {
                return Ok(summary);
            }
            buf.extend_from_slice(&scratch[..n]);
            have += n;
        }
        buf.drain(..used + req.body_len);

        let resp = route(&req, cfg);
        let keep_alive = req.keep_alive && resp.status < 400;
        head.clear();
        write_head(&mut head, req.version, &resp, keep_alive);
        summary.bytes_out += head.len() as u64;
        summary.requests += 1;
        if resp.head_only {
            stream.write_all(&head)?;
        } else {
            match resp.body {
                Body::Text(t) => {
                    head.extend_from_slice(t.as_bytes());
                    stream.write_all(&head)?;
                    summary.bytes_out += t.len() as u64;
                }
                Body::Object(n) => {
                    // Send the head together with the start of the body: small objects
                    // leave in one segment.
                    let first = n.min(src.chunk().saturating_sub(head.len()).max(1)).min(n);
                    head.extend_from_slice(src.slice(0, first));
                    stream.write_all(&head)?;
                    let mut off = first;
                    while off < n {
                        let s = src.slice(off, n - off);
                        stream.write_all(s)?;
                        off += s.len();
                    }
                    summary.bytes_out += n as u64;
                }
            }
        }
        stream.flush()?;
        if !keep_alive {
            return Ok(summary);
        }
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The protocol version of the response.
    pub version: Version,
    /// `Content-Length`, if present.
    pub content_length: Option<usize>,
    /// Whether the server keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Why a response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status line or a header is malformed.
    #[error("malformed response")]
    Malformed,
    /// The head is longer than [`MAX_HEAD`].
    #[error("response head too large")]
    HeadTooLarge,
    /// The body uses a transfer coding (chunked), which this client does not read.
    #[error("response uses a transfer coding this client does not read")]
    TransferEncoding,
}

/// Parse a response head from the start of `buf`: `Ok(None)` while incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let used = match resp.parse(&buf[..buf.len().min(MAX_HEAD)]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(ResponseError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
        Err(_) => return Err(ResponseError::Malformed),
    };
    // A complete parse has both; httparse accepts only HTTP/1.0 and HTTP/1.1.
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(ResponseError::Malformed);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut keep_alive = version == Version::Http11;
    let mut content_length: Option<usize> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = self::content_length(h.value)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(ResponseError::Malformed)?;
            // Two different lengths leave the body's end unknown (RFC 9112 §6.3).
            if content_length.is_some_and(|prev| prev != n) {
                return Err(ResponseError::Malformed);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            apply_connection(h.value, &mut keep_alive);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ResponseError::TransferEncoding);
        }
    }
    if content_length.is_none() {
        keep_alive = false; // the body ends when the server closes
    }
    Ok(Some((
        ResponseHead {
            status,
            version,
            content_length,
            keep_alive,
        },
        used,
    )))
}

/// A complete response read by [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedResponse {
    /// The head.
    pub head: ResponseHead,
    /// The body.
    pub body: Vec<u8>,
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Send `GET path` on `stream` and read the whole response. With `keep_alive` the
/// request asks the server to keep the connection open (HTTP/1.1 default); bodies
/// without `Content-Length` are read until the server closes. `max_body` bounds the
/// body read.
pub fn fetch<S: Read + Write>(
    stream: &mut S,
    host: &str,
    path: &str,
    keep_alive: bool,
    max_body: usize,
) -> io::Result<FetchedResponse> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lrp-http-get\r\nConnection: {conn}\r\n\r\n");
    stream.write_all(req.as_bytes())?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(4096);
    let mut scratch = vec![0u8; 16384];
    let (head, used) = read_head(stream, &mut buf, &mut scratch, parse_response_head)?
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            )
        })?
        .map_err(invalid)?;
    let mut body = buf.split_off(used);
    match head.content_length {
        Some(len) => {
            if len > max_body {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response body exceeds the limit",
                ));
            }
            while body.len() < len {
                let want = (len - body.len()).min(scratch.len());
                let n = stream.read(&mut scratch[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside the body",
                    ));
                }
                body.extend_from_slice(&scratch[..n]);
            }
            body.truncate(len);
        }
        None => loop {
            let n = stream.read(&mut scratch)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&scratch[..n]);
            if body.len() > max_body {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response body exceeds the limit",
                ));
            }
        },
    }
    Ok(FetchedResponse { head, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory connection: reads come from `input` (in chunks of `chunk` bytes, to
    /// exercise partial reads), writes go to `output`.
    struct Duplex {
        input: Vec<u8>,
        pos: usize,
        chunk: usize,
        output: Vec<u8>,
    }

    impl Duplex {
        fn new(input: &[u8], chunk: usize) -> Duplex {
            Duplex {
                input: input.to_vec(),
                pos: 0,
                chunk,
                output: Vec::new(),
            }
        }
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Split a server's output into (head, body) responses using the client parser.
    fn responses(mut out: &[u8]) -> Vec<(ResponseHead, Vec<u8>)> {
        let mut v = Vec::new();
        while !out.is_empty() {
            let (head, used) = parse_response_head(out).unwrap().unwrap();
            let len = head.content_length.unwrap();
            v.push((head, out[used..used + len].to_vec()));
            out = &out[used + len..];
        }
        v
    }

    #[test]
    fn parses_a_simple_get() {
        let (req, used) = parse_request(b"GET /obj/10 HTTP/1.1\r\nHost: x\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(used, 33);
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/obj/10");
        assert_eq!(req.version, Version::Http11);
        assert!(req.keep_alive);
        assert_eq!(req.body_len, 0);
    }

    #[test]
    fn keep_alive_defaults_per_version() {
        let p = |s: &[u8]| parse_request(s).unwrap().unwrap().0.keep_alive;
        assert!(!p(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(p(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(p(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!p(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!p(
            b"GET / HTTP/1.1\r\nHost: a\r\nconnection: foo, Close\r\n\r\n"
        ));
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        let full = b"GET /obj/1 HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse_request(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_request(full).unwrap().is_some());
    }

    #[test]
    fn bare_newlines_and_leading_blank_lines_are_accepted() {
        let (req, used) = parse_request(b"\r\n\nGET / HTTP/1.0\nHost: a\n\nX")
            .unwrap()
            .unwrap();
        assert_eq!(req.target, "/");
        assert_eq!(used, 27);
    }

    #[test]
    fn malformed_requests_are_refused_with_the_right_reason() {
        use RequestError::*;
        let cases: &[(&[u8], RequestError)] = &[
            (b"GET /\r\n\r\n", Malformed),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", Malformed),
            (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\n\r\n", Malformed), // no Host
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", Malformed),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                Malformed,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Malformed,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n",
                BodyTooLarge,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                TransferEncoding,
            ),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", BadVersion),
            (b"GET / FTP/1.0\r\n\r\n", Malformed),
            (b"GET \xff HTTP/1.0\r\n\r\n", Malformed),
            (b"GET /caf\xc3\xa9 HTTP/1.0\r\n\r\n", Malformed),
            (b"GET / HTTP/1.0\r\nContent-Length: +1\r\n\r\n", Malformed),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_request(input),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = [b"GET /".as_slice(), &[b'a'; MAX_HEAD], b" HTTP/1.1\r\n"].concat();
        assert_eq!(parse_request(&long), Err(HeadTooLarge));
    }

    #[test]
    fn too_many_header_fields_are_refused_like_a_long_head() {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&req), Err(RequestError::HeadTooLarge));
        let resp = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &b"A: b\r\n".repeat(MAX_HEADERS + 1),
            b"\r\n",
        ]
        .concat();
        assert_eq!(parse_response_head(&resp), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn heads_are_parsed_again_only_after_a_line_end() {
        let input = b"GET /obj/1 HTTP/1.1\r\nHost: a\r\nUser-Agent: slow\r\n\r\nGET /obj/2 HTTP/1.0\r\n\r\n";
        let calls = std::cell::Cell::new(0);
        let counting = |b: &[u8]| {
            calls.set(calls.get() + 1);
            parse_request(b)
        };
        // One byte per read: a parse on the empty buffer, then one per line end.
        let mut conn = Duplex::new(input, 1);
        let mut buf = Vec::new();
        let mut scratch = [0u8; 16];
        let (req, used) = read_head(&mut conn, &mut buf, &mut scratch, counting)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(req.target, "/obj/1");
        assert_eq!(calls.get(), 5);
        // A pipelined request already in the buffer is parsed without a read.
        conn.chunk = 1000;
        conn.pos = input.len();
        buf.drain(..used);
        buf.extend_from_slice(b"GET /obj/2 HTTP/1.0\r\n\r\n");
        let (req, _) = read_head(&mut conn, &mut buf, &mut scratch, parse_request)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(req.target, "/obj/2");
        // The stream ending first is not an error of the head.
        let mut conn = Duplex::new(b"GET / HT", 3);
        let r = read_head(&mut conn, &mut Vec::new(), &mut scratch, parse_request).unwrap();
        assert_eq!(r, None);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes() {
        // A deterministic pseudo-random sweep (xorshift) over short inputs built from
        // bytes that matter to the parser.
        let alphabet = b"GET /HTP1.0\r\n: \t,oc-lsk\xff";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let input: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 50)) as usize + i) % alphabet.len()])
                .collect();
            let _ = parse_request(&input);
            let _ = parse_response_head(&input);
        }
    }

    #[test]
    fn routes_objects_index_and_errors() {
        let cfg = ServerConfig {
            max_object: 1 << 20,
        };
        let req = |m: &str, t: &str| Request {
            method: m.into(),
            target: t.into(),
            version: Version::Http11,
            keep_alive: true,
            body_len: 0,
        };
        assert_eq!(
            route(&req("GET", "/obj/64k"), &cfg).body,
            Body::Object(65536)
        );
        assert_eq!(route(&req("GET", "/obj/0?x=1"), &cfg).body, Body::Object(0));
        assert_eq!(route(&req("GET", "/"), &cfg).status, 200);
        assert!(route(&req("HEAD", "/obj/5"), &cfg).head_only);
        assert_eq!(route(&req("GET", "/obj/2m"), &cfg).status, 404);
        assert_eq!(route(&req("GET", "/obj/abc"), &cfg).status, 404);
        assert_eq!(route(&req("GET", "/other"), &cfg).status, 404);
        assert_eq!(route(&req("POST", "/obj/1"), &cfg).status, 405);
    }

    #[test]
    fn serves_every_bench_size_byte_for_byte_with_keep_alive() {
        let cfg = ServerConfig::default();
        let src = ObjectSource::new(16384);
        let mut input = Vec::new();
        for size in object::BENCH_SIZES.iter().chain(&[1, 1 << 20]) {
            input.extend_from_slice(
                format!("GET /obj/{size} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            );
        }
        input.extend_from_slice(b"GET /obj/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        // Anything after a `close` request is not answered.
        input.extend_from_slice(b"GET /obj/4 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut conn = Duplex::new(&input, 7);
        let summary = serve_connection(&mut conn, &cfg, &src).unwrap();
        assert_eq!(summary.requests, 12);
        let rs = responses(&conn.output);
        assert_eq!(rs.len(), 12);
        let sizes: Vec<usize> = object::BENCH_SIZES
            .iter()
            .copied()
            .chain([1, 1 << 20, 3])
            .collect();
        for ((head, body), size) in rs.iter().zip(sizes) {
            assert_eq!(head.status, 200);
            assert_eq!(body.len(), size);
            assert_eq!(object::verify(0, body), None);
        }
        assert!(rs[..11].iter().all(|(h, _)| h.keep_alive));
        assert!(!rs[11].0.keep_alive);
        assert_eq!(summary.bytes_out, conn.output.len() as u64);
    }

    #[test]
    fn http10_closes_after_one_response() {
        let mut conn = Duplex::new(
            b"GET /obj/100 HTTP/1.0\r\n\r\nGET /obj/1 HTTP/1.0\r\n\r\n",
            1000,
        );
        let s =
            serve_connection(&mut conn, &ServerConfig::default(), &ObjectSource::new(64)).unwrap();
        assert_eq!(s.requests, 1);
        let rs = responses(&conn.output);
        assert_eq!(rs[0].0.version, Version::Http10);
        assert!(!rs[0].0.keep_alive);
        assert_eq!(object::verify(0, &rs[0].1), None);
        assert_eq!(rs[0].1.len(), 100);
    }

    #[test]
    fn errors_close_the_connection() {
        for (input, status) in [
            (&b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n"[..], 405),
            (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404),
            (b"garbage\r\n\r\n", 400),
            (b"GET / HTTP/3.0\r\n\r\n", 505),
        ] {
            let mut input = input.to_vec();
            input.extend_from_slice(b"GET /obj/1 HTTP/1.1\r\nHost: t\r\n\r\n");
            let mut conn = Duplex::new(&input, 5);
            let s = serve_connection(&mut conn, &ServerConfig::default(), &ObjectSource::new(64))
                .unwrap();
            assert_eq!(s.requests, 1);
            let rs = responses(&conn.output);
            assert_eq!(rs.len(), 1);
            assert_eq!(rs[0].0.status, status);
            assert!(!rs[0].0.keep_alive);
        }
    }

    #[test]
    fn request_bodies_are_skipped() {
        let input = b"GET /obj/2 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /obj/3 HTTP/1.1\r\nHost: t\r\n\r\n";
        let mut conn = Duplex::new(input, 3);
        let s =
            serve_connection(&mut conn, &ServerConfig::default(), &ObjectSource::new(64)).unwrap();
        assert_eq!(s.requests, 2);
        let rs = responses(&conn.output);
        assert_eq!(rs[1].1, b"012");
    }

    #[test]
    fn head_requests_get_no_body() {
        let mut conn = Duplex::new(b"HEAD /obj/1000 HTTP/1.0\r\n\r\n", 100);
        serve_connection(&mut conn, &ServerConfig::default(), &ObjectSource::new(64)).unwrap();
        let (head, used) = parse_response_head(&conn.output).unwrap().unwrap();
        assert_eq!(head.content_length, Some(1000));
        assert_eq!(used, conn.output.len());
    }

    #[test]
    fn client_reads_content_length_and_close_delimited_bodies() {
        let mut ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA".to_vec();
        let mut conn = Duplex::new(&ok, 3);
        let r = fetch(&mut conn, "h", "/x", true, 100).unwrap();
        assert_eq!(r.body, b"hello");
        assert!(r.head.keep_alive);
        assert!(conn.output.starts_with(b"GET /x HTTP/1.1\r\nHost: h\r\n"));

        ok = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close".to_vec();
        let r = fetch(&mut Duplex::new(&ok, 4), "h", "/", false, 100).unwrap();
        assert_eq!(r.body, b"until close");
        assert!(!r.head.keep_alive);

        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello";
        let e = fetch(&mut Duplex::new(short, 4), "h", "/", true, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let e = fetch(&mut Duplex::new(chunked, 4), "h", "/", true, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
