//! `atelier plugins push|install|update|remove`: plugins shipped through OCI registries
//! (docs/distribution.md).

use super::Cli;
use anyhow::{Result, bail};
use atelier::oci::install::Installer;
use atelier::oci::{OciRef, push};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `atelier plugins push DIR oci://REGISTRY/REPO:TAG`.
#[derive(Args)]
pub struct PushArgs {
    /// The plugin directory (plugin.toml and its component).
    dir: PathBuf,
    /// Where to push: oci://REGISTRY/REPO:TAG.
    reference: String,
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

/// Where installed plugins go.
#[derive(Args)]
pub struct DirArgs {
    /// The plugin directory to install into (and its atelier.lock); default: the first of
    /// --plugins / ATELIER_PLUGINS, else [paths] plugins in the config, else the per-user dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `atelier plugins install`.
#[derive(Args)]
pub struct InstallArgs {
    /// oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:…; with --locked, optional.
    reference: Option<String>,
    #[command(flatten)]
    dir: DirArgs,
    /// Install exactly the digests atelier.lock pins; refuse a tag that moved.
    #[arg(long)]
    locked: bool,
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

/// `atelier plugins update [ID]`.
#[derive(Args)]
pub struct UpdateArgs {
    /// Plugin id (default: every plugin in atelier.lock).
    id: Option<String>,
    #[command(flatten)]
    dir: DirArgs,
    /// Accept new permissions (hosts, secrets) the new build asks for.
    #[arg(long)]
    yes: bool,
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

/// `atelier plugins remove ID`.
#[derive(Args)]
pub struct RemoveArgs {
    /// Plugin id.
    id: String,
    #[command(flatten)]
    dir: DirArgs,
}

fn installer(cli: &Cli, dir: &DirArgs, insecure: bool) -> Result<Installer> {
    let rt = cli.runtime()?;
    let dir = match &dir.dir {
        Some(d) => d.clone(),
        None => rt.search_path.first().cloned().unwrap_or_else(atelier::runtime::default_plugin_dir),
    };
    if atelier::runtime::is_plugin_dir(&dir) {
        bail!("{} is a plugin's own directory, not a directory of plugins; pass the directory that holds plugins with --dir", dir.display());
    }
    Ok(Installer { rt: Arc::new(rt), dir, insecure })
}

/// `atelier plugins push`: prints the manifest digest on stdout.
pub async fn push_cmd(cli: &Cli, a: &PushArgs) -> Result<ExitCode> {
    let to = OciRef::parse(&a.reference)?;
    let rt = Arc::new(cli.runtime()?);
    let p = push(rt, &a.dir, &to, a.insecure).await?;
    eprintln!("pushed {} {} to {to}", p.id, p.version);
    println!("{}", p.digest);
    Ok(ExitCode::SUCCESS)
}

/// `atelier plugins install`.
pub async fn install_cmd(cli: &Cli, a: &InstallArgs) -> Result<ExitCode> {
    let i = installer(cli, &a.dir, a.insecure)?;
    let lines = match (&a.reference, a.locked) {
        (r, true) => i.install_locked(r.as_deref()).await?,
        (Some(r), false) => i.install(r).await?,
        (None, false) => bail!("give a reference (oci://REGISTRY/REPO:TAG), or --locked to install what atelier.lock pins"),
    };
    for l in lines {
        println!("{l}");
    }
    let searched = i.rt.search_path.iter().any(|p| std::path::absolute(p).ok() == std::path::absolute(&i.dir).ok());
    if !searched {
        eprintln!("note: {} is not in the plugin search path; run atelier with --plugins {} (or ATELIER_PLUGINS) to use what is installed there", i.dir.display(), i.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `atelier plugins update`: fails (and changes that plugin not) when a new permission is not accepted.
pub async fn update_cmd(cli: &Cli, a: &UpdateArgs) -> Result<ExitCode> {
    let i = installer(cli, &a.dir, a.insecure)?;
    let u = i.update(a.id.as_deref(), a.yes).await?;
    for l in &u.lines {
        println!("{l}");
    }
    if u.refused {
        eprintln!("error: a plugin asks for new permissions; nothing was changed for it (accept with --yes)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `atelier plugins remove`.
pub async fn remove_cmd(cli: &Cli, a: &RemoveArgs) -> Result<ExitCode> {
    let i = installer(cli, &a.dir, false)?;
    for l in i.remove(&a.id).await? {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
