//! Key files. Property: only the fixture unlocks with its password.
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = medvault::keyfile::inspect(data);
    if let Ok(unlocked) = medvault::keyfile::unlock(data, common::PASSWORD) {
        assert_eq!(data, common::KEY_FILE, "a modified key file unlocked");
        assert_eq!(unlocked.master_key.expose_secret(), &common::MASTER);
    }
});
