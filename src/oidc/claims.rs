//! Which claims a scope releases (OIDC Core §5.4), plus `national_id` under its own scope.
//! Personal data leaves only under an explicit scope.

use serde_json::{Map, Value, json};

/// What the gateway holds about the citizen, decrypted, ready to be filtered by scope.
#[derive(Clone, Debug, Default)]
pub struct UserProfile {
    pub subject: String,
    pub username: String,
    pub as_level: u8,
    pub full_name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub phone_verified: bool,
    pub national_id: Option<String>,
}

/// The userinfo response body for the granted scopes.
pub fn userinfo(scopes: &[&str], p: &UserProfile) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), json!(p.subject));
    out.insert("as_level".into(), json!(p.as_level));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.into(), v);
        }
    };
    if scopes.contains(&"profile") {
        put("preferred_username", Some(json!(p.username)));
        put("name", p.full_name.as_ref().map(|v| json!(v)));
        put("birthdate", p.birth_date.as_ref().map(|v| json!(v)));
        put("gender", p.sex.as_ref().map(|v| json!(v)));
    }
    if scopes.contains(&"email") {
        put("email", p.email.as_ref().map(|v| json!(v)));
        // Verified means a code sent to it was typed back (service::otp).
        put("email_verified", p.email.as_ref().map(|_| json!(p.email_verified)));
    }
    if scopes.contains(&"phone") {
        put("phone_number", p.phone.as_ref().map(|v| json!(v)));
        put("phone_number_verified", p.phone.as_ref().map(|_| json!(p.phone_verified)));
    }
    if scopes.contains(&"national_id") {
        put("national_id", p.national_id.as_ref().map(|v| json!(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_id_only_under_its_scope() {
        let p = UserProfile {
            subject: "s".into(),
            username: "u".into(),
            as_level: 2,
            full_name: Some("Nguyễn Văn A".into()),
            national_id: Some("087084000999".into()),
            ..Default::default()
        };
        let basic = userinfo(&["openid", "profile"], &p);
        assert_eq!(basic["name"], "Nguyễn Văn A");
        assert!(!basic.contains_key("national_id"));
        let with = userinfo(&["openid", "national_id"], &p);
        assert_eq!(with["national_id"], "087084000999");
        assert!(!with.contains_key("name"));
    }
}
