//! Code shared by the integration tests.

#![allow(dead_code)]

pub mod faults;
pub mod gallery;
pub mod index;
pub mod registry;
pub mod wheel;
