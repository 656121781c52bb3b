//! Key files on disk: private keys are PKCS#8 PEM with mode 0600, refused when group or
//! others can read them, and never overwritten by accident. Shared by the CLI and the server.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::core::keys::SigningKey;

/// Loads a private key, refusing one that others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            fs::metadata(path).with_context(|| format!("cannot read key {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "private key {} is readable by group or others (mode {:o}); fix it with: chmod 600 {}",
                path.display(),
                mode,
                path.display()
            );
        }
    }
    let pem = zeroize::Zeroizing::new(
        fs::read_to_string(path).with_context(|| format!("cannot read key {}", path.display()))?,
    );
    SigningKey::from_pkcs8_pem(&pem).with_context(|| format!("cannot load key {}", path.display()))
}

/// Writes a secret file with mode 0600, refusing to overwrite unless `force`.
pub fn write_secret(path: &Path, contents: &[u8], force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    if force && path.exists() {
        fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
