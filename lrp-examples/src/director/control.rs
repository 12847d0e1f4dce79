//! The director's Unix control socket: one JSON request per line, one JSON response
//! per line.
//!
//! [`ControlSocket::bind`] listens on a path (a stale socket file there is removed
//! first; a live one, another director's, is refused) and removes it again on drop.
//! A listener thread accepts connections, one thread per connection reads lines of at
//! most [`MAX_REQUEST`] bytes and parses them ([`parse_request`]); a request that
//! parses is handed to the director's poll loop as a [`Pending`] over a channel
//! ([`ControlSocket::try_recv`]), which applies it between two poll rounds and answers
//! it ([`Pending::answer`]). The forwarding loop never blocks on a client.
//!
//! Requests, tagged by `command`:
//!
//! * `{"command": "stats"}` (optionally `"service": NAME`): every service's
//!   statistics, `{"ok": true, "services": [ServiceStats + "scheduler", ...]}`.
//! * `{"command": "set-weight", "service": NAME, "server": "ADDR[:PORT]", "weight": W}`:
//!   W from 0 (drain: no new connections) to 65535.
//! * `{"command": "add-server", "service": NAME, "addr": ADDR, "port": P?, "weight": W?,
//!   "mac": "xx:xx:xx:xx:xx:xx"?}`: the port defaults to the service's, the weight to
//!   1, the MAC to the one the director has learned by ARP.
//! * `{"command": "remove-server", "service": NAME, "addr": ADDR, "port": P?}`.
//!
//! Responses are `{"ok": true, ...}` or `{"ok": false, "error": MESSAGE}`; the message
//! names what was wrong (malformed JSON, an unknown command or field, a request longer
//! than [`MAX_REQUEST`], an unknown service or server, a bad weight). After an
//! oversized request the connection is closed (the rest of the line is not read).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// The longest request line, in bytes (without its newline).
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a connection waits for the poll loop's answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read and write timeout of a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listener looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Every service's statistics (or one service's).
    Stats {
        /// Only this service.
        #[serde(default)]
        service: Option<String>,
    },
    /// Change a real server's weight.
    SetWeight {
        /// The service's name.
        service: String,
        /// `ADDR:PORT`, or `ADDR` for the service's port.
        server: String,
        /// The new weight, 0 to 65535.
        weight: u64,
    },
    /// Add a real server.
    AddServer {
        /// The service's name.
        service: String,
        /// The server's address.
        addr: IpAddr,
        /// Its port (default: the service's).
        #[serde(default)]
        port: Option<u16>,
        /// Its weight (default 1).
        #[serde(default)]
        weight: Option<u64>,
        /// Its MAC (default: learned by ARP).
        #[serde(default)]
        mac: Option<String>,
    },
    /// Remove a real server.
    RemoveServer {
        /// The service's name.
        service: String,
        /// The server's address.
        addr: IpAddr,
        /// Its port (default: the service's).
        #[serde(default)]
        port: Option<u16>,
    },
}

/// `ADDR:PORT` or `ADDR` (then `default_port`).
pub fn parse_server(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| format!("bad server address {s:?} (expected ADDR:PORT or ADDR)"))
}

/// Parse one request line (without its newline); the error names what was wrong.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(too_long());
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed JSON request: {e}"))?;
    match value.get("command") {
        Some(Value::String(_)) => {}
        Some(_) => return Err("\"command\" must be a string".into()),
        None if value.is_object() => return Err("missing \"command\"".into()),
        None => return Err("a request is a JSON object with a \"command\"".into()),
    }
    Request::deserialize(value).map_err(|e| format!("bad request: {e}"))
}

fn too_long() -> String {
    format!("request longer than {MAX_REQUEST} bytes")
}

/// `{"ok": false, "error": message}`.
pub fn error_response(message: &str) -> Value {
    json!({ "ok": false, "error": message })
}

/// A parsed request waiting for the poll loop.
#[derive(Debug)]
pub struct Pending {
    /// The request.
    pub request: Request,
    reply: mpsc::Sender<Value>,
}

impl Pending {
    /// Answer it: `Ok(v)` is sent as `v` with `"ok": true` added (when `v` is an
    /// object), `Err(m)` as an [`error_response`].
    pub fn answer(self, result: Result<Value, String>) {
        let response = match result {
            Ok(mut v) => {
                if let Value::Object(map) = &mut v {
                    map.insert("ok".into(), Value::Bool(true));
                }
                v
            }
            Err(m) => error_response(&m),
        };
        // The client may have gone: nothing to do then.
        let _ = self.reply.send(response);
    }
}

/// The listening control socket; the file is removed and the listener stopped on drop.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: mpsc::Receiver<Pending>,
}

impl ControlSocket {
    /// Listen on `path`: a stale socket file is removed first; a path where a director
    /// answers, or that is not a socket, is refused.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another director is listening there", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, requests) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lrp-control".into())
            .spawn(move || accept_loop(&listener, &flag, &tx))?;
        Ok(ControlSocket {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
            requests,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A request waiting to be applied, if any (never blocks).
    pub fn try_recv(&self) -> Option<Pending> {
        self.requests.try_recv().ok()
    }

    /// Wait at most `timeout` for a request.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Pending> {
        self.requests.recv_timeout(timeout).ok()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, tx: &mpsc::Sender<Pending>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let tx = tx.clone();
                // A connection that cannot get a thread is dropped (closed).
                let _ = std::thread::Builder::new()
                    .name("lrp-control-conn".into())
                    .spawn(move || drop(serve(stream, &tx)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Answer the requests of one connection until it closes (or sends too long a line).
fn serve(stream: UnixStream, tx: &mpsc::Sender<Pending>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        } else if line.len() > MAX_REQUEST {
            writeln!(writer, "{}", error_response(&too_long()))?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let response = match parse_request(&line) {
            Ok(request) => submit(tx, request),
            Err(m) => error_response(&m),
        };
        writeln!(writer, "{response}")?;
        writer.flush()?;
    }
}

fn submit(tx: &mpsc::Sender<Pending>, request: Request) -> Value {
    let (reply, answer) = mpsc::channel();
    if tx.send(Pending { request, reply }).is_err() {
        return error_response("the director is stopping");
    }
    answer
        .recv_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|_| error_response("the director did not answer in time"))
}

/// Send `request` to the director at `path` and read its response (the client side).
pub fn request(path: &Path, request: &Value) -> io::Result<Value> {
    let stream = UnixStream::connect(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT + Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    writeln!(writer, "{request}")?;
    writer.flush()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed response from {}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lrp-control-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("control.sock")
    }

    /// Send raw bytes, read one response line.
    fn exchange(path: &Path, bytes: &[u8]) -> Value {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        // An oversized request may be cut off by the server before all is written.
        let _ = w.write_all(bytes);
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn error_of(v: &Value) -> String {
        assert_eq!(v["ok"], Value::Bool(false), "{v}");
        v["error"].as_str().unwrap().to_owned()
    }

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse_request(br#"{"command":"stats"}"#),
            Ok(Request::Stats { service: None })
        );
        assert_eq!(
            parse_request(
                br#"{"command":"set-weight","service":"web","server":"10.0.0.1:80","weight":0}"#
            ),
            Ok(Request::SetWeight {
                service: "web".into(),
                server: "10.0.0.1:80".into(),
                weight: 0
            })
        );
        assert!(matches!(
            parse_request(br#"{"command":"add-server","service":"w","addr":"10.0.0.2"}"#),
            Ok(Request::AddServer { port: None, .. })
        ));
        assert_eq!(
            parse_server("10.0.0.1", 80),
            Ok("10.0.0.1:80".parse().unwrap())
        );
        assert!(parse_server("nope", 80).unwrap_err().contains("nope"));
    }

    #[test]
    fn malformed_requests_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "malformed JSON"),
            (b"stats", "malformed JSON"),
            (b"[1,2]", "JSON object"),
            (br#"{"service":"web"}"#, "missing \"command\""),
            (br#"{"command":7}"#, "must be a string"),
            (br#"{"command":"frobnicate"}"#, "frobnicate"),
            (br#"{"command":"set-weight","service":"w"}"#, "server"),
            (
                br#"{"command":"set-weight","service":"w","server":"a","weight":-1}"#,
                "bad request",
            ),
            (br#"{"command":"stats","bogus":1}"#, "bogus"),
        ];
        for (line, want) in cases {
            let err = parse_request(line).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1])
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn socket_answers_errors_and_forwards_requests() {
        let path = temp_socket("serve");
        // A stale socket file is replaced.
        drop(UnixListener::bind(&path));
        let control = ControlSocket::bind(&path).unwrap();
        // A live one is refused.
        assert_eq!(
            ControlSocket::bind(&path).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );

        assert!(error_of(&exchange(&path, b"{not json\n")).contains("malformed JSON"));
        assert!(error_of(&exchange(&path, b"{\"command\":\"nope\"}\n")).contains("nope"));
        let mut big = vec![b'x'; MAX_REQUEST + 10];
        big.push(b'\n');
        assert!(error_of(&exchange(&path, &big)).contains("longer than 65536"));
        // Exactly MAX_REQUEST bytes is not too long (only malformed).
        let mut max = vec![b' '; MAX_REQUEST - 2];
        max.splice(0..0, *b"{}");
        max.push(b'\n');
        assert_eq!(max.len(), MAX_REQUEST + 1);
        assert!(error_of(&exchange(&path, &max)).contains("missing"));

        // A good request reaches the poll loop, whose answer reaches the client.
        let answer = std::thread::spawn({
            let path = path.clone();
            move || request(&path, &json!({"command": "stats"})).unwrap()
        });
        let pending = control
            .recv_timeout(Duration::from_secs(10))
            .expect("the request was forwarded");
        assert_eq!(pending.request, Request::Stats { service: None });
        pending.answer(Ok(json!({"services": []})));
        assert_eq!(answer.join().unwrap(), json!({"ok": true, "services": []}));

        // Several requests on one connection, one response line each.
        let stream = UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        w.write_all(b"nope\n\n{\"command\":\"stats\",\"service\":\"w\"}\n")
            .unwrap();
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("malformed JSON"), "{line}");
        let pending = control.recv_timeout(Duration::from_secs(10)).unwrap();
        pending.answer(Err("unknown service \"w\"".into()));
        line.clear();
        r.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(error_of(&v), "unknown service \"w\"");

        drop(control);
        assert!(!path.exists(), "the socket file is removed on drop");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
