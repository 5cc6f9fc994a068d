//! Code shared by the integration tests.

#![allow(dead_code)]

pub mod gallery;
pub mod index;
pub mod wheel;
