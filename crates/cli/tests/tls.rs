//! HTTPS end to end through the murakumo binary, with real clients (curl,
//! nghttp, openssl s_client) and a real ACME CA (Debian's pebble): h2 and
//! http/1.1 by ALPN, SNI (exact, second site, wildcard), refused old TLS
//! versions, redirect and HSTS, reload without dropping connections,
//! certificates obtained, renewed and failing to renew over ACME, one
//! certificate ordered for two edges that share a Redis, and
//! `X-Forwarded-*` believed only from trusted proxies.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{curl, free_port, wait_until, Proc, Resp, WordPress, WpOptions};

/// A test CA made with the openssl CLI, signing leaf certificates.
struct Pki {
    dir: PathBuf,
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is not installed; run scripts/test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "30",
            "-subj",
            "/CN=murakumo test CA",
        ]);
        Pki { dir }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// Signs a leaf for `names`; returns (fullchain, key) paths.
    fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.leaf_with(file, names, "")
    }

    /// A leaf with more X.509v3 extension lines (openssl's extfile syntax).
    fn leaf_with(&self, file: &str, names: &[&str], extra: &str) -> (PathBuf, PathBuf) {
        let p = |f: String| self.dir.join(f).display().to_string();
        let ext = self.dir.join(format!("{file}.ext"));
        let sans: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            &ext,
            format!("subjectAltName={}\n{extra}\n", sans.join(",")),
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p(format!("{file}.key")),
            "-out",
            &p(format!("{file}.csr")),
            "-subj",
            &format!("/CN={}", names[0]),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(format!("{file}.csr")),
            "-CA",
            &p("ca.pem".into()),
            "-CAkey",
            &p("ca.key".into()),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &p(format!("{file}.pem")),
            "-extfile",
            &ext.display().to_string(),
        ]);
        (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        )
    }
}

/// The SHA-256 fingerprint of the certificate the server presents for `name`.
fn served_fingerprint(port: u16, name: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect 127.0.0.1:{port} -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn https_get(host: &str, port: u16, path: &str, ca: &str, args: &[&str]) -> Resp {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let mut all = vec!["--cacert", ca, "--resolve", resolve.as_str()];
    all.extend_from_slice(args);
    curl(&format!("https://{host}:{port}{path}"), &all)
}

#[test]
fn wordpress_over_h2_with_sni_redirect_hsts_and_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (blog_cert, blog_key) = pki.leaf("blog", &["wp.test"]);
    let (shop_cert, shop_key) = pki.leaf("shop", &["shop.test"]);
    let (wild_cert, wild_key) = pki.leaf("wild", &["*.wild.test"]);
    let tail = format!(
        "\n[[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\nroot = \"{{root}}\"\nphp = [\"{{php}}\"]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n\n[[site]]\nname = \"wild\"\nhosts = [\"*.wild.test\"]\nroot = \"{{root}}\"\nphp = [\"{{php}}\"]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
        shop_cert.display(),
        shop_key.display(),
        wild_cert.display(),
        wild_key.display()
    );
    let site_tls = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        blog_cert.display(),
        blog_key.display()
    );
    let wp = WordPress::start_with(WpOptions {
        server_extra: "tls_listen = [\"127.0.0.1:{tls_port}\"]\nredirect_https = true\nhsts = true",
        site_extra: &site_tls,
        https: true,
        tail: &tail,
        ..WpOptions::default()
    });
    let (port, ca) = (wp.tls_port, pki.ca());

    // A cached WordPress page over h2, the certificate verified by curl.
    let first = https_get("wp.test", port, "/", &ca, &["--http2"]);
    assert_eq!(
        (first.status, first.version.as_str()),
        (200, "HTTP/2"),
        "{}",
        first.text()
    );
    assert!(first.text().contains(support::SEEDED_TITLE));
    assert_eq!(first.cache(), "MISS");
    assert_eq!(
        first.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let again = https_get("wp.test", port, "/", &ca, &["--http2"]);
    assert_eq!((again.status, again.cache()), (200, "HIT"));
    // http/1.1 over TLS too.
    let h1 = https_get("wp.test", port, "/", &ca, &["--http1.1"]);
    assert_eq!((h1.version.as_str(), h1.cache()), ("HTTP/1.1", "HIT"));

    // nghttp, an h2-only client, gets the cached page.
    let out = Command::new("nghttp")
        .args(["-nv", "-H", &format!(":authority: wp.test:{port}")])
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("nghttp is not installed; run scripts/test");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nghttp: {log}");
    assert!(log.contains("The negotiated protocol: h2"), "{log}");
    assert!(
        log.contains(":status: 200") && log.contains("x-cache: HIT"),
        "{log}"
    );

    // SNI: each name gets its own certificate (curl verifies the name).
    for host in ["shop.test", "a.wild.test"] {
        let r = https_get(host, port, "/wp-login.php", &ca, &["-o", "/dev/null"]);
        assert!(r.status == 200 || r.status == 302, "{host}: {}", r.status);
    }
    let fp = |name: &str| served_fingerprint(port, name);
    let (blog_fp, shop_fp, wild_fp) = (fp("wp.test"), fp("shop.test"), fp("x.wild.test"));
    assert!(blog_fp.starts_with("sha256 Fingerprint="), "{blog_fp}");
    assert!(blog_fp != shop_fp && shop_fp != wild_fp && blog_fp != wild_fp);
    // Deeper names pick the wildcard too (the site answers them; a client
    // decides whether one label of `*` may cover two); unknown names and
    // clients without SNI get the default (first) certificate.
    assert_eq!(fp("deep.b.wild.test"), wild_fp);
    assert_eq!(fp("unknown.test"), blog_fp);

    // TLS 1.0 and 1.1 are refused by the server (the client offers them).
    for version in ["-tls1", "-tls1_1"] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-servername",
                "wp.test",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{version} was accepted: {text}");
        // An alert from the server (rustls sends handshake_failure): the
        // client did offer the old version, the server said no.
        assert!(text.contains("SSL alert number"), "{version}: {text}");
    }
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
            "-servername",
            "wp.test",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "TLS 1.2 refused");

    // Plain HTTP redirects to HTTPS, keeping the path and query.
    let r = wp.get("/?p=1", &[]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://wp.test:{port}/?p=1").as_str())
    );
    assert!(r.header("strict-transport-security").is_none());

    // Reload with a new certificate: a connection open across the reload
    // keeps working; new handshakes get the new certificate.
    let (new_cert, new_key) = pki.leaf("blog2", &["wp.test"]);
    std::fs::copy(&new_cert, &blog_cert).unwrap();
    std::fs::copy(&new_key, &blog_key).unwrap();
    let url = format!("https://wp.test:{port}/");
    let resolve = format!("wp.test:{port}:127.0.0.1");
    let mut slow = Command::new("curl");
    slow.args([
        "-sS",
        "--http2",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--rate",
        "2/s",
        "-w",
        "%{http_code} %{num_connects}\n",
    ]);
    for _ in 0..6 {
        slow.args(["-o", "/dev/null", &url]);
    }
    let child = slow.stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    wp.edge.proc.signal("HUP");
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    let results: Vec<&str> = lines.lines().collect();
    assert_eq!(results.len(), 6, "{lines}");
    assert!(results.iter().all(|l| l.starts_with("200 ")), "{lines}");
    let connects: usize = results
        .iter()
        .filter_map(|l| l.split(' ').nth(1)?.parse::<usize>().ok())
        .sum();
    assert_eq!(
        connects, 1,
        "the connection was dropped by the reload: {lines}"
    );
    wait_until("the new certificate", Duration::from_secs(5), || {
        fp("wp.test") != blog_fp
    });
    // A reload naming a broken certificate is refused; the current one serves.
    let new_fp = fp("wp.test");
    std::fs::write(&blog_key, "not a key").unwrap();
    wp.edge.proc.signal("HUP");
    wait_until("the refused reload", Duration::from_secs(5), || {
        wp.edge.log_text().contains("reload refused")
    });
    assert_eq!(fp("wp.test"), new_fp);
    assert_eq!(https_get("wp.test", port, "/", &ca, &[]).status, 200);
}

/// Debian's pebble (an ACME CA for tests) with its DNS stub,
/// pebble-challtestsrv, answering every name with 127.0.0.1. Pebble
/// validates HTTP-01 on `http_port`: the edge's plain listener.
struct Pebble {
    _dns: Proc,
    ca: Proc,
    acme_port: u16,
    mgmt_port: u16,
}

impl Pebble {
    fn start(dir: &Path, pki: &Pki, http_port: u16) -> Pebble {
        let (cert, key) = pki.leaf("pebble", &["localhost", "127.0.0.1"]);
        let (dns_port, dns_mgmt, acme_port, mgmt_port) =
            (free_port(), free_port(), free_port(), free_port());
        let dns_addr = format!("127.0.0.1:{dns_port}");
        let dns = Proc::spawn(
            "pebble-challtestsrv",
            Command::new("pebble-challtestsrv").args([
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ]),
            &dir.join("challtestsrv.log"),
        );
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let ca = Proc::spawn(
            "pebble",
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &dns_addr])
                // No random sleeps, no nonce rejections, a fresh
                // validation for every order.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0"),
            &dir.join("pebble.log"),
        );
        let pebble = Pebble {
            _dns: dns,
            ca,
            acme_port,
            mgmt_port,
        };
        let dir_url = pebble.directory();
        wait_until("pebble's directory", Duration::from_secs(20), || {
            Command::new("curl")
                .args(["-skf", "--max-time", "1", &dir_url])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        pebble
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The root that pebble (re)generated at start, as PEM in `dir`.
    fn root(&self, dir: &Path) -> String {
        let r = curl(
            &format!("https://127.0.0.1:{}/roots/0", self.mgmt_port),
            &["-k"],
        );
        assert_eq!(r.status, 200);
        let path = dir.join("pebble-root.pem");
        std::fs::write(&path, &r.body).unwrap();
        path.display().to_string()
    }
}

fn metric(edge: &support::Edge, line_start: &str) -> Option<f64> {
    let m = curl(&edge.ops("/metrics"), &[]).text();
    m.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn acme_obtains_renews_and_survives_a_failing_ca() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::new(d);
    let (port, tls_port, ops_port) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(d, &pki, port);
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "served over ACME").unwrap();
    let fpm = support::PhpFpm::start(d, "acme", &[]);
    // Relative paths: against the configuration's directory.
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\ntls_listen = [\"127.0.0.1:{tls_port}\"]\nops_listen = \"127.0.0.1:{ops_port}\"\ndrain_delay = \"0s\"\n\n[acme]\nemail = \"ops@acme.test\"\ndirectory = \"{dir}\"\nstorage = \"acme-storage\"\nca_root = \"pki/ca.pem\"\n\n[[site]]\nname = \"shop\"\nhosts = [\"acme.test\", \"www.acme.test\"]\nroot = \"{root}\"\nphp = [\"unix:{sock}\"]\ntls = {{ acme = true }}\n",
        dir = pebble.directory(),
        root = root.display(),
        sock = fpm.socket.display(),
    );
    let mut edge = support::Edge::start_on(d, &config, port, ops_port);
    let issued = "murakumo_acme_certificates_issued_total{site=\"shop\"} ";
    wait_until("the first certificate", Duration::from_secs(60), || {
        metric(&edge, issued) == Some(1.0)
    });
    let pebble_root = pebble.root(d);
    for host in ["acme.test", "www.acme.test"] {
        let r = https_get(host, tls_port, "/index.html", &pebble_root, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "served over ACME"));
    }
    assert!(metric(&edge, "murakumo_certificate_expiry_seconds{site=\"shop\"} ").unwrap() > 1e9);
    let storage = d.join("acme-storage");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&storage), 0o700);
    assert_eq!(mode(&storage.join("account.json")), 0o600);
    assert_eq!(mode(&storage.join("sites/shop/key.pem")), 0o600);
    assert!(
        !edge.log_text().contains("PRIVATE KEY"),
        "a key reached the log"
    );

    // Forced renewal: a new certificate, served without a restart.
    let first = served_fingerprint(tls_port, "acme.test");
    let renew = edge.ops("/acme/renew?site=shop");
    let r = curl(&renew, &["-X", "POST"]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(metric(&edge, issued), Some(2.0));
    let second = served_fingerprint(tls_port, "acme.test");
    assert_ne!(first, second);
    assert!(curl(&edge.ops("/readyz"), &[]).text().starts_with("ready"));

    // The CA goes away: renewal fails, is reported, the certificate serves.
    drop(pebble.ca);
    let r = curl(&renew, &["-X", "POST"]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("keeps serving"), "{}", r.text());
    assert_eq!(
        metric(&edge, "murakumo_acme_renewal_failing{site=\"shop\"} "),
        Some(1.0)
    );
    assert_eq!(
        metric(&edge, "murakumo_acme_failures_total{site=\"shop\"} "),
        Some(1.0)
    );
    let ready = curl(&edge.ops("/readyz"), &[]);
    assert_eq!(ready.status, 200, "a renewal failure is not unreadiness");
    assert!(ready.text().contains("renewal failing"), "{}", ready.text());
    assert!(edge.log_text().contains("ACME: renewal failed"));
    assert_eq!(served_fingerprint(tls_port, "acme.test"), second);
    let r = https_get("acme.test", tls_port, "/index.html", &pebble_root, &[]);
    assert_eq!(r.status, 200);

    // A restart serves the stored certificate without asking the CA.
    edge.proc.signal("TERM");
    assert!(edge.proc.wait_exit(Duration::from_secs(20)).is_some());
    let edge = support::Edge::start_on(d, &config, port, ops_port);
    assert_eq!(served_fingerprint(tls_port, "acme.test"), second);
    assert_eq!(metric(&edge, issued), Some(0.0));
    assert_eq!(
        metric(&edge, "murakumo_acme_renewal_failing{site=\"shop\"} "),
        Some(0.0)
    );
}

/// One edge of the ACME fleet test: its own directory, ports and storage;
/// the CA, the site's root, php-fpm and Redis shared.
struct FleetEdge {
    dir: PathBuf,
    config: String,
    port: u16,
    tls_port: u16,
    ops_port: u16,
}

impl FleetEdge {
    fn new(
        dir: PathBuf,
        port: u16,
        pebble: &Pebble,
        ca: &Path,
        site: &str,
        redis: &support::Redis,
    ) -> FleetEdge {
        std::fs::create_dir_all(&dir).unwrap();
        let (tls_port, ops_port) = (free_port(), free_port());
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\ntls_listen = [\"127.0.0.1:{tls_port}\"]\nops_listen = \"127.0.0.1:{ops_port}\"\ndrain_delay = \"0s\"\n{shared}\n[acme]\ndirectory = \"{directory}\"\nstorage = \"acme-storage\"\nca_root = \"{ca}\"\n\n{site}",
            shared = redis.section(),
            directory = pebble.directory(),
            ca = ca.display(),
        );
        FleetEdge {
            dir,
            config,
            port,
            tls_port,
            ops_port,
        }
    }

    fn start(&self) -> support::Edge {
        support::Edge::start_on(&self.dir, &self.config, self.port, self.ops_port)
    }
}

#[test]
fn two_edges_behind_one_name_order_one_certificate_and_both_serve_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::new(d);
    let redis = support::Redis::start(d);
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "served by the fleet").unwrap();
    let fpm = support::PhpFpm::start(d, "fleet", &[]);
    let site = format!(
        "[[site]]\nname = \"shop\"\nhosts = [\"fleet.test\", \"www.fleet.test\"]\nroot = \"{}\"\nphp = [\"unix:{}\"]\ntls = {{ acme = true }}\n",
        root.display(),
        fpm.socket.display()
    );
    // The CA validates on edge B's port only: when edge A orders, only B
    // can answer, with what A published.
    let b_port = free_port();
    let pebble = Pebble::start(d, &pki, b_port);
    let ca = d.join("pki/ca.pem");
    let a_edge = FleetEdge::new(d.join("a"), free_port(), &pebble, &ca, &site, &redis);
    let b_edge = FleetEdge::new(d.join("b"), b_port, &pebble, &ca, &site, &redis);
    let (a_tls, b_tls) = (a_edge.tls_port, b_edge.tls_port);
    let a = a_edge.start();
    let b = b_edge.start();

    let count = |edge: &support::Edge, name: &str| {
        metric(
            edge,
            &format!("murakumo_acme_certificates_{name}_total{{site=\"shop\"}} "),
        )
        .unwrap_or(0.0)
    };
    wait_until(
        "both edges to serve a certificate",
        Duration::from_secs(90),
        || {
            [&a, &b].iter().all(|e| {
                metric(e, "murakumo_certificate_expiry_seconds{site=\"shop\"} ").unwrap_or(0.0)
                    > 1e9
            })
        },
    );
    let issued = count(&a, "issued") + count(&b, "issued");
    let adopted = count(&a, "adopted") + count(&b, "adopted");
    assert_eq!(
        (issued, adopted),
        (1.0, 1.0),
        "one order, served by both:\nA: {}\nB: {}",
        a.log_text(),
        b.log_text()
    );
    let first = served_fingerprint(a_tls, "fleet.test");
    assert!(!first.is_empty());
    assert_eq!(served_fingerprint(b_tls, "www.fleet.test"), first);
    let pebble_root = pebble.root(d);
    for port in [a_tls, b_tls] {
        let r = https_get("fleet.test", port, "/index.html", &pebble_root, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "served by the fleet"));
    }

    // A renewal ordered by A: the CA asks B, which answers with the token
    // A published; B then serves A's new certificate without being asked.
    let r = curl(&a.ops("/acme/renew?site=shop"), &["-X", "POST"]);
    assert_eq!(
        r.status,
        200,
        "{}\nA: {}\nB: {}",
        r.text(),
        a.log_text(),
        b.log_text()
    );
    let renewed = served_fingerprint(a_tls, "fleet.test");
    assert_ne!(renewed, first);
    wait_until(
        "B to serve A's renewed certificate",
        Duration::from_secs(40),
        || served_fingerprint(b_tls, "fleet.test") == renewed,
    );
    let accounts = [&a, &b]
        .iter()
        .map(|e| e.log_text().matches("ACME: account created").count())
        .sum::<usize>();
    assert_eq!(accounts, 1, "the edges share one ACME account");
    for e in [&a, &b] {
        assert!(
            !e.log_text().contains("PRIVATE KEY"),
            "a key reached the log"
        );
        assert!(
            !e.log_text().contains(support::PASSWORD),
            "Redis's password reached the log"
        );
    }
    // Two renewals asked of one edge at once: one order answers both.
    let issued_before = count(&a, "issued");
    let renew = a.ops("/acme/renew?site=shop");
    let both: Vec<_> = (0..2)
        .map(|_| {
            let url = renew.clone();
            std::thread::spawn(move || curl(&url, &["-X", "POST"]).status)
        })
        .collect();
    let statuses: Vec<u16> = both.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200]);
    assert_eq!(
        count(&a, "issued"),
        issued_before + 1.0,
        "two orders for one renewal"
    );
    let renewed = served_fingerprint(a_tls, "fleet.test");
    wait_until(
        "B to serve that certificate too",
        Duration::from_secs(40),
        || served_fingerprint(b_tls, "fleet.test") == renewed,
    );

    // Redis restarts empty (it saves nothing): the edges put the
    // certificate and the account back instead of ordering again.
    let mut redis = redis;
    redis.kill();
    redis.boot();
    let stored = |key: &str| {
        redis
            .cli(&["EXISTS", &format!("murakumo:v:acme:{key}")])
            .trim()
            == "1"
    };
    wait_until(
        "the edges to put the certificate back",
        Duration::from_secs(40),
        || stored("shop:certificate") && stored("account"),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count(&a, "issued") + count(&b, "issued"),
        3.0,
        "an edge ordered again"
    );
    assert_eq!(served_fingerprint(b_tls, "fleet.test"), renewed);

    // A renewal while Redis does not answer: refused at once, nobody orders
    // alone, and the certificate keeps serving.
    redis.kill();
    let r = curl(&b.ops("/acme/renew?site=shop"), &["-X", "POST"]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("keeps serving"), "{}", r.text());
    assert_eq!(count(&a, "issued") + count(&b, "issued"), 3.0);
    let r = curl(&b.ops("/acme/renew?site=nope"), &["-X", "POST"]);
    assert_eq!(r.status, 404, "{}", r.text());

    // A restart of B with Redis gone: it serves the renewed certificate from
    // its own storage.
    drop(redis);
    drop(b);
    let b = b_edge.start();
    assert_eq!(served_fingerprint(b_tls, "fleet.test"), renewed);
    drop(b);
    drop(a);
}

/// Sends raw bytes and returns everything the edge answered.
fn raw_exchange(port: u16, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A PROXY v2 header saying the client is `src` (IPv4, TCP).
fn proxy_v2(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(src);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(80u16.to_be_bytes());
    h
}

#[test]
fn forwarded_headers_and_proxy_protocol_only_from_trusted_proxies() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("info.php"),
        "<?php header('Cache-Control: no-store'); echo json_encode(['addr' => $_SERVER['REMOTE_ADDR'], 'https' => $_SERVER['HTTPS'] ?? '', 'scheme' => $_SERVER['REQUEST_SCHEME'], 'xff' => $_SERVER['HTTP_X_FORWARDED_FOR'] ?? '']);",
    )
    .unwrap();
    let fpm = support::PhpFpm::start(d, "fwd", &[]);
    let edge_for = |name: &str, trusted: &str| {
        let dir = d.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let tls_port = free_port();
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:{{port}}\"]\ntls_listen = [\"127.0.0.1:{tls_port}\"]\nops_listen = \"127.0.0.1:{{ops_port}}\"\ndrain_delay = \"0s\"\nredirect_https = true\ntrusted_proxies = [\"{trusted}\"]\n\n[[site]]\nname = \"fwd\"\nhosts = [\"fwd.test\"]\nroot = \"{root}\"\nphp = [\"unix:{sock}\"]\ntls = {{ self_signed = true }}\nguard = {{ entry_points_only = false }}\n",
            root = root.display(),
            sock = fpm.socket.display(),
        );
        (support::Edge::start(&dir, &config), tls_port)
    };
    let info = |r: &Resp| -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
    };
    let claim = [
        "-H",
        "Host: fwd.test",
        "-H",
        "X-Forwarded-For: 6.6.6.6, 198.51.100.7",
        "-H",
        "X-Forwarded-Proto: https",
    ];

    // The load balancer on 127.0.0.1 is trusted.
    let (edge, tls_port) = edge_for("trusted", "127.0.0.1/32");
    let r = curl(&edge.url("/info.php"), &claim);
    assert_eq!(r.status, 200, "HTTPS at the balancer: no redirect");
    let v = info(&r);
    assert_eq!(v["addr"], "198.51.100.7");
    assert_eq!(
        (v["https"].as_str(), v["scheme"].as_str()),
        (Some("on"), Some("https"))
    );
    assert_eq!(v["xff"], "6.6.6.6, 198.51.100.7");
    let r = curl(&edge.url("/info.php"), &["-H", "Host: fwd.test"]);
    assert_eq!(r.status, 308, "plain HTTP at the balancer is redirected");
    // Over the edge's own TLS, WordPress sees HTTPS=on.
    let r = curl(
        &format!("https://127.0.0.1:{tls_port}/info.php"),
        &["-k", "-H", "Host: fwd.test"],
    );
    assert_eq!(info(&r)["https"], "on");
    // PROXY protocol v2 from the trusted balancer names the client.
    let mut bytes = proxy_v2([203, 0, 113, 5], 40000);
    bytes.extend_from_slice(b"GET /info.php HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    // The client behind an L4 balancer is not trusted itself: its
    // X-Forwarded-Proto is ignored (so: redirected), and the access log
    // names it, not the balancer.
    let answer = raw_exchange(edge.port, &bytes);
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    wait_until("the access log line", Duration::from_secs(5), || {
        edge.log_text().contains("client=203.0.113.5")
    });
    // ... and a connection without the header still works.
    let answer = raw_exchange(
        edge.port,
        b"GET /info.php HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.contains("\"addr\":\"127.0.0.1\""), "{answer}");

    // The same requests from an untrusted peer claim nothing.
    let (edge, tls_port) = edge_for("untrusted", "10.0.0.0/8");
    let r = curl(&edge.url("/info.php"), &claim);
    assert_eq!(
        r.status, 308,
        "X-Forwarded-Proto from a stranger is ignored"
    );
    let mut https_claim = vec!["-k"];
    https_claim.extend_from_slice(&claim);
    let r = curl(
        &format!("https://127.0.0.1:{tls_port}/info.php"),
        &https_claim,
    );
    let v = info(&r);
    assert_eq!(v["addr"], "127.0.0.1");
    assert_eq!(v["xff"], "", "spoofable headers are removed before PHP");
    let answer = raw_exchange(edge.port, &bytes);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn ocsp_responses_are_stapled() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::new(d);
    let ocsp_port = free_port();
    let (leaf, key) = pki.leaf_with(
        "stapled",
        &["ocsp.test"],
        &format!("authorityInfoAccess=OCSP;URI:http://127.0.0.1:{ocsp_port}/"),
    );
    // The chain the edge serves: leaf, then its issuer (needed for the query).
    let chain = d.join("fullchain.pem");
    let mut pem = std::fs::read(&leaf).unwrap();
    pem.extend(std::fs::read(pki.ca()).unwrap());
    std::fs::write(&chain, pem).unwrap();
    // openssl's own OCSP responder, from a CA database naming the leaf valid.
    let serial = openssl(&["x509", "-noout", "-serial", "-in", leaf.to_str().unwrap()]);
    let serial = serial.trim().trim_start_matches("serial=");
    let index = d.join("index.txt");
    std::fs::write(
        &index,
        format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=ocsp.test\n"),
    )
    .unwrap();
    let ca_key = d.join("pki/ca.key");
    let _responder = Proc::spawn(
        "openssl ocsp",
        Command::new("openssl")
            .args(["ocsp", "-index"])
            .arg(&index)
            .args([
                // OpenSSL 3.0 takes a port only (it binds every address);
                // only loopback talks to it.
                "-port",
                &ocsp_port.to_string(),
                "-rsigner",
                &pki.ca(),
                "-rkey",
                ca_key.to_str().unwrap(),
                "-CA",
                &pki.ca(),
                "-ignore_err",
            ]),
        &d.join("ocsp.log"),
    );
    // (Not probed by connecting: a connection closed without a request
    // wedges this single-threaded responder.)
    wait_until("the OCSP responder", Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("ocsp.log"))
            .is_ok_and(|l| l.contains("waiting for OCSP client connections"))
    });
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "stapled").unwrap();
    let tls_port = free_port();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{{port}}\"]\ntls_listen = [\"127.0.0.1:{tls_port}\"]\nops_listen = \"127.0.0.1:{{ops_port}}\"\n\n[[site]]\nname = \"stapled\"\nhosts = [\"ocsp.test\"]\nroot = \"{}\"\nphp = [\"127.0.0.1:9\"]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
        root.display(),
        chain.display(),
        key.display()
    );
    let edge = support::Edge::start(d, &config);
    let status = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("openssl s_client -connect 127.0.0.1:{tls_port} -servername ocsp.test -status </dev/null 2>/dev/null"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let start = std::time::Instant::now();
    while !status().contains("Cert Status: good") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no stapled response:\n{}\nedge: {}\nresponder: {}",
            status(),
            edge.log_text(),
            std::fs::read_to_string(d.join("ocsp.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(status().contains("OCSP Response Status: successful"));
    assert!(edge.log_text().contains("OCSP response stapled"));
    let r = https_get("ocsp.test", tls_port, "/index.html", &pki.ca(), &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "stapled"));
}

/// A download over HTTP/2 in progress when the edge is told to stop is
/// finished within `grace`: the edge's last bytes are still in its socket
/// when hyper is done with the connection, and the client, reading them
/// slowly, keeps sending HTTP/2 frames (window updates) the edge no longer
/// reads; closing then would reset the connection and drop the bytes not
/// yet sent. The edge reads on until the client closes (bounded).
#[test]
fn an_h2_download_in_flight_when_the_edge_stops_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // 20 MB that nothing compresses (xorshift bytes, an octet stream),
    // read at 5 MB/s: the edge is stopped 0.7 s in, with most to send.
    let mut data = Vec::with_capacity(20 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while data.len() < 20 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let fpm = support::PhpFpm::start(d, "drain", &[]);
    let tls_port = free_port();
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{{port}}\"]\ntls_listen = [\"127.0.0.1:{tls_port}\"]\nops_listen = \"127.0.0.1:{{ops_port}}\"\ndrain_delay = \"0s\"\ngrace = \"20s\"\n\n[[site]]\nname = \"drain\"\nhosts = [\"drain.test\"]\nroot = \"{root}\"\nphp = [\"unix:{sock}\"]\ntls = {{ self_signed = true }}\n",
        root = root.display(),
        sock = fpm.socket.display(),
    );
    let mut edge = support::Edge::start(d, &config);
    let out = d.join("got.bin");
    let (out2, port) = (out.clone(), tls_port);
    let reader = std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sk", "--http2", "--limit-rate", "5M", "--max-time", "30"])
            .args(["--resolve", &format!("drain.test:{port}:127.0.0.1")])
            .args([
                "-o",
                &out2.display().to_string(),
                "-w",
                "%{http_version} %{http_code}",
            ])
            .arg(format!("https://drain.test:{port}/big.bin"))
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(700));
    edge.proc.signal("TERM");
    let got = reader.join().unwrap();
    assert!(
        got.status.success(),
        "curl: {:?} {} (got {} of {} bytes); edge log: {}",
        got.status,
        String::from_utf8_lossy(&got.stdout),
        std::fs::metadata(&out).map_or(0, |m| m.len()),
        data.len(),
        edge.log_text()
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout), "2 200");
    assert!(std::fs::read(&out).unwrap() == data, "the bytes differ");
    let status = edge.proc.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
