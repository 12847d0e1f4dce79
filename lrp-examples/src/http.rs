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
//! The parser is for attacker input: it works on a byte buffer, never panics, bounds the
//! head length, and reports "incomplete" until the whole head is there.
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

/// Find the end of a message head: returns the length of the head including the blank
/// line, for either `\r\n\r\n` or bare `\n\n` line ends.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Split a head into lines without their `\r\n` / `\n` ends.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Comma-separated tokens of a `Connection` header value, lowercased.
fn connection_tokens(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').map(|t| t.trim().to_ascii_lowercase())
}

/// Parse a request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, `Ok(Some((request, head_len)))` when
/// it is complete (the body, if any, starts at `head_len`), or the reason for refusing it.
/// Empty lines before the request line are skipped, as RFC 9112 §2.2 recommends.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, RequestError> {
    let skipped = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &buf[skipped..];
    let Some(end) = head_end(rest) else {
        return if buf.len() > MAX_HEAD {
            Err(RequestError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    if skipped + end > MAX_HEAD {
        return Err(RequestError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&rest[..end]).map_err(|_| RequestError::Malformed)?;
    let mut it = lines(head.as_bytes());
    let request_line = it.next().ok_or(RequestError::Malformed)?;
    // The head was valid UTF-8 and lines split at ASCII bytes, so this cannot fail.
    let request_line = std::str::from_utf8(request_line).map_err(|_| RequestError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(RequestError::Malformed);
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Malformed);
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v if v.starts_with("HTTP/") && v.len() == 8 => return Err(RequestError::BadVersion),
        _ => return Err(RequestError::Malformed),
    };

    let mut keep_alive = version == Version::Http11;
    let mut body_len: Option<usize> = None;
    let mut host_seen = false;
    for line in it {
        if line.is_empty() {
            continue; // the blank line ending the head
        }
        // Obsolete line folding (a continuation line) is refused (RFC 9112 §5.2).
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(RequestError::Malformed);
        }
        let line = std::str::from_utf8(line).map_err(|_| RequestError::Malformed)?;
        let (name, value) = line.split_once(':').ok_or(RequestError::Malformed)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(RequestError::Malformed);
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if name.eq_ignore_ascii_case("connection") {
            for token in connection_tokens(value) {
                match token.as_str() {
                    "close" => keep_alive = false,
                    "keep-alive" => keep_alive = true,
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::Malformed);
            }
            let n: u64 = value.parse().map_err(|_| RequestError::Malformed)?;
            let n = usize::try_from(n).map_err(|_| RequestError::BodyTooLarge)?;
            // Two different Content-Length values are a smuggling attempt.
            if body_len.is_some_and(|prev| prev != n) {
                return Err(RequestError::Malformed);
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        } else if name.eq_ignore_ascii_case("host") {
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
    Ok(Some((request, skipped + end)))
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
        let parsed = parse_request(&buf);
        let (req, used) = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => {
                let n = stream.read(&mut scratch)?;
                if n == 0 {
                    return Ok(summary); // client closed (possibly mid-request)
                }
                buf.extend_from_slice(&scratch[..n]);
                continue;
            }
            Err(e) => {
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
    let Some(end) = head_end(buf) else {
        return if buf.len() > MAX_HEAD {
            Err(ResponseError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(ResponseError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ResponseError::Malformed)?;
    let mut it = head.lines();
    let status_line = it.next().ok_or(ResponseError::Malformed)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = match parts.next() {
        Some("HTTP/1.1") => Version::Http11,
        Some("HTTP/1.0") => Version::Http10,
        _ => return Err(ResponseError::Malformed),
    };
    let status = parts.next().ok_or(ResponseError::Malformed)?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::Malformed);
    }
    let status: u16 = status.parse().map_err(|_| ResponseError::Malformed)?;
    let mut keep_alive = version == Version::Http11;
    let mut content_length = None;
    for line in it {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(ResponseError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ResponseError::Malformed);
            }
            content_length = Some(value.parse().map_err(|_| ResponseError::Malformed)?);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in connection_tokens(value) {
                match token.as_str() {
                    "close" => keep_alive = false,
                    "keep-alive" => keep_alive = true,
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
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
        end,
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
    let (head, used) = loop {
        if let Some(h) = parse_response_head(&buf).map_err(invalid)? {
            break h;
        }
        let n = stream.read(&mut scratch)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
        buf.extend_from_slice(&scratch[..n]);
    };
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
