//! The CLI's file handling: articles, bundles, keys and trust stores on disk.
//!
//! Everything that touches the file system for the CLI lives here, so that the commands read
//! as calls into the core and the permission rules for secrets are written once.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::core::canonical::MediaType;
use crate::core::constants::{DEFAULT_MAX_ARTICLE_BYTES, MAX_BUNDLE_BYTES, SIDECAR_SUFFIX};
use crate::core::embed::strip_embedded;
use crate::core::trust::TrustStore;
pub use crate::keyfile::{load_signing_key, write_secret};

/// Reads a whole file, refusing files larger than `limit` with a message naming both.
pub fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > limit as u64 {
        bail!(
            "{} is {} bytes, more than the limit of {} bytes",
            path.display(),
            meta.len(),
            limit
        );
    }
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads an article.
pub fn read_article(path: &Path) -> Result<Vec<u8>> {
    read_limited(path, DEFAULT_MAX_ARTICLE_BYTES)
}

/// The media type of an article: the explicit one, else from its file name.
pub fn media_type_for(path: &Path, explicit: Option<&str>) -> Result<MediaType> {
    if let Some(m) = explicit {
        return m.parse().map_err(|e| anyhow!("{e}"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    MediaType::from_file_name(&name).ok_or_else(|| {
        anyhow!(
            "cannot tell the media type of {} from its name; use .md, .html, .txt or --media-type",
            path.display()
        )
    })
}

/// The sidecar bundle path of an article: `a.md` → `a.md.byline.json`.
pub fn sidecar_path(article: &Path) -> PathBuf {
    let mut name = article.as_os_str().to_os_string();
    name.push(SIDECAR_SUFFIX);
    PathBuf::from(name)
}

/// The article's embedded bundle block is malformed; verification reports it as such.
#[derive(Debug, thiserror::Error)]
#[error("malformed bundle: {0}")]
pub struct MalformedEmbedded(pub String);

/// Where a bundle for an article was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    /// Given with `--bundle`.
    File(PathBuf),
    /// Embedded in the article.
    Embedded,
    /// The sidecar next to the article.
    Sidecar(PathBuf),
}

impl std::fmt::Display for BundleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleSource::File(p) => write!(f, "{}", p.display()),
            BundleSource::Embedded => f.write_str("embedded in the article"),
            BundleSource::Sidecar(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Finds an article's bundle: `--bundle`, else embedded, else the sidecar. `Ok(None)` means the
/// article carries no manifest at all.
pub fn find_bundle(
    article_path: &Path,
    article: &[u8],
    media_type: MediaType,
    explicit: Option<&Path>,
) -> Result<Option<(Vec<u8>, BundleSource)>> {
    if let Some(path) = explicit {
        return Ok(Some((
            read_limited(path, MAX_BUNDLE_BYTES)?,
            BundleSource::File(path.to_path_buf()),
        )));
    }
    // A malformed embedded block is a malformed manifest (exit 1), not a usage error.
    match strip_embedded(article, media_type) {
        Ok((_, Some(json))) => return Ok(Some((json, BundleSource::Embedded))),
        Ok((_, None)) => {}
        Err(e) => return Err(MalformedEmbedded(e.to_string()).into()),
    }
    let sidecar = sidecar_path(article_path);
    if sidecar.exists() {
        return Ok(Some((
            read_limited(&sidecar, MAX_BUNDLE_BYTES)?,
            BundleSource::Sidecar(sidecar),
        )));
    }
    Ok(None)
}

/// Writes a file atomically (temporary file, then rename), so a crash never leaves half a file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Loads a trust store; a missing file is an empty store only when `allow_missing`.
pub fn load_trust(path: &Path, allow_missing: bool) -> Result<TrustStore> {
    match fs::read_to_string(path) {
        Ok(text) => TrustStore::from_toml(&text).with_context(|| format!("in trust store {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && allow_missing => Ok(TrustStore::default()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow!(
            "trust store {} not found; create one with `byline keygen` or `byline trust add`, or pass --trust FILE",
            path.display()
        )),
        Err(e) => Err(e).with_context(|| format!("cannot read trust store {}", path.display())),
    }
}

/// Saves a trust store atomically.
pub fn save_trust(path: &Path, store: &TrustStore) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(path, store.to_toml().as_bytes())
}
