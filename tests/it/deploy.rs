//! The deployment files name only settings, paths and ports that the code really has.

use mcp_server_entra::config::{setting, SETTINGS};

const DOCKERFILE: &str = include_str!("../../deploy/Dockerfile");
const DEPLOYMENT: &str = include_str!("../../deploy/k8s/deployment.yaml");
const CONFIGMAP: &str = include_str!("../../deploy/k8s/configmap.yaml");
const SERVICE: &str = include_str!("../../deploy/k8s/service.yaml");

/// `- name: X` entries under `env:` and keys under the ConfigMap's `data:`.
fn env_names() -> Vec<String> {
    let mut names: Vec<String> = DEPLOYMENT
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    let data = CONFIGMAP.split("\ndata:").nth(1).unwrap();
    names.extend(
        data.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, _)| k.trim().to_owned()),
    );
    names
}

#[test]
fn every_environment_variable_in_the_manifests_is_a_real_setting() {
    let names = env_names();
    assert!(names.len() > 8, "{names:?}");
    for name in &names {
        assert!(
            setting(name).is_some(),
            "deploy/k8s sets {name}, which the server does not read"
        );
    }
    for line in DOCKERFILE
        .lines()
        .filter(|l| l.contains('=') && !l.trim_start().starts_with('#'))
    {
        let name = line
            .trim()
            .trim_start_matches("ENV ")
            .split('=')
            .next()
            .unwrap()
            .trim();
        if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty() {
            assert!(
                setting(name).is_some(),
                "the Dockerfile sets {name}, which the server does not read"
            );
        }
    }
}

#[test]
fn probes_ports_and_binary_match_the_code() {
    assert!(DEPLOYMENT.contains("path: /health") && DEPLOYMENT.contains("path: /ready"));
    let port = setting("PORT").unwrap().default;
    assert!(DEPLOYMENT.contains(&format!("containerPort: {port}")));
    assert!(DEPLOYMENT.contains(&format!("value: \"{port}\"")));
    assert!(DOCKERFILE.contains(&format!("PORT={port}")) && DOCKERFILE.contains(&format!("EXPOSE {port}")));
    assert!(DEPLOYMENT.contains("containerPort: 9464") && DEPLOYMENT.contains("0.0.0.0:9464"));
    assert!(DEPLOYMENT.contains("prometheus.io/path: \"/metrics\""));
    assert!(SERVICE.contains("targetPort: http"));
    assert!(
        DOCKERFILE.contains("--bin mcp-server-entra")
            && DOCKERFILE.contains("ENTRYPOINT [\"/usr/local/bin/mcp-server-entra\"]")
    );
    // The stateless setting and the public URL are wired.
    assert!(CONFIGMAP.contains("LEGACY_SESSIONS: \"false\"") && CONFIGMAP.contains("PUBLIC_URL:"));
    assert!(SETTINGS.iter().any(|s| s.name == "SHUTDOWN_TIMEOUT_SECS"));
}
