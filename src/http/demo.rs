//! The built-in demo portal at `/demo`: an ordinary confidential OIDC client of this gateway
//! that uses the `openidconnect` crate as relying party and the real HTTP path (discovery,
//! authorize, token, JWKS, userinfo), then shows what a portal receives.

use super::ctx::{WebCtx, removal, secret_cookie};
use crate::app::AppState;
use crate::crypto::signing::SigningAlg;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

/// The demo portal's registration (secret derived from the data key, never stored).
#[derive(Clone, Debug)]
pub struct DemoClient {
    pub client_id: String,
    pub secret: String,
    pub redirect_uri: String,
}

/// The demo's two portals: a general one (no service policy: the defaults apply) and the
/// level-4 "Đăng ký hộ kinh doanh" portal whose payment and result receipt need a step-up.
#[derive(Clone, Debug)]
pub struct DemoClients {
    pub portal: DemoClient,
    pub business: DemoClient,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoHttpError {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] axum::http::Error),
}

/// The `openidconnect` crate's HTTP client contract, fulfilled by reqwest.
async fn send(
    client: reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, DemoHttpError> {
    let (parts, body) = req.into_parts();
    let resp = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = axum::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    Ok(builder.body(resp.bytes().await?.to_vec())?)
}

#[derive(Serialize, Deserialize)]
struct FlowState {
    state: String,
    nonce: String,
    verifier: String,
    /// Which portal started the flow.
    #[serde(default)]
    business: bool,
}

const COOKIE: &str = "demo";
const AAD: &[u8] = b"demo-flow-state";

const PRESETS: &[(&str, &str)] = &[
    ("", "demo_signin_plain"),
    ("urn:xacthuc:loa:as2:1fa", "demo_signin_as2"),
    ("urn:xacthuc:loa:as2:2fa", "demo_signin_2fa"),
    ("urn:xacthuc:loa:as3:1fa", "demo_signin_as3"),
];

fn presets(ctx: &WebCtx) -> Value {
    super::pages::ser(
        PRESETS.iter().map(|(acr, key)| context! { acr => *acr, label => ctx.t(key) }).collect::<Vec<_>>(),
    )
}

/// What the level-4 portal shows and asks for: a fee of 1.250.000 ₫ and a dossier's result.
const DEMO_FEE: u64 = 1_250_000;
const DEMO_DOSSIER: &str = "000.00.12.H26-261122-0042";

fn demo_page(ctx: WebCtx, status: StatusCode, result: Value, error: String) -> Response {
    let p = presets(&ctx);
    let fee = crate::oidc::rar::format_vnd(DEMO_FEE);
    ctx.page(
        status,
        "demo.html",
        context! {
            presets => p,
            result => result,
            error => error,
            fee => fee,
            dossier => DEMO_DOSSIER,
            demo_user => crate::service::accounts::DEMO_CITIZEN,
            demo_password => crate::service::accounts::DEMO_CITIZEN_PASSWORD,
        },
    )
}

pub async fn home(ctx: WebCtx) -> Response {
    demo_page(ctx, StatusCode::OK, Value::from(()), String::new())
}

/// The RFC 9396 details the level-4 portal pushes for `action`.
fn details_for(action: &str) -> Option<serde_json::Value> {
    match action {
        "payment" => Some(serde_json::json!([{
            "type": "payment",
            "amount": DEMO_FEE.to_string(),
            "currency": "VND",
            "payee": "UBND quận Ba Đình — Phòng Tài chính – Kế hoạch",
            "reference": "HKD-2026-0042",
        }])),
        "result_receipt" => Some(serde_json::json!([{
            "type": "result_receipt",
            "dossier_id": DEMO_DOSSIER,
            "service": "Đăng ký hộ kinh doanh",
        }])),
        _ => None,
    }
}

async fn client(
    state: &AppState,
    business: bool,
) -> Result<
    (
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        DemoClient,
    ),
    String,
> {
    let demos = state.demo.clone().ok_or("demo disabled")?;
    let demo = if business { demos.business } else { demos.portal };
    let http = |req| send(state.http.clone(), req);
    let issuer = IssuerUrl::new(state.issuer().to_string()).map_err(|e| e.to_string())?;
    let metadata = crate::oidc::discovery::XacthucProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| format!("discovery failed: {e}"))?;
    let redirect = RedirectUrl::new(demo.redirect_uri.clone()).map_err(|e| e.to_string())?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(demo.client_id.clone()),
        Some(ClientSecret::new(demo.secret.clone())),
    )
    .set_redirect_uri(redirect);
    Ok((client, demo))
}

fn failed(ctx: WebCtx, error: String) -> Response {
    tracing::warn!(%error, "demo portal");
    demo_page(ctx, StatusCode::BAD_GATEWAY, Value::from(()), error)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    acr: Option<String>,
    /// `hkd`: the level-4 business registration portal.
    svc: Option<String>,
    /// `payment` or `result_receipt` (level-4 portal): pushed with its authorization details.
    action: Option<String>,
}

/// Pushes the authorization request (RFC 9126) so its details cannot be altered in the URL,
/// and returns the URL to send the browser to.
async fn pushed(state: &AppState, demo: &DemoClient, url: &url::Url) -> Result<String, String> {
    let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let action = params.iter().find(|(k, _)| k == "xacthuc_action").map(|(_, v)| v.clone());
    params.retain(|(k, _)| k != "xacthuc_action");
    if let Some(details) = action.as_deref().and_then(details_for) {
        params.push(("authorization_details".into(), details.to_string()));
    }
    let resp = state
        .http
        .post(format!("{}/par", state.issuer()))
        .basic_auth(&demo.client_id, Some(&demo.secret))
        .form(&params)
        .send()
        .await
        .map_err(|e| format!("PAR failed: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("PAR failed: {e}"))?;
    let Some(request_uri) = body["request_uri"].as_str().filter(|_| status.is_success()) else {
        return Err(format!("PAR refused: {body}"));
    };
    let mut to = url::Url::parse(&format!("{}/authorize", state.issuer())).map_err(|e| e.to_string())?;
    to.query_pairs_mut().append_pair("client_id", &demo.client_id).append_pair("request_uri", request_uri);
    Ok(to.to_string())
}

pub async fn login(State(state): State<AppState>, mut ctx: WebCtx, Query(q): Query<LoginQuery>) -> Response {
    let business = q.svc.as_deref() == Some("hkd");
    let (client, demo) = match client(&state, business).await {
        Ok(c) => c,
        Err(e) => return failed(ctx, e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scopes(["profile", "email", "phone", "national_id", "verification"].map(|s| Scope::new(s.into())))
        .set_pkce_challenge(challenge);
    if let Some(acr) = q.acr.filter(|a| !a.is_empty()) {
        request = request.add_auth_context_value(AuthenticationContextClass::new(acr));
    }
    if let Some(action) = q.action.as_deref().filter(|a| business && details_for(a).is_some()) {
        request = request.add_extra_param("xacthuc_action", action.to_string());
    }
    let (url, csrf, nonce) = request.url();
    // The level-4 portal pushes every request (PAR), as a portal that sends payment details should.
    let url = if business {
        match pushed(&state, &demo, &url).await {
            Ok(u) => u,
            Err(e) => return failed(ctx, e),
        }
    } else {
        url.to_string()
    };
    let flow = FlowState {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        business,
    };
    let sealed = serde_json::to_vec(&flow)
        .map_err(|e| e.to_string())
        .and_then(|j| state.data_key.encrypt(&j, AAD).map_err(|e| e.to_string()));
    match sealed {
        Ok(v) => {
            ctx.jar = ctx.jar.add(secret_cookie(&state, COOKIE, v, Some(600)));
            ctx.redirect(&url)
        }
        Err(e) => failed(ctx, e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(State(state): State<AppState>, mut ctx: WebCtx, Query(q): Query<CallbackQuery>) -> Response {
    let flow: Option<FlowState> = ctx
        .jar
        .get(&super::ctx::cookie_name(&state, COOKIE))
        .and_then(|c| state.data_key.decrypt(c.value(), AAD).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    ctx.jar = ctx.jar.add(removal(&state, COOKIE));
    if let Some(error) = q.error {
        return failed(ctx, format!("{error}: {}", q.error_description.unwrap_or_default()));
    }
    let Some(flow) = flow.filter(|f| q.state.as_deref() == Some(f.state.as_str())) else {
        return failed(ctx, "state does not match: start again".into());
    };
    let Some(code) = q.code else { return failed(ctx, "no code".into()) };
    let (client, demo) = match client(&state, flow.business).await {
        Ok(c) => c,
        Err(e) => return failed(ctx, e),
    };
    let http = |req| send(state.http.clone(), req);
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(r) => r,
        Err(e) => return failed(ctx, e.to_string()),
    };
    let tokens = match exchange.set_pkce_verifier(PkceCodeVerifier::new(flow.verifier)).request_async(&http).await {
        Ok(t) => t,
        Err(e) => return failed(ctx, format!("token request failed: {e}")),
    };
    let Some(id_token) = tokens.id_token() else { return failed(ctx, "no ID token".into()) };
    let verifier = client.id_token_verifier().set_allowed_algs(SigningAlg::ALL.map(SigningAlg::to_core));
    if let Err(e) = id_token.claims(&verifier, &Nonce::new(flow.nonce)) {
        return failed(ctx, format!("ID token rejected: {e}"));
    }
    // Verified above; decode the payload once more to show every claim, ours included.
    let raw = id_token.to_string();
    let claims: serde_json::Value = raw
        .split('.')
        .nth(1)
        .and_then(|p| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let userinfo: serde_json::Value = match state
        .http
        .get(format!("{}/userinfo", state.issuer()))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let auth_time = claims["auth_time"]
        .as_i64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.to_offset(time::macros::offset!(+7))
                .format(time::macros::format_description!("[day]/[month]/[year] [hour]:[minute]:[second] (GMT+7)"))
                .ok()
        })
        .unwrap_or_default();
    // What the access token allows: its authorization details, as introspection tells them
    // (RFC 9396 §9.1).
    let introspected: serde_json::Value = match state
        .http
        .post(format!("{}/introspect", state.issuer()))
        .basic_auth(&demo.client_id, Some(&demo.secret))
        .form(&[("token", tokens.access_token().secret().as_str())])
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let details = introspected.get("authorization_details").filter(|d| !d.is_null());
    let result = context! {
        portal => if flow.business { demo.client_id.clone() } else { String::new() },
        authorization_details_json => details.map(|d| serde_json::to_string_pretty(d).unwrap_or_default()),
        acr => claims["acr"].as_str().unwrap_or(""),
        amr => claims["amr"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        as_level => claims["as_level"].as_i64(),
        auth_mechanism => claims["auth_mechanism"].as_str().unwrap_or(""),
        auth_time => auth_time,
        claims_json => serde_json::to_string_pretty(&claims).unwrap_or_default(),
        userinfo_json => serde_json::to_string_pretty(&userinfo).unwrap_or_default(),
    };
    demo_page(ctx, StatusCode::OK, result, String::new())
}
