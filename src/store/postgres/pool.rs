//! A small pool of PostgreSQL connections: a checked-out connection goes back to the
//! pool when dropped unless it was closed (the backend was killed, the server
//! restarted), so the next checkout connects afresh instead of failing.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use postgres::{Client, Config, NoTls, Statement};

use crate::error::{Error, Result};
use crate::store::lock;

/// Connections kept open between operations: a search uses one per core, an ingest
/// or upload one each.
const MAX_IDLE: usize = 16;

pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Connection>>,
}

/// A connection and the statements prepared on it.
struct Connection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
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
            let Some(connection) = lock(&self.idle).pop() else {
                break;
            };
            if !connection.client.is_closed() {
                return Ok(Pooled {
                    pool: self,
                    connection: Some(connection),
                });
            }
        }
        Ok(Pooled {
            pool: self,
            connection: Some(Connection {
                client: self.connect()?,
                statements: HashMap::new(),
            }),
        })
    }
}

/// A connection checked out of a [`Pool`].
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    connection: Option<Connection>,
}

impl Pooled<'_> {
    /// `sql` prepared on this connection, once: a search's lookups then cost one round
    /// trip each instead of two (parse, then execute).
    pub(crate) fn prepared(
        &mut self,
        sql: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        let connection = self.connection_mut();
        if let Some(statement) = connection.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = connection.client.prepare(sql)?;
        connection.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    // `connection` is `Some` from checkout until `drop` takes it: these never fail.
    #[allow(clippy::expect_used)]
    fn connection_mut(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("present until dropped")
    }
}

#[allow(clippy::expect_used)]
impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self
            .connection
            .as_ref()
            .expect("present until dropped")
            .client
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.connection_mut().client
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && !connection.client.is_closed()
        {
            let mut idle = lock(&self.pool.idle);
            if idle.len() < MAX_IDLE {
                idle.push(connection);
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
