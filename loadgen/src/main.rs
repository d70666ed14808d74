//! `loadgen`: see `docs/loadgen.md`.

fn main() {
    keep_freed_heap();
    let args: loadgen::config::Args = argh::from_env();
    let command_line: Vec<String> = std::env::args().collect();
    if let Err(message) = loadgen::cli::main_with_args(&args, &command_line) {
        eprintln!("loadgen: {message}");
        std::process::exit(1);
    }
}

/// Keeps freed heap memory in the process. A consumer frees a megabyte of decoded records after
/// every push; glibc's default gives the top of the heap back to the kernel each time, and the
/// next push faults it in again and has the kernel zero it: a quarter of loadgen's CPU in a 1 KiB
/// replay, which then capped the replay rate (G6 in docs/benchmarks/peers.md). Up to 256 MiB of
/// freed heap stays mapped, and allocations under 32 MiB come from the heap, not from mmap.
fn keep_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets glibc malloc parameters; it runs before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}
