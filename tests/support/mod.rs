//! Code shared by the integration tests.

#![allow(dead_code)]

pub mod index;
pub mod wheel;
