//! Recovery codes ("Mã khôi phục"): ten single-use codes shown once at enrolment, for a
//! citizen who has lost their authenticator app.
//!
//! Pure apart from reading the OS random source. Not yet wired into enrolment or sign-in
//! (issue 4); single use is the store's job: consuming a code deletes (or marks) its row in
//! the same statement that finds it.
//!
//! # Shape
//! 16 characters of Crockford base32 in four groups, `7K3M-Q9XD-2RBT-H4WE`: 80 random bits.
//! The alphabet has no I, L, O or U, and [`normalise`] reads `o` as `0` and `i`/`l` as `1`
//! (Crockford's rule), ignores case, spaces and dashes — so a code copied from paper with
//! the usual mistakes still works.
//!
//! # Why a plain SHA-256 and not Argon2
//! A recovery code is a random token, not something a person chose: hashing it slowly buys
//! nothing when guessing it means searching 2⁸⁰ values. Two details make that hold for a
//! stolen database:
//! - 80 bits rather than the 50–60 often seen: SHA-256 runs at ~10¹⁰/s on one GPU, so a
//!   60-bit code (2⁵⁹ tries on average) falls in weeks; 2⁷⁹/10 tries per account do not.
//! - The account id is hashed with the code, so one guess cannot be tested against every
//!   stored hash at once (without it, 10 million stored codes would cut the search by 10⁷).
//!
//! On-line guessing is bounded separately by the failed-attempt lockout (issue 4).

use std::collections::HashSet;

use uuid::Uuid;

use crate::crypto::{RandomError, constant_time_eq, hash_token, random_bytes};

/// How many codes a citizen gets at a time.
pub const COUNT: usize = 10;
/// Characters per code (5 bits each: 80 bits).
pub const CODE_CHARS: usize = 16;
const GROUP: usize = 4;
/// Crockford's base32 alphabet: digits and upper-case letters without I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Longer input cannot be a code however it is spaced; refuse it before work.
const MAX_INPUT_BYTES: usize = 128;

/// Ten fresh, distinct codes in display form (`XXXX-XXXX-XXXX-XXXX`). Show them once; store
/// only [`hash`]es.
pub fn generate() -> Result<Vec<String>, RandomError> {
    let mut seen = HashSet::with_capacity(COUNT);
    let mut codes = Vec::with_capacity(COUNT);
    // Two equal codes among ten would need a 2⁻⁷⁶ coincidence; the check costs nothing and
    // makes "distinct" a guarantee rather than a likelihood.
    while codes.len() < COUNT {
        let code = random_code()?;
        if seen.insert(code.clone()) {
            codes.push(display(&code));
        }
    }
    Ok(codes)
}

/// The canonical form of a typed code: 16 upper-case Crockford characters, no separators;
/// `None` if the input cannot be a code.
pub fn normalise(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT_BYTES {
        return None;
    }
    let mut out = String::with_capacity(CODE_CHARS);
    for c in input.chars() {
        let c = match c {
            c if c.is_whitespace() => continue,
            // Hyphen-minus, and the hyphens and dashes word processors substitute.
            '-' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => continue,
            'o' | 'O' => '0',
            'i' | 'I' | 'l' | 'L' => '1',
            c if c.is_ascii_alphanumeric() => c.to_ascii_uppercase(),
            _ => return None,
        };
        if !ALPHABET.contains(&(c as u8)) {
            return None; // only 'U' gets here
        }
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

/// What to store for `code` (display or typed form): SHA-256 over a purpose tag, the
/// account id and the canonical code, base64url. `None` if `code` is not a code.
pub fn hash(account_id: Uuid, code: &str) -> Option<String> {
    normalise(code).map(|canonical| hash_canonical(account_id, &canonical))
}

/// Whether `input` is the code behind `stored_hash` for this account. The comparison is
/// constant-time; input that is not a code is refused before hashing.
pub fn matches(account_id: Uuid, input: &str, stored_hash: &str) -> bool {
    hash(account_id, input).is_some_and(|h| constant_time_eq(h.as_bytes(), stored_hash.as_bytes()))
}

fn hash_canonical(account_id: Uuid, canonical: &str) -> String {
    // Fixed-width fields (a UUID's hyphenated form is 36 characters), so no ambiguity.
    hash_token(&format!("xacthuc recovery-code v1:{account_id}:{canonical}"))
}

/// 80 bits, uniformly: ten random bytes read five bits at a time.
fn random_code() -> Result<String, RandomError> {
    let bytes = random_bytes::<10>()?;
    let mut acc = [0u8; 16];
    acc[6..].copy_from_slice(&bytes);
    let value = u128::from_be_bytes(acc);
    Ok((0..CODE_CHARS)
        .map(|i| {
            let index = (value >> (5 * (CODE_CHARS - 1 - i))) & 0x1f;
            char::from(ALPHABET[index as usize])
        })
        .collect())
}

fn display(canonical: &str) -> String {
    let chars: Vec<char> = canonical.chars().collect();
    chars.chunks(GROUP).map(|g| g.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_well_formed_codes() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), 10);
        let distinct: HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4);
            assert!(groups.iter().all(|g| g.len() == 4));
            assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{code}");
            for ambiguous in ['I', 'L', 'O', 'U'] {
                assert!(!code.contains(ambiguous));
            }
        }
        assert_ne!(codes, generate().unwrap());
    }

    #[test]
    fn every_symbol_can_occur() {
        // 100 codes × 16 characters: missing one of 32 symbols would be a bug (odds ~10⁻²⁰).
        let mut seen = HashSet::new();
        for _ in 0..10 {
            for code in generate().unwrap() {
                seen.extend(code.bytes().filter(|b| *b != b'-'));
            }
        }
        assert_eq!(seen.len(), 32);
    }

    #[test]
    fn normalisation_round_trips_and_forgives() {
        for code in generate().unwrap() {
            let canonical = normalise(&code).unwrap();
            assert_eq!(canonical.len(), 16);
            assert_eq!(display(&canonical), code);
            assert_eq!(normalise(&canonical).unwrap(), canonical);
            assert_eq!(normalise(&code.to_lowercase()).unwrap(), canonical);
            assert_eq!(normalise(&code.replace('-', " ")).unwrap(), canonical);
            assert_eq!(normalise(&format!("  {}\n", code.replace('-', "\u{2013}"))).unwrap(), canonical);
        }
        assert_eq!(normalise("o0il-1LI0-abcd-efgh").unwrap(), "00111110ABCDEFGH");
        assert_eq!(normalise("OOOO IIII LLLL 2222").unwrap(), "0000111111112222");
    }

    #[test]
    fn normalise_refuses_non_codes() {
        let long = "A".repeat(10_000);
        for bad in [
            "",
            "----",
            "ABCD-EFGH-JKMN",        // too short
            "ABCD-EFGH-JKMN-PQRS-T", // too long
            "ABCD-EFGH-JKMN-PQRU",   // U is not in the alphabet
            "ABCD-EFGH-JKMN-PQR*",
            "ABCD_EFGH_JKMN_PQRS",
            "ABCD-EFGH-JKMN-PQRĐ",
            "ＡBCD-EFGH-JKMN-PQRS", // full-width letter
            "１BCD-EFGH-JKMN-PQRS", // full-width digit
            &long,
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_code_matches_its_hash_once_normalised() {
        let account = Uuid::now_v7();
        let codes = generate().unwrap();
        let hashes: Vec<String> = codes.iter().map(|c| hash(account, c).unwrap()).collect();
        for (code, stored) in codes.iter().zip(&hashes) {
            assert_eq!(stored.len(), 43);
            assert!(!stored.contains(&normalise(code).unwrap()));
            assert!(matches(account, code, stored));
            assert!(matches(account, &code.to_lowercase().replace('-', ""), stored));
            assert!(matches(account, &code.replace('0', "o").replace('1', "l"), stored));
        }
        // Wrong codes, other codes of the same set, another account, garbage: no.
        let stored = &hashes[0];
        let mut wrong = normalise(&codes[0]).unwrap().into_bytes();
        wrong[15] = if wrong[15] == b'2' { b'3' } else { b'2' };
        assert!(!matches(account, std::str::from_utf8(&wrong).unwrap(), stored));
        assert!(!matches(account, &codes[1], stored));
        assert!(!matches(Uuid::now_v7(), &codes[0], stored));
        assert!(!matches(account, "", stored));
        assert!(!matches(account, stored, stored));
        assert!(!matches(account, &codes[0], ""));
        assert_eq!(hash(account, "not a code"), None);
    }

    /// Stored hashes depend on this exact construction; changing it invalidates every
    /// recovery code issued. Expected value computed independently with Python's
    /// `hashlib.sha256` and `base64.urlsafe_b64encode` over
    /// `b"xacthuc recovery-code v1:0190f5a2-7b3c-7d4e-8f00-123456789abc:7K3MQ9XD2RBTH4WE"`.
    #[test]
    fn pinned_hash() {
        let account = Uuid::parse_str("0190f5a2-7b3c-7d4e-8f00-123456789abc").unwrap();
        assert_eq!(hash(account, "7k3m-q9xd-2rbt-h4we").unwrap(), "rhUyK4vb85ONv_bulUKp_yT_og0NH1i4j9WD6SgAE64");
    }
}
