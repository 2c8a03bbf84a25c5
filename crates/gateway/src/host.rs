//! Host normalisation (CONTRACT "Hosts and routing"): turns a raw `Host` header into the one
//! canonical form every routing step compares against, or says why it is invalid (400).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a normalised host names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    Name,
    Ipv4,
    Ipv6,
}

/// A normalised host: lower-case, no port, no trailing dot. IPv6 keeps its brackets
/// (`[::1]`) in the canonical compressed form, so config can list it the way URLs spell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub name: String,
    pub kind: HostKind,
}

impl Host {
    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn is_ip(&self) -> bool {
        self.kind != HostKind::Name
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Empty,
    /// Over 253 characters after normalisation.
    TooLong,
    /// `a..b`, a leading dot, or more than one trailing dot.
    EmptyLabel,
    /// A label over 63 characters.
    LabelTooLong,
    /// A character outside `[a-z0-9-_]` (after lower-casing); non-ASCII included, since IDN
    /// hosts arrive as punycode.
    InvalidChar,
    /// A label starting or ending with `-`.
    HyphenEdge,
    /// A port that is empty, not all digits, or above 65535.
    BadPort,
    /// A bracketed IPv6 literal that does not parse, or an unbracketed one.
    BadIpv6,
    /// Looks numeric (the last label is all digits) but is not a dotted-quad IPv4 address.
    BadIpv4,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Empty => "host is empty",
            HostError::TooLong => "host is longer than 253 characters",
            HostError::EmptyLabel => "host has an empty label",
            HostError::LabelTooLong => "host has a label longer than 63 characters",
            HostError::InvalidChar => "host has a character outside [a-z0-9-_]",
            HostError::HyphenEdge => "host has a label starting or ending with '-'",
            HostError::BadPort => "host has an invalid port",
            HostError::BadIpv6 => "host is a malformed IPv6 literal",
            HostError::BadIpv4 => "host is numeric but not a valid IPv4 address",
        })
    }
}

impl std::error::Error for HostError {}

const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Normalises a raw `Host` header value: ASCII lower-case, port removed, one trailing dot
/// removed, then validated.
pub fn normalize_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return normalize_ipv6(rest);
    }
    let without_port = match raw.split_once(':') {
        // A second colon means an unbracketed IPv6 literal, which a Host header cannot carry.
        Some((_, port)) if port.contains(':') => return Err(HostError::BadIpv6),
        Some((host, port)) => {
            check_port(port)?;
            host
        }
        None => raw,
    };
    // Only one trailing dot is the root; `a.b..` keeps one and fails as an empty label.
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    let kind = check_name(trimmed)?;
    Ok(Host {
        name: trimmed.to_ascii_lowercase(),
        kind,
    })
}

/// Validates a name that has no port and no trailing dot, ignoring ASCII case, and says
/// whether it is a domain name or an IPv4 literal. Case-blind so that a caller owning the
/// string can validate first and lower-case it in place afterwards.
pub(crate) fn check_name(name: &str) -> Result<HostKind, HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_HOST_LEN {
        return Err(HostError::TooLong);
    }
    // One pass over the bytes (`.` never occurs inside a multi-byte character, and any
    // non-ASCII byte is an invalid one), each label checked as it ends, left to right.
    let bytes = name.as_bytes();
    let mut start = 0;
    let mut invalid_char = false;
    let mut numeric = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'.' => {
                check_label(&bytes[start..i], invalid_char)?;
                start = i + 1;
                invalid_char = false;
                numeric = true;
            }
            b'0'..=b'9' => {}
            b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' => numeric = false,
            _ => {
                invalid_char = true;
                numeric = false;
            }
        }
    }
    check_label(&bytes[start..], invalid_char)?;
    // A numeric last label makes this an IPv4 literal (as URL parsers treat it), and then it
    // must be a plain dotted quad: no shorthand, hex or leading zeros.
    if numeric {
        return match name.parse::<Ipv4Addr>() {
            Ok(_) => Ok(HostKind::Ipv4),
            Err(_) => Err(HostError::BadIpv4),
        };
    }
    Ok(HostKind::Name)
}

/// `rest` is what follows the opening bracket.
fn normalize_ipv6(rest: &str) -> Result<Host, HostError> {
    let (inside, after) = rest.split_once(']').ok_or(HostError::BadIpv6)?;
    if !after.is_empty() {
        let port = after.strip_prefix(':').ok_or(HostError::BadIpv6)?;
        check_port(port)?;
    }
    let addr: Ipv6Addr = inside.parse().map_err(|_| HostError::BadIpv6)?;
    Ok(Host {
        name: format!("[{addr}]"),
        kind: HostKind::Ipv6,
    })
}

fn check_port(port: &str) -> Result<(), HostError> {
    // At most five digits, so the parse cannot overflow and `+1`/` 1` are refused.
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match port.parse::<u32>() {
        Ok(n) if n <= u32::from(u16::MAX) => Ok(()),
        _ => Err(HostError::BadPort),
    }
}

/// `invalid_char`: the label has a byte outside `[A-Za-z0-9_-]`.
fn check_label(label: &[u8], invalid_char: bool) -> Result<(), HostError> {
    let (Some(first), Some(last)) = (label.first(), label.last()) else {
        return Err(HostError::EmptyLabel);
    };
    if label.len() > MAX_LABEL_LEN {
        return Err(HostError::LabelTooLong);
    }
    if invalid_char {
        return Err(HostError::InvalidChar);
    }
    if *first == b'-' || *last == b'-' {
        return Err(HostError::HyphenEdge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::HostError::*;
    use super::HostKind::{Ipv4, Ipv6, Name};
    use super::*;

    fn ok(name: &str, kind: HostKind) -> Result<Host, HostError> {
        Ok(Host {
            name: name.to_string(),
            kind,
        })
    }

    #[test]
    fn table() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        // 4 * 63 + 3 dots = 255; trim to exactly 253 and 254.
        let long = format!("{label63}.{label63}.{label63}.{label63}");
        let len253 = &long[..253];
        let len254 = &long[..254];
        let in63 = format!("{label63}.do");
        let in64 = format!("{label64}.do");
        let len253_dot = format!("{len253}.");
        let cases: Vec<(&str, Result<Host, HostError>)> = vec![
            // case
            ("Example.COM", ok("example.com", Name)),
            ("API.DO", ok("api.do", Name)),
            // ports
            ("api.do:8787", ok("api.do", Name)),
            ("localhost:8787", ok("localhost", Name)),
            ("api.do:0", ok("api.do", Name)),
            ("api.do:65535", ok("api.do", Name)),
            ("api.do:65536", Err(BadPort)),
            ("api.do:", Err(BadPort)),
            ("api.do:80a", Err(BadPort)),
            ("api.do:+80", Err(BadPort)),
            ("api.do:000080", Err(BadPort)),
            ("api.do:99999999999999999999", Err(BadPort)),
            (":8787", Err(Empty)),
            // trailing dots: exactly one is removed
            ("example.com.", ok("example.com", Name)),
            ("example.com.:443", ok("example.com", Name)),
            ("a.b..", Err(EmptyLabel)),
            (".", Err(Empty)),
            ("..", Err(EmptyLabel)),
            // empty labels
            ("a..b", Err(EmptyLabel)),
            (".example.com", Err(EmptyLabel)),
            ("", Err(Empty)),
            // IDN: punycode is valid, raw Unicode is not
            ("xn--bcher-kva.example", ok("xn--bcher-kva.example", Name)),
            ("XN--BCHER-KVA.example", ok("xn--bcher-kva.example", Name)),
            ("bücher.example", Err(InvalidChar)),
            ("ДОМЕН.рф", Err(InvalidChar)),
            // IPv4
            ("127.0.0.1", ok("127.0.0.1", Ipv4)),
            ("127.0.0.1:8787", ok("127.0.0.1", Ipv4)),
            ("255.255.255.255", ok("255.255.255.255", Ipv4)),
            ("256.0.0.1", Err(BadIpv4)),
            ("1.2.3", Err(BadIpv4)),
            ("1.2.3.4.5", Err(BadIpv4)),
            ("01.2.3.4", Err(BadIpv4)),
            ("2130706433", Err(BadIpv4)),
            ("example.123", Err(BadIpv4)),
            ("0x7f.0.0.1", Err(BadIpv4)),
            ("123.example", ok("123.example", Name)),
            ("1.2.3.4.", ok("1.2.3.4", Ipv4)),
            // IPv6
            ("[::1]", ok("[::1]", Ipv6)),
            ("[::1]:8787", ok("[::1]", Ipv6)),
            ("[0:0:0:0:0:0:0:1]", ok("[::1]", Ipv6)),
            ("[2001:DB8::A]", ok("[2001:db8::a]", Ipv6)),
            ("[::ffff:127.0.0.1]", ok("[::ffff:127.0.0.1]", Ipv6)),
            ("[::1", Err(BadIpv6)),
            ("[::1]x", Err(BadIpv6)),
            ("[::1]:", Err(BadPort)),
            ("[::1]:70000", Err(BadPort)),
            ("[]", Err(BadIpv6)),
            ("[example.com]", Err(BadIpv6)),
            ("[fe80::1%25eth0]", Err(BadIpv6)),
            ("::1", Err(BadIpv6)),
            ("::1]", Err(BadIpv6)),
            ("2001:db8::1", Err(BadIpv6)),
            // lengths
            (len253, ok(len253, Name)),
            (&len253_dot, ok(len253, Name)),
            (len254, Err(TooLong)),
            (&in63, ok(&in63, Name)),
            (&in64, Err(LabelTooLong)),
            // hyphens and underscores
            ("-a.do", Err(HyphenEdge)),
            ("a-.do", Err(HyphenEdge)),
            ("a-b.do", ok("a-b.do", Name)),
            ("_dmarc.example.com", ok("_dmarc.example.com", Name)),
            // garbage
            ("exa mple.com", Err(InvalidChar)),
            (" api.do", Err(InvalidChar)),
            ("api.do/", Err(InvalidChar)),
            ("user@api.do", Err(InvalidChar)),
            ("a*b.do", Err(InvalidChar)),
            ("*.example.do", Err(InvalidChar)),
            ("api.do\0", Err(InvalidChar)),
            ("api.do\r\nx", Err(InvalidChar)),
            ("%41.do", Err(InvalidChar)),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn normalising_is_idempotent() {
        for raw in [
            "Example.COM.:8080",
            "[0::1]:1",
            "127.0.0.1",
            "xn--bcher-kva.example",
        ] {
            let once = normalize_host(raw).map(|h| h.name);
            let twice = once
                .clone()
                .and_then(|n| normalize_host(&n).map(|h| h.name));
            assert_eq!(once, twice, "{raw}");
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(BadPort.to_string(), "host has an invalid port");
    }
}
