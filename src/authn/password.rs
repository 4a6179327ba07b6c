//! Password policy (NIST SP 800-63B §5.1.1.2, "memorized secret verifiers") and Argon2id
//! storage.
//!
//! Policy, on purpose: a length floor, a length ceiling, a block list and "not your user
//! name" — and **no composition rules** (NIST: verifiers "SHOULD NOT impose other composition
//! rules"), no forced periodic change.
//!
//! Hashing follows the OWASP Password Storage Cheat Sheet: Argon2id, m = 19 MiB, t = 2, p = 1,
//! 16-byte random salt, PHC string. Hashing is CPU- and memory-bound (tens of ms): callers on
//! an async runtime run it on the bounded hashing pool (`service::hashing`), whose workers
//! each keep one [`Scratch`] (the Argon2 memory block) for every hash they compute.
//!
//! Pure apart from the hashing and reading the OS random source for salts.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Version};

use crate::i18n::Lang;

/// NIST: "at least 8 characters in length" for a memorized secret chosen by the subscriber.
pub const MIN_LEN: usize = 8;
/// NIST: verifiers "SHOULD permit … at least 64 characters". 256 keeps room for passphrases
/// while bounding what one login request can make Argon2 chew on.
pub const MAX_LEN: usize = 256;
/// `MAX_LEN` characters take at most 4 bytes each in UTF-8. Longer input cannot be a password
/// we accepted, so verification refuses it without hashing.
const MAX_LEN_BYTES: usize = 4 * MAX_LEN;

/// Verification limits on a stored hash's parameters: a corrupted or planted row must not make
/// one login allocate gigabytes or spin for minutes. `hash_password` refuses to create hashes
/// beyond them, so every hash we create stays verifiable.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024; // 1 GiB
pub const MAX_ITERATIONS: u32 = 64;
pub const MAX_PARALLELISM: u32 = 16;

/// Why a new password is refused. One problem at a time, in the order the checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("password shorter than {min} characters")]
    TooShort { min: usize },
    #[error("password longer than {max} characters")]
    TooLong { max: usize },
    #[error("password is on the common-password list or trivially guessable")]
    Common,
    #[error("password contains the user name")]
    ContainsUsername,
}

impl PasswordProblem {
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (PasswordProblem::TooShort { min }, Lang::Vi) => {
                format!("Mật khẩu phải có ít nhất {min} ký tự.")
            }
            (PasswordProblem::TooShort { min }, Lang::En) => {
                format!("The password must be at least {min} characters long.")
            }
            (PasswordProblem::TooLong { max }, Lang::Vi) => {
                format!("Mật khẩu không được dài quá {max} ký tự.")
            }
            (PasswordProblem::TooLong { max }, Lang::En) => {
                format!("The password must be at most {max} characters long.")
            }
            (PasswordProblem::Common, Lang::Vi) => {
                "Mật khẩu này quá phổ biến và dễ bị đoán. Hãy chọn mật khẩu khác.".to_owned()
            }
            (PasswordProblem::Common, Lang::En) => {
                "This password is too common and easy to guess. Please choose a different one.".to_owned()
            }
            (PasswordProblem::ContainsUsername, Lang::Vi) => {
                "Mật khẩu không được chứa tên đăng nhập của bạn.".to_owned()
            }
            (PasswordProblem::ContainsUsername, Lang::En) => "The password must not contain your username.".to_owned(),
        }
    }
}

/// Checks a password a user is choosing (registration, change, reset) — not one typed at login.
///
/// Lengths count Unicode scalar values, so "mậtkhẩu" is 7 characters whatever its encoding.
/// NIST asks verifiers to apply Unicode normalisation (NFKC or NFKD) before counting and
/// hashing. That needs Unicode tables (the `unicode-normalization` crate), which we do not
/// depend on, so we skip it. Consequence: the same Vietnamese password typed once precomposed
/// ("ậ" as one scalar) and once decomposed ("a" + two combining marks, which some Vietnamese
/// keyboards can be set to produce) counts and hashes differently. Most input methods produce
/// precomposed text by default. Normalising later would lock out anyone whose stored hash was
/// made from decomposed input, so decide before launch.
pub fn check_new_password(password: &str, username: &str) -> Result<(), PasswordProblem> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(PasswordProblem::TooShort { min: MIN_LEN });
    }
    if len > MAX_LEN {
        return Err(PasswordProblem::TooLong { max: MAX_LEN });
    }
    let lower = password.to_lowercase();
    // NIST: context-specific words, "such as … the username". Below 4 characters a user name
    // is too likely to occur by chance ("an", "ly") to refuse on it.
    let username = username.trim().to_lowercase();
    if username.chars().count() >= 4 && lower.contains(&username) {
        return Err(PasswordProblem::ContainsUsername);
    }
    if is_common(&lower) || is_trivial_pattern(&lower) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../assets/common-passwords.txt").lines().map(str::trim).filter(|line| !line.is_empty()).collect()
});

/// Whether the password, lower-cased, is on `assets/common-passwords.txt` (about 49,000
/// passwords seen in breaches, plus Vietnamese and service-specific additions).
pub fn is_common(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// NIST (rev. 3) lists "repetitive or sequential characters (e.g. 'aaaaaa', '1234abcd')" among
/// what to refuse. The breach list misses many of them because its builders dropped passwords
/// a pattern matcher finds anyway ("123123123", "0123456789"), so catch the plainest shapes:
/// a short unit repeated over the whole password, or one ascending/descending run.
fn is_trivial_pattern(lower: &str) -> bool {
    let chars: Vec<char> = lower.chars().collect();
    let n = chars.len();
    let repeated_unit =
        (1..=4).any(|unit| n >= 2 * unit && chars.iter().enumerate().all(|(i, c)| *c == chars[i % unit]));
    let run = |step: i64| chars.windows(2).all(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])) == step);
    repeated_unit || run(1) || run(-1)
}

/// Argon2id cost parameters, as configured.
#[derive(Clone, Copy, Debug, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP Password Storage Cheat Sheet: "m=19456 (19 MiB), t=2, p=1".
    pub const OWASP: Self = Self { memory_kib: 19_456, iterations: 2, parallelism: 1 };
    /// Cheap parameters for tests only: never configure these in production.
    pub const TEST: Self = Self { memory_kib: 1024, iterations: 1, parallelism: 1 };

    fn within_limits(self) -> bool {
        self.memory_kib <= MAX_MEMORY_KIB && self.iterations <= MAX_ITERATIONS && self.parallelism <= MAX_PARALLELISM
    }

    fn hasher(self) -> Result<Argon2<'static>, PasswordHashError> {
        if !self.within_limits() {
            return Err(PasswordHashError::ParamsAboveLimits);
        }
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(PasswordHashError::Params)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// `[password]`: the Argon2id cost parameters and the hashing pool that runs them.
#[derive(Clone, Copy, Debug, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashing threads; unset: one per core (`available_parallelism`).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Hashes allowed to wait for a free worker; beyond it a sign-in is refused at once with
    /// 503 and `Retry-After`. Unset: 16 per worker (under a second of waiting at the OWASP
    /// cost).
    #[serde(default)]
    pub queue: Option<usize>,
}

impl PasswordConfig {
    pub fn params(&self) -> Argon2Params {
        Argon2Params { memory_kib: self.memory_kib, iterations: self.iterations, parallelism: self.parallelism }
    }

    /// The number of hashing threads: `workers`, or one per core.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1)
    }

    /// The waiting room of the hashing pool: `queue`, or 16 per worker.
    pub fn queue(&self) -> usize {
        self.queue.unwrap_or(16 * self.workers())
    }

    /// Configuration problems of the pool settings (the cost parameters are checked by
    /// `Config::validate`).
    pub fn pool_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.workers.is_some_and(|w| w == 0 || w > 1024) {
            p.push("password.workers: between 1 and 1024 (unset: one per core)".to_string());
        }
        if self.queue.is_some_and(|q| q > 1_000_000) {
            p.push("password.queue: at most 1000000".to_string());
        }
        p
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        let p = Argon2Params::OWASP;
        Self {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            workers: None,
            queue: None,
        }
    }
}

/// Argon2's working memory (`m` KiB of 1 KiB blocks), kept by one thread and reused for every
/// hash it computes, so memory stays at one block per hashing thread instead of a fresh
/// allocation per hash. Argon2 overwrites every block before reading it, so reuse is safe
/// (`Argon2::hash_password_into_with_memory`). A hash with more memory than `keep` blocks (a
/// stored hash made with costlier parameters) gets a temporary allocation, freed after.
pub struct Scratch {
    blocks: Vec<Block>,
    keep: usize,
}

impl Scratch {
    /// Memory reused up to the block count of `params`.
    pub fn for_params(params: Argon2Params) -> Scratch {
        let keep = params.hasher().map(|h| h.params().block_count()).unwrap_or(0);
        Scratch { blocks: Vec::new(), keep }
    }

    /// A one-off scratch (nothing kept beyond the call that uses it).
    pub fn one_off() -> Scratch {
        Scratch { blocks: Vec::new(), keep: usize::MAX }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    fn with_blocks<R>(&mut self, count: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        if count > self.keep {
            let mut temporary = vec![Block::default(); count];
            return f(&mut temporary);
        }
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::default());
        }
        f(&mut self.blocks[..count])
    }
}

/// Errors are kept as values, not `#[source]`s: argon2's error types implement
/// `std::error::Error` only with its `std` feature.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error(
        "Argon2 parameters above the verification limits (memory ≤ {MAX_MEMORY_KIB} KiB, \
         iterations ≤ {MAX_ITERATIONS}, parallelism ≤ {MAX_PARALLELISM})"
    )]
    ParamsAboveLimits,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("Argon2 hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Hashes a password with Argon2id and a fresh random 16-byte salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), which carries its own parameters.
pub fn hash_password(password: &str, params: Argon2Params) -> Result<String, PasswordHashError> {
    hash_password_with(&mut Scratch::one_off(), password, params)
}

/// [`hash_password`] in `scratch`'s memory.
pub fn hash_password_with(
    scratch: &mut Scratch,
    password: &str,
    params: Argon2Params,
) -> Result<String, PasswordHashError> {
    let hasher = params.hasher()?;
    let mut salt_bytes = [0u8; Salt::RECOMMENDED_LENGTH];
    // `try_fill_bytes`, not `SaltString::generate`, which panics if the OS random source fails.
    OsRng.try_fill_bytes(&mut salt_bytes).map_err(|e| PasswordHashError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(PasswordHashError::Hash)?;
    let output = scratch
        .with_blocks(hasher.params().block_count(), |blocks| {
            Output::init_with(argon2::Params::DEFAULT_OUTPUT_LEN, |out| {
                Ok(hasher.hash_password_into_with_memory(password.as_bytes(), &salt_bytes, out, blocks)?)
            })
        })
        .map_err(PasswordHashError::Hash)?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(hasher.params()).map_err(PasswordHashError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string. `false` for a wrong password, a malformed
/// or non-Argon2 hash, parameters beyond the verification limits, or an over-long password.
/// The comparison of outputs is constant-time (password-hash's `Output`).
pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_password_with(&mut Scratch::one_off(), password, phc)
}

/// [`verify_password`] in `scratch`'s memory. The same steps as argon2's own
/// `PasswordVerifier` (algorithm, version, parameters and salt from the PHC string, the output
/// compared with `Output`'s constant-time equality), with the memory supplied.
pub fn verify_password_with(scratch: &mut Scratch, password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB || params.t_cost() > MAX_ITERATIONS || params.p_cost() > MAX_PARALLELISM {
        return false;
    }
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let count = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = scratch.with_blocks(count, |blocks| {
        Output::init_with(expected.len(), |out| {
            Ok(argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, blocks)?)
        })
    });
    // `Output`'s `==` is constant-time.
    computed.is_ok_and(|c| c == expected)
}

/// Whether a stored hash should be replaced (after a successful login, while the plaintext is
/// at hand) because it was made with another algorithm, version, parameters or a short salt.
/// A hash that does not parse also "needs rehash".
pub fn needs_rehash(phc: &str, params: Argon2Params) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT || hash.version != Some(u32::from(Version::V0x13)) {
        return true;
    }
    let Ok(stored) = argon2::Params::try_from(&hash) else {
        return true;
    };
    // 16 bytes are 22 characters of unpadded B64.
    let salt_too_short = hash.salt.is_none_or(|salt| salt.len() < 22);
    stored.m_cost() != params.memory_kib
        || stored.t_cost() != params.iterations
        || stored.p_cost() != params.parallelism
        || hash.hash.is_none_or(|out| out.len() != argon2::Params::DEFAULT_OUTPUT_LEN)
        || salt_too_short
}

/// Spends as long as verifying a password against a hash made with `params`, and returns
/// nothing. Call it when the user name is unknown so that "no such user" takes as long as
/// "wrong password" and the response time does not reveal which accounts exist.
pub fn dummy_verify(password: &str, params: Argon2Params) {
    dummy_verify_with(&mut Scratch::one_off(), password, params)
}

/// [`dummy_verify`] in `scratch`'s memory.
pub fn dummy_verify_with(scratch: &mut Scratch, password: &str, params: Argon2Params) {
    // Same early exit as `verify_password`, so the two stay indistinguishable.
    if password.len() > MAX_LEN_BYTES {
        return;
    }
    let Ok(hasher) = params.hasher() else {
        return;
    };
    // A verify is one hash computation with the stored salt plus a comparison; hashing with a
    // fixed 16-byte salt does the same work.
    let salt = *b"dummysaltxacthuc";
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    let _ = std::hint::black_box(scratch.with_blocks(hasher.params().block_count(), |blocks| {
        hasher.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::PasswordProblem as P;
    use super::*;

    #[test]
    fn policy_table() {
        let p256: String = "Hà Nội mùa thu, ".repeat(16);
        let p257 = format!("{p256}z");
        let p64 = "Một con vịt xòe ra hai cái cánh, nó kêu rằng quác quác quác quạc"; // 64
        let x64 = "x".repeat(64);
        let xy3 = "xy3".repeat(30);
        let cases: Vec<(&str, &str, Result<(), P>)> = vec![
            ("", "an", Err(P::TooShort { min: 8 })),
            ("abc1234", "an", Err(P::TooShort { min: 8 })),
            // Seven Vietnamese letters: 7 scalar values, although 11 bytes.
            ("mậtkhẩu", "an", Err(P::TooShort { min: 8 })),
            ("mậtkhẩu của tôi", "an", Ok(())),
            // No composition rules: lower-case letters and spaces are fine.
            ("ngựa pin đúng ghim", "an", Ok(())),
            (p64, "an", Ok(())),
            (&p256, "an", Ok(())),
            (&p257, "an", Err(P::TooLong { max: 256 })),
            ("password", "an", Err(P::Common)),
            ("PassWord", "an", Err(P::Common)),
            ("12345678", "an", Err(P::Common)),
            ("iloveyou", "an", Err(P::Common)),
            ("jennifer", "an", Err(P::Common)),
            ("matkhau123", "an", Err(P::Common)),
            ("anhyeuem", "an", Err(P::Common)),
            // Repetitive or sequential, whether or not on the list.
            ("0123456789", "an", Err(P::Common)),
            ("987654321", "an", Err(P::Common)),
            ("abcdefghij", "an", Err(P::Common)),
            ("aaaaaaaaaa", "an", Err(P::Common)),
            ("123123123", "an", Err(P::Common)),
            (&x64, "an", Err(P::Common)),
            (&xy3, "an", Err(P::Common)),
            // User name: equal, contained, any case; ignored below 4 characters.
            ("nguyenvana", "NguyenVanA", Err(P::ContainsUsername)),
            ("xx-NGUYENVANA-2024", "nguyenvana", Err(P::ContainsUsername)),
            ("079012345656 ok", "079012345656", Err(P::ContainsUsername)),
            ("hoa sen trắng", "hoa", Ok(())),
            ("hoa sen trắng", "Sen Trắng", Err(P::ContainsUsername)),
            ("correct horse battery", "", Ok(())),
        ];
        assert_eq!(p64.chars().count(), 64);
        assert_eq!(p256.chars().count(), 256);
        for (password, username, expected) in cases {
            let got = check_new_password(password, username);
            assert_eq!(got, expected, "{password:?} / {username:?}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(P::TooShort { min: 8 }.message(Lang::Vi), "Mật khẩu phải có ít nhất 8 ký tự.");
        assert_eq!(P::Common.message(Lang::Vi), "Mật khẩu này quá phổ biến và dễ bị đoán. Hãy chọn mật khẩu khác.");
        for p in [P::TooShort { min: 8 }, P::TooLong { max: 256 }, P::Common, P::ContainsUsername] {
            assert!(!p.message(Lang::Vi).is_empty());
            assert!(p.message(Lang::En).is_ascii());
        }
    }

    #[test]
    fn common_list() {
        assert!(COMMON_PASSWORDS.len() >= 10_000, "{}", COMMON_PASSWORDS.len());
        assert!(is_common("password"));
        assert!(is_common("12345678"));
        assert!(is_common("PASSWORD"));
        assert!(is_common("matkhau123"));
        assert!(!is_common("ngựa pin đúng ghim"));
        // The file is lower-case, so lower-casing the input is enough to match.
        let text = include_str!("../../assets/common-passwords.txt");
        assert!(text.lines().all(|l| l == l.to_lowercase() && l == l.trim() && !l.is_empty()));
        assert_eq!(text.lines().count(), COMMON_PASSWORDS.len(), "duplicates in the list");
    }

    #[test]
    fn hash_verify_round_trip() {
        let phc = hash_password("ngựa pin đúng ghim", Argon2Params::TEST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(verify_password("ngựa pin đúng ghim", &phc));
        assert!(!verify_password("ngua pin dung ghim", &phc));
        assert!(!verify_password("", &phc));
        // Fresh salt each time.
        assert_ne!(phc, hash_password("ngựa pin đúng ghim", Argon2Params::TEST).unwrap());
        assert!(!needs_rehash(&phc, Argon2Params::TEST));
    }

    #[test]
    fn reused_memory_agrees_with_the_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let params = Argon2Params { memory_kib: 2048, iterations: 2, parallelism: 1 };
        let mut scratch = Scratch::for_params(params);
        // Ours, verified by the crate.
        let ours = hash_password_with(&mut scratch, "mật khẩu đúng", params).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=2048,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password("mật khẩu đúng".as_bytes(), &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"sai", &parsed).is_err());
        // The crate's, verified by ours, in memory already used (dirty) by other hashes.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = params.hasher().unwrap().hash_password("mật khẩu đúng".as_bytes(), &salt).unwrap().to_string();
        for _ in 0..3 {
            assert!(verify_password_with(&mut scratch, "mật khẩu đúng", &theirs));
            assert!(!verify_password_with(&mut scratch, "mật khẩu sai", &theirs));
            assert!(verify_password_with(&mut scratch, "mật khẩu đúng", &ours));
        }
        assert_eq!(scratch.held_bytes(), 2048 * 1024);
        // A costlier stored hash verifies in temporary memory; the kept block does not grow.
        let costly = hash_password("mật khẩu đúng", Argon2Params { memory_kib: 4096, ..params }).unwrap();
        assert!(verify_password_with(&mut scratch, "mật khẩu đúng", &costly));
        assert_eq!(scratch.held_bytes(), 2048 * 1024);
        dummy_verify_with(&mut scratch, "x", params);
    }

    #[test]
    fn malformed_or_hostile_hashes_do_not_verify() {
        let huge_memory = "$argon2id$v=19$m=4294967295,t=1,p=1$ZHVtbXlzYWx0eGFjdGh1Yw$\
                           AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=1024,t=1,p=1$",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$!!!",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            huge_memory,
        ] {
            assert!(!verify_password("password", phc), "{phc:?}");
        }
        assert!(!verify_password(&"a".repeat(MAX_LEN_BYTES + 1), huge_memory));
    }

    #[test]
    fn rehash_when_parameters_differ() {
        let phc = hash_password("ngựa pin đúng ghim", Argon2Params::TEST).unwrap();
        assert!(needs_rehash(&phc, Argon2Params::default()));
        assert!(needs_rehash(&phc, Argon2Params { iterations: 2, ..Argon2Params::TEST }));
        assert!(needs_rehash(&phc, Argon2Params { parallelism: 2, ..Argon2Params::TEST }));
        assert!(needs_rehash("garbage", Argon2Params::TEST));
        // Argon2i with the same numbers: different algorithm.
        let argon2i = phc.replacen("$argon2id$", "$argon2i$", 1);
        assert!(needs_rehash(&argon2i, Argon2Params::TEST));
    }

    #[test]
    fn params_defaults_and_limits() {
        assert_eq!(Argon2Params::default(), Argon2Params { memory_kib: 19_456, iterations: 2, parallelism: 1 });
        let too_costly = Argon2Params { memory_kib: MAX_MEMORY_KIB + 1, ..Argon2Params::TEST };
        assert!(matches!(hash_password("x", too_costly), Err(PasswordHashError::ParamsAboveLimits)));
        let invalid = Argon2Params { memory_kib: 1, ..Argon2Params::TEST };
        assert!(matches!(hash_password("x", invalid), Err(PasswordHashError::Params(_))));
    }

    #[test]
    fn dummy_verify_costs_about_as_much_as_verify() {
        let params = Argon2Params { memory_kib: 8 * 1024, iterations: 2, parallelism: 1 };
        let phc = hash_password("right password", params).unwrap();
        // Interleaved, minimum of several runs: the minimum is what the work costs, the rest
        // is scheduling noise from whatever else runs on the machine.
        let time = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        };
        let (mut real, mut dummy) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..7 {
            real = real.min(time(&|| {
                verify_password("wrong password", &phc);
            }));
            dummy = dummy.min(time(&|| dummy_verify("wrong password", params)));
        }
        // Loose bounds: this guards against a dummy that does no work, not against jitter.
        assert!(dummy * 3 > real && real * 3 > dummy, "real {real:?}, dummy {dummy:?}");
    }
}
