//! The binary: parse the command line and settings, build the verifier, hand the server to a
//! transport. Everything else lives in the library crates.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use mcp_server_entra::access::{ToolAccess, ToolConfigError};
use mcp_server_entra::cli::{Cli, Command, GlobalArgs, ServeArgs};
use mcp_server_entra::config::{AuthSettings, ConfigError, Settings};
use mcp_server_entra::graph::Graph;
use mcp_server_entra::tools::MY_PROFILE;
use mcp_server_entra::{dev, logging, telemetry, EntraMcpServer};
use thiserror::Error;
use tokio::net::TcpListener;
use transports::http::AccessControl;
use transports::redis::{RedisConfigError, RedisSessions, RedisStore};
use transports::stdio::{StdioAuth, TokenSource};
use verifiers::{
    DownstreamConfig, DownstreamConfigError, EntraConfigError, EntraVerifier, GraphAuth, GraphGroups,
    GroupMembership, SharedCache, TokenVerifier,
};

// jemalloc copes better than glibc malloc with rmcp's many short-lived per-request allocations
// (channels, tasks): +39% tools/call throughput in an A/B run, for ~1 MB more idle RSS
// (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Entra(#[from] EntraConfigError),
    #[error(transparent)]
    Tools(#[from] ToolConfigError),
    #[error(transparent)]
    Downstream(#[from] DownstreamConfigError),
    /// `REDIS_URL` cannot be used.
    #[error(transparent)]
    Redis(#[from] RedisConfigError),
    #[error("cannot listen on {addr}: {cause}; is another server using the port? (set {setting})")]
    Bind {
        addr: std::net::SocketAddr,
        cause: std::io::Error,
        /// Where the address comes from: `PORT or --port`, `METRICS_ADDR`.
        setting: &'static str,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Http(#[from] transports::http::HttpConfigError),
    #[error(transparent)]
    Stdio(#[from] transports::stdio::StdioError),
    #[error(transparent)]
    TokenSource(#[from] transports::stdio::TokenSourceError),
    #[error("cannot start the Prometheus metrics recorder: {0}")]
    Metrics(metrics_exporter_prometheus::BuildError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
}

fn main() -> ExitCode {
    let (command, global) = match Cli::parse().into_command() {
        Ok(parsed) => parsed,
        Err(usage) => usage.exit(),
    };
    match run(command, global) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp-server-entra: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, global: GlobalArgs) -> Result<(), RunError> {
    let serve_args = match &command {
        Command::Serve(args) => args.clone(),
        Command::Stdio => ServeArgs::default(),
    };
    let settings = Settings::load(&global, &serve_args)?;
    // Who may call which tool: the declarations in tools.rs with the file's [tools.<name>]
    // tables, checked against the server's tools before anything starts.
    let access = Arc::new(
        ToolAccess::new(
            &settings.identifier_uri,
            &settings.policy().required_scopes,
            &settings.tools,
        )?
        .with_implications(
            settings.policy().implications.clone(),
            &settings.policy().required_app_roles,
        )?
        .with_required_groups(&settings.groups.required)?
        .with_rate_limit_max_tracked(settings.http.rate_limit_max_tracked),
    );
    let default_filter = match command {
        Command::Serve(_) => logging::SERVE_DEFAULT,
        Command::Stdio => logging::STDIO_DEFAULT,
    };
    let trace_settings = telemetry::wanted_by_process()?;
    let traces = logging::init(settings.log_format, default_filter, trace_settings)?;
    verifiers::telemetry::set_include_user_names(settings.traces_include_user_names);
    if let (Some(_), Some(trace_settings)) = (&traces, trace_settings) {
        tracing::info!(
            endpoint = %telemetry::endpoint_for_log(),
            propagate = trace_settings.propagate,
            user_names = settings.traces_include_user_names,
            "traces are exported over OTLP (OTEL_* variables)"
        );
    }
    // What is enforced, as one block of lines: a setting that did not take effect shows here.
    // `my_profile` is not listed without a downstream credential: neither is its rule.
    let tools = access
        .describe()
        .into_iter()
        .filter(|line| settings.downstream.is_some() || !line.starts_with(&format!("{MY_PROFILE}:")))
        .map(|line| format!("tool {line}"));
    for line in settings.policy_lines().into_iter().chain(tools) {
        tracing::info!("authorization policy: {line}");
    }
    if settings.files_read.is_empty() {
        tracing::info!("settings from the environment and flags only: no settings file read (name one with --config or --env-file)");
    } else {
        tracing::info!(files = ?settings.files_read, "settings files read");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) => serve_http(settings, access).await,
            Command::Stdio => serve_stdio(settings, access).await,
        }
    });
    drop(runtime);
    // After the last request: the spans still queued are sent before the process ends.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    result
}

/// What `build_verifier` made.
struct Built {
    verifier: Arc<dyn TokenVerifier>,
    /// In dev mode, the dev user's token.
    dev_token: Option<String>,
    /// Downstream calls (`my_profile`), when a server credential is configured.
    downstream: Option<Arc<Graph>>,
    /// Redis, when replicas share state (`REDIS_URL`).
    redis: Option<RedisStore>,
}

impl Built {
    /// The MCP server the tools run in: who may call which tool, and `my_profile` when a
    /// downstream credential is configured.
    fn server(&self, access: &Arc<ToolAccess>) -> EntraMcpServer {
        let server = EntraMcpServer::from_access(access.clone());
        match &self.downstream {
            Some(downstream) => server.with_downstream(downstream.clone()),
            None => server,
        }
    }
}

/// The verifier the settings ask for, and in dev mode the dev user's token. Entra's verifier
/// starts loading its keys (in the background after a first attempt).
async fn build_verifier(
    settings: &Settings,
    access: &ToolAccess,
    announce_dev_token: bool,
) -> Result<Built, RunError> {
    match &settings.auth {
        AuthSettings::Entra { config, policy } => {
            let verifier = EntraVerifier::new((**config).clone(), policy.clone())?;
            let redis = redis_store(settings).await?;
            let downstream_config = downstream_config(settings, redis.as_ref());
            if access.uses_groups() {
                access.set_group_membership(group_membership(
                    settings,
                    downstream_config.as_ref(),
                    &verifier,
                )?);
            }
            let downstream = match &settings.downstream {
                None => None,
                Some(d) => {
                    let config = downstream_config.clone().unwrap_or_else(|| d.config.clone());
                    let provider = verifier.on_behalf_of(config)?;
                    tracing::info!(
                        credential = provider.credential_kind(),
                        scopes = provider.scopes(),
                        graph = %d.graph_base_url,
                        "downstream calls on behalf of the caller are on (my_profile)"
                    );
                    if provider.credential_kind() == "secret" {
                        tracing::warn!(
                            "AZURE_CLIENT_SECRET: the server proves its identity with a client secret, which can leak and expires; \
                             a managed identity, workload identity federation or a certificate needs none (docs/downstream.md)"
                        );
                    }
                    Some(Arc::new(Graph::new(provider, d.graph_base_url.clone())))
                }
            };
            verifier.start().await;
            Ok(Built {
                verifier: Arc::new(verifier),
                dev_token: None,
                downstream,
                redis,
            })
        }
        AuthSettings::Dev {
            token,
            policy,
            scopes,
            roles,
        } => {
            let token = match token {
                Some(token) => token.clone(),
                None => {
                    let token = dev::random_token();
                    if announce_dev_token {
                        eprintln!(
                            "mcp-server-entra: dev token (send as `Authorization: Bearer <token>`): {token}"
                        );
                    }
                    token
                }
            };
            tracing::warn!("DEV MODE: tokens are NOT verified against Entra; one static identity, loopback only. Never use in production.");
            Ok(Built {
                verifier: Arc::new(dev::dev_verifier(&token, policy.clone(), scopes, roles)),
                dev_token: Some(token),
                downstream: None,
                redis: redis_store(settings).await?,
            })
        }
    }
}

async fn serve_http(settings: Settings, access: Arc<ToolAccess>) -> Result<(), RunError> {
    let listener = TcpListener::bind(settings.bind)
        .await
        .map_err(|cause| RunError::Bind {
            addr: settings.bind,
            cause,
            setting: "PORT or --port",
        })?;
    // Both addresses are taken before anything is served, so a busy metrics port stops start-up
    // instead of a running server.
    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|cause| RunError::Bind {
            addr,
            cause,
            setting: "METRICS_ADDR",
        })?),
        None => None,
    };
    let mut http = settings.http.clone();
    if !settings.public_url_set {
        // The default PUBLIC_URL names the port; with PORT=0 that is the one the OS picked.
        if let Ok(addr) = listener.local_addr() {
            if let Ok(url) = url::Url::parse(&format!("http://localhost:{}", addr.port())) {
                http.public_url = url;
            }
        }
    }
    let built = build_verifier(&settings, &access, true).await?;
    if !settings.public_url_set && !settings.bind.ip().is_loopback() {
        tracing::warn!(
            "PUBLIC_URL is not set: the metadata will advertise {} — set it to the URL clients use",
            http.resource()
        );
    }
    if let Some(warning) = settings.resource_mismatch() {
        tracing::warn!("{warning}");
    }
    let server_template = built.server(&access);
    let mut control = AccessControl::new(built.verifier.clone()).with_tool_gate(access.clone());
    if let (Some(store), true) = (&built.redis, http.legacy_sessions) {
        tracing::info!("legacy sessions are shared by the replicas in Redis");
        control = control.with_shared_sessions(Arc::new(RedisSessions::new(
            store.clone(),
            http.session_idle_timeout,
        )));
    }
    let server = transports::http::serve(listener, http.clone(), control, move || server_template.clone())?;
    tracing::info!(
        address = %server.local_addr(),
        endpoint = %http.resource(),
        legacy_sessions = http.legacy_sessions,
        "serving MCP over streamable HTTP"
    );
    let shutdown = server.shutdown_token();
    if let Some(listener) = metrics_listener {
        start_metrics(listener, shutdown.clone())?;
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.cancel();
    });
    server.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// How users' groups are found: the token's `groups` claim, and on overage Microsoft Graph
/// with the server's credential (or on the caller's behalf), when one is configured.
/// Redis, when `REDIS_URL` is set: connected lazily, so a Redis that is down at start-up is
/// logged here and retried on use.
async fn redis_store(settings: &Settings) -> Result<Option<RedisStore>, RunError> {
    let Some(redis) = &settings.redis else {
        return Ok(None);
    };
    let store = RedisStore::new(&redis.url, redis.timeout)?.with_key_prefix(&redis.key_prefix);
    match store.ping().await {
        Ok(()) => tracing::info!(
            url = store.url_for_log(),
            "state shared by replicas is kept in Redis"
        ),
        Err(error) => tracing::warn!(
            url = store.url_for_log(),
            %error,
            "Redis does not answer yet: new legacy sessions get 503 and downstream tokens are exchanged per replica until it does"
        ),
    }
    Ok(Some(store))
}

/// The downstream provider's configuration, its cache shared in `redis` when there is one;
/// `None` without a server credential.
fn downstream_config(settings: &Settings, redis: Option<&RedisStore>) -> Option<DownstreamConfig> {
    let downstream = settings.downstream.as_ref()?;
    let mut config = downstream.config.clone();
    if let (Some(store), Some(keys), Some(redis)) = (redis, &downstream.cache_keys, &settings.redis) {
        config.shared = Some(SharedCache {
            store: Arc::new(store.clone()),
            keys: keys.clone(),
            timeout: redis.timeout,
        });
    }
    Some(config)
}

fn group_membership(
    settings: &Settings,
    config: Option<&DownstreamConfig>,
    verifier: &EntraVerifier,
) -> Result<GroupMembership, RunError> {
    let (Some(downstream), Some(config)) = (&settings.downstream, config) else {
        tracing::warn!(
            "tools are limited to groups, but no server credential is configured: a user in more groups than fit in a token              (overage, more than 200) is refused; configure one to look them up in Microsoft Graph (docs/configuration.md#groups)"
        );
        return Ok(GroupMembership::token_only());
    };
    let graph = downstream.graph_base_url.clone();
    let provider = match settings.groups.graph_auth {
        GraphAuth::App => verifier.on_behalf_of(config.clone())?,
        GraphAuth::OnBehalfOf => {
            let mut config = config.clone();
            config.scopes = vec![GraphGroups::delegated_scope(&graph)];
            verifier.on_behalf_of(config)?
        }
    };
    tracing::info!(
        graph_auth = ?settings.groups.graph_auth,
        cache_secs = settings.groups.cache_ttl.as_secs(),
        "group overage is resolved with Microsoft Graph checkMemberGroups"
    );
    let lookup = GraphGroups::new(provider, graph, settings.groups.graph_auth);
    Ok(GroupMembership::new(
        Some(lookup),
        settings.groups.cache_ttl,
        GROUP_CACHE_ENTRIES,
    ))
}

/// Users whose Graph answers are remembered at once (a few hundred bytes each).
const GROUP_CACHE_ENTRIES: usize = 100_000;

/// Installs the Prometheus recorder and serves it on its own listener.
fn start_metrics(listener: TcpListener, stop: tokio_util::sync::CancellationToken) -> Result<(), RunError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let buckets = [
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1, 1.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("mcp_token_verification_seconds".into()), &buckets)
        .and_then(|builder| builder.install_recorder())
        .map_err(RunError::Metrics)?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(address = %addr, "serving Prometheus metrics at /metrics");
    }
    transports::http::serve_metrics(listener, move || handle.render(), stop);
    Ok(())
}

async fn serve_stdio(settings: Settings, access: Arc<ToolAccess>) -> Result<(), RunError> {
    let built = build_verifier(&settings, &access, false).await?;
    let stdio = &settings.stdio;
    // The scope a caller's token needs, for the messages that say how to get one.
    let scope = settings.first_scope_uri().unwrap_or_default();
    let source = match (
        built.dev_token.clone(),
        &stdio.token,
        &stdio.token_file,
        &stdio.token_command,
    ) {
        // In dev mode with no token configured, the caller is the dev user.
        (Some(token), None, None, None) => TokenSource::Fixed(token),
        _ => TokenSource::from_settings(
            stdio.token.clone(),
            stdio.token_file.clone(),
            stdio.token_command.clone(),
            stdio.command_timeout,
            &scope,
        )?,
    };
    let auth = Arc::new(StdioAuth::new(built.verifier.clone(), source).with_scope(scope));
    transports::stdio::serve(built.server(&access), auth, rmcp::transport::stdio()).await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
