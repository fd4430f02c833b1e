//! The broker journal (`MVBJ`, FORMAT.md "Broker journal"): the access requests,
//! decisions and grants the cloud acknowledged, in order, so its inbox and mailbox
//! survive a restart. One append-only file; each event is appended and fsynced before
//! the call that made it returns.
//!
//! A crash can leave only the last event incomplete (it was never acknowledged): on
//! open, an incomplete or unverifiable *last* event is cut off; any earlier damage is
//! [`Error::Corrupt`] naming the file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, IoAt, Result};
use crate::store::disk::Disk;

/// Magic bytes of the journal.
pub const JOURNAL_MAGIC: &[u8; 4] = b"MVBJ";
/// The journal format version.
pub const JOURNAL_VERSION: u8 = 1;
const HEADER: [u8; 6] = [b'M', b'V', b'B', b'J', JOURNAL_VERSION, 0];
/// Most bytes of one event's payload (a grant or request is a few KiB).
const MAX_PAYLOAD: usize = 1 << 20;

/// What the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A signed access request (`MVAQ`) entered the inbox.
    Request(Vec<u8>),
    /// The admin decided on a request.
    Decision {
        /// The request.
        id: [u8; 16],
        /// Approved or denied.
        approve: bool,
    },
    /// A signed, sealed grant (`MVGT`) entered the mailbox.
    Grant(Vec<u8>),
}

impl BrokerEvent {
    pub(crate) fn kind(&self) -> u8 {
        match self {
            BrokerEvent::Request(_) => 1,
            BrokerEvent::Decision { .. } => 2,
            BrokerEvent::Grant(_) => 3,
        }
    }

    pub(crate) fn payload(&self) -> Vec<u8> {
        match self {
            BrokerEvent::Request(bytes) | BrokerEvent::Grant(bytes) => bytes.clone(),
            BrokerEvent::Decision { id, approve } => {
                let mut out = id.to_vec();
                out.push(u8::from(*approve));
                out
            }
        }
    }

    /// `kind ‖ [len]₃₂ ‖ CRC-32(kind ‖ len) ‖ payload ‖ CRC-32(kind ‖ len ‖ payload)`:
    /// the header has its own check, so a damaged length is never taken for a torn end.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let payload = self.payload();
        let mut head = Vec::with_capacity(5);
        head.push(self.kind());
        head.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        let mut out = Vec::with_capacity(13 + payload.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&crc32fast::hash(&head).to_be_bytes());
        out.extend_from_slice(&payload);
        let mut whole = crc32fast::Hasher::new();
        whole.update(&head);
        whole.update(&payload);
        out.extend_from_slice(&whole.finalize().to_be_bytes());
        out
    }

    /// True if a request or grant still parses (a request's signature is checked
    /// again): the stores refuse to open with one that does not, so replaying the
    /// events cannot fail.
    pub(crate) fn parses(&self) -> bool {
        match self {
            BrokerEvent::Request(bytes) => crate::grant::AccessRequest::from_bytes(bytes).is_ok(),
            BrokerEvent::Grant(bytes) => crate::grant::Grant::from_bytes(bytes).is_ok(),
            BrokerEvent::Decision { .. } => true,
        }
    }

    pub(crate) fn decode(kind: u8, payload: &[u8]) -> Option<Self> {
        match kind {
            1 => Some(BrokerEvent::Request(payload.to_vec())),
            2 if payload.len() == 17 && payload[16] <= 1 => {
                let mut id = [0u8; 16];
                id.copy_from_slice(&payload[..16]);
                Some(BrokerEvent::Decision {
                    id,
                    approve: payload[16] == 1,
                })
            }
            3 => Some(BrokerEvent::Grant(payload.to_vec())),
            _ => None,
        }
    }
}

/// Parses a journal's bytes: the events, and the length of the good prefix (shorter
/// than `bytes` if the last event was torn by a crash: its header or payload
/// incomplete, zeros where its header should be, or its payload failing its check with
/// nothing after it). `Err` (a detail) for any other damage or a bad header.
pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<(Vec<BrokerEvent>, usize), &'static str> {
    if bytes.len() < HEADER.len() {
        return if HEADER.starts_with(bytes) {
            Ok((Vec::new(), 0))
        } else {
            Err("bad header")
        };
    }
    if bytes[..4] != *JOURNAL_MAGIC {
        return Err("not a broker journal");
    }
    if bytes[4] != JOURNAL_VERSION || bytes[5] != 0 {
        return Err("unsupported version");
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut events = Vec::new();
    let mut at = HEADER.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = Ok((events.clone(), at));
        if rest.len() < 9 {
            return torn;
        }
        if crc32fast::hash(&rest[..5]) != be32(&rest[5..9]) {
            return if rest.iter().all(|&b| b == 0) {
                torn
            } else {
                Err("a damaged event header")
            };
        }
        let len = be32(&rest[1..5]) as usize;
        if len > MAX_PAYLOAD {
            return Err("an event longer than allowed");
        }
        if rest.len() < 13 + len {
            return torn;
        }
        let mut whole = crc32fast::Hasher::new();
        whole.update(&rest[..5]);
        whole.update(&rest[9..9 + len]);
        if whole.finalize() != be32(&rest[9 + len..13 + len]) {
            return if rest.len() == 13 + len {
                torn
            } else {
                Err("a damaged event")
            };
        }
        events.push(BrokerEvent::decode(rest[0], &rest[9..9 + len]).ok_or("an unknown event")?);
        at += 13 + len;
    }
    Ok((events, at))
}

/// For the fuzz target: parses a journal; its event count and good length.
#[cfg(feature = "fuzzing")]
pub fn parse_for_fuzzing(bytes: &[u8]) -> std::result::Result<(usize, usize), &'static str> {
    parse(bytes).map(|(events, good)| (events.len(), good))
}

/// The journal file of a directory store.
pub(crate) struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.path.display())
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`: its events, a torn last event cut
    /// off.
    pub(crate) fn open(disk: &Disk, path: &Path) -> Result<(Self, Vec<BrokerEvent>)> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at("read", path),
        };
        let corrupt = |detail: &str| Error::Corrupt {
            what: format!("broker journal BROKER: {detail}"),
        };
        let (events, good) = parse(&bytes).map_err(corrupt)?;
        // Every request and grant must still parse (a request's signature is checked
        // again), so replaying them cannot fail.
        for event in &events {
            if !event.parses() {
                return Err(corrupt("an event that does not parse"));
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .at("open", path)?;
        // Written only when new or torn, so opening a sound store writes nothing.
        let changed = if good < HEADER.len() {
            file.set_len(0).at("truncate", path)?;
            file.write_all(&HEADER).at("write", path)?;
            true
        } else if good < bytes.len() {
            file.set_len(good as u64).at("truncate", path)?;
            true
        } else {
            false
        };
        if changed {
            disk.sync(&file).at("sync", path)?;
            if let Some(dir) = path.parent() {
                disk.sync_dir(dir).at("sync", dir)?;
            }
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0)).at("seek", path)?;
        Ok((
            Journal {
                path: path.to_owned(),
                file: Mutex::new(file),
            },
            events,
        ))
    }

    /// Appends `event` and makes it durable.
    pub(crate) fn append(&self, disk: &Disk, event: &BrokerEvent) -> Result<()> {
        let bytes = event.encode();
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let len = file.metadata().at("inspect", &self.path)?.len();
        let written = file
            .write_all(&bytes)
            .and_then(|()| disk.sync(&file))
            .at("append to", &self.path);
        if written.is_err() {
            // Nothing half-written stays behind a failed call.
            let _ = file.set_len(len);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<BrokerEvent> {
        vec![
            BrokerEvent::Request(b"request one".to_vec()),
            BrokerEvent::Decision {
                id: [7; 16],
                approve: true,
            },
            BrokerEvent::Grant(vec![0xAB; 300]),
            BrokerEvent::Decision {
                id: [8; 16],
                approve: false,
            },
        ]
    }

    fn journal_bytes() -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        for event in events() {
            bytes.extend(event.encode());
        }
        bytes
    }

    #[test]
    fn events_round_trip_and_every_cut_keeps_the_whole_events_before_it() {
        let bytes = journal_bytes();
        assert_eq!(parse(&bytes).unwrap(), (events(), bytes.len()));
        let mut ends = vec![HEADER.len()];
        for event in events() {
            ends.push(ends.last().unwrap() + event.encode().len());
        }
        for cut in 0..bytes.len() {
            let (got, good) = parse(&bytes[..cut]).unwrap();
            let whole = ends
                .iter()
                .filter(|&&end| end <= cut)
                .count()
                .saturating_sub(1);
            assert_eq!(got, events()[..whole], "cut at {cut}");
            assert_eq!(good, if cut < HEADER.len() { 0 } else { ends[whole] });
        }
    }

    #[test]
    fn damage_is_corrupt_except_a_torn_last_payload() {
        let bytes = journal_bytes();
        let last_start = bytes.len() - events()[3].encode().len();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            match parse(&bad) {
                Ok((got, good)) => {
                    assert!(at >= last_start + 9, "damage at {at} passed");
                    assert_eq!(got, events()[..3]);
                    assert_eq!(good, last_start);
                }
                Err(_) => assert!(at < last_start + 9, "damage at {at} in the last payload"),
            }
        }
        // A crash that extended the file with zeros after the last whole event.
        let mut zeros = bytes.clone();
        zeros.extend([0u8; 40]);
        assert_eq!(parse(&zeros).unwrap(), (events(), bytes.len()));
    }
}
