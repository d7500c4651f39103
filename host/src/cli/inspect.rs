//! `atelier plugins list|inspect` (and `new|build`, in `scaffold`), `atelier models`, `atelier filters`.

use super::Cli;
use anyhow::Result;
use atelier::manifest::Kind;
use atelier::params::{describe_spec, to_json};
use atelier::text::{printable, printable_lines};
use atelier::types::OutputKind;
use clap::{Args, Subcommand};
use serde_json::json;
use std::process::ExitCode;

/// `--json` for listings.
#[derive(Args)]
pub struct ListArgs {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Every plugin found, and the directories that could not be loaded.
    List(ListArgs),
    /// One plugin: manifest, contract version, hosts and secrets asked for vs granted.
    Inspect {
        /// Plugin id.
        id: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Start a plugin crate from a template: a working model or filter, ready to build.
    New(super::scaffold::NewArgs),
    /// Build a plugin crate for wasm32-wasip2 and stage it as PLUGINS_DIR/<id>/ for atelier to load.
    Build(super::scaffold::BuildArgs),
    /// Push a plugin directory to an OCI registry as a Wasm artifact; prints its digest.
    Push(super::oci::PushArgs),
    /// Install a plugin from an OCI registry (checked before it is installed; pinned in atelier.lock).
    Install(super::oci::InstallArgs),
    /// Move installed plugins to what their tags point at now, showing what changed.
    Update(super::oci::UpdateArgs),
    /// Remove a plugin installed from a registry (and its atelier.lock entry).
    Remove(super::oci::RemoveArgs),
}

pub async fn plugins(cli: &Cli, cmd: &PluginsCommand) -> Result<ExitCode> {
    // Scaffolding works on source trees: it needs no loaded plugins (nor a working config).
    match cmd {
        PluginsCommand::New(a) => return super::scaffold::new(a),
        PluginsCommand::Build(a) => return super::scaffold::build(cli, a),
        PluginsCommand::Push(a) => return super::oci::push_cmd(cli, a).await,
        PluginsCommand::Install(a) => return super::oci::install_cmd(cli, a).await,
        PluginsCommand::Update(a) => return super::oci::update_cmd(cli, a).await,
        PluginsCommand::Remove(a) => return super::oci::remove_cmd(cli, a).await,
        PluginsCommand::List(_) | PluginsCommand::Inspect { .. } => {}
    }
    let rt = cli.runtime()?;
    match cmd {
        PluginsCommand::New(_)
        | PluginsCommand::Build(_)
        | PluginsCommand::Push(_)
        | PluginsCommand::Install(_)
        | PluginsCommand::Update(_)
        | PluginsCommand::Remove(_) => unreachable!("handled before the runtime loads"),
        PluginsCommand::List(a) => {
            if a.json {
                let plugins: Vec<_> = rt
                    .manifests()
                    .map(|m| {
                        json!({"id": m.id, "kind": m.kind.to_string(), "tier": m.tier.to_string(), "version": m.version,
                               "contract": m.contract, "description": m.description,
                               "dir": m.path.parent().map(|d| d.display().to_string())})
                    })
                    .collect();
                let problems: Vec<_> = rt.problems().iter().map(|p| json!({"dir": p.dir.display().to_string(), "error": p.message})).collect();
                println!("{}", serde_json::to_string_pretty(&json!({"plugins": plugins, "problems": problems}))?);
            } else {
                for m in rt.manifests() {
                    println!("{:<16} {:<6} {:<8} contract {}  {}", m.id, m.kind, printable(&m.version), printable(&m.contract), printable(&m.description));
                }
                if rt.manifests().next().is_none() {
                    println!("no plugins found in {}", rt.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
                }
                for p in rt.problems() {
                    eprintln!("problem: {}", p.message);
                }
            }
        }
        PluginsCommand::Inspect { id, json: as_json } => {
            let p = rt.plugin(id)?;
            let g = &p.grants;
            let secrets: Vec<_> = g
                .secrets
                .iter()
                .map(|(name, s)| {
                    json!({"name": name,
                           "sent_to": g.destinations(name).iter().map(|b| json!({"host": b.host.to_string(), "bound_by": bound_by(&b.by)})).collect::<Vec<_>>(),
                           "source": s.source.as_ref().map(|s| s.to_string()), "assigned": s.source.is_some(),
                           "available": s.source.as_ref().and_then(|s| s.read()).is_some()})
                })
                .collect();
            let denied: Vec<String> = g.denied.iter().map(|h| h.to_string()).collect();
            let asked: Vec<_> = g
                .manifest_hosts
                .iter()
                .map(|h| json!({"host": h.to_string(), "granted": !g.denied.iter().any(|d| d == h), "needs_operator": needs_operator(h)}))
                .collect();
            let v = json!({
                "id": p.id(), "kind": p.manifest.kind.to_string(), "version": p.manifest.version,
                "contract": p.manifest.contract, "description": p.manifest.description,
                "manifest": p.manifest.path.display().to_string(), "component": p.manifest.component.display().to_string(),
                "tier": p.manifest.tier.to_string(), "native_sha256": p.native().map(|n| n.sha256.clone()),
                "hosts_asked": asked, "hosts_added_by_operator": g.operator_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "hosts_denied_by_operator": denied, "secrets": secrets,
                "config": p.manifest.defaults.keys().chain(p.settings.config.keys()).map(|k| (k.clone(), json!(p.config(k)))).collect::<serde_json::Map<_,_>>(),
                "limits": serde_json::to_value(&p.limits)?,
            });
            if *as_json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{} {} ({} plugin, contract {})", p.id(), p.manifest.version, p.manifest.kind, p.manifest.contract);
                println!("  {}", printable(&p.manifest.description));
                println!("  manifest:  {}", p.manifest.path.display());
                println!("  component: {}", p.manifest.component.display());
                match p.native() {
                    Some(n) => println!(
                        "  tier:      native, UNSANDBOXED (as trusted as atelier); sha256 {} pinned at {}",
                        n.sha256, p.settings.native_sha256_at
                    ),
                    None => println!("  tier:      wasm (sandboxed)"),
                }
                println!("  hosts asked for:");
                for h in &g.manifest_hosts {
                    let state = if g.denied.iter().any(|d| d == h) {
                        "DENIED by operator"
                    } else if needs_operator(h) {
                        "not reachable unless the operator grants it (host's own network)"
                    } else {
                        "granted"
                    };
                    println!("    {h:<50} {state}");
                }
                for h in &g.operator_hosts {
                    println!("    {h:<50} added by operator");
                }
                println!("  secrets:");
                for (name, s) in &g.secrets {
                    let hosts: Vec<String> = g.destinations(name).iter().map(|b| b.to_string()).collect();
                    let (from, state) = match &s.source {
                        None => ("(not assigned)".to_string(), "NOT ASSIGNED"),
                        Some(src) if src.read().is_some() => (src.to_string(), "available"),
                        Some(src) => (src.to_string(), "MISSING"),
                    };
                    let to = if hosts.is_empty() { "nowhere".to_string() } else { hosts.join(", ") };
                    println!("    {name:<20} from {from:<28} {state:<12} sent only to {to}");
                }
                println!("  config:");
                for (k, val) in v["config"].as_object().into_iter().flatten() {
                    println!("    {k} = {}", val.as_str().unwrap_or(""));
                }
                let limits: Vec<String> = p.limits.entries().iter().map(|(k, v)| format!("{k} = {v}")).collect();
                println!("  limits: {}", limits.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How a secret binding came about, for `--json`.
fn bound_by(by: &atelier::caps::grants::BoundBy) -> String {
    use atelier::caps::grants::BoundBy;
    match by {
        BoundBy::Manifest => "manifest".into(),
        BoundBy::Setting(key) => format!("operator's {key}"),
        BoundBy::Operator => "operator".into(),
    }
}

/// Whether a manifest's host names the host's own network (loopback, private, metadata), which
/// only the operator can open.
fn needs_operator(h: &atelier::caps::hosts::HostPattern) -> bool {
    h.host == "localhost" || h.host.parse::<std::net::IpAddr>().is_ok_and(atelier::caps::hosts::is_sensitive)
}

pub async fn models(cli: &Cli, a: &ListArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let mut out = vec![];
    let ids: Vec<String> = rt.manifests().filter(|m| m.kind == Kind::Model).map(|m| m.id.clone()).collect();
    for id in ids {
        match rt.plugin(&id) {
            Ok(p) => match p.describe_model().await {
                Ok(info) => out.push((p, info)),
                Err(e) => eprintln!("problem: {}", printable_lines(&format!("{e:#}"))),
            },
            Err(e) => eprintln!("problem: {}", printable_lines(&format!("{e:#}"))),
        }
    }
    if a.json {
        let v: Vec<_> = out
            .iter()
            .map(|(p, i)| {
                json!({"id": p.id(), "display_name": i.display_name, "description": i.description, "model": i.model,
                       "task": match i.default_output() { OutputKind::Image => "image-edit", OutputKind::Video => "image-to-video" },
                       "outputs": i.outputs, "generates_without_input": i.generates_without_input, "effects_outside_host": i.effects_outside_host,
                       "max_references": i.max_references, "max_outputs": i.max_outputs, "aspect_ratios": i.aspect_ratios,
                       "sizes": i.sizes, "supports_mask": i.supports_mask, "supports_seed": i.supports_seed,
                       "supports_audio": i.video_audio, "contract": p.contract(), "input_mime": i.input_mime,
                       "params": i.params.iter().map(|s| json!({"name": s.name, "description": s.description,
                           "kind": atelier::params::kind_name(s.kind()), "min": s.min(), "max": s.max(), "choices": s.choices(),
                           "default": s.default_value().as_ref().map(to_json), "required": s.required})).collect::<Vec<_>>()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (p, i) in &out {
        let task = i.outputs.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ");
        let task = match i.generates_without_input {
            Some(true) => format!("prompt or image to {task}"),
            _ => format!("image to {task}"),
        };
        println!("{} — {} [{task}, model id {}]", p.id(), printable(&i.display_name), printable(&i.model));
        if !i.description.is_empty() {
            println!("  {}", printable(&i.description));
        }
        let mut caps = vec![format!("up to {} reference(s)", i.max_references), format!("{} output(s) per call", i.max_outputs)];
        if i.supports_mask {
            caps.push("mask".into());
        }
        if i.supports_seed {
            caps.push("seed".into());
        }
        if i.video_audio {
            caps.push("audio".into());
        }
        println!("  {}", caps.join(", "));
        if !i.aspect_ratios.is_empty() {
            println!("  aspect: {}", printable(&i.aspect_ratios.join(" ")));
        }
        if !i.sizes.is_empty() {
            println!("  size: {}", printable(&i.sizes.join(" ")));
        }
        for s in &i.params {
            println!("    --param {}=…  {}  ({})", printable(&s.name), printable(&s.description), printable(&describe_spec(s)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn filters(cli: &Cli, a: &ListArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let mut all = vec![];
    for p in rt.filter_plugins()? {
        match p.describe_filters().await {
            Ok(fs) => all.extend(fs.into_iter().map(|f| (p.id().to_string(), f))),
            Err(e) => eprintln!("problem: {}", printable_lines(&format!("{e:#}"))),
        }
    }
    if a.json {
        let v: Vec<_> = all
            .iter()
            .map(|(pid, f)| {
                json!({"name": f.name, "plugin": pid, "description": f.description,
                       "params": f.params.iter().map(|s| json!({"name": s.name, "description": s.description,
                           "kind": atelier::params::kind_name(s.kind()), "min": s.min(), "max": s.max(), "choices": s.choices(),
                           "default": s.default_value().as_ref().map(to_json), "required": s.required})).collect::<Vec<_>>()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (pid, f) in &all {
        println!("{} ({pid}) — {}", printable(&f.name), printable(&f.description));
        for s in &f.params {
            println!("    {}=…  {}  ({})", printable(&s.name), printable(&s.description), printable(&describe_spec(s)));
        }
    }
    Ok(ExitCode::SUCCESS)
}
