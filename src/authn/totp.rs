//! TOTP authenticator apps ("Ứng dụng xác thực"): RFC 6238 with the parameters every app
//! understands — HMAC-SHA-1, 6 digits, 30-second steps — and ±1 step of clock skew.
//!
//! Pure: secrets come in as bytes, the time as unix seconds, the last used step as a value the
//! caller loaded. Nothing here reads a clock, a database or the network. Not yet wired into
//! enrolment pages or sign-in (issue 4).
//!
//! # A code is accepted once (RFC 6238 §5.2)
//! totp-rs does NOT prevent replay: its `check` happily accepts the same code twice. [`verify`]
//! takes the last step this authenticator accepted and refuses any code for a step at or
//! before it ([`TotpError::Replayed`]). On success it returns the matched step, which the
//! caller MUST store atomically and conditionally
//! (`UPDATE … SET last_step = $1 WHERE … AND (last_step IS NULL OR last_step < $1)`), treating
//! "no row updated" as a replay: two concurrent requests with the same code both pass
//! `verify`, and only the conditional update tells them apart.
//!
//! # Constant time
//! totp-rs compares `Token`s in constant time (`constant_time_eq_n` on the 32-bit value), but
//! its `check` stops at the first matching step, and its `Token` cannot be built from user
//! input outside the crate. [`verify`] therefore generates the code of every step in the
//! window and compares each with [`constant_time_eq`], with no early exit: the work done does
//! not depend on the code typed (only a few bookkeeping branches do, at nanosecond scale).
//!
//! # Storage
//! The secret is sealed with the data key ([`seal`]/[`unseal`]), its AAD binding the account
//! and the purpose, so a sealed seed copied to another account or column does not open.

use std::fmt;

use qrcode::{Color as QrColor, QrCode};
use totp_rs::{Algorithm, Builder};
use uuid::Uuid;

use crate::crypto::{DataKeys, RandomError, SecretBoxError, constant_time_eq, random_bytes};
use crate::i18n::Lang;

pub use totp_rs::Secret;

/// Issuer shown in authenticator apps unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "xacthuc";
/// Digits per code (issue 4; the only length every app supports).
pub const DIGITS: usize = 6;
/// Seconds per step (RFC 6238 §5.2 recommends 30).
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock drift accepted either side of the current one (RFC 6238 §5.2: "at most one
/// time step").
pub const SKEW_STEPS: u64 = 1;
/// RFC 4226 §4 RECOMMENDs a 160-bit shared secret.
pub const SECRET_BYTES: usize = 20;
/// RFC 4226 §4: "The length of the shared secret MUST be at least 128 bits."
const MIN_SECRET_BYTES: usize = 16;
/// Longer input cannot be a 6-digit code, however many spaces it has; refuse it before work.
const MAX_INPUT_BYTES: usize = 64;

/// Why a code typed at sign-in or at enrolment confirmation is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not 6 ASCII digits once spaces are removed (nothing was compared).
    #[error("the code is not 6 digits")]
    Malformed,
    /// Well formed but matches no step in the window.
    #[error("the code does not match")]
    Invalid,
    /// Matches a step at or before the last accepted one: already used.
    #[error("the code has already been used")]
    Replayed,
    /// The stored secret is shorter than 128 bits: a server-side fault (log it, answer 500),
    /// not the citizen's.
    #[error("the stored TOTP secret is unusable")]
    UnusableSecret,
}

impl TotpError {
    /// The text to show next to the code field.
    pub fn message(&self, lang: Lang) -> &'static str {
        match (self, lang) {
            (TotpError::Malformed, Lang::Vi) => "Mã OTP phải gồm đúng 6 chữ số.",
            (TotpError::Malformed, Lang::En) => "The code must be exactly 6 digits.",
            (TotpError::Invalid, Lang::Vi) => "Mã OTP không hợp lệ.",
            (TotpError::Invalid, Lang::En) => "The code is not valid.",
            (TotpError::Replayed, Lang::Vi) => {
                "Mã OTP này đã được sử dụng. Vui lòng chờ mã mới trong ứng dụng xác thực."
            }
            (TotpError::Replayed, Lang::En) => {
                "This code has already been used. Please wait for the next code in your authenticator app."
            }
            (TotpError::UnusableSecret, Lang::Vi) => "Không thể kiểm tra mã OTP lúc này. Vui lòng thử lại sau.",
            (TotpError::UnusableSecret, Lang::En) => "The code cannot be checked right now. Please try again later.",
        }
    }
}

/// Failures while creating, presenting or storing a secret. None is the citizen's fault.
#[derive(Debug, thiserror::Error)]
pub enum TotpSetupError {
    #[error(transparent)]
    Random(#[from] RandomError),
    /// otpauth labels separate issuer and account with `:` (Key Uri Format), so neither may
    /// contain one; the account label must not be empty.
    #[error("the issuer and the account label must not contain ':' and the label must not be empty")]
    Label,
    #[error("cannot build the otpauth URI: {0}")]
    Uri(String),
    #[error("cannot encode the QR code: {0}")]
    Qr(String),
    #[error(transparent)]
    SecretBox(#[from] SecretBoxError),
    #[error("the unsealed TOTP secret is {0} bytes, expected at least {MIN_SECRET_BYTES}")]
    SecretLength(usize),
}

/// A fresh 160-bit secret from the system CSPRNG.
///
/// Not `Secret::generate()`: that draws from `rand`'s thread RNG, which panics if the OS
/// random source fails; ours returns the error (see `crypto::random`).
pub fn new_secret() -> Result<Secret, RandomError> {
    Ok(Secret::new_stack(random_bytes::<SECRET_BYTES>()?))
}

/// What the enrolment page shows. Holds the secret in clear: never log it (its `Debug`
/// redacts), never store it (store [`seal`]'s output).
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// `otpauth://totp/<issuer>:<label>?secret=…&issuer=…` (Key Uri Format; SHA-1, 6 digits
    /// and 30 s are the format's defaults, so totp-rs leaves them out). Offer it as a link:
    /// tapping it on a phone opens the authenticator app.
    pub otpauth_uri: String,
    /// The secret in base32 (RFC 4648, no padding) in groups of four, for typing it in or
    /// reading it aloud: `ABCD EFGH …`. Apps ignore the spaces.
    pub base32_secret: String,
    /// The URI as an inline `<svg>` QR code with a `<title>` (its accessible name) and
    /// `role="img"`; no XML declaration, so it can be embedded in HTML as is.
    pub qr_svg: String,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrolment(<redacted>)")
    }
}

/// Everything the enrolment page needs to show for `secret`.
///
/// `issuer` is [`DEFAULT_ISSUER`] or the configured name; `account_label` is what the app
/// lists under it (a user name or a masked identifier — never a full national ID number).
/// `lang` picks the language of the QR code's accessible title.
pub fn enrolment(secret: &Secret, issuer: &str, account_label: &str, lang: Lang) -> Result<Enrolment, TotpSetupError> {
    if issuer.contains(':') || account_label.contains(':') || account_label.trim().is_empty() {
        return Err(TotpSetupError::Label);
    }
    let totp = builder(secret.as_bytes())
        .with_issuer(Some(issuer))
        .with_account_name(account_label)
        .build()
        .map_err(|e| TotpSetupError::Uri(e.to_string()))?;
    let otpauth_uri = totp.to_url().map_err(|e| TotpSetupError::Uri(e.to_string()))?;
    let title = match lang {
        Lang::Vi => format!("Mã QR để thêm tài khoản {account_label} ({issuer}) vào ứng dụng xác thực"),
        Lang::En => format!("QR code to add the account {account_label} ({issuer}) to an authenticator app"),
    };
    let qr_svg = qr_svg(&otpauth_uri, &title)?;
    Ok(Enrolment { otpauth_uri, base32_secret: group(&secret.to_base32()), qr_svg })
}

/// Checks `code` against `secret_bytes` at `now_unix`, accepting the steps
/// `now/30 - 1 ..= now/30 + 1` that are after `last_used_step`.
///
/// Returns the matched step; the caller stores it (see the module docs for the atomic
/// update) before treating the sign-in as successful. If the code matches several steps of
/// the window (one chance in a million), the latest unused one is returned, so the same code
/// cannot be accepted again for the other step.
///
/// Spaces (any Unicode white space, as some apps show `123 456`) are removed; the rest must be
/// exactly six ASCII digits, or the result is [`TotpError::Malformed`].
pub fn verify(secret_bytes: &[u8], code: &str, now_unix: u64, last_used_step: Option<u64>) -> Result<u64, TotpError> {
    let code = normalise(code).ok_or(TotpError::Malformed)?;
    let totp = builder(secret_bytes).build().map_err(|_| TotpError::UnusableSecret)?;
    let current = now_unix / STEP_SECONDS;
    let mut fresh_match: Option<u64> = None;
    let mut replayed_match = false;
    for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
        let Some(time) = step.checked_mul(STEP_SECONDS) else {
            continue;
        };
        let expected = totp.generate(time).to_string();
        // No early exit: every step of the window is computed and compared.
        let matched = constant_time_eq(expected.as_bytes(), code.as_bytes());
        let used = last_used_step.is_some_and(|last| step <= last);
        if matched && used {
            replayed_match = true;
        } else if matched {
            fresh_match = Some(step);
        }
    }
    match (fresh_match, replayed_match) {
        (Some(step), _) => Ok(step),
        (None, true) => Err(TotpError::Replayed),
        (None, false) => Err(TotpError::Invalid),
    }
}

/// Seals `secret` for storage, bound to the account and to this purpose.
pub fn seal(data_key: &DataKeys, account_id: Uuid, secret: &Secret) -> Result<String, TotpSetupError> {
    Ok(data_key.encrypt(secret.as_bytes(), aad(account_id).as_bytes())?)
}

/// Reverses [`seal`]; fails if the value was sealed for another account or purpose.
pub fn unseal(data_key: &DataKeys, account_id: Uuid, sealed: &str) -> Result<Secret, TotpSetupError> {
    let bytes = data_key.decrypt(sealed, aad(account_id).as_bytes())?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(TotpSetupError::SecretLength(bytes.len()));
    }
    Ok(Secret::from(bytes))
}

/// Same shape as the national ID's AAD (`account:<id>:national_id`).
pub(crate) fn aad(account_id: Uuid) -> String {
    format!("account:{account_id}:totp_secret")
}

/// Our fixed parameters; `build()` then enforces the 128-bit floor on the secret.
fn builder(secret_bytes: &[u8]) -> Builder {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECONDS)
        .with_skew(SKEW_STEPS as u16)
        .with_secret(secret_bytes)
}

/// `Some(six ASCII digits)` or `None`.
fn normalise(code: &str) -> Option<String> {
    if code.len() > MAX_INPUT_BYTES {
        return None;
    }
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (compact.len() == DIGITS && compact.bytes().all(|b| b.is_ascii_digit())).then_some(compact)
}

fn group(base32: &str) -> String {
    let chars: Vec<char> = base32.chars().collect();
    chars.chunks(4).map(|chunk| chunk.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// Renders `data` as an SVG QR code: one path of dark modules on a white square, with the
/// 4-module quiet zone the QR standard requires. Drawn here rather than with qrcode's SVG
/// renderer, whose output starts with an XML declaration and has no place for a `<title>`.
pub(crate) fn qr_svg(data: &str, title: &str) -> Result<String, TotpSetupError> {
    const QUIET: usize = 4;
    let code = QrCode::new(data.as_bytes()).map_err(|e| TotpSetupError::Qr(e.to_string()))?;
    let width = code.width();
    if width == 0 {
        return Err(TotpSetupError::Qr("empty symbol".into()));
    }
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < row.len() {
            if row[x] == QrColor::Dark {
                let start = x;
                while x < row.len() && row[x] == QrColor::Dark {
                    x += 1;
                }
                path.push_str(&format!("M{} {}h{}v1h-{}z", start + QUIET, y + QUIET, x - start, x - start));
            } else {
                x += 1;
            }
        }
    }
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {size} {size}" "#,
            r#"width="240" height="240" shape-rendering="crispEdges">"#,
            r#"<title>{title}</title>"#,
            r##"<rect width="{size}" height="{size}" fill="#fff"/>"##,
            r##"<path fill="#000" d="{path}"/></svg>"##,
        ),
        size = size,
        title = xml_escape(title),
        path = path,
    ))
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use totp_rs::Totp;

    /// RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";

    /// RFC 6238 appendix B, SHA-1 column (8 digits). A 6-digit code is the same value mod 10⁶,
    /// i.e. the last six digits.
    const RFC_SHA1: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors() {
        for &(time, eight) in RFC_SHA1 {
            let six = &eight[2..];
            assert_eq!(verify(RFC_SEED, six, time, None), Ok(time / 30), "T={time}");
            // totp-rs itself, with 8 digits, reproduces the full RFC value.
            let totp8 = Builder::new().with_digits(8).with_secret(RFC_SEED).build().unwrap();
            assert_eq!(totp8.generate(time).to_string(), eight, "T={time}");
        }
        assert_eq!(verify(RFC_SEED, "287082", 59, None), Ok(1));
    }

    /// RFC 6238 written from scratch with Python's standard library, reading the secret out
    /// of the otpauth URI as an app would. Missing `python3` fails the test: it is on every
    /// machine we build on, and a silently skipped cross-check proves nothing.
    const PYTHON_TOTP: &str = r#"
import base64, hashlib, hmac, struct, sys, urllib.parse
uri = urllib.parse.urlparse(sys.argv[1])
assert uri.scheme == "otpauth" and uri.netloc == "totp", uri
q = urllib.parse.parse_qs(uri.query)
assert q.get("digits", ["6"]) == ["6"] and q.get("period", ["30"]) == ["30"]
assert q.get("algorithm", ["SHA1"]) == ["SHA1"]
s = q["secret"][0]
key = base64.b32decode(s + "=" * (-len(s) % 8))
for t in sys.argv[2:]:
    mac = hmac.new(key, struct.pack(">Q", int(t) // 30), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
"#;

    fn python_codes(uri: &str, times: &[u64]) -> Vec<String> {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(PYTHON_TOTP)
            .arg(uri)
            .args(times.iter().map(u64::to_string))
            .output()
            .expect("python3 must be installed: it is the independent TOTP implementation");
        assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        let codes: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
        assert_eq!(codes.len(), times.len());
        codes
    }

    #[test]
    fn accepts_codes_from_an_independent_implementation() {
        let secret = new_secret().unwrap();
        let e = enrolment(&secret, DEFAULT_ISSUER, "nguyenvana", Lang::Vi).unwrap();
        let times = [59, 1_111_111_109, 1_700_000_000, 1_763_840_000, 1_763_840_029, 2_000_000_000, 4_102_444_800];
        for (time, code) in times.iter().zip(python_codes(&e.otpauth_uri, &times)) {
            assert_eq!(code.len(), 6);
            assert_eq!(verify(&secret, &code, *time, None), Ok(time / 30), "T={time} code={code}");
            // With the digits grouped the way apps display them.
            let spaced = format!("{} {}", &code[..3], &code[3..]);
            assert_eq!(verify(&secret, &spaced, *time, None), Ok(time / 30));
        }
        // And the Python port agrees with the RFC, so it is a fair judge.
        let rfc_uri = format!("otpauth://totp/x:y?secret={}", Secret::from(RFC_SEED).to_base32());
        assert_eq!(python_codes(&rfc_uri, &[59, 2_000_000_000]), ["287082", "279037"]);
    }

    #[test]
    fn skew_of_one_step_accepted_two_refused() {
        let secret = new_secret().unwrap();
        let e = enrolment(&secret, DEFAULT_ISSUER, "a", Lang::En).unwrap();
        let t0 = 1_763_840_015; // middle of a step
        let step = t0 / 30;
        let code = python_codes(&e.otpauth_uri, &[t0]).remove(0);
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let now = (t0 as i64 + offset * 30) as u64;
            let got = verify(&secret, &code, now, None);
            if ok {
                assert_eq!(got, Ok(step), "offset {offset}");
            } else {
                assert_eq!(got, Err(TotpError::Invalid), "offset {offset}");
            }
        }
    }

    #[test]
    fn a_code_is_accepted_once() {
        let secret = new_secret().unwrap();
        let e = enrolment(&secret, DEFAULT_ISSUER, "a", Lang::En).unwrap();
        let t = 1_763_840_000;
        let codes = python_codes(&e.otpauth_uri, &[t, t + 30, t + 60]);
        let step = verify(&secret, &codes[0], t, None).unwrap();
        assert_eq!(step, t / 30);
        // Same code, same step: replay, even later within the window.
        assert_eq!(verify(&secret, &codes[0], t, Some(step)), Err(TotpError::Replayed));
        assert_eq!(verify(&secret, &codes[0], t + 30, Some(step)), Err(TotpError::Replayed));
        // The next step's code is fine, and then it too is spent.
        assert_eq!(verify(&secret, &codes[1], t + 30, Some(step)), Ok(step + 1));
        assert_eq!(verify(&secret, &codes[1], t + 30, Some(step + 1)), Err(TotpError::Replayed));
        // Once a later step was accepted (fast phone clock), earlier steps are spent too.
        assert_eq!(verify(&secret, &codes[2], t + 30, Some(step)), Ok(step + 2));
        assert_eq!(verify(&secret, &codes[1], t + 30, Some(step + 2)), Err(TotpError::Replayed));
        // A wrong code is still "invalid", not "replayed".
        let wrong = format!("{:06}", (codes[0].parse::<u32>().unwrap() + 1) % 1_000_000);
        if !codes.contains(&wrong) {
            assert_eq!(verify(&secret, &wrong, t, Some(step)), Err(TotpError::Invalid));
        }
    }

    #[test]
    fn malformed_inputs_are_refused_without_panicking() {
        let secret = new_secret().unwrap();
        let long = "1".repeat(10_000);
        let spaces = format!("{}123456", " ".repeat(100));
        for input in [
            "",
            "      ",
            "12345",
            "1234567",
            "12345a",
            "abcdef",
            "+12345",
            "-12345",
            "12.345",
            "१२३४५६",       // Devanagari digits
            "١٢٣٤٥٦",       // Arabic-Indic digits
            "１２３４５６", // full-width digits
            "123\u{0}456",
            "12345６",
            &long,
            &spaces,
        ] {
            assert_eq!(verify(&secret, input, 1_763_840_000, None), Err(TotpError::Malformed), "{input:?}");
        }
        // White space, including the no-break and thin spaces some apps copy, is removed.
        let code = totp_code(&secret, 1_763_840_000);
        for shown in [
            format!(" {code} "),
            format!("{} {}", &code[..3], &code[3..]),
            format!("{}\u{a0}{}", &code[..3], &code[3..]),
            format!("{}\u{2009}{}", &code[..3], &code[3..]),
        ] {
            assert!(verify(&secret, &shown, 1_763_840_000, None).is_ok(), "{shown:?}");
        }
    }

    fn totp_code(secret: &Secret, time: u64) -> String {
        builder(secret.as_bytes()).build().unwrap().generate(time).to_string()
    }

    #[test]
    fn short_or_empty_secrets_are_a_server_fault() {
        assert_eq!(verify(&[0u8; 15], "123456", 59, None), Err(TotpError::UnusableSecret));
        assert_eq!(verify(&[], "123456", 59, None), Err(TotpError::UnusableSecret));
        // Malformed input is reported first: it is what the citizen can act on.
        assert_eq!(verify(&[], "12", 59, None), Err(TotpError::Malformed));
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let secret = new_secret().unwrap();
        for now in [0, 1, 29, 30, u64::MAX - 1, u64::MAX] {
            let got = verify(&secret, "000000", now, Some(u64::MAX));
            assert!(matches!(got, Err(TotpError::Invalid | TotpError::Replayed)), "{now}: {got:?}");
        }
        // At T=0 the window is steps 0 and 1.
        let code = totp_code(&secret, 0);
        assert_eq!(verify(&secret, &code, 0, None), Ok(0));
    }

    #[test]
    fn new_secrets_are_160_bits_and_distinct() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(format!("{a:?}"), "REDACTED");
    }

    #[test]
    fn otpauth_uri_round_trips() {
        let secret = new_secret().unwrap();
        for (issuer, label) in
            [(DEFAULT_ISSUER, "nguyenvana"), ("Cổng DVC Hà Nội", "Nguyễn Văn A & co"), ("x", "a@b.vn")]
        {
            let e = enrolment(&secret, issuer, label, Lang::Vi).unwrap();
            assert!(e.otpauth_uri.starts_with("otpauth://totp/"), "{}", e.otpauth_uri);
            let parsed = Totp::from_url(&e.otpauth_uri).unwrap();
            assert_eq!(parsed.algorithm(), Algorithm::SHA1);
            assert_eq!(parsed.digits(), 6);
            assert_eq!(parsed.step(), 30);
            assert_eq!(parsed.issuer(), Some(issuer));
            assert_eq!(parsed.account_name(), label);
            assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
            // The grouped base32 decodes to the same secret.
            assert_eq!(e.base32_secret.len(), 32 + 7);
            assert!(e.base32_secret.split(' ').all(|g| g.len() == 4));
            let typed = Secret::try_from_base32(e.base32_secret.replace(' ', "")).unwrap();
            assert_eq!(typed.as_bytes(), secret.as_bytes());
            // Never in logs.
            let dbg = format!("{e:?}");
            assert!(!dbg.contains(&secret.to_base32()) && !dbg.contains(&e.base32_secret));
        }
    }

    #[test]
    fn labels_with_colons_or_empty_are_refused() {
        let secret = new_secret().unwrap();
        for (issuer, label) in [("a:b", "x"), ("a", "x:y"), ("a", ""), ("a", "  ")] {
            assert!(matches!(enrolment(&secret, issuer, label, Lang::Vi), Err(TotpSetupError::Label)));
        }
    }

    #[test]
    fn qr_svg_is_inline_and_accessible() {
        let secret = new_secret().unwrap();
        let e = enrolment(&secret, DEFAULT_ISSUER, "<b>\"x\"</b>", Lang::Vi).unwrap();
        let svg = &e.qr_svg;
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        assert!(svg.contains(r#"role="img""#));
        let title = svg.split("<title>").nth(1).unwrap().split("</title>").next().unwrap();
        assert!(title.contains("ứng dụng xác thực"), "{title}");
        assert!(title.contains("&lt;b&gt;&quot;x&quot;&lt;/b&gt;"), "{title}");
        assert!(!title.contains('<') && !title.contains('"'));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<path").count(), 1);
        // No external resources: the only URL is the SVG namespace.
        assert!(!svg.contains("href"));
        assert_eq!(svg.matches("http").count(), 1);
        let en = enrolment(&secret, DEFAULT_ISSUER, "a", Lang::En).unwrap();
        assert!(en.qr_svg.contains("<title>QR code to add the account a (xacthuc) to an authenticator app</title>"));
    }

    #[test]
    fn qr_path_draws_exactly_the_dark_modules() {
        let data = "otpauth://totp/xacthuc:a?secret=AAAA&issuer=xacthuc";
        let svg = qr_svg(data, "t").unwrap();
        let code = QrCode::new(data.as_bytes()).unwrap();
        let width = code.width();
        let size = width + 8;
        assert!(svg.contains(&format!(r#"viewBox="0 0 {size} {size}""#)));
        // Repaint the grid from the path (runs are `M{x} {y}h{len}v1h-{len}z`), quiet zone
        // included, and compare with the symbol module by module.
        let mut painted = vec![vec![false; size]; size];
        let d = svg.split(r#" d=""#).nth(1).unwrap().split('"').next().unwrap();
        for run in d.split('M').filter(|s| !s.is_empty()) {
            let run = run.strip_suffix('z').unwrap();
            let (xy, rest) = run.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let len: usize = rest.split_once('v').unwrap().0.parse().unwrap();
            assert_eq!(rest, format!("{len}v1h-{len}"));
            for cell in &mut painted[y][x..x + len] {
                assert!(!*cell, "overlapping runs");
                *cell = true;
            }
        }
        let colors = code.to_colors();
        for (y, row) in painted.iter().enumerate() {
            for (x, cell) in row.iter().enumerate() {
                let in_symbol = (4..4 + width).contains(&x) && (4..4 + width).contains(&y);
                let dark = in_symbol && colors[(y - 4) * width + (x - 4)] == QrColor::Dark;
                assert_eq!(*cell, dark, "module ({x}, {y})");
            }
        }
    }

    #[test]
    fn seal_round_trip_and_binding() {
        let key = DataKeys::from(crate::crypto::DataKey::generate().unwrap());
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let secret = new_secret().unwrap();
        let sealed = seal(&key, alice, &secret).unwrap();
        assert!(!sealed.contains(&secret.to_base32()));
        assert_eq!(unseal(&key, alice, &sealed).unwrap().as_bytes(), secret.as_bytes());
        assert!(matches!(unseal(&key, bob, &sealed), Err(TotpSetupError::SecretBox(SecretBoxError::Authentication))));
        // Another purpose's ciphertext for the same account does not open as a TOTP secret.
        let national_id =
            key.encrypt(b"001099012345678901234", format!("account:{alice}:national_id").as_bytes()).unwrap();
        assert!(unseal(&key, alice, &national_id).is_err());
        // Too short a plaintext under the right AAD is refused, not used.
        let short = key.encrypt(&[1u8; 10], aad(alice).as_bytes()).unwrap();
        assert!(matches!(unseal(&key, alice, &short), Err(TotpSetupError::SecretLength(10))));
        assert!(unseal(&key, alice, "garbage").is_err());
    }

    #[test]
    fn messages() {
        assert_eq!(TotpError::Invalid.message(Lang::Vi), "Mã OTP không hợp lệ.");
        assert!(TotpError::Replayed.message(Lang::Vi).contains("đã được sử dụng"));
        for e in [TotpError::Malformed, TotpError::Invalid, TotpError::Replayed, TotpError::UnusableSecret] {
            assert!(e.message(Lang::En).is_ascii());
            assert_ne!(e.message(Lang::Vi), e.message(Lang::En));
        }
    }
}
