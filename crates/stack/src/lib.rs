//! `murakumo up`: a whole WordPress site on one machine, from one command.
//!
//! A site directory (see [`layout`]) holds everything of one site. `up`
//! checks prerequisites ([`prereq`]), generates what is missing
//! ([`secrets`], [`site_config`], [`wordpress`]), starts MariaDB
//! ([`mariadb`]), Redis with `--redis` ([`redis`]), two php-fpm pools
//! ([`php_fpm`]) and the edge, each in a
//! write sandbox ([`sandbox`]) and under the least-privileged account
//! ([`accounts`]), and keeps them running ([`supervisor`]); `down`,
//! `status` ([`control`]), `backup` and `restore` ([`backup`]) complete it.
//!
//! Errors here go straight to a person at a terminal and are never matched
//! on, so this crate uses `anyhow` with context on every step.

pub mod accounts;
pub mod atomic;
pub mod backup;
pub mod container;
pub mod control;
pub mod layout;
pub mod lock;
pub mod logs;
pub mod mariadb;
pub mod php_fpm;
pub mod prereq;
pub mod probe;
pub mod process;
pub mod progress;
pub mod redis;
pub mod sandbox;
pub mod secrets;
pub mod site_config;
pub mod supervisor;
pub mod upgrade;
pub mod wordpress;

pub use control::{down, status, up, UpMode, UpRequest, DEFAULT_HTTPS_PORT};
pub use prereq::DEBIAN_WORDPRESS;
