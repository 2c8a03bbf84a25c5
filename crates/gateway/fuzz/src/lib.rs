//! What the fuzz targets share: cutting one fuzz input into the several fields a parser
//! takes (headers, a host and a path, two JSON documents), as text the way a worker sees it.

use std::borrow::Cow;

/// The input cut at the first `N - 1` occurrences of `sep`; missing fields are empty, and the
/// last one keeps the rest (separators included).
pub fn fields<const N: usize>(data: &[u8], sep: u8) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.iter().position(|&b| b == sep) {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
                break;
            }
        }
    }
    if let Some(last) = out.last_mut() {
        if !rest.is_empty() {
            *last = rest;
        }
    }
    out
}

/// Bytes as a worker would see a header or path: text (a JS string is always valid UTF-16,
/// so invalid sequences become U+FFFD, as `TextDecoder` makes them).
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// An optional header: absent when the field is empty, so "missing" is reachable too.
pub fn header(bytes: &[u8]) -> Option<Cow<'_, str>> {
    (!bytes.is_empty()).then(|| text(bytes))
}
