//! Seeded randomness: a small PCG generator, a Zipf sampler, and the key and size choices built
//! on them. Nothing here reads the clock or the OS entropy pool, so a run is reproducible from
//! its `--seed`.

/// PCG-XSH-RR 64/32 (O'Neill 2014): 64-bit state, 32-bit output, tiny and statistically sound
/// enough for load shapes.
#[derive(Clone, Debug)]
pub struct Pcg32 {
    state: u64,
    increment: u64,
}

impl Pcg32 {
    const MULTIPLIER: u64 = 6_364_136_223_846_793_005;

    /// A generator for `seed`; `stream` separates generators that share a seed (one per thread).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Pcg32 {
            state: 0,
            increment: (stream << 1) | 1,
        };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed);
        rng.next_u32();
        rng
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old
            .wrapping_mul(Self::MULTIPLIER)
            .wrapping_add(self.increment);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    pub fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, bound)`; `bound` must be > 0. Lemire's multiply-shift, with rejection so
    /// that no value is favoured.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(4) {
            let word = self.next_u32().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Zipf distribution over ranks `1..=n` with exponent `s` (> 0): rank k has probability
/// proportional to `k^-s`. Rejection-inversion from a continuous envelope: O(1) memory and time,
/// whatever `n` is (Hörmann and Derflinger's idea, in the form `rand_distr` uses).
#[derive(Clone, Debug)]
pub struct Zipf {
    s: f64,
    t: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        assert!(n >= 1, "a Zipf distribution needs at least one rank");
        assert!(s > 0.0 && s.is_finite(), "the Zipf exponent must be > 0");
        let n = n as f64;
        let t = if s == 1.0 {
            1.0 + n.ln()
        } else {
            (n.powf(1.0 - s) - s) / (1.0 - s)
        };
        Zipf { s, t }
    }

    fn inverse_cdf(&self, p: f64) -> f64 {
        let pt = p * self.t;
        if pt <= 1.0 {
            pt
        } else if self.s == 1.0 {
            (pt - 1.0).exp()
        } else {
            (pt * (1.0 - self.s) + self.s).powf(1.0 / (1.0 - self.s))
        }
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut Pcg32) -> u64 {
        loop {
            let inv_b = self.inverse_cdf(rng.next_f64());
            let x = (inv_b + 1.0).floor();
            let mut ratio = x.powf(-self.s);
            if x > 1.0 {
                ratio *= inv_b.powf(self.s);
            }
            if rng.next_f64() < ratio {
                return x as u64;
            }
        }
    }
}

/// How record keys are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyDist {
    /// Records carry no key; batches go to partitions round robin.
    None,
    /// Every key of the key space equally likely.
    Uniform { key_space: u64 },
    /// Key index `rank - 1` with Zipf(`s`) ranks: key 0 is the hottest.
    Zipf { key_space: u64, s: f64 },
}

/// How record value sizes are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeDist {
    Fixed {
        bytes: u32,
    },
    /// Uniform in `min..=max`.
    Uniform {
        min_bytes: u32,
        max_bytes: u32,
    },
}

impl SizeDist {
    pub fn max_bytes(&self) -> u32 {
        match *self {
            SizeDist::Fixed { bytes } => bytes,
            SizeDist::Uniform { max_bytes, .. } => max_bytes,
        }
    }

    pub fn sample(&self, rng: &mut Pcg32) -> u32 {
        match *self {
            SizeDist::Fixed { bytes } => bytes,
            SizeDist::Uniform {
                min_bytes,
                max_bytes,
            } => min_bytes + rng.below(u64::from(max_bytes - min_bytes) + 1) as u32,
        }
    }
}

/// Chooses the partition and the keys of each batch. A batch goes to one partition (one produce
/// request), so with keys the first key decides the partition (`key % partitions`) and the other
/// keys of the batch are moved to the nearest key of the same partition, which keeps the skew.
#[derive(Clone, Debug)]
pub struct KeyChooser {
    dist: KeyDist,
    zipf: Option<Zipf>,
    partitions: u32,
    next_partition: u32,
}

impl KeyChooser {
    /// `first_partition` staggers producers so they do not all start on partition 0.
    pub fn new(dist: KeyDist, partitions: u32, first_partition: u32) -> Self {
        assert!(partitions > 0);
        let zipf = match dist {
            KeyDist::Zipf { key_space, s } => Some(Zipf::new(key_space, s)),
            _ => None,
        };
        KeyChooser {
            dist,
            zipf,
            partitions,
            next_partition: first_partition % partitions,
        }
    }

    pub fn has_keys(&self) -> bool {
        self.dist != KeyDist::None
    }

    fn sample_key(&self, rng: &mut Pcg32) -> u64 {
        match (&self.dist, &self.zipf) {
            (KeyDist::Uniform { key_space }, _) => rng.below(*key_space),
            (KeyDist::Zipf { .. }, Some(zipf)) => zipf.sample(rng) - 1,
            _ => 0,
        }
    }

    /// Fills `keys` (one per record of the batch) and returns the batch's partition. `keys` is
    /// left untouched without a key distribution.
    pub fn choose(&mut self, rng: &mut Pcg32, keys: &mut [u64]) -> u32 {
        let partitions = u64::from(self.partitions);
        let key_space = match self.dist {
            KeyDist::None => {
                let p = self.next_partition;
                self.next_partition = (p + 1) % self.partitions;
                return p;
            }
            KeyDist::Uniform { key_space } | KeyDist::Zipf { key_space, .. } => key_space,
        };
        let Some((first, rest)) = keys.split_first_mut() else {
            return 0;
        };
        *first = self.sample_key(rng);
        let partition = *first % partitions;
        for key in rest {
            let k = self.sample_key(rng);
            let mut moved = k - k % partitions + partition;
            if moved >= key_space {
                moved -= partitions;
            }
            *key = moved;
        }
        partition as u32
    }
}

/// Writes key `index` as ASCII (`k` + decimal) into `buf`, returning the used prefix.
pub fn key_bytes(index: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut n = index;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[0] = b'k';
    for i in 0..len {
        buf[1 + i] = digits[len - 1 - i];
    }
    &buf[..=len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Pcg32::new(42, 3);
        let mut b = Pcg32::new(42, 3);
        let mut c = Pcg32::new(42, 4);
        let xs: Vec<u32> = (0..8).map(|_| a.next_u32()).collect();
        let ys: Vec<u32> = (0..8).map(|_| b.next_u32()).collect();
        let zs: Vec<u32> = (0..8).map(|_| c.next_u32()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Pcg32::new(7, 0);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn zipf_rank_frequencies_follow_the_power_law() {
        for s in [0.8, 1.0, 1.3] {
            let zipf = Zipf::new(1000, s);
            let mut rng = Pcg32::new(1, 9);
            let mut counts = vec![0u64; 1001];
            let samples = 200_000;
            for _ in 0..samples {
                let k = zipf.sample(&mut rng);
                assert!((1..=1000).contains(&k));
                counts[k as usize] += 1;
            }
            // P(1)/P(2) = 2^s and P(1)/P(4) = 4^s.
            let r12 = counts[1] as f64 / counts[2] as f64;
            let r14 = counts[1] as f64 / counts[4] as f64;
            assert!((r12 / 2f64.powf(s) - 1.0).abs() < 0.06, "s={s} r12={r12}");
            assert!((r14 / 4f64.powf(s) - 1.0).abs() < 0.1, "s={s} r14={r14}");
            // The exact probability of rank 1 is 1 / H(n, s).
            let h: f64 = (1..=1000).map(|k| (k as f64).powf(-s)).sum();
            let p1 = counts[1] as f64 / samples as f64;
            assert!(
                (p1 * h - 1.0).abs() < 0.05,
                "s={s} p1={p1} expected {}",
                1.0 / h
            );
        }
    }

    #[test]
    fn keyed_batches_stay_in_one_partition() {
        let mut chooser = KeyChooser::new(
            KeyDist::Zipf {
                key_space: 103,
                s: 1.1,
            },
            4,
            0,
        );
        let mut rng = Pcg32::new(5, 5);
        let mut keys = [0u64; 16];
        for _ in 0..1000 {
            let p = chooser.choose(&mut rng, &mut keys);
            assert!(p < 4);
            for k in keys {
                assert!(k < 103);
                assert_eq!(k % 4, u64::from(p));
            }
        }
    }

    #[test]
    fn unkeyed_batches_rotate_partitions() {
        let mut chooser = KeyChooser::new(KeyDist::None, 3, 2);
        let mut rng = Pcg32::new(1, 1);
        let ps: Vec<u32> = (0..5).map(|_| chooser.choose(&mut rng, &mut [])).collect();
        assert_eq!(ps, [2, 0, 1, 2, 0]);
    }

    #[test]
    fn sizes_and_key_bytes() {
        let dist = SizeDist::Uniform {
            min_bytes: 10,
            max_bytes: 12,
        };
        let mut rng = Pcg32::new(3, 3);
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[(dist.sample(&mut rng) - 10) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
        let mut buf = [0u8; 21];
        assert_eq!(key_bytes(0, &mut buf), b"k0");
        assert_eq!(key_bytes(1234, &mut buf), b"k1234");
        assert_eq!(key_bytes(u64::MAX, &mut buf), b"k18446744073709551615");
    }
}
