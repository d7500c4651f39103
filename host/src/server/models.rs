//! `GET /v1/models` and choosing the engine a request names: what each model plugin can do,
//! from its own `describe()` and `prepare()`.

use super::App;
use super::errors::{ApiError, ApiResult};
use crate::manifest::Kind;
use crate::types;
use crate::plugin::Plugin;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a request needs from a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Images from images (`/v1/images/edits`).
    Edit,
    /// Images from a prompt alone (`/v1/images/generations`).
    Generate,
    /// A video from an image (`/v1/videos`).
    Video,
}

impl Want {
    fn what(self) -> &'static str {
        match self {
            Want::Edit => "edits images",
            Want::Generate => "makes images from a prompt alone",
            Want::Video => "makes videos",
        }
    }
}

/// A model plugin with its description.
#[derive(Clone)]
pub struct Chosen {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// Its `describe()`.
    pub info: types::ModelInfo,
}

/// `describe()` answers, once per loaded plugin (they depend only on the operator's config and
/// the plugin's build: a reloaded plugin is described again).
#[derive(Default)]
pub struct ModelCache {
    // The `Weak` names the loaded instance the answer came from; it keeps that allocation's
    // address from being reused, so comparing pointers cannot mistake a new version for the old.
    infos: Mutex<HashMap<String, (std::sync::Weak<Plugin>, types::ModelInfo)>>,
}

impl ModelCache {
    /// The plugin and its description.
    pub async fn get(&self, app: &App, id: &str) -> anyhow::Result<Chosen> {
        let plugin = app.rt.model(id)?;
        if let Some((of, info)) = self.infos.lock().unwrap().get(id).cloned()
            && std::sync::Weak::ptr_eq(&of, &Arc::downgrade(&plugin))
        {
            return Ok(Chosen { plugin, info });
        }
        let info = plugin.describe_model().await?;
        self.infos.lock().unwrap().insert(id.to_string(), (Arc::downgrade(&plugin), info.clone()));
        Ok(Chosen { plugin, info })
    }
}

/// Whether a model makes videos (one of its output kinds).
pub fn makes_video(info: &types::ModelInfo) -> bool {
    info.makes(types::OutputKind::Video)
}

/// Whether a model can serve `want`: its output kinds, and for prompt-only generation what its
/// `describe` says (contract 0.2), or, for a contract-0.1 model that does not say, its own
/// `prepare()` accepting a request with no reference image.
pub async fn can(c: &Chosen, want: Want) -> bool {
    match want {
        Want::Edit => c.info.makes(types::OutputKind::Image),
        Want::Video => makes_video(&c.info),
        Want::Generate => {
            if !c.info.makes(types::OutputKind::Image) {
                return false;
            }
            if let Some(says) = c.info.generates_without_input {
                return says;
            }
            let params = crate::params::resolve("probe", &c.info.params, &[]).unwrap_or_default();
            let draft = types::Draft {
                prompt: "a test prompt".into(),
                references: vec![],
                has_mask: false,
                n: 1,
                output: types::OutputKind::Image,
                aspect: None,
                size: None,
                params,
            };
            matches!(c.plugin.prepare("probe", &draft).await, Ok(Ok(_)))
        }
    }
}

/// Ids of the installed models that can serve `want`.
pub async fn able(app: &App, want: Want) -> Vec<String> {
    let mut out = vec![];
    for id in model_ids(app) {
        if let Ok(c) = app.models.get(app, &id).await {
            if can(&c, want).await {
                out.push(id);
            }
        }
    }
    out
}

fn model_ids(app: &App) -> Vec<String> {
    app.rt.manifests().filter(|m| m.kind == Kind::Model).map(|m| m.id.clone()).collect()
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() { "none is installed".into() } else { ids.join(", ") }
}

/// The model a request names (`field` = `model`), or the only installed one that can serve it.
pub async fn choose(app: &App, given: Option<&str>, want: Want) -> ApiResult<Chosen> {
    let id = match given.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None => {
            let ids = able(app, want).await;
            match ids.as_slice() {
                [only] => only.clone(),
                _ => return Err(ApiError::field("model", format!("give `model`: one that {}: {} (GET /v1/models lists all)", want.what(), list_or_none(&ids)))),
            }
        }
    };
    let c = match app.models.get(app, &id).await {
        Ok(c) => c,
        Err(e) => return Err(ApiError::field("model", format!("{e:#}")).with_code("model_not_found")),
    };
    if !can(&c, want).await {
        let ids = able(app, want).await;
        let why = match want {
            Want::Generate if c.info.makes(types::OutputKind::Image) => {
                ": it needs an input image. Send the image to POST /v1/images/edits, or use a model that can generate without one".to_string()
            }
            _ => String::new(),
        };
        return Err(ApiError::field(
            "model",
            format!("model `{id}` ({}) cannot serve this: it is not a model that {}{why}. Models here that can: {}", c.info.display_name, want.what(), list_or_none(&ids)),
        )
        .with_code("model_not_supported"));
    }
    Ok(c)
}

/// Version and component digest of every plugin (reads component files: off the async workers).
async fn installed(app: &App) -> HashMap<String, crate::runtime::Installed> {
    let rt = app.rt.clone();
    tokio::task::spawn_blocking(move || rt.installed()).await.unwrap_or_default().into_iter().map(|i| (i.id.clone(), i)).collect()
}

fn model_object(app: &App, id: &str, installed: &HashMap<String, crate::runtime::Installed>) -> Option<Value> {
    let m = app.rt.manifests().find(|m| m.id == id && m.kind == Kind::Model)?;
    // `created`: when the plugin was installed (its manifest's mtime), the closest thing we have.
    let created = std::fs::metadata(&m.path)
        .and_then(|md| md.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // `version` and `digest` (the component's sha256) are atelier's additions: which build serves.
    let digest = installed.get(id).and_then(|i| i.digest.clone());
    Some(json!({"id": m.id, "object": "model", "created": created, "owned_by": format!("atelier:{}", m.id), "version": m.version, "digest": digest}))
}

/// `GET /v1/models`.
pub async fn list(State(app): State<Arc<App>>) -> Json<Value> {
    let inst = installed(&app).await;
    let data: Vec<Value> = model_ids(&app).iter().filter_map(|id| model_object(&app, id, &inst)).collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`.
pub async fn retrieve(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let inst = installed(&app).await;
    model_object(&app, &id, &inst)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("The model `{id}` does not exist; GET /v1/models lists the installed ones")).with_code("model_not_found"))
}
