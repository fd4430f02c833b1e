//! A small pool of PostgreSQL connections: a checked-out connection goes back to the
//! pool when dropped unless it was closed (the backend was killed, the server
//! restarted), so the next checkout connects afresh instead of failing. At most
//! [`MAX_OPEN`] are open at once: a busy cloud waits for a connection rather than
//! exhausting the server's `max_connections` (100 by default).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};

use postgres::{Client, Config, NoTls, Statement};

use crate::error::{Error, Result};
use crate::store::lock;

/// Connections kept open between operations: a search uses one per core, an ingest
/// or upload one each.
const MAX_IDLE: usize = 16;

/// Connections open at once, idle or checked out (the store's lock holder aside).
pub const MAX_OPEN: usize = 48;

pub(crate) struct Pool {
    config: Config,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    /// Idle and checked out.
    open: usize,
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
            state: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
        }
    }

    /// A new connection, outside the pool (the store's lock holder).
    pub(crate) fn connect(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|e| database("connect", &e))
    }

    /// An open connection: an idle one, a new one, or (with [`MAX_OPEN`] out) the
    /// next one returned. Hold one at a time: a thread waiting for a second while
    /// holding one could wait for itself.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let mut state = lock(&self.state);
        loop {
            if let Some(connection) = state.idle.pop() {
                if connection.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    pool: self,
                    connection: Some(connection),
                });
            }
            if state.open < MAX_OPEN {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Pooled {
                        pool: self,
                        connection: Some(Connection {
                            client,
                            statements: HashMap::new(),
                        }),
                    }),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `query` on a connection; if that connection turns out closed (a backend
    /// killed, a server restarted), once more on a new one. Only for what is safe to
    /// repeat: reads.
    pub(crate) fn reading<T>(
        &self,
        action: &'static str,
        query: impl Fn(&mut Pooled<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let first = query(&mut self.get()?);
        match first {
            Err(e) if e.is_closed() => query(&mut self.get()?),
            other => other,
        }
        .map_err(|e| database(action, &e))
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
        if let Some(connection) = self.connection.take() {
            let mut state = lock(&self.pool.state);
            if !connection.client.is_closed() && state.idle.len() < MAX_IDLE {
                state.idle.push(connection);
            } else {
                state.open -= 1;
            }
            drop(state);
            self.pool.returned.notify_one();
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
