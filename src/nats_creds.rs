//! `keyfed nats creds`: the directory's NATS identities on disk. One nkey
//! seed per process, `<role>-<id>.nk` (mode 0600, never overwritten, in a
//! 0700 directory), and `nats-authorization.conf`, regenerated from every
//! seed present, with each identity's least-privilege permissions
//! (`keyfed_directory::nats::access`). Adding a shard later adds its seed
//! and rewrites the config; the others' seeds stay.

use std::path::{Path, PathBuf};

use anyhow::Context;
use keyfed_directory::nats::access::{authorization_conf, Identity, Role};

/// The generated server config in `dir`.
pub const CONF_FILE: &str = "nats-authorization.conf";

/// The seed file of `role` `id` in `dir`.
pub fn seed_path(dir: &Path, role: Role, id: &str) -> PathBuf {
    dir.join(format!("{}-{id}.nk", role.name()))
}

fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(ok, "identity {id:?}: use 1-64 letters, digits, '-' or '_'");
    Ok(())
}

/// Creates the seeds of `wanted` missing in `dir` and rewrites its config
/// for `namespace`; returns the config's path.
pub fn generate(
    dir: &Path,
    namespace: &str,
    wanted: &[(Role, Vec<String>)],
) -> anyhow::Result<PathBuf> {
    keyfed_directory::validate_namespace(namespace).context("--namespace")?;
    private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (role, ids) in wanted {
        for id in ids {
            check_id(id)?;
            let path = seed_path(dir, *role, id);
            if path.exists() {
                continue;
            }
            let (_, seed) = Identity::generate(*role, id).map_err(anyhow::Error::msg)?;
            keyfed_pki::files::write_private(&path, seed.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let identities = existing(dir)?;
    anyhow::ensure!(!identities.is_empty(), "no identity: name at least one");
    let conf = dir.join(CONF_FILE);
    let tmp = dir.join(format!(".{CONF_FILE}.tmp"));
    std::fs::write(&tmp, authorization_conf(namespace, &identities))?;
    std::fs::rename(&tmp, &conf)?;
    Ok(conf)
}

/// Creates `dir` (and its parents) readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Every identity whose seed is in `dir`, in file-name order.
fn existing(dir: &Path) -> anyhow::Result<Vec<Identity>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".nk"))
        .collect();
    names.sort();
    let mut identities = Vec::new();
    for name in names {
        let stem = name.trim_end_matches(".nk");
        let Some((role, id)) = stem
            .split_once('-')
            .and_then(|(role, id)| Some((Role::from_name(role)?, id)))
        else {
            continue;
        };
        let seed = std::fs::read_to_string(dir.join(&name))?;
        identities.push(
            Identity::from_seed(role, id, &seed).map_err(|e| anyhow::anyhow!("{name}: {e}"))?,
        );
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seeds_are_kept_and_the_config_names_every_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nats");
        let conf = generate(
            &dir,
            "fed",
            &[
                (Role::Issuer, vec!["shard-0".into()]),
                (Role::Gateway, vec!["gw-1".into()]),
            ],
        )
        .unwrap();
        let seed = std::fs::read_to_string(seed_path(&dir, Role::Issuer, "shard-0")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&seed_path(&dir, Role::Issuer, "shard-0")), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        // A shard joins: its seed is added, the others stay.
        generate(&dir, "fed", &[(Role::Shard, vec!["shard-3".into()])]).unwrap();
        assert_eq!(
            std::fs::read_to_string(seed_path(&dir, Role::Issuer, "shard-0")).unwrap(),
            seed
        );
        let text = std::fs::read_to_string(conf).unwrap();
        assert_eq!(text.matches("nkey:").count(), 3, "{text}");
        assert!(text.contains("$KV.fed_members.shard-3"));
        assert!(!text.contains(&seed), "the config holds public keys only");
        assert!(generate(&dir, "fed", &[(Role::Shard, vec!["a b".into()])]).is_err());
    }
}
