//! sdk_ext::matching: a request matcher compiled from arbitrary JSON (through the reader
//! configs use), matched against arbitrary requests (bytes in every header, path and host).
//! Input: `spec \0 request \0 request ...`, each request `name:value` lines (`\n`), values
//! any bytes; a `source` line sets the client address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdk_ext::matching::{RequestMatchSpec, RequestMatcher};
use sdk_ext::request::RequestData;

fn request(text: &[u8]) -> RequestData {
    let mut request = RequestData::default();
    for line in text.split(|b| *b == b'\n') {
        // The name ends at the first ':' after position 0 (pseudo-headers start with one).
        let at = line.iter().skip(1).position(|b| *b == b':').map(|i| i + 1);
        let (name, value) = match at {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &b""[..]),
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if name == "source" {
            request.source_address = Some(value.to_vec());
        } else {
            request.headers.push((name, value.to_vec()));
        }
    }
    request
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let Some(spec) = parts.next() else { return };
    let Ok(spec) = sdk_ext::json::from_slice::<RequestMatchSpec>(spec) else {
        return;
    };
    let Ok(matcher) = RequestMatcher::compile(&spec, "match") else {
        return;
    };
    for text in parts {
        let _ = matcher.matches(&mut request(text));
    }
});
