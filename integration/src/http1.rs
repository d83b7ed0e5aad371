//! The few pieces of HTTP/1.1 wire format both the client and the echo upstream need:
//! reading a message head and a body (Content-Length, chunked, or until EOF).
//! Header values stay bytes throughout.

use std::io::{self, BufRead, Read};

/// A request or status line plus headers (names lowercased, values raw bytes).
pub(crate) struct Head {
    pub start_line: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
    }

    pub fn is_chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    pub fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
    }

    pub fn content_length(&self) -> io::Result<Option<usize>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| invalid("bad content-length")),
        }
    }
}

pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn trim_crlf(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Reads a message head. `Ok(None)` on a clean EOF before any byte of it.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if !trim_crlf(&line).is_empty() {
            break;
        }
    }
    let start_line = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        let l = trim_crlf(&line);
        if l.is_empty() {
            break;
        }
        let colon = l
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("header line without ':'"))?;
        let (name, value) = l.split_at(colon);
        let name = String::from_utf8_lossy(trim_ows(name)).to_ascii_lowercase();
        headers.push((name, trim_ows(&value[1..]).to_vec()));
    }
    Ok(Some(Head {
        start_line,
        headers,
    }))
}

/// Reads a chunked body (and discards trailers).
pub(crate) fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size_field = trim_crlf(&line)
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let size = std::str::from_utf8(trim_ows(size_field))
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 || trim_crlf(&line).is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_until(b'\n', &mut line)?;
    }
}

/// Reads exactly `len` bytes.
pub(crate) fn read_exact_len(r: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}
