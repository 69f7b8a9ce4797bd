//! Command-line pieces the benchmark binaries share.

use crate::loadgen::Credentials;

/// Who a binary authenticates as, from flags or the `OS_*` variables of an
/// openrc file.
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialArgs {
    /// User name.
    #[arg(long, env = "OS_USERNAME", default_value = "admin")]
    pub username: String,
    /// Password.
    #[arg(long, env = "OS_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Project to scope tokens to.
    #[arg(long, env = "OS_PROJECT_NAME", default_value = "admin")]
    pub project: String,
    /// Name of the user's domain.
    #[arg(long, env = "OS_USER_DOMAIN_NAME", default_value = "Default")]
    pub user_domain: String,
    /// Name of the project's domain.
    #[arg(long, env = "OS_PROJECT_DOMAIN_NAME", default_value = "Default")]
    pub project_domain: String,
}

impl From<CredentialArgs> for Credentials {
    fn from(a: CredentialArgs) -> Self {
        Credentials {
            username: a.username,
            password: a.password,
            project: a.project,
            user_domain: a.user_domain,
            project_domain: a.project_domain,
        }
    }
}
