//! Choosing a certificate by the name the client asks for (SNI): an exact
//! host first, then the longest matching wildcard (`*.example.com` covers
//! `a.example.com` and `a.b.example.com`, as the edge's router does), then
//! the default (the first site with TLS; also for clients that send no
//! name, such as those connecting by IP address).
//!
//! Each site has a [`Slot`] holding its current certificate. The table of
//! names is swapped whole on reload; a slot is written in place when ACME
//! renews, so a renewal never needs a reload and never drops a connection
//! (a handshake already under way keeps the certificate it chose).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, Weak};

use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::keypair::Loaded;

/// A site's current certificate; empty until ACME has obtained one.
#[derive(Clone, Default)]
pub struct Slot(Arc<RwLock<Option<Loaded>>>);

impl Slot {
    pub fn new(loaded: Option<Loaded>) -> Slot {
        Slot(Arc::new(RwLock::new(loaded)))
    }
    pub fn set(&self, loaded: Loaded) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
    }
    pub fn get(&self) -> Option<Loaded> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Attaches an OCSP response, if the slot still holds `leaf`.
    pub fn staple(&self, leaf: &CertificateDer<'_>, ocsp: Vec<u8>) -> bool {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(loaded) if loaded.key.cert.first() == Some(leaf) => {
                let mut key = CertifiedKey::clone(&loaded.key);
                key.ocsp = Some(ocsp);
                loaded.key = Arc::new(key);
                true
            }
            _ => false,
        }
    }

    pub fn downgrade(&self) -> WeakSlot {
        WeakSlot(Arc::downgrade(&self.0))
    }

    /// Whether two slots are the same one.
    pub fn same(&self, other: &Slot) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.key.clone())
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.key().is_some() {
            "Slot(certificate)"
        } else {
            "Slot(empty)"
        })
    }
}

/// A slot that does not keep its certificate alive: background tasks
/// (OCSP) hold these and stop once the table no longer uses the slot.
#[derive(Clone)]
pub struct WeakSlot(Weak<RwLock<Option<Loaded>>>);

impl WeakSlot {
    pub fn upgrade(&self) -> Option<Slot> {
        self.0.upgrade().map(Slot)
    }
}

/// Names to slots.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<String, Slot>,
    wildcard: HashMap<String, Slot>,
    default: Option<Slot>,
}

impl Table {
    /// Adds a site's host patterns ("name" or "*.suffix", lower case).
    /// The first site added is the default.
    pub fn add(&mut self, hosts: &[String], slot: &Slot) {
        for h in hosts {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(suffix) => self.wildcard.insert(suffix.to_string(), slot.clone()),
                None => self.exact.insert(h, slot.clone()),
            };
        }
        if self.default.is_none() {
            self.default = Some(slot.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }

    /// Every distinct slot in the table.
    pub fn slots(&self) -> Vec<Slot> {
        let mut out: Vec<Slot> = Vec::new();
        for s in self.exact.values().chain(self.wildcard.values()) {
            if !out.iter().any(|o| o.same(s)) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The slot for a server name, falling back to the default.
    pub fn lookup(&self, name: Option<&str>) -> Option<&Slot> {
        if let Some(name) = name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(s) = self.exact.get(&name) {
                return Some(s);
            }
            let mut rest = name.as_str();
            while let Some((_, suffix)) = rest.split_once('.') {
                if let Some(s) = self.wildcard.get(suffix) {
                    return Some(s);
                }
                rest = suffix;
            }
        }
        self.default.as_ref()
    }
}

/// The rustls certificate resolver over a swappable [`Table`].
#[derive(Debug, Default)]
pub struct Resolver {
    table: RwLock<Arc<Table>>,
}

impl Resolver {
    pub fn new(table: Table) -> Resolver {
        Resolver {
            table: RwLock::new(Arc::new(table)),
        }
    }

    /// Replaces the table (on reload); handshakes from now on use it.
    pub fn replace(&self, table: Table) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table();
        let key = table.lookup(hello.server_name()).and_then(Slot::key);
        if key.is_none() {
            tracing::debug!(
                server_name = hello.server_name().unwrap_or("-"),
                "no certificate (yet) for this name; handshake refused"
            );
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(host: &str) -> Slot {
        Slot::new(Some(
            crate::self_signed::generate(&[host.to_string()]).unwrap(),
        ))
    }

    fn name_of(s: Option<&Slot>) -> String {
        let key = s.and_then(Slot::key).unwrap();
        crate::keypair::dns_names(key.end_entity_cert().unwrap())[0].clone()
    }

    #[test]
    fn exact_before_wildcard_then_default() {
        let (first, wild, exact) = (slot("first.test"), slot("*.wp.test"), slot("a.wp.test"));
        let mut t = Table::default();
        t.add(&["first.test".into()], &first);
        t.add(&["*.wp.test".into()], &wild);
        t.add(&["A.wp.test".into()], &exact);
        assert_eq!(name_of(t.lookup(Some("a.wp.test"))), "a.wp.test");
        assert_eq!(name_of(t.lookup(Some("A.WP.test."))), "a.wp.test");
        assert_eq!(name_of(t.lookup(Some("b.wp.test"))), "*.wp.test");
        assert_eq!(name_of(t.lookup(Some("x.b.wp.test"))), "*.wp.test");
        assert_eq!(name_of(t.lookup(Some("wp.test"))), "first.test");
        assert_eq!(name_of(t.lookup(None)), "first.test");
        assert!(Table::default().lookup(Some("a")).is_none());
    }

    #[test]
    fn an_empty_slot_refuses_until_filled() {
        let empty = Slot::new(None);
        let mut t = Table::default();
        t.add(&["acme.test".into()], &empty);
        assert!(t.lookup(Some("acme.test")).and_then(Slot::key).is_none());
        empty.set(crate::self_signed::generate(&["acme.test".into()]).unwrap());
        assert_eq!(name_of(t.lookup(Some("acme.test"))), "acme.test");
    }
}
