//! Authenticators, one module each. Today: passwords (knowledge factor).
pub mod password;
