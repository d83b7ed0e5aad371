//! A raw HTTP/1.1 client over `std::net::TcpStream`. It writes exactly the bytes it is
//! given, so tests can send what real clients refuse to: non-UTF-8 header values, odd
//! framing. Every request gets `Connection: close`; reads time out after 10 s.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::http1;

const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, headers (names lowercased, values raw bytes) and the decoded body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), lossy-decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value of header `name`, raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of header `name`, in order, lossy-decoded.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body, lossy-decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// What the [`crate::EchoUpstream`] saw, parsed from its JSON body. Panics if this
    /// response did not come from the echo upstream.
    pub fn echoed(&self) -> Echoed {
        let v = self.json();
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    panic!(
                        "not an echo-upstream body (missing \"{k}\"); status {}, body: {}",
                        self.status,
                        self.text()
                    )
                })
        };
        let headers = v
            .get("headers")
            .and_then(|h| h.as_array())
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|p| {
                        let name = p.get(0)?.as_str()?.to_string();
                        let value = p.get(1)?.as_str()?.to_string();
                        Some((name, value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Echoed {
            method: field("method"),
            path: field("path"),
            headers,
            body: field("body"),
        }
    }
}

/// The request as the echo upstream described it in its response body.
/// Header names are lowercased; non-UTF-8 bytes were lossy-decoded (U+FFFD).
#[derive(Clone, Debug, PartialEq)]
pub struct Echoed {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Echoed {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `GET path` to 127.0.0.1:port with extra headers (values are raw bytes).
pub fn http_get(port: u16, path: &str, headers: &[(&str, &[u8])]) -> Response {
    http_request(port, "GET", path, headers, b"")
}

/// Any method, with a body (sent with Content-Length when non-empty or when the method
/// usually carries one). Adds `Host: localhost` unless given, and `Connection: close`.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        req.extend_from_slice(b"Host: localhost\r\n");
    }
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    let framed = has("content-length") || has("transfer-encoding");
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if !has("connection") {
        req.extend_from_slice(b"Connection: close\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    send_raw(port, &req)
}

/// Writes `bytes` verbatim to 127.0.0.1:port and reads one response (skipping 1xx).
/// Panics on I/O errors and timeouts; see [`try_send_raw`] for the fallible form.
pub fn send_raw(port: u16, bytes: &[u8]) -> Response {
    try_send_raw(port, bytes)
        .unwrap_or_else(|e| panic!("HTTP exchange with 127.0.0.1:{port} failed: {e}"))
}

/// Connects to 127.0.0.1:port, retrying refused connections for up to 2 s.
fn connect(port: u16) -> io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Like [`send_raw`] but returns I/O errors (connection refused, reset, timeout, bad
/// response) instead of panicking.
pub fn try_send_raw(port: u16, bytes: &[u8]) -> io::Result<Response> {
    let stream = connect(port)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    (&stream).write_all(bytes)?;
    let mut reader = BufReader::new(&stream);
    loop {
        let head = http1::read_head(&mut reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let status: u16 = head
            .start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| http1::invalid(&format!("bad status line {:?}", head.start_line)))?;
        if (100..200).contains(&status) {
            continue;
        }
        let is_head = bytes.starts_with(b"HEAD ");
        let body = if is_head || status == 204 || status == 304 {
            Vec::new()
        } else if head.is_chunked() {
            http1::read_chunked(&mut reader)?
        } else if let Some(len) = head.content_length()? {
            http1::read_exact_len(&mut reader, len)?
        } else {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest)?;
            rest
        };
        let _ = stream.shutdown(Shutdown::Both);
        return Ok(Response {
            status,
            headers: head.headers,
            body,
        });
    }
}

/// Opens a TCP connection to 127.0.0.1:port, writes `bytes`, half-closes, and returns
/// everything read until the peer closes or resets (10 s read timeout).
pub fn tcp_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let run = || -> io::Result<Vec<u8>> {
        let mut stream = connect(port)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        // A filter may close the connection before (or while) the bytes go out: that is
        // the peer closing, with nothing received.
        let closed = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::NotConnected
            )
        };
        match stream
            .write_all(bytes)
            .and_then(|()| stream.shutdown(Shutdown::Write))
        {
            Ok(()) => {}
            Err(e) if closed(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // A filter that closes the connection: what arrived before the reset.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    };
    run().unwrap_or_else(|e| panic!("TCP exchange with 127.0.0.1:{port} failed: {e}"))
}
