//! Credentials from request headers (`token::credential`: `Authorization: Bearer`, `X-API-Key`,
//! the `session` cookie) and the stored formats behind them. Properties: the credential
//! picked is a substring of the header it came from, in the contract's order, and within the
//! length bounds; an API key that parses re-formats to itself from its decoded secret; a
//! password record that parses re-encodes to the same record.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::token::{
    api_key_prefix, credential, format_api_key, is_session_id, parse_api_key, parse_role,
    Credential, PasswordRecord, MAX_CREDENTIAL_LEN, MAX_TOKEN_LEN,
};
use gateway_fuzz::{fields, header, text};
use libfuzzer_sys::fuzz_target;

fn within(part: &str, whole: &str) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

fuzz_target!(|data: &[u8]| {
    let [authorization, api_key, cookie, stored] = fields::<4>(data, b'\n');
    let (authorization, api_key, cookie) = (header(authorization), header(api_key), header(cookie));
    let picked = credential(
        authorization.as_deref(),
        api_key.as_deref(),
        cookie.as_deref(),
    );
    match picked {
        Ok(Some(Credential::Bearer(t))) => {
            let h = authorization
                .as_deref()
                .expect("a bearer token needs the header");
            assert!(
                within(t, h) && !t.is_empty() && t.len() <= MAX_TOKEN_LEN,
                "{t:?}"
            );
        }
        Ok(Some(Credential::ApiKey(k))) => {
            assert!(authorization.is_none());
            let h = api_key.as_deref().expect("an API key needs the header");
            assert!(
                within(k, h) && !k.is_empty() && k.len() <= MAX_CREDENTIAL_LEN,
                "{k:?}"
            );
            assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{k:?}");
        }
        Ok(Some(Credential::Session(s))) => {
            assert!(authorization.is_none() && api_key.is_none());
            let h = cookie.as_deref().expect("a session needs the cookie");
            assert!(
                within(s, h) && !s.is_empty() && s.len() <= MAX_CREDENTIAL_LEN,
                "{s:?}"
            );
        }
        Ok(None) => assert!(authorization.is_none() && api_key.is_none()),
        Err(_) => {}
    }

    let stored = text(stored);
    if let Some((id, secret)) = parse_api_key(&stored) {
        let bytes = URL_SAFE_NO_PAD
            .decode(secret)
            .expect("a parsed secret decodes");
        assert_eq!(
            format_api_key(id, &bytes).as_deref(),
            Some(&*stored),
            "API key round trip"
        );
        assert_eq!(api_key_prefix(&stored).map(str::len), Some(3 + id.len()));
    }
    if let Some(record) = PasswordRecord::parse(&stored) {
        assert_eq!(PasswordRecord::parse(&record.encode()), Some(record));
    }
    let _ = (is_session_id(&stored), parse_role(&stored));
});
