//! TLS for the HTTP and gRPC listeners (rustls with ring): the certificate
//! chain and key come from PEM files and are read again on SIGHUP, so a
//! renewed certificate (cert-manager, a Vault agent) is served to new
//! connections without a restart. A reload that fails keeps the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate being served, replaceable at run time.
#[derive(Debug)]
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("{}: {e}", key_file.display()))?;
    Ok(CertifiedKey::new(certs, signer))
}

impl Certificates {
    /// Load the pair now (a bad file stops the start).
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, String> {
        let current = RwLock::new(Arc::new(load(cert_file, key_file)?));
        Ok(Arc::new(Self { cert_file: cert_file.to_owned(), key_file: key_file.to_owned(), current }))
    }

    /// Read the files again; on failure the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = load(&self.cert_file, &self.key_file)?;
        *self.current.write() = Arc::new(fresh);
        Ok(())
    }

    /// A server configuration offering these certificates and `alpn` protocols.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Reload `certs` on every SIGHUP until `stop` resolves.
pub async fn reload_on_sighup(certs: Arc<Certificates>, stop: impl std::future::Future<Output = ()>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; TLS certificates will not be reloaded");
            return;
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    let c = certs.clone();
                    match tokio::task::spawn_blocking(move || c.reload()).await {
                        Ok(Ok(())) => tracing::info!(cert = %certs.cert_file.display(), "TLS certificate reloaded"),
                        Ok(Err(e)) => tracing::error!(error = %e, "TLS certificate reload failed; serving the previous one"),
                        Err(e) => tracing::error!(error = %e, "TLS certificate reload panicked"),
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (certs, stop);
    }
}

/// A TLS connection for tonic, which needs to know the peer's address.
#[derive(Debug)]
pub struct TlsConn(pub tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
