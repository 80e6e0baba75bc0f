//! The clusters a run can use. Only the in-process tier exists so far.

pub mod inproc;
