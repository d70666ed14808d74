//! Fixed-capacity ring buffer of `f32` samples: the bounded history behind every series.

/// A ring of at most `capacity` values; pushing into a full ring overwrites the oldest value.
///
/// Values are stored as `f32` to halve the per-series footprint (target C1: <= 1 KiB per partition);
/// rates fit comfortably in 24 bits of mantissa for the comparisons made on them.
#[derive(Debug, Clone)]
pub struct Ring {
    buf: Box<[f32]>,
    head: u32,
    len: u32,
}

impl Ring {
    /// A ring holding at most `capacity` values, allocated once here.
    pub fn new(capacity: u32) -> Self {
        Ring {
            buf: vec![0.0; capacity as usize].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Maximum number of values kept.
    pub fn capacity(&self) -> u32 {
        self.buf.len() as u32
    }

    /// Number of values currently kept.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `value`, evicting the oldest one when full. A zero-capacity ring ignores pushes.
    pub fn push(&mut self, value: f32) {
        let cap = self.buf.len() as u32;
        if cap == 0 {
            return;
        }
        self.buf[self.head as usize] = value;
        self.head = (self.head + 1) % cap;
        if self.len < cap {
            self.len += 1;
        }
    }

    /// The value pushed `age` pushes ago (`0` is the newest), if still kept.
    pub fn get(&self, age: u32) -> Option<f32> {
        if age >= self.len {
            return None;
        }
        let cap = self.buf.len() as u32;
        let idx = (self.head + cap - 1 - age) % cap;
        Some(self.buf[idx as usize])
    }

    /// Copies the kept values, oldest first, into `out` (cleared first).
    pub fn copy_oldest_first(&self, out: &mut Vec<f32>) {
        out.clear();
        for age in (0..self.len).rev() {
            if let Some(v) = self.get(age) {
                out.push(v);
            }
        }
    }

    /// Heap bytes owned by this ring.
    pub fn heap_bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrites_oldest_when_full() {
        let mut r = Ring::new(3);
        for v in 1..=5 {
            r.push(v as f32);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(0), Some(5.0));
        assert_eq!(r.get(2), Some(3.0));
        assert_eq!(r.get(3), None);
        let mut out = Vec::new();
        r.copy_oldest_first(&mut out);
        assert_eq!(out, vec![3.0, 4.0, 5.0]);
    }

    #[test]
    fn zero_capacity_ignores_pushes() {
        let mut r = Ring::new(0);
        r.push(1.0);
        assert!(r.is_empty());
        assert_eq!(r.get(0), None);
    }
}
