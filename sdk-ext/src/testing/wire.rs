//! The byte formats proxy-wasm uses across the ABI: header-map pairs and property paths.
//!
//! Pairs (`proxy_get_header_map_pairs`, `proxy_http_call`, `proxy_send_local_response`):
//! `u32 count`, then `count` × (`u32 name_len`, `u32 value_len`), then for each pair
//! `name \0 value \0`; all integers little-endian. Property paths are their parts joined by
//! `\0`. Decoding never panics: malformed input answers `None`.

/// Header-like pairs as the emulator keeps them: names as text, values as bytes.
pub(crate) type Pairs = Vec<(String, Vec<u8>)>;

/// Encodes pairs in proxy-wasm's map format, with sdk-ext's one codec
/// ([`crate::host::encode_pairs`]). A map too large for the format's `u32` lengths (never
/// built by a test) encodes as an empty map.
pub(crate) fn encode_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    crate::host::encode_pairs(&borrowed).unwrap_or_else(|_| 0u32.to_le_bytes().to_vec())
}

/// Decodes proxy-wasm's map format ([`crate::host::decode_pairs`]); names that are not
/// UTF-8 are converted lossily. An empty input is an empty map; malformed input is `None`.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Pairs> {
    let pairs = crate::host::decode_pairs(bytes)?;
    Some(
        pairs
            .into_iter()
            .map(|(n, v)| (String::from_utf8_lossy(&n).into_owned(), v))
            .collect(),
    )
}

/// Joins property path parts the way proxy-wasm serializes them (`\0` between parts).
pub(crate) fn property_key(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = vec![
            (":path".to_string(), b"/a".to_vec()),
            ("x".to_string(), vec![0xff, 0]),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)), Some(pairs));
    }

    #[test]
    fn malformed_is_none() {
        assert_eq!(decode_pairs(&[1, 0, 0, 0]), None);
        assert_eq!(
            decode_pairs(&[1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, b'a']),
            None
        );
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_pairs(&[]), Some(Vec::new()));
    }
}
