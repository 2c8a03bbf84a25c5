//! Access tokens (`token::verify`, `token::sign`, `KeySet::from_config`). Properties: a token
//! the platform signs verifies to the same claims and re-encodes to itself; a token whose
//! header and payload are arbitrary bytes but whose HS256 signature is right (so the parser
//! behind the signature check is reached) either is refused or verifies to claims that
//! re-sign into a token verifying to the same claims, and re-encodes to itself when its JSON
//! was written the way `sign` writes it; arbitrary text never panics the verifier or the key
//! configuration parser.
#![no_main]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gateway::token::{sign, verify, Claims, KeySet, MAX_TOKEN_LEN, TOKEN_AUDIENCE, TOKEN_ISSUER};
use gateway_fuzz::{fields, text};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::OnceLock;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let config = format!(
            "k1:{},k0:{}",
            STANDARD.encode([1u8; 32]),
            STANDARD.encode([2u8; 32])
        );
        KeySet::from_config(&config).expect("the fuzz key set is valid")
    })
}

fn check(token: &str, now: u64) -> Result<Claims, gateway::token::TokenError> {
    verify(token, keys(), TOKEN_ISSUER, TOKEN_AUDIENCE, now)
}

/// A number field: its decimal value, or (for fuzzer-friendliness) its length.
fn number(field: &[u8]) -> u64 {
    text(field).trim().parse().unwrap_or(field.len() as u64)
}

// The first byte picks the mode: 0 sign and verify claims (fields split at `\n`: sub, sid,
// role, email, iat, exp, now, key), 1 a correctly signed token of arbitrary header and payload
// bytes (split at the first NUL), 2 any token text, 3 a key configuration.
fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let [sub, sid, role, email, iat, exp, now, key] = fields::<8>(rest, b'\n');
            let (exp, now) = (number(exp), number(now));
            let claims = Claims {
                sub: text(sub).into_owned(),
                sid: text(sid).into_owned(),
                role: text(role).into_owned(),
                email: text(email).into_owned(),
                iss: TOKEN_ISSUER.to_owned(),
                aud: TOKEN_AUDIENCE.to_owned(),
                iat: number(iat),
                exp,
            };
            let key = match (&keys.previous, key.first()) {
                (Some(previous), Some(b'0')) => previous,
                _ => &keys.current,
            };
            let token = sign(&claims, key);
            match check(&token, now) {
                Ok(verified) => {
                    assert!(now < exp, "an expired token verified");
                    assert_eq!(verified, claims);
                    assert_eq!(
                        sign(&verified, key),
                        token,
                        "a verified token did not re-encode to itself"
                    );
                }
                Err(e) => assert!(
                    now >= exp || token.len() > MAX_TOKEN_LEN,
                    "a freshly signed token was refused: {e:?}"
                ),
            }
        }
        1 => {
            let [header, payload] = fields::<2>(rest, 0);
            let mut token = URL_SAFE_NO_PAD.encode(header);
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(payload, &mut token);
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.current.secret)
                .expect("HMAC takes keys of any length");
            mac.update(token.as_bytes());
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
            if let Ok(claims) = check(&token, 0) {
                let again = sign(&claims, &keys.current);
                if again.len() <= MAX_TOKEN_LEN {
                    assert_eq!(check(&again, 0), Ok(claims.clone()));
                }
                let canonical = serde_json::to_vec(&claims).expect("claims serialise");
                let header_out = format!(
                    r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
                    keys.current.kid
                );
                if payload == canonical && header == header_out.as_bytes() {
                    assert_eq!(again, token, "a verified token did not re-encode to itself");
                }
            }
        }
        2 => {
            let _ = check(&text(rest), 0);
        }
        _ => {
            if let Ok(set) = KeySet::from_config(&text(rest)) {
                assert!(set.current.secret.len() >= gateway::token::MIN_SECRET_LEN);
                assert!(set
                    .previous
                    .as_ref()
                    .is_none_or(|p| p.kid != set.current.kid));
            }
        }
    }
});
