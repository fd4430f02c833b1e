//! PostgreSQL servers for the tests: the one `MEDVAULT_TEST_PG` names (`.ci/run`
//! starts it), or a throwaway cluster this process starts with `.ci/pg-cluster` and
//! that stops when the process exits. Without either, a test fails saying so: a
//! PostgreSQL test never passes by not running.
//!
//! Shared by the library's unit tests and the integration tests (`#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL server the tests may use.
pub struct TestServer {
    /// Its connection string, without a database name.
    pub conninfo: String,
    /// Its cluster directory, if this process started it (it can then be restarted).
    pub dir: Option<PathBuf>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(".ci/pg-cluster"))
        .find(|path| path.exists())
        .expect(".ci/pg-cluster in the repository")
}

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// A new cluster of this process's own, stopped and removed when the process exits
/// (or when [`TestServer::stop`] is called).
pub fn private_cluster() -> TestServer {
    let dir = std::env::temp_dir().join(format!(
        "medvault-pg-{}-{}",
        std::process::id(),
        CLUSTERS.fetch_add(1, Ordering::SeqCst)
    ));
    let output = Command::new(script())
        .arg("start")
        .arg(&dir)
        .arg(std::process::id().to_string())
        .output()
        .expect("run .ci/pg-cluster");
    assert!(
        output.status.success(),
        "PostgreSQL is needed for this test: set MEDVAULT_TEST_PG to a server's connection \
         string, or install PostgreSQL 15 or newer (Debian: apt-get install postgresql \
         postgresql-contrib) so the tests start their own.\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    TestServer {
        conninfo: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        dir: Some(dir),
    }
}

/// The server the tests share: `MEDVAULT_TEST_PG`, or a cluster started once per
/// process.
pub fn shared() -> &'static TestServer {
    static SHARED: OnceLock<TestServer> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var("MEDVAULT_TEST_PG") {
        Ok(conninfo) if !conninfo.trim().is_empty() => TestServer {
            conninfo,
            dir: None,
        },
        _ => private_cluster(),
    })
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl TestServer {
    /// A connection to its `postgres` database.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!("{} dbname=postgres", self.conninfo),
            postgres::NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL ({}): {e}", self.conninfo))
    }

    /// A new, empty database; returns its connection string.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "medvault_test_{}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        format!("{} dbname={name}", self.conninfo)
    }

    /// Restarts the server as after a crash (`pg_ctl stop -m immediate`, then start).
    pub fn restart(&self) {
        let dir = self.dir.as_ref().expect("a cluster of this process");
        let status = Command::new(script())
            .arg("restart")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "restart the test cluster");
    }

    /// Stops the server and removes its cluster.
    pub fn stop(&self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new(script()).arg("stop").arg(dir).status();
        }
    }

    /// Terminates every backend serving `database` except this connection's: what an
    /// operator's `pg_terminate_backend`, or the backend crashing, does to a client.
    pub fn kill_backends(&self, database: &str) -> i64 {
        let dbname = database
            .split_whitespace()
            .find_map(|part| part.strip_prefix("dbname="))
            .expect("a connection string with a dbname");
        self.admin()
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&dbname],
            )
            .unwrap()
            .get(0)
    }
}

/// Drops the database `database` names (its connections are closed first).
pub fn drop_database(server: &TestServer, database: &str) {
    let dbname = database
        .split_whitespace()
        .find_map(|part| part.strip_prefix("dbname="))
        .expect("a connection string with a dbname");
    server
        .admin()
        .batch_execute(&format!("DROP DATABASE {dbname} WITH (FORCE)"))
        .unwrap();
}

/// The `postgresql://` URL of a libpq connection string `host=DIR port=N user=U
/// dbname=D` on a Unix socket (the form `medvault-server --store` and the demo take).
pub fn url_of(conninfo: &str) -> String {
    let part = |key: &str| {
        conninfo
            .split_whitespace()
            .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{key} in {conninfo}"))
    };
    let host: String = part("host")
        .bytes()
        .map(|b| match b {
            b'/' => "%2F".to_owned(),
            b => (b as char).to_string(),
        })
        .collect();
    format!(
        "postgresql://{}@{host}:{}/{}",
        part("user"),
        part("port"),
        part("dbname")
    )
}
