//! A small pool of PostgreSQL connections: a checked-out connection goes back to the
//! pool when dropped unless it was closed (the backend was killed, the server
//! restarted), so the next checkout connects afresh instead of failing.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use postgres::{Client, Config, NoTls};

use crate::error::{Error, Result};
use crate::store::lock;

/// Connections kept open between operations: a search uses one per core, an ingest
/// or upload one each.
const MAX_IDLE: usize = 16;

pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Self {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A new connection, outside the pool (the store's lock holder).
    pub(crate) fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| database("connect", &e))
    }

    /// An open connection: an idle one, or a new one.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        loop {
            let Some(client) = lock(&self.idle).pop() else {
                break;
            };
            if !client.is_closed() {
                return Ok(Pooled {
                    pool: self,
                    client: Some(client),
                });
            }
        }
        Ok(Pooled {
            pool: self,
            client: Some(self.connect()?),
        })
    }
}

/// A connection checked out of a [`Pool`].
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

// `client` is `Some` from checkout until `drop` takes it, so these never fail.
#[allow(clippy::expect_used)]
impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

#[allow(clippy::expect_used)]
impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            let mut idle = lock(&self.pool.idle);
            if idle.len() < MAX_IDLE {
                idle.push(client);
            }
        }
    }
}

/// The typed error of a failed database operation: the server's SQLSTATE and message
/// (never its detail, which can quote values), or the connection's error.
pub(crate) fn database(action: &'static str, e: &postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::Database {
            action,
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        None => Error::Database {
            action,
            code: String::new(),
            message: e.to_string(),
        },
    }
}

/// True if `e` is the server refusing a duplicate key (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}
