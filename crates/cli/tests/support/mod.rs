//! Test harness: real MariaDB, real php-fpm, real Redis, Debian's WordPress and the
//! murakumo binary, each started in a temp dir on free loopback ports and
//! stopped when the test ends. HTTP goes through `curl`, a real client.
//! One fixture a file.
#![allow(dead_code)]

pub mod docker;
mod edge;
mod http;
mod mariadb;
mod php_fpm;
pub mod php_site;
pub mod probe;
mod process;
mod redis;
mod wordpress;
pub mod wp_admin;
mod wrk;

// Each test binary uses a part of the harness.
#[allow(unused_imports)]
pub use {edge::*, http::*, mariadb::*, php_fpm::*, process::*, redis::*, wordpress::*, wrk::*};

pub const WORDPRESS: &str = "/usr/share/wordpress";
