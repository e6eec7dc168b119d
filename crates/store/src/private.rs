//! What the store writes to disk is for this process's user alone: the directories it
//! creates are 0700 and its files 0600 (on unix), and a master key file that group or others
//! may open is refused, not used: the key decrypts every signing key in the database.

use std::fs;
use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents, each 0700 (directories that exist are left as they
/// are: they may be shared on purpose).
pub(crate) fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `file`, for writing, with mode 0600; `AlreadyExists` if it exists (it is never
/// truncated or taken over).
pub(crate) fn create_new(file: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(file)
}

/// Creates `file` empty with mode 0600 if it does not exist, so that SQLite (which gives its
/// `-wal` and `-shm` files the database's mode) never makes it with the umask's 0644.
pub(crate) fn create_file(file: &Path) -> io::Result<()> {
    match create_new(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file's permission bits when group or others have any access to it; `None` when only
/// its owner has (and off unix, where modes do not say this).
pub(crate) fn open_to_others(file: &fs::File) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(None)
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_the_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        create_dirs(&deep).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&deep), 0o700);
        let file = deep.join("db");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        // An existing file keeps its content and mode.
        fs::write(&file, "kept").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        create_file(&file).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "kept");
        assert_eq!(
            open_to_others(&fs::File::open(&file).unwrap()).unwrap(),
            Some(0o640)
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            open_to_others(&fs::File::open(&file).unwrap()).unwrap(),
            None
        );
    }
}
