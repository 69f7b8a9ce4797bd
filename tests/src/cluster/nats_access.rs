//! The cluster's NATS identities: one nkey per process, as an operator
//! would make them with `keyfed nats creds` (the same library code), and
//! nats-server enforcing each one's least-privilege permissions. The
//! harness itself (its view, tests writing to the directory as an attacker
//! who got past the permissions) uses the admin identity.

use std::path::{Path, PathBuf};

use keyfed_directory::nats::access::{authorization_conf, Identity, Role};

/// The identities issued so far and where their seeds are.
pub(super) struct NatsAccess {
    dir: PathBuf,
    namespace: String,
    identities: Vec<Identity>,
}

impl NatsAccess {
    /// No identity yet; seeds go to `dir` (created 0700).
    pub(super) fn new(dir: PathBuf, namespace: &str) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            dir,
            namespace: namespace.to_owned(),
            identities: Vec::new(),
        })
    }

    fn seed_path(&self, role: Role, id: &str) -> PathBuf {
        self.dir.join(format!("{}-{id}.nk", role.name()))
    }

    /// The seed file of `role` `id`, issuing the identity when new; the
    /// flag says whether it is new (the server must then reload).
    pub(super) fn seed(&mut self, role: Role, id: &str) -> anyhow::Result<(PathBuf, bool)> {
        let path = self.seed_path(role, id);
        if self.identities.iter().any(|i| i.role == role && i.id == id) {
            return Ok((path, false));
        }
        let (identity, seed) = Identity::generate(role, id).map_err(anyhow::Error::msg)?;
        write_private(&path, &seed)?;
        self.identities.push(identity);
        Ok((path, true))
    }

    /// The server's authorization block for every identity issued.
    pub(super) fn conf(&self) -> String {
        authorization_conf(&self.namespace, &self.identities)
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
