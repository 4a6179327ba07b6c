//! Serving HTTPS directly with rustls (`[tls]`), for deployments without a TLS-terminating
//! proxy: TLS 1.2 and 1.3 only (rustls implements nothing older), ring as the crypto provider,
//! the certificate chain and key read from PEM files and re-read on SIGHUP without dropping
//! connections, and optionally a plain-HTTP listener that redirects every request to https.
//!
//! Behind a proxy, leave `[tls]` empty and list the proxy in `throttle.trusted_proxies` so the
//! client address comes from `X-Forwarded-For`.

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate followed by its intermediates. With `key_file`,
    /// `listen` serves HTTPS.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Also listen here with plain HTTP and redirect every request to the issuer's https origin
    /// (e.g. `"0.0.0.0:80"`).
    pub redirect_http_from: Option<String>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }

    /// Configuration problems, one line each (`Config::validate`).
    pub fn problems(&self, issuer: &str) -> Vec<String> {
        let mut p = Vec::new();
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) | (None, Some(_)) => p.push("tls: give both cert_file and key_file, or neither".into()),
            (Some(cert), Some(key)) => {
                for (name, file) in [("tls.cert_file", cert), ("tls.key_file", key)] {
                    if !file.is_file() {
                        p.push(format!("{name}: {} is not a readable file", file.display()));
                    }
                }
                if !issuer.starts_with("https://") {
                    p.push("tls: the issuer must be an https URL when the gateway serves TLS itself".into());
                }
                if p.is_empty()
                    && let Err(e) = load_pem(cert, key)
                {
                    p.push(format!("tls: {e}"));
                }
            }
            (None, None) => {}
        }
        if let Some(addr) = &self.redirect_http_from {
            if addr.parse::<SocketAddr>().is_err() {
                p.push(format!("tls.redirect_http_from: {addr:?} is not ADDRESS:PORT"));
            }
            if !self.enabled() {
                p.push("tls.redirect_http_from: needs tls.cert_file and tls.key_file".into());
            }
        }
        p
    }
}

/// Reads and checks the PEM files: at least one certificate and exactly one usable key that
/// rustls accepts with them.
fn load_pem(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not fit the certificate or is unsupported: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The live TLS configuration of a serving gateway.
#[derive(Clone)]
pub struct Tls {
    rustls: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    pub fn load(config: &TlsConfig) -> Result<Option<Tls>, String> {
        let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
            return Ok(None);
        };
        let server = load_pem(cert, key)?;
        Ok(Some(Tls {
            rustls: RustlsConfig::from_config(std::sync::Arc::new(server)),
            cert: cert.clone(),
            key: key.clone(),
        }))
    }

    /// Re-reads the files (SIGHUP); a bad pair is refused and the current one stays.
    pub fn reload(&self) -> Result<(), String> {
        let server = load_pem(&self.cert, &self.key)?;
        self.rustls.reload_from_config(std::sync::Arc::new(server));
        Ok(())
    }

    /// Serves `app` over TLS on an already bound listener until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: std::net::TcpListener,
        app: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        listener.set_nonblocking(true)?;
        axum_server::from_tcp_rustls(listener, self.rustls.clone())?
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
    }
}

/// The plain-HTTP listener's only answer: a permanent redirect to the same path on `issuer`.
pub fn redirect_app(issuer: String) -> Router {
    Router::new().fallback(move |uri: Uri| {
        let issuer = issuer.clone();
        async move { redirect(&issuer, &uri) }
    })
}

fn redirect(issuer: &str, uri: &Uri) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let to = format!("{}{path}", issuer.trim_end_matches('/'));
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, to)]).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redirects_keep_the_path_and_query() {
        let r = redirect("https://id.example.vn", &"/authorize?client_id=a&x=%20".parse().unwrap());
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "https://id.example.vn/authorize?client_id=a&x=%20");
    }

    #[test]
    fn half_a_pair_and_plain_issuers_are_problems() {
        let half = TlsConfig { cert_file: Some("c.pem".into()), ..Default::default() };
        assert!(half.problems("https://id.example.vn")[0].contains("both"));
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let ok = TlsConfig { cert_file: Some(c.clone()), key_file: Some(k.clone()), redirect_http_from: None };
        assert!(ok.problems("https://localhost:8443").is_empty(), "{:?}", ok.problems("https://localhost:8443"));
        assert!(ok.problems("http://localhost:8443")[0].contains("https"));
        // A key of another certificate is refused with the reason.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&k, other.serialize_pem()).unwrap();
        assert!(
            ok.problems("https://localhost:8443")[0].contains("does not fit"),
            "{:?}",
            ok.problems("https://localhost:8443")
        );
        let redirect_only = TlsConfig { redirect_http_from: Some("0.0.0.0:80".into()), ..Default::default() };
        assert!(redirect_only.problems("https://x")[0].contains("needs tls.cert_file"));
    }
}
