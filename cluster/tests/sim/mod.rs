//! The replication simulation's pieces: a seeded generator, a faulty network, and the world.

/// Returns `Err` with a formatted reason from the enclosing function.
macro_rules! fail {
    ($($t:tt)*) => { return Err(format!($($t)*)) };
}

mod checks;
pub mod net;
mod node;
pub mod rng;
pub mod world;
