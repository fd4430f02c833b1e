//! The paper's accounts: parties register and log in. Passwords are kept as Argon2id
//! hashes (salted, parameters stored with each hash); a login returns a random session
//! token that the server keeps only as its SHA-256, expiring and revocable. Failed
//! logins are limited per account and per address.
//!
//! Accounts are durable: `accounts.json` in the store directory (versioned, replaced
//! atomically by write, fsync, rename, directory fsync), or with a PostgreSQL store one
//! row per account in its database's `medvault_server_accounts` table (the same JSON
//! per account, committed before the call returns). Sessions live in memory: a
//! restarted server asks everyone to log in again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use medvault::remote::{Role, hex, unhex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How long a session token is valid.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Failed logins allowed per account, and per address, within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
const FILE_VERSION: u32 = 1;

/// One account as stored.
#[derive(Clone, Serialize, Deserialize)]
struct Account {
    role: Role,
    /// `argon2id$<m>$<t>$<p>$<salt hex>$<hash hex>`.
    password: String,
    /// A requester's encryption-key fingerprint (its grant mailbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AccountsFile {
    version: u32,
    accounts: BTreeMap<String, Account>,
}

/// Who is calling, from a valid session.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account name (a provider's is its provider id).
    pub account: String,
    /// Its role.
    pub role: Role,
    /// A requester's mailbox fingerprint.
    pub fingerprint: Option<[u8; 32]>,
}

struct Session {
    caller: Caller,
    expires: Instant,
}

/// Why an account operation failed.
#[derive(Debug)]
pub enum AccountError {
    /// Name taken.
    Exists,
    /// Name, password, role or fingerprint unacceptable (the message says which).
    Invalid(&'static str),
    /// Wrong account or password (never says which).
    BadLogin,
    /// Too many failed logins; retry later.
    Limited,
    /// The accounts file could not be written.
    Io(std::io::Error),
}

struct State {
    accounts: BTreeMap<String, Account>,
    sessions: HashMap<[u8; 32], Session>,
    failures: HashMap<String, (u32, Instant)>,
}

/// Where accounts are kept.
enum Keeper {
    /// `accounts.json` in the store directory.
    File(PathBuf),
    /// The `medvault_server_accounts` table of the store's database; reconnected when
    /// the connection dropped.
    Table(Box<AccountsTable>),
}

struct AccountsTable {
    config: postgres::Config,
    client: Mutex<Option<postgres::Client>>,
}

/// The server's accounts and sessions.
pub struct Accounts {
    keeper: Keeper,
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hash_password(password: &[u8], salt: &[u8; 16]) -> Result<[u8; 32], AccountError> {
    let params = argon2::Params::default();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, salt, &mut out)
        .map_err(|_| AccountError::Invalid("password"))?;
    Ok(out)
}

fn stored_hash(password: &[u8]) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| AccountError::Io(std::io::Error::other("random")))?;
    let p = argon2::Params::default();
    let hash = hash_password(password, &salt)?;
    Ok(format!(
        "argon2id${}${}${}${}${}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost(),
        hex(&salt),
        hex(&hash)
    ))
}

/// True if `password` matches `stored` (constant-time comparison of the hashes).
fn check_password(stored: &str, password: &[u8]) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let ["argon2id", m, t, p, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Ok(m), Ok(t), Ok(p)) = (m.parse(), t.parse(), p.parse()) else {
        return false;
    };
    let (Some(salt), Some(want)) = (unhex::<16>(salt), unhex::<32>(hash)) else {
        return false;
    };
    let Ok(params) = argon2::Params::new(m, t, p, Some(32)) else {
        return false;
    };
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut got = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(password, &salt, &mut *got).is_ok() && bool::from(got.ct_eq(&want))
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Accounts {
    /// The accounts kept in `dir/accounts.json` (none if it does not exist yet).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("accounts.json");
        let accounts = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: AccountsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::other(format!("accounts.json: {e}")))?;
                if file.version != FILE_VERSION {
                    return Err(std::io::Error::other(format!(
                        "accounts.json: unsupported version {}",
                        file.version
                    )));
                }
                file.accounts
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Accounts::with(Keeper::File(path), accounts))
    }

    fn with(keeper: Keeper, accounts: BTreeMap<String, Account>) -> Self {
        Accounts {
            keeper,
            state: Mutex::new(State {
                accounts,
                sessions: HashMap::new(),
                failures: HashMap::new(),
            }),
        }
    }

    /// The accounts kept in the `medvault_server_accounts` table of the PostgreSQL
    /// database at `url` (created if missing).
    pub fn open_postgres(url: &str) -> std::io::Result<Self> {
        let config: postgres::Config = url.parse().map_err(std::io::Error::other)?;
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(std::io::Error::other)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS medvault_server_accounts (
                     account text PRIMARY KEY,
                     version integer NOT NULL,
                     entry text NOT NULL
                 )",
            )
            .map_err(std::io::Error::other)?;
        let mut accounts = BTreeMap::new();
        for row in client
            .query(
                "SELECT account, version, entry FROM medvault_server_accounts",
                &[],
            )
            .map_err(std::io::Error::other)?
        {
            let (name, version, entry): (String, i32, String) =
                (row.get(0), row.get(1), row.get(2));
            if version != FILE_VERSION as i32 {
                return Err(std::io::Error::other(format!(
                    "medvault_server_accounts: unsupported version {version}"
                )));
            }
            let account: Account = serde_json::from_str(&entry)
                .map_err(|e| std::io::Error::other(format!("medvault_server_accounts: {e}")))?;
            accounts.insert(name, account);
        }
        let keeper = Keeper::Table(Box::new(AccountsTable {
            config,
            client: Mutex::new(Some(client)),
        }));
        Ok(Accounts::with(keeper, accounts))
    }

    /// Keeps the new account `name` of `accounts` durably.
    fn save(&self, name: &str, accounts: &BTreeMap<String, Account>) -> Result<(), AccountError> {
        let path = match &self.keeper {
            Keeper::File(path) => path,
            Keeper::Table(table) => {
                let AccountsTable { config, client } = table.as_ref();
                let entry = serde_json::to_string(&accounts[name])
                    .map_err(|e| AccountError::Io(std::io::Error::other(e)))?;
                let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
                if client.as_ref().is_none_or(postgres::Client::is_closed) {
                    *client = Some(
                        config
                            .connect(postgres::NoTls)
                            .map_err(|e| AccountError::Io(std::io::Error::other(e)))?,
                    );
                }
                let inserted = client.as_mut().map(|c| {
                    c.execute(
                        "INSERT INTO medvault_server_accounts (account, version, entry)
                         VALUES ($1, $2, $3)",
                        &[&name, &(FILE_VERSION as i32), &entry],
                    )
                });
                return match inserted {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e))
                        if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) =>
                    {
                        Err(AccountError::Exists)
                    }
                    Some(Err(e)) => Err(AccountError::Io(std::io::Error::other(e))),
                    None => Err(AccountError::Io(std::io::Error::other("no connection"))),
                };
            }
        };
        let file = AccountsFile {
            version: FILE_VERSION,
            accounts: accounts.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| AccountError::Io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(AccountError::Io)
    }

    /// Registers an account; a requester gives its mailbox fingerprint, a provider's
    /// name must be a valid provider id. Durable when it returns.
    pub fn register(
        &self,
        name: &str,
        password: &str,
        role: Role,
        fingerprint: Option<&str>,
    ) -> Result<(), AccountError> {
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AccountError::Invalid(
                "account name: 1-64 printable ASCII characters",
            ));
        }
        if password.len() < MIN_PASSWORD {
            return Err(AccountError::Invalid("password: at least 12 bytes"));
        }
        let fingerprint = match (role, fingerprint) {
            (Role::Requester, Some(fp)) if unhex::<32>(fp).is_some() => Some(fp.to_owned()),
            (Role::Requester, _) => {
                return Err(AccountError::Invalid(
                    "a requester account needs its encryption-key fingerprint (64 hex digits)",
                ));
            }
            (Role::Provider, None) => {
                medvault::ProviderId::new(name).map_err(|_| {
                    AccountError::Invalid("a provider account's name is its provider id")
                })?;
                None
            }
            (Role::Provider, Some(_)) => {
                return Err(AccountError::Invalid(
                    "a provider account has no fingerprint",
                ));
            }
            (Role::Admin, _) => None,
        };
        let password = stored_hash(password.as_bytes())?;
        let mut state = lock(&self.state);
        if state.accounts.contains_key(name) {
            return Err(AccountError::Exists);
        }
        let mut next = state.accounts.clone();
        next.insert(
            name.to_owned(),
            Account {
                role,
                password,
                fingerprint,
            },
        );
        self.save(name, &next)?;
        state.accounts = next;
        Ok(())
    }

    /// True if an account of `role` exists.
    pub fn has_role(&self, role: Role) -> bool {
        lock(&self.state).accounts.values().any(|a| a.role == role)
    }

    fn limited(state: &mut State, key: &str, now: Instant) -> bool {
        match state.failures.get(key) {
            Some(&(count, since)) if now.duration_since(since) < FAILURE_WINDOW => {
                count >= MAX_FAILURES
            }
            Some(_) => {
                state.failures.remove(key);
                false
            }
            None => false,
        }
    }

    fn fail(state: &mut State, key: String, now: Instant) {
        let entry = state.failures.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Checks a password and opens a session: its token and lifetime.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<(String, Duration), AccountError> {
        let now = Instant::now();
        let (by_account, by_address) = (format!("account:{name}"), format!("address:{from}"));
        let stored = {
            let mut state = lock(&self.state);
            if Self::limited(&mut state, &by_account, now)
                || Self::limited(&mut state, &by_address, now)
            {
                return Err(AccountError::Limited);
            }
            state.accounts.get(name).cloned()
        };
        // The hash is computed whether or not the account exists, so timing does not
        // tell which.
        let ok = match &stored {
            Some(account) => check_password(&account.password, password.as_bytes()),
            None => {
                let _ = hash_password(password.as_bytes(), &[0; 16]);
                false
            }
        };
        let mut state = lock(&self.state);
        let Some(account) = stored.filter(|_| ok) else {
            Self::fail(&mut state, by_account, now);
            Self::fail(&mut state, by_address, now);
            return Err(AccountError::BadLogin);
        };
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| AccountError::Io(std::io::Error::other("random")))?;
        let token = hex(&raw);
        state.sessions.retain(|_, s| s.expires > now);
        state.sessions.insert(
            token_key(&token),
            Session {
                caller: Caller {
                    account: name.to_owned(),
                    role: account.role,
                    fingerprint: account.fingerprint.as_deref().and_then(unhex::<32>),
                },
                expires: now + SESSION_TTL,
            },
        );
        Ok((token, SESSION_TTL))
    }

    /// The caller behind a session token, if it is valid.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let state = lock(&self.state);
        let session = state.sessions.get(&token_key(token))?;
        (session.expires > Instant::now()).then(|| session.caller.clone())
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) {
        lock(&self.state).sessions.remove(&token_key(token));
    }
}
