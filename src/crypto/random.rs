//! Randomness and token helpers: CSPRNG bytes, opaque tokens, token hashing and
//! constant-time comparison. No I/O beyond the kernel's CSPRNG.
//!
//! Why the random functions return `Result`: ring's `SystemRandom` reads the kernel
//! CSPRNG (`getrandom(2)`, falling back to `/dev/urandom`). That practically never
//! fails, but it *can* in a misconfigured deployment (a seccomp profile denying
//! `getrandom`, a chroot without `/dev`). There is no safe fallback value for a
//! session id or a nonce, and panicking would take a worker down, so the failure
//! is an ordinary error the caller turns into a 500. Call [`check_rng`] at start-up
//! to fail fast instead of on the first sign-in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};
use subtle::ConstantTimeEq as _;

/// The system CSPRNG could not produce bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Number of random bytes in a [`random_token`]: 256 bits, so tokens cannot be
/// guessed and their unsalted hash ([`hash_token`]) cannot be brute-forced.
pub const TOKEN_BYTES: usize = 32;

/// `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    fill_random(&mut buf)?;
    Ok(buf)
}

/// Fills `buf` from the system CSPRNG (for buffers whose size is not a constant).
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    // `SystemRandom` is a zero-sized handle; creating one per call costs nothing.
    SystemRandom::new().fill(buf).map_err(|_| RandomError)
}

/// Probes the CSPRNG once; call at start-up so a broken environment fails loudly.
pub fn check_rng() -> Result<(), RandomError> {
    random_bytes::<16>().map(|_| ())
}

/// A fresh opaque token: 32 random bytes, base64url without padding (43 characters).
/// For session ids, authorization codes, access/refresh tokens, CSRF tokens.
pub fn random_token() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>()?))
}

/// SHA-256 of `token`, base64url without padding: what we store instead of a code or
/// token, so a database leak does not hand out live credentials. No salt or key is
/// needed because our tokens carry 256 bits of entropy; do NOT use this for
/// low-entropy secrets (passwords, OTPs, national ID numbers — see
/// `secretbox::DataKey::keyed_hash` for the latter).
pub fn hash_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Constant-time equality (time depends only on the lengths, never on the content).
/// Use it whenever one side is a secret: client secrets, CSRF tokens, PKCE results.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn random_bytes_are_random() {
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        check_rng().unwrap();
    }

    #[test]
    fn token_shape() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(t, random_token().unwrap());
    }

    #[test]
    fn hash_token_known_answer() {
        // SHA-256("abc"), RFC 6234 test vector, base64url-encoded.
        assert_eq!(hash_token("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(hash_token("abc"), hash_token("abc"));
        assert_ne!(hash_token("abc"), hash_token("abd"));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
