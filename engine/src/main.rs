//! The `sprawl` binary: parse the command line and hand over to the library.

fn main() {
    let cli: engine::cli::Cli = argh::from_env();
    std::process::exit(engine::cli::run(cli));
}
