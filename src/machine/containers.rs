//! Container names, where the runtime keeps them on disk: Docker's
//! `config.v2.json` per container, Podman's `containers.json`.

use std::collections::HashMap;
use std::path::Path;

use crate::snapshot::ContainerId;

/// Names by runtime and id.
pub struct Names(HashMap<(&'static str, String), String>);

impl Names {
    pub fn new(root: &Path) -> Names {
        let mut names = HashMap::new();
        for (id, name) in docker(root) {
            names.insert(("docker", id), name);
        }
        for (id, name) in podman(root) {
            names.insert(("podman", id), name);
        }
        Names(names)
    }

    pub fn get(&self, container: &ContainerId) -> Option<&str> {
        self.0
            .get(&(container.runtime, container.id.clone()))
            .map(String::as_str)
    }
}

fn docker(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("var/lib/docker/containers");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_string();
            let bytes = std::fs::read(entry.path().join("config.v2.json")).ok()?;
            let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            let name = config.get("Name")?.as_str()?.trim_start_matches('/');
            Some((id, name.to_string()))
        })
        .collect()
}

fn podman(root: &Path) -> Vec<(String, String)> {
    let path = root.join("var/lib/containers/storage/overlay-containers/containers.json");
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(&bytes) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?;
            let name = c.get("names")?.as_array()?.first()?.as_str()?;
            Some((id.to_string(), name.to_string()))
        })
        .collect()
}
