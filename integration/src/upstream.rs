//! In-process upstreams Envoy proxies to: an HTTP/1.1 echo server and a TCP echo server.
//! Both listen on 127.0.0.1:<port chosen by the kernel> and stop when dropped.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::http1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept loop + per-connection threads, shared by both upstreams.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    fn start(name: &str, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream on 127.0.0.1:0");
        let port = listener.local_addr().expect("upstream local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let handle = Arc::new(handle);
        let accept = {
            let stop = stop.clone();
            let conns = conns.clone();
            let name = name.to_string();
            thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        if let Ok(clone) = stream.try_clone() {
                            lock(&conns).push(clone);
                        }
                        let handle = handle.clone();
                        let _ = thread::Builder::new()
                            .name(format!("{name}-conn"))
                            .spawn(move || handle(stream));
                    }
                })
                .expect("start upstream accept thread")
        };
        Server {
            port,
            stop,
            conns,
            accept: Some(accept),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then cut every open connection so its thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for conn in lock(&self.conns).drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// One request as the echo upstream received it (header names lowercased, values raw).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive), raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

struct EchoState {
    requests: Mutex<Vec<RecordedRequest>>,
    status: Mutex<u16>,
    response_headers: Mutex<Vec<(String, Vec<u8>)>>,
}

/// An HTTP/1.1 upstream that answers every request with `200` (or the status set with
/// [`EchoUpstream::set_status`]), `content-type: application/json`, any extra response
/// headers, and a JSON body describing what reached it:
/// `{"method": .., "path": .., "headers": [[name, value], ..], "body": ..}`
/// (names lowercased, non-UTF-8 bytes lossy-decoded; [`EchoUpstream::requests`] keeps the
/// raw bytes). Keep-alive capable; reads Content-Length and chunked request bodies.
pub struct EchoUpstream {
    state: Arc<EchoState>,
    server: Server,
}

impl EchoUpstream {
    pub fn start() -> EchoUpstream {
        let state = Arc::new(EchoState {
            requests: Mutex::new(Vec::new()),
            status: Mutex::new(200),
            response_headers: Mutex::new(Vec::new()),
        });
        let server = {
            let state = state.clone();
            Server::start("echo-upstream", move |stream| {
                let _ = serve_echo(&state, stream);
            })
        };
        EchoUpstream { state, server }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The status of every following response.
    pub fn set_status(&self, status: u16) {
        *lock(&self.state.status) = status;
    }

    /// Adds a header to every following response (repeatable; raw bytes allowed).
    pub fn add_response_header(&self, name: &str, value: impl AsRef<[u8]>) {
        lock(&self.state.response_headers).push((name.to_string(), value.as_ref().to_vec()));
    }

    /// How many requests have been received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.state.requests).last().cloned()
    }
}

fn serve_echo(state: &EchoState, stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(head) = http1::read_head(&mut reader)? {
        let mut parts = head.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let body = if head.is_chunked() {
            http1::read_chunked(&mut reader)?
        } else {
            let len = head.content_length()?.unwrap_or(0);
            http1::read_exact_len(&mut reader, len)?
        };
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let json = serde_json::json!({
            "method": method,
            "path": path,
            "headers": head.headers.iter().map(|(n, v)| [n.clone(), lossy(v)]).collect::<Vec<_>>(),
            "body": lossy(&body),
        });
        let close = head.wants_close();
        lock(&state.requests).push(RecordedRequest {
            method: method.clone(),
            path,
            headers: head.headers,
            body,
        });

        let payload = json.to_string().into_bytes();
        let status = *lock(&state.status);
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
        out.extend_from_slice(b"content-type: application/json\r\n");
        for (name, value) in lock(&state.response_headers).iter() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let no_body = method == "HEAD" || status == 204 || status == 304;
        if status != 204 && status != 304 {
            out.extend_from_slice(format!("content-length: {}\r\n", payload.len()).as_bytes());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !no_body {
            out.extend_from_slice(&payload);
        }
        writer.write_all(&out)?;
        writer.flush()?;
        if close {
            break;
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

struct FixedState {
    response: Mutex<(u16, Vec<u8>)>,
    delay: Mutex<Duration>,
    paths: Mutex<Vec<String>>,
}

/// An HTTP/1.1 upstream that answers every request with a fixed status and body (both
/// changeable while it runs, e.g. a JWKS endpoint that starts failing), optionally after
/// a delay (to provoke a callout timeout). Records each request's path.
pub struct FixedUpstream {
    state: Arc<FixedState>,
    server: Server,
}

impl FixedUpstream {
    pub fn start(status: u16, body: impl Into<Vec<u8>>) -> FixedUpstream {
        let state = Arc::new(FixedState {
            response: Mutex::new((status, body.into())),
            delay: Mutex::new(Duration::ZERO),
            paths: Mutex::new(Vec::new()),
        });
        let server = {
            let state = state.clone();
            Server::start("fixed-upstream", move |stream| {
                let _ = serve_fixed(&state, stream);
            })
        };
        FixedUpstream { state, server }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The status and body of every following response.
    pub fn set_response(&self, status: u16, body: impl Into<Vec<u8>>) {
        *lock(&self.state.response) = (status, body.into());
    }

    /// Waits this long before each following response.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// Paths requested so far, oldest first.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.state.paths).clone()
    }
}

fn serve_fixed(state: &FixedState, stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(head) = http1::read_head(&mut reader)? {
        let path = head
            .start_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if head.is_chunked() {
            http1::read_chunked(&mut reader)?;
        } else {
            let len = head.content_length()?.unwrap_or(0);
            http1::read_exact_len(&mut reader, len)?;
        }
        lock(&state.paths).push(path);
        let delay = *lock(&state.delay);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let (status, body) = lock(&state.response).clone();
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reason(status),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        writer.write_all(&out)?;
        writer.flush()?;
        if head.wants_close() {
            break;
        }
    }
    Ok(())
}

/// A TCP upstream that writes back every byte it reads, and closes its side when the peer
/// half-closes. Counts connections.
pub struct TcpEchoUpstream {
    connections: Arc<AtomicUsize>,
    server: Server,
}

impl TcpEchoUpstream {
    pub fn start() -> TcpEchoUpstream {
        let connections = Arc::new(AtomicUsize::new(0));
        let server = {
            let connections = connections.clone();
            Server::start("tcp-echo-upstream", move |mut stream| {
                connections.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            })
        };
        TcpEchoUpstream {
            connections,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// How many connections have been accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
