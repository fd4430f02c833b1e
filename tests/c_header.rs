//! The committed C header is exactly what cbindgen generates from `src/ffi/`.
//! `MEDVAULT_BLESS=1 cargo test --test c_header` rewrites it after an intended change.

use std::path::Path;

#[test]
fn include_medvault_h_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        // Only the C ABI: the rest of the crate's constants are not part of it.
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let path = crate_dir.join("include/medvault.h");
    if std::env::var_os("MEDVAULT_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/medvault.h differs from what cbindgen generates from src/ffi/; \
         run `MEDVAULT_BLESS=1 cargo test --test c_header` and commit the header"
    );
}
