//! go-plugin's side of the plugin protocol: how Terraform starts, trusts and stops a provider.
//!
//! - Terraform starts the binary with `TF_PLUGIN_MAGIC_COOKIE` (anything else is a person running
//!   it by hand: we say so and exit), `PLUGIN_PROTOCOL_VERSIONS`, `PLUGIN_MIN_PORT`/`MAX_PORT`
//!   and `PLUGIN_CLIENT_CERT` (AutoMTLS; absent when the user set `TF_DISABLE_PLUGIN_TLS`).
//! - We listen on 127.0.0.1, print exactly one line on stdout,
//!   `1|6|tcp|127.0.0.1:PORT|grpc|CERT` (CERT = our leaf certificate, DER, base64 without padding),
//!   and serve gRPC over TLS 1.2/1.3 with ALPN `h2`, requiring Terraform's client certificate to be
//!   byte-for-byte the one it gave us (its handshake signature is checked with aws-lc-rs's
//!   algorithms, which include ECDSA P-521/SHA-512; ring's do not).
//! - Besides the provider we serve `grpc.health.v1.Health` ("plugin"), `plugin.GRPCController`
//!   (Shutdown exits promptly, so Terraform does not wait 2 s per process), `plugin.GRPCStdio`
//!   and a minimal `plugin.GRPCBroker`.
//! - When Terraform dies without stopping us (killed), we stop the engine at its next safe point
//!   and exit within seconds (`crate::lifecycle`).
//! - `--debug` serves without the cookie and TLS and prints `TF_REATTACH_PROVIDERS` for the user.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use futures::{Stream, StreamExt};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin as goplugin;
use crate::proto::tfplugin6::provider_server::{Provider, ProviderServer};

/// The cookie Terraform sets for its providers.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// Its value (the same for every Terraform provider).
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The provider address used in `TF_REATTACH_PROVIDERS`.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/certifyclouds/rotor";
/// The plugin protocol version we speak.
pub const PROTOCOL_VERSION: u32 = 6;

/// What the process was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Started by Terraform (or OpenTofu).
    Managed {
        /// Terraform's client certificate (PEM); `None` when plugin TLS is disabled.
        client_cert_pem: Option<String>,
        /// Port range to listen in (`0..=0` means any).
        min_port: u16,
        /// Upper end of the port range.
        max_port: u16,
    },
    /// `--debug`: started by a person, who attaches Terraform with `TF_REATTACH_PROVIDERS`.
    Debug,
}

/// The message printed when someone runs the binary by hand.
pub const RUN_BY_HAND: &str = "This binary is a plugin. These are not meant to be executed directly.\n\
terraform-provider-rotor is started by Terraform (or OpenTofu) when a configuration uses the \
`certifyclouds/rotor` provider: run `terraform init` and `terraform plan` instead.\n\
To debug the provider, run it with `--debug` and set the TF_REATTACH_PROVIDERS it prints.";

/// Reads the launch parameters go-plugin passes. `Err` is a message for the user.
pub fn launch_from_env(get: impl Fn(&str) -> Option<String>) -> Result<Launch, String> {
    if get(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(RUN_BY_HAND.to_string());
    }
    if let Some(versions) = get("PLUGIN_PROTOCOL_VERSIONS") {
        let speaks_6 = versions.split(',').any(|v| v.trim() == "6");
        if !versions.trim().is_empty() && !speaks_6 {
            return Err(format!(
                "starting terraform-provider-rotor: Terraform offers plugin protocol version(s) {versions}, \
                 but this provider speaks only version 6.\nhint: use Terraform 1.0 or later, or OpenTofu"
            ));
        }
    }
    let port = |key: &str| -> Result<u16, String> {
        match get(key).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                format!("starting terraform-provider-rotor: {key}=`{v}` is not a port number")
            }),
        }
    };
    let (min_port, max_port) = (port("PLUGIN_MIN_PORT")?, port("PLUGIN_MAX_PORT")?);
    if min_port > max_port {
        return Err(format!(
            "starting terraform-provider-rotor: PLUGIN_MIN_PORT ({min_port}) is above PLUGIN_MAX_PORT ({max_port})"
        ));
    }
    let tls_disabled = get("TF_DISABLE_PLUGIN_TLS").is_some_and(|v| !v.is_empty());
    let client_cert_pem = if tls_disabled {
        None
    } else {
        get("PLUGIN_CLIENT_CERT").filter(|v| !v.trim().is_empty())
    };
    Ok(Launch::Managed {
        client_cert_pem,
        min_port,
        max_port,
    })
}

/// The handshake line (without the newline).
pub fn handshake_line(addr: SocketAddr, cert_der: Option<&[u8]>) -> String {
    let cert = cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("1|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert}")
}

/// The `TF_REATTACH_PROVIDERS` value for a provider listening on `addr`.
pub fn reattach_json(addr: SocketAddr, pid: u32) -> String {
    serde_json::json!({
        PROVIDER_ADDRESS: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": {"Network": "tcp", "String": addr.to_string()},
        }
    })
    .to_string()
}

/// A self-signed server certificate for `localhost` (go-plugin checks `ServerName: "localhost"`).
pub struct ServerCert {
    /// DER of the leaf certificate (printed in the handshake line).
    pub der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl ServerCert {
    /// Generates a fresh ECDSA P-256 certificate (ring: fast first use).
    pub fn generate() -> anyhow::Result<ServerCert> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the plugin TLS key")?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .context("preparing the plugin TLS certificate")?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "terraform-provider-rotor");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(365 * 30);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .self_signed(&key)
            .context("signing the plugin TLS certificate")?;
        Ok(ServerCert {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// Accepts exactly one client certificate (Terraform's), compared byte for byte, and checks the
/// handshake signature with aws-lc-rs's algorithms (P-521/SHA-512 included).
#[derive(Debug)]
pub struct ExactClientCert {
    expected: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ExactClientCert {
    /// A verifier that accepts only `expected`.
    pub fn new(expected: CertificateDer<'static>) -> Self {
        ExactClientCert {
            expected,
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        }
    }

    /// Parses the PEM Terraform passes in `PLUGIN_CLIENT_CERT`.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let mut reader = pem.as_bytes();
        let mut certs = rustls_pemfile::certs(&mut reader);
        let first = certs
            .next()
            .ok_or_else(|| anyhow!("reading PLUGIN_CLIENT_CERT: no PEM certificate in it"))?
            .context("reading PLUGIN_CLIENT_CERT")?;
        Ok(Self::new(first))
    }
}

impl ClientCertVerifier for ExactClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls server configuration for AutoMTLS.
pub fn tls_config(
    cert: &ServerCert,
    client_cert_pem: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let verifier = ExactClientCert::from_pem(client_cert_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .context("configuring plugin TLS versions")?
    .with_client_cert_verifier(Arc::new(verifier))
    .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
    .context("configuring the plugin TLS certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A connection, plain or TLS.
pub enum Conn {
    /// `TF_DISABLE_PLUGIN_TLS` or `--debug`.
    Plain(TcpStream),
    /// AutoMTLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

async fn bind(min_port: u16, max_port: u16) -> anyhow::Result<TcpListener> {
    let mut last_err = None;
    for port in min_port..=max_port {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(anyhow!(
        "listening on 127.0.0.1 (ports {min_port}-{max_port}): {}",
        last_err
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no port in range".into())
    ))
}

/// Accepted connections: TCP_NODELAY set, TLS handshakes run off the accept loop.
fn incoming(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Conn, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accepting a plugin connection: {e}");
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("setting TCP_NODELAY: {e}");
            }
            let tx = tx.clone();
            match &tls {
                None => {
                    if tx.send(Ok(Conn::Plain(stream))).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(s) => {
                                let _ = tx.send(Ok(Conn::Tls(Box::new(s)))).await;
                            }
                            // Terraform may open a connection and close it unused at shutdown.
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                tracing::debug!(
                                    "plugin connection from {peer} closed before the TLS handshake"
                                )
                            }
                            Err(e) => {
                                tracing::warn!("plugin TLS handshake with {peer} failed: {e}")
                            }
                        }
                    });
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Resolves when `shutdown` turns true.
async fn until_shutdown(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// A stream that stays open (sending nothing) until shutdown.
fn open_until_shutdown<T: Send + 'static>(shutdown: watch::Receiver<bool>) -> BoxStream<T> {
    Box::pin(futures::stream::once(until_shutdown(shutdown)).filter_map(|_| async { None }))
}

struct Controller {
    shutdown: watch::Sender<bool>,
    debug: bool,
}

#[tonic::async_trait]
impl goplugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        if self.debug {
            tracing::info!("Terraform asked the provider to shut down; staying up in --debug mode");
        } else {
            tracing::debug!("shutdown requested by Terraform");
            let _ = self.shutdown.send(true);
        }
        Ok(Response::new(goplugin::Empty {}))
    }
}

struct Stdio {
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl goplugin::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<BoxStream<goplugin::StdioData>>, Status> {
        // We never write to stdout after the handshake and log to stderr directly (Terraform
        // reads it), so the stream carries nothing; it stays open as go-plugin expects.
        Ok(Response::new(open_until_shutdown(self.shutdown.clone())))
    }
}

struct Broker {
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl goplugin::grpc_broker_server::GrpcBroker for Broker {
    async fn start_stream(
        &self,
        request: Request<Streaming<goplugin::ConnInfo>>,
    ) -> Result<Response<BoxStream<goplugin::ConnInfo>>, Status> {
        // The provider opens no sub-connections; drain what Terraform sends.
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            while let Some(Ok(info)) = inbound.next().await {
                tracing::trace!("broker message for service {}", info.service_id);
            }
        });
        Ok(Response::new(open_until_shutdown(self.shutdown.clone())))
    }
}

/// Serves `provider` the way go-plugin expects, until Terraform asks it to shut down.
/// Writes the handshake line (or, in debug mode, the reattach instructions) to `out`.
pub async fn serve<P: Provider>(
    provider: P,
    launch: Launch,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let debug = launch == Launch::Debug;
    let (min_port, max_port, client_cert_pem) = match &launch {
        Launch::Managed {
            client_cert_pem,
            min_port,
            max_port,
        } => (*min_port, *max_port, client_cert_pem.clone()),
        Launch::Debug => (0, 0, None),
    };
    let listener = bind(min_port, max_port).await?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;

    let (tls, cert_der) = match client_cert_pem {
        Some(pem) => {
            let cert = ServerCert::generate()?;
            let config = tls_config(&cert, &pem)?;
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(cert.der.to_vec()),
            )
        }
        None => (None, None),
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;

    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health_service)
        .add_service(goplugin::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown_tx.clone(),
                debug,
            },
        ))
        .add_service(goplugin::grpc_stdio_server::GrpcStdioServer::new(Stdio {
            shutdown: shutdown_rx.clone(),
        }))
        .add_service(goplugin::grpc_broker_server::GrpcBrokerServer::new(
            Broker {
                shutdown: shutdown_rx.clone(),
            },
        ))
        .add_service(
            ProviderServer::new(provider)
                .max_decoding_message_size(256 * 1024 * 1024)
                .max_encoding_message_size(256 * 1024 * 1024),
        );

    if debug {
        let reattach = reattach_json(addr, std::process::id());
        writeln!(
            out,
            "Provider started. To attach Terraform CLI, set the TF_REATTACH_PROVIDERS environment variable with the following:\n\n\
             \tCommand Prompt:\tset \"TF_REATTACH_PROVIDERS={reattach}\"\n\
             \tPowerShell:\t$env:TF_REATTACH_PROVIDERS='{reattach}'\n\
             \tBash:\t\texport TF_REATTACH_PROVIDERS='{reattach}'\n"
        )?;
        out.flush()?;
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
    } else {
        writeln!(out, "{}", handshake_line(addr, cert_der.as_deref()))?;
        out.flush()?;
        // Terraform forwards Ctrl-C to the whole process group and then stops us through
        // StopProvider / Shutdown; like go-plugin servers, we do not die on SIGINT ourselves.
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                tracing::debug!("interrupt received; waiting for Terraform to stop the provider");
            }
        });
        // If Terraform dies without shutting us down (killed), do not go on changing Azure and
        // do not linger as an orphan: stop the engine at its next safe point, then exit
        // (crate::lifecycle).
        let ancestry = crate::lifecycle::Ancestry::current();
        let tx = shutdown_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(why) = ancestry.gone() {
                    crate::lifecycle::mark_terraform_gone();
                    tracing::warn!(
                        "{why}; stopping at the next safe point and exiting (the next apply resumes)"
                    );
                    crate::lifecycle::wait_idle(crate::lifecycle::STOP_GRACE).await;
                    let _ = tx.send(true);
                    return;
                }
            }
        });
    }
    tracing::debug!(%addr, tls = cert_der.is_some(), "plugin server listening");

    let signal_rx = shutdown_rx.clone();
    let server =
        router.serve_with_incoming_shutdown(incoming(listener, tls), until_shutdown(signal_rx));
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("serving the plugin protocol")?,
        _ = async {
            until_shutdown(shutdown_rx.clone()).await;
            // Give the Shutdown response time to reach Terraform, but never hold the process:
            // Terraform waits for us to exit.
            tokio::time::sleep(Duration::from_millis(250)).await;
        } => {}
    }
    if !*shutdown_rx.borrow() {
        bail!("the plugin server stopped unexpectedly");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn refuses_to_run_by_hand() {
        let e = launch_from_env(env(vec![])).expect_err("no cookie");
        assert!(e.contains("plugin"), "{e}");
        assert!(e.contains("terraform"), "{e}");
    }

    #[test]
    fn reads_go_plugin_variables() {
        let l = launch_from_env(env(vec![
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE.into()),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6".into()),
            ("PLUGIN_MIN_PORT", "10000".into()),
            ("PLUGIN_MAX_PORT", "25000".into()),
            ("PLUGIN_CLIENT_CERT", "PEM".into()),
        ]))
        .expect("launch");
        assert_eq!(
            l,
            Launch::Managed {
                client_cert_pem: Some("PEM".into()),
                min_port: 10000,
                max_port: 25000
            }
        );
        let l = launch_from_env(env(vec![
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE.into()),
            ("PLUGIN_CLIENT_CERT", "PEM".into()),
            ("TF_DISABLE_PLUGIN_TLS", "1".into()),
        ]))
        .expect("launch");
        assert!(matches!(
            l,
            Launch::Managed {
                client_cert_pem: None,
                ..
            }
        ));
        let e = launch_from_env(env(vec![
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE.into()),
            ("PLUGIN_PROTOCOL_VERSIONS", "5".into()),
        ]))
        .expect_err("protocol 5 only");
        assert!(e.contains("version 6"), "{e}");
    }

    #[test]
    fn handshake_line_uses_unpadded_base64() {
        let addr: SocketAddr = "127.0.0.1:1234".parse().expect("addr");
        // 4 bytes would need padding in standard base64
        assert_eq!(
            handshake_line(addr, Some(&[1, 2, 3, 4])),
            "1|6|tcp|127.0.0.1:1234|grpc|AQIDBA"
        );
        assert_eq!(handshake_line(addr, None), "1|6|tcp|127.0.0.1:1234|grpc|");
    }

    #[test]
    fn reattach_names_the_provider() {
        let addr: SocketAddr = "127.0.0.1:1234".parse().expect("addr");
        let v: serde_json::Value = serde_json::from_str(&reattach_json(addr, 42)).expect("json");
        assert_eq!(v[PROVIDER_ADDRESS]["ProtocolVersion"], 6);
        assert_eq!(v[PROVIDER_ADDRESS]["Addr"]["String"], "127.0.0.1:1234");
    }

    #[test]
    fn client_verifier_accepts_only_the_given_certificate_and_p521() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let mine = params.self_signed(&key).expect("cert");
        let other = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let v = ExactClientCert::from_pem(&mine.pem()).expect("verifier");
        assert!(
            v.verify_client_cert(mine.der(), &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            v.verify_client_cert(other.der(), &[], UnixTime::now())
                .is_err()
        );
        assert!(
            v.supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
        );
        assert!(v.client_auth_mandatory());
    }

    #[test]
    fn server_certificate_names_localhost() {
        let cert = ServerCert::generate().expect("cert");
        // the DNS SAN "localhost" appears in the DER
        let der = cert.der.as_ref();
        assert!(der.windows(9).any(|w| w == b"localhost"));
    }
}
