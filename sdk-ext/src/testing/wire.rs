//! The byte formats proxy-wasm uses across the ABI: header-map pairs and property paths.
//!
//! Pairs (`proxy_get_header_map_pairs`, `proxy_http_call`, `proxy_send_local_response`):
//! `u32 count`, then `count` × (`u32 name_len`, `u32 value_len`), then for each pair
//! `name \0 value \0`; all integers little-endian. Property paths are their parts joined by
//! `\0`. Decoding never panics: malformed input answers `None`.

/// Header-like pairs as the emulator keeps them: names as text, values as bytes.
pub(crate) type Pairs = Vec<(String, Vec<u8>)>;

/// Encodes pairs in proxy-wasm's map format.
pub(crate) fn encode_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = pairs.iter().fold(4usize, |size, (name, value)| {
        size.saturating_add(name.len())
            .saturating_add(value.len())
            .saturating_add(10)
    });
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (name, value) in pairs {
        bytes.extend_from_slice(&len_u32(name.len()).to_le_bytes());
        bytes.extend_from_slice(&len_u32(value.len()).to_le_bytes());
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value);
        bytes.push(0);
    }
    bytes
}

/// Decodes proxy-wasm's map format; names that are not UTF-8 are converted lossily.
/// An empty input is an empty map; malformed input is `None`.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = usize::try_from(read_u32(bytes, 0)?).ok()?;
    let mut data_at = count.checked_mul(8)?.checked_add(4)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let sizes_at = n.checked_mul(8)?.checked_add(4)?;
        let name_len = usize::try_from(read_u32(bytes, sizes_at)?).ok()?;
        let value_len = usize::try_from(read_u32(bytes, sizes_at.checked_add(4)?)?).ok()?;
        let name = bytes.get(data_at..data_at.checked_add(name_len)?)?;
        data_at = data_at.checked_add(name_len)?.checked_add(1)?;
        let value = bytes.get(data_at..data_at.checked_add(value_len)?)?;
        data_at = data_at.checked_add(value_len)?.checked_add(1)?;
        pairs.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    Some(pairs)
}

/// Joins property path parts the way proxy-wasm serializes them (`\0` between parts).
pub(crate) fn property_key(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(<[u8; 4]>::try_from(raw).ok()?))
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
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
