//! Raw WebCrypto bindings (the only JS this crate touches besides `rpc::sys`): PBKDF2 through
//! `crypto.subtle`, which runs natively in the runtime (a pure-wasm PBKDF2 at 100 000
//! iterations would burn far more CPU time), and random bytes from `crypto.getRandomValues`.

use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    type SubtleCrypto;

    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_key(
        this: &SubtleCrypto,
        format: &str,
        key_data: &Uint8Array,
        algorithm: &str,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = deriveBits)]
    fn derive_bits(
        this: &SubtleCrypto,
        algorithm: &Object,
        base_key: &JsValue,
        length: u32,
    ) -> Result<Promise, JsValue>;
}

/// Why a crypto operation failed. Never carries inputs.
#[derive(Debug)]
pub struct CryptoError(pub String);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webcrypto: {}", self.0)
    }
}

fn subtle() -> Result<SubtleCrypto, CryptoError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| CryptoError("no crypto global".into()))?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .map_err(|_| CryptoError("no crypto.subtle".into()))?;
    if subtle.is_undefined() {
        return Err(CryptoError("no crypto.subtle".into()));
    }
    Ok(subtle.unchecked_into())
}

fn failed(what: &str) -> impl Fn(JsValue) -> CryptoError + '_ {
    move |e| CryptoError(format!("{what} failed: {}", rpc::sys::error_message(&e)))
}

/// PBKDF2-HMAC-SHA256 of `password` with `salt`, `out_len` bytes.
pub async fn pbkdf2_sha256(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    let subtle = subtle()?;
    let usages: Array = std::iter::once(JsValue::from_str("deriveBits")).collect();
    let key = subtle
        .import_key("raw", &Uint8Array::from(password), "PBKDF2", false, &usages)
        .map_err(failed("importKey"))?;
    let key = JsFuture::from(key).await.map_err(failed("importKey"))?;

    let algorithm = Object::new();
    let set = |k: &str, v: JsValue| {
        Reflect::set(&algorithm, &JsValue::from_str(k), &v)
            .map(|_| ())
            .map_err(failed("building the PBKDF2 parameters"))
    };
    set("name", JsValue::from_str("PBKDF2"))?;
    set("hash", JsValue::from_str("SHA-256"))?;
    set("salt", Uint8Array::from(salt).into())?;
    set("iterations", JsValue::from(iterations))?;
    let bits = u32::try_from(out_len * 8).map_err(|_| CryptoError("length".into()))?;
    let derived = subtle
        .derive_bits(&algorithm, &key, bits)
        .map_err(failed("deriveBits"))?;
    let derived = JsFuture::from(derived)
        .await
        .map_err(failed("deriveBits"))?;
    let buffer: ArrayBuffer = derived
        .dyn_into()
        .map_err(|_| CryptoError("deriveBits did not return an ArrayBuffer".into()))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// `N` bytes from the platform CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CryptoError(format!("getRandomValues: {e}")))?;
    Ok(bytes)
}
