//! `medvault-server`: medvault's key-less cloud as an HTTPS service.
//!
//! ```text
//! medvault-server --store DIR|postgres://… [--listen 127.0.0.1:8443]
//!                 (--cert CERT.pem --key KEY.pem | --dev-self-signed CERT_DIR)
//!                 [--admin-password-file FILE] [--max-uploads N] [--idle-timeout SECS]
//!                 [--merge-interval SECS]
//! ```
//!
//! It serves a `Cloud` on the directory store `DIR` (accounts in `DIR/accounts.json`),
//! or on the PostgreSQL store in the database a `postgres://` or `postgresql://` URL
//! names (accounts in its `medvault_server_accounts` table), over TLS (rustls; HTTP/1.1 and HTTP/2). `--dev-self-signed` writes a certificate for
//! `localhost` and `127.0.0.1` to `CERT_DIR/cert.pem` (what clients trust) and its key
//! beside it, for a machine with nothing set up. `--admin-password-file` creates the
//! `admin` account from the file's first line if there is no admin yet. Slow clients
//! are cut off: a TLS handshake and a request's headers must arrive within
//! `--idle-timeout` seconds (default 10), each piece of a record upload within six
//! times that; at most `--max-uploads` record uploads (default 32) run at once, more get
//! `503 busy`. `--merge-interval` merges the index every SECS seconds when it has more
//! than one segment (otherwise the admin merges with `POST /v1/admin/merge`). Prometheus
//! metrics are at `/metrics`; each request is logged (method, route template, status,
//! time) to stderr, filtered by `RUST_LOG`. It prints
//! `listening on https://ADDR` once it accepts connections (port 0 picks a free one),
//! and stops on SIGTERM or Ctrl-C, letting requests in flight finish.

#![forbid(unsafe_code)]

mod accounts;
mod api;
mod metrics;
mod stall;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medvault::Cloud;
use medvault::remote::Role;

const USAGE: &str = "usage: medvault-server --store DIR|postgres://URL [--listen ADDR] \
(--cert CERT.pem --key KEY.pem | --dev-self-signed CERT_DIR) [--admin-password-file FILE] \
[--max-uploads N] [--idle-timeout SECS] [--merge-interval SECS]";

struct Args {
    store: Location,
    listen: SocketAddr,
    tls: Tls,
    admin_password_file: Option<PathBuf>,
    max_uploads: usize,
    idle_timeout: Duration,
    merge_interval: Option<Duration>,
}

/// Where the cloud and the accounts are kept.
enum Location {
    Directory(PathBuf),
    Postgres(String),
}

impl Location {
    fn parse(value: String) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Location::Postgres(value)
        } else {
            Location::Directory(PathBuf::from(value))
        }
    }

    /// The cloud and the accounts, opened (blocking: call off the async threads).
    fn open(&self) -> Result<(Cloud, accounts::Accounts), String> {
        match self {
            Location::Directory(dir) => Ok((
                Cloud::open(dir).map_err(|e| format!("store: {e}"))?,
                accounts::Accounts::open(dir).map_err(|e| format!("accounts: {e}"))?,
            )),
            // The URL is not repeated in errors: it may hold a password.
            Location::Postgres(url) => Ok((
                Cloud::from(medvault::PgStore::open(url).map_err(|e| format!("store: {e}"))?),
                accounts::Accounts::open_postgres(url).map_err(|e| format!("accounts: {e}"))?,
            )),
        }
    }
}

enum Tls {
    Files { cert: PathBuf, key: PathBuf },
    DevSelfSigned(PathBuf),
}

/// The value of `flag`, a positive whole number.
fn positive(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(format!("{flag}: a positive number, not {value:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut store, mut listen, mut cert, mut key, mut dev, mut admin) =
        (None, None, None, None, None, None);
    let (mut max_uploads, mut idle_secs, mut merge_secs) = (32usize, 10u64, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--store" => store = Some(Location::parse(value()?)),
            "--listen" => {
                listen = Some(
                    value()?
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen: {e}"))?,
                )
            }
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--dev-self-signed" => dev = Some(PathBuf::from(value()?)),
            "--admin-password-file" => admin = Some(PathBuf::from(value()?)),
            "--max-uploads" => {
                max_uploads = usize::try_from(positive(&arg, &value()?)?)
                    .map_err(|_| "--max-uploads: too large".to_owned())?
            }
            "--idle-timeout" => idle_secs = positive(&arg, &value()?)?,
            "--merge-interval" => merge_secs = Some(positive(&arg, &value()?)?),
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let tls = match (cert, key, dev) {
        (Some(cert), Some(key), None) => Tls::Files { cert, key },
        (None, None, Some(dir)) => Tls::DevSelfSigned(dir),
        _ => {
            return Err(format!(
                "give --cert and --key, or --dev-self-signed\n{USAGE}"
            ));
        }
    };
    Ok(Args {
        store: store.ok_or(format!("--store is required\n{USAGE}"))?,
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
        tls,
        admin_password_file: admin,
        max_uploads,
        idle_timeout: Duration::from_secs(idle_secs),
        merge_interval: merge_secs.map(Duration::from_secs),
    })
}

/// Writes a self-signed certificate for localhost; returns (cert PEM, key PEM).
fn dev_certificate(dir: &std::path::Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("cert.pem"), &cert_pem).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("key.pem"), &key_pem).map_err(|e| e.to_string())?;
    Ok((cert_pem.into_bytes(), key_pem.into_bytes()))
}

async fn shutdown_signal(handle: axum_server::Handle<SocketAddr>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return,
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
    handle.graceful_shutdown(Some(Duration::from_secs(30)));
}

/// `--merge-interval`: merges the index whenever it has more than one segment.
async fn merge_every(interval: Duration, cloud: Arc<Cloud>, metrics: Arc<metrics::Metrics>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let cloud = cloud.clone();
        let merged = tokio::task::spawn_blocking(move || {
            if cloud.manifest().segments.len() > 1 {
                Some(cloud.merge())
            } else {
                None
            }
        })
        .await;
        match merged {
            Ok(None) => {}
            Ok(Some(Ok(()))) => {
                metrics.merged(true);
                tracing::info!("merged the index");
            }
            Ok(Some(Err(e))) => {
                metrics.merged(false);
                tracing::error!(error = %e, "merge failed");
            }
            Err(_) => {
                metrics.merged(false);
                tracing::error!("merge worker failed");
            }
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // ring, as the client (ureq) uses: aws-lc-rs would need cmake on a fresh machine.
    // (Deprecated only for lacking post-quantum key exchange.)
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_pem, key_pem) = match &args.tls {
        Tls::Files { cert, key } => (
            std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?,
            std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?,
        ),
        Tls::DevSelfSigned(dir) => dev_certificate(dir)?,
    };
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem, key_pem)
        .await
        .map_err(|e| format!("TLS certificate or key: {e}"))?;
    let (store, admin_file) = (args.store, args.admin_password_file.clone());
    let (cloud, accounts) = tokio::task::spawn_blocking(move || {
        let (cloud, accounts) = store.open()?;
        if let Some(file) = &admin_file
            && !accounts.has_role(Role::Admin)
        {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let password = text.lines().next().unwrap_or_default();
            accounts
                .register("admin", password, Role::Admin, None)
                .map_err(|e| format!("admin account: {e:?}"))?;
        }
        Ok::<_, String>((cloud, accounts))
    })
    .await
    .map_err(|e| format!("opening the store: {e}"))??;
    let state = api::AppState {
        cloud: Arc::new(cloud),
        accounts: Arc::new(accounts),
        uploads: Arc::new(tokio::sync::Semaphore::new(args.max_uploads)),
        piece_timeout: args.idle_timeout * 6,
        metrics: Arc::new(metrics::Metrics::default()),
    };
    if let Some(interval) = args.merge_interval {
        tokio::spawn(merge_every(
            interval,
            state.cloud.clone(),
            state.metrics.clone(),
        ));
    }
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener =
        std::net::TcpListener::bind(args.listen).map_err(|e| format!("{}: {e}", args.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_signal(handle.clone()));
    let idle = args.idle_timeout;
    let mut server = axum_server::from_tcp_rustls(listener, tls)
        .map_err(|e| e.to_string())?
        // TCP_NODELAY: a streamed answer's small pieces go out at once instead of
        // waiting (Nagle) for the client's delayed ACK, ~40 ms a response.
        .map(|acceptor| {
            acceptor
                .handshake_timeout(idle)
                .acceptor(axum_server::accept::NoDelayAcceptor::new())
        })
        .handle(handle);
    // A client that opens a connection and trickles its headers (slowloris) is cut
    // off; HTTP/2 connections are pinged and closed when they stop answering.
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle);
    server
        .http_builder()
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(idle)
        .keep_alive_timeout(idle);
    println!("listening on https://{addr}");
    server.serve(app).await.map_err(|e| e.to_string())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(run(args)) {
        eprintln!("medvault-server: {message}");
        std::process::exit(1);
    }
}
