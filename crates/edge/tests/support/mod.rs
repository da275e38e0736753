//! The in-process harness of the pipeline tests: the edge served by
//! `murakumo_edge::serve` on listeners of the test's own ([`edge`]), in
//! front of a FastCGI responder ([`fastcgi_responder`]).

#![allow(dead_code)] // each test file uses a part

pub mod edge;
pub mod fastcgi_responder;
