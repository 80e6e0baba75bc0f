//! openraft type configuration, generic over the application state machine.
//!
//! One log entry carries a [`Batch`] of commands so that the proposal batcher can put
//! many concurrent writes behind a single fsync.

use std::cmp::Ordering;
use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::app::StateMachine;

/// Member ids are small integers chosen by the operator and persisted in the data dir.
pub type NodeId = u64;
/// A member's address as known to Raft (`host:port`, no scheme).
pub type Node = openraft::BasicNode;

/// The payload of one log entry: commands applied in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<C>(pub Vec<C>);

/// Responses to a [`Batch`], in the same order. Empty for blank and membership entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse<R>(pub Vec<R>);

/// openraft type config for application `A`. Hand-written (instead of
/// `declare_raft_types!`) so it can be generic; `PhantomData<fn() -> A>` keeps it
/// `Send + Sync + Copy` whatever `A` is.
pub struct TypeConfig<A>(PhantomData<fn() -> A>);

impl<A> Clone for TypeConfig<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for TypeConfig<A> {}
impl<A> Default for TypeConfig<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}
impl<A> fmt::Debug for TypeConfig<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<A> PartialEq for TypeConfig<A> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<A> Eq for TypeConfig<A> {}
impl<A> PartialOrd for TypeConfig<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for TypeConfig<A> {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<A: StateMachine> openraft::RaftTypeConfig for TypeConfig<A> {
    type D = Batch<A::Command>;
    type R = BatchResponse<A::Response>;
    type NodeId = NodeId;
    type Node = Node;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// Shorthands used across the crate.
pub type Raft<A> = openraft::Raft<TypeConfig<A>>;
/// A log entry of application `A`.
pub type Entry<A> = openraft::Entry<TypeConfig<A>>;
/// Log id (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// Storage error as openraft wants it.
pub type StorageError = openraft::StorageError<NodeId>;
