//! `loadgen`: see `docs/loadgen.md`.

fn main() {
    let args: loadgen::config::Args = argh::from_env();
    let command_line: Vec<String> = std::env::args().collect();
    if let Err(message) = loadgen::cli::main_with_args(&args, &command_line) {
        eprintln!("loadgen: {message}");
        std::process::exit(1);
    }
}
