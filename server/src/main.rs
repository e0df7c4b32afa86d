//! `naksha`: the server (`naksha serve`) and the operator CLI that talks to it.

use std::path::PathBuf;

// Embedding allocates large, short-lived tensors: glibc's malloc serves them as
// fresh mmaps (a page fault per page, every batch); mimalloc reuses memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use naksha_server::cli::{self, Client};
use naksha_server::settings::Settings;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "naksha", version, about = "Naksha vector database: server and operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Remote {
    /// Base URL of a running server.
    #[arg(long, env = "NAKSHA_URL", default_value = "http://127.0.0.1:6480", global = true)]
    url: String,
    /// API key (or JWT), when the server requires one.
    #[arg(long, env = "NAKSHA_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// With an admin key: the tenant to address (X-Naksha-Tenant).
    #[arg(long, env = "NAKSHA_TENANT", global = true)]
    tenant: Option<String>,
}

impl Remote {
    fn client(self) -> Client {
        Client::new(&self.url, self.api_key).with_tenant(self.tenant)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API over a data directory.
    Serve {
        /// Settings file (TOML); see config/naksha.toml for every key.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (storage.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Embedding models folder (default ./naksha-models).
        #[arg(long)]
        models_dir: Option<PathBuf>,
        /// HTTP listen address (server.http_addr); port 0 picks a free port.
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
        /// gRPC listen address (server.grpc_addr); port 0 picks a free port.
        #[arg(long)]
        grpc_addr: Option<std::net::SocketAddr>,
    },
    /// Manage tenants on a running server (admin key).
    Tenants {
        #[command(subcommand)]
        action: cli::TenantsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage a tenant's API keys on a running server.
    Keys {
        #[command(subcommand)]
        action: cli::KeysAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Ingestion jobs on a running server: files, S3, Postgres (snapshot, incremental, CDC).
    Jobs {
        #[command(subcommand)]
        action: cli::JobsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Snapshots, downloads, restores and S3 backups on a running server.
    Snapshots {
        #[command(subcommand)]
        action: cli::SnapshotsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage collections on a running server.
    Collections {
        #[command(subcommand)]
        action: cli::CollectionsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Import points from a JSON Lines file (one {"id", "vector"?, "text"?, "payload"?} per line).
    Import {
        /// The file.
        file: PathBuf,
        /// Target collection.
        #[arg(long)]
        collection: String,
        /// Points per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Embedding models installed locally.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Run a query: by vector, or by text with the collection's model.
    Query {
        /// Collection.
        #[arg(long)]
        collection: String,
        /// Query vector as JSON, e.g. "[0.1, 0.2]".
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        vector: Option<String>,
        /// Query text: BM25 terms (text_fields) and/or embedded by the collection's model.
        #[arg(long)]
        text: Option<String>,
        /// vector, text or hybrid (default: hybrid when the collection can do both).
        #[arg(long)]
        mode: Option<String>,
        /// Return highlighted fragments of the text fields.
        #[arg(long)]
        highlight: bool,
        /// Results.
        #[arg(long, default_value_t = naksha_server::ops::DEFAULT_QUERY_LIMIT)]
        limit: usize,
        /// Filter as JSON.
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Ask a question: an answer from the collection's text, with citations (RAG, extractive).
    Rag {
        /// Collection (it needs an embedding model).
        #[arg(long)]
        collection: String,
        /// The question, in plain words.
        #[arg(long)]
        question: String,
        /// Most context passages.
        #[arg(long, default_value_t = naksha_server::ops::DEFAULT_RAG_LIMIT)]
        limit: usize,
        /// Token budget for the passages.
        #[arg(long, default_value_t = naksha_server::ops::DEFAULT_RAG_CONTEXT_TOKENS)]
        max_context_tokens: usize,
        /// Filter as JSON.
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum ModelsAction {
    /// List the models installed in a models folder.
    List {
        /// The folder (the server's --models-dir).
        #[arg(long, env = "NAKSHA__MODELS__DIR", default_value = "./naksha-models")]
        models_dir: PathBuf,
    },
}

fn init_tracing(format: &str, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve { config, data_dir, models_dir, http_addr, grpc_addr } => {
            let mut settings = Settings::load(config.as_deref(), std::env::vars())?;
            if let Some(d) = data_dir {
                settings.storage.data_dir = d;
            }
            if let Some(d) = models_dir {
                settings.models.dir = d;
            }
            if let Some(a) = http_addr {
                settings.server.http_addr = a;
            }
            if let Some(a) = grpc_addr {
                settings.server.grpc_addr = a;
            }
            init_tracing(&settings.log.format, &settings.log.level);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let result = rt.block_on(naksha_server::run(settings, naksha_server::shutdown_signal()));
            // Blocking work still running (a request past the shutdown timeout) does not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }
        Command::Tenants { action, remote } => cli::tenants(&remote.client(), action),
        Command::Keys { action, remote } => cli::keys(&remote.client(), action),
        Command::Jobs { action, remote } => cli::jobs(&remote.client(), action),
        Command::Snapshots { action, remote } => cli::snapshots(&remote.client(), action),
        Command::Collections { action, remote } => cli::collections(&remote.client(), action),
        Command::Import { file, collection, batch, remote } => cli::import(&remote.client(), &file, &collection, batch),
        Command::Query { collection, vector, text, mode, highlight, limit, filter, remote } => {
            let what = match (vector, text) {
                (Some(v), _) => cli::QueryInput::Vector(v),
                (None, t) => cli::QueryInput::Text(t.unwrap_or_default()),
            };
            let opts = cli::QueryOptions { limit, filter, mode, highlight };
            cli::query(&remote.client(), &collection, what, &opts)
        }
        Command::Rag { collection, question, limit, max_context_tokens, filter, remote } => {
            let body =
                serde_json::json!({"question": question, "limit": limit, "max_context_tokens": max_context_tokens});
            cli::rag(&remote.client(), &collection, body, filter.as_deref())
        }
        Command::Models { action: ModelsAction::List { models_dir } } => cli::models_list(&models_dir),
    }
}
