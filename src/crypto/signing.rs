//! JWS signing keys for ID tokens, JWT access tokens (RFC 9068) and logout tokens,
//! backed by ring, plus their public JWK / JWKS form.
//!
//! Pure: keys arrive as PKCS#8 DER bytes and leave as bytes or JSON; storing them is
//! the caller's job.
//!
//! Why not openidconnect's own `CoreRsaPrivateSigningKey`: it signs with the `rsa`
//! crate, which is not constant-time (RUSTSEC-2023-0071, "Marvin"), and openidconnect
//! has no ES256 signer at all. ring signs everything here; `rsa` is used only to
//! *generate* RSA keys, which ring cannot do (a one-off, not a timing oracle).
//!
//! One key, one algorithm: a [`SigningKey`] refuses to sign with any algorithm other
//! than the one it was loaded for (RFC 7517 §4.4 `alg`; avoids cross-algorithm use
//! of one RSA key for both PS256 and RS256).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
use openidconnect::{PrivateSigningKey, SigningError};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

/// RSA modulus size for generated keys (RFC 7518 §3.3 minimum; ring accepts 2048–4096
/// when loading).
pub const RSA_GENERATED_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown or unsupported signing algorithm {0:?}")]
    UnsupportedAlg(String),
    #[error("key generation failed: {0}")]
    Generate(String),
    /// PKCS#8 that ring refuses: garbage, wrong key type for the algorithm, RSA size
    /// out of range, …
    #[error("signing key rejected: {0}")]
    Rejected(String),
    #[error("key id must not be empty")]
    EmptyKid,
    #[error("key {kid} is for {key_alg}, refusing to sign with {requested}")]
    WrongAlg { kid: String, key_alg: &'static str, requested: String },
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    #[error("signing failed")]
    Sign,
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

/// The JWS algorithms we sign with. Serialized as their JOSE names (`"PS256"`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt (RFC 7518 §3.5). Preferred RSA.
    PS256,
    /// ECDSA P-256 SHA-256 (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256: the OIDC default, which every RP must support
    /// (OIDC Discovery §3 `id_token_signing_alg_values_supported`).
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::PS256, SigningAlg::ES256, SigningAlg::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::PS256 => "PS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }

    pub fn to_core(self) -> CoreJwsSigningAlgorithm {
        match self {
            SigningAlg::PS256 => CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            SigningAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            SigningAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, SigningAlg::PS256 | SigningAlg::RS256)
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = KeyError;
    /// Exact, case-sensitive JOSE names: JWS `alg` values are case-sensitive (RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL.into_iter().find(|alg| alg.as_str() == s).ok_or_else(|| KeyError::UnsupportedAlg(s.to_owned()))
    }
}

/// A fresh private key for `alg`, as unencrypted PKCS#8 DER (what
/// [`SigningKey::from_pkcs8`] takes). RSA: 2048 bits via the `rsa` crate.
/// ES256: P-256 via ring.
pub fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    match alg {
        SigningAlg::PS256 | SigningAlg::RS256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_GENERATED_BITS)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| KeyError::Generate(e.to_string()))?;
            Ok(der.as_bytes().to_vec())
        }
        SigningAlg::ES256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate("P-256 key generation failed".into()))?;
            Ok(doc.as_ref().to_vec())
        }
    }
}

enum KeyPair {
    Rsa(RsaKeyPair),
    // Created with the *FIXED* (r‖s) variant: JWS wants raw r‖s, not ASN.1 DER
    // (RFC 7518 §3.4).
    Ec(EcdsaKeyPair),
}

/// A parsed private signing key with its `kid` and its single algorithm.
/// `Send + Sync`: share it behind an `Arc` in the application state.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: KeyPair,
    rng: SystemRandom,
    /// Public JWK, computed once; also the JWKS entry.
    jwk: Value,
    /// The same JWK as openidconnect's type (parsed from `jwk`, so both always agree).
    core_jwk: CoreJsonWebKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses `pkcs8_der` once. Fails if the key does not suit `alg` (an EC key for
    /// PS256, an RSA key for ES256, RSA outside 2048–4096 bits, garbage).
    pub fn from_pkcs8(kid: String, alg: SigningAlg, pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        let rejected = |e: ring::error::KeyRejected| KeyError::Rejected(e.to_string());
        let rng = SystemRandom::new();
        let (pair, key_fields) = if alg.is_rsa() {
            let kp = RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?;
            // ring gives n and e big-endian without leading zero bytes, as RFC 7518
            // §6.3.1.1 requires for the JWK.
            let c: signature::RsaPublicKeyComponents<Vec<u8>> = kp.public().into();
            let fields = json!({ "kty": "RSA", "n": b64(&c.n), "e": b64(&c.e) });
            (KeyPair::Rsa(kp), fields)
        } else {
            let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der, &rng)
                .map_err(rejected)?;
            // Uncompressed SEC1 point: 0x04 ‖ X (32) ‖ Y (32).
            let point = kp.public_key().as_ref();
            let (x, y) = match point {
                [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => {
                    return Err(KeyError::Rejected("unexpected P-256 public key encoding".into()));
                }
            };
            let fields = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
            (KeyPair::Ec(kp), fields)
        };

        let mut jwk = json!({ "kid": kid, "use": "sig", "alg": alg.as_str() });
        if let (Value::Object(map), Value::Object(extra)) = (&mut jwk, key_fields) {
            map.extend(extra);
        }
        // openidconnect's constructors (`new_rsa`, `new_ec`) cannot set `alg`, but its
        // Deserialize can; going through JSON also proves it understands our JWK.
        let core_jwk: CoreJsonWebKey = serde_json::from_value(jwk.clone())?;
        Ok(Self { kid, alg, pair, rng, jwk, core_jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The raw JWS signature of `msg` (the JWS signing input) under this key's algorithm.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match (&self.pair, self.alg) {
            (KeyPair::Rsa(kp), alg) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    SigningAlg::PS256 => &signature::RSA_PSS_SHA256,
                    SigningAlg::RS256 => &signature::RSA_PKCS1_SHA256,
                    // Unreachable by construction (`from_pkcs8` pairs ES256 with EC keys).
                    SigningAlg::ES256 => return Err(KeyError::Sign),
                };
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(padding, &self.rng, msg, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            (KeyPair::Ec(kp), _) => Ok(kp.sign(&self.rng, msg).map_err(|_| KeyError::Sign)?.as_ref().to_vec()),
        }
    }

    /// The public JWK: `kty`, `kid`, `use: "sig"`, `alg`, and `n`/`e` or
    /// `crv`/`x`/`y` (base64url, no padding).
    pub fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }
}

impl PrivateSigningKey for SigningKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, signature_alg: &CoreJwsSigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        if *signature_alg != self.alg.to_core() {
            return Err(SigningError::UnsupportedAlg(format!(
                "key {} is for {}, not {signature_alg:?}",
                self.kid, self.alg
            )));
        }
        SigningKey::sign(self, message).map_err(|_| SigningError::CryptoError)
    }

    /// Its `kid` becomes the JWS header's `kid` in `IdToken::new`.
    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.core_jwk.clone()
    }
}

#[derive(serde::Serialize)]
struct JwsHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

/// A compact JWS (`header.payload.signature`) over `claims` with header
/// `{"alg","kid","typ"}`. `typ` is e.g. `"at+jwt"` (RFC 9068 §2.1) or `"logout+jwt"`
/// (OIDC Back-Channel Logout §2.4). Claims must be a JSON object (RFC 7519 §7.2).
/// Nothing is added to the claims: `iat`, `exp`, `jti`… are the caller's.
pub fn sign_jwt(key: &SigningKey, typ: &str, claims: &Value) -> Result<String, KeyError> {
    if !claims.is_object() {
        return Err(KeyError::ClaimsNotObject);
    }
    let header = JwsHeader { alg: key.alg.as_str(), kid: &key.kid, typ };
    let signing_input = format!("{}.{}", b64(&serde_json::to_vec(&header)?), b64(&serde_json::to_vec(claims)?));
    let sig = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64(&sig)))
}

/// The JWK Set document (RFC 7517 §5) served at `jwks_uri`: `{"keys":[…]}`.
/// Include retiring keys too, so tokens they signed still verify.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::OnceLock;

    use super::*;
    use chrono::{Duration, Utc};
    use openidconnect::core::{CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet};
    use openidconnect::{
        AccessToken, Audience, AuthorizationCode, ClientId, EmptyAdditionalClaims, IssuerUrl, JsonWebKey as _, Nonce,
        StandardClaims, SubjectIdentifier,
    };

    const ISSUER: &str = "https://idp.example.test";

    /// RSA generation costs ~0.3 s even optimized: generate each test key once.
    fn der(alg: SigningAlg) -> &'static [u8] {
        static KEYS: [OnceLock<Vec<u8>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = SigningAlg::ALL.iter().position(|a| *a == alg).unwrap();
        KEYS[i].get_or_init(|| generate_pkcs8(alg).unwrap())
    }

    fn key(alg: SigningAlg) -> SigningKey {
        SigningKey::from_pkcs8(format!("{alg}-test"), alg, der(alg)).unwrap()
    }

    fn unb64(v: &Value) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap()
    }

    /// Verifies a compact JWS with ring using nothing but the public JWK.
    fn verify_with_jwk(jwk: &Value, jws: &str) -> Result<(), ring::error::Unspecified> {
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        match jwk["alg"].as_str().unwrap() {
            "ES256" => {
                let mut point = vec![0x04];
                point.extend(unb64(&jwk["x"]));
                point.extend(unb64(&jwk["y"]));
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &sig)
            }
            alg => {
                let params = if alg == "PS256" {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents { n: unb64(&jwk["n"]), e: unb64(&jwk["e"]) }.verify(
                    params,
                    input.as_bytes(),
                    &sig,
                )
            }
        }
    }

    #[test]
    fn alg_names() {
        for alg in SigningAlg::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlg>().unwrap(), alg);
            assert_eq!(serde_json::to_value(alg).unwrap(), json!(alg.as_str()));
            assert_eq!(serde_json::from_value::<SigningAlg>(json!(alg.as_str())).unwrap(), alg);
        }
        assert!("ps256".parse::<SigningAlg>().is_err());
        assert!("none".parse::<SigningAlg>().is_err());
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert_eq!(SigningAlg::PS256.to_core(), CoreJwsSigningAlgorithm::RsaSsaPssSha256);
        assert_eq!(SigningAlg::ES256.to_core(), CoreJwsSigningAlgorithm::EcdsaP256Sha256);
        assert_eq!(SigningAlg::RS256.to_core(), CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    }

    #[test]
    fn signing_key_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKey>();
    }

    #[test]
    fn public_jwk_shape() {
        for alg in SigningAlg::ALL {
            let k = key(alg);
            let jwk = k.public_jwk();
            assert_eq!(jwk["kid"], json!(k.kid()));
            assert_eq!(jwk["use"], json!("sig"));
            assert_eq!(jwk["alg"], json!(alg.as_str()));
            assert!(jwk.get("d").is_none(), "private part leaked: {jwk}");
            if alg == SigningAlg::ES256 {
                assert_eq!(jwk["kty"], json!("EC"));
                assert_eq!(jwk["crv"], json!("P-256"));
                assert_eq!(unb64(&jwk["x"]).len(), 32);
                assert_eq!(unb64(&jwk["y"]).len(), 32);
            } else {
                assert_eq!(jwk["kty"], json!("RSA"));
                let n = unb64(&jwk["n"]);
                assert_eq!(n.len(), 256);
                assert_ne!(n[0], 0);
                assert_eq!(unb64(&jwk["e"]), [1, 0, 1]);
            }
            assert_eq!(jwks(&[&k])["keys"][0], jwk);
            // The openidconnect view agrees (kid drives the JWS header there).
            let core = k.as_verification_key();
            assert_eq!(core.key_id().unwrap().as_str(), k.kid());
            assert_eq!(serde_json::to_value(&core).unwrap()["alg"], json!(alg.as_str()));
        }
    }

    #[test]
    fn sign_jwt_verifies_with_public_jwk_only() {
        for alg in SigningAlg::ALL {
            let k = key(alg);
            let claims = json!({ "iss": ISSUER, "sub": "acct-1", "exp": 2_000_000_000 });
            let jws = sign_jwt(&k, "at+jwt", &claims).unwrap();
            let parts: Vec<&str> = jws.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(header, json!({ "alg": alg.as_str(), "kid": k.kid(), "typ": "at+jwt" }));
            let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(payload, claims);

            let jwk = k.public_jwk();
            verify_with_jwk(&jwk, &jws).unwrap_or_else(|_| panic!("{alg} signature did not verify"));
            // A modified payload must not verify.
            let forged = format!("{}.{}.{}", parts[0], b64(br#"{"sub":"admin"}"#), parts[2]);
            assert!(verify_with_jwk(&jwk, &forged).is_err());
        }
    }

    #[test]
    fn id_token_round_trip_through_openidconnect_and_jwks_json() {
        let keys: Vec<SigningKey> = SigningAlg::ALL.into_iter().map(key).collect();
        let jwks_json = serde_json::to_string(&jwks(&keys.iter().collect::<Vec<_>>())).unwrap();
        let jwks: CoreJsonWebKeySet = serde_json::from_str(&jwks_json).unwrap();
        let access_token = AccessToken::new("at-123".into());
        let code = AuthorizationCode::new("code-456".into());

        for k in &keys {
            let claims = CoreIdTokenClaims::new(
                IssuerUrl::new(ISSUER.into()).unwrap(),
                vec![Audience::new("portal".into())],
                Utc::now() + Duration::seconds(300),
                Utc::now(),
                StandardClaims::new(SubjectIdentifier::new("acct-1".into())),
                EmptyAdditionalClaims {},
            )
            .set_nonce(Some(Nonce::new("n-1".into())));
            let token = CoreIdToken::new(claims, k, k.alg().to_core(), Some(&access_token), Some(&code)).unwrap();
            let serialized = token.to_string();

            let verifier = CoreIdTokenVerifier::new_public_client(
                ClientId::new("portal".into()),
                IssuerUrl::new(ISSUER.into()).unwrap(),
                jwks.clone(),
            )
            .set_allowed_algs(SigningAlg::ALL.map(SigningAlg::to_core));
            let parsed: CoreIdToken = serialized.parse().unwrap();
            let verified = parsed.claims(&verifier, &Nonce::new("n-1".into())).unwrap();
            assert_eq!(verified.subject().as_str(), "acct-1");
            assert!(verified.access_token_hash().is_some());
            assert!(verified.code_hash().is_some());
            assert!(parsed.claims(&verifier, &Nonce::new("other".into())).is_err());

            // Our own ring verification agrees with openidconnect's.
            verify_with_jwk(&k.public_jwk(), &serialized).unwrap();
        }
    }

    #[test]
    fn refuses_other_algorithms() {
        let ps = key(SigningAlg::PS256);
        let es = key(SigningAlg::ES256);
        // Same RSA key material, but this key is PS256 only.
        for alg in [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::None,
        ] {
            assert!(matches!(PrivateSigningKey::sign(&ps, &alg, b"m"), Err(SigningError::UnsupportedAlg(_))));
        }
        assert!(PrivateSigningKey::sign(&ps, &CoreJwsSigningAlgorithm::RsaSsaPssSha256, b"m").is_ok());
        assert!(matches!(
            PrivateSigningKey::sign(&es, &CoreJwsSigningAlgorithm::EcdsaP384Sha384, b"m"),
            Err(SigningError::UnsupportedAlg(_))
        ));

        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(ISSUER.into()).unwrap(),
            vec![Audience::new("portal".into())],
            Utc::now() + Duration::seconds(300),
            Utc::now(),
            StandardClaims::new(SubjectIdentifier::new("acct-1".into())),
            EmptyAdditionalClaims {},
        );
        assert!(CoreIdToken::new(claims, &es, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None).is_err());
    }

    #[test]
    fn rejects_bad_key_material() {
        for alg in SigningAlg::ALL {
            for garbage in [&b""[..], b"garbage", &[0x30, 0x82, 0xff, 0xff]] {
                assert!(matches!(SigningKey::from_pkcs8("k".into(), alg, garbage), Err(KeyError::Rejected(_))));
            }
        }
        // An EC key is not an RSA key and vice versa.
        assert!(SigningKey::from_pkcs8("k".into(), SigningAlg::PS256, der(SigningAlg::ES256)).is_err());
        assert!(SigningKey::from_pkcs8("k".into(), SigningAlg::ES256, der(SigningAlg::RS256)).is_err());
        // An RSA key may be loaded as either RSA algorithm (the choice is the caller's,
        // and from then on it signs only with that one).
        assert!(SigningKey::from_pkcs8("k".into(), SigningAlg::RS256, der(SigningAlg::PS256)).is_ok());
        assert!(matches!(
            SigningKey::from_pkcs8(String::new(), SigningAlg::ES256, der(SigningAlg::ES256)),
            Err(KeyError::EmptyKid)
        ));
    }

    #[test]
    fn sign_jwt_rejects_non_object_claims() {
        let k = key(SigningAlg::ES256);
        for claims in [json!([]), json!("x"), json!(null), json!(1)] {
            assert!(matches!(sign_jwt(&k, "JWT", &claims), Err(KeyError::ClaimsNotObject)));
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = key(SigningAlg::RS256);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("RS256-test") && dbg.contains("RS256"));
        assert!(!dbg.contains(k.public_jwk()["n"].as_str().unwrap()));
    }
}
