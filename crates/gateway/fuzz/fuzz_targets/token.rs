//! Access tokens (`token::verify`, `token::sign`, `KeySet::from_config`). Properties: a token
//! the platform signs verifies to the same claims and re-encodes to itself; a token whose
//! header and payload are arbitrary bytes but whose HS256 signature is right (so the parser
//! behind the signature check is reached) either is refused or verifies to claims that
//! re-sign into a token verifying to the same claims, and re-encodes to itself when its JSON
//! was written the way `sign` writes it; arbitrary text never panics the verifier or the key
//! configuration parser.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gateway::token::{sign, verify, Claims, KeySet, MAX_TOKEN_LEN, TOKEN_AUDIENCE, TOKEN_ISSUER};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
enum Input {
    RoundTrip {
        sub: String,
        sid: String,
        role: String,
        email: String,
        iat: u64,
        exp: u64,
        now: u64,
        previous_key: bool,
    },
    Signed {
        header: Vec<u8>,
        payload: Vec<u8>,
    },
    Raw(String),
    Config(String),
}

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

fuzz_target!(|input: Input| {
    let keys = keys();
    match input {
        Input::RoundTrip {
            sub,
            sid,
            role,
            email,
            iat,
            exp,
            now,
            previous_key,
        } => {
            let claims = Claims {
                sub,
                sid,
                role,
                email,
                iss: TOKEN_ISSUER.to_owned(),
                aud: TOKEN_AUDIENCE.to_owned(),
                iat,
                exp,
            };
            let key = match (&keys.previous, previous_key) {
                (Some(previous), true) => previous,
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
        Input::Signed { header, payload } => {
            let mut token = URL_SAFE_NO_PAD.encode(&header);
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.current.secret)
                .expect("HMAC takes keys of any length");
            mac.update(token.as_bytes());
            token.push('.');
            URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
            if let Ok(claims) = check(&token, 0) {
                let again = sign(&claims, &keys.current);
                assert_eq!(check(&again, 0), Ok(claims.clone()));
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
        Input::Raw(token) => {
            let _ = check(&token, 0);
        }
        Input::Config(config) => {
            if let Ok(set) = KeySet::from_config(&config) {
                assert!(set.current.secret.len() >= gateway::token::MIN_SECRET_LEN);
                assert!(set
                    .previous
                    .as_ref()
                    .is_none_or(|p| p.kid != set.current.kid));
            }
        }
    }
});
