//! Credential redaction for stored log records: the platform's own logging rules (no
//! credentials, cookies, passwords or query strings) applied to whatever a producer printed.
//! Values under credential-named keys go; credential-shaped strings go wherever they appear.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex_lite::{Captures, Regex};
use serde_json::Value;

pub const REDACTED: &str = "[REDACTED]";

/// Keys whose values are credentials, compared lower-case without `-`/`_`: exact names...
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "apikey",
    "xapikey",
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "session",
    "sessionid",
    "sid",
    "jwt",
    "privatekey",
    "adminapikey",
    "tokenkeys",
];

/// ... and endings (`newPassword`, `accessToken`, `clientSecret`, `stripeApiKey`...).
const SECRET_SUFFIXES: &[&str] = &["password", "secret", "token", "apikey", "sessionid"];

/// Whether a field named `key` holds a credential.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.contains(&k.as_str()) || SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// The credential names the text rules look for before a `:` or `=`.
const SECRET_WORDS: &str = "(?:password|passwd|pwd|secret|token|api[_-]?key|x-api-key|access[_-]?token|refresh[_-]?token|session(?:[_-]?id)?|authorization|cookie|set-cookie)";

struct Rules {
    /// `"key": "value"` (JSON inside free text), the whole quoted value.
    quoted: Regex,
    /// `key=value` / `key: value` in free text.
    assignment: Regex,
    /// `Bearer …`, `Basic …` (Authorization values).
    scheme: Regex,
    /// JWTs (header.payload.signature, the header always starts `eyJ`).
    jwt: Regex,
    /// The platform's API keys: `sk_{12-char lookup}_{secret}` (the `sk_{lookup}` display
    /// prefix alone is not secret and stays).
    api_key: Regex,
    /// The platform's session ids: 43 base64url characters standing alone.
    session_id: Regex,
    /// A URL's query string and fragment (the platform never logs them).
    url_query: Regex,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let build = |pattern: &str| Regex::new(pattern).unwrap_or_else(|_| never_matching());
        Rules {
            quoted: build(&format!(
                r#"(?i)("{SECRET_WORDS}"\s*:\s*")(?:[^"\\]|\\.)*""#
            )),
            assignment: build(&format!(r#"(?i)(\b{SECRET_WORDS}\s*[:=]\s*)([^\s"&;,]+)"#)),
            scheme: build(r"\b(Bearer|bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
            jwt: build(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
            api_key: build(r"\bsk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{8,}"),
            session_id: build(r"(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}($|[^A-Za-z0-9_-])"),
            url_query: build(r#"(https?://[^\s?#"']*)[?#][^\s"']*"#),
        }
    })
}

/// A pattern that cannot match (only if a rule above failed to compile, which tests rule out).
fn never_matching() -> Regex {
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a constant pattern compiles"))
}

/// `text` with every credential-shaped part replaced.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let r = rules();
    let mut out = Cow::Borrowed(text);
    let mut apply = |re: &Regex, rep: &dyn Fn(&Captures) -> String| {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, |c: &Captures| rep(c)).into_owned());
        }
    };
    apply(&r.url_query, &|c| format!("{}?{REDACTED}", &c[1]));
    apply(&r.jwt, &|_| REDACTED.to_string());
    apply(&r.api_key, &|_| REDACTED.to_string());
    apply(&r.scheme, &|c| format!("{} {REDACTED}", &c[1]));
    apply(&r.quoted, &|c| format!("{}{REDACTED}\"", &c[1]));
    apply(&r.assignment, &|c| {
        if &c[2] == REDACTED {
            c[0].to_string()
        } else {
            format!("{}{REDACTED}", &c[1])
        }
    });
    apply(&r.session_id, &|c| format!("{}{REDACTED}{}", &c[1], &c[2]));
    out
}

/// Redacts a JSON value in place: credential-named fields lose their value, every string is
/// scanned for credential shapes.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = redact_text(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) && !matches!(v, Value::Null | Value::Bool(_)) {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact_value(v);
                }
            }
        }
        _ => {}
    }
}

/// A URL without its query string and fragment.
pub fn strip_query(url: &str) -> &str {
    match url.find(['?', '#']) {
        Some(i) => &url[..i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_rule_compiles() {
        let r = rules();
        for re in [
            &r.quoted,
            &r.assignment,
            &r.scheme,
            &r.jwt,
            &r.api_key,
            &r.session_id,
            &r.url_query,
        ] {
            assert!(!re.as_str().contains(r"[^\s\S]"));
        }
    }

    #[test]
    fn credential_shapes_are_removed_from_text() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtMDE";
        let key = "sk_AbC123xyz789_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
        let sid = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE";
        assert_eq!(sid.len(), 43);
        let cases = [
            (format!("got token {jwt} ok"), vec![jwt]),
            (format!("Authorization: Bearer {jwt}"), vec![jwt]),
            (
                "Authorization: Basic dXNlcjpwYXNzd29yZA==".into(),
                vec!["dXNlcjpwYXNzd29yZA=="],
            ),
            (format!("key={key}&x=1"), vec![key]),
            (format!("using {key}"), vec![key]),
            (format!("Cookie: session={sid}"), vec![sid]),
            (format!("sid {sid}."), vec![sid]),
            (
                "password=hunter2hunter2 next".into(),
                vec!["hunter2hunter2"],
            ),
            (
                r#"{"password":"correct horse"}"#.into(),
                vec!["correct", "horse"],
            ),
            ("X-API-Key: dev-admin-key".into(), vec!["dev-admin-key"]),
            (
                "fetch https://a.example/p?token=abc&x=1 failed".into(),
                vec!["abc", "x=1"],
            ),
        ];
        for (text, secrets) in cases {
            let clean = redact_text(&text);
            for secret in secrets {
                assert!(!clean.contains(secret), "{text:?} → {clean:?}");
            }
            assert!(clean.contains(REDACTED), "{text:?} → {clean:?}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "request",
            "01JDQ3V7Z8K9M0N1P2Q3R4S5T6",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "sk_AbC123xyz789",
            "https://api.do/api/db/notes/1",
            "rate limiter alarm not set",
            "credential: apiKey",
            "token expired for this session",
            "basic authentication is not offered",
        ] {
            assert_eq!(redact_text(text), text, "{text}");
            assert!(matches!(redact_text(text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn secret_keys() {
        for key in [
            "password",
            "newPassword",
            "access_token",
            "X-API-Key",
            "apiKey",
            "Cookie",
            "sessionId",
            "clientSecret",
            "authorization",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "credential",
            "requestId",
            "traceId",
            "userId",
            "prefix",
            "tokens_used_count",
            "keys",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn values_are_redacted_recursively() {
        let mut v = json!({
            "user": {"email": "a@b.c", "password": "pw-123456"},
            "headers": [{"authorization": "Bearer abcdefgh"}],
            "note": "Bearer abcdefghij",
            "session": null,
            "token": 42,
            "credential": "token",
        });
        redact_value(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("pw-123456") && !text.contains("abcdefgh"),
            "{text}"
        );
        assert_eq!(v["session"], Value::Null);
        assert_eq!(v["token"], json!(REDACTED));
        assert_eq!(v["credential"], json!("token"));
        assert_eq!(v["user"]["email"], json!("a@b.c"));
    }

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(
            strip_query("https://api.do/x?token=1#f"),
            "https://api.do/x"
        );
        assert_eq!(strip_query("https://api.do/x#f"), "https://api.do/x");
        assert_eq!(strip_query("https://api.do/x"), "https://api.do/x");
    }
}
