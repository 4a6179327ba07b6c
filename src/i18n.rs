//! Languages of the web UI: Vietnamese (default) and English. Messages live in
//! `locales/vi.toml` and `locales/en.toml` (flat `key = "text"`), embedded at build time; a test
//! keeps the two bundles' keys identical and checks every key the templates use exists.

use std::collections::BTreeMap;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let primary = s.trim().split(['-', '_', ';']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

pub type Bundle = BTreeMap<String, String>;

fn load(text: &str) -> Bundle {
    // The bundles are compiled in and checked by tests; an unparsable one is a build defect,
    // shown as raw keys rather than a crash.
    text.parse::<toml::Table>()
        .map(|t| t.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string()))).collect())
        .unwrap_or_default()
}

static VI: LazyLock<Bundle> = LazyLock::new(|| load(include_str!("../locales/vi.toml")));
static EN: LazyLock<Bundle> = LazyLock::new(|| load(include_str!("../locales/en.toml")));

pub fn bundle(lang: Lang) -> &'static Bundle {
    match lang {
        Lang::Vi => &VI,
        Lang::En => &EN,
    }
}

/// The message `key` in `lang`; the key itself if missing (never a panic).
pub fn t(lang: Lang, key: &str) -> String {
    bundle(lang).get(key).cloned().unwrap_or_else(|| key.to_string())
}

/// The page language: the citizen's explicit choice (cookie) first, then the portal's
/// `ui_locales`, then the browser's `Accept-Language`, then the configured default.
pub fn negotiate(cookie: Option<&str>, ui_locales: Option<&str>, accept_language: Option<&str>, default: Lang) -> Lang {
    if let Some(l) = cookie.and_then(Lang::parse) {
        return l;
    }
    if let Some(l) = ui_locales.and_then(|u| u.split(' ').find_map(Lang::parse)) {
        return l;
    }
    if let Some(l) = accept_language.and_then(|a| a.split(',').find_map(Lang::parse)) {
        return l;
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_have_the_same_keys_and_no_empty_text() {
        let vi: Vec<_> = VI.keys().collect();
        let en: Vec<_> = EN.keys().collect();
        assert!(vi.len() > 50, "bundle did not load");
        assert_eq!(vi, en);
        assert!(VI.values().chain(EN.values()).all(|v| !v.trim().is_empty()));
    }

    #[test]
    fn every_key_used_by_a_template_exists() {
        let templates = [
            include_str!("../templates/layout.html"),
            include_str!("../templates/login.html"),
            include_str!("../templates/register.html"),
            include_str!("../templates/account.html"),
            include_str!("../templates/error.html"),
            include_str!("../templates/insufficient.html"),
            include_str!("../templates/logout_confirm.html"),
            include_str!("../templates/demo.html"),
            include_str!("../templates/second_factor.html"),
            include_str!("../templates/totp_enrol.html"),
            include_str!("../templates/recovery_codes.html"),
            include_str!("../templates/contact_verify.html"),
            include_str!("../templates/outbox.html"),
            include_str!("../templates/notice.html"),
            include_str!("../templates/macros.html"),
            include_str!("../templates/form_post.html"),
            include_str!("../templates/approve.html"),
            include_str!("../templates/passkey_login.html"),
            include_str!("../templates/passkey_step.html"),
            include_str!("../templates/passkey_account.html"),
            include_str!("../templates/certificate_step.html"),
            include_str!("../templates/certificate_sign.html"),
            include_str!("../templates/certificate_account.html"),
            include_str!("../templates/step_up_why.html"),
            include_str!("../templates/sessions_account.html"),
            include_str!("../templates/login_unlock.html"),
            include_str!("../templates/staff_home.html"),
            include_str!("../templates/staff_citizen.html"),
            include_str!("../templates/staff_document_fields.html"),
            include_str!("../templates/activation_letter.html"),
            include_str!("../templates/activate.html"),
            include_str!("../templates/evidence_account.html"),
            include_str!("../templates/staff_audit.html"),
            include_str!("../templates/staff_enrol.html"),
            include_str!("../templates/verify_hub.html"),
            include_str!("../templates/verify_certificate.html"),
        ];
        for text in templates {
            for (i, _) in text.match_indices("t.") {
                let before = text[..i].chars().last().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' {
                    continue;
                }
                let key: String =
                    text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !key.is_empty() {
                    assert!(VI.contains_key(&key), "template uses missing key {key}");
                }
            }
        }
    }

    #[test]
    fn negotiation_order() {
        assert_eq!(negotiate(Some("en"), Some("vi"), Some("vi"), Lang::Vi), Lang::En);
        assert_eq!(negotiate(None, Some("fr en-GB"), Some("vi"), Lang::Vi), Lang::En);
        assert_eq!(negotiate(None, None, Some("en-US,en;q=0.9"), Lang::Vi), Lang::En);
        assert_eq!(negotiate(None, None, Some("fr"), Lang::Vi), Lang::Vi);
    }
}
