//! The token endpoint's parser and the checks on parsed input (RFC 6749 §2.3, §4.1.3, §5.2, §6;
//! RFC 7523; RFC 7636 §4.6). Input: an optional `Authorization` header value on the first line,
//! then the form body, e.g. `Basic cG9ydGFsOnM=\ngrant_type=authorization_code&code=c`. A body
//! without a newline is the form alone. Any panic is a bug: bad requests end as OAuth errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xacthuc::model::{ClientKind, ClientRecord, TokenAuthMethod};
use xacthuc::oidc::token::{self, TokenHintRequest, TokenRequest};
use xacthuc::oidc::{client_auth, pkce};

const NOW: i64 = 1_764_000_000;
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const AUDIENCES: [&str; 2] = ["https://id.example.vn/token", "https://id.example.vn"];

fn client(kind: ClientKind, method: TokenAuthMethod) -> ClientRecord {
    let mut settings = xacthuc::model::ClientSettings { token_auth_method: method, ..Default::default() };
    settings.scopes = vec!["openid".into(), "profile".into(), "offline_access".into()];
    ClientRecord {
        id: "portal".into(),
        name: "Portal".into(),
        kind,
        secret_hash: Some("hash".into()),
        redirect_uris: vec!["https://portal.example/cb".into()],
        id_token_alg: "PS256".into(),
        settings,
        created_at: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok().filter(|h| !h.is_empty()), &data[i + 1..]),
        None => (None, data),
    };
    // The revocation and introspection endpoints read the same body shape.
    let _ = serde_urlencoded::from_bytes::<TokenHintRequest>(body);
    let Ok(req) = serde_urlencoded::from_bytes::<TokenRequest>(body) else { return };
    if let Ok(grant) = token::check_grant_type(&req) {
        let _ = grant.name();
    }
    let granted = ["openid", "profile", "offline_access"];
    let _ = token::narrow_scope(req.scope.as_deref(), &granted);
    if let Some(verifier) = req.code_verifier.as_deref() {
        let _ = pkce::verify(CHALLENGE, verifier);
    }
    let presented = client_auth::extract(
        header,
        req.client_id.as_deref(),
        req.client_secret.as_deref(),
        (req.client_assertion_type.as_deref(), req.client_assertion.as_deref()),
    );
    if let Ok(p) = &presented {
        let _ = (p.client_id(), p.secret(), p.used_basic());
        for c in [
            client(ClientKind::Public, TokenAuthMethod::ClientSecret),
            client(ClientKind::Confidential, TokenAuthMethod::ClientSecret),
            client(ClientKind::Confidential, TokenAuthMethod::PrivateKeyJwt),
        ] {
            let _ = client_auth::check(&c, p, |secret, hash| secret.len() == hash.len());
        }
    }
    // The assertion's claims, as `check_assertion` sees them once the signature is verified.
    if let Some(jwt) = req.client_assertion.as_deref()
        && let Ok((_, claims)) = xacthuc::crypto::jws::peek(jwt)
    {
        let id = claims.get("sub").and_then(|s| s.as_str()).unwrap_or("portal");
        let _ = client_auth::check_assertion(&claims, id, &AUDIENCES, NOW);
    }
});
