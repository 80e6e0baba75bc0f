//! One `u64` seed, split into independent named streams.
//!
//! Each part of a run draws from its own stream (`plan`, `nemesis`, `workload`,
//! `fleet`), so that adding a draw to one part never shifts what another part
//! decides: the same seed keeps giving the same schedule while the workload changes.
//! The generator is SplitMix64 — tiny, fast, and the same on every platform.

/// A deterministic random stream.
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of a stream name: a stable salt.
fn salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Stream {
    /// The stream `name` of `seed`.
    pub fn new(seed: u64, name: &str) -> Self {
        Stream {
            state: mix(seed ^ salt(name)),
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `p_percent` / 100.
    pub fn chance(&mut self, p_percent: u64) -> bool {
        self.range(0, 100) < p_percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut s = Stream::new(42, "plan");
                move |_| s.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut s = Stream::new(42, "plan");
                move |_| s.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..5)
            .map({
                let mut s = Stream::new(42, "nemesis");
                move |_| s.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut s = Stream::new(7, "x");
        for _ in 0..1000 {
            let v = s.range(3, 9);
            assert!((3..9).contains(&v));
        }
        assert_eq!(s.range(5, 5), 5);
    }
}
