//! The `sprawl` command line: `serve`, `topic`, `pub`, `sub`, `cluster`.
//!
//! Argument structs live here (argh); each command's logic lives in its own module and talks to a
//! node only through `net`'s client, exactly as any other client would.

mod cluster;
mod pubsub;
mod serve;
mod topic;

use argh::FromArgs;

pub use cluster::ClusterArgs;
pub use pubsub::{PubArgs, SubArgs};
pub use serve::ServeArgs;
pub use topic::TopicArgs;

/// Default broker address of the client commands.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7070";

#[derive(FromArgs, Debug)]
/// Sprawl: a thread-per-core message streaming engine.
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
}

// Parsed once per process, so the size of the largest variant does not matter; argh cannot
// parse into a `Box` to even it out.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Serve(ServeArgs),
    Topic(TopicArgs),
    Pub(PubArgs),
    Sub(SubArgs),
    Cluster(ClusterArgs),
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Topic(a) => topic::run(a),
        Command::Pub(a) => pubsub::run_pub(a),
        Command::Sub(a) => pubsub::run_sub(a),
        Command::Cluster(a) => cluster::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Connects a client with the CLI's defaults.
pub fn connect(broker: &str) -> Result<net::client::Client, net::client::ClientError> {
    let config = net::client::ClientConfig {
        client_name: format!("sprawl-cli/{}", env!("CARGO_PKG_VERSION")),
        ..net::client::ClientConfig::default()
    };
    net::client::Client::connect(broker, config)
}

/// `--output` of the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Parses `--output`.
pub fn parse_output(v: &str) -> Result<Output, String> {
    match v {
        "text" | "raw" => Ok(Output::Text),
        "json" => Ok(Output::Json),
        other => Err(format!("--output must be text, raw or json, not {other:?}")),
    }
}
