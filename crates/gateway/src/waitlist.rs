//! The waitlist for unmatched domains: which domains may show one ([`check_domain`]: punycode
//! through `idna`, and a small confusables skeleton), the sign-up page and its CSP, parsing and
//! normalising the submitted email, hashing the client IP, the CSV export, and the small
//! serving decisions (which hosts are the platform's, the denylist var, HTML/CSV/JSON
//! negotiation, same-origin sign-ups, admin paths).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::documents::{percent_decode, query_pairs};

/// Largest accepted sign-up body: an email is at most 254 bytes, so this is generous.
pub const MAX_SIGNUP_BYTES: usize = 4096;
pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitlistError {
    /// 400; the reason never quotes the input.
    InvalidEmail(&'static str),
    /// 400: the body does not parse as its content type says.
    Malformed(&'static str),
    /// 413
    TooLarge,
    /// 415: neither form nor JSON.
    UnsupportedMediaType,
}

impl WaitlistError {
    pub fn status(&self) -> u16 {
        match self {
            WaitlistError::InvalidEmail(_) | WaitlistError::Malformed(_) => 400,
            WaitlistError::TooLarge => 413,
            WaitlistError::UnsupportedMediaType => 415,
        }
    }
}

impl fmt::Display for WaitlistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitlistError::InvalidEmail(why) => write!(f, "invalid email address: {why}"),
            WaitlistError::Malformed(why) => f.write_str(why),
            WaitlistError::TooLarge => write!(f, "the body exceeds {MAX_SIGNUP_BYTES} bytes"),
            WaitlistError::UnsupportedMediaType => f.write_str(
                "send application/x-www-form-urlencoded or application/json with an email field",
            ),
        }
    }
}

impl std::error::Error for WaitlistError {}

// ---------------------------------------------------------------------------------------------
// Email

/// Trims and lower-cases an address and checks it is deliverable-looking: `local@domain`,
/// local part 1-64 characters of RFC 5322 dot-atom (printable ASCII without spaces, quotes,
/// angle brackets or other specials; no leading, trailing or doubled dot), domain a hostname
/// with at least two labels and a non-numeric TLD, 254 characters in total. Lower-casing the
/// local part is not RFC-strict but is how people expect "the same address" to dedupe.
pub fn normalize_email(input: &str) -> Result<String, WaitlistError> {
    use WaitlistError::InvalidEmail;
    let email = input.trim();
    if email.is_empty() {
        return Err(InvalidEmail("the address is empty"));
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(InvalidEmail("the address is longer than 254 characters"));
    }
    if !email.is_ascii() {
        return Err(InvalidEmail("only ASCII addresses are accepted"));
    }
    let email = email.to_ascii_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err(InvalidEmail("the address has no @"));
    };
    if domain.contains('@') {
        return Err(InvalidEmail("the address has more than one @"));
    }
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(InvalidEmail("the part before @ must be 1-64 characters"));
    }
    if !local.bytes().all(|b| is_atext(b) || b == b'.')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(InvalidEmail(
            "the part before @ has characters or dots that are not allowed",
        ));
    }
    if !is_email_domain(domain) {
        return Err(InvalidEmail("the part after @ is not a valid domain"));
    }
    Ok(email)
}

/// RFC 5322 `atext`: printable ASCII minus specials, space and quotes.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_email_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_hostname_label(l))
        // No TLD is numeric; this also refuses IPv4-looking domains.
        && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

fn is_hostname_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Extracts the email from a sign-up body (form post without JS, JSON from the page's script)
/// and normalises it.
pub fn form_or_json_email(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, WaitlistError> {
    if body.len() > MAX_SIGNUP_BYTES {
        return Err(WaitlistError::TooLarge);
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let email = match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let text = std::str::from_utf8(body)
                .map_err(|_| WaitlistError::Malformed("the form body is not UTF-8"))?;
            let raw = query_pairs(text)
                .find(|(k, _)| k == "email")
                .map(|(_, v)| v)
                .ok_or(WaitlistError::InvalidEmail("the email field is missing"))?;
            percent_decode(raw, true).ok_or(WaitlistError::Malformed(
                "the email field is not valid form encoding",
            ))?
        }
        Some("application/json") => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|_| WaitlistError::Malformed("the body is not valid JSON"))?;
            match value.get("email") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(_) => return Err(WaitlistError::InvalidEmail("email must be a string")),
                None => return Err(WaitlistError::InvalidEmail("the email field is missing")),
            }
        }
        _ => return Err(WaitlistError::UnsupportedMediaType),
    };
    normalize_email(&email)
}

// ---------------------------------------------------------------------------------------------
// Privacy and export

/// A keyed hash of the client IP for abuse control: HMAC-SHA256 under a secret salt, hex,
/// truncated to 128 bits. The raw IP is never stored; without the salt the hash cannot be
/// reversed by enumerating the (small) IPv4 space.
pub fn hash_ip(ip: &str, salt: &[u8]) -> String {
    // Not input-derived: HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes keys of any length");
    // Case-insensitive so IPv6 spellings differing only in case hash alike.
    mac.update(ip.trim().to_ascii_lowercase().as_bytes());
    let digest = mac.finalize().into_bytes();
    hex::encode(&digest[..16])
}

/// Sign-ups as CSV (RFC 4180: CRLF lines, quoted when needed, quotes doubled), with a header
/// row. Cells starting with `= + - @`, tab or CR get a leading `'` so spreadsheet apps show
/// them as text instead of evaluating them (CSV injection).
pub fn to_csv(rows: &[(String, String)]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str(&csv_rows(rows));
    out
}

/// The CSV export's header row; a streamed export sends it, then [`csv_rows`] per chunk.
pub const CSV_HEADER: &str = "email,createdAt\r\n";

/// Rows of the CSV export without the header (one chunk of a streamed export).
pub fn csv_rows(rows: &[(String, String)]) -> String {
    let mut out = String::new();
    for (email, created_at) in rows {
        push_csv_cell(&mut out, email);
        out.push(',');
        push_csv_cell(&mut out, created_at);
        out.push_str("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The admin listing's pages

/// Sign-ups (or domains) per JSON page of the admin listing when `limit` is absent.
pub const DEFAULT_ADMIN_PAGE: u32 = 100;
/// Largest `limit` of a JSON page: 1 000 sign-ups are ~100 KB of JSON.
pub const MAX_ADMIN_PAGE: u32 = 1000;
/// Rows per D1 query of the streamed CSV export: the isolate holds one chunk at a time,
/// however many sign-ups the domain has.
pub const CSV_CHUNK_ROWS: u32 = 1000;
const MAX_ADMIN_CURSOR_LEN: usize = 1024;

/// `?limit=&cursor=` of an admin listing page. `after` is the keyset position: for sign-ups
/// `[created_at, email]` of the previous page's last row, for domains `[domain]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPage {
    pub limit: u32,
    pub after: Option<Vec<String>>,
}

/// Opaque cursor after the given key parts (none may contain a newline; stored emails,
/// dates and domains never do).
pub fn encode_admin_cursor(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

/// Parses an admin listing's query: `limit` 1..=[`MAX_ADMIN_PAGE`] (default
/// [`DEFAULT_ADMIN_PAGE`]) and a `cursor` from a previous page holding `parts` key parts.
pub fn parse_admin_page(query: Option<&str>, parts: usize) -> Result<AdminPage, String> {
    let mut page = AdminPage {
        limit: DEFAULT_ADMIN_PAGE,
        after: None,
    };
    for (key, raw) in query_pairs(query.unwrap_or("")) {
        let value = percent_decode(raw, true).ok_or("the query is not valid percent-encoding")?;
        match key.as_str() {
            "limit" if !value.is_empty() => {
                page.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| {
                        value.bytes().all(|b| b.is_ascii_digit())
                            && (1..=MAX_ADMIN_PAGE).contains(n)
                    })
                    .ok_or(format!(
                        "limit must be a whole number from 1 to {MAX_ADMIN_PAGE}"
                    ))?;
            }
            "cursor" if !value.is_empty() => {
                let invalid = || "invalid cursor: pass back nextCursor unchanged".to_string();
                if value.len() > MAX_ADMIN_CURSOR_LEN {
                    return Err(invalid());
                }
                let bytes = URL_SAFE_NO_PAD
                    .decode(value.as_bytes())
                    .map_err(|_| invalid())?;
                let text = String::from_utf8(bytes).map_err(|_| invalid())?;
                let key: Vec<String> = text.split('\n').map(str::to_owned).collect();
                if key.len() != parts || key.iter().any(String::is_empty) {
                    return Err(invalid());
                }
                page.after = Some(key);
            }
            _ => {}
        }
    }
    Ok(page)
}

fn push_csv_cell(out: &mut String, cell: &str) {
    let defused = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&defused.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&defused);
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet of every waitlist page. It is allowed by its hash in [`PAGE_CSP`], so any
/// edit here must update that hash (a test checks it).
const STYLE: &str = r#"
:root{--bg:#f5f6fb;--card:#fff;--text:#15172c;--muted:#474c66;--accent:#3a2ec2;--on-accent:#fff;--border:#cfd2e4;--focus:#1a47c9;--ok:#0f6a2e;--err:#a3161b}
@media (prefers-color-scheme:dark){:root{--bg:#0d0f1e;--card:#171a31;--text:#eef0fb;--muted:#b9bdd8;--accent:#a9b6ff;--on-accent:#0d0f1e;--border:#373c63;--focus:#9cc4ff;--ok:#8ee8ac;--err:#ffaaa8}}
*{box-sizing:border-box}
html{color-scheme:light dark}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;padding:2rem 1rem;background:var(--bg);color:var(--text);font:1rem/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{width:100%;max-width:38rem;background:var(--card);border:1px solid var(--border);border-radius:18px;padding:2.75rem;box-shadow:0 12px 32px rgba(21,23,44,.08)}
.eyebrow{margin:0 0 .5rem;font-size:.8rem;font-weight:700;letter-spacing:.08em;text-transform:uppercase;color:var(--accent)}
h1{margin:0 0 1rem;font-size:clamp(1.75rem,5vw,2.5rem);line-height:1.15;overflow-wrap:anywhere}
.lede{margin:0 0 1.75rem;font-size:1.125rem;color:var(--muted)}
label{display:block;margin-bottom:.4rem;font-weight:600}
.row{display:flex;gap:.5rem}
input{flex:1;min-width:0;padding:.75rem .9rem;font:inherit;color:var(--text);background:var(--card);border:1px solid var(--muted);border-radius:10px}
input::placeholder{color:var(--muted);opacity:1}
button,.button{display:inline-block;padding:.75rem 1.25rem;font:inherit;font-weight:600;color:var(--on-accent);background:var(--accent);border:0;border-radius:10px;cursor:pointer;text-decoration:none}
button:disabled{opacity:.75;cursor:progress}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.fine{margin:.6rem 0 0;font-size:.875rem;color:var(--muted)}
.status{min-height:1.5em;margin:1rem 0 0;font-weight:600}
.status[data-state=ok]{color:var(--ok)}
.status[data-state=error]{color:var(--err)}
.points{display:grid;grid-template-columns:repeat(3,1fr);gap:1rem;margin:2rem 0 0;padding:1.5rem 0 0;border-top:1px solid var(--border);list-style:none}
.points strong{display:block}
.points span{font-size:.875rem;color:var(--muted)}
footer{margin-top:1.5rem;font-size:.875rem;color:var(--muted)}
@media (max-width:600px){main{padding:1.5rem;border-radius:14px}.row{flex-direction:column}button{width:100%}.points{grid-template-columns:1fr}}
"#;

/// Enhances the form into a fetch with an in-place answer in the live region. Without JS (or
/// without fetch) the form posts normally. Allowed by its hash in [`PAGE_CSP`].
const SCRIPT: &str = r#"
(() => {
  const form = document.getElementById("waitlist-form");
  const live = document.getElementById("waitlist-status");
  if (!form || !live || !window.fetch) return;
  const say = (text, state) => { live.textContent = text; live.dataset.state = state; };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    const email = form.elements.email.value.trim();
    button.disabled = true;
    say("Joining\u2026", "busy");
    try {
      const res = await fetch("/waitlist", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email }),
      });
      const body = await res.json().catch(() => ({}));
      if (res.ok) {
        say(body.status === "already_joined"
          ? "You're already on the list. We'll be in touch."
          : "You're on the list. We'll email you when it launches.", "ok");
        form.reset();
      } else {
        say(body.detail || "That didn't work. Please check the address and try again.", "error");
      }
    } catch {
      say("We couldn't reach the server. Please try again.", "error");
    } finally {
      button.disabled = false;
    }
  });
})();
"#;

/// The `Content-Security-Policy` for every waitlist page: nothing but this page's own style and
/// script (by hash, so no nonce and no randomness are needed and the page stays cacheable),
/// fetches and form posts to the same origin, no framing.
pub const PAGE_CSP: &str = "default-src 'none'; \
     style-src 'sha256-qDISLXewUQ4ctAlBZgBWQm06s26EJVMnybc1F0UKQDo='; \
     script-src 'sha256-348axwWh8MssZPwFYiSLHmiVq7MujO19PJUYDcfrv5c='; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn layout(title: &str, main: &str, platform_name: Option<&str>, script: bool) -> String {
    let footer = platform_name
        .map(|p| format!("<footer>Launching on {}</footer>\n", html_escape(p)))
        .unwrap_or_default();
    let script = if script {
        format!("<script>{SCRIPT}</script>\n")
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
{main}
</main>
{footer}{script}</body>
</html>
"#
    )
}

/// The sign-up page for an unmatched `domain`; serve it with [`PAGE_CSP`].
pub fn render_page(domain: &str, platform_name: &str) -> String {
    let d = html_escape(domain);
    // A long domain in the big heading wraps after a dot, not in the middle of a label.
    let heading = d.replace('.', ".<wbr>");
    let main = format!(
        r#"<p class="eyebrow">Coming soon</p>
<h1>{heading} is coming soon</h1>
<p class="lede">Something new is being built at {d}. Join the waitlist and we'll email you once, the day it launches.</p>
<form id="waitlist-form" method="post" action="/waitlist">
<label for="email">Email address</label>
<div class="row">
<input id="email" name="email" type="email" autocomplete="email" inputmode="email" required maxlength="254" spellcheck="false" placeholder="you@example.com" aria-describedby="privacy">
<button type="submit">Join the waitlist</button>
</div>
<p id="privacy" class="fine">We only use your address to tell you about this launch.</p>
<p id="waitlist-status" class="status" role="status" aria-live="polite"></p>
</form>
<ul class="points">
<li><strong>Early access</strong><span>Be first in when the doors open.</span></li>
<li><strong>One email</strong><span>A single note on launch day.</span></li>
<li><strong>No noise</strong><span>Your address is never shared.</span></li>
</ul>"#
    );
    layout(
        &format!("{d} \u{2014} join the waitlist"),
        &main,
        Some(platform_name),
        true,
    )
}

/// The answer to a form post without JS (201 when new, 200 when `already`).
pub fn render_joined_html(domain: &str, already: bool) -> String {
    let d = html_escape(domain);
    let (heading, text) = if already {
        (
            "You're already on the list",
            "Nothing more to do: we'll email you when it launches.",
        )
    } else {
        (
            "You're on the list",
            "Thanks! We'll email you once, the day it launches.",
        )
    };
    let main = format!(
        r#"<p class="eyebrow">{d}</p>
<h1>{heading}</h1>
<p class="lede" role="status">{text}</p>
<a class="button" href="/">Back to {d}</a>"#
    );
    layout(&format!("{heading} \u{2014} {d}"), &main, None, false)
}

/// The answer to a form post without JS whose address was refused (400).
pub fn render_invalid_email_html(domain: &str) -> String {
    let d = html_escape(domain);
    let main = format!(
        r#"<p class="eyebrow">{d}</p>
<h1>That address doesn't look right</h1>
<p class="lede" role="alert">Please go back, check your email address and try again.</p>
<a class="button" href="/">Back to {d}</a>"#
    );
    layout(
        &format!("Check your address \u{2014} {d}"),
        &main,
        None,
        false,
    )
}

// ---------------------------------------------------------------------------------------------
// Which domains may get a waitlist

/// Why an unmatched host gets no waitlist page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An IP address, not a domain.
    IpLiteral,
    /// Looks like a platform host without being it (homograph / typo-squat), or carries a
    /// punycode label that does not decode (we cannot show it is harmless).
    Confusable,
    /// The domain or a parent of it is on the operator's denylist.
    Denylisted,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::IpLiteral => "ip literal",
            Refusal::Confusable => "confusable with a platform host",
            Refusal::Denylisted => "denylisted",
        })
    }
}

/// Decides whether `host` (normalised: lower-case, no port, no trailing dot) may show a
/// waitlist. `is_ip` comes from host parsing; IP-looking hosts are also caught here.
/// `denylist` entries match the domain and all its subdomains (a leading `*.` is accepted
/// and means the same). `platform_hosts` are the real
/// hosts (`apis.do`, `api.do`, `db.do`, ...): the host and each of its parent domains are
/// reduced to a confusables skeleton and refused when that equals a platform host's skeleton
/// without being byte-identical (`аpi.do` with a Cyrillic а, `w0rkers.do`, `ap1s.do`, ...).
pub fn check_domain(
    host: &str,
    is_ip: bool,
    platform_hosts: &[&str],
    denylist: &[String],
) -> Result<(), Refusal> {
    let host = host.trim_end_matches('.').to_lowercase();
    if is_ip || looks_like_ip(&host) {
        return Err(Refusal::IpLiteral);
    }
    for entry in denylist {
        let d = entry
            .trim()
            .trim_start_matches("*.")
            .trim_matches('.')
            .to_lowercase();
        if !d.is_empty()
            && (host == d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|p| p.ends_with('.')))
        {
            return Err(Refusal::Denylisted);
        }
    }
    let labels: Vec<&str> = host.split('.').collect();
    let skeletons: Vec<String> = labels
        .iter()
        .map(|l| label_skeleton(l).ok_or(Refusal::Confusable))
        .collect::<Result<_, _>>()?;
    let platform: Vec<(String, String)> = platform_hosts
        .iter()
        .map(|p| p.trim_end_matches('.').to_lowercase())
        .filter_map(|p| {
            let skeleton = host_skeleton(&p)?;
            Some((p, skeleton))
        })
        .collect();
    // Every parent domain too: `login.аpi.do` imitates `api.do` through its parent.
    for start in 0..labels.len() {
        let suffix = labels[start..].join(".");
        let skeleton = skeletons[start..].join(".");
        if platform.iter().any(|(p, s)| *s == skeleton && *p != suffix) {
            return Err(Refusal::Confusable);
        }
    }
    Ok(())
}

/// IPv6 (`:` or brackets) or a name whose last label is a number: the WHATWG URL parser reads
/// those as IPv4 (`10.0.0.1`, `127.1`, `0x7f.1`).
fn looks_like_ip(host: &str) -> bool {
    if host.contains(':') || host.starts_with('[') {
        return true;
    }
    let last = host.rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

fn host_skeleton(host: &str) -> Option<String> {
    let labels: Vec<String> = host.split('.').map(label_skeleton).collect::<Option<_>>()?;
    Some(labels.join("."))
}

/// One label reduced to what it looks like: punycode decoded, lower-cased, combining marks
/// dropped, confusable letters mapped to ASCII, then the ASCII lookalikes `rn`→`m`, `0`→`o`,
/// `1`→`l`. `None` when an `xn--` label does not decode.
fn label_skeleton(label: &str) -> Option<String> {
    let decoded;
    let text = match label.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("xn--") => {
            decoded = decode_punycode(&label[4..])?;
            decoded.as_str()
        }
        _ => label,
    };
    let mapped: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(confusable_to_ascii)
        .collect();
    Some(
        mapped
            .replace("rn", "m")
            .replace('0', "o")
            .replace('1', "l"),
    )
}

/// A small table of the confusables that matter for lower-case hostnames (after UTS #39's
/// skeleton idea, without its 6,000-entry table: `unicode-security`'s skeleton would add
/// 88 KiB gzip to the api, past its 500 KiB budget).
fn confusable_to_ascii(c: char) -> char {
    match c {
        // Fullwidth ASCII (U+FF01..U+FF5E) and the fullwidth / ideographic full stops.
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
        '\u{3002}' | '\u{ff61}' => '.',
        // Cyrillic
        '\u{430}' => 'a', // а
        '\u{435}' => 'e', // е
        '\u{43e}' => 'o', // о
        '\u{440}' => 'p', // р
        '\u{441}' => 'c', // с
        '\u{443}' => 'y', // у
        '\u{445}' => 'x', // х
        '\u{456}' => 'i', // і
        '\u{458}' => 'j', // ј
        '\u{455}' => 's', // ѕ
        '\u{501}' => 'd', // ԁ
        '\u{4bb}' => 'h', // һ
        '\u{4cf}' => 'l', // ӏ
        '\u{51b}' => 'q', // ԛ
        '\u{51d}' => 'w', // ԝ
        '\u{4af}' => 'y', // ү
        // Greek
        '\u{3bf}' => 'o', // ο
        '\u{3b1}' => 'a', // α
        '\u{3bd}' => 'v', // ν
        '\u{3c1}' => 'p', // ρ
        '\u{3b5}' => 'e', // ε
        '\u{3b9}' => 'i', // ι
        '\u{3ba}' => 'k', // κ
        '\u{3c4}' => 't', // τ
        '\u{3c5}' => 'u', // υ
        // Latin lookalikes and Latin-1 letters with diacritics
        '\u{131}' => 'i', // ı dotless i
        '\u{251}' => 'a', // ɑ
        '\u{261}' => 'g', // ɡ
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' | 'ø' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        c => c,
    }
}

/// Decodes the part of an IDNA label after `xn--` (RFC 3492 Punycode, with `idna`'s
/// decoder). `None` on any invalid input (non-ASCII, a bad digit, overflow, a non-scalar
/// value) and for more than 255 bytes (a whole hostname; bounds the quadratic insertion).
pub fn decode_punycode(input: &str) -> Option<String> {
    if input.len() > 255 {
        return None;
    }
    idna::punycode::decode_to_string(input)
}

// ---------------------------------------------------------------------------------------------
// Serving: which hosts count as the platform's, configuration lists, negotiation, origins

/// The hosts a waitlist must never imitate: the API hosts, the services zone (`apis.do`) and
/// `{name}.{platform_zone}` for every registry service and alias (`db.do`, `auth.do`,
/// `database.do`, ...). Normalised and deduplicated; about twenty entries.
pub fn platform_hosts(
    api_hosts: &[String],
    services_zone: &str,
    platform_zone: &str,
) -> Vec<String> {
    let names = crate::registry::SERVICES
        .iter()
        .map(|s| s.name)
        .chain(crate::registry::ALIASES.iter().map(|(alias, _)| *alias));
    let mut hosts: Vec<String> = api_hosts
        .iter()
        .cloned()
        .chain(std::iter::once(services_zone.to_owned()))
        .chain(names.map(|n| format!("{n}.{platform_zone}")))
        .filter_map(|h| crate::host::normalize_host(&h).ok())
        .map(|h| h.name)
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The `WAITLIST_DENYLIST` var: comma-separated domains (each also covering its subdomains;
/// `*.x` is accepted and means the same). Blank entries are dropped.
pub fn parse_denylist(var: Option<&str>) -> Vec<String> {
    var.unwrap_or("")
        .split(',')
        .map(|d| {
            d.trim()
                .trim_start_matches("*.")
                .trim_matches('.')
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// Whether the client would rather have `media` than `over`, from its `Accept` header:
/// `media` must be listed by name (a wildcard does not count, so `*/*` from `fetch` or curl
/// keeps the default) with a q above zero, and at least the q given to `over` by name.
/// A form post from a browser (`text/html,...,*/*;q=0.8`) prefers HTML over JSON this way.
pub fn prefers(accept: Option<&str>, media: &str, over: &str) -> bool {
    let quality = |wanted: &str| -> Option<f32> {
        accept?
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let name = parts.next()?.trim();
                if !name.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some(if q.is_finite() {
                    q.clamp(0.0, 1.0)
                } else {
                    0.0
                })
            })
            .reduce(f32::max)
    };
    match quality(media) {
        Some(q) if q > 0.0 => q >= quality(over).unwrap_or(0.0),
        _ => false,
    }
}

/// Whether an `Origin` header names the same host the request was sent to (scheme and port
/// aside: the host decides which waitlist is signed). `null` and anything unparsable are
/// foreign. Used to refuse cross-site sign-ups made with a visitor's browser.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let origin = origin.trim();
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    if rest.contains(['/', '?', '#', '@']) {
        return false;
    }
    crate::host::normalize_host(rest).is_ok_and(|h| h.name == host)
}

/// What an admin asked for under `/api/waitlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// `/`: every domain with its sign-up count.
    Domains,
    /// `/{domain}`: that domain's sign-ups (the domain normalised like a Host header).
    Signups(String),
}

/// Parses the path after `/api/waitlist` (always starting with `/`). A domain that cannot be
/// a host is an error (400); anything deeper than one segment is `None` (404).
pub fn parse_admin_path(path: &str) -> Option<Result<AdminRequest, crate::host::HostError>> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Ok(AdminRequest::Domains));
    }
    if rest.contains('/') {
        return None;
    }
    Some(crate::host::normalize_host(rest).map(|h| AdminRequest::Signups(h.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let long_local = "a".repeat(64);
        let too_long_local = "a".repeat(65);
        let ok: &[(&str, &str)] = &[
            ("user@example.com", "user@example.com"),
            (
                "  User.Name+tag@Example.COM \n",
                "user.name+tag@example.com",
            ),
            ("o'brien@shop.do", "o'brien@shop.do"),
            ("a@b.co", "a@b.co"),
            ("x_y-z@sub-1.example.co.uk", "x_y-z@sub-1.example.co.uk"),
            ("=1+2@x.do", "=1+2@x.do"),
            (&format!("{long_local}@x.do"), &format!("{long_local}@x.do")),
            ("a@xn--pi-6kc.do", "a@xn--pi-6kc.do"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_email(input).as_deref(), Ok(*want), "{input:?}");
        }
        let long_total = format!("a@{}.com", vec!["b".repeat(63); 4].join("."));
        assert!(long_total.len() > 254);
        let bad = [
            "",
            "   ",
            "plain",
            "@example.com",
            "user@",
            "a@b@c.com",
            "user@localhost",
            "user name@example.com",
            "\"quoted\"@example.com",
            "<user@example.com>",
            "user@[10.0.0.1]",
            "user@10.0.0.1",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            "user@example..com",
            "user@.example.com",
            "user@example.com.",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "us(er)@example.com",
            "us,er@example.com",
            "us\\er@example.com",
            "usér@example.com",
            "user@exämple.com",
            "user@example.com\0",
            "us\ter@example.com",
            &format!("{too_long_local}@x.do"),
            &format!("a@{}.com", "b".repeat(64)),
            &long_total,
        ];
        for input in bad {
            let err = normalize_email(input).unwrap_err();
            assert_eq!(err.status(), 400, "{input:?}");
            assert!(!err.to_string().contains("example"), "no echo: {err}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html_escape(r#"<a href="x" onclick='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(html_escape("shop.do ünï"), "shop.do ünï");
    }

    #[test]
    fn page_is_complete_and_accessible() {
        let page = render_page("my<shop>.do", "apis.do & co");
        for needle in [
            "<!doctype html>",
            r#"<html lang="en">"#,
            r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#,
            "<title>my&lt;shop&gt;.do \u{2014} join the waitlist</title>",
            "<h1>my&lt;shop&gt;.<wbr>do is coming soon</h1>",
            "<main>",
            r#"<form id="waitlist-form" method="post" action="/waitlist">"#,
            r#"<label for="email">"#,
            r#"id="email" name="email" type="email" autocomplete="email""#,
            " required ",
            r#"role="status" aria-live="polite""#,
            ":focus-visible{outline:3px solid",
            "@media (max-width:600px)",
            "fetch(\"/waitlist\"",
            r#""content-type": "application/json""#,
            "JSON.stringify({ email })",
            "You're on the list",
            "You're already on the list",
            "Launching on apis.do &amp; co",
        ] {
            assert!(page.contains(needle), "missing {needle:?}");
        }
        assert!(!page.contains("<shop>"));
        // No external resources.
        for banned in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!page.contains(banned), "external resource {banned:?}");
        }
        assert_eq!(page.matches("<script>").count(), 1);
        assert_eq!(page.matches("<style>").count(), 1);
    }

    #[test]
    fn result_pages() {
        let joined = render_joined_html("a\"b.do", false);
        assert!(joined.contains("<h1>You're on the list</h1>") && joined.contains("a&quot;b.do"));
        assert!(!joined.contains("<script>"));
        let again = render_joined_html("shop.do", true);
        assert!(again.contains("<h1>You're already on the list</h1>"));
        let invalid = render_invalid_email_html("shop.do");
        assert!(invalid.contains("role=\"alert\"") && invalid.contains("<main>"));
    }

    fn csp_hash(text: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(text.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    }

    #[test]
    fn csp_hashes_match_the_inline_style_and_script() {
        let want = format!(
            "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            csp_hash(STYLE),
            csp_hash(SCRIPT)
        );
        assert_eq!(
            PAGE_CSP, want,
            "update PAGE_CSP after editing STYLE or SCRIPT"
        );
        // The page embeds exactly the hashed text.
        let page = render_page("shop.do", "apis.do");
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
    }

    /// (content type, body, expected email or status)
    type SignupCase<'a> = (Option<&'a str>, &'a [u8], Result<&'a str, u16>);

    #[test]
    fn signup_bodies() {
        let form = Some("application/x-www-form-urlencoded");
        let json = Some("application/json; charset=utf-8");
        let big = vec![b'a'; MAX_SIGNUP_BYTES + 1];
        let cases: &[SignupCase] = &[
            (form, b"email=a%40b.do", Ok("a@b.do")),
            (form, b"email=A+%40b.do", Err(400)),
            (
                form,
                b"name=x&email=first%2Blast%40b.do&x",
                Ok("first+last@b.do"),
            ),
            (form, b"email=+a%40b.do+", Ok("a@b.do")),
            (
                Some("Application/X-WWW-Form-Urlencoded;charset=UTF-8"),
                b"email=a@b.do",
                Ok("a@b.do"),
            ),
            (form, b"email=%zz", Err(400)),
            (form, b"mail=a%40b.do", Err(400)),
            (form, b"", Err(400)),
            (form, b"email=\xff", Err(400)),
            (json, br#"{"email":" A@B.DO "}"#, Ok("a@b.do")),
            (json, br#"{"email":1}"#, Err(400)),
            (json, br#"{"mail":"a@b.do"}"#, Err(400)),
            (json, br#"["a@b.do"]"#, Err(400)),
            (json, b"{", Err(400)),
            (json, br#"{"email":"not-an-email"}"#, Err(400)),
            (Some("text/plain"), b"email=a%40b.do", Err(415)),
            (Some("multipart/form-data; boundary=x"), b"", Err(415)),
            (None, b"email=a%40b.do", Err(415)),
            (form, &big, Err(413)),
        ];
        for (ct, body, want) in cases {
            let got = form_or_json_email(*ct, body).map_err(|e| e.status());
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{ct:?} {body:?}");
        }
    }

    #[test]
    fn ip_hashing() {
        let h = hash_ip("203.0.113.7", b"salt");
        assert_eq!(h.len(), 32);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(h, hash_ip(" 203.0.113.7 ", b"salt"));
        assert_ne!(h, hash_ip("203.0.113.8", b"salt"));
        assert_ne!(h, hash_ip("203.0.113.7", b"pepper"));
        assert_eq!(hash_ip("2001:DB8::1", b"s"), hash_ip("2001:db8::1", b"s"));
        assert!(!h.contains("203"));
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            hash_ip("what do ya want for nothing?", b"Jefe"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }

    #[test]
    fn csv_export() {
        let rows = vec![
            ("a@b.do".to_string(), "2025-01-01T00:00:00Z".to_string()),
            ("=1+2@x.do".to_string(), "2025-01-02T00:00:00Z".to_string()),
            ("+x@y.do".into(), "-1".into()),
            ("@SUM(A1)".into(), "\tx".into()),
            ("\rx".into(), "a,b".into()),
            ("say \"hi\"".into(), "line\nbreak".into()),
            ("=HYPERLINK(\"http://e\",\"x\")".into(), "".into()),
        ];
        let want = "email,createdAt\r\n\
                    a@b.do,2025-01-01T00:00:00Z\r\n\
                    '=1+2@x.do,2025-01-02T00:00:00Z\r\n\
                    '+x@y.do,'-1\r\n\
                    '@SUM(A1),'\tx\r\n\
                    \"'\rx\",\"a,b\"\r\n\
                    \"say \"\"hi\"\"\",\"line\nbreak\"\r\n\
                    \"'=HYPERLINK(\"\"http://e\"\",\"\"x\"\")\",\r\n";
        assert_eq!(to_csv(&rows), want);
        assert_eq!(to_csv(&[]), "email,createdAt\r\n");
        // a streamed export (header, then chunks) is the same bytes
        assert_eq!(
            format!(
                "{CSV_HEADER}{}{}",
                csv_rows(&rows[..3]),
                csv_rows(&rows[3..])
            ),
            want
        );
    }

    #[test]
    fn admin_pages() {
        assert_eq!(
            parse_admin_page(None, 2),
            Ok(AdminPage {
                limit: DEFAULT_ADMIN_PAGE,
                after: None
            })
        );
        assert_eq!(
            parse_admin_page(Some("limit=&cursor="), 2).map(|p| p.limit),
            Ok(DEFAULT_ADMIN_PAGE)
        );
        assert_eq!(
            parse_admin_page(Some("limit=1000"), 2).map(|p| p.limit),
            Ok(1000)
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=1.5",
            "limit=%zz",
            "cursor=***",
            "cursor=YQ",
        ] {
            assert!(parse_admin_page(Some(bad), 2).is_err(), "{bad}");
        }
        let cursor = encode_admin_cursor(&["2025-01-01T00:00:00.000Z", "a@b.do"]);
        assert_eq!(
            parse_admin_page(Some(&format!("cursor={cursor}&limit=5")), 2),
            Ok(AdminPage {
                limit: 5,
                after: Some(vec!["2025-01-01T00:00:00.000Z".into(), "a@b.do".into()])
            })
        );
        // a sign-ups cursor is not a domains cursor
        assert!(parse_admin_page(Some(&format!("cursor={cursor}")), 1).is_err());
        let domains = encode_admin_cursor(&["shop.example"]);
        assert_eq!(
            parse_admin_page(Some(&format!("cursor={domains}")), 1).map(|p| p.after),
            Ok(Some(vec!["shop.example".into()]))
        );
    }

    #[test]
    fn punycode_rfc3492_samples() {
        let cases = [
            ("egbpdaj6bu4bxfgehfvwxn", "\u{644}\u{64a}\u{647}\u{645}\u{627}\u{628}\u{62a}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}\u{631}\u{628}\u{64a}\u{61f}"),
            ("ihqwcrb4cv8a8dqg056pqjye", "\u{4ed6}\u{4eec}\u{4e3a}\u{4ec0}\u{4e48}\u{4e0d}\u{8bf4}\u{4e2d}\u{6587}"),
            ("ihqwctvzc91f659drss3x8bo0yb", "\u{4ed6}\u{5011}\u{7232}\u{4ec0}\u{9ebd}\u{4e0d}\u{8aaa}\u{4e2d}\u{6587}"),
            ("Proprostnemluvesky-uyb24dma41a", "Pro\u{10d}prost\u{11b}nemluv\u{ed}\u{10d}esky"),
            ("4dbcagdahymbxekheh6e0a7fei0b", "\u{5dc}\u{5de}\u{5d4}\u{5d4}\u{5dd}\u{5e4}\u{5e9}\u{5d5}\u{5d8}\u{5dc}\u{5d0}\u{5de}\u{5d3}\u{5d1}\u{5e8}\u{5d9}\u{5dd}\u{5e2}\u{5d1}\u{5e8}\u{5d9}\u{5ea}"),
            ("n8jok5ay5dzabd5bym9f0cm5685rrjetr6pdxa", "\u{306a}\u{305c}\u{307f}\u{3093}\u{306a}\u{65e5}\u{672c}\u{8a9e}\u{3092}\u{8a71}\u{3057}\u{3066}\u{304f}\u{308c}\u{306a}\u{3044}\u{306e}\u{304b}"),
            ("b1abfaaepdrnnbgefbaDotcwatmq2g4l", "\u{43f}\u{43e}\u{447}\u{435}\u{43c}\u{443}\u{436}\u{435}\u{43e}\u{43d}\u{438}\u{43d}\u{435}\u{433}\u{43e}\u{432}\u{43e}\u{440}\u{44f}\u{442}\u{43f}\u{43e}\u{440}\u{443}\u{441}\u{441}\u{43a}\u{438}"),
            ("PorqunopuedensimplementehablarenEspaol-fmd56a", "Porqu\u{e9}nopuedensimplementehablarenEspa\u{f1}ol"),
            ("TisaohkhngthchnitingVit-kjcr8268qyxafd2f1b9g", "T\u{1ea1}isaoh\u{1ecd}kh\u{f4}ngth\u{1ec3}ch\u{1ec9}n\u{f3}iti\u{1ebf}ngVi\u{1ec7}t"),
            ("3B-ww4c5e180e575a65lsy2b", "3\u{5e74}B\u{7d44}\u{91d1}\u{516b}\u{5148}\u{751f}"),
            ("-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n", "\u{5b89}\u{5ba4}\u{5948}\u{7f8e}\u{6075}-with-SUPER-MONKEYS"),
            ("Hello-Another-Way--fc4qua05auwb3674vfr0b", "Hello-Another-Way-\u{305d}\u{308c}\u{305e}\u{308c}\u{306e}\u{5834}\u{6240}"),
            ("2-u9tlzr9756bt3uc0v", "\u{3072}\u{3068}\u{3064}\u{5c4b}\u{6839}\u{306e}\u{4e0b}2"),
            ("MajiKoi5-783gue6qz075azm5e", "Maji\u{3067}Koi\u{3059}\u{308b}5\u{79d2}\u{524d}"),
            ("de-jg4avhby1noc0d", "\u{30d1}\u{30d5}\u{30a3}\u{30fc}de\u{30eb}\u{30f3}\u{30d0}"),
            ("d9juau41awczczp", "\u{305d}\u{306e}\u{30b9}\u{30d4}\u{30fc}\u{30c9}\u{3067}"),
            ("-> $1.00 <--", "-> $1.00 <-"),
            // Lookalikes used below, computed with Python's punycode codec.
            ("pi-6kc", "\u{430}pi"),
            ("pis-5cd", "\u{430}pis"),
            ("b-54b", "\u{501}b"),
        ];
        for (encoded, decoded) in cases {
            assert_eq!(
                decode_punycode(encoded).as_deref(),
                Some(decoded),
                "{encoded}"
            );
        }
    }

    #[test]
    fn punycode_rejects_garbage() {
        let oversized = "a".repeat(300);
        for bad in [
            "99999999999",  // i overflows
            "999999999999", // w overflows first
            "a-b!",         // not a base-36 digit
            "\u{e9}",       // non-ASCII input
            "z",            // 25 >= t, so another digit is due and missing
            "-9",           // 9 is digit 35 >= t: again cut short
            &oversized,
        ] {
            assert_eq!(decode_punycode(bad), None, "{bad}");
        }
        // Odd but valid, agreeing with Python's codec.
        for (input, want) in [
            ("zzzzzzzzzzzzz", "\u{885e}\u{9ce5}\u{7ba5}\u{7cea}\u{7e16}"),
            ("a", "\u{80}"),
            ("ba", "\u{81}"),
            ("zz9a", "\u{ab7f}"),
        ] {
            assert_eq!(decode_punycode(input).as_deref(), Some(want), "{input}");
        }
        // Arbitrary input never panics.
        for s in [
            "a",
            "ba",
            "-",
            "--",
            "a-",
            "0",
            "99",
            "zz9a",
            "xn--",
            "w0w0w0w0w0w0",
        ] {
            let _ = decode_punycode(s);
        }
        assert_eq!(decode_punycode(""), Some(String::new()));
        assert_eq!(decode_punycode("abc-"), Some("abc".into()));
        // A delimiter with no basic code point before it is not consumed (RFC 3492 §6.2), so
        // it is read as a digit and fails; Python's codec skips it instead.
        assert_eq!(decode_punycode("-abc"), None);
        // Exactly at the bound, and one past it.
        assert!(decode_punycode(&"a-".repeat(127)[..254]).is_some());
        assert_eq!(decode_punycode(&"a".repeat(256)), None);
    }

    #[test]
    fn domain_checks() {
        let platform = [
            "apis.do",
            "api.do",
            "db.do",
            "auth.do",
            "workers.do",
            "localhost",
        ];
        let deny = vec![
            "evil.do".to_string(),
            " *.Blocked.DO. ".to_string(),
            String::new(),
        ];
        let cases: &[(&str, bool, Result<(), Refusal>)] = &[
            ("myshop.do", false, Ok(())),
            ("api.do", false, Ok(())),
            ("apis.do", false, Ok(())),
            ("shop.api.do", false, Ok(())),
            ("coffee.example.com", false, Ok(())),
            ("xn--ls8h.do", false, Ok(())), // 💩.do: odd, not confusable
            ("xn--e1afmkfd.do", false, Ok(())), // пример.do: Cyrillic, unlike any platform host
            ("10.0.0.1", true, Err(Refusal::IpLiteral)),
            ("10.0.0.1", false, Err(Refusal::IpLiteral)),
            ("127.1", false, Err(Refusal::IpLiteral)),
            ("0x7f.1", false, Err(Refusal::IpLiteral)),
            ("[::1]", false, Err(Refusal::IpLiteral)),
            ("evil.do", false, Err(Refusal::Denylisted)),
            ("a.b.evil.do", false, Err(Refusal::Denylisted)),
            ("notevil.do", false, Ok(())),
            ("blocked.do", false, Err(Refusal::Denylisted)),
            ("x.blocked.do", false, Err(Refusal::Denylisted)),
            ("xn--pi-6kc.do", false, Err(Refusal::Confusable)), // аpi.do, Cyrillic а
            ("xn--pis-5cd.do", false, Err(Refusal::Confusable)), // аpis.do
            ("xn--pis-nxc.do", false, Err(Refusal::Confusable)), // αpis.do, Greek α
            ("xn--p-7sb9i.do", false, Err(Refusal::Confusable)), // аpі.do, two Cyrillic
            ("xn--pi-bz3n.do", false, Err(Refusal::Confusable)), // fullwidth ａpi.do
            ("xn--ap-oja.do", false, Err(Refusal::Confusable)), // apí.do
            ("xn--b-54b.do", false, Err(Refusal::Confusable)),  // ԁb.do, Cyrillic ԁ
            ("xn--uth-5cd.do", false, Err(Refusal::Confusable)), // аuth.do
            ("xn--wrkers-wqf.do", false, Err(Refusal::Confusable)), // wоrkers.do
            ("login.xn--pi-6kc.do", false, Err(Refusal::Confusable)), // via its parent
            ("XN--PI-6KC.DO", false, Err(Refusal::Confusable)),
            ("w0rkers.do", false, Err(Refusal::Confusable)),
            ("1ocalhost", false, Err(Refusal::Confusable)),
            ("auth.d0", false, Err(Refusal::Confusable)),
            ("workers.do.", false, Ok(())),
            ("xn--99999999999.do", false, Err(Refusal::Confusable)), // undecodable punycode
        ];
        for (host, is_ip, want) in cases {
            assert_eq!(
                &check_domain(host, *is_ip, &platform, &deny),
                want,
                "{host}"
            );
        }
        // rn / m
        assert_eq!(
            check_domain("rnyshop.do", false, &["myshop.do"], &[]),
            Err(Refusal::Confusable)
        );
        assert_eq!(
            check_domain("myshop.do", false, &["rnyshop.do"], &[]),
            Err(Refusal::Confusable)
        );
        assert_eq!(check_domain("myshop.do", false, &[], &[]), Ok(()));
        // Platform hosts are compared normalised.
        assert_eq!(check_domain("api.do", false, &["API.DO."], &[]), Ok(()));
        assert!(!Refusal::Confusable.to_string().is_empty());
    }

    #[test]
    fn platform_host_list() {
        let api = vec![
            "api.do".to_string(),
            "localhost".into(),
            "127.0.0.1".into(),
            "API.DO".into(),
        ];
        let hosts = platform_hosts(&api, "apis.do", "do");
        for want in [
            "api.do",
            "localhost",
            "127.0.0.1",
            "apis.do",
            "db.do",
            "auth.do",
            "do.do",
            "waitlist.do",
            "database.do",
            "agents.do",
        ] {
            assert!(hosts.iter().any(|h| h == want), "missing {want}");
        }
        assert_eq!(hosts.iter().filter(|h| *h == "api.do").count(), 1);
        assert!(hosts.len() < 30, "{hosts:?}");
        // Its own zone follows the config.
        assert!(platform_hosts(&[], "apis.example", "example").contains(&"db.example".to_string()));
        // And the lookalike check sees through it.
        assert_eq!(
            check_domain(
                "xn--b-54b.do",
                false,
                &hosts.iter().map(String::as_str).collect::<Vec<_>>(),
                &[]
            ),
            Err(Refusal::Confusable)
        );
    }

    #[test]
    fn denylist_var() {
        assert_eq!(parse_denylist(None), Vec::<String>::new());
        assert_eq!(parse_denylist(Some(" , ")), Vec::<String>::new());
        assert_eq!(
            parse_denylist(Some("Evil.DO, *.blocked.do ,,bad.example.")),
            vec!["evil.do", "blocked.do", "bad.example"]
        );
        let deny = parse_denylist(Some("evil.do"));
        assert_eq!(
            check_domain("x.evil.do", false, &[], &deny),
            Err(Refusal::Denylisted)
        );
    }

    #[test]
    fn accept_negotiation() {
        let browser_form =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        let cases: &[(Option<&str>, &str, bool)] = &[
            (Some(browser_form), "text/html", true),
            (Some("*/*"), "text/html", false),
            (None, "text/html", false),
            (Some(""), "text/html", false),
            (Some("application/json"), "text/html", false),
            (
                Some("application/json, text/html;q=0.5"),
                "text/html",
                false,
            ),
            (
                Some("text/html;q=0.5, application/json;q=0.5"),
                "text/html",
                true,
            ),
            (Some("TEXT/HTML"), "text/html", true),
            (Some("text/html;q=0"), "text/html", false),
            (Some("text/html;q=banana"), "text/html", true),
            (
                Some("text/html;level=1;q=0.2, application/json;q=0.1"),
                "text/html",
                true,
            ),
            (Some("text/*"), "text/html", false),
            (Some("text/csv"), "text/csv", true),
            (Some("text/csv;q=0.9, application/json"), "text/csv", false),
            (Some("application/json"), "text/csv", false),
        ];
        for (accept, media, want) in cases {
            assert_eq!(
                prefers(*accept, media, "application/json"),
                *want,
                "{accept:?} {media}"
            );
        }
    }

    #[test]
    fn origins() {
        let cases = [
            ("http://shop.example:8787", "shop.example", true),
            ("https://Shop.Example", "shop.example", true),
            ("https://shop.example.", "shop.example", true),
            ("http://127.0.0.1:9", "127.0.0.1", true),
            ("https://evil.example", "shop.example", false),
            ("https://shop.example.evil.example", "shop.example", false),
            ("null", "shop.example", false),
            ("", "shop.example", false),
            ("shop.example", "shop.example", false),
            ("ftp://shop.example", "shop.example", false),
            ("https://shop.example/", "shop.example", false),
            ("https://evil@shop.example", "shop.example", false),
            ("https://shop.example:99999", "shop.example", false),
        ];
        for (origin, host, want) in cases {
            assert_eq!(same_origin(origin, host), want, "{origin} vs {host}");
        }
    }

    #[test]
    fn admin_paths() {
        use AdminRequest::*;
        assert_eq!(parse_admin_path("/"), Some(Ok(Domains)));
        assert_eq!(parse_admin_path(""), Some(Ok(Domains)));
        assert_eq!(
            parse_admin_path("/Shop.Example"),
            Some(Ok(Signups("shop.example".into())))
        );
        assert_eq!(
            parse_admin_path("/shop.example/"),
            Some(Ok(Signups("shop.example".into())))
        );
        assert_eq!(
            parse_admin_path("/10.1.2.3"),
            Some(Ok(Signups("10.1.2.3".into())))
        );
        assert_eq!(parse_admin_path("/a/b"), None);
        assert!(matches!(parse_admin_path("/a..b"), Some(Err(_))));
        assert!(matches!(parse_admin_path("/%3Cx%3E"), Some(Err(_))));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn punycode_never_panics(s in "[a-z0-9-]{0,40}") {
                let _ = decode_punycode(&s);
            }

            #[test]
            fn checks_never_panic(host in "\\PC{0,40}", body in proptest::collection::vec(any::<u8>(), 0..128)) {
                let _ = check_domain(&host, false, &["api.do"], &["x.do".to_string()]);
                let _ = normalize_email(&host);
                let _ = form_or_json_email(Some("application/x-www-form-urlencoded"), &body);
                let _ = form_or_json_email(Some("application/json"), &body);
            }

            #[test]
            fn normalized_emails_are_fixed_points(local in "[a-z0-9._+-]{1,20}", domain in "[a-z0-9]{1,10}\\.[a-z]{2,5}") {
                if let Ok(email) = normalize_email(&format!(" {local}@{domain} ")) {
                    prop_assert_eq!(normalize_email(&email), Ok(email.clone()));
                }
            }

            #[test]
            fn escaped_text_has_no_markup(s in "\\PC{0,64}") {
                let e = html_escape(&s);
                prop_assert!(!e.contains(['<', '>', '"', '\'']));
            }
        }
    }
}
