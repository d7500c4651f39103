//! `atelier doctor`: everything that would stop a job, found up front, one line each with its fix.

use super::Cli;
use anyhow::Result;
use atelier::manifest::Kind;
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct DoctorArgs {}

pub async fn run(cli: &Cli, _a: &DoctorArgs) -> Result<ExitCode> {
    let mut problems: Vec<String> = vec![];
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            println!("config: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rt = cli.runtime()?;
    // Native plugins are opt-in: one the operator has not pinned is a note, not a problem.
    let unpinned: Vec<_> = rt.manifests().filter(|m| !atelier::native::opted_in(m, &settings)).collect();
    let notes: Vec<String> = unpinned
        .iter()
        .filter_map(|m| rt.plugin(&m.id).err())
        .map(|e| format!("{e:#}").replace('\n', " ").replace("    ", " "))
        .collect();
    for p in rt.problems().iter().chain(rt.load_all().iter()) {
        if unpinned.iter().any(|m| m.path.parent() == Some(p.dir.as_path())) {
            continue;
        }
        problems.push(p.message.replace('\n', " "));
    }
    for note in &notes {
        println!("note (native tier, opt-in): {note}");
    }
    for id in settings.plugins.keys() {
        if rt.plugin(id).is_err() && !rt.problems().iter().any(|p| p.message.contains(id.as_str())) {
            problems.push(format!("{}: [plugins.{id}] configures a plugin that is not installed (searched {})", settings.shown_path(),
                rt.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
        }
    }
    for p in rt.plugins() {
        if let Some(n) = p.native() {
            println!(
                "native: `{}` runs unsandboxed from {} (sha256 {}, pinned at {})",
                p.id(),
                n.path.display(),
                n.sha256,
                p.settings.native_sha256_at
            );
        }
        for name in p.grants.missing_secrets() {
            problems.push(p.grants.missing_secret_message(&name).replace('\n', " "));
        }
        // A manifest cannot open the host's own network; say so before a job finds out.
        for h in &p.grants.manifest_hosts {
            let own_network = h.host == "localhost" || h.host.parse::<std::net::IpAddr>().is_ok_and(atelier::caps::hosts::is_sensitive);
            if own_network && !p.grants.operator_hosts.contains(h) {
                problems.push(format!(
                    "plugin `{}` asks in its manifest for {h}, on the host's own network, which only the operator can open; if it is really meant, add to {}: [plugins.{}] allow_hosts = [\"{h}\"]",
                    p.id(), settings.shown_path(), p.id()
                ));
            }
        }
        if p.manifest.kind == Kind::Model {
            if let Some(base) = p.config("base_url") {
                match url::Url::parse(base) {
                    Ok(u) => {
                        if let Err(m) = p.grants.check_origin(&u) {
                            problems.push(format!("base_url {base}: {}", m.replace('\n', " ")));
                        }
                    }
                    Err(e) => problems.push(format!("plugin `{}`: base_url `{base}` is not a URL ({e}); fix [plugins.{}] base_url in {}", p.id(), p.id(), settings.shown_path())),
                }
            }
            if let Err(e) = p.describe_model().await {
                problems.push(format!("{e:#}").replace('\n', " "));
            }
        } else if let Err(e) = p.describe_filters().await {
            problems.push(format!("{e:#}").replace('\n', " "));
        }
    }
    // `[storage]`: the bucket `atelier serve` keeps artifacts in must exist and take writes.
    if settings.storage.url.is_some() {
        match atelier::storage::ArtifactStore::open(&settings.storage, std::path::Path::new(".")) {
            Ok(store) => match store.check().await {
                Ok(()) => println!("storage: artifacts go to {}", store.location()),
                Err(e) => problems.push(format!("{e:#}").replace('\n', " ")),
            },
            Err(e) => problems.push(format!("{e:#}").replace('\n', " ")),
        }
    }
    let n = rt.plugins().count();
    if problems.is_empty() {
        println!("ok: {} plugin(s) loaded from {}; config {}; no problems found", n,
            rt.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), settings.shown_path());
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!("{} problem(s), {} plugin(s) loaded", problems.len(), n);
        Ok(ExitCode::FAILURE)
    }
}
