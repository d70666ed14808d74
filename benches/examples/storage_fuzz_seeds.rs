//! Writes the seed inputs of the storage fuzz targets into `<corpus dir>/<target>/seed-*`.
//!
//! Run: `cargo run -p benches --example storage_fuzz_seeds -- fuzz/corpus` (from the repo root),
//! then fuzz from those seeds and minimise (see `docs/benchmarks/micro.md`).

use std::path::PathBuf;

use benches::storage_fuzz::seed_inputs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: storage_fuzz_seeds <corpus dir>")?;
    let seeds = seed_inputs()?;
    for (target, name, bytes) in &seeds {
        let dir = corpus.join(target.name());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), corpus.display());
    Ok(())
}
