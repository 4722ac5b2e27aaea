//! The data directory is private: it holds the signing keys, the SQLite database and the
//! borrowers' uploaded documents, so only the server's user may read it (0700, files 0600).
//!
//! Everything Lien creates there is created private; [`secure_data_dir`] also mends the
//! permissions of a directory made by an older version or by hand.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Mode of the data directory and its subdirectories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in them.
pub const FILE_MODE: u32 = 0o600;

/// Creates the data directory if needed and makes it and everything in it private.
pub fn secure_data_dir(dir: &Path) -> Result<()> {
    create_private_dir(dir)?;
    restrict_tree(dir)
}

/// Creates `dir` (and its missing parents) and sets its mode to 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    // A directory made for the server by someone else (a mounted volume's root) may not be
    // ours to change: said, not fatal.
    if let Err(err) = set_mode(dir, DIR_MODE) {
        tracing::warn!(
            error = format!("{err:#}"),
            "the data directory stays as it is"
        );
    }
    Ok(())
}

/// Creates an empty file with mode 0600 if there is none at `path`, so that a program that
/// creates it later (SQLite with its database, which gives its journal files the database's
/// mode) finds it private.
pub fn precreate_private_file(path: &Path) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// What Lien keeps in the data directory: only these are made private, so that a directory
/// shared with something else (a home directory, a volume's `lost+found`) is left as it is.
fn is_lien_file(name: &str) -> bool {
    name.starts_with("lien.db")
        || name.ends_with(".key")
        || name.ends_with(".pem")
        || name == "appeals"
}

/// Sets 0700 on Lien's directories and 0600 on its files under `dir`. One it may not change
/// (owned by another user) is reported, not fatal: the directory itself is already private.
fn restrict_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_lien_file(&name.to_string_lossy()) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        let mode = if kind.is_dir() { DIR_MODE } else { FILE_MODE };
        if let Err(err) = set_mode(&path, mode) {
            tracing::warn!(error = format!("{err:#}"), "could not make a file private");
            continue;
        }
        if kind.is_dir() {
            for file in fs::read_dir(&path)? {
                let file = file?;
                if file.file_type()?.is_file()
                    && let Err(err) = set_mode(&file.path(), FILE_MODE)
                {
                    tracing::warn!(error = format!("{err:#}"), "could not make a file private");
                }
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_directory_from_before_is_made_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("lien-data");
        fs::create_dir_all(dir.join("appeals")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("lien.db"), b"x").unwrap();
        fs::write(dir.join("appeals/receipt.pdf"), b"x").unwrap();
        fs::set_permissions(dir.join("lien.db"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        fs::set_permissions(dir.join("notes.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        secure_data_dir(&dir).unwrap();
        assert_eq!(
            mode(&dir.join("notes.txt")),
            0o755,
            "not Lien's: left alone"
        );
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("appeals")), 0o700);
        assert_eq!(mode(&dir.join("lien.db")), 0o600);
        assert_eq!(mode(&dir.join("appeals/receipt.pdf")), 0o600);
    }

    #[test]
    fn a_precreated_file_is_private_and_an_existing_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lien.db");
        precreate_private_file(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        fs::write(&path, b"data").unwrap();
        precreate_private_file(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }
}
