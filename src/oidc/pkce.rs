//! Proof Key for Code Exchange (RFC 7636), S256 only.

use super::OAuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
/// The challenge (§4.2, S256) is BASE64URL(SHA256(verifier)): 43 characters.
fn is_unreserved_43_128(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the challenge sent to the authorization endpoint.
/// RFC 7636 §4.3 allows `plain`; the OAuth security BCP (RFC 9700 §2.1.1) says S256 SHOULD be
/// used and `plain` only where S256 is impossible, which is never the case for a browser or app.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => {}
        None | Some("plain") => {
            return Err(OAuthError::invalid_request("code_challenge_method must be S256"));
        }
        Some(_) => return Err(OAuthError::invalid_request("unsupported code_challenge_method")),
    }
    if challenge.len() != 43 || !is_unreserved_43_128(challenge) {
        return Err(OAuthError::invalid_request("code_challenge must be 43 base64url characters (S256)"));
    }
    Ok(())
}

/// RFC 7636 §4.6: the server computes BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) and
/// compares it with the stored code_challenge.
pub fn verify(challenge: &str, verifier: &str) -> Result<(), OAuthError> {
    if !is_unreserved_43_128(verifier) {
        return Err(OAuthError::invalid_grant("code_verifier is malformed"));
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    if crate::crypto::random::constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(check_challenge(CHALLENGE, Some("S256")), Ok(()));
        assert_eq!(verify(CHALLENGE, VERIFIER), Ok(()));
    }

    #[test]
    fn rejects_wrong_and_malformed() {
        assert_eq!(verify(CHALLENGE, &VERIFIER.replace('d', "e")).map_err(|e| e.code), Err("invalid_grant"));
        assert_eq!(verify(CHALLENGE, "short").map_err(|e| e.code), Err("invalid_grant"));
        assert_eq!(check_challenge(CHALLENGE, Some("plain")).map_err(|e| e.code), Err("invalid_request"));
        assert_eq!(check_challenge(CHALLENGE, None).map_err(|e| e.code), Err("invalid_request"));
        assert_eq!(check_challenge("abc", Some("S256")).map_err(|e| e.code), Err("invalid_request"));
    }
}
