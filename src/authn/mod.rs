//! Authenticators, one module each. Today: passwords (knowledge factor).
pub mod password;
/// Second-factor foundations (TOTP apps, recovery codes): pure, not yet wired into sign-in.
pub mod recovery;
pub mod totp;
