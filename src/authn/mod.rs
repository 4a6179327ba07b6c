//! Authenticators, one module each. Today: passwords (knowledge factor).
pub mod password;
/// Second-factor foundations (TOTP apps, recovery codes): pure, not yet wired into sign-in.
pub mod recovery;
/// Throttling online guessing: the `[throttle]` configuration and rules (NIST SP 800-63B §5.2.2).
pub mod throttle;
pub mod totp;
/// Passkeys: the `[webauthn]` relying-party configuration.
pub mod webauthn;
