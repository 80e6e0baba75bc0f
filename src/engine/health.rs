//! Owner-side aggregation of raw health results into [`HealthObs`]: the consecutive
//! failure streak and a sliding window. Kept in the owner's memory only, so steady
//! state costs no Raft writes; the engine receives the counts with each observation.

use std::collections::VecDeque;

use crate::engine::input::HealthObs;

/// Health history of one host on its owner.
#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    consecutive: u32,
    window: VecDeque<bool>,
}

impl HealthTracker {
    /// Record one result and return the observation to feed the engine.
    /// `window` is the policy's window length (0: consecutive only).
    pub fn observe(&mut self, pass: bool, detail: impl Into<String>, window: u32) -> HealthObs {
        self.consecutive = if pass {
            0
        } else {
            self.consecutive.saturating_add(1)
        };
        let cap = window.max(1) as usize;
        self.window.push_back(pass);
        while self.window.len() > cap {
            self.window.pop_front();
        }
        HealthObs {
            pass,
            consecutive_failures: self.consecutive,
            window_failures: self.window.iter().filter(|p| !**p).count() as u32,
            window_len: self.window.len() as u32,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn streak_and_window() {
        let mut t = super::HealthTracker::default();
        let seq = [false, false, true, false, false, false];
        let obs: Vec<_> = seq.iter().map(|p| t.observe(*p, "", 4)).collect();
        assert_eq!(obs[1].consecutive_failures, 2);
        assert_eq!(obs[2].consecutive_failures, 0);
        assert_eq!(obs[5].consecutive_failures, 3);
        assert_eq!((obs[5].window_failures, obs[5].window_len), (3, 4));
    }
}
