//! sdk_ext::template: header-value templates parsed from arbitrary text and rendered for
//! arbitrary requests; a bounded render never exceeds its limit. Input:
//! `template \0 limit(2 bytes LE) request`, the request as `name:value` lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdk_ext::request::RequestData;
use sdk_ext::template::Template;

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(template) = Template::parse(text, "value") else {
        return;
    };
    let (limit, rest) = match rest {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (64, rest),
    };
    let mut request = RequestData::default();
    for line in rest.split(|b| *b == b'\n') {
        let at = line.iter().skip(1).position(|b| *b == b':').map(|i| i + 1);
        let (name, value) = match at {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &b""[..]),
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        match name.as_str() {
            "source" => request.source_address = Some(value.to_vec()),
            "route" => request.route_name = Some(value.to_vec()),
            _ => request.headers.push((name, value.to_vec())),
        }
    }
    if let Ok(value) = template.render_within(&mut request, limit) {
        assert!(value.len() <= limit, "rendered {} bytes over a {limit} limit", value.len());
    }
    let _ = template.render(&mut request);
});
