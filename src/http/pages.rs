//! HTML pages: minijinja templates compiled into the binary, auto-escaped, rendered with the
//! message bundle of the citizen's language.

use minijinja::{Environment, UndefinedBehavior, Value};

pub struct Pages {
    env: Environment<'static>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../templates/layout.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("register.html", include_str!("../../templates/register.html")),
    ("account.html", include_str!("../../templates/account.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("insufficient.html", include_str!("../../templates/insufficient.html")),
    ("logout_confirm.html", include_str!("../../templates/logout_confirm.html")),
    ("demo.html", include_str!("../../templates/demo.html")),
    ("second_factor.html", include_str!("../../templates/second_factor.html")),
    ("totp_enrol.html", include_str!("../../templates/totp_enrol.html")),
    ("recovery_codes.html", include_str!("../../templates/recovery_codes.html")),
    ("contact_verify.html", include_str!("../../templates/contact_verify.html")),
    ("outbox.html", include_str!("../../templates/outbox.html")),
    ("notice.html", include_str!("../../templates/notice.html")),
    ("form_post.html", include_str!("../../templates/form_post.html")),
    ("approve.html", include_str!("../../templates/approve.html")),
    ("step_up_why.html", include_str!("../../templates/step_up_why.html")),
    ("passkey_login.html", include_str!("../../templates/passkey_login.html")),
    ("passkey_step.html", include_str!("../../templates/passkey_step.html")),
    ("passkey_account.html", include_str!("../../templates/passkey_account.html")),
    ("certificate_step.html", include_str!("../../templates/certificate_step.html")),
    ("certificate_account.html", include_str!("../../templates/certificate_account.html")),
    ("certificate_sign.html", include_str!("../../templates/certificate_sign.html")),
    ("sessions_account.html", include_str!("../../templates/sessions_account.html")),
    ("login_unlock.html", include_str!("../../templates/login_unlock.html")),
    ("staff_home.html", include_str!("../../templates/staff_home.html")),
    ("staff_citizen.html", include_str!("../../templates/staff_citizen.html")),
    ("staff_document_fields.html", include_str!("../../templates/staff_document_fields.html")),
    ("activation_letter.html", include_str!("../../templates/activation_letter.html")),
    ("activate.html", include_str!("../../templates/activate.html")),
    ("evidence_account.html", include_str!("../../templates/evidence_account.html")),
    ("review_upload.html", include_str!("../../templates/review_upload.html")),
    ("staff_reviews.html", include_str!("../../templates/staff_reviews.html")),
    ("staff_review.html", include_str!("../../templates/staff_review.html")),
    ("verify_hub.html", include_str!("../../templates/verify_hub.html")),
    ("verify_certificate.html", include_str!("../../templates/verify_certificate.html")),
    ("staff_audit.html", include_str!("../../templates/staff_audit.html")),
    ("staff_enrol.html", include_str!("../../templates/staff_enrol.html")),
];

pub const STYLESHEET: &str = include_str!("../../static/app.css");
/// Submits the form_post response page's form (served as a file: the CSP allows no inline script).
pub const FORM_POST_SCRIPT: &str = include_str!("../../static/form_post.js");

impl Pages {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        // Printing a missing message or variable is an error (caught by tests), not blank text;
        // testing an absent optional value in `{% if %}` is allowed.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Pages { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// Any serializable value as a template value.
pub fn ser<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// The message bundle of `lang` as a template value (`t` in every page), converted once: a
/// template value is shared, not copied, so a page no longer rebuilds a map of every message
/// (that was a sixth of the gateway's CPU per sign-in besides Argon2, docs/performance.md).
pub fn messages(lang: crate::i18n::Lang) -> Value {
    use crate::i18n::{Lang, bundle};
    static VALUES: std::sync::LazyLock<[Value; 2]> =
        std::sync::LazyLock::new(|| [ser(bundle(Lang::Vi)), ser(bundle(Lang::En))]);
    match lang {
        Lang::Vi => VALUES[0].clone(),
        Lang::En => VALUES[1].clone(),
    }
}
