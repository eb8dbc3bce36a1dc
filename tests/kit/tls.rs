//! A TLS front for a test server: a certificate for 127.0.0.1 signed by a test CA (made by the `openssl` command), and a
//! listener that terminates TLS and passes the bytes to the server — as a reverse proxy in front of a team's
//! server would. Clients trust the certificate through `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Makes `ca.pem` (trusted by clients), and `cert.pem` + `key.pem` for 127.0.0.1, signed by it.
const CERTIFICATES: &str = "set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=omnigent test CA' -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out leaf.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile leaf.ext -out cert.pem";

/// A running TLS front: `url` is `https://127.0.0.1:<port>`, `certificate` the CA (PEM) clients must trust.
pub struct TlsFront {
    pub url: String,
    pub certificate: PathBuf,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self._task.abort();
    }
}

/// Starts a TLS front (its files in `dir`) for the plain-HTTP server at `backend` (`127.0.0.1:<port>`).
pub async fn front(dir: &Path, backend: &str) -> TlsFront {
    // A CA, and a certificate for 127.0.0.1 it signs (verifiers refuse a self-signed CA as the server's own).
    let made = std::process::Command::new("sh").current_dir(dir).args(["-c", CERTIFICATES]).output().expect("run sh");
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    let (certificate, leaf, key) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&leaf).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let backend = backend.to_string();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else { return };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront { url, certificate, _task: task }
}
