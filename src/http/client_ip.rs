//! The client's source address, for throttling: the TCP peer, or the `X-Forwarded-For` hop
//! reported by a trusted proxy (`[throttle] trusted_proxies`, `authn::throttle::client_address`).

use crate::app::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// `None` when the server was started without connection info (the address is then unknown
/// and only the per-account limits apply).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let proxies = state.config.throttle.proxies();
        Ok(ClientIp(crate::authn::throttle::client_address(peer, &forwarded, &proxies)))
    }
}
