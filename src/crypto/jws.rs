//! Verifying compact JWS tokens (RFC 7515) against a JWK set: client assertions for
//! `private_key_jwt` (RFC 7523) and our own ID tokens given back as `id_token_hint`.
//! Only PS256, RS256 and ES256; `none` and every symmetric algorithm are refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm {0}")]
    UnsupportedAlg(String),
    #[error("no key in the key set fits the token")]
    NoKey,
    #[error("bad signature")]
    BadSignature,
}

/// Header and claims of a token whose signature has NOT been checked yet (to find the key).
pub fn peek(token: &str) -> Result<(Value, Value), JwsError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwsError::Malformed);
    };
    let decode = |s: &str| -> Result<Value, JwsError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)?;
        if v.is_object() { Ok(v) } else { Err(JwsError::Malformed) }
    };
    Ok((decode(h)?, decode(c)?))
}

fn b64(v: &Value, field: &str) -> Option<Vec<u8>> {
    v.get(field).and_then(|s| s.as_str()).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
}

fn verify_one(alg: &str, jwk: &Value, message: &[u8], sig: &[u8]) -> bool {
    match (alg, jwk.get("kty").and_then(|k| k.as_str())) {
        ("PS256" | "RS256", Some("RSA")) => {
            let (Some(n), Some(e)) = (b64(jwk, "n"), b64(jwk, "e")) else { return false };
            let params: &signature::RsaParameters = if alg == "PS256" {
                &signature::RSA_PSS_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
        }
        ("ES256", Some("EC")) if jwk.get("crv").and_then(|c| c.as_str()) == Some("P-256") => {
            let (Some(x), Some(y)) = (b64(jwk, "x"), b64(jwk, "y")) else { return false };
            if x.len() != 32 || y.len() != 32 {
                return false;
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).is_ok()
        }
        _ => false,
    }
}

/// Verifies `token` with a key of `jwks` (`{"keys": [...]}`): the key named by the header's
/// `kid` if there is one, otherwise any key of the right type. A key whose `alg` or `use` says
/// otherwise is not used. Returns the claims.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, JwsError> {
    let (header, claims) = peek(token)?;
    let alg = header.get("alg").and_then(|a| a.as_str()).ok_or(JwsError::Malformed)?;
    if !["PS256", "RS256", "ES256"].contains(&alg) {
        return Err(JwsError::UnsupportedAlg(alg.to_string()));
    }
    let kid = header.get("kid").and_then(|k| k.as_str());
    let Some((signing_input, sig)) = token.rsplit_once('.') else { return Err(JwsError::Malformed) };
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| JwsError::Malformed)?;
    let keys = jwks.get("keys").and_then(|k| k.as_array()).ok_or(JwsError::NoKey)?;
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.get("kid").and_then(|v| v.as_str()) == Some(kid)))
        .filter(|k| k.get("alg").and_then(|a| a.as_str()).is_none_or(|a| a == alg))
        .filter(|k| k.get("use").and_then(|u| u.as_str()).is_none_or(|u| u == "sig"))
        .collect();
    if candidates.is_empty() {
        return Err(JwsError::NoKey);
    }
    if candidates.iter().any(|k| verify_one(alg, k, signing_input.as_bytes(), &sig)) {
        Ok(claims)
    } else {
        Err(JwsError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing::{SigningAlg, SigningKey, generate_pkcs8, jwks, sign_jwt};

    fn key(alg: SigningAlg, kid: &str) -> SigningKey {
        let der = generate_pkcs8(alg).unwrap_or_else(|e| unreachable!("{e}"));
        SigningKey::from_pkcs8(kid.into(), alg, &der).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn verifies_each_algorithm_and_refuses_tampering() {
        for alg in SigningAlg::ALL {
            let k = key(alg, "k1");
            let other = key(alg, "k2");
            let set = jwks(&[&k, &other]);
            let token = sign_jwt(&k, "JWT", &serde_json::json!({"sub": "x"})).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(verify(&token, &set).map(|c| c["sub"].clone()), Ok("x".into()), "{alg:?}");
            let (h, _) = token.split_once('.').unwrap_or_default();
            let forged =
                format!("{h}.{}.{}", URL_SAFE_NO_PAD.encode(br#"{"sub":"y"}"#), token.rsplit('.').next().unwrap_or(""));
            assert_eq!(verify(&forged, &set), Err(JwsError::BadSignature));
            assert_eq!(verify(&token, &jwks(&[&other])), Err(JwsError::NoKey), "kid k1 not in the set");
        }
    }

    #[test]
    fn refuses_none_and_hmac_and_garbage() {
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(b"{}"));
        assert_eq!(verify(&none, &serde_json::json!({"keys": []})), Err(JwsError::UnsupportedAlg("none".into())));
        let hs = format!("{}.{}.AAAA", URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#), URL_SAFE_NO_PAD.encode(b"{}"));
        assert!(matches!(verify(&hs, &serde_json::json!({"keys": []})), Err(JwsError::UnsupportedAlg(_))));
        assert_eq!(verify("a.b", &serde_json::json!({})), Err(JwsError::Malformed));
        assert_eq!(verify("!!.??.##", &serde_json::json!({})), Err(JwsError::Malformed));
    }
}
