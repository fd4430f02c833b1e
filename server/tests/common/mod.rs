//! What the server tests share: a `medvault-server` started on a free loopback port, the
//! test identities, and small helpers.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use medvault::remote::{NewAccount, Role};
use medvault::{CloudService, DecryptionKey, Error, Identity, RemoteCloud, SigningKey};

pub mod load;

pub const ADMIN_PASSWORD: &str = "admin password for tests";
pub const PASSWORD: &str = "a long enough password";

pub fn identity(sign: &str, enc: &str) -> Identity {
    Identity::new(
        SigningKey::from_pkcs8_pem(sign).unwrap(),
        DecryptionKey::from_pkcs8_pem(enc).unwrap(),
    )
    .unwrap()
}

pub fn lab_identity() -> Identity {
    identity(
        include_str!("../../../tests/data/keys/provider-a-sign.pem"),
        include_str!("../../../tests/data/keys/provider-a-enc.pem"),
    )
}

pub fn doctor_identity() -> Identity {
    identity(
        include_str!("../../../tests/data/keys/doctor-sign.pem"),
        include_str!("../../../tests/data/keys/doctor-enc.pem"),
    )
}

/// A server on a free loopback port over `dir` (store, certificate, admin password).
pub struct Server {
    pub child: Child,
    pub url: String,
    pub ca: Vec<u8>,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(dir, dir.join("store").as_os_str(), extra)
    }

    /// A server on the store `store` (a directory or a PostgreSQL URL); certificate,
    /// admin password and log in `dir`.
    pub fn start_on(dir: &Path, store: &std::ffi::OsStr, extra: &[&str]) -> Server {
        std::fs::write(dir.join("admin-password"), ADMIN_PASSWORD).unwrap();
        // Its log (appended across restarts): `server_log` reads it.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_medvault-server"))
            .arg("--store")
            .arg(store)
            .args(["--listen", "127.0.0.1:0", "--dev-self-signed"])
            .arg(dir.join("tls"))
            .arg("--admin-password-file")
            .arg(dir.join("admin-password"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .to_owned();
        let ca = std::fs::read(dir.join("tls/cert.pem")).unwrap();
        Server { child, url, ca }
    }

    /// A plain HTTPS client trusting this server's certificate, that returns every
    /// status as a response (for requests `RemoteCloud` would not send).
    pub fn raw_agent(&self) -> ureq::Agent {
        let certs: Vec<_> = ureq::tls::parse_pem(&self.ca)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            )
            .http_status_as_error(false)
            .build()
            .new_agent()
    }

    pub fn connect(&self, account: &str, password: &str) -> medvault::Result<RemoteCloud> {
        RemoteCloud::connect(&self.url, &self.ca, account, password)
    }

    pub fn register(&self, account: &str, role: Role, fingerprint: Option<String>) {
        RemoteCloud::register_account(
            &self.url,
            &self.ca,
            &NewAccount {
                account: account.to_owned(),
                password: PASSWORD.to_owned(),
                role,
                fingerprint,
            },
        )
        .unwrap();
    }
}

/// (method, path template) of every route `server/src/api.rs` declares.
pub fn routes_in_source() -> std::collections::BTreeSet<(String, String)> {
    let source = include_str!("../../src/api.rs");
    let mut routes = std::collections::BTreeSet::new();
    for piece in source.split(".route(").skip(1) {
        let path = piece.split('"').nth(1).unwrap().to_owned();
        // The handlers of this route, up to the next route.
        let handlers = piece.split("\n        .").next().unwrap();
        for method in ["get", "post", "put", "delete", "patch"] {
            if handlers.contains(&format!("{method}(")) {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

impl Server {
    /// A provider `name` ready to upload: its account (registered here) and a session,
    /// the test lab's keys in the directory under `name`, and its `Provider` with a
    /// master key made from `seed`.
    pub fn provider(&self, name: &str, seed: u8) -> (RemoteCloud, medvault::Provider) {
        self.register(name, Role::Provider, None);
        let cloud = self.connect(name, PASSWORD).unwrap();
        let id = medvault::ProviderId::new(name).unwrap();
        let keys = lab_identity();
        cloud.register_provider(id.clone(), keys.public()).unwrap();
        let provider = medvault::Provider::new(
            id,
            medvault::MasterKey::from_bytes([seed; 32]),
            keys.signing.clone(),
        );
        (cloud, provider)
    }
}

/// The access round with the test identities: the doctor (session `doctor`) asks the
/// provider (the lab's keys, session `provider_cloud`) for `patient`'s records, the admin
/// approves, and the provider issues a grant valid for `seconds`, not yet posted. The
/// grant and the doctor's pending request.
pub fn approved_grant(
    doctor: &RemoteCloud,
    admin: &RemoteCloud,
    provider_cloud: &RemoteCloud,
    provider: &medvault::Provider,
    patient: &medvault::PatientId,
    seconds: u64,
) -> (medvault::Grant, medvault::PendingRequest) {
    let lab_keys = lab_identity();
    let (request, pending) = medvault::AccessRequest::create(
        &doctor_identity(),
        "Dr. Grey",
        provider.id(),
        &lab_keys.public().encryption,
        medvault::Scope::Patient(patient.clone()),
        "follow-up",
        now(),
    )
    .unwrap();
    let id = doctor.submit_request(request.to_bytes()).unwrap();
    admin.decide_request(id, true).unwrap();
    let opened = provider_cloud
        .approved_requests(provider.id())
        .unwrap()
        .into_iter()
        .find(|r| r.id() == request.id())
        .unwrap()
        .open(&lab_keys.decryption)
        .unwrap();
    let key = provider.key_for_scope(&opened.scope, None).unwrap();
    let grant = medvault::Grant::issue(&lab_keys, &opened, key, now(), seconds).unwrap();
    (grant, pending)
}

/// The system clock in unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the servers started over `dir` logged.
pub fn server_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn refused(result: medvault::Result<impl std::fmt::Debug>, code: &str) -> bool {
    matches!(&result, Err(Error::Remote { code: c, .. }) if c == code)
        || panic!("expected {code}, got {result:?}")
}
