use std::time::Duration;

use super::*;

const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
ops_listen = "127.0.0.1:9090"
drain_delay = "2s"
grace = "30s"
purge_token_file = "/path/token"

[[site]]
name = "blog"
hosts = ["wp.test", "*.wp.test"]
root = "/srv/blog"
php = ["unix:/run/blog.sock", "127.0.0.1:9000"]
admin_php = ["unix:/run/blog-admin.sock"]
admin_allow = ["127.0.0.1/32"]
db = "mysql://user:pass@localhost/wordpress"
[site.cache]
enabled = true
ttl = "10m"
stale = "1h"
max_memory = "256MiB"
"#;

fn invalid(text: &str) -> String {
    Config::parse(text, "m.toml").unwrap_err().to_string()
}

#[test]
fn contract_example_parses() {
    let c = Config::parse(GOOD, "m.toml").unwrap();
    assert_eq!(c.server.drain_delay, Duration::from_secs(2));
    assert_eq!(c.server.grace, Duration::from_secs(30));
    let s = &c.site[0];
    assert_eq!(s.cache.ttl, Duration::from_secs(600));
    assert_eq!(s.cache.stale, Duration::from_secs(3600));
    assert_eq!(s.cache.max_memory, 256 << 20);
    assert_eq!(
        s.admin_allow.as_ref().unwrap()[0].to_string(),
        "127.0.0.1/32"
    );
    assert!(!s.xmlrpc);
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let e = invalid(&GOOD.replace("grace = ", "graec = "));
    assert!(
        e.contains("m.toml") && e.contains("graec") && e.contains("line"),
        "{e}"
    );
}

#[test]
fn bad_duration_size_cidr_and_address_say_what_is_right() {
    let e = invalid(&GOOD.replace("\"10m\"", "\"ten minutes\""));
    assert!(e.contains("ttl") || e.contains("duration"), "{e}");
    assert!(e.contains("10m"), "{e}");
    let e = invalid(&GOOD.replace("\"256MiB\"", "\"lots\""));
    assert!(e.contains("256MiB"), "{e}");
    let e = invalid(&GOOD.replace("127.0.0.1/32", "localhost"));
    assert!(
        e.contains("admin_allow") && e.contains("192.0.2.0/24"),
        "{e}"
    );
    let c = Config::parse(
        &GOOD.replace("\"127.0.0.1/32\"", "\"10.1.2.3\", \"::1\""),
        "m.toml",
    )
    .unwrap();
    let nets: Vec<String> = c.site[0]
        .admin_allow
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.1.2.3/32", "::1/128"]);
    let e = invalid(&GOOD.replace("\"127.0.0.1:9000\"", "\"php:fpm\""));
    assert!(e.contains("site[0].php") && e.contains("host:port"), "{e}");
}

#[test]
fn semantic_errors() {
    let e = invalid(&GOOD.replace(
        "ops_listen = \"127.0.0.1:9090\"",
        "ops_listen = \"127.0.0.1:8080\"",
    ));
    assert!(e.contains("server.ops_listen"), "{e}");
    let e = invalid(&GOOD.replace("\"*.wp.test\"", "\"http://x.test/\""));
    assert!(e.contains("site[0].hosts"), "{e}");
    let e = invalid(&GOOD.replace("root = \"/srv/blog\"", "root = \"srv/blog\""));
    assert!(e.contains("site[0].root") && e.contains("absolute"), "{e}");
    let two = format!("{GOOD}\n[[site]]\nname = \"blog\"\nhosts = [\"other.test\"]\nroot = \"/srv/x\"\nphp = [\"127.0.0.1:9001\"]\n");
    let e = invalid(&two);
    assert!(e.contains("site[1].name") && e.contains("unique"), "{e}");
    let e = invalid("[server]\n");
    assert!(e.contains("[[site]]"), "{e}");
}

#[test]
fn db_password_is_never_displayed() {
    let c = Config::parse(GOOD, "m.toml").unwrap();
    let db = c.site[0].db.as_ref().unwrap();
    assert_eq!(db.expose(), "mysql://user:pass@localhost/wordpress");
    assert!(!format!("{db} {db:?} {c:?}").contains("pass@"));
    assert_eq!(db.redacted(), "mysql://user:***@localhost/wordpress");
}

#[test]
fn units() {
    assert_eq!(parse_size("64M").unwrap(), 64_000_000);
    assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
    assert_eq!(parse_size("123").unwrap(), 123);
    assert!(parse_size("99999999999999999999GiB").is_err());
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
}

#[test]
fn host_patterns() {
    assert_eq!(
        HostPattern::parse("WP.test").unwrap(),
        HostPattern::Exact("wp.test".into())
    );
    assert_eq!(
        HostPattern::parse("*.wp.test").unwrap(),
        HostPattern::Wildcard("wp.test".into())
    );
    assert!(HostPattern::parse("wp.test:8080").is_err());
    assert!(HostPattern::parse("*").is_err());
}

proptest::proptest! {
    /// Loading arbitrary text never panics.
    #[test]
    fn parse_never_panics(text in ".{0,400}") {
        let _ = Config::parse(&text, "fuzz.toml");
    }
}

const TLS: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
tls_listen = ["127.0.0.1:8443"]
redirect_https = true
hsts = "180d"
trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]

[acme]
email = "ops@example.com"
storage = "acme"

[[site]]
name = "blog"
hosts = ["blog.example.com"]
root = "/srv/blog"
php = ["127.0.0.1:9000"]
tls = { acme = true }

[[site]]
name = "shop"
hosts = ["*.shop.example"]
root = "/srv/shop"
php = ["127.0.0.1:9000"]
tls = { cert = "certs/fullchain.pem", key = "/etc/keys/key.pem" }
"#;

#[test]
fn tls_sources_and_relative_paths() {
    let mut c = Config::parse(TLS, "m.toml").unwrap();
    c.resolve_relative(Path::new("/etc/murakumo"));
    assert_eq!(c.server.hsts, Hsts(Some(Duration::from_secs(180 * 86400))));
    assert_eq!(c.server.trusted_proxies.as_ref().unwrap().len(), 2);
    assert!(c.wants_acme());
    let acme = c.acme.as_ref().unwrap();
    assert_eq!(acme.directory, LETS_ENCRYPT);
    assert_eq!(acme.storage, Path::new("/etc/murakumo/acme"));
    assert_eq!(
        c.site[1].tls.as_ref().unwrap().source(),
        Some(TlsSource::Files {
            cert: "/etc/murakumo/certs/fullchain.pem".into(),
            key: "/etc/keys/key.pem".into()
        })
    );
    let on = TLS.replace("hsts = \"180d\"", "hsts = true");
    let c = Config::parse(&on, "m.toml").unwrap();
    assert_eq!(c.server.hsts, Hsts(Some(Duration::from_secs(365 * 86400))));
}

#[test]
fn tls_mistakes_are_named() {
    let e = invalid(&TLS.replace(
        "tls = { acme = true }",
        "tls = { acme = true, self_signed = true }",
    ));
    assert!(
        e.contains("site[0].tls") && e.contains("exactly one"),
        "{e}"
    );
    let e = invalid(&TLS.replace("tls = { acme = true }", "tls = { cert = \"a.pem\" }"));
    assert!(e.contains("site[0].tls"), "{e}");
    let e = invalid(&TLS.replace("tls_listen = [\"127.0.0.1:8443\"]", ""));
    assert!(e.contains("server.redirect_https"), "{e}");
    let no_redirect = TLS
        .replace("tls_listen = [\"127.0.0.1:8443\"]", "")
        .replace("redirect_https = true", "");
    let e = invalid(&no_redirect);
    assert!(e.contains("site[0].tls") && e.contains("tls_listen"), "{e}");
    let e = invalid(&TLS.replace("[acme]", "[unused]"));
    assert!(e.contains("unused") || e.contains("[acme]"), "{e}");
    let no_acme = TLS.replace(
        "[acme]\nemail = \"ops@example.com\"\nstorage = \"acme\"\n",
        "",
    );
    let e = invalid(&no_acme);
    assert!(e.contains("site[0].tls") && e.contains("[acme]"), "{e}");
    let e = invalid(&TLS.replace("\"blog.example.com\"", "\"*.example.com\""));
    assert!(e.contains("wildcard") && e.contains("DNS-01"), "{e}");
    let e = invalid(&TLS.replace("hsts = \"180d\"", "hsts = \"forever\""));
    assert!(e.contains("hsts") && e.contains("true for one year"), "{e}");
    let e = invalid(&TLS.replace("\"127.0.0.1:8443\"", "\"127.0.0.1:8080\""));
    assert!(e.contains("server.tls_listen"), "{e}");
    let e = invalid(&TLS.replace("tls = { acme = true }", ""));
    assert!(
        e.contains("site[0].tls") && e.contains("redirect_https"),
        "{e}"
    );
    let e = invalid(&TLS.replace("ops@example.com", "not an address"));
    assert!(e.contains("acme.email"), "{e}");
    let e = invalid(&TLS.replace("\"10.0.0.0/8\"", "\"ten\""));
    assert!(
        e.contains("trusted_proxies") || e.contains("not an IP network"),
        "{e}"
    );
}

#[test]
fn wp_cron_interval_and_host() {
    let with = |line: &str, hosts: &str| {
        GOOD.replace(
            "root = \"/srv/blog\"",
            &format!("root = \"/srv/blog\"\n{line}"),
        )
        .replace("hosts = [\"wp.test\", \"*.wp.test\"]", hosts)
    };
    let c = Config::parse(
        &with("wp_cron = \"1m\"", "hosts = [\"wp.test\", \"*.wp.test\"]"),
        "m.toml",
    )
    .unwrap();
    assert_eq!(c.site[0].wp_cron, Some(Duration::from_secs(60)));
    assert_eq!(Config::parse(GOOD, "m.toml").unwrap().site[0].wp_cron, None);
    let e = invalid(&with("wp_cron = \"2s\"", "hosts = [\"wp.test\"]"));
    assert!(e.contains("site[0].wp_cron") && e.contains("1m"), "{e}");
    let e = invalid(&with("wp_cron = \"1m\"", "hosts = [\"*.wp.test\"]"));
    assert!(e.contains("site[0].wp_cron") && e.contains("'*'"), "{e}");
}
