//! Request correlation: which incoming request ids are kept, and W3C Trace Context
//! (`traceparent`) parsing, propagation and generation. Randomness and ULID generation stay
//! with the caller (the worker), so everything here is deterministic and testable.

use std::fmt;

/// Keeps an incoming `X-Request-Id` only if it is a well-formed ULID or UUID; otherwise `None`
/// and the caller generates a fresh ULID. Free-form ids are refused because the id is echoed
/// into headers and logs, and a client must not be able to inject arbitrary text there.
///
/// - ULID: 26 Crockford base32 characters (`I`, `L`, `O`, `U` excluded; either case, as
///   Crockford decoding is case-insensitive), first character `0`–`7` (128-bit bound).
/// - UUID: `8-4-4-4-12` hex digits, either case (no braces, no `urn:uuid:` prefix).
///
/// The id is returned unchanged (not re-cased) so it still matches the client's own logs.
pub fn accept_request_id(incoming: Option<&str>) -> Option<String> {
    let id = incoming?;
    (is_ulid(id) || is_uuid(id)).then(|| id.to_owned())
}

fn is_ulid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26
        && (b'0'..=b'7').contains(&b[0])
        && b.iter().all(|&c| {
            let c = c.to_ascii_uppercase();
            (c.is_ascii_digit() || c.is_ascii_uppercase())
                && !matches!(c, b'I' | b'L' | b'O' | b'U')
        })
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// The `sampled` bit of `trace-flags`.
pub const FLAG_SAMPLED: u8 = 0x01;

/// Length of a version-00 header: `00-` + 32 + `-` + 16 + `-` + 2.
const V00_LEN: usize = 55;

impl TraceParent {
    /// Parses a `traceparent` header value per the spec's processing model:
    /// - version `00` must be exactly `00-{32 hex}-{16 hex}-{2 hex}` (55 chars, nothing after);
    /// - version `ff` is invalid;
    /// - a higher version is parsed by the version-00 layout, and may carry more fields after
    ///   a `-`; only its sampled flag is kept, as the spec directs;
    /// - hex must be lower-case; an all-zero trace id or parent id is invalid.
    ///
    /// Optional whitespace around the value (HTTP OWS) is ignored. `None` means "start a new
    /// trace", never an error for the client.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let s = header.trim_matches([' ', '\t']).as_bytes();
        if s.len() < V00_LEN {
            return None;
        }
        let version = hex_byte(s[0], s[1])?;
        if version == 0xff || s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return None;
        }
        match (version, s.get(V00_LEN)) {
            (0, None) => {}
            (0, Some(_)) => return None,
            (_, None | Some(b'-')) => {}
            (_, Some(_)) => return None,
        }
        let mut trace_id = [0u8; 16];
        decode_hex(&s[3..35], &mut trace_id)?;
        let mut parent_id = [0u8; 8];
        decode_hex(&s[36..52], &mut parent_id)?;
        let mut flags = hex_byte(s[53], s[54])?;
        if version != 0 {
            flags &= FLAG_SAMPLED;
        }
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace from caller-supplied randomness, sampled (`flags = 01`). An all-zero input
    /// (invalid per spec) gets its last byte set to 1 rather than failing.
    pub fn generate(random16: [u8; 16], random8: [u8; 8]) -> TraceParent {
        TraceParent {
            trace_id: non_zero(random16),
            parent_id: non_zero(random8),
            flags: FLAG_SAMPLED,
        }
    }

    /// The traceparent to send downstream: same trace and flags, this hop's span id as parent.
    pub fn child(&self, new_parent_id: [u8; 8]) -> TraceParent {
        TraceParent {
            parent_id: non_zero(new_parent_id),
            ..*self
        }
    }

    /// The header value, always written as version `00` (the only version we know).
    pub fn to_header(&self) -> String {
        self.to_string()
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn parent_id_hex(&self) -> String {
        hex(&self.parent_id)
    }

    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.parent_id_hex(),
            self.flags
        )
    }
}

fn non_zero<const N: usize>(mut bytes: [u8; N]) -> [u8; N] {
    if bytes.iter().all(|&b| b == 0) {
        bytes[N - 1] = 1;
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes lower-case hex into `out` (exactly twice its length); upper case is invalid in
/// `traceparent`, and the `hex` crate accepts both, so it is refused first.
fn decode_hex(src: &[u8], out: &mut [u8]) -> Option<()> {
    if src.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    hex::decode_to_slice(src, out).ok()
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let mut byte = [0u8];
    decode_hex(&[hi, lo], &mut byte)?;
    Some(byte[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn accepts_ulids_and_uuids() {
        for ok in [
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01arz3ndektsv4rrffq69g5fav",
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "00000000000000000000000000",
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(accept_request_id(Some(ok)).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "hello",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  // above 2^128
            "01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25 chars
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX", // 27 chars
            "01ARZ3NDEKTSV4RRFFQ69G5FAI",  // I is not Crockford
            "01ARZ3NDEKTSV4RRFFQ69G5FAL",
            "01ARZ3NDEKTSV4RRFFQ69G5FAO",
            "01ARZ3NDEKTSV4RRFFQ69G5FAU",
            "01ARZ3NDEKTSV4RRFFQ69G5FA-",
            " 01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RRFFQ69G5FÀ", // 26 bytes, not ASCII
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "123e4567-e89b-12d3-a456_426614174000",
            "123e4567-e89b-12d3-a4564-26614174000",
            "abc\r\nX-Injected: 1",
        ] {
            assert_eq!(accept_request_id(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(accept_request_id(None), None);
    }

    #[test]
    fn parses_spec_example() {
        let tp = TraceParent::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id_hex(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        assert_eq!(tp.to_header(), SPEC_EXAMPLE);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let tp = TraceParent::parse(unsampled).unwrap();
        assert!(!tp.sampled());
        assert_eq!(tp.to_header(), unsampled);
        // Unknown flag bits are kept on version 00 (e.g. Level 2's random-trace-id bit).
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
        assert_eq!(tp.map(|t| t.flags), Some(3));
    }

    #[test]
    fn ignores_surrounding_whitespace() {
        let padded = format!(" \t{SPEC_EXAMPLE}\t ");
        assert_eq!(
            TraceParent::parse(&padded),
            TraceParent::parse(SPEC_EXAMPLE)
        );
    }

    #[test]
    fn future_versions_parse_by_the_00_layout() {
        let tp = TraceParent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-will-be-like",
        )
        .unwrap();
        assert_eq!(tp.flags, 1, "only the sampled bit survives");
        assert_eq!(tp.to_header(), SPEC_EXAMPLE, "re-emitted as version 00");
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_some()
        );
        // After the flags a future version still needs a dash.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x")
                .is_none()
        );
    }

    #[test]
    fn rejects_invalid_headers() {
        for bad in [
            "",
            "00",
            // version ff is forbidden; version must be lower-case hex
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // upper case hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // wrong lengths and separators
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            // version 00 allows nothing after the flags
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn child_keeps_trace_and_flags() {
        let parent = TraceParent::parse(SPEC_EXAMPLE).unwrap();
        let child = parent.child([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
        assert_eq!(
            child.to_header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
        );
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(parent.child([0; 8]).parent_id, [0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn generate_is_valid_even_from_zeros() {
        let tp = TraceParent::generate([0xab; 16], [0xcd; 8]);
        assert_eq!(
            tp.to_header(),
            "00-abababababababababababababababab-cdcdcdcdcdcdcdcd-01"
        );
        let tp = TraceParent::generate([0; 16], [0; 8]);
        assert_eq!(TraceParent::parse(&tp.to_header()), Some(tp));
        assert_eq!(tp.trace_id_hex(), "00000000000000000000000000000001");
    }
}
